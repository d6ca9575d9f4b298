"""The real synergy_node process: params file, outputs over DDS, clean signals, one-line errors."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("torch")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from synergy_ros.core.geometry import PinholeIntrinsics  # noqa: E402
from synergy_ros.ros.conversions import intrinsics_to_camera_info  # noqa: E402
from synergy_ros.ros.testing import RosHarness, camera_frame, make_model_file  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = ROOT / "config" / "synergy.yaml"


def node_command(*ros_args):
    script = Path(sys.executable).with_name("synergy_node")  # the console script
    prefix = [str(script)] if script.exists() else [sys.executable, "-m",
                                                    "synergy_ros.ros.node"]
    return prefix + ["--ros-args", *ros_args]


def run_env():
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    env.setdefault("ROS_DOMAIN_ID", "73")
    return env


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("model") / "tiny.pt", input_size=(48, 64))


def assert_one_line_failure(result, *fragments):
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("synergy_node: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("stop_signal,backend", [(signal.SIGINT, "torch"),
                                                 (signal.SIGTERM, "auto")])
def test_node_process_with_params_file_publishes_and_stops_cleanly(model_path, tmp_path,
                                                                   stop_signal, backend):
    """backend auto = onnxruntime here: the .pt is exported to ONNX in engine_cache_dir."""
    namespace = f"/proc_{stop_signal.name.lower()}_{os.getpid()}"
    process = subprocess.Popen(
        node_command("--params-file", str(PARAMS_FILE), "-p", f"model:={model_path}",
                     "-p", f"backend:={backend}", "-p", "num_threads:=1", "-p",
                     f"engine_cache_dir:={tmp_path / 'cache'}", "-p",
                     "diagnostics_period:=0.3", "-r", f"__ns:={namespace}"),
        env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    harness = RosHarness(namespace)
    try:
        harness.record(Image, "depth")
        harness.record(PointCloud2, "points")
        harness.record(DiagnosticArray, "/diagnostics")
        image_pub = harness.publisher(Image, "image")
        info_pub = harness.publisher(CameraInfo, "camera_info")
        rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
        k = PinholeIntrinsics.from_fov(1.2, 80, 60)
        count = [0]

        def send():
            count[0] += 1
            msg = camera_frame(rgb, 1_000_000 * count[0])
            info_pub.publish(intrinsics_to_camera_info(k, msg.header))
            image_pub.publish(msg)

        ok = harness.wait_for(lambda: harness.messages("depth") and harness.messages("points")
                              or process.poll() is not None, 45.0, during=send, every=0.1)
        assert process.poll() is None, process.communicate()[1]
        assert ok, "no outputs from the node process"
        depth = harness.messages("depth")[0]
        assert (depth.encoding, depth.height, depth.width) == ("32FC1", 48, 64)
        assert harness.messages("points")[0].header.frame_id == "camera_optical_frame"

        def backend_reported():
            return [v.value for m in harness.messages("/diagnostics") for s in m.status
                    if s.name == "synergy_node: pipeline" for v in s.values
                    if v.key == "backend"]

        assert harness.wait_for(backend_reported, 10.0)
        expected = "torch" if backend == "torch" else "onnxruntime"
        assert expected in backend_reported()
        if backend == "auto":
            assert list((tmp_path / "cache").glob("*.onnx"))
    finally:
        harness.close()
        if process.poll() is None:
            process.send_signal(stop_signal)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(f"node did not stop on {stop_signal.name}: {stderr[-2000:]}")
    assert process.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr


def test_missing_model_exits_nonzero_with_one_line(tmp_path):
    missing = tmp_path / "no_such_model.pt"
    result = subprocess.run(node_command("--params-file", str(PARAMS_FILE), "-p",
                                         f"model:={missing}"),
                            env=run_env(), capture_output=True, text=True, timeout=60)
    assert_one_line_failure(result, str(missing), "does not exist")


def test_bare_node_without_model_runs_the_bundled_model_and_says_so():
    """No ``model`` parameter (the params file leaves it empty): the bundled demo model runs."""
    namespace = f"/proc_bare_{os.getpid()}"
    process = subprocess.Popen(
        node_command("--params-file", str(PARAMS_FILE), "-p", "backend:=torch", "-p",
                     "num_threads:=1", "-r", f"__ns:={namespace}"),
        env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    harness = RosHarness(namespace)
    try:
        harness.record(Image, "depth")
        image_pub = harness.publisher(Image, "image")
        rgb = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
        ok = harness.wait_for(lambda: harness.messages("depth") or process.poll() is not None,
                              60.0, during=lambda: image_pub.publish(camera_frame(rgb, 7)),
                              every=0.2)
        assert process.poll() is None, process.communicate()[0]
        assert ok, "no depth from the bare node"
        depth = harness.messages("depth")[0]
        assert (depth.height, depth.width) == (96, 128)  # the bundled model's input size
    finally:
        harness.close()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output[-2000:]
    bundled = str(ROOT / "models" / "synergy_demo_r18.pt")
    lines = [line for line in output.splitlines() if "running the bundled demo model" in line]
    assert lines and bundled in lines[0], output[-2000:]
    assert any(f"model {bundled}" in line for line in output.splitlines()), output[-2000:]


def test_corrupt_model_file_exits_with_one_line(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 this is not a torch file" * 10)
    result = subprocess.run(node_command("-p", f"model:={broken}", "-p", "backend:=torch"),
                            env=run_env(), capture_output=True, text=True, timeout=60)
    assert_one_line_failure(result, "broken.pt")


@pytest.mark.parametrize("line,fragment", [
    ("cloud_decimation: 0", "cloud_decimation"),
    ("queue_policy: fifo", "queue_policy must be one of latest, drop_new"),
    ("max_range: 20", "max_range"),  # an integer where a double is declared
])
def test_invalid_params_file_exits_with_one_line(tmp_path, model_path, line, fragment):
    params = tmp_path / "bad.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    model: {model_path}\n    {line}\n")
    started = time.monotonic()
    result = subprocess.run(node_command("--params-file", str(params)), env=run_env(),
                            capture_output=True, text=True, timeout=60)
    assert_one_line_failure(result, fragment)
    assert time.monotonic() - started < 60
