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
from synergy_ros.ros.outputs import (OUTPUT_TOPICS, depth_to_millimetres,  # noqa: E402
                                     prediction_messages, sibling_topic)
from synergy_ros.ros.pointcloud import pointcloud2_to_array  # noqa: E402

# ROS 2 message classes / serialization: run on Kilted and Jazzy (make test)
pytestmark = pytest.mark.ros


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
    assert list(out) == ["depth", "depth_info", "camera_info", "semantic", "semantic_color",
                         "points"]
    assert out["camera_info"] is out["depth_info"]  # one CameraInfo, beside the images too
    millimetres = image_to_array(out["depth"])
    assert out["depth"].encoding == "16UC1" and millimetres[0, 0] == 0
    assert millimetres[1, 1] == 2000
    assert (out["depth_info"].width, out["depth_info"].height) == (8, 6)
    assert out["depth_info"].k[0] == pytest.approx(camera.scaled(8, 6).fx)
    np.testing.assert_array_equal(image_to_array(out["semantic_color"])[0, 0], [105, 110, 115])
    cloud = pointcloud2_to_array(out["points"])
    assert cloud.shape == (3, 4) and np.isnan(cloud["z"][0, 0]) and cloud["z"][1, 1] == 2.0
    assert all(msg.header.frame_id == "cam" for msg in out.values())


def test_16uc1_depth_beyond_65_535_m_is_invalid_zero_not_saturated():
    """REP 118: 0 is invalid in 16UC1; an outdoor 80 m must not read as a valid 65.535 m."""
    metres = np.array([[0.5, 65.535, 65.6, 80.0],
                       [np.nan, -1.0, np.inf, 0.0004]], np.float32)
    prediction = SimpleNamespace(depth=metres, labels=np.zeros((2, 4), np.uint8),
                                 attention=None)
    out = dict(prediction_messages(prediction, np.zeros((2, 4, 3), np.uint8), None,
                                   Header(frame_id="cam"), palette_lut([], 1), ["depth"],
                                   depth_encoding="16UC1"))
    millimetres = image_to_array(out["depth"])
    assert out["depth"].encoding == "16UC1" and millimetres.dtype == np.uint16
    np.testing.assert_array_equal(millimetres, [[500, 65535, 0, 0], [0, 0, 0, 0]])
    assert depth_to_millimetres(np.float32([[65.5354]]))[0, 0] == 65535


@pytest.mark.parametrize("topic,sibling", [("/synergy/depth", "/synergy/camera_info"),
                                           ("/depth", "/camera_info"),
                                           ("/a/b/image_raw", "/a/b/camera_info")])
def test_sibling_topic_is_image_transports_camera_info_rule(topic, sibling):
    assert sibling_topic(topic, "camera_info") == sibling


def test_sibling_topic_needs_a_resolved_name():
    with pytest.raises(ValueError, match="fully qualified"):
        sibling_topic("depth", "camera_info")


def floor_scene(**overrides):
    """A flat floor 1 m below a 128x96 camera (class 0) under a wall at 5 m (class 1), and
    NavigationOutputs with scale correction for a 0.5 m camera height (so the scale is 0.5).

    Returns (camera, prediction, navigation, rgb)."""
    from synergy_ros.ros import params
    from synergy_ros.ros.navigation import NavigationConfig, NavigationOutputs

    height, width = 96, 128
    camera = PinholeIntrinsics.from_fov(math.radians(90), width, height)
    rows = np.arange(height, dtype=np.float32)[:, None].repeat(width, 1)
    floor = rows > camera.cy + 1
    with np.errstate(divide="ignore"):
        depth = np.where(floor, 1.0 * camera.fy / (rows - camera.cy), 5.0).astype(np.float32)
    prediction = SimpleNamespace(depth=depth, labels=np.where(floor, 0, 1).astype(np.uint8),
                                 attention=None)
    settings = {spec.name: spec.default for spec in params.PARAMS}
    settings.update(ground_classes=["c0"], ignore_classes=["none"],
                    scale_correction="ground_plane", camera_height=0.5, **overrides)
    navigation = NavigationOutputs(NavigationConfig.from_settings(settings),
                                   [f"c{i}" for i in range(5)])
    return camera, prediction, navigation, np.zeros((height, width, 3), np.uint8)


