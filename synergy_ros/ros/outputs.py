"""The node's output messages for one prediction: depth, camera_info, semantic, ...

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
#: ``camera_info`` (the same CameraInfo as ``depth_info``) lies beside the images, where
#: image_transport's CameraSubscriber looks for it: the sibling of the image topic
#: (``/ns/depth`` -> ``/ns/camera_info``). The node publishes it at the sibling of its resolved
#: depth topic (:func:`sibling_topic`), see docs/node.md.
OUTPUT_TOPICS = {"depth": "depth", "depth_info": "depth/camera_info",
                 "camera_info": "camera_info", "semantic": "semantic",
                 "semantic_color": "semantic_color", "points": "points",
                 "attention": "attention"}
#: Largest depth a 16UC1 image can hold, millimetres; farther depth is written 0 (REP 118).
MAX_DEPTH_16UC1_MM = 65535


def sibling_topic(topic: str, name: str) -> str:
    """``name`` beside the fully qualified ``topic``: image_transport's rule for camera_info.

    ``sibling_topic("/synergy/depth", "camera_info")`` is ``/synergy/camera_info``;
    ``sibling_topic("/depth", "camera_info")`` is ``/camera_info``.
    """
    if not topic.startswith("/"):
        raise ValueError(f"sibling_topic needs a fully qualified topic name, got {topic!r}")
    return f"{topic.rsplit('/', 1)[0]}/{name}"


def depth_to_millimetres(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth in metres (NaN invalid) as uint16 millimetres for a 16UC1 image.

    REP 118: 0 marks invalid. NaN, non-positive depth and depth beyond 65.535 m (which 16 bits
    cannot hold) become 0 rather than saturating to a valid-looking 65535 mm.
    """
    millimetres = np.rint(np.asarray(depth, np.float32) * np.float32(1000.0))
    valid = np.isfinite(millimetres) & (millimetres > 0) & (millimetres <= MAX_DEPTH_16UC1_MM)
    return np.where(valid, millimetres, 0).astype(np.uint16)


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
        wanted: the keys to build (attention only when the prediction has one;
            depth_info and camera_info are the same message).
        depth_encoding: ``32FC1`` metres with NaN invalid, or ``16UC1`` millimetres, 0 invalid
            (also for depth beyond 65.535 m, :func:`depth_to_millimetres`).
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
            yield "depth", array_to_image(depth_to_millimetres(depth), "16UC1", header)
        else:
            yield "depth", array_to_image(depth, "32FC1", header)
    if depth_intrinsics is not None and ("depth_info" in wanted or "camera_info" in wanted):
        info = intrinsics_to_camera_info(depth_intrinsics, header)
        for key in ("depth_info", "camera_info"):
            if key in wanted:
                yield key, info
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
