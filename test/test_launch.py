"""launch/synergy.launch.py under launch_testing (runs where launch/launch_ros are installed).

Here (PyPI rclpy, no launch/launch_ros/launch_testing) the module is skipped; the params file
is always tested by starting the real node with --params-file (test_node_process.py) and the
launch file's arguments / rviz config are checked statically in test_node_params.py.
On a ROS machine: `colcon test --packages-select synergy_ros` or `launch_test test/test_launch.py`.
"""
import tempfile
import unittest
from pathlib import Path

import numpy as np
import pytest

for _module in ("launch", "launch_ros", "launch_testing"):
    pytest.importorskip(_module, reason=f"{_module} is not installed (not on PyPI); this launch "
                        "test runs on a ROS 2 install")
pytest.importorskip("torch")

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from synergy_ros.core.geometry import PinholeIntrinsics  # noqa: E402
from synergy_ros.ros.conversions import intrinsics_to_camera_info  # noqa: E402
from synergy_ros.ros.testing import RosHarness, camera_frame, make_model_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "synergy_launch_test"


@pytest.mark.launch_test
def generate_test_description():
    """synergy.launch.py with a tiny real model, remapped camera topics, rviz off."""
    model = make_model_file(Path(tempfile.mkdtemp()) / "tiny.pt", input_size=(48, 64))
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(ROOT / "launch" / "synergy.launch.py")),
        launch_arguments={"image": f"/{NAMESPACE}_cam/image_raw",
                          "namespace": NAMESPACE, "model": str(model), "backend": "torch",
                          "params_file": str(ROOT / "config" / "synergy.yaml"),
                          "rviz": "false"}.items())
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestSynergyLaunch(unittest.TestCase):
    """The launched node turns camera frames into depth and a cloud under the namespace."""

    def test_outputs_on_remapped_topics(self, proc_output):
        """Publish on the remapped camera topics, receive /<namespace>/depth and points."""
        harness = RosHarness("/")
        try:
            harness.record(Image, f"/{NAMESPACE}/depth")
            harness.record(PointCloud2, f"/{NAMESPACE}/points")
            # beside the images (image_transport's rule); the input is read beside the image
            harness.record(CameraInfo, f"/{NAMESPACE}/camera_info")
            image_pub = harness.publisher(Image, f"/{NAMESPACE}_cam/image_raw")
            info_pub = harness.publisher(CameraInfo, f"/{NAMESPACE}_cam/camera_info")
            k = PinholeIntrinsics.from_fov(1.2, 80, 60)
            frame = camera_frame(np.zeros((60, 80, 3), np.uint8), 1)

            def send():
                info_pub.publish(intrinsics_to_camera_info(k, frame.header))
                image_pub.publish(frame)

            ok = harness.wait_for(lambda: harness.messages(f"/{NAMESPACE}/depth")
                                  and harness.messages(f"/{NAMESPACE}/points")
                                  and harness.messages(f"/{NAMESPACE}/camera_info"), 60.0,
                                  during=send, every=0.2)
            self.assertTrue(ok, "no depth/points/camera_info from the launched node")
        finally:
            harness.close()


@launch_testing.post_shutdown_test()
class TestSynergyShutdown(unittest.TestCase):
    """The node exits cleanly when launch stops it (SIGINT)."""

    def test_exit_code(self, proc_info):
        """Exit status 0."""
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0])
