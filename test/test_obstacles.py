"""Obstacle / ground selection: class roles by name, and the split of real organized clouds."""
from pathlib import Path

import numpy as np
import pytest

from synergy_ros.bags.bagio import iter_messages
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import LABEL_SET_NAMES, get_label_set
from synergy_ros.core.obstacles import (DEFAULT_CLASS_ROLES, GROUND, IGNORED, OBSTACLE,
                                        resolve_class_roles, role_indices, split_cloud)
from synergy_ros.data.synthetic import SYNTHETIC_CLASSES, write_synthetic_bag
from synergy_ros.evaluation.evaluator import EvaluateOptions, evaluate
from synergy_ros.ros.pointcloud import pointcloud2_to_array

DEMO_MODEL = Path(__file__).resolve().parents[1] / "models" / "synergy_demo_r18.pt"
FRAMES = 4


@pytest.mark.parametrize("label_set, ground, ignored", [
    ("synthetic", ("floor",), ("ceiling", "sky")),
    ("nyu40", ("floor", "floor mat"), ("ceiling",)),
    ("cityscapes19", ("road", "sidewalk", "terrain"), ("sky",)),
    ("cityscapes21", ("road", "sidewalk", "terrain"), ("sky",)),
])
def test_default_roles_per_label_set(label_set, ground, ignored):
    names = get_label_set(label_set).class_names
    roles = resolve_class_roles(names)
    assert roles.ground == ground and roles.ignored == ignored
    assert [names[i] for i in roles.ground_ids] == list(ground)
    assert sorted(names[i] for i in roles.ignored_ids) == sorted(ignored)
    others = [i for i, name in enumerate(names) if name not in ground + ignored]
    assert (roles.table[others] == OBSTACLE).all()
    assert (roles.table[len(names):] == OBSTACLE).all()  # unknown ids stay obstacles


def test_every_label_set_has_defaults():
    assert set(DEFAULT_CLASS_ROLES) == set(LABEL_SET_NAMES)


def test_explicit_roles_and_bad_names():
    roles = resolve_class_roles(SYNTHETIC_CLASSES, ground=["floor", "box"], ignored=[])
    assert roles.ground == ("floor", "box") and roles.ignored == ()
    with pytest.raises(SynergyError, match=r"unknown class name 'flor'.*floor, wall"):
        resolve_class_roles(SYNTHETIC_CLASSES, ground=["flor"])
    with pytest.raises(SynergyError, match="'sky' is both a ground and an ignored class"):
        resolve_class_roles(SYNTHETIC_CLASSES, ground=["floor", "sky"])
    with pytest.raises(SynergyError, match="none of the built-in label sets.*explicitly"):
        resolve_class_roles(["grass", "tree"])
    custom = resolve_class_roles(["grass", "tree"], ground=["grass"], ignored=[])
    assert custom.roles(np.array([[0, 1, 7]], np.uint16)).tolist() == [[GROUND, OBSTACLE,
                                                                        OBSTACLE]]


CLOUD_TOPICS = ("/synergy/points", "/synergy/obstacles", "/synergy/ground")


@pytest.fixture(scope="module")
def recorded_clouds(tmp_path_factory):
    """topic -> the clouds `synergy evaluate --output-bag` recorded for a synthetic bag (what
    the node publishes: organized points, obstacles, ground), read back from the rosbag2."""
    root = tmp_path_factory.mktemp("obstacles")
    bag = root / "scene"
    write_synthetic_bag(bag, FRAMES, height=60, width=80, seed=7)
    evaluate(EvaluateOptions(
        bag=bag, gt_topic="/camera/depth_gt", image_topic="/camera/image_raw",
        camera_info_topic="/camera/camera_info", model=str(DEMO_MODEL), backend="torch",
        device="cpu", output_bag=root / "out", progress=False))
    return {topic: [m.message for m in iter_messages(root / "out", [topic])]
            for topic in CLOUD_TOPICS}


@pytest.fixture(scope="module")
def predicted_clouds(recorded_clouds):
    """The organized /synergy/points clouds of :func:`recorded_clouds`."""
    return recorded_clouds["/synergy/points"]


def test_output_bag_records_the_obstacle_and_ground_clouds_of_the_organized_one(
        recorded_clouds):
    """The recorded obstacles / ground clouds are the organized cloud's own records at the
    obstacle / ground points, byte for byte, dense, with the same stamps."""
    roles = resolve_class_roles(SYNTHETIC_CLASSES)
    assert [len(recorded_clouds[t]) for t in CLOUD_TOPICS] == [FRAMES] * 3
    for points, obstacles, ground in zip(*(recorded_clouds[t] for t in CLOUD_TOPICS)):
        cloud, xyz, records = _organized(points)
        split = split_cloud(xyz, cloud["label"], roles, payload=[records], with_ground=True)
        for msg, payload in ((obstacles, split.obstacle_payload[0]),
                             (ground, split.ground_payload[0])):
            assert (msg.height, msg.width, msg.is_dense) == (1, len(payload), True)
            assert msg.header.stamp == points.header.stamp
            assert bytes(msg.data) == payload.tobytes()
        assert obstacles.width > 0 and ground.width > 0


