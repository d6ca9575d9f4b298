"""Synthetic scenes: exact analytic depth and labels, determinism, sequences."""
import math

import numpy as np
import pytest

from synergy_ros.core.geometry import backproject
from synergy_ros.core.labels import get_label_set
from synergy_ros.data.synthetic import (CEILING, FLOOR, SKY, WALL, build_scene, camera_pose,
                                        default_intrinsics, render_scene, render_sequence,
                                        render_view)


def _world_points(frame):
    pts = backproject(frame.depth, frame.intrinsics).reshape(-1, 3).astype(np.float64)
    return pts @ frame.pose[:3, :3].T + frame.pose[:3, 3]


def test_same_seed_same_frame_other_seed_other_frame():
    a, b = render_scene(7, 48, 64), render_scene(7, 48, 64)
    c = render_scene(8, 48, 64)
    assert a.rgb.shape == (48, 64, 3) and a.rgb.dtype == np.uint8
    assert a.depth.shape == (48, 64) and a.depth.dtype == np.float32
    assert a.labels.shape == (48, 64) and a.labels.dtype == np.uint8
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)
    assert np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.depth, c.depth)


@pytest.mark.parametrize("seed", range(6))
def test_indoor_depth_in_range_and_labels_valid(seed):
    frame = render_scene(seed, 60, 80)
    assert (frame.depth > 0.3).all() and (frame.depth <= 10.0).all()
    assert frame.labels.max() < get_label_set("synthetic").num_classes
    assert (frame.labels != SKY).all()


def test_floor_pixels_lie_on_the_floor_plane_and_walls_on_walls():
    """Back-projecting the rendered depth puts floor pixels at y = camera height (exact)."""
    floors_seen = 0
    for seed in range(6):
        scene = build_scene(seed)
        frame = render_scene(seed, 60, 80)
        world = _world_points(frame)
        labels = frame.labels.reshape(-1)
        floor = world[labels == FLOOR]
        floors_seen += bool(floor.size)
        np.testing.assert_allclose(floor[:, 1], scene.camera_height, atol=2e-3 * 10)
        room = scene.primitives[0]
        walls = world[labels == WALL]
        on_wall = np.minimum(np.abs(walls[:, [0, 2]] - room.lo[[0, 2]]),
                             np.abs(walls[:, [0, 2]] - room.hi[[0, 2]])).min(axis=1)
        assert np.percentile(on_wall, 99) < 0.02
        ceiling = world[labels == CEILING]
        if ceiling.size:
            np.testing.assert_allclose(ceiling[:, 1], room.lo[1], atol=0.02)
    assert floors_seen >= 4


def test_floor_depth_matches_closed_form_for_a_level_camera():
    scene = build_scene(3)
    intr = default_intrinsics(80, 60)
    frame = render_view(scene, camera_pose(scene.start, 0.0, 0.0), intr)
    v = np.arange(60)
    for row in range(40, 60):
        cols = np.nonzero(frame.labels[row] == FLOOR)[0]
        if cols.size:
            expected = scene.camera_height * intr.fy / (v[row] - intr.cy)
            np.testing.assert_allclose(frame.depth[row, cols], expected, rtol=1e-4)


def test_depth_is_learnable_far_surfaces_are_darker():
    """Within one material (floor, walls) brightness falls with distance: a depth cue."""
    correlations = []
    for seed in range(6):
        frame = render_scene(seed, 60, 80, noise_std=0)
        grey = frame.rgb.mean(axis=2)
        for cls in (FLOOR, WALL):
            mask = frame.labels == cls
            if mask.sum() > 50:
                correlations.append(np.corrcoef(grey[mask], frame.depth[mask])[0, 1])
    assert np.mean(correlations) < -0.25


def test_street_has_sky_with_invalid_depth():
    frame = render_scene(5, 60, 80, kind="street")
    found = [render_scene(s, 60, 80, kind="street") for s in range(5, 12)]
    sky = [f for f in [frame] + found if (f.labels == SKY).any()]
    assert sky, "some street views must show sky"
    for f in sky:
        assert (f.depth[f.labels == SKY] == 0).all()
        assert f.depth.max() > 10.0


def test_sequence_is_one_scene_with_a_moving_camera():
    frames = list(render_sequence(4, 5, 48, 64, fps=5.0))
    assert len(frames) == 5
    positions = np.array([f.pose[:3, 3] for f in frames])
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    assert (steps > 1e-3).all() and (steps < 0.5).all()
    again = list(render_sequence(4, 5, 48, 64, fps=5.0))
    assert all(np.array_equal(x.rgb, y.rgb) for x, y in zip(frames, again))
    # every frame's floor lies on the same plane: one scene
    height = build_scene(4).camera_height
    for frame in frames:
        world = _world_points(frame)[frame.labels.reshape(-1) == FLOOR]
        np.testing.assert_allclose(world[:, 1], height, atol=0.02)


