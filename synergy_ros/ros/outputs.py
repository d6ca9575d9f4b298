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

from synergy_ros.core.geometry import PinholeIntrinsics, backproject
from synergy_ros.core.ground_plane import ground_points
from synergy_ros.ros.conversions import (array_to_image, byte_array, intrinsics_to_camera_info,
                                         labels_to_image, zeroed_byte_array)
from synergy_ros.ros.navigation import NavigationOutputs
from synergy_ros.ros.pointcloud import (POINT_STEP, cloud_message, decimated_intrinsics,
                                        dense_cloud_message, fill_records)

#: Output key -> topic name relative to the node's namespace (or evaluate's --output-prefix).
#: ``camera_info`` (the same CameraInfo as ``depth_info``) lies beside the images, where
#: image_transport's CameraSubscriber looks for it: the sibling of the image topic
#: (``/ns/depth`` -> ``/ns/camera_info``). The node publishes it at the sibling of its resolved
#: depth topic (:func:`sibling_topic`), see docs/node.md.
OUTPUT_TOPICS = {"depth": "depth", "depth_info": "depth/camera_info",
                 "camera_info": "camera_info", "semantic": "semantic",
                 "semantic_color": "semantic_color", "points": "points",
                 "attention": "attention", "obstacles": "obstacles", "ground": "ground"}
#: The keys built from the organized cloud's grid (one back-projection for all of them).
CLOUD_KEYS = ("points", "obstacles", "ground")
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


def stamp_seconds(header) -> float | None:
    """A std_msgs/Header's stamp in seconds, or None without a header."""
    if header is None:
        return None
    return header.stamp.sec + header.stamp.nanosec * 1e-9


#: The coarsest cloud grid (its decimation) the ground-plane fit takes its ground points from;
#: beyond it the ground pixels are back-projected at full resolution for the fit.
MAX_SCALE_GRID_STEP = 2


def cloud_grid_decimation(keys: Collection[str], cloud_decimation: int,
                          obstacle_decimation: int) -> int:
    """The decimation of the one organized grid that the clouds in ``keys`` are taken from.

    ``points`` keeps every ``cloud_decimation``-th pixel, ``obstacles`` / ``ground`` every
    ``obstacle_decimation``-th: the grid is back-projected at their greatest common divisor,
    and each cloud takes every (its decimation / grid decimation)-th row and column of it.
    """
    steps = ([int(cloud_decimation)] if "points" in keys else []) + (
        [int(obstacle_decimation)] if ("obstacles" in keys or "ground" in keys) else [])
    return math.gcd(*steps) if steps else 1


