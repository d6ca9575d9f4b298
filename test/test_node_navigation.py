"""The node's obstacle / ground clouds and ground-plane scale correction over real DDS (issue 15).

The "model" is a stand-in predictor that returns the synthetic scene's ground-truth depth times
a known factor (a scale error as another camera height or lens would give) and its
ground-truth labels: the scene knows its camera height and classes, so the corrected depth and
the obstacle selection can be checked exactly.
"""
import math

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from synergy_ros.core.errors import SynergyError  # noqa: E402
from synergy_ros.core.labels import get_label_set  # noqa: E402
from synergy_ros.core.modelfile import ModelMeta  # noqa: E402
from synergy_ros.data.synthetic import (BOX, CEILING, FLOOR, SKY, build_scene,  # noqa: E402
                                        render_sequence)
from synergy_ros.ros.conversions import image_to_array, intrinsics_to_camera_info  # noqa: E402
from synergy_ros.ros.conversions import stamp_ns  # noqa: E402
from synergy_ros.ros.node import SynergyNode  # noqa: E402
from synergy_ros.ros.pointcloud import pointcloud2_to_array  # noqa: E402
from synergy_ros.ros.testing import camera_frame  # noqa: E402
from synergy_ros.runtime.prediction import Prediction  # noqa: E402

pytestmark = pytest.mark.ros
SEED = 7  # a room with floor, walls, ceiling, boxes and cylinders in view
WIDTH, HEIGHT = 96, 72
FRAMES = 6


class TruthPredictor:
    """Stand-in predictor: ground-truth depth x ``factor`` and ground-truth labels of the
    synthetic frame whose image it is given (looked up by the image bytes)."""

    backend_name = "ground-truth"

    def __init__(self, frames, factor: float) -> None:
        labels = get_label_set("synthetic")
        self.meta = ModelMeta(network={}, class_names=list(labels.class_names),
                              palette=list(labels.palette), input_size=(HEIGHT, WIDTH))
        self.input_size = self.meta.input_size
        self.factor = np.float32(factor)
        self._truth = {frame.rgb.tobytes(): frame for frame in frames}

    def predict(self, rgb):
        frame = self._truth[np.ascontiguousarray(rgb).tobytes()]
        depth = np.where(frame.depth > 0, frame.depth * self.factor, np.float32(np.nan))
        return Prediction(depth.astype(np.float32), frame.labels.copy())

    def describe(self) -> dict:
        return {"model": "synthetic ground truth", "device": "cpu"}

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def frames():
    return list(render_sequence(SEED, FRAMES, height=HEIGHT, width=WIDTH, fps=2.0))


