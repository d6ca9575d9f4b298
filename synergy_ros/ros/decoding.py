"""Decode depth / label images and point clouds into arrays for scoring.

Depth is (H, W) float32 metres with NaN where invalid; class ids are (H, W) uint8 / uint16.
"""
from __future__ import annotations

import cv2
import numpy as np

from synergy_ros.ros.conversions import image_to_array
from synergy_ros.ros.pointcloud import pointcloud2_to_array


def depth_from_image(msg) -> np.ndarray:
    """Decode a depth Image to (H, W) float32 metres with NaN where invalid.

    ``32FC1`` (and ``64FC1``) are metres (REP 118); ``16UC1`` / ``mono16`` are millimetres
    with 0 = invalid. Other encodings raise ValueError.
    """

    array = image_to_array(msg)
    encoding = msg.encoding
    if encoding in ("32FC1", "64FC1"):
        depth = array.astype(np.float32)
        depth[~(depth > 0)] = np.nan  # also catches NaN and -inf
    elif encoding in ("16UC1", "mono16"):
        depth = array.astype(np.float32) / 1000.0
        depth[array == 0] = np.nan
    else:
        raise ValueError(f"depth image encoding {encoding!r} is not a depth encoding "
                         "(expected 32FC1 metres or 16UC1 millimetres)")
    if depth.ndim != 2:
        raise ValueError(f"depth image must have one channel, got shape {depth.shape}")
    return depth


def labels_from_image(msg) -> np.ndarray:
    """Decode a class-id Image (mono8, mono16, 8UC1, 16UC1) to (H, W) uint8 / uint16 ids.

    The array may share memory with the message (do not modify it).
    """

    if msg.encoding not in ("mono8", "mono16", "8UC1", "16UC1"):
        raise ValueError(f"semantic image encoding {msg.encoding!r} is not a class-id "
                         "encoding (expected mono8 or mono16)")
    return image_to_array(msg)


def depth_from_cloud(msg, intrinsics) -> np.ndarray:
    """Project a PointCloud2 (optical frame, metres) into an (H, W) float32 depth image.

    ``intrinsics`` (:class:`~synergy_ros.core.geometry.PinholeIntrinsics`) gives the image size and
    projection u = fx x / z + cx, v = fy y / z + cy; the nearest point wins each pixel,
    pixels without a point are NaN.
    """

    cloud = pointcloud2_to_array(msg)
    names = cloud.dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise ValueError(f"point cloud has fields {names}, needs x, y, z")
    x, y, z = (np.asarray(cloud[n], dtype=np.float64).reshape(-1) for n in ("x", "y", "z"))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z) & (z > 0)
    x, y, z = x[ok], y[ok], z[ok]
    u = np.round(intrinsics.fx * x / z + intrinsics.cx).astype(np.int64)
    v = np.round(intrinsics.fy * y / z + intrinsics.cy).astype(np.int64)
    width, height = int(intrinsics.width), int(intrinsics.height)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[inside], v[inside], z[inside]
    order = np.argsort(-z)  # far first, so the nearest point is written last
    depth = np.full((height, width), np.nan, dtype=np.float32)
    depth[v[order], u[order]] = z[order]
    return depth


def resize_to(array: np.ndarray, shape: tuple[int, int], nearest: bool) -> np.ndarray:
    """Resize (H, W) ``array`` to ``shape`` (bilinear, or nearest for labels); no-op if equal."""
    if array.shape[:2] == tuple(shape):
        return array
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    native = array.dtype in (np.uint8, np.uint16, np.int16, np.float32, np.float64)
    source = array if native else array.astype(np.float32)  # e.g. int64 class ids
    out = cv2.resize(source, (shape[1], shape[0]), interpolation=interpolation)
    return out.astype(array.dtype, copy=False)
