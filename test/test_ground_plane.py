"""Ground-plane scale: the plane fit and the ScaleEstimator on synthetic scenes of known height."""
import math

import numpy as np
import pytest

from synergy_ros.core.geometry import backproject
from synergy_ros.core.ground_plane import (ScaleConfig, ScaleEstimator, fit_ground_plane,
                                           ground_points)
from synergy_ros.core.obstacles import resolve_class_roles
from synergy_ros.data.synthetic import FLOOR, SYNTHETIC_CLASSES, WALL, build_scene, render_sequence

ROLES = resolve_class_roles(SYNTHETIC_CLASSES)
SEED = 7  # a room; its camera is tilted down by the scene's tilt


@pytest.fixture(scope="module")
def sequence():
    """12 frames (60x80) of a synthetic room: (scene, frames)."""
    return build_scene(SEED), list(render_sequence(SEED, 12, 60, 80))


def _plane_points(distance, count=600, tilt_rad=0.0, seed=0):
    """Points of a floor ``distance`` m below a camera tilted down by ``tilt_rad``."""
    rng = np.random.default_rng(seed)
    world = np.c_[rng.uniform(-2, 2, count), np.full(count, distance), rng.uniform(1, 8, count)]
    c, s = math.cos(tilt_rad), math.sin(tilt_rad)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])  # world -> camera for a downward tilt
    return (world @ rot.T).astype(np.float32)


@pytest.mark.parametrize("factor", [0.7, 1.0, 1.4])
def test_scale_recovers_an_injected_depth_factor(sequence, factor):
    """Depth x factor: after 10 frames the scale is 1/factor within 3 %, the plane as built."""
    scene, frames = sequence
    estimator = ScaleEstimator(ScaleConfig(scene.camera_height), ROLES)
    for frame in frames[:10]:
        state = estimator.update(frame.depth * factor, frame.labels, frame.intrinsics)
    assert state.confident and state.status == "ok"
    assert state.scale == pytest.approx(1.0 / factor, rel=0.03)
    assert state.distance == pytest.approx(scene.camera_height * factor, rel=0.01)
    # the floor's upward normal: (0, -cos t, -sin t) in the optical frame of a camera tilted
    # down by t (synthetic.camera_pose)
    expected = np.array([0.0, -math.cos(scene.tilt), -math.sin(scene.tilt)])
    assert float(np.dot(state.normal, expected)) > math.cos(math.radians(1.0))
    assert state.tilt_deg == pytest.approx(math.degrees(scene.tilt), abs=1.0)
    assert state.inliers >= 100 and state.age_frames == 0


def test_frames_without_ground_keep_the_last_scale(sequence):
    scene, frames = sequence
    estimator = ScaleEstimator(ScaleConfig(scene.camera_height), ROLES)
    for frame in frames[:5]:
        locked = estimator.update(frame.depth * 1.4, frame.labels, frame.intrinsics, 0.1)
    no_floor = np.where(frames[5].labels == FLOOR, WALL, frames[5].labels).astype(np.uint8)
    for age in (1, 2, 3):
        state = estimator.update(frames[5].depth * 1.4, no_floor, frames[5].intrinsics,
                                 0.1 + 0.1 * age)
        assert state.status == "no_ground" and state.confident
        assert state.scale == locked.scale and state.age_frames == age
        assert state.age_s == pytest.approx(0.1 * age)
        assert "keeping the last confident scale" in state.message
    state = estimator.update(frames[6].depth * 1.4, frames[6].labels, frames[6].intrinsics)
    assert state.status == "ok" and state.age_frames == 0


def test_a_camera_height_that_contradicts_the_scene_is_refused(sequence):
    scene, frames = sequence
    estimator = ScaleEstimator(ScaleConfig(scene.camera_height * 10), ROLES)
    for frame in frames[:3]:
        state = estimator.update(frame.depth, frame.labels, frame.intrinsics)
        assert state.status == "out_of_bounds" and not state.confident
        assert state.scale == 1.0 and state.measured == pytest.approx(10, rel=0.02)
        assert "refused" in state.message and "not corrected" in state.message


def test_outliers_are_rejected_until_they_agree():
    estimator = ScaleEstimator(ScaleConfig(1.2, relock_frames=3), ROLES)
    for seed in range(4):
        state = estimator.update_points(_plane_points(1.0, seed=seed))
    assert state.scale == pytest.approx(1.2, rel=1e-3)
    state = estimator.update_points(_plane_points(0.6))  # a one-frame jump: s = 2.0
    assert state.status == "outlier" and state.scale == pytest.approx(1.2, rel=1e-3)
    assert state.measured == pytest.approx(2.0, rel=1e-3)
    estimator.update_points(_plane_points(0.8, seed=1))  # the mounting changed: s = 1.5 ...
    state = estimator.update_points(_plane_points(0.8, seed=2))
    assert state.status == "outlier"
    state = estimator.update_points(_plane_points(0.8, seed=3))  # ... 3 agreeing frames
    assert state.status == "relocked" and state.scale == pytest.approx(1.5, rel=1e-3)