def start_node(harness, predictor, **overrides):
    node = SynergyNode(predictor=predictor, context=harness.context,
                       namespace=harness.namespace, use_global_arguments=False,
                       parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    harness.add_node(node)
    return node


def stream(harness, frames, condition, timeout=30.0):
    """Publish the frames (camera_info first) in a loop until ``condition()``; return
    {stamp_ns: frame} of what was sent."""
    image_pub = harness.publisher(Image, "image")
    info_pub = harness.publisher(CameraInfo, "camera_info")
    sent = {}

    def send():
        i = len(sent)
        frame = frames[i % len(frames)]
        msg = camera_frame(frame.rgb, 1_000_000_000 + i * 10_000_000)
        info_pub.publish(intrinsics_to_camera_info(frame.intrinsics, msg.header))
        image_pub.publish(msg)
        sent[stamp_ns(msg)] = frame

    assert harness.wait_for(condition, timeout, during=send, every=0.15), "no output in time"
    return sent


def by_stamp(harness, topic):
    return {stamp_ns(m): m for m in harness.messages(topic)}


@pytest.mark.parametrize("obstacle_decimation,max_range", [(1, 20.0), (2, 4.0)])
def test_obstacles_are_the_organized_clouds_non_ground_points(harness, frames,
                                                              obstacle_decimation, max_range):
    start_node(harness, TruthPredictor(frames, 1.0), publish_obstacles=True,
               publish_ground=True, obstacle_decimation=obstacle_decimation,
               max_range=max_range)
    for topic in ("points", "obstacles", "ground"):
        harness.record(PointCloud2, topic)

    def complete():  # some stamp has all three clouds
        stamps = [set(by_stamp(harness, t)) for t in ("points", "obstacles", "ground")]
        return len(set.intersection(*stamps)) >= 3

    sent = stream(harness, frames, complete)
    clouds = [by_stamp(harness, t) for t in ("points", "obstacles", "ground")]
    checked = 0
    for stamp in set.intersection(*(set(c) for c in clouds)):
        points, obstacles, ground = (c[stamp] for c in clouds)
        for dense in (obstacles, ground):
            assert dense.is_dense and dense.height == 1
            assert dense.header.frame_id == points.header.frame_id == "camera_optical_frame"
            assert (dense.point_step, [f.name for f in dense.fields]) == (
                points.point_step, [f.name for f in points.fields])
        organized = pointcloud2_to_array(points)[::obstacle_decimation, ::obstacle_decimation]
        assert organized.shape == ((HEIGHT + obstacle_decimation - 1) // obstacle_decimation,
                                   (WIDTH + obstacle_decimation - 1) // obstacle_decimation)
        valid = np.isfinite(organized["z"]) & (organized["z"] <= max_range)
        label = organized["label"]
        obstacle_mask = valid & ~np.isin(label, [FLOOR, CEILING, SKY])
        expected_obstacles, expected_ground = organized[obstacle_mask], organized[
            valid & (label == FLOOR)]
        words = np.frombuffer(points.data, np.uint32).reshape(HEIGHT, WIDTH, 8)[
            ::obstacle_decimation, ::obstacle_decimation]
        got_obstacles = pointcloud2_to_array(obstacles)[0]
        got_ground = pointcloud2_to_array(ground)[0]
        assert not np.isin(got_obstacles["label"], [FLOOR, CEILING, SKY]).any()
        assert (got_ground["label"] == FLOOR).all()
        assert len(got_obstacles) == len(expected_obstacles) > 50
        assert len(got_ground) == len(expected_ground) > 50
        assert np.isin(BOX, got_obstacles["label"])
        for dense, mask in ((obstacles, obstacle_mask), (ground, valid & (label == FLOOR))):
            # byte copies of the organized cloud's records (padding included)
            np.testing.assert_array_equal(np.frombuffer(dense.data, np.uint32).reshape(-1, 8),
                                          words[mask])
        for got in (got_obstacles, got_ground):
            assert np.isfinite(got["z"]).all() and got["z"].max() <= max_range
        truth = sent[stamp].depth[::obstacle_decimation, ::obstacle_decimation]
        in_range = (truth > 0) & (truth <= max_range)
        assert valid.sum() == in_range.sum()
        checked += 1
    assert checked >= 3


def test_publish_obstacles_false_builds_no_obstacle_cloud(harness, frames):
    start_node(harness, TruthPredictor(frames, 1.0))
    harness.record(PointCloud2, "points")
    harness.record(PointCloud2, "obstacles")
    harness.record(PointCloud2, "ground")
    stream(harness, frames, lambda: len(harness.messages("points")) >= 4)
    assert harness.messages("obstacles") == [] and harness.messages("ground") == []


def scale_values(harness):
    for message in reversed(harness.messages("/diagnostics")):
        for status in message.status:
            values = {kv.key: kv.value for kv in status.values}
            if values.get("scale.ground_points", "0") != "0":  # a frame was measured
                return status, values
    return None, {}


@pytest.mark.parametrize("factor,height_error", [(0.7, 1.0), (1.4, 1.0), (1.0, 10.0)])
def test_ground_plane_scale_corrects_depth_or_refuses_a_wrong_height(harness, frames, factor,
                                                                     height_error):
    """x0.7 / x1.4 injected: depth comes back within 3 % of the truth after 10 frames, the
    diagnostics show scale ~ 1 / factor. A tenfold camera_height is refused, not applied."""
    camera_height = build_scene(SEED).camera_height * height_error
    start_node(harness, TruthPredictor(frames, factor), scale_correction="ground_plane",
               camera_height=camera_height, publish_obstacles=True, diagnostics_period=0.2)
    harness.record(Image, "depth")
    harness.record(PointCloud2, "obstacles")
    harness.record(DiagnosticArray, "/diagnostics")
    sent = stream(harness, frames, lambda: len(harness.messages("depth")) >= 12
                  and scale_values(harness)[0] is not None)
    depths = harness.messages("depth")
    status, values = scale_values(harness)
    for msg in depths[10:]:
        truth = sent[stamp_ns(msg)].depth
        depth = image_to_array(msg)
        valid = truth > 0
        assert np.isfinite(depth[valid]).all()
        ratio = np.median(depth[valid] / truth[valid])
        if height_error == 1.0:
            assert ratio == pytest.approx(1.0, rel=0.03)
            assert np.mean(np.abs(depth[valid] / truth[valid] - 1)) < 0.03
        else:  # refused: the raw (uncorrected) depth is published
            assert ratio == pytest.approx(factor, rel=1e-5)
    if height_error == 1.0:
        assert values["scale.status"] == "ok" and values["scale.confident"] == "true"
        assert float(values["scale"]) == pytest.approx(1.0 / factor, rel=0.03)
        assert int(values["scale.inliers"]) >= 100
        normal = [float(v) for v in values["scale.plane_normal"].split()]
        assert normal[1] < -0.9  # up, towards the camera (optical y points down)
        # the obstacle cloud is built from the corrected depth too
        last = harness.messages("obstacles")[-1]
        got = pointcloud2_to_array(last)[0]
        truth = sent[stamp_ns(last)].depth
        assert np.median(got["z"]) == pytest.approx(np.median(
            truth[(truth > 0) & ~np.isin(sent[stamp_ns(last)].labels, [FLOOR, CEILING, SKY])]),
            rel=0.05)
    else:
        assert values["scale.status"] == "out_of_bounds" and values["scale.confident"] == "false"
        assert float(values["scale"]) == 1.0 and "refused" in values["scale.message"]
        assert status.level == b"\x01"  # WARN: no confident scale
    assert math.isfinite(float(values["scale.age_s"])) or height_error != 1.0


@pytest.mark.parametrize("overrides,match", [
    ({"scale_correction": "ground_plane"}, "camera_height"),
    ({"scale_correction": "ground_plane", "camera_height": 1.2, "min_scale": 1.0,
      "max_scale": 1.0, "max_ground_tilt": 95.0}, "max_ground_tilt"),
    ({"publish_obstacles": True, "ground_classes": ["floor", "carpet"]},
     "unknown class name 'carpet'; the model's classes are: floor, wall, ceiling"),
    ({"publish_obstacles": True, "ignore_classes": ["default", "sky"]}, "not a mix"),
])
def test_bad_navigation_settings_fail_at_start_with_the_reason(harness, frames, overrides,
                                                               match):
    from rclpy.exceptions import InvalidParameterValueException

    with pytest.raises((SynergyError, InvalidParameterValueException), match=match):
        start_node(harness, TruthPredictor(frames, 1.0), **overrides)


def test_synergy_node_exits_1_naming_camera_height_before_loading_a_model(capsys, tmp_path):
    """The command line: scale correction without camera_height stops the node with one
    line saying what to set, before any model file is opened (it does not exist here)."""
    from synergy_ros.ros.node import main

    code = main(["synergy_node", "--ros-args", "-p", "scale_correction:=ground_plane",
                 "-p", f"model:={tmp_path / 'absent.pt'}"])
    err = capsys.readouterr().err
    assert code == 1 and "camera_height" in err and "absent.pt" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_empty_class_list_in_a_params_file_means_no_class(harness, frames, tmp_path):
    """An empty YAML list reaches rclpy as an unset value: `ignore_classes: []` in a params
    file means no ignored class (as ['none']), not a TypeError at start."""
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    ignore_classes: []\n"
                      "    publish_obstacles: true\n")
    node = SynergyNode(predictor=TruthPredictor(frames, 1.0), context=harness.context,
                       namespace=harness.namespace, use_global_arguments=False,
                       cli_args=["--ros-args", "--params-file", str(params)])
    harness.add_node(node)
    assert node._settings["ignore_classes"] == []
    assert node._navigation.roles.ignored == ()
    assert node._navigation.roles.ground == ("floor",)


def test_an_empty_class_list_given_from_python_means_no_class(harness, frames):
    """An empty list as a Python override (a launch file's dict) reaches rclpy as a
    BYTE_ARRAY: `ground_classes: []` means no ground class, not a type error at start."""
    node = start_node(harness, TruthPredictor(frames, 1.0), ground_classes=[],
                      publish_obstacles=True)
    assert node._settings["ground_classes"] == []
    assert node._navigation.roles.ground == ()
    assert node._navigation.roles.ignored == ("ceiling", "sky")
