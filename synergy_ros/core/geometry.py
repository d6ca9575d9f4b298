"""Pinhole camera geometry in the ROS optical frame (REP 103: z forward, x right, y down)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class PinholeIntrinsics:
    """Pinhole intrinsics in pixels for an image of ``width`` x ``height`` pixels.

    ``fx, fy`` focal lengths (px), ``cx, cy`` principal point (px, pixel-centre convention of
    sensor_msgs/CameraInfo: pixel (u, v) has its centre at (u, v)).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_k(cls, k, width: int, height: int) -> "PinholeIntrinsics":
        """Build from a row-major 3x3 K (CameraInfo.k, 9 values)."""
        k = np.asarray(k, dtype=np.float64).reshape(-1)
        if k.size != 9:
            raise ValueError(f"K must have 9 values, got {k.size}")
        return cls(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(width), int(height))

    @classmethod
    def from_fov(cls, horizontal_fov_rad: float, width: int, height: int) -> "PinholeIntrinsics":
        """Square-pixel intrinsics with the given horizontal field of view (radians)."""
        if not 0.0 < horizontal_fov_rad < math.pi:
            raise ValueError(f"horizontal field of view must be in (0, pi) rad, "
                             f"got {horizontal_fov_rad}")
        f = (width / 2.0) / math.tan(horizontal_fov_rad / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))

    def k_matrix(self) -> np.ndarray:
        """3x3 K as float64."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, width: int, height: int) -> "PinholeIntrinsics":
        """Intrinsics for the same camera resampled to ``width`` x ``height`` pixels.

        Uses the pixel-centre convention (as image_proc's resize does): a pixel centre u maps
        to (u + 0.5) * s - 0.5, so cx' = (cx + 0.5) * sx - 0.5 and fx' = fx * sx.
        """
        sx, sy = width / self.width, height / self.height
        return PinholeIntrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                                 (self.cy + 0.5) * sy - 0.5, int(width), int(height))


def decimated_intrinsics(intrinsics: PinholeIntrinsics, decimation: int) -> PinholeIntrinsics:
    """Intrinsics of the grid ``image[::d, ::d]`` (pixel u' is original pixel d*u').

    x = (d u' - cx) z / fx = (u' - cx/d) z / (fx/d), so focal lengths and principal point are
    divided by d (exactly; no pixel-centre shift, unlike resampling with PinholeIntrinsics.scaled).
    """
    d = int(decimation)
    return PinholeIntrinsics(intrinsics.fx / d, intrinsics.fy / d, intrinsics.cx / d,
                             intrinsics.cy / d, -(-intrinsics.width // d),
                             -(-intrinsics.height // d))


def pixel_rays(intrinsics: PinholeIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """The per-column and per-row ray slopes of a pinhole image, float32.

    Returns:
        (ray_x, ray_y): (W,) ``(u - cx) / fx`` and (H,) ``(v - cy) / fy``, so a pixel's point
        is x = ray_x[u] z, y = ray_y[v] z (metres, optical frame).
    """
    ray_x = (np.arange(intrinsics.width, dtype=np.float32) - np.float32(intrinsics.cx)
             ) / np.float32(intrinsics.fx)
    ray_y = (np.arange(intrinsics.height, dtype=np.float32) - np.float32(intrinsics.cy)
             ) / np.float32(intrinsics.fy)
    return ray_x, ray_y


def valid_depth(depth: np.ndarray, max_range: float = math.inf) -> np.ndarray:
    """(H, W) float32 depth with NaN where it is invalid: NaN, inf, <= 0 or beyond
    ``max_range`` metres."""
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0)
        if math.isfinite(max_range):
            valid &= depth <= np.float32(max_range)
    return np.where(valid, depth, np.float32(np.nan))


def backproject(depth: np.ndarray, intrinsics: PinholeIntrinsics) -> np.ndarray:
    """Back-project a depth image to 3-D points in the optical frame.

    Args:
        depth: (H, W) float depth in metres along z; NaN/inf/<=0 mark invalid pixels.
        intrinsics: intrinsics of an H x W image.

    Returns:
        (H, W, 3) float32 points x = (u - cx) z / fx, y = (v - cy) z / fy, z (metres); NaN where
        the depth is invalid.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    h, w = depth.shape
    if (w, h) != (intrinsics.width, intrinsics.height):
        raise ValueError(f"depth is {w}x{h} but intrinsics are for "
                         f"{intrinsics.width}x{intrinsics.height}; use intrinsics.scaled()")
    z = valid_depth(depth)
    u, v = pixel_rays(intrinsics)
    points = np.empty((h, w, 3), dtype=np.float32)
    points[..., 0] = u[None, :] * z
    points[..., 1] = v[:, None] * z
    points[..., 2] = z
    return points