@pytest.mark.parametrize("decimation", [1, 2, 4, 8])
def test_ground_plane_scale_locks_whatever_the_cloud_decimation(decimation):
    """The plane fit must not depend on whether someone subscribes to a coarse cloud: it
    back-projects the ground pixels of the depth itself, never the clouds' grid (a flat
    floor, predicted 2x too deep)."""
    camera, prediction, navigation, rgb = floor_scene()
    for _ in range(3):
        out = dict(prediction_messages(prediction, rgb, camera, Header(frame_id="cam"),
                                       palette_lut([], 5), ["depth", "points"],
                                       cloud_decimation=decimation, navigation=navigation))
    state = navigation.scale_state
    assert state.status == "ok" and state.scale == pytest.approx(0.5, rel=0.01)
    assert image_to_array(out["depth"])[0, 0] == pytest.approx(2.5, rel=0.01)  # 5 m x 0.5


def test_the_plane_is_fitted_every_nth_frame_and_the_scale_applied_on_all():
    """scale_fit_interval 3: frames 0, 3, 6 are measured (age 0), the others carry the scale
    (age counts up) and still get their depth scaled."""
    camera, prediction, navigation, rgb = floor_scene(scale_fit_interval=3)
    ages, depths = [], []
    for i in range(7):
        header = Header(frame_id="cam")
        header.stamp.sec = i
        out = dict(prediction_messages(prediction, rgb, camera, header, palette_lut([], 5),
                                       ["depth"], navigation=navigation))
        ages.append(navigation.scale_state.age_frames)
        depths.append(float(image_to_array(out["depth"])[0, 0]))
    assert ages == [0, 1, 2, 0, 1, 2, 0]
    assert depths == pytest.approx([2.5] * 7, rel=0.01)  # 5 m x 0.5 on every frame
    assert navigation.scale_state.age_s == 0.0


def test_scale_status_names_missing_camera_info():
    """Without intrinsics the ground cannot be back-projected: the status says so (not
    "no ground") and the last confident scale stays applied."""
    camera, prediction, navigation, rgb = floor_scene(scale_fit_interval=1)
    palette = palette_lut([], 5)
    dict(prediction_messages(prediction, rgb, camera, Header(), palette, ["depth"],
                             navigation=navigation))
    out = dict(prediction_messages(prediction, rgb, None, Header(), palette, ["depth"],
                                   navigation=navigation))
    state = navigation.scale_state
    assert state.status == "no_camera_info" and "camera_info" in state.message
    assert state.confident and state.age_frames == 1
    assert float(image_to_array(out["depth"])[0, 0]) == pytest.approx(2.5, rel=0.01)


def test_clouds_take_their_colours_from_the_predictions_resized_image():
    """A prediction that carries the network's resized view of the image (Prediction.rgb at
    output_resolution model) colours the cloud with it; without one the camera image is
    resized here."""
    from synergy_ros.ros.pointcloud import unpack_rgb

    depth = np.full((6, 8), 2.0, np.float32)
    camera = PinholeIntrinsics.from_fov(math.radians(90), 16, 12)
    rgb = np.full((12, 16, 3), 200, np.uint8)
    palette = palette_lut([(0, 0, 0)], 1)
    colours = {}
    for name, carried in (("carried", np.full((6, 8, 3), 7, np.uint8)), ("resized", None)):
        prediction = SimpleNamespace(depth=depth, labels=np.zeros((6, 8), np.uint8),
                                     attention=None, rgb=carried)
        out = dict(prediction_messages(prediction, rgb, camera, Header(), palette, ["points"]))
        colours[name] = unpack_rgb(pointcloud2_to_array(out["points"])["rgb"])
    assert (colours["carried"] == 7).all() and (colours["resized"] == 200).all()