def test_any_size_and_explicit_intrinsics():
    frame = render_scene(2, 7, 13)
    assert frame.rgb.shape == (7, 13, 3)
    intr = default_intrinsics(32, 24, hfov_deg=90.0)
    frame = render_scene(2, 24, 32, intrinsics=intr)
    assert frame.intrinsics == intr
    assert math.isclose(intr.fx, 16.0 / math.tan(math.radians(45.0)))
    with pytest.raises(ValueError):
        render_scene(2, 0, 10)
    with pytest.raises(ValueError):
        render_scene(2, 10, 10, kind="forest")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_synthetic_bag_reads_back_as_the_rendered_frames(tmp_path, storage):
    from synergy_ros.bags import bagio
    from synergy_ros.data.synthetic import BAG_TOPICS, DEFAULT_BAG_START_NS, write_synthetic_bag
    from synergy_ros.ros.conversions import camera_info_to_intrinsics, image_to_array

    path = tmp_path / "synthetic_bag"
    summary = write_synthetic_bag(path, 3, 24, 32, seed=11, fps=5.0, storage=storage)
    assert summary["frames"] == 3 and [p.name for p in tmp_path.iterdir()] == ["synthetic_bag"]
    assert bagio.bag_topics(path) == {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        "/camera/depth_gt": "sensor_msgs/msg/Image",
        "/camera/semantic_gt": "sensor_msgs/msg/Image"}
    frames = list(render_sequence(11, 3, 24, 32, fps=5.0))
    by_topic = {}
    for item in bagio.iter_messages(path):
        msg = item.message
        assert msg.header.frame_id == "camera_optical_frame"
        assert msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec == item.log_time_ns
        by_topic.setdefault(item.topic, []).append((item.log_time_ns, msg))
    for index, frame in enumerate(frames):
        stamp = DEFAULT_BAG_START_NS + index * 200_000_000
        image = by_topic[BAG_TOPICS["image"]][index]
        depth = by_topic[BAG_TOPICS["depth"]][index]
        labels = by_topic[BAG_TOPICS["labels"]][index]
        info = by_topic[BAG_TOPICS["camera_info"]][index]
        assert image[0] == depth[0] == labels[0] == info[0] == stamp
        assert image[1].encoding == "rgb8" and depth[1].encoding == "32FC1"
        assert labels[1].encoding == "mono8"
        assert np.array_equal(image_to_array(image[1]), frame.rgb)
        assert np.array_equal(image_to_array(depth[1]), frame.depth)
        assert np.array_equal(image_to_array(labels[1]), frame.labels)
        assert camera_info_to_intrinsics(info[1]) == frame.intrinsics
        assert info[1].distortion_model == "plumb_bob" and list(info[1].d) == [0.0] * 5


def test_synthetic_bag_marks_sky_depth_nan_and_refuses_to_overwrite(tmp_path):
    from synergy_ros.bags import bagio
    from synergy_ros.core.errors import SynergyError
    from synergy_ros.data.synthetic import write_synthetic_bag
    from synergy_ros.ros.conversions import image_to_array

    path = tmp_path / "street"
    write_synthetic_bag(path, 2, 24, 32, seed=3, kind="street", speed=2.0)
    frames = list(render_sequence(3, 2, 24, 32, kind="street", speed=2.0))
    depths = [image_to_array(m.message) for m in bagio.iter_messages(path, ["/camera/depth_gt"])]
    for frame, depth in zip(frames, depths):
        assert np.array_equal(np.isnan(depth), frame.depth == 0)
        assert np.isnan(depth).any()
    with pytest.raises(SynergyError, match="already exists"):
        write_synthetic_bag(path, 2, 24, 32)


def test_synthetic_dataset_splits_and_contract():
    import torch

    from synergy_ros.core.errors import SynergyError
    from synergy_ros.data.synthetic import SyntheticDataset
    from synergy_ros.data.transforms import build_transform

    train = SyntheticDataset("train", 4, 24, 32)
    val = SyntheticDataset("val", 4, 24, 32)
    assert len(train) == 4
    assert {train.scene_seed(i) for i in range(4)}.isdisjoint(val.scene_seed(i) for i in range(4))
    sample = train[1]
    assert sample["image"].shape == (3, 24, 32) and sample["image"].dtype == torch.float32
    assert sample["depth"].shape == (1, 24, 32) and (sample["depth"] > 0).all()
    assert sample["labels"].dtype == torch.int64 and int(sample["labels"].max()) < 6
    assert sample["has_depth"] and sample["has_labels"]
    assert not torch.equal(train[0]["image"], val[0]["image"])
    augmented = SyntheticDataset("train", 4, 24, 32, transform=build_transform((16, 24), True))
    first = augmented[2]["image"]
    assert first.shape == (3, 16, 24) and torch.equal(first, augmented[2]["image"])
    augmented.set_epoch(1)
    assert not torch.equal(first, augmented[2]["image"])
    with pytest.raises(IndexError):
        train[4]
    for bad in ({"split": "dev"}, {"num_samples": 0}, {"kind": "forest"}):
        with pytest.raises(SynergyError):
            SyntheticDataset(**{"split": "train", "num_samples": 2, **bad})