def prediction_messages(prediction, rgb: np.ndarray, camera: PinholeIntrinsics | None, header,
                        palette: np.ndarray, wanted: Collection[str],
                        depth_encoding: str = "32FC1", semantic_blend: float = 0.0,
                        cloud_decimation: int = 1, max_range: float = math.inf,
                        navigation: NavigationOutputs | None = None,
                        obstacle_decimation: int = 1) -> Iterator[tuple[str, object]]:
    """Yield ``(key, message)`` for each key of :data:`OUTPUT_TOPICS` in ``wanted``.

    Args:
        prediction: a runtime ``Prediction``: depth (h, w) metres, labels (h, w) class ids,
            attention (h', w') or None. Every output has the depth's h x w size.
        rgb: (H, W, 3) uint8 camera image the prediction was made from.
        camera: intrinsics of the H x W camera image; None skips depth_info and the clouds
            (and the scale correction's plane fit: the last confident scale is applied).
        header: std_msgs/Header copied into every message (stamp, optical frame).
        palette: (C, 3) uint8 colours per class id (:func:`synergy_ros.core.labels.palette_lut`).
        wanted: the keys to build (attention only when the prediction has one; obstacles and
            ground only with a ``navigation`` whose class roles resolved; depth_info and
            camera_info are the same message).
        depth_encoding: ``32FC1`` metres with NaN invalid, or ``16UC1`` millimetres, 0 invalid
            (also for depth beyond 65.535 m, :func:`depth_to_millimetres`).
        semantic_blend: weight of the camera image in semantic_color (0 = palette only).
        cloud_decimation: keep every n-th row and column of the depth in ``points``.
        max_range: points with depth beyond this (metres) are NaN in ``points`` and left out
            of ``obstacles`` / ``ground``.
        navigation: class roles and ground-plane scale state (:class:`NavigationOutputs`);
            with scale correction on, every frame counts towards the fit interval (whatever
            is wanted; every ``scale_fit_interval``-th frame fits the plane, the others carry
            the scale) and the depth of every output is multiplied by the confident scale.
        obstacle_decimation: keep every n-th row and column of the depth in ``obstacles`` and
            ``ground``.

    All clouds come from one organized grid back-projected once (:func:`cloud_grid_decimation`);
    ``obstacles`` / ``ground`` records are copies of that grid's point records.
    """
    depth = np.asarray(prediction.depth, dtype=np.float32)
    height, width = depth.shape
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan))
    depth_intrinsics = None if camera is None else camera.scaled(width, height)
    labels = np.asarray(prediction.labels)
    clouds = []
    if depth_intrinsics is not None:
        has_roles = navigation is not None and navigation.roles is not None
        clouds = [key for key in CLOUD_KEYS if key in wanted and (key == "points" or has_roles)]
    grid = grid_step = grid_labels = None
    if clouds:
        grid_step = cloud_grid_decimation(clouds, cloud_decimation, obstacle_decimation)
        grid_labels = labels[::grid_step, ::grid_step]
        grid = backproject(depth[::grid_step, ::grid_step],
                           decimated_intrinsics(depth_intrinsics, grid_step))
    if navigation is not None and navigation.corrects_scale:
        if not navigation.fit_due():  # between fits (scale_fit_interval): the current scale
            scale = navigation.carry_scale(stamp_seconds(header))
        else:
            if grid is not None and grid_step <= MAX_SCALE_GRID_STEP:
                # the clouds' own back-projection: no second one. A coarser grid would leave
                # too few ground points for the fit, and whether the depth is corrected would
                # then depend on whether someone subscribes to a decimated cloud.
                ground = navigation.ground_of_grid(grid, grid_labels)
            elif depth_intrinsics is not None:
                ground = ground_points(depth, labels, depth_intrinsics, navigation.roles)
            else:
                ground = None
            scale = navigation.correct_scale(ground, stamp_seconds(header))
        if scale != 1.0:
            depth *= np.float32(scale)
            if grid is not None:
                grid *= np.float32(scale)
    small_rgb = None
    if clouds or ("semantic_color" in wanted and semantic_blend > 0):
        small_rgb = getattr(prediction, "rgb", None)  # the preprocessing's resize, if made
        if small_rgb is None or small_rgb.shape[:2] != (height, width):
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
    if "semantic" in wanted:
        yield "semantic", labels_to_image(labels, header)
    if "semantic_color" in wanted:
        colour = np.take(palette, labels, axis=0, mode="clip")
        if semantic_blend > 0:
            colour = (colour * (1.0 - semantic_blend) + small_rgb * semantic_blend
                      + 0.5).astype(np.uint8)
        yield "semantic_color", array_to_image(colour, "rgb8", header)
    if clouds:
        yield from _cloud_messages(grid, grid_labels, small_rgb[::grid_step, ::grid_step],
                                   header, clouds, grid_step, cloud_decimation,
                                   obstacle_decimation, max_range, navigation)
    if "attention" in wanted and prediction.attention is not None:
        attention = resize_area(np.asarray(prediction.attention, np.float32), width, height)
        yield "attention", array_to_image(attention, "32FC1", header)


def _cloud_messages(points: np.ndarray, labels: np.ndarray, rgb: np.ndarray, header,
                    clouds: list, grid_step: int, cloud_decimation: int,
                    obstacle_decimation: int, max_range: float,
                    navigation: NavigationOutputs | None) -> Iterator[tuple[str, object]]:
    """``points`` / ``obstacles`` / ``ground`` from one (h, w, 3) organized grid (metres).

    The grid's point records are written once; ``points`` is the grid itself (its message
    buffer) or every k-th row and column of it, and the obstacle / ground records are copied
    from it, at the indices :meth:`NavigationOutputs.split` selects, into their messages.
    """
    if math.isfinite(max_range):
        with np.errstate(invalid="ignore"):
            points[points[..., 2] > np.float32(max_range)] = np.float32(np.nan)
    h, w = points.shape[:2]
    step = int(cloud_decimation) // grid_step
    data = None
    if "points" in clouds and step == 1:  # the records are the points message's own buffer
        data = zeroed_byte_array(h * w * POINT_STEP)
        records = np.frombuffer(data, dtype=np.uint32).reshape(h, w, POINT_STEP // 4)
    else:
        records = np.zeros((h, w, POINT_STEP // 4), np.uint32)
    fill_records(records, points, rgb, labels)
    if "points" in clouds:
        if data is None:
            sub = records[::step, ::step]
            data = byte_array(sub)
            h, w = sub.shape[:2]
        yield "points", cloud_message(data, h, w, True, True, header)
    if "obstacles" in clouds or "ground" in clouds:
        sub_step = int(obstacle_decimation) // grid_step
        # max_range is already applied (far points are NaN above): no second comparison
        split = navigation.split(points, labels, math.inf, sub_step, "ground" in clouds)
        flat = records.reshape(-1, POINT_STEP // 4)  # a view: records are C-contiguous

        def grid_index(index: np.ndarray) -> np.ndarray:
            """Indices into the decimated grid -> into the full one (records not copied)."""
            if sub_step == 1:
                return index
            row, col = np.divmod(index, split.grid_shape[1])
            return row * (sub_step * records.shape[1]) + col * sub_step

        if "obstacles" in clouds:
            yield "obstacles", dense_cloud_message(flat, header,
                                                   index=grid_index(split.obstacle_index))
        if "ground" in clouds:
            yield "ground", dense_cloud_message(flat, header,
                                                index=grid_index(split.ground_index))