@pytest.mark.parametrize("pitch_deg", [0.0, 40.0])
def test_camera_pitch_sets_the_expected_ground_normal(pitch_deg):
    """A camera looking 40 deg down sees the floor tilted 40 deg from a level camera's
    expectation: beyond max_ground_tilt (30) it is refused unless camera_pitch says so."""
    from synergy_ros.ros import params
    from synergy_ros.ros.navigation import NavigationConfig, NavigationOutputs

    height, width, camera_height, pitch = 96, 128, 1.0, math.radians(40.0)
    camera = PinholeIntrinsics.from_fov(math.radians(90), width, height)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy,
                     np.ones_like(u)], axis=-1)
    up = np.array([0.0, -math.cos(pitch), -math.sin(pitch)])  # the true ground normal
    along = rays @ up
    floor = along < -0.05
    with np.errstate(divide="ignore"):
        depth = np.where(floor, -camera_height / along, 5.0).astype(np.float32)
    prediction = SimpleNamespace(depth=depth * np.float32(1.6),  # predicted 1.6x too deep
                                 labels=np.where(floor, 0, 1).astype(np.uint8), attention=None)
    settings = {spec.name: spec.default for spec in params.PARAMS}
    settings.update(ground_classes=["c0"], ignore_classes=["none"],
                    scale_correction="ground_plane", camera_height=camera_height,
                    camera_pitch=pitch_deg, scale_fit_interval=1)
    navigation = NavigationOutputs(NavigationConfig.from_settings(settings),
                                   [f"c{i}" for i in range(5)])
    dict(prediction_messages(prediction, np.zeros((height, width, 3), np.uint8), camera,
                             Header(), palette_lut([], 5), ["depth"], navigation=navigation))
    state = navigation.scale_state
    if pitch_deg == 0.0:
        assert state.status == "no_plane" and not state.confident
    else:
        assert state.status == "ok" and state.scale == pytest.approx(1 / 1.6, rel=0.01)
        assert state.tilt_deg < 1.0


def _frame(seed, height=24, width=32):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 8.0, (height, width)).astype(np.float32)
    return SimpleNamespace(depth=depth, labels=rng.integers(0, 5, (height, width)).astype(
        np.uint8), attention=rng.uniform(0, 1, (height // 2, width // 2)).astype(np.float32))


def test_message_buffers_are_reused_only_once_the_previous_message_is_dropped():
    """The node hands each camera a MessageBuffers: a published and dropped frame's buffers
    are written again (no page faults per frame), a message somebody keeps is never touched."""
    from synergy_ros.ros.conversions import MessageBuffers
    from synergy_ros.ros.navigation import NavigationConfig, NavigationOutputs
    from synergy_ros.ros import params

    settings = {spec.name: spec.default for spec in params.PARAMS}
    settings.update(ground_classes=["c0"], ignore_classes=["none"])
    navigation = NavigationOutputs(NavigationConfig.from_settings(settings),
                                   [f"c{i}" for i in range(5)])
    camera = PinholeIntrinsics.from_fov(math.radians(70), 32, 24)
    rgb = np.full((24, 32, 3), 90, np.uint8)
    keys = ["depth", "semantic", "semantic_color", "points", "obstacles", "ground", "attention"]
    buffers = MessageBuffers()

    def build(prediction, pool):
        return dict(prediction_messages(prediction, rgb, camera, Header(frame_id="cam"),
                                        palette_lut([], 5), keys, navigation=navigation,
                                        buffers=pool))

    first = build(_frame(1), buffers)
    kept = {key: bytes(msg.data) for key, msg in first.items()}
    second = build(_frame(2), buffers)  # ``first`` is still held: new buffers
    for key, msg in first.items():
        assert bytes(msg.data) == kept[key], key
        assert second[key].data is not msg.data, key
    expected = {key: bytes(msg.data) for key, msg in build(_frame(2), None).items()}
    assert {key: bytes(msg.data) for key, msg in second.items()} == expected
    ids = {key: id(msg.data) for key, msg in second.items()}
    del first, second, msg  # published and dropped
    third = build(_frame(3), buffers)
    assert {key: id(msg.data) for key, msg in third.items()} == ids  # the same buffers
    # written whole: the same bytes as fresh buffers (obstacle count differs: resized)
    assert {key: bytes(msg.data) for key, msg in third.items()} == {
        key: bytes(msg.data) for key, msg in build(_frame(3), None).items()}


def test_message_buffers_resize_in_place():
    from synergy_ros.ros.conversions import MessageBuffers

    buffers = MessageBuffers()
    buffer = buffers.get("obstacles", 320)
    assert len(buffer) == 320
    buffer_id = id(buffer)
    del buffer
    assert len(buffers.get("obstacles", 200)) == 200
    assert id(buffers.get("obstacles", 640)) == buffer_id and len(buffers.get("x", 0)) == 0


def test_message_buffers_know_a_free_buffer_on_this_interpreter():
    """The reuse test counts references as calibrated at import; here it must be able to."""
    from synergy_ros.ros import conversions

    assert conversions._FREE_REFERENCES is not None
    buffers = conversions.MessageBuffers()
    held = buffers.get("depth", 8)
    assert buffers.get("depth", 8) is not held  # still held: a new buffer
