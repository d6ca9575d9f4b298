"""launch/multi_camera.launch.py without the launch package: its cameras file translation,
its arguments, and a real synergy_node process started with what it passes (params file with
``cameras`` and per-camera parameters, the per-camera remaps)."""
import ast
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from synergy_ros.core.errors import SynergyError
from synergy_ros.ros.cameras_file import (CameraEntry, load_cameras_file, node_arguments,
                                          parse_cameras)

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "multi_camera.launch.py"
EXAMPLE = ROOT / "config" / "multi_camera.yaml"


def test_example_cameras_file_gives_the_cameras_parameter_and_remaps():
    entries = load_cameras_file(EXAMPLE)
    assert [e.name for e in entries] == ["front", "left", "right"]
    parameters, remappings = node_arguments(entries)
    assert parameters == {"cameras": ["front", "left", "right"]}
    assert ("front/image", "/cam_front/color/image_raw") in remappings
    assert ("front/image/compressed", "/cam_front/color/image_raw/compressed") in remappings
    # camera_info remapped only where given (else read beside the image)
    assert [r for r in remappings if r[0].endswith("camera_info")] == [
        ("right/camera_info", "/cam_right/color/camera_info")]


@pytest.mark.parametrize("data,match", [
    ({"front": "/x"}, "non-empty YAML list"),
    ([], "non-empty YAML list"),
    (["front"], "not a mapping"),
    ([{"name": "front"}], "no image topic"),
    ([{"name": "front", "image": "/a", "fov": 3}], "unknown keys"),
    ([{"name": "front cam", "image": "/a"}], "not a valid camera name"),
    ([{"name": "front", "image": "/a"}, {"name": "front", "image": "/b"}], "listed twice"),
    ([{"image": "/a"}], "not a valid camera name"),
])
def test_bad_cameras_files_are_refused_with_what_to_write(data, match):
    with pytest.raises(SynergyError, match=match):
        parse_cameras(data, "cams.yaml")


def test_cameras_under_a_key_and_unreadable_files(tmp_path):
    assert parse_cameras({"cameras": [{"name": "a", "image": "/i"}]}) == [CameraEntry("a", "/i")]
    with pytest.raises(SynergyError, match="cannot read the cameras file"):
        load_cameras_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("- name: [front\n")
    with pytest.raises(SynergyError, match="not valid YAML"):
        load_cameras_file(broken)


def test_launch_file_declares_its_arguments_and_uses_the_cameras_file():
    tree = ast.parse(LAUNCH.read_text())
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") ==
                "DeclareLaunchArgument"}
    assert declared == {"cameras_file", "namespace", "params_file", "model", "backend"}
    called = {getattr(node.func, "id", "") for node in ast.walk(tree)
              if isinstance(node, ast.Call)}
    assert {"load_cameras_file", "node_arguments"} <= called


@pytest.mark.ros
def test_node_process_with_the_launch_files_arguments(tmp_path):
    """What the launch file passes (params file + {cameras} + remaps), to the real node."""
    pytest.importorskip("rclpy")
    pytest.importorskip("torch")
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from test_node_process import node_command, run_env

    from synergy_ros.core.geometry import PinholeIntrinsics
    from synergy_ros.ros.conversions import intrinsics_to_camera_info
    from synergy_ros.ros.testing import RosHarness, camera_frame, make_model_file

    model = make_model_file(tmp_path / "tiny.pt", input_size=(48, 64))
    namespace = f"/multi_launch_{os.getpid()}"
    cams = f"{namespace}_cam"
    entries = parse_cameras([
        {"name": "front", "image": f"{cams}/front/image_raw"},
        {"name": "left", "image": f"{cams}/left/image_raw"},
        {"name": "right", "image": f"{cams}/right/image_raw",
         "camera_info": f"{cams}/right_info"}])
    parameters, remappings = node_arguments(entries)
    # the params file the launch file hands over (launch_ros writes dicts the same way),
    # with a per-camera parameter nested under the camera's name
    params_file = tmp_path / "multi.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        **parameters, "model": str(model), "backend": "torch", "num_threads": 1,
        "front": {"fallback_fov": 70.0}}}}))
    remap_args = [arg for source, target in remappings for arg in ("-r", f"{source}:={target}")]
    process = subprocess.Popen(
        node_command("--params-file", str(ROOT / "config" / "synergy.yaml"),
                     "--params-file", str(params_file), "-r", f"__ns:={namespace}",
                     *remap_args),
        env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    harness = RosHarness("/")
    try:
        for name in ("front", "left", "right"):
            harness.record(Image, f"{namespace}/{name}/depth")
            harness.record(PointCloud2, f"{namespace}/{name}/points")
        harness.record(CameraInfo, f"{namespace}/left/camera_info")
        images = {name: harness.publisher(Image, f"{cams}/{name}/image_raw")
                  for name in ("front", "left", "right")}
        infos = {"left": harness.publisher(CameraInfo, f"{cams}/left/camera_info"),
                 "right": harness.publisher(CameraInfo, f"{cams}/right_info")}
        rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
        k = PinholeIntrinsics.from_fov(1.2, 80, 60)
        count = [0]

        def send():
            count[0] += 1
            for index, (name, pub) in enumerate(images.items()):
                msg = camera_frame(rgb, (index + 1) * 1_000_000_000 + count[0],
                                   frame_id=f"{name}_optical")
                if name in infos:
                    infos[name].publish(intrinsics_to_camera_info(k, msg.header))
                pub.publish(msg)

        topics = [f"{namespace}/{name}/{kind}" for name in ("front", "left", "right")
                  for kind in ("depth", "points")] + [f"{namespace}/left/camera_info"]
        ok = harness.wait_for(lambda: all(harness.messages(t) for t in topics)
                              or process.poll() is not None, 90.0, during=send, every=0.1)
        assert process.poll() is None, process.communicate(timeout=10)
        assert ok, {t: len(harness.messages(t)) for t in topics}
        for index, name in enumerate(("front", "left", "right")):
            for msg in harness.messages(f"{namespace}/{name}/depth"):
                assert msg.header.frame_id == f"{name}_optical"
                assert (index + 1) * 10**9 <= msg.header.stamp.sec * 10**9 + \
                    msg.header.stamp.nanosec < (index + 2) * 10**9
    finally:
        harness.close()
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    assert process.returncode == 0
