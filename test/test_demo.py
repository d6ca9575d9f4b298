"""`synergy demo` end to end: synthetic bag -> real synergy_node over DDS -> bag -> metrics."""
import json
import subprocess
import sys

import pytest

from synergy_ros.bags.bagio import bag_message_counts, bag_topics, iter_messages
from synergy_ros.core.errors import SynergyError
from synergy_ros.demo_pipeline import (INPUT_TOPICS, MARKER, RECORDED_OUTPUTS, camera_info_first,
                                       prepare_output)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FRAMES = 3


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run([sys.executable, "-m", "synergy_ros", "demo", "--output", str(output),
                           "--frames", str(FRAMES), "--height", "48", "--width", "64",
                           "--no-progress"], capture_output=True, text=True, timeout=400)
    return output, proc


def test_demo_runs_and_every_frame_comes_back(demo_run):
    output, proc = demo_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| /synergy/points | 3 | 0 |" in proc.stdout
    assert "synergy replay" in proc.stdout and "Foxglove" in proc.stdout
    topics = bag_topics(output / "bag")
    assert topics == {**INPUT_TOPICS, **RECORDED_OUTPUTS}
    assert set(bag_message_counts(output / "bag").values()) == {FRAMES}


def test_outputs_keep_their_input_image_stamps(demo_run):
    output, _ = demo_run
    stamps = {}
    for message in iter_messages(output / "bag"):
        header = message.message.header
        stamps.setdefault(message.topic, []).append(header.stamp.sec * 10**9
                                                    + header.stamp.nanosec)
    images = stamps["/camera/image_raw"]
    assert len(set(images)) == FRAMES
    for topic in RECORDED_OUTPUTS:
        assert sorted(stamps[topic]) == sorted(images), topic
    depth = next(m.message for m in iter_messages(output / "bag", ["/synergy/depth"]))
    assert depth.encoding == "32FC1" and depth.header.frame_id == "camera_optical_frame"


def test_metrics_report_pictures_and_cloud(demo_run):
    output, _ = demo_run
    metrics = json.loads((output / "metrics.json").read_text())
    assert set(metrics["depth"]) >= {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10",
                                     "delta1", "delta2", "delta3"}
    assert all(isinstance(metrics["depth"][k], float) for k in ("abs_rel", "rmse", "delta1"))
    assert set(metrics["semantic"]) >= {"pixel_acc", "miou"}
    assert [row["range"] for row in metrics["depth_ranges"]] == ["<=4m", "<=6m", "<=8m", "all"]
    assert metrics["frames"] == FRAMES and metrics["demo"]["frames_in"] == FRAMES
    assert set(metrics["demo"]["drops"].values()) == {0}
    report = (output / "report.md").read_text()
    assert "images/demo_strip.png" in report and "| <=4m |" in report
    for name in ("demo_strip.png", "frame_00000.png"):
        assert (output / "images" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ply = (output / "cloud.ply").read_bytes()
    header = ply[:ply.index(b"end_header")].decode()
    vertices = int(header.split("element vertex ")[1].split()[0])
    cloud = next(m.message for m in iter_messages(output / "bag", ["/synergy/points"]))
    assert 0 < vertices <= cloud.width * cloud.height and "property uchar red" in header


def test_prepare_output_replaces_only_a_previous_demo(tmp_path):
    prepare_output(tmp_path / "new")
    assert (tmp_path / "new").is_dir()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(SynergyError, match="not written by `synergy demo`"):
        prepare_output(foreign)
    assert (foreign / "thesis.tex").exists()
    old = tmp_path / "old"
    (old / "bag").mkdir(parents=True)
    (old / MARKER).write_text("{}")
    (old / "notes.txt").write_text("user file")
    prepare_output(old)
    assert not (old / "bag").exists() and (old / "notes.txt").exists()


def test_camera_info_is_played_before_the_image_of_its_frame():
    from synergy_ros.bags.bagio import BagMessage

    msgs = [BagMessage("/camera/image_raw", "sensor_msgs/msg/Image", 1, b""),
            BagMessage("/camera/camera_info", "sensor_msgs/msg/CameraInfo", 1, b""),
            BagMessage("/camera/image_raw", "sensor_msgs/msg/Image", 2, b""),
            BagMessage("/camera/camera_info", "sensor_msgs/msg/CameraInfo", 2, b"")]
    order = [(m.log_time_ns, m.topic) for m in camera_info_first(msgs)]
    assert order == [(1, "/camera/camera_info"), (1, "/camera/image_raw"),
                     (2, "/camera/camera_info"), (2, "/camera/image_raw")]