def test_smoothing_weights_new_measurements():
    estimator = ScaleEstimator(ScaleConfig(1.0, smoothing_frames=3), ROLES)
    estimator.update_points(_plane_points(1.0))
    state = estimator.update_points(_plane_points(1 / 1.1))  # within the outlier bound
    assert state.scale == pytest.approx(math.exp(0.5 * math.log(1.1)), rel=1e-4)


def test_plane_fit_is_robust_to_clutter_and_scale_invariant():
    floor = _plane_points(1.3, count=1400, tilt_rad=0.2)
    rng = np.random.default_rng(5)  # 30 % mislabelled points: a box face and scattered noise
    clutter = np.c_[rng.uniform(-1, 1, 600), rng.uniform(-0.5, 1.2, 600), rng.uniform(2, 6, 600)]
    points = np.concatenate([floor, clutter.astype(np.float32)])
    fit = fit_ground_plane(points)
    assert fit.ok and fit.distance == pytest.approx(1.3, rel=0.005)
    assert fit.tilt_deg == pytest.approx(math.degrees(0.2), abs=0.3)
    assert 1400 <= fit.inliers < 1700
    scaled = fit_ground_plane(points * 0.7)
    assert scaled.inliers == fit.inliers and scaled.distance == pytest.approx(0.7 * 1.3, rel=1e-4)


def test_plane_fit_hint_skips_hypotheses_only_while_it_fits():
    """The estimator hands the last frame's plane to the next fit: a hint that still fits
    gives the same plane as RANSAC; one that does not (another scale, too steep) is ignored."""
    floor = _plane_points(1.3, count=1400, tilt_rad=0.2)
    rng = np.random.default_rng(5)
    clutter = np.c_[rng.uniform(-1, 1, 600), rng.uniform(-0.5, 1.2, 600), rng.uniform(2, 6, 600)]
    points = np.concatenate([floor, clutter.astype(np.float32)])
    free = fit_ground_plane(points)
    near = fit_ground_plane(points, hint=(free.normal, free.distance * 1.02))
    assert near.ok and near.distance == pytest.approx(free.distance, rel=1e-4)
    assert near.inliers == free.inliers
    for hint in ((free.normal, free.distance * 2.0),                   # another scale
                 ((0.0, 0.0, -1.0), 1.3), ((0.0, -1.0, 0.0), -1.0)):  # too steep, behind
        fit = fit_ground_plane(points, hint=hint)
        assert fit.ok and fit.distance == pytest.approx(free.distance, rel=1e-4)


def test_plane_fit_refuses_steep_planes_and_too_few_points():
    steep = _plane_points(2.0, tilt_rad=math.radians(60))  # a ramp, 60 deg off the expected
    assert fit_ground_plane(steep).status == "too_few_inliers"
    tilted = fit_ground_plane(steep, max_tilt_deg=70)
    assert tilted.ok and tilted.tilt_deg == pytest.approx(60, abs=0.5)
    assert fit_ground_plane(_plane_points(1.0, count=50)).status == "too_few_points"
    above = _plane_points(-1.0)  # a ceiling: the camera is below it
    assert not fit_ground_plane(above).ok


def test_ground_points_back_project_only_the_ground(sequence):
    _, frames = sequence
    frame = frames[0]
    points = ground_points(frame.depth, frame.labels, frame.intrinsics, ROLES)
    organized = backproject(frame.depth, frame.intrinsics)
    expected = organized[(frame.labels == FLOOR) & (frame.depth > 0)]
    np.testing.assert_allclose(points, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="intrinsics.scaled"):
        ground_points(frame.depth[:, :40], frame.labels[:, :40], frame.intrinsics, ROLES)


@pytest.mark.parametrize("kwargs, match", [
    ({"camera_height": 0.0}, "camera_height must be > 0"),
    ({"camera_height": 1.0, "min_scale": 1.5}, "min_scale"),
    ({"camera_height": 1.0, "max_tilt_deg": 95}, "max_tilt_deg"),
    ({"camera_height": 1.0, "expected_normal": (0, 0, 0)}, "non-zero"),
])
def test_scale_config_names_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScaleConfig(**kwargs)
