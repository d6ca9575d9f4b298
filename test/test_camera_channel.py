"""CameraChannel: one camera's state in the node (plain Python, no ROS)."""
import time

from synergy_ros.ros.camera_channel import CameraChannel


def test_each_camera_throttles_its_own_log_lines():
    """rclpy throttles per line of code: one camera repeating a warning would silence the
    same warning of every other camera. CameraChannel.log_due keeps the time per camera."""
    front, left = CameraChannel("front"), CameraChannel("left")
    assert front.log_due("no_camera_info", 0.2) and left.log_due("no_camera_info", 0.2)
    assert not front.log_due("no_camera_info", 0.2) and not left.log_due("no_camera_info", 0.2)
    assert front.log_due("bad", 0.2)  # another line of the same camera has its own time
    time.sleep(0.25)
    assert front.log_due("no_camera_info", 0.2)
