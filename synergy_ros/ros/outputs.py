"""The node's output messages for one prediction: depth, depth/camera_info, semantic, ...

One builder for ``synergy_node`` (which publishes them) and ``synergy evaluate --output-bag``
(which records them), so a bag written offline holds what the node would have published.
Messages are built in topic order and yielded one at a time, so the node publishes depth
before it spends time on the point cloud.
"""
from __future__ import annotations

import math
from typing import Collection, Iterator

import numpy as np

from synergy_ros.core.geometry import PinholeIntrinsics
from synergy_ros.ros.conversions import array_to_image, intrinsics_to_camera_info, labels_to_image
from synergy_ros.ros.pointcloud import build_pointcloud2

#: Output key -> topic name relative to the node's namespace (or evaluate's --output-prefix).
OUTPUT_TOPICS = {"depth": "depth", "depth_info": "depth/camera_info", "semantic": "semantic",
                 "semantic_color": "semantic_color", "points": "points",
                 "attention": "attention"}


def resize_area(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W[, C]) image area-resampled to height x width pixels (colours, attention)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    import cv2

    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)


def prediction_messages(prediction, rgb: np.ndarray, camera: PinholeIntrinsics | None, header,
                        palette: np.ndarray, wanted: Collection[str],
                        depth_encoding: str = "32FC1", semantic_blend: float = 0.0,
                        cloud_decimation: int = 1, max_range: float = math.inf
                        ) -> Iterator[tuple[str, object]]:
    """Yield ``(key, message)`` for each key of :data:`OUTPUT_TOPICS` in ``wanted``.

    Args:
        prediction: a runtime ``Prediction``: depth (h, w) metres, labels (h, w) class ids,
            attention (h', w') or None. Every output has the depth's h x w size.
        rgb: (H, W, 3) uint8 camera image the prediction was made from.
        camera: intrinsics of the H x W camera image; None skips depth_info and points.
        header: std_msgs/Header copied into every message (stamp, optical frame).
        palette: (C, 3) uint8 colours per class id (:func:`synergy_ros.core.labels.palette_lut`).
        wanted: the keys to build (attention only when the prediction has one).
        depth_encoding: ``32FC1`` metres with NaN invalid, or ``16UC1`` millimetres, 0 invalid.
        semantic_blend: weight of the camera image in semantic_color (0 = palette only).
        cloud_decimation: keep every n-th row and column of the cloud.
        max_range: points with depth beyond this (metres) are NaN.
    """
    depth = np.asarray(prediction.depth, dtype=np.float32)
    height, width = depth.shape
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan))
    depth_intrinsics = None if camera is None else camera.scaled(width, height)
    small_rgb = None
    if "points" in wanted or ("semantic_color" in wanted and semantic_blend > 0):
        small_rgb = resize_area(rgb, width, height)
    if "depth" in wanted:
        if depth_encoding == "16UC1":
            millimetres = np.clip(np.nan_to_num(depth * 1000.0, nan=0.0) + 0.5, 0, 65535)
            yield "depth", array_to_image(millimetres.astype(np.uint16), "16UC1", header)
        else:
            yield "depth", array_to_image(depth, "32FC1", header)
    if "depth_info" in wanted and depth_intrinsics is not None:
        yield "depth_info", intrinsics_to_camera_info(depth_intrinsics, header)
    labels = np.asarray(prediction.labels)
    if "semantic" in wanted:
        yield "semantic", labels_to_image(labels, header)
    if "semantic_color" in wanted:
        colour = np.take(palette, labels, axis=0, mode="clip")
        if semantic_blend > 0:
            colour = (colour * (1.0 - semantic_blend) + small_rgb * semantic_blend
                      + 0.5).astype(np.uint8)
        yield "semantic_color", array_to_image(colour, "rgb8", header)
    if "points" in wanted and depth_intrinsics is not None:
        yield "points", build_pointcloud2(depth, small_rgb, labels, depth_intrinsics, header,
                                          decimation=cloud_decimation, max_range=max_range)
    if "attention" in wanted and prediction.attention is not None:
        attention = resize_area(np.asarray(prediction.attention, np.float32), width, height)
        yield "attention", array_to_image(attention, "32FC1", header)
