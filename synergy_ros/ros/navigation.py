"""The node's navigation outputs: obstacle / ground clouds and the ground-plane depth scale.

Depth and semantics together give a navigation stack what neither gives alone (issue 15):

- ``obstacles``: every valid point within ``max_range`` whose class is neither ground nor
  ignored, as a dense PointCloud2 taken from the organized cloud's own records
  (:meth:`NavigationOutputs.cloud_indices`, no second back-projection); ``ground``
  the ground-class points;
- metric scale from the ground plane (``scale_correction: ground_plane``): the ground points
  give the camera-to-floor distance ``d`` in predicted metres, ``s = camera_height / d``
  (:class:`synergy_ros.core.ground_plane.ScaleEstimator`), and every depth output is
  multiplied by the current confident ``s`` before it is built.

:class:`NavigationOutputs` holds the class roles and the estimator for one camera stream; the
one output builder, :func:`synergy_ros.ros.outputs.prediction_messages`, calls it per frame.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.geometry import PinholeIntrinsics, decimated_intrinsics
from synergy_ros.core.ground_plane import (ScaleConfig, ScaleEstimator, ScaleState,
                                           ground_normal, ground_points)
from synergy_ros.core.obstacles import ClassRoles, resolve_class_roles, role_indices

#: ``ground_classes`` / ``ignore_classes`` value meaning "the default of the model's label set".
DEFAULT_CLASSES = "default"
#: ``ground_classes`` / ``ignore_classes`` value meaning "no class".
NO_CLASSES = "none"
SCALE_CORRECTIONS = ("off", "ground_plane")


def parse_class_names(name: str, values: Sequence[str]) -> tuple[str, ...] | None:
    """A ``ground_classes`` / ``ignore_classes`` parameter value as class names.

    ``['default']`` gives None (the model's label set default, see
    :data:`synergy_ros.core.obstacles.DEFAULT_CLASS_ROLES`); ``['none']`` or an empty list
    gives ``()``; anything else the names themselves (checked against the model later).

    Raises:
        SynergyError: a sentinel mixed with names, or an empty name.
    """
    names = [str(value).strip() for value in values]
    if names == [DEFAULT_CLASSES]:
        return None
    if names in ([], [NO_CLASSES]):
        return ()
    if DEFAULT_CLASSES in names or NO_CLASSES in names or "" in names:
        raise SynergyError(f"{name}: give ['{DEFAULT_CLASSES}'] (the label set's default), "
                           f"['{NO_CLASSES}'] or class names, not a mix or empty names; got "
                           f"{list(values)}")
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class NavigationConfig:
    """The fixed (restart to change) navigation settings of a node.

    Attributes:
        ground_classes, ignore_classes: class names, or None for the label set's default.
        scale: the ground-plane scale settings, or None when ``scale_correction`` is off.
        needs_roles: the class roles must resolve at start (an output or the scale uses them).
        pitch_deg: how far the camera looks down (``camera_pitch``, degrees; in ``scale``'s
            expected ground normal).
        fit_interval: the plane is fitted on every n-th frame (the frames between apply the
            current scale): the fit's cost per frame divided by n, the scale being smoothed
            over several measurements anyway.
    """

    ground_classes: tuple | None
    ignore_classes: tuple | None
    scale: ScaleConfig | None
    needs_roles: bool
    fit_interval: int = 1
    pitch_deg: float = 0.0

    @classmethod
    def from_settings(cls, settings: Mapping) -> "NavigationConfig":
        """Build from the node's parameter values (synergy_ros.ros.params names).

        Raises:
            SynergyError: ``scale_correction: ground_plane`` without a ``camera_height`` > 0,
                inconsistent scale bounds, or a malformed class list (the message says what to
                set).
        """
        ground = parse_class_names("ground_classes", settings["ground_classes"])
        ignored = parse_class_names("ignore_classes", settings["ignore_classes"])
        mode = settings["scale_correction"]
        if mode not in SCALE_CORRECTIONS:
            raise SynergyError(f"scale_correction must be one of {', '.join(SCALE_CORRECTIONS)}"
                               f"; got {mode!r}")
        scale = None
        if mode == "ground_plane":
            height = float(settings["camera_height"])
            if not (math.isfinite(height) and height > 0):
                raise SynergyError(
                    "scale_correction is ground_plane but camera_height is "
                    f"{settings['camera_height']}: set camera_height to the camera's optical "
                    "centre height above the ground in metres (> 0), e.g. -p camera_height:=0.5,"
                    " or set scale_correction to off")
            try:
                scale = ScaleConfig(camera_height=height,
                                    expected_normal=ground_normal(
                                        float(settings.get("camera_pitch", 0.0))),
                                    min_scale=float(settings["min_scale"]),
                                    max_scale=float(settings["max_scale"]),
                                    max_tilt_deg=float(settings["max_ground_tilt"]),
                                    smoothing_frames=int(settings["scale_smoothing"]))
            except ValueError as exc:
                raise SynergyError(f"ground-plane scale settings: {exc}") from None
        needs = bool(settings["publish_obstacles"] or settings["publish_ground"] or scale)
        interval = int(settings.get("scale_fit_interval", 1))
        if interval < 1:
            raise SynergyError(f"scale_fit_interval must be >= 1 (fit the ground plane on every "
                               f"n-th frame), got {interval}")
        return cls(ground, ignored, scale, needs, interval,
                   float(settings.get("camera_pitch", 0.0)))


class NavigationOutputs:
    """Class roles and the ground-plane scale estimator of one camera stream.

    Built once when the node is configured; :func:`synergy_ros.ros.outputs.prediction_messages`
    calls :meth:`correct_scale` and :meth:`cloud_indices` per frame (worker thread only; the
    diagnostics thread only reads :attr:`scale_state`, an immutable snapshot).

    Args:
        config: the fixed settings (:meth:`NavigationConfig.from_settings`).
        class_names: the model's class names (``Predictor.meta.class_names``).

    Raises:
        SynergyError: unknown class names (the model's classes are listed), or no default for
            the model's label set, when ``config.needs_roles``; otherwise the reason is kept in
            :attr:`unavailable` and obstacle / ground outputs stay off.
    """

    def __init__(self, config: NavigationConfig, class_names: Sequence[str]) -> None:
        self.config = config
        self.roles: ClassRoles | None = None
        self.unavailable = ""
        try:
            self.roles = resolve_class_roles(class_names, config.ground_classes,
                                             config.ignore_classes)
        except SynergyError as exc:
            if config.needs_roles:
                raise SynergyError(f"ground_classes / ignore_classes: {exc}") from None
            self.unavailable = str(exc)
        self.estimator = (ScaleEstimator(config.scale, self.roles)
                          if config.scale is not None else None)
        self._frames = 0  # frames seen, for the fit interval

    @property
    def corrects_scale(self) -> bool:
        """``scale_correction`` is ``ground_plane``."""
        return self.estimator is not None

    @property
    def scale_state(self) -> ScaleState | None:
        """The estimator's state after the last frame (None when scale correction is off)."""
        return None if self.estimator is None else self.estimator.state

    def fit_due(self) -> bool:
        """Whether this frame's ground plane is fitted (call once per frame, before
        :meth:`correct_scale` or :meth:`carry_scale`): the first frame, then every
        ``fit_interval``-th."""
        due = self._frames % self.config.fit_interval == 0
        self._frames += 1
        return due

    def carry_scale(self, stamp_s: float | None) -> float:
        """A frame between fits: the current scale, its age advanced by one frame."""
        return float(self.estimator.carry(stamp_s).scale)

    def ground_of_depth(self, depth: np.ndarray, labels: np.ndarray,
                        intrinsics: PinholeIntrinsics) -> np.ndarray:
        """(N, 3) float32 ground-class points with valid depth, for the plane fit.

        The fit uses at most ``max_points`` ground points (an even subsample), so a depth of
        more than 4 x max_points pixels is strided first (every k-th row and column) and only
        the ground pixels of that grid are back-projected.

        Args:
            depth: (H, W) float32 depth in metres as predicted, NaN / <= 0 invalid.
            labels: (H, W) integer class ids registered to ``depth``.
            intrinsics: intrinsics of the H x W depth.
        """
        step = max(1, int(math.sqrt(depth.shape[0] * depth.shape[1]
                                    / (4 * self.config.scale.max_points))))
        if step > 1:
            depth, labels = depth[::step, ::step], labels[::step, ::step]
            intrinsics = decimated_intrinsics(intrinsics, step)
        return ground_points(depth, labels, intrinsics, self.roles)

    def correct_scale(self, ground_points: np.ndarray | None, stamp_s: float | None) -> float:
        """Update the estimator with one frame's ground points; return the scale to apply.

        Args:
            ground_points: (N, 3) ground points in predicted metres (optical frame), or None
                when they could not be computed (no intrinsics): the last confident scale is
                kept and the status is ``no_camera_info``.
            stamp_s: the frame's stamp in seconds (for the scale's age), or None.

        Returns:
            the depth multiplier: the smoothed confident scale, or 1.0 while there is none.
        """
        if ground_points is None:
            return float(self.estimator.unmeasurable(
                "no_camera_info", "no camera_info (and no fallback_fov) to back-project the "
                "ground with", stamp_s).scale)
        return float(self.estimator.update_points(ground_points, stamp_s).scale)

    def cloud_indices(self, z: np.ndarray, labels: np.ndarray,
                      with_ground: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Flat indices of the obstacle (and ground) points of an organized cloud's grid.

        Only the indices (row-major into the grid): the node copies the cloud's records at
        them straight into the message buffers
        (:func:`synergy_ros.ros.pointcloud.dense_cloud_message`). A point is valid when its
        z is > 0: the grid was back-projected (x and y are finite wherever z is) and z is NaN
        for invalid depth and beyond ``max_range``. The selection is
        :func:`synergy_ros.core.obstacles.role_indices`, as in
        :func:`~synergy_ros.core.obstacles.split_cloud`.

        Args:
            z: (h, w) float32 z of the grid's points in metres (scale applied), NaN invalid.
            labels: (h, w) class ids registered to ``z``.
            with_ground: also select the ground points (else None for them).
        """
        with np.errstate(invalid="ignore"):
            valid = z > 0
        return role_indices(valid, labels, self.roles, with_ground)


def scale_diagnostics(state: ScaleState | None) -> dict:
    """The scale state as /diagnostics key -> value (``scale.`` keys), {} when off."""
    if state is None:
        return {}

    def fmt(value: float) -> str:
        return "nan" if math.isnan(value) else f"{value:.4g}"

    normal = " ".join(fmt(v) for v in state.normal)
    return {"scale": f"{state.scale:.4f}", "scale.confident": str(state.confident).lower(),
            "scale.status": state.status, "scale.message": state.message,
            "scale.measured": fmt(state.measured), "scale.inliers": str(state.inliers),
            "scale.ground_points": str(state.ground_points), "scale.plane_normal": normal,
            "scale.tilt_deg": fmt(state.tilt_deg),
            "scale.age_frames": str(state.age_frames), "scale.age_s": fmt(state.age_s)}
