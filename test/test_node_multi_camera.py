"""One SynergyNode serving several cameras over real DDS (issue 14): routing, batching,
fairness, a silent camera, a camera flooded with bad messages, per-camera parameters."""
import itertools
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("torch")
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.exceptions import InvalidParameterValueException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from synergy_ros.core.errors import SynergyError  # noqa: E402
from synergy_ros.core.geometry import PinholeIntrinsics  # noqa: E402
from synergy_ros.ros.conversions import (image_to_array, intrinsics_to_camera_info,  # noqa: E402
                                         stamp_ns)
from synergy_ros.ros.node import SynergyNode  # noqa: E402
from synergy_ros.ros.pointcloud import pointcloud2_to_array  # noqa: E402
from synergy_ros.ros.testing import camera_frame, make_model_file  # noqa: E402
from synergy_ros.runtime.torch_backend import TorchPredictor  # noqa: E402

pytestmark = pytest.mark.ros
MODEL_H, MODEL_W = 48, 64
#: name -> (width, height, intrinsics, frame_id, stamp base ns): every camera differs
CAMERAS = {
    "front": (96, 72, PinholeIntrinsics(fx=80.0, fy=82.0, cx=47.2, cy=35.9, width=96,
                                        height=72), "front_optical", 1_000_000_000),
    "left": (64, 48, PinholeIntrinsics(fx=40.0, fy=41.0, cx=30.0, cy=25.0, width=64,
                                       height=48), "left_optical", 2_000_000_000),
    "rear": (80, 60, PinholeIntrinsics(fx=120.0, fy=118.0, cx=41.0, cy=28.5, width=80,
                                       height=60), "rear_optical", 3_000_000_000),
}


class RecordingPredictor(TorchPredictor):
    """The real TorchPredictor; records each inference call's batch size and takes
    ``delay_s`` longer per call (a slower device), so frames of several cameras meet."""

    def __init__(self, *args, delay_s: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s = delay_s
        self.batches: list[int] = []

    def infer(self, batch):
        """Record the batch size, wait ``delay_s``, run the real network."""
        self.batches.append(int(batch.shape[0]))
        time.sleep(self.delay_s)
        return super().infer(batch)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("model") / "tiny.pt", num_classes=5,
                           input_size=(MODEL_H, MODEL_W))


def recording_predictor(model_path, delay_s=0.0, output_resolution="input"):
    return RecordingPredictor(model_path, device="cpu", num_threads=1,
                              output_resolution=output_resolution, delay_s=delay_s)


def start_node(harness, model_path, predictor=None, cameras=tuple(CAMERAS), cli_args=None,
               **overrides):
    params = {"model": str(model_path), "backend": "torch", "device": "cpu", "num_threads": 1}
    params.update(overrides)
    # typed: rclpy takes an untyped empty list for a BYTE_ARRAY
    overrides = [Parameter("cameras", Parameter.Type.STRING_ARRAY, list(cameras))]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    node = SynergyNode(predictor=predictor, context=harness.context,
                       namespace=harness.namespace, use_global_arguments=False,
                       cli_args=cli_args, parameter_overrides=overrides)
    harness.add_node(node)
    return node


def scene(name, i):
    """Camera ``name``'s frame ``i``: (H, W, 3) uint8, different per camera and frame."""
    width, height = CAMERAS[name][:2]
    rng = np.random.default_rng(list(CAMERAS).index(name) * 1000 + i % 4)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.dstack([xx * 3, yy * 4, (xx + 2 * yy)]).astype(np.int32)
    return np.clip(base + rng.integers(0, 60, base.shape), 0, 255).astype(np.uint8)


class Cameras:
    """Publishers of the cameras' images (and camera_info) on NAME/image, NAME/camera_info."""

    def __init__(self, harness, names, reliable=False, depth=10, info=True):
        self.harness = harness
        self.image = {n: harness.publisher(Image, f"{n}/image", reliable, depth) for n in names}
        self.info = {n: harness.publisher(CameraInfo, f"{n}/camera_info") for n in names
                     } if info else {}
        self.counters = {n: itertools.count() for n in names}
        self.sent = {n: [] for n in names}

    def frame(self, name):
        i = next(self.counters[name])
        stamp = CAMERAS[name][4] + i * 1_000_000
        return i, camera_frame(scene(name, i), stamp, frame_id=CAMERAS[name][3])

    def send(self, name):
        i, msg = self.frame(name)
        if name in self.info:
            self.info[name].publish(intrinsics_to_camera_info(CAMERAS[name][2], msg.header))
        self.image[name].publish(msg)
        self.sent[name].append(stamp_ns(msg))

    def run(self, condition, timeout, rates_hz):
        """Publish each camera at its rate (Hz; 0 = silent) until ``condition()``."""
        next_at = {n: time.monotonic() for n in rates_hz}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            now = time.monotonic()
            for name, rate in rates_hz.items():
                if rate and now >= next_at[name]:
                    self.send(name)
                    next_at[name] = max(next_at[name] + 1.0 / rate, now)
            time.sleep(0.005)
        return bool(condition())


