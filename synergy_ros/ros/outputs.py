"""The node's output messages for one prediction: depth, camera_info, semantic, ...

One builder for ``synergy_node`` (which publishes them) and ``synergy evaluate --output-bag``
(which records them), so a bag written offline holds what the node would have published.
Messages are built in topic order and yielded one at a time, so the node publishes depth
before it spends time on the point cloud.
"""
from __future__ import annotations

import math
from typing import Callable, Collection, Iterator

import numpy as np

from synergy_ros.core.geometry import PinholeIntrinsics, decimated_intrinsics, valid_depth
from synergy_ros.core.labels import lookup_colours
from synergy_ros.ros.conversions import (MessageBuffers, array_to_image, filled_byte_array,
                                         intrinsics_to_camera_info, labels_to_image,
                                         zeroed_byte_array)
from synergy_ros.ros.navigation import NavigationOutputs
from synergy_ros.ros.pointcloud import (POINT_STEP, cloud_message, dense_cloud_message,
                                        write_records)

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
                        obstacle_decimation: int = 1,
                        buffers: MessageBuffers | None = None) -> Iterator[tuple[str, object]]:
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
        buffers: where the messages' data buffers come from (reused between frames once the
            previous frame's message is dropped, :class:`MessageBuffers`: the node passes one
            per camera), or None for new buffers.

    All clouds come from one organized grid back-projected once (:func:`cloud_grid_decimation`),
    after ``depth`` and the images are yielded; ``obstacles`` / ``ground`` records are copies of
    that grid's point records.
    """
    def buffer(key: str, size: int):
        return None if buffers is None else buffers.get(key, size)

    depth = valid_depth(prediction.depth)
    height, width = depth.shape
    depth_intrinsics = None if camera is None else camera.scaled(width, height)
    labels = np.asarray(prediction.labels)
    clouds = []
    if depth_intrinsics is not None:
        has_roles = navigation is not None and navigation.roles is not None
        clouds = [key for key in CLOUD_KEYS if key in wanted and (key == "points" or has_roles)]
    if navigation is not None and navigation.corrects_scale:
        if not navigation.fit_due():  # between fits (scale_fit_interval): the current scale
            scale = navigation.carry_scale(stamp_seconds(header))
        else:
            # the ground pixels of a strided depth grid, back-projected alone: whether the
            # depth is corrected never depends on which clouds someone subscribes to
            ground = (None if depth_intrinsics is None
                      else navigation.ground_of_depth(depth, labels, depth_intrinsics))
            scale = navigation.correct_scale(ground, stamp_seconds(header))
        if scale != 1.0:
            depth *= np.float32(scale)
    small_rgb = None
    if clouds or ("semantic_color" in wanted and semantic_blend > 0):
        small_rgb = getattr(prediction, "rgb", None)  # the preprocessing's resize, if made
        if small_rgb is None or small_rgb.shape[:2] != (height, width):
            small_rgb = resize_area(rgb, width, height)
    if "depth" in wanted:
        if depth_encoding == "16UC1":
            yield "depth", array_to_image(depth_to_millimetres(depth), "16UC1", header,
                                          buffer("depth", depth.size * 2))
        else:
            yield "depth", array_to_image(depth, "32FC1", header, buffer("depth", depth.nbytes))
    if depth_intrinsics is not None and ("depth_info" in wanted or "camera_info" in wanted):
        info = intrinsics_to_camera_info(depth_intrinsics, header)
        for key in ("depth_info", "camera_info"):
            if key in wanted:
                yield key, info
    if "semantic" in wanted:
        yield "semantic", labels_to_image(labels, header, buffers)
    if "semantic_color" in wanted:
        colour = lookup_colours(labels, palette)
        if semantic_blend > 0:
            colour = (colour * (1.0 - semantic_blend) + small_rgb * semantic_blend
                      + 0.5).astype(np.uint8)
        yield "semantic_color", array_to_image(colour, "rgb8", header,
                                               buffer("semantic_color", colour.nbytes))
    if clouds:
        yield from _cloud_messages(depth, labels, small_rgb, depth_intrinsics, header, clouds,
                                   cloud_decimation, obstacle_decimation, max_range, navigation,
                                   buffer)
    if "attention" in wanted and prediction.attention is not None:
        attention = resize_area(np.asarray(prediction.attention, np.float32), width, height)
        yield "attention", array_to_image(attention, "32FC1", header,
                                          buffer("attention", attention.nbytes))


def _cloud_messages(depth: np.ndarray, labels: np.ndarray, rgb: np.ndarray,
                    intrinsics: PinholeIntrinsics, header, clouds: list, cloud_decimation: int,
                    obstacle_decimation: int, max_range: float,
                    navigation: NavigationOutputs | None,
                    buffer: Callable[[str, int], object]) -> Iterator[tuple[str, object]]:
    """``points`` / ``obstacles`` / ``ground`` from one organized grid of the depth.

    The grid's point records are back-projected and written once (one interleaving pass,
    :func:`synergy_ros.ros.pointcloud.write_records`); ``points`` is the grid itself (its
    message buffer) or every k-th row and column of it, and the obstacle / ground records are
    copied from it, at the indices :meth:`NavigationOutputs.cloud_indices` selects, into
    their messages.

    Args:
        depth: (H, W) float32 metres (scale applied), NaN where invalid.
        labels: (H, W) class ids; rgb: (H, W, 3) uint8 colours registered to ``depth``.
        intrinsics: intrinsics of the H x W depth.
        buffer: ``buffer(key, size)`` gives a message's data buffer (None: make a new one).
    """
    grid_step = cloud_grid_decimation(clouds, cloud_decimation, obstacle_decimation)
    z = depth[::grid_step, ::grid_step]
    if math.isfinite(max_range):  # far points are NaN in every cloud
        with np.errstate(invalid="ignore"):
            z = np.where(z <= np.float32(max_range), z, np.float32(np.nan))
    labels = labels[::grid_step, ::grid_step]
    h, w = z.shape
    step = int(cloud_decimation) // grid_step
    data = None
    # the records are the points message's own buffer, or a scratch one the clouds copy from
    own = "points" in clouds and step == 1
    scratch = buffer("points" if own else "cloud_records", h * w * POINT_STEP)
    if scratch is None:
        scratch = zeroed_byte_array(h * w * POINT_STEP)
    records = np.frombuffer(scratch, dtype=np.uint32).reshape(h, w, POINT_STEP // 4)
    if own:
        data = scratch
    write_records(records, z, decimated_intrinsics(intrinsics, grid_step),
                  rgb[::grid_step, ::grid_step], labels)
    if "points" in clouds:
        if data is None:
            sub = records[::step, ::step]
            data = filled_byte_array(sub, buffer("points", sub.nbytes))
            h, w = sub.shape[:2]
        yield "points", cloud_message(data, h, w, True, True, header)
    if "obstacles" in clouds or "ground" in clouds:
        sub_step = int(obstacle_decimation) // grid_step
        # the records' z (a view; NaN beyond max_range) on every sub_step-th row and column
        sub_z = records.view(np.float32)[::sub_step, ::sub_step, 2]
        obstacle_index, ground_index = navigation.cloud_indices(
            sub_z, labels[::sub_step, ::sub_step], "ground" in clouds)
        flat = records.reshape(-1, POINT_STEP // 4)  # a view: records are C-contiguous

        def grid_index(index: np.ndarray) -> np.ndarray:
            """Indices into the decimated grid -> into the full one (records not copied)."""
            if sub_step == 1:
                return index
            row, col = np.divmod(index, sub_z.shape[1])
            return row * (sub_step * records.shape[1]) + col * sub_step

        for key, index in (("obstacles", obstacle_index), ("ground", ground_index)):
            if key in clouds:
                index = grid_index(index)
                yield key, dense_cloud_message(flat, header, index=index,
                                               out=buffer(key, len(index) * POINT_STEP))
