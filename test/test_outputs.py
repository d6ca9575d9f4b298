"""The node's output messages for one prediction (ros.outputs), shared with evaluate."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")
from std_msgs.msg import Header  # noqa: E402

from synergy_ros.core.geometry import PinholeIntrinsics  # noqa: E402
from synergy_ros.core.labels import palette_lut  # noqa: E402
from synergy_ros.ros.conversions import image_to_array  # noqa: E402
from synergy_ros.ros.outputs import OUTPUT_TOPICS, prediction_messages  # noqa: E402
from synergy_ros.ros.pointcloud import pointcloud2_to_array  # noqa: E402


def test_palette_lut_pads_and_truncates_to_the_class_count():
    np.testing.assert_array_equal(palette_lut([(1, 2, 3)], 3), [[1, 2, 3], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(palette_lut([(1, 2, 3), (4, 5, 6), (7, 8, 9)], 2),
                                  [[1, 2, 3], [4, 5, 6]])
    assert palette_lut([], 0).shape == (1, 3)


def test_messages_follow_wanted_camera_and_settings():
    depth = np.full((6, 8), 2.0, np.float32)
    depth[0, 0] = 0.0  # invalid
    prediction = SimpleNamespace(depth=depth, labels=np.ones((6, 8), np.uint8), attention=None)
    rgb = np.full((12, 16, 3), 200, np.uint8)
    palette = palette_lut([(0, 0, 0), (10, 20, 30)], 2)
    header = Header(frame_id="cam")
    everything = list(OUTPUT_TOPICS)
    keys = [key for key, _ in prediction_messages(prediction, rgb, None, header, palette,
                                                  everything)]
    assert keys == ["depth", "semantic", "semantic_color"]  # no camera: no info, no cloud
    camera = PinholeIntrinsics.from_fov(math.radians(90), 16, 12)
    out = dict(prediction_messages(prediction, rgb, camera, header, palette, everything,
                                   depth_encoding="16UC1", semantic_blend=0.5,
                                   cloud_decimation=2))
    assert list(out) == ["depth", "depth_info", "semantic", "semantic_color", "points"]
    millimetres = image_to_array(out["depth"])
    assert out["depth"].encoding == "16UC1" and millimetres[0, 0] == 0
    assert millimetres[1, 1] == 2000
    assert (out["depth_info"].width, out["depth_info"].height) == (8, 6)
    assert out["depth_info"].k[0] == pytest.approx(camera.scaled(8, 6).fx)
    np.testing.assert_array_equal(image_to_array(out["semantic_color"])[0, 0], [105, 110, 115])
    cloud = pointcloud2_to_array(out["points"])
    assert cloud.shape == (3, 4) and np.isnan(cloud["z"][0, 0]) and cloud["z"][1, 1] == 2.0
    assert all(msg.header.frame_id == "cam" for msg in out.values())