def record(harness, names, topics=("depth", "depth/camera_info", "semantic", "points")):
    types = {"depth": Image, "depth/camera_info": CameraInfo, "semantic": Image,
             "points": PointCloud2, "camera_info": CameraInfo}
    for name in names:
        for topic in topics:
            harness.record(types[topic], f"{name}/{topic}")


def camera_statuses(harness, node):
    """{camera name: (level, {key: value})} from the latest /diagnostics of ``node``."""
    found = {}
    for msg in harness.messages("/diagnostics"):
        for status in msg.status:
            prefix = f"{node.get_name()}: camera "
            if status.name.startswith(prefix):
                found[status.name[len(prefix):]] = (
                    status.level, {v.key: v.value for v in status.values})
    return found


def test_three_cameras_outputs_are_routed_with_their_own_stamp_frame_size_and_k(
        harness, model_path):
    """Different resolutions, frame_ids and K: every output lies on its camera's topics, with
    its stamp and frame_id, at its size, with the depth the model gives for that camera's
    image, and a cloud back-projected with that camera's own K."""
    predictor = recording_predictor(model_path, delay_s=0.05)
    node = start_node(harness, model_path, predictor=predictor)
    record(harness, CAMERAS)
    cams = Cameras(harness, CAMERAS)
    wanted = [f"{n}/{t}" for n in CAMERAS for t in ("depth", "depth/camera_info", "semantic",
                                                    "points")]
    assert cams.run(lambda: all(len(harness.messages(t)) >= 3 for t in wanted), 40.0,
                    {n: 10.0 for n in CAMERAS}), {t: len(harness.messages(t)) for t in wanted}
    reference = TorchPredictor(model_path, device="cpu", num_threads=1)
    for name, (width, height, k, frame_id, base) in CAMERAS.items():
        for topic in ("depth", "depth/camera_info", "semantic", "points"):
            for msg in harness.messages(f"{name}/{topic}"):
                assert msg.header.frame_id == frame_id, (name, topic)
                assert base <= stamp_ns(msg) < base + 1_000_000_000, (name, topic)
                assert (msg.width, msg.height) == (width, height), (name, topic)
        depth_msg = harness.messages(f"{name}/depth")[-1]
        i = (stamp_ns(depth_msg) - base) // 1_000_000
        depth = image_to_array(depth_msg)
        # the depth is the model's for this camera's own frame (not another camera's)
        expected = reference.predict(scene(name, i)).depth
        np.testing.assert_allclose(depth, expected, rtol=1e-3, atol=1e-4)
        info = harness.messages(f"{name}/depth/camera_info")[-1]
        np.testing.assert_allclose(info.k, k.k_matrix().reshape(-1), rtol=1e-9)
        points = harness.messages(f"{name}/points")[-1]
        same = [m for m in harness.messages(f"{name}/depth") if stamp_ns(m) == stamp_ns(points)]
        assert same, name
        z = image_to_array(same[0])
        cloud = pointcloud2_to_array(points)
        us, vs = np.meshgrid(np.arange(width), np.arange(height))
        np.testing.assert_allclose(cloud["z"], z, rtol=1e-6)
        np.testing.assert_allclose(cloud["x"], (us - k.cx) * z / k.fx, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(cloud["y"], (vs - k.cy) * z / k.fy, rtol=1e-4, atol=1e-5)
    reference.close()
    # one model call served several cameras
    assert max(predictor.batches) >= 2, predictor.batches
    snap = node.snapshot()
    assert snap.bad_messages == 0 and snap.processing_errors == 0
    assert sum(size * calls for size, calls in snap.batch_sizes.items()) == len(
        [None for b in predictor.batches for _ in range(b)])


def test_batches_hold_every_camera_and_diagnostics_report_each(harness, model_path):
    predictor = recording_predictor(model_path, delay_s=0.15, output_resolution="model")
    node = start_node(harness, model_path, predictor=predictor, diagnostics_period=0.2)
    record(harness, CAMERAS, topics=("depth",))
    harness.record(DiagnosticArray, "/diagnostics")
    cams = Cameras(harness, CAMERAS)
    assert cams.run(lambda: min(len(harness.messages(f"{n}/depth")) for n in CAMERAS) >= 6,
                    40.0, {n: 15.0 for n in CAMERAS})
    # cameras at 15 Hz, inference ~150 ms: each call finds a frame of every camera waiting
    full = predictor.batches.count(3)
    assert full >= len(predictor.batches) // 2, predictor.batches
    assert harness.wait_for(lambda: set(camera_statuses(harness, node)) == set(CAMERAS), 5.0)
    time.sleep(0.5)  # a diagnostics period after the frames
    statuses = camera_statuses(harness, node)
    for name in CAMERAS:
        level, values = statuses[name]
        assert values["camera"] == name and int(values["frames_processed"]) >= 1
        assert values["image_topic"] == f"{harness.namespace}/{name}/image"
        assert values["camera_info"] == "received" and int(values["bad_messages"]) == 0
        assert float(values["latency_p95_ms"]) >= float(values["latency_p50_ms"]) > 0
        # inference (150 ms) is slower than the cameras (67 ms): drops, counted per camera
        assert int(values["frames_dropped"]) >= 1 and level != DiagnosticStatus.ERROR
    pipeline = [s for m in harness.messages("/diagnostics") for s in m.status
                if s.name == f"{node.get_name()}: pipeline"][-1]
    histogram = {v.key: v.value for v in pipeline.values}["batch_sizes"]
    assert "3:" in histogram, histogram


def test_a_silent_camera_never_delays_the_others_and_resumes(harness, model_path):
    predictor = recording_predictor(model_path, delay_s=0.02, output_resolution="model")
    node = start_node(harness, model_path, predictor=predictor, diagnostics_period=0.2)
    record(harness, CAMERAS, topics=("depth",))
    harness.record(DiagnosticArray, "/diagnostics")
    cams = Cameras(harness, CAMERAS)
    start = time.monotonic()
    assert cams.run(lambda: min(len(harness.messages(f"{n}/depth"))
                                for n in ("front", "left")) >= 20, 40.0,
                    {"front": 15.0, "left": 15.0, "rear": 0})
    elapsed = time.monotonic() - start
    assert not harness.messages("rear/depth")
    # served at the cameras' rate: 20 frames at 15 Hz take ~1.3 s, never a wait for rear
    assert elapsed < 20.0
    assert harness.wait_for(lambda: "rear" in camera_statuses(harness, node), 5.0)
    level, values = camera_statuses(harness, node)["rear"]
    assert level == DiagnosticStatus.WARN and values["frames_received"] == "0"
    assert camera_statuses(harness, node)["front"][0] == DiagnosticStatus.OK
    # the camera comes back: its output resumes
    assert cams.run(lambda: len(harness.messages("rear/depth")) >= 3, 20.0,
                    {"front": 15.0, "left": 15.0, "rear": 15.0})
    assert all(stamp_ns(m) >= CAMERAS["rear"][4] for m in harness.messages("rear/depth"))


def bad_images(name, count):
    """``count`` malformed Images for camera ``name`` (the single-camera node's fuzz cases)."""
    width, height = CAMERAS[name][:2]
    bad = []
    for i in range(count):
        msg = camera_frame(scene(name, 0), 5_000_000_000 + i, frame_id=CAMERAS[name][3])
        kind = i % 6
        if kind == 0:
            msg.encoding = "not_an_encoding"
        elif kind == 1:
            msg.step = 10
        elif kind == 2:
            msg.data = msg.data[:100]
        elif kind == 3:
            msg.width = 0
        elif kind == 4:
            msg.height = 1 << 20
        else:
            msg.encoding, msg.step = "32FC1", width * 4
            msg.height = height * 3 // 4
            msg.data = np.full(width * msg.height, np.nan, np.float32).view(np.uint8).tolist()
        bad.append(msg)
    return bad


def reliable_depth_cameras(harness, model_path, delay_s):
    """A 3-camera node with a ``delay_s`` model on reliable inputs deep enough to lose nothing,
    the cameras' depth recorded, once it subscribes every camera: (node, Cameras)."""
    predictor = recording_predictor(model_path, delay_s=delay_s, output_resolution="model")
    node = start_node(harness, model_path, predictor=predictor, qos_reliability="reliable",
                      qos_depth=100)
    record(harness, CAMERAS, topics=("depth",))
    cams = Cameras(harness, CAMERAS, reliable=True, depth=100)
    assert harness.wait_for(lambda: all(p.get_subscription_count() for p in
                                        cams.image.values()), 10.0)
    return node, cams


def test_a_camera_flooded_with_bad_messages_never_disturbs_the_others(harness, model_path):
    node, cams = reliable_depth_cameras(harness, model_path, delay_s=0.02)
    flood = iter(bad_images("left", 120))
    bad_info = CameraInfo(width=0, height=0)  # a broken camera_info on the same camera

    def flooding():
        for _ in range(3):
            msg = next(flood, None)
            if msg is not None:
                cams.image["left"].publish(msg)
        cams.info["left"].publish(bad_info)
        return False

    done = cams.run(lambda: flooding() or (
        node.camera_snapshots()[1].bad_messages >= 120
        and min(len(harness.messages(f"{n}/depth")) for n in ("front", "rear")) >= 10),
        40.0, {"front": 15.0, "rear": 15.0})
    assert done, [s.bad_messages for s in node.camera_snapshots()]
    assert not harness.messages("left/depth")
    front, left, rear = node.camera_snapshots()
    assert (front.bad_messages, rear.bad_messages) == (0, 0) and left.bad_messages >= 120
    assert front.processing_errors == left.processing_errors == rear.processing_errors == 0
    # the flooded camera works again with a good frame
    assert cams.run(lambda: harness.messages("left/depth"), 15.0, {"left": 10.0})


def test_a_fast_camera_does_not_starve_slow_ones(harness, model_path):
    """30 Hz on front, 5 Hz on left and rear, inference slower than front's frame period:
    every batch serves each camera with a frame pending, so the slow cameras get (almost)
    every frame and front's excess frames are dropped in front's own slot."""
    node, cams = reliable_depth_cameras(harness, model_path, delay_s=0.08)
    cams.run(lambda: False, 6.0, {"front": 30.0, "left": 5.0, "rear": 5.0})
    assert harness.wait_for(lambda: node._worker.idle(), 5.0)
    time.sleep(0.5)
    counts = {n: len(harness.messages(f"{n}/depth")) for n in CAMERAS}
    sent = {n: len(cams.sent[n]) for n in CAMERAS}
    snaps = {s.camera: s for s in node.camera_snapshots()}
    for slow in ("left", "rear"):
        assert counts[slow] >= 0.8 * sent[slow], (counts, sent)
        assert snaps[slow].frames_dropped <= 0.2 * sent[slow], snaps[slow]
    # front is served in every batch too (no starvation the other way round)
    assert counts["front"] >= min(counts["left"], counts["rear"]), (counts, sent)
    assert snaps["front"].frames_dropped > 0  # its excess, in its own slot


def test_per_camera_parameters_remaps_and_checks(harness, model_path):
    """NAME.fallback_fov / NAME.publish_points default to the node-wide values and override
    them per camera; a per-camera remap moves its input (camera_info read beside it) and its
    camera_info output appears beside its images; bad camera lists are refused."""
    with pytest.raises(InvalidParameterValueException, match="not a valid camera name"):
        start_node(harness, model_path, cameras=["front", "left/x"])
    with pytest.raises(InvalidParameterValueException, match="listed twice"):
        start_node(harness, model_path, cameras=["front", "front"])
    with pytest.raises(InvalidParameterValueException, match="fallback_fov"):
        start_node(harness, model_path, cameras=["front"], **{"front.fallback_fov": 500.0})
    ns = harness.namespace
    node = start_node(harness, model_path, cameras=["front", "left"], publish_points=False,
                      output_resolution="model",
                      cli_args=["--ros-args", "-r", f"front/image:={ns}_cam/front/image_raw"],
                      **{"front.fallback_fov": 60.0})
    assert node.get_parameter("front.fallback_fov").value == 60.0
    assert node.get_parameter("left.fallback_fov").value == 0.0
    assert node.get_parameter("front.publish_points").value is False
    front, left = node._channels
    assert front.image_sub.topic_name == f"{ns}_cam/front/image_raw"
    assert front.info_sub.topic_name == f"{ns}_cam/front/camera_info"
    assert front.pubs["camera_info"].topic_name == f"{ns}/front/camera_info"
    assert left.info_sub.topic_name == f"{ns}/left/camera_info"
    assert "camera_info" not in left.pubs  # beside left's images = its input: not published
    node.set_parameters([Parameter("front.publish_points", value=True)])
    harness.record(PointCloud2, "front/points")
    harness.record(PointCloud2, "left/points")
    harness.record(CameraInfo, "front/camera_info")
    harness.record(Image, "left/depth")
    front_pub = harness.publisher(Image, f"{ns}_cam/front/image_raw")
    left_pub = harness.publisher(Image, "left/image")
    counter = itertools.count()

    def send():
        i = next(counter)
        front_pub.publish(camera_frame(scene("front", i), 1_000_000_000 + i,
                                       frame_id="front_optical"))
        left_pub.publish(camera_frame(scene("left", i), 2_000_000_000 + i,
                                      frame_id="left_optical"))

    # front: no camera_info, but its fallback_fov gives clouds and a camera_info beside
    # its images; left: points off (node-wide) and no field of view
    assert harness.wait_for(lambda: harness.messages("front/points")
                            and harness.messages("front/camera_info")
                            and len(harness.messages("left/depth")) >= 3, 30.0,
                            during=send, every=0.1)
    assert not harness.messages("left/points")
    info = harness.messages("front/camera_info")[-1]
    expected = PinholeIntrinsics.from_fov(np.radians(60.0), 96, 72).scaled(MODEL_W, MODEL_H)
    np.testing.assert_allclose(info.k, expected.k_matrix().reshape(-1), rtol=1e-9)
    snaps = {s.camera: s for s in node.camera_snapshots()}
    assert (snaps["front"].camera_info, snaps["left"].camera_info) == ("fallback_fov",
                                                                       "missing")
    # a node-wide change reaches every camera without its own value; front keeps its own
    node.set_parameters([Parameter("fallback_fov", value=45.0)])
    assert left.setting("fallback_fov", node._settings) == 45.0
    assert front.setting("fallback_fov", node._settings) == 60.0
    node.set_parameters([Parameter("publish_points", value=True)])
    assert left.setting("publish_points", node._settings) is True
    node.set_parameters([Parameter("left.publish_points", value=False)])
    node.set_parameters([Parameter("publish_points", value=True)])
    assert left.setting("publish_points", node._settings) is False  # its own value now


@pytest.mark.parametrize("cameras", [[], None])
def test_without_cameras_the_node_is_the_single_camera_node(harness, model_path, cameras):
    """cameras: [] or not set at all: one camera on image, depth ... (the existing node tests
    run that way, untouched)."""
    if cameras is None:
        node = SynergyNode(context=harness.context, namespace=harness.namespace,
                           use_global_arguments=False, parameter_overrides=[
                               Parameter("model", value=str(model_path)),
                               Parameter("backend", value="torch")])
        harness.add_node(node)
    else:
        node = start_node(harness, model_path, cameras=cameras)
    assert node.get_parameter_or("cameras").value in (None, [])
    assert node._settings["cameras"] == []
    assert [c.name for c in node._channels] == [""] and node.camera_snapshots() == []
    assert node._image_sub.topic_name == f"{harness.namespace}/image"
    assert node._pubs["depth"].topic_name == f"{harness.namespace}/depth"
    assert not node.has_parameter(".fallback_fov")


def test_cameras_mounted_differently_get_their_own_height_and_pitch(harness, model_path):
    """NAME.camera_height / NAME.camera_pitch give each camera's ground-plane scale its own
    mounting; a camera left with no height while the scale is on is refused, named."""
    scale = {"scale_correction": "ground_plane", "ground_classes": ["class_0"],
             "ignore_classes": ["none"]}
    with pytest.raises(SynergyError, match="camera 'left'.*camera_height"):
        start_node(harness, model_path, cameras=["front", "left"],
                   **scale, **{"front.camera_height": 0.5})
    node = start_node(harness, model_path, cameras=["front", "left"], camera_height=1.0,
                      **scale, **{"left.camera_height": 0.3, "left.camera_pitch": 25.0})
    front, left = (channel.navigation.config for channel in node._channels)
    assert (front.scale.camera_height, front.pitch_deg) == (1.0, 0.0)
    assert (left.scale.camera_height, left.pitch_deg) == (0.3, 25.0)
    assert left.scale.expected_normal == pytest.approx(
        (0.0, -np.cos(np.radians(25.0)), -np.sin(np.radians(25.0))))
    assert node.get_parameter("front.camera_height").value == 1.0  # the node-wide default
