"""Metric scale from the ground plane: robust plane fit and a temporally smoothed estimator.

Monocular depth is only as metric as its training domain. A robot knows how high its camera
is mounted; with the ground pixels labelled by the semantic branch, the ground plane gives the
scale (the camera-height scale recovery of monocular odometry):

1. back-project the ground-class pixels with the predicted depth (optical frame, metres as
   predicted);
2. fit a plane robustly (:func:`fit_ground_plane`: RANSAC over hypotheses whose normal is
   within ``max_tilt_deg`` of the expected ground normal, then a least-squares refit on the
   inliers; enough inliers required);
3. the camera-to-plane distance ``d`` (predicted metres) gives ``s = camera_height / d``:
   multiplying the predicted depth by ``s`` puts the ground at the known camera height;
4. :class:`ScaleEstimator` smooths ``s`` over frames, rejects outliers and out-of-bounds
   scales, and keeps the last confident scale (and says so) when a frame has no usable ground.

The inlier threshold is relative to the hypothesis' camera-to-plane distance, so the fit is
scale invariant: depth multiplied by ``k`` gives the same inliers and ``d * k``.

Optical frame (REP 103): x right, y down, z forward, so the ground's normal pointing up
towards the camera is about ``(0, -1, 0)`` for a level camera (pitched down by ``a``, it is
``(0, -cos a, -sin a)``).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import numpy as np

from synergy_ros.core.geometry import PinholeIntrinsics
from synergy_ros.core.obstacles import GROUND, ClassRoles

#: The ground's upward normal in the optical frame of a level camera (y points down).
LEVEL_GROUND_NORMAL = (0.0, -1.0, 0.0)


@dataclasses.dataclass(frozen=True)
class PlaneFit:
    """A ground-plane fit in the optical frame.

    Attributes:
        status: ``ok``, ``too_few_points`` (fewer ground points than needed),
            ``too_few_inliers`` (no hypothesis within the tilt bound with enough inliers).
        normal: (3,) unit normal pointing from the plane to the camera (NaN unless ok).
        distance: camera-to-plane distance in the points' units (metres as predicted; NaN
            unless ok).
        inliers: inliers of the refitted plane.
        points: ground points considered (after subsampling to ``max_points``).
        tilt_deg: angle between ``normal`` and the expected ground normal (degrees).
    """

    status: str
    normal: np.ndarray
    distance: float
    inliers: int
    points: int
    tilt_deg: float

    @property
    def ok(self) -> bool:
        """True when a plane was found."""
        return self.status == "ok"


def ground_normal(pitch_deg: float) -> tuple:
    """The ground's upward normal in the optical frame of a camera pitched down by
    ``pitch_deg`` degrees (negative: up): ``(0, -cos a, -sin a)``; level: ``(0, -1, 0)``."""
    pitch = math.radians(pitch_deg)
    return (0.0, -math.cos(pitch), -math.sin(pitch))


def _unit(vector: Sequence[float]) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64).reshape(3)
    norm = float(np.linalg.norm(vector))
    if not norm > 0 or not math.isfinite(norm):
        raise ValueError(f"expected ground normal must be a non-zero 3-vector, got {vector}")
    return vector / norm


def _failed(status: str, points: int, inliers: int = 0) -> PlaneFit:
    return PlaneFit(status, np.full(3, np.nan), math.nan, inliers, points, math.nan)


@functools.lru_cache(maxsize=8)
def _unit_draws(seed: int, iterations: int) -> np.ndarray:
    """(iterations, 3) uniform [0, 1) draws of ``seed`` (RANSAC triples = draws x count).

    Cached: a generator per frame cost as much as the hypotheses' scoring. Read-only.
    """
    draws = np.random.default_rng(seed).random((iterations, 3))
    draws.setflags(write=False)
    return draws


def _ransac_plane(pts: np.ndarray, expected: np.ndarray, cos_max: float,
                  inlier_fraction: float, iterations: int, score_points: int,
                  seed: int) -> tuple[np.ndarray, float] | None:
    """Best (unit normal, camera distance) of the RANSAC hypotheses within the tilt bound,
    scored on an evenly strided subset of ``pts`` (N, 3); None when no hypothesis qualifies."""
    count = len(pts)
    # repeated indices give degenerate triples, dropped below
    triples = (_unit_draws(int(seed), int(iterations)) * count).astype(np.intp)
    a, b, c = (pts[triples[:, i]].astype(np.float64) for i in range(3))
    u, v = b - a, c - a  # normals = u x v (np.cross costs 4x more for 64 rows)
    normals = np.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
                        u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                        u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], axis=1)
    lengths = np.linalg.norm(normals, axis=1)
    usable = lengths > 1e-12
    normals = normals[usable] / lengths[usable, None]
    normals *= np.where(normals @ expected < 0, -1.0, 1.0)[:, None]  # point up, at the camera
    offsets = -np.sum(normals * a[usable], axis=1)  # n.p + offset = 0; offset = camera distance
    keep = (normals @ expected >= cos_max) & (offsets > 0)
    normals, offsets = normals[keep], offsets[keep]
    if not len(normals):
        return None
    scored = pts
    if count > score_points:
        scored = pts[np.linspace(0, count - 1, int(score_points)).astype(np.intp)]
    # (hypotheses, N) residuals in float32 (a 3-wide float64 product is 10x slower here)
    residuals = np.ascontiguousarray(normals, np.float32) @ scored.T
    residuals += offsets.astype(np.float32)[:, None]
    np.abs(residuals, out=residuals)
    scores = np.count_nonzero(residuals <= (inlier_fraction * offsets).astype(np.float32)[:, None],
                              axis=1)
    best = int(np.argmax(scores))
    return normals[best], float(offsets[best])


def fit_ground_plane(points: np.ndarray, *,
                     expected_normal: Sequence[float] = LEVEL_GROUND_NORMAL,
                     max_tilt_deg: float = 30.0, inlier_fraction: float = 0.05,
                     iterations: int = 64, max_points: int = 2000, min_inliers: int = 100,
                     min_inlier_ratio: float = 0.5, seed: int = 0,
                     score_points: int = 500,
                     hint: tuple[np.ndarray, float] | None = None) -> PlaneFit:
    """Fit the ground plane to back-projected ground points (RANSAC + least-squares refit).

    Args:
        points: (N, 3) points in the optical frame (metres as predicted); rows with NaN are
            dropped.
        expected_normal: the ground's upward normal expected in the optical frame (need not be
            unit); hypotheses tilted more than ``max_tilt_deg`` from it are not considered.
        max_tilt_deg: largest accepted angle between the plane normal and ``expected_normal``.
        inlier_fraction: a point is an inlier when its distance to the plane is at most this
            fraction of the plane's distance to the camera (scale invariant).
        iterations: RANSAC hypotheses (three points each).
        max_points: the fit uses at most this many points (evenly strided subsample).
        min_inliers: fewest inliers (and ground points) for a plane.
        min_inlier_ratio: fewest inliers as a fraction of the points considered.
        seed: RANSAC sampling seed (the fit is deterministic for given points).
        score_points: hypotheses are scored on an evenly strided subset of at most this many
            of the points (scoring is the fit's main cost: hypotheses x points residuals); the
            best one's inliers and the refit use all of them.
        hint: a plane (unit normal, camera distance) expected to fit, e.g. the last frame's:
            when it is within the tilt bound and has enough inliers, the hypotheses are
            skipped and the refit starts from it (a frame-to-frame tracking shortcut).

    Returns:
        :class:`PlaneFit` (``status`` says why when no plane was found).
    """
    expected = _unit(expected_normal)
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    if len(pts) > max_points:
        pts = pts[np.linspace(0, len(pts) - 1, int(max_points)).astype(np.intp)]
    finite = np.isfinite(pts[:, 0] + pts[:, 1] + pts[:, 2])  # NaN / inf propagate
    if not finite.all():
        pts = pts[finite]
    count = len(pts)
    needed = max(int(min_inliers), 3)
    if count < needed:
        return _failed("too_few_points", count)
    cos_max = math.cos(math.radians(max_tilt_deg))

    def inliers_of(normal: np.ndarray, offset: float) -> np.ndarray:
        return np.abs(pts @ normal.astype(np.float32) + np.float32(offset)) <= np.float32(
            inlier_fraction * offset)

    inlier = None
    if hint is not None:  # last frame's plane: skip the hypotheses while it still fits
        normal, offset = np.asarray(hint[0], np.float64).reshape(3), float(hint[1])
        if offset > 0 and normal @ expected >= cos_max:
            inlier = inliers_of(normal, offset)
            if np.count_nonzero(inlier) < max(needed, min_inlier_ratio * count):
                inlier = None
    if inlier is None:
        plane = _ransac_plane(pts, expected, cos_max, inlier_fraction, int(iterations),
                              int(score_points), int(seed))
        if plane is None:
            return _failed("too_few_inliers", count)
        normal, offset = plane
        inlier = inliers_of(normal, offset)
    for _ in range(2):  # least-squares refit on the inliers, then re-select the inliers
        if np.count_nonzero(inlier) < 3:
            break
        chosen = pts[inlier].astype(np.float64)
        centroid = chosen.sum(axis=0) / len(chosen)
        # the normal: the smallest eigenvector of the inliers' scatter matrix about the centroid
        scatter = chosen.T @ chosen - len(chosen) * np.outer(centroid, centroid)
        refit = np.linalg.eigh(scatter)[1][:, 0]
        refit *= -1.0 if refit @ expected < 0 else 1.0
        refit_offset = -float(refit @ centroid)
        if not refit_offset > 0:
            break
        normal, offset = refit, refit_offset
        previous, inlier = inlier, inliers_of(normal, offset)
        if np.array_equal(previous, inlier):  # converged: another refit gives the same plane
            break
    inliers = int(np.count_nonzero(inlier))
    tilt = math.degrees(math.acos(min(1.0, max(-1.0, float(normal @ expected)))))
    if inliers < needed or inliers < min_inlier_ratio * count or tilt > max_tilt_deg:
        return PlaneFit("too_few_inliers", np.full(3, np.nan), math.nan, inliers, count, tilt)
    return PlaneFit("ok", normal, float(offset), inliers, count, tilt)


def ground_points(depth: np.ndarray, labels: np.ndarray, intrinsics: PinholeIntrinsics,
                  roles: ClassRoles) -> np.ndarray:
    """Back-project only the ground-class pixels with valid depth.

    Args:
        depth: (H, W) depth in metres along z; NaN / inf / <= 0 are invalid.
        labels: (H, W) integer class ids registered to ``depth``.
        intrinsics: intrinsics of the H x W image (``scaled`` to the prediction's size).
        roles: which class ids are ground.

    Returns:
        (N, 3) float32 points in the optical frame (metres), row-major pixel order.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2 or np.shape(labels) != depth.shape:
        raise ValueError(f"depth {depth.shape} and labels {np.shape(labels)} must be the same "
                         "(H, W)")
    if (depth.shape[1], depth.shape[0]) != (intrinsics.width, intrinsics.height):
        raise ValueError(f"depth is {depth.shape[1]}x{depth.shape[0]} but intrinsics are for "
                         f"{intrinsics.width}x{intrinsics.height}; use intrinsics.scaled()")
    with np.errstate(invalid="ignore"):
        mask = (roles.roles(labels) == GROUND) & (depth > 0) & np.isfinite(depth)
    v, u = np.nonzero(mask)
    z = depth[v, u]
    out = np.empty((len(z), 3), np.float32)
    out[:, 0] = (u.astype(np.float32) - np.float32(intrinsics.cx)) * z / np.float32(intrinsics.fx)
    out[:, 1] = (v.astype(np.float32) - np.float32(intrinsics.cy)) * z / np.float32(intrinsics.fy)
    out[:, 2] = z
    return out


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    """Settings of :class:`ScaleEstimator`.

    Attributes:
        camera_height: height of the camera's optical centre above the ground, metres (> 0).
        min_scale, max_scale: accepted range of a measured scale ``s`` (depth multiplier); a
            measurement outside it (e.g. a camera_height that contradicts the scene) is
            refused, never applied.
        max_tilt_deg: largest angle between the fitted plane's normal and
            ``expected_normal`` (degrees).
        expected_normal: the ground's upward normal in the optical frame
            (:data:`LEVEL_GROUND_NORMAL` for a level camera).
        smoothing_frames: exponential smoothing of log(s) with weight 2 / (N + 1) per new
            measurement (N = 1: no smoothing). The first accepted measurement is taken as is.
        outlier_ratio: a measurement more than this fraction off the smoothed scale (in
            either direction, in log space) is an outlier and not applied ...
        relock_frames: ... unless this many consecutive outliers agree with each other
            (within ``outlier_ratio`` of their median): then the estimate re-locks to their
            median (the scene or the mounting changed).
        inlier_fraction, iterations, max_points, min_inliers, min_inlier_ratio: the plane fit's
            (:func:`fit_ground_plane`).
    """

    camera_height: float
    min_scale: float = 0.5
    max_scale: float = 2.0
    max_tilt_deg: float = 30.0
    expected_normal: tuple = LEVEL_GROUND_NORMAL
    smoothing_frames: int = 10
    outlier_ratio: float = 0.2
    relock_frames: int = 5
    inlier_fraction: float = 0.05
    iterations: int = 64
    max_points: int = 500  # a plane from 500 points: 0.4 ms a fit, not 0.9
    min_inliers: int = 100
    min_inlier_ratio: float = 0.5

    def __post_init__(self) -> None:
        """Check the values (ValueError naming the setting)."""
        if not (math.isfinite(self.camera_height) and self.camera_height > 0):
            raise ValueError(f"camera_height must be > 0 m (the optical centre's height above "
                             f"the ground), got {self.camera_height}")
        if not 0 < self.min_scale <= 1.0 <= self.max_scale:
            raise ValueError(f"need 0 < min_scale <= 1 <= max_scale, got {self.min_scale} and "
                             f"{self.max_scale}")
        if not 0 < self.max_tilt_deg < 90:
            raise ValueError(f"max_tilt_deg must be in (0, 90), got {self.max_tilt_deg}")
        if int(self.smoothing_frames) < 1 or int(self.relock_frames) < 1:
            raise ValueError("smoothing_frames and relock_frames must be >= 1")
        if not self.outlier_ratio > 0 or not 0 < self.inlier_fraction < 1:
            raise ValueError("outlier_ratio must be > 0 and inlier_fraction in (0, 1)")
        _unit(self.expected_normal)


@dataclasses.dataclass(frozen=True)
class ScaleState:
    """The estimator after a frame (for diagnostics and reports).

    Attributes:
        scale: the depth multiplier to apply now: the smoothed confident scale, or 1.0 while
            there has been none (then ``confident`` is False).
        confident: a confident scale exists (some measurement was accepted).
        status: this frame's outcome: ``ok`` (measurement accepted), ``relocked`` (accepted
            after ``relock_frames`` agreeing outliers), ``no_ground`` (too few ground points),
            ``no_plane`` (too few inliers or too tilted), ``out_of_bounds`` (the measured
            scale is outside [min_scale, max_scale]), ``outlier`` (too far from the smoothed
            scale), ``no_camera_info`` (the node had no intrinsics to back-project with).
        message: one line saying what happened and which scale is applied.
        measured: this frame's measured scale (NaN when no plane).
        inliers, ground_points: the plane fit's inliers and ground points considered.
        normal: (3,) plane normal in the optical frame (NaN when no plane).
        tilt_deg: the plane's tilt against the expected normal (NaN when no plane).
        distance: camera-to-plane distance in predicted metres (NaN when no plane).
        age_frames: frames since the applied scale was last updated (0 = this frame; -1 =
            never).
        age_s: seconds since then when stamps are given (NaN otherwise or never).
    """

    scale: float
    confident: bool
    status: str
    message: str
    measured: float
    inliers: int
    ground_points: int
    normal: tuple
    tilt_deg: float
    distance: float
    age_frames: int
    age_s: float

    @property
    def accepted(self) -> bool:
        """The last measured frame's measurement updated the scale (frames carried between
        fits keep the status of the last fit, with ``age_frames`` counting on)."""
        return self.status in ("ok", "relocked")

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN stays NaN; writers map it to null)."""
        return {**dataclasses.asdict(self), "normal": list(self.normal)}


class ScaleEstimator:
    """Ground-plane scale ``s = camera_height / d`` over a frame sequence (frames in order).

    Call :meth:`update` (depth + labels) or :meth:`update_points` (ground points already
    back-projected, e.g. from the organized cloud) once per frame; multiply every depth output
    by the returned ``state.scale``. Not thread-safe: one estimator per camera stream.
    """

    def __init__(self, config: ScaleConfig, roles: ClassRoles) -> None:
        """Start with no confident scale (scale 1.0) for the ground classes of ``roles``."""
        self.config = config
        self.roles = roles
        self._log_scale: float | None = None
        self._outliers: list[float] = []
        self._frames_since = -1
        self._stamp_of_scale: float | None = None
        self._last_plane: tuple[np.ndarray, float] | None = None  # the fit's frame-to-frame hint
        self.state = self._state("no_ground", "no frame yet", math.nan, None, math.nan)

    def update(self, depth: np.ndarray, labels: np.ndarray, intrinsics: PinholeIntrinsics,
               stamp_s: float | None = None) -> ScaleState:
        """One frame from its predicted depth (H, W) metres, labels (H, W) and intrinsics."""
        return self.update_points(ground_points(depth, labels, intrinsics, self.roles), stamp_s)

    def carry(self, stamp_s: float | None = None) -> ScaleState:
        """A frame that is not measured (the node fits every n-th frame): the scale stays.

        Only the age advances; status and message stay those of the last measured frame.
        """
        if self._frames_since >= 0:
            self._frames_since += 1
        age_s = math.nan
        if stamp_s is not None and self._stamp_of_scale is not None:
            age_s = float(stamp_s) - self._stamp_of_scale
        self.state = dataclasses.replace(self.state, age_frames=self._frames_since, age_s=age_s)
        return self.state

    def unmeasurable(self, status: str, why: str, stamp_s: float | None = None) -> ScaleState:
        """A frame whose ground could not be measured at all (e.g. ``no_camera_info``).

        The last confident scale is kept and the message says ``why``.
        """
        self._last_plane = None
        if self._frames_since >= 0:
            self._frames_since += 1
        return self._keep(status, why, math.nan, None, stamp_s)

    def update_points(self, points: np.ndarray, stamp_s: float | None = None) -> ScaleState:
        """One frame from its ground-class points, (N, 3) optical frame, predicted metres."""
        cfg = self.config
        fit = fit_ground_plane(points, expected_normal=cfg.expected_normal,
                               max_tilt_deg=cfg.max_tilt_deg,
                               inlier_fraction=cfg.inlier_fraction, iterations=cfg.iterations,
                               max_points=cfg.max_points, min_inliers=cfg.min_inliers,
                               min_inlier_ratio=cfg.min_inlier_ratio, hint=self._last_plane)
        self._last_plane = (fit.normal, fit.distance) if fit.ok else None
        if self._frames_since >= 0:
            self._frames_since += 1
        if not fit.ok:
            status = "no_ground" if fit.status == "too_few_points" else "no_plane"
            why = (f"{fit.points} ground points (< {cfg.min_inliers})" if status == "no_ground"
                   else f"no plane within {cfg.max_tilt_deg:g} deg tilt with enough inliers "
                        f"({fit.inliers} of {fit.points})")
            return self._keep(status, why, math.nan, fit, stamp_s)
        measured = cfg.camera_height / fit.distance
        if not cfg.min_scale <= measured <= cfg.max_scale:
            return self._keep("out_of_bounds", f"measured scale {measured:.3g} outside "
                              f"[{cfg.min_scale:g}, {cfg.max_scale:g}] (camera_height "
                              f"{cfg.camera_height:g} m vs plane at {fit.distance:.3g} m "
                              "predicted): refused", measured, fit, stamp_s)
        log_m = math.log(measured)
        status = "ok"
        if self._log_scale is None:
            self._log_scale = log_m
        elif abs(log_m - self._log_scale) > math.log1p(cfg.outlier_ratio):
            self._outliers.append(log_m)
            recent = np.array(self._outliers[-int(cfg.relock_frames):])
            median = float(np.median(recent))
            if (len(recent) < cfg.relock_frames
                    or np.abs(recent - median).max() > math.log1p(cfg.outlier_ratio)):
                return self._keep("outlier", f"measured scale {measured:.3g} is more than "
                                  f"{cfg.outlier_ratio:.0%} off {math.exp(self._log_scale):.3g}",
                                  measured, fit, stamp_s)
            self._log_scale, status = median, "relocked"
        else:
            alpha = 2.0 / (int(cfg.smoothing_frames) + 1)
            self._log_scale += alpha * (log_m - self._log_scale)
        self._outliers.clear()
        self._frames_since = 0
        self._stamp_of_scale = stamp_s
        self.state = self._state(status, f"scale {math.exp(self._log_scale):.4g} (measured "
                                 f"{measured:.4g}, {fit.inliers} inliers)", measured, fit,
                                 stamp_s)
        return self.state

    # -- helpers ----------------------------------------------------------------------------
    def _keep(self, status: str, why: str, measured: float, fit: PlaneFit | None,
              stamp_s: float | None) -> ScaleState:
        if self._log_scale is None:
            message = f"{why}; no confident scale yet: depth not corrected (scale 1)"
        else:
            message = (f"{why}; keeping the last confident scale "
                       f"{math.exp(self._log_scale):.4g} (its age: age_frames)")
        self.state = self._state(status, message, measured, fit, stamp_s)
        return self.state

    def _state(self, status: str, message: str, measured: float, fit: PlaneFit | None,
               stamp_s: float | None) -> ScaleState:
        age_s = math.nan
        if stamp_s is not None and self._stamp_of_scale is not None:
            age_s = float(stamp_s) - self._stamp_of_scale
        scale = 1.0 if self._log_scale is None else math.exp(self._log_scale)
        return ScaleState(
            scale=scale, confident=self._log_scale is not None, status=status, message=message,
            measured=float(measured), inliers=fit.inliers if fit else 0,
            ground_points=fit.points if fit else 0,
            normal=tuple(float(v) for v in (fit.normal if fit else np.full(3, np.nan))),
            tilt_deg=fit.tilt_deg if fit else math.nan,
            distance=fit.distance if fit else math.nan, age_frames=self._frames_since,
            age_s=age_s)