def _organized(msg):
    cloud = pointcloud2_to_array(msg)
    points = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1)
    records = np.frombuffer(bytes(msg.data), np.uint8)
    records = records.reshape(msg.height, msg.width, msg.point_step)
    return cloud, points, records


def test_obstacle_cloud_of_recorded_predictions(predicted_clouds):
    """No obstacle point is ground or ignored; every valid non-ground point is there."""
    assert len(predicted_clouds) == FRAMES
    roles = resolve_class_roles(SYNTHETIC_CLASSES)
    floor, ceiling, sky = (SYNTHETIC_CLASSES.index(n) for n in ("floor", "ceiling", "sky"))
    seen = set()
    for msg in predicted_clouds:
        cloud, points, records = _organized(msg)
        labels = cloud["label"]
        split = split_cloud(points, labels, roles, payload=[records], with_ground=True)
        obstacle_labels = split.obstacle_payload[0][:, 20:24].copy().view("<u4")[:, 0]
        seen.update(np.unique(labels).tolist())
        assert not np.isin(obstacle_labels, [floor, ceiling, sky]).any()
        assert np.isfinite(split.obstacles).all() and (split.obstacles[:, 2] > 0).all()
        valid = np.isfinite(cloud["z"])
        expected = np.count_nonzero(valid & ~np.isin(labels, [floor, ceiling, sky]))
        assert len(split.obstacles) == expected > 0
        assert len(split.ground) == np.count_nonzero(valid & (labels == floor)) > 0
        # the selected records are the organized cloud's own points, byte for byte
        np.testing.assert_array_equal(split.obstacle_payload[0][:, :12].copy().view("<f4"),
                                      split.obstacles)
        np.testing.assert_array_equal(split.ground_payload[0][:, 20:24].copy().view("<u4"),
                                      np.full((len(split.ground), 1), floor, np.uint32))
    assert {floor, 1} <= seen  # the model labelled floor and walls in this scene


def test_split_range_and_decimation(predicted_clouds):
    roles = resolve_class_roles(SYNTHETIC_CLASSES)
    cloud, points, _ = _organized(predicted_clouds[0])
    labels = cloud["label"]
    near = split_cloud(points, labels, roles, max_range=3.0)
    assert (near.obstacles[:, 2] <= 3.0).all()
    everything = split_cloud(points, labels, roles)
    assert len(near.obstacles) == np.count_nonzero(everything.obstacles[:, 2] <= 3.0)
    half = split_cloud(points, labels, roles, decimation=2)
    assert half.grid_shape == points[::2, ::2].shape[:2]
    np.testing.assert_array_equal(half.obstacles, split_cloud(points[::2, ::2], labels[::2, ::2],
                                                              roles).obstacles)
    assert half.ground is None
    flat_index = np.unravel_index(everything.obstacle_index, everything.grid_shape)
    np.testing.assert_array_equal(points[flat_index], everything.obstacles)


def test_ignored_and_invalid_points_are_in_neither_cloud():
    roles = resolve_class_roles(SYNTHETIC_CLASSES)
    points = np.ones((2, 3, 3), np.float32)
    points[0, 0] = np.nan                     # invalid depth
    points[0, 1, 2] = -1.0                    # behind the camera
    labels = np.array([[1, 1, 2], [0, 5, 3]], np.uint8)  # wall wall ceiling / floor sky box
    split = split_cloud(points, labels, roles, with_ground=True)
    assert split.obstacle_index.tolist() == [5]  # the box; the walls are invalid
    assert split.ground_index.tolist() == [3]
    assert roles.roles(labels)[0, 2] == IGNORED


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": np.zeros((2, 2), np.uint8)}, "labels have shape"),
    ({"decimation": 0}, "decimation"),
    ({"max_range": 0.0}, "max_range"),
    ({"payload": [np.zeros((3, 3))]}, "payload 0"),
    ({"labels": np.zeros((2, 3), np.float32)}, "integer class ids"),
])
def test_split_bad_input(kwargs, match):
    roles = resolve_class_roles(SYNTHETIC_CLASSES)
    args = {"labels": np.zeros((2, 3), np.uint8), **kwargs}
    with pytest.raises(ValueError, match=match):
        split_cloud(np.zeros((2, 3, 3), np.float32), args.pop("labels"), roles, **args)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_role_mask_and_indices_follow_the_role_table(dtype):
    roles = resolve_class_roles(get_label_set("synthetic").class_names, None, None)
    labels = (np.arange(300).reshape(15, 20) % (256 if dtype == np.uint8 else 300)).astype(dtype)
    for role in (OBSTACLE, GROUND, IGNORED):
        np.testing.assert_array_equal(roles.role_mask(labels, role), roles.roles(labels) == role)
    valid = np.ones(labels.shape, bool)
    valid[0] = False
    obstacle, ground = role_indices(valid, labels, roles, with_ground=True)
    np.testing.assert_array_equal(obstacle, np.flatnonzero(valid & (roles.roles(labels) == 0)))
    np.testing.assert_array_equal(ground, np.flatnonzero(valid & (roles.roles(labels) == 1)))
    assert role_indices(valid, labels, roles)[1] is None
