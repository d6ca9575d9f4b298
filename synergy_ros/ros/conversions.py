"""sensor_msgs Image / CompressedImage / CameraInfo <-> numpy, without cv_bridge.

cv_bridge's PyPI build is broken with numpy 2, so images are converted with numpy directly:

* :func:`image_to_array` returns a zero-copy view of ``msg.data`` (rclpy stores ``uint8[]``
  fields as ``array.array('B')``, which exports a writable buffer) shaped (H, W) or (H, W, C),
  honouring row padding (``step`` > width x bytes-per-pixel) through strides. Only big-endian
  multi-byte images are copied (byte-swapped to native order). The view shares memory with the
  message: copy it before modifying it if the message is used elsewhere.
* :func:`array_to_image` builds an Image with ``step = width x bytes-per-pixel`` in native
  byte order (one copy into the message's ``array.array``).
* :func:`image_to_rgb` / :func:`compressed_to_rgb` turn any supported camera encoding into the
  (H, W, 3) uint8 RGB the predictor takes.

Supported encodings: rgb8, bgr8, rgba8, bgra8, rgb16, bgr16, rgba16, bgra16, mono8, mono16, the
generic OpenCV-style ``{8U,8S,16U,16S,32S,32F,64F}C{1..4}`` (8UC1, 8UC3, 16UC1, 32FC1, ...),
Bayer mosaics ``bayer_{rggb,bggr,gbrg,grbg}{8,16}`` (returned raw as (H, W); demosaiced by
:func:`image_to_rgb`) and packed YUV 4:2:2 ``uyvy``/``yuv422`` and ``yuyv``/``yuv422_yuy2``
(returned raw as (H, W, 2); converted by :func:`image_to_rgb`).

Every malformed message raises ``ValueError`` naming the problem (unknown encoding, zero or
absurd size, data shorter than step x height, step smaller than a row, ...); nothing else.
"""
from __future__ import annotations

import array
import math
import operator
import re
import sys

import numpy as np

from synergy_ros.core.geometry import PinholeIntrinsics
from synergy_ros.core.rgb import rgb8_problem

# Largest image side and payload accepted: anything bigger is a corrupt header, not a camera.
MAX_SIDE = 1 << 15
MAX_BYTES = 1 << 30

_NAMED = {  # encoding -> (numpy dtype, channels)
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "rgb16": (np.uint16, 3), "bgr16": (np.uint16, 3), "rgba16": (np.uint16, 4),
    "bgra16": (np.uint16, 4), "mono8": (np.uint8, 1), "mono16": (np.uint16, 1),
    "uyvy": (np.uint8, 2), "yuv422": (np.uint8, 2), "yuyv": (np.uint8, 2),
    "yuv422_yuy2": (np.uint8, 2),
}
for _pattern in ("rggb", "bggr", "gbrg", "grbg"):
    _NAMED[f"bayer_{_pattern}8"] = (np.uint8, 1)
    _NAMED[f"bayer_{_pattern}16"] = (np.uint16, 1)
_CV_DEPTHS = {"8U": np.uint8, "8S": np.int8, "16U": np.uint16, "16S": np.int16,
              "32S": np.int32, "32F": np.float32, "64F": np.float64}
_CV_PATTERN = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)C([1-4])$")

SUPPORTED_ENCODINGS = tuple(sorted(_NAMED)) + tuple(
    f"{depth}C{c}" for depth in _CV_DEPTHS for c in range(1, 5))


def encoding_info(encoding: str) -> tuple[np.dtype, int]:
    """Return (numpy dtype, channels) for a sensor_msgs image encoding; ValueError if unknown."""
    if not isinstance(encoding, str):
        raise ValueError(f"image encoding must be a string, got {type(encoding).__name__}")
    if encoding in _NAMED:
        dtype, channels = _NAMED[encoding]
        return np.dtype(dtype), channels
    match = _CV_PATTERN.match(encoding)
    if match:
        return np.dtype(_CV_DEPTHS[match.group(1)]), int(match.group(2))
    raise ValueError(f"unsupported image encoding {encoding!r}; supported: "
                     "rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1, 32FC1, 8UC3, bayer_*, "
                     "uyvy, yuyv, ... (see synergy_ros.ros.conversions.SUPPORTED_ENCODINGS)")


def _as_uint(value, name: str, upper: int) -> int:
    """Validate an unsigned header field (a malformed message may hold anything there)."""
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"image {name} must be an integer, got {type(value).__name__}") from None
    if number <= 0:
        raise ValueError(f"image {name} is {number}; an image needs {name} > 0")
    if number > upper:
        raise ValueError(f"image {name} {number} is absurd (limit {upper}); corrupt header?")
    return number


def _buffer_bytes(data, what: str) -> np.ndarray:
    """A zero-copy uint8 view of a message's ``data`` (array.array('B'), bytes, memoryview)."""
    try:
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
    except TypeError as exc:
        raise ValueError(f"{what} data is a {type(data).__name__}, not a contiguous byte "
                         f"buffer ({exc})") from None
    return np.frombuffer(view, dtype=np.uint8)


def image_to_array(msg) -> np.ndarray:
    """Convert a sensor_msgs/Image to a numpy array (zero-copy for little-endian data).

    Args:
        msg: sensor_msgs.msg.Image.

    Returns:
        (H, W) for single-channel encodings, else (H, W, C); dtype from the encoding
        (uint8, uint16, float32, ...), native byte order. A view on ``msg.data`` when the data
        is little-endian (row padding is skipped through strides), a copy when big-endian.

    Raises:
        ValueError: unknown encoding, zero/absurd size, step < width x bytes-per-pixel, data
            shorter than step x height, non-buffer data.
    """
    dtype, channels = encoding_info(getattr(msg, "encoding", None))
    height = _as_uint(getattr(msg, "height", None), "height", MAX_SIDE)
    width = _as_uint(getattr(msg, "width", None), "width", MAX_SIDE)
    step = _as_uint(getattr(msg, "step", None), "step", MAX_BYTES)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f"image step {step} B is smaller than one row of {width} x "
                         f"{channels} x {dtype.itemsize} B = {row_bytes} B")
    if step * height > MAX_BYTES:
        raise ValueError(f"image of {step} x {height} B exceeds {MAX_BYTES} B; corrupt header?")
    raw = _buffer_bytes(getattr(msg, "data", None), "image")
    if raw.size < step * height:
        raise ValueError(f"image data has {raw.size} B, fewer than step x height = "
                         f"{step} x {height} = {step * height} B")
    big_endian = bool(getattr(msg, "is_bigendian", 0)) and dtype.itemsize > 1
    source_dtype = dtype.newbyteorder(">" if big_endian else "<")
    shape = (height, width) if channels == 1 else (height, width, channels)
    strides = ((step, dtype.itemsize) if channels == 1
               else (step, channels * dtype.itemsize, dtype.itemsize))
    view = np.ndarray(shape, dtype=source_dtype, buffer=raw, offset=0, strides=strides)
    if source_dtype != dtype:  # a byte-swapped copy in native order (also non-native hosts)
        return view.astype(dtype)
    return view


def stamp_ns(msg) -> int:
    """``header.stamp`` of a stamped message (Image, CameraInfo, PointCloud2, ...) in ns."""
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


_CHECK_FIELDS_KWARG: dict = {}


def new_message(msg_type, data: array.array | None = None, **fields):
    """Construct a ROS message, storing ``data`` (an ``array.array('B')``) without a copy.

    rclpy's generated ``__init__`` always copies ``data``; its setter keeps an array.array
    as is when field checks are on (``check_fields=True``, newer rosidl) or, on distros
    without ``check_fields`` (Humble), always (its array.array check comes before
    ``if __debug__``). This builds the message without
    data, then assigns it, so a multi-MB image or cloud is not copied twice. Messages built
    with ``check_fields=True`` also type-check later field assignments (AssertionError), as
    with ROS_PYTHON_CHECK_FIELDS=1.
    """
    if _CHECK_FIELDS_KWARG.get(msg_type, True):
        try:
            msg = msg_type(check_fields=True, **fields)
            _CHECK_FIELDS_KWARG[msg_type] = True
        except AssertionError:  # rosidl without check_fields: unknown constructor argument
            _CHECK_FIELDS_KWARG[msg_type] = False
            msg = msg_type(**fields)
    else:
        msg = msg_type(**fields)
    if data is not None:
        msg.data = data
    return msg


def byte_array(array_like: np.ndarray) -> array.array:
    """Copy a C-contiguous numpy array into the array.array('B') rclpy uses for uint8[]."""
    data = array.array("B")
    data.frombytes(memoryview(np.ascontiguousarray(array_like)).cast("B"))
    return data


def zeroed_byte_array(size: int) -> array.array:
    """A zero-filled ``array.array('B')`` of ``size`` bytes (fill it through np.frombuffer)."""
    return array.array("B", bytes(1)) * int(size)


def _pool_references(buffers: dict, key: str) -> int:
    """How many references the buffer ``buffers[key]`` has, counted the same way every time
    (the count a free buffer shows differs between CPython versions: 3.14 borrows locals)."""
    return sys.getrefcount(buffers[key])


def _calibrate_free_count() -> int | None:
    """The reference count of a buffer only the pool holds, or None when an extra holder does
    not show in the count (then buffers are never reused: safe on any interpreter)."""
    probe = {"buffer": array.array("B")}
    free = _pool_references(probe, "buffer")
    holder = probe["buffer"]
    held = _pool_references(probe, "buffer")
    del holder
    return free if held > free else None


#: the reference count of a free pool buffer on this interpreter (None: never reuse)
_FREE_REFERENCES = _calibrate_free_count()


class MessageBuffers:
    """Message data buffers (``array.array('B')``) kept per output and reused between frames.

    A fresh multi-MB buffer per message costs page faults on every frame (a 640x480 cloud's
    9.8 MB: its build took 7.5 ms fresh against 3.5 ms in warm memory). A buffer is handed out
    again only when nothing but the pool still references it, i.e. the message that carried it
    was published and dropped; a message somebody keeps is never overwritten (a new buffer is
    made then). Not thread-safe: one pool per publishing thread and camera.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, array.array] = {}

    def get(self, key: str, size: int) -> array.array:
        """A ``size``-byte buffer for output ``key``; its content is undefined (overwrite all).

        The buffer of the previous frame is resized in place when free (array.array keeps its
        allocation when shrunk by less than half), else a new zeroed one is made.
        """
        size = int(size)
        if (_FREE_REFERENCES is not None and key in self._buffers
                and _pool_references(self._buffers, key) <= _FREE_REFERENCES):
            buffer = self._buffers[key]  # nothing else holds it: free
            if len(buffer) > size:
                del buffer[size:]
            elif len(buffer) < size:
                buffer.frombytes(bytes(size - len(buffer)))
            return buffer
        buffer = zeroed_byte_array(size)
        self._buffers[key] = buffer
        return buffer


def filled_byte_array(image: np.ndarray, out: array.array | None = None) -> array.array:
    """``image``'s bytes in an array.array('B'): a copy into ``out`` when given (its size is
    set to the image's), else a new one (:func:`byte_array`)."""
    if out is None:
        return byte_array(image)
    image = np.asarray(image)
    if len(out) != image.nbytes:
        raise ValueError(f"buffer has {len(out)} B, the image {image.nbytes} B")
    np.frombuffer(out, dtype=image.dtype).reshape(image.shape)[...] = image
    return out


def array_to_image(image: np.ndarray, encoding: str, header=None,
                   out: array.array | None = None):
    """Build a sensor_msgs/Image from a numpy array.

    Args:
        image: (H, W) or (H, W, C) array whose dtype and channels match ``encoding``
            (e.g. float32 (H, W) metres for 32FC1, uint8 (H, W, 3) for rgb8).
        encoding: a supported sensor_msgs encoding.
        header: std_msgs/Header to copy (stamp, frame_id); empty header when None.
        out: the buffer to copy the pixels into (exactly the image's size, e.g. from
            :meth:`MessageBuffers.get`), or None for a new one.

    Returns:
        sensor_msgs.msg.Image in native byte order with step = W x C x itemsize.

    Raises:
        ValueError: unknown encoding, or an array whose dtype/shape does not fit it.
    """
    dtype, channels = encoding_info(encoding)
    image = np.asarray(image)
    shape_ok = (image.ndim == 2 and channels == 1) or (image.ndim == 3 and image.shape[2]
                                                       == channels)
    if not shape_ok:
        wanted = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ValueError(f"encoding {encoding} needs shape {wanted}, got {image.shape}")
    if image.dtype.newbyteorder("=") != dtype.newbyteorder("="):
        raise ValueError(f"encoding {encoding} needs dtype {dtype}, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"cannot publish an empty image of shape {image.shape}")
    height, width = image.shape[:2]
    fields = dict(height=height, width=width, encoding=encoding,
                  is_bigendian=int(sys.byteorder == "big"),
                  step=width * channels * dtype.itemsize,
                  data=filled_byte_array(image.astype(dtype, copy=False), out))
    if header is not None:
        fields["header"] = header
    from sensor_msgs.msg import Image

    return new_message(Image, **fields)


def labels_to_image(labels: np.ndarray, header=None, buffers: MessageBuffers | None = None,
                    key: str = "semantic"):
    """Build a class-id Image: ``mono8`` for uint8 ids, ``mono16`` for any other integer ids.

    The encoding follows the dtype, not the values, so a model (whose Predictor returns uint8
    for up to 255 classes, else uint16) publishes one encoding on every frame.

    ``buffers`` / ``key``: where the pixel buffer comes from (:class:`MessageBuffers`), or a
    new one when None.

    Raises:
        ValueError: not (H, W) integer ids in 0..65535.
    """
    labels = np.asarray(labels)
    if labels.dtype == np.uint8:
        out = None if buffers is None else buffers.get(key, labels.nbytes)
        return array_to_image(labels, "mono8", header, out)
    if labels.dtype.kind not in "ui" or (labels.size and not 0 <= labels.min() <= labels.max()
                                         <= 65535):
        raise ValueError(f"class ids must be integers in 0..65535, got {labels.dtype} "
                         f"ids {labels.min(initial=0)}..{labels.max(initial=0)}")
    out = None if buffers is None else buffers.get(key, labels.size * 2)
    return array_to_image(labels.astype(np.uint16, copy=False), "mono16", header, out)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale an integer or float image to uint8 (16-bit: top byte; float: [0, 1] -> [0, 255])."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype.kind == "f":
        if not np.isfinite(image).all():
            bad = int(image.size - np.isfinite(image).sum())
            raise ValueError(f"float image has {bad} non-finite (NaN/inf) values")
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"cannot use a {image.dtype} image as a colour image")


def _cv2_rgb_conversion(encoding: str):
    import cv2

    if encoding.startswith("bayer_"):
        # OpenCV names Bayer patterns by the second row's first two pixels.
        pattern = encoding[len("bayer_"):].rstrip("0123456789").upper()
        opencv_name = {"RGGB": "BG", "BGGR": "RG", "GBRG": "GR", "GRBG": "GB"}[pattern]
        return getattr(cv2, f"COLOR_BAYER_{opencv_name}2RGB")
    if encoding in ("uyvy", "yuv422"):
        return cv2.COLOR_YUV2RGB_UYVY
    return cv2.COLOR_YUV2RGB_YUYV


def image_to_rgb(msg) -> np.ndarray:
    """Convert a camera Image of any supported encoding to (H, W, 3) uint8 RGB.

    BGR(A) is reordered, alpha dropped, mono replicated, 16-bit reduced to its top byte, float
    images read as intensities in [0, 1] (ValueError if any value is NaN/inf), Bayer demosaiced
    and YUV 4:2:2 converted with OpenCV. A view (no copy) for rgb8 without padding.
    """
    image = image_to_array(msg)
    encoding = msg.encoding
    if encoding.startswith("bayer_") or encoding in ("uyvy", "yuv422", "yuyv", "yuv422_yuy2"):
        import cv2

        if encoding.startswith("bayer_") and min(image.shape[:2]) < 2:
            raise ValueError(f"{encoding} image of {image.shape[1]}x{image.shape[0]} is "
                             "smaller than one 2x2 Bayer cell")
        if not encoding.startswith("bayer_") and image.shape[1] % 2:
            raise ValueError(f"{encoding} image width {image.shape[1]} is odd; YUV 4:2:2 "
                             "needs pixel pairs")
        try:
            return cv2.cvtColor(np.ascontiguousarray(_to_uint8(image)),
                                _cv2_rgb_conversion(encoding))
        except cv2.error as exc:
            raise ValueError(f"OpenCV could not convert the {encoding} image: "
                             f"{str(exc).strip().splitlines()[-1]}") from None
    image = _to_uint8(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 2:
        raise ValueError(f"encoding {encoding} has 2 channels; not a colour image")
    if encoding.startswith("bgr"):
        return image[:, :, 2::-1]
    return image[:, :, :3]


def compressed_to_rgb(msg) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (jpeg/png) to (H, W, 3) uint8 RGB via OpenCV.

    Raises:
        ValueError: empty data, compressedDepth payloads, or bytes OpenCV cannot decode.
    """
    import cv2

    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower():
        raise ValueError(f"CompressedImage format {fmt!r} is a compressed depth image, "
                         "not a colour image")
    raw = _buffer_bytes(getattr(msg, "data", None), "CompressedImage")
    if raw.size == 0:
        raise ValueError("CompressedImage has no data")
    if raw.size > MAX_BYTES:
        raise ValueError(f"CompressedImage of {raw.size} B is absurd")
    decoded = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ValueError(f"CompressedImage ({fmt or 'no format'}, {raw.size} B) could not be "
                         "decoded as jpeg/png")
    decoded = _to_uint8(decoded)
    if decoded.ndim == 2:
        return np.repeat(decoded[:, :, None], 3, axis=2)
    code = cv2.COLOR_BGRA2RGB if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(decoded, code)


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", header=None, quality: int = 90):
    """Encode (H, W, 3) uint8 RGB as a sensor_msgs/CompressedImage (``jpeg`` or ``png``)."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    if fmt not in ("jpeg", "png"):
        raise ValueError(f"compressed format must be 'jpeg' or 'png', got {fmt!r}")

    rgb = np.asarray(rgb)
    problem = rgb8_problem(rgb)
    if problem:
        raise ValueError(f"cannot encode the image: {problem}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, encoded = cv2.imencode(".jpg" if fmt == "jpeg" else ".png",
                               cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    fields = {} if header is None else {"header": header}
    return new_message(CompressedImage, data=byte_array(encoded),
                       format=f"rgb8; {fmt} compressed bgr8", **fields)


def camera_info_to_intrinsics(msg) -> PinholeIntrinsics:
    """Pinhole intrinsics of the image a CameraInfo describes (K, binning and ROI applied).

    Uses K (the raw, unrectified camera, which is what the node receives); a region of
    interest shifts the principal point, binning divides focal lengths and principal point.

    Raises:
        ValueError: zero/absurd size, K with non-positive or non-finite focal lengths (an
            uncalibrated camera publishes all zeros), malformed K.
    """
    width = _as_uint(getattr(msg, "width", None), "width", MAX_SIDE)
    height = _as_uint(getattr(msg, "height", None), "height", MAX_SIDE)
    try:
        k = np.asarray(getattr(msg, "k", None), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError("camera_info K is not 9 numbers") from None
    if k.size != 9:
        raise ValueError(f"camera_info K has {k.size} values, expected 9")
    if not np.isfinite(k).all() or k[0] <= 0 or k[4] <= 0:
        raise ValueError(f"camera_info K has fx={k[0]}, fy={k[4]}: the camera is not "
                         "calibrated (set fallback_fov or calibrate it)")
    fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    roi = getattr(msg, "roi", None)
    if roi is not None and roi.width > 0 and roi.height > 0 and (
            roi.width, roi.height) != (width, height):
        cx, cy = cx - roi.x_offset, cy - roi.y_offset
        width, height = roi.width, roi.height
    bin_x = max(1, int(getattr(msg, "binning_x", 0) or 1))
    bin_y = max(1, int(getattr(msg, "binning_y", 0) or 1))
    if bin_x > 1 or bin_y > 1:
        fx, cx, fy, cy = fx / bin_x, cx / bin_x, fy / bin_y, cy / bin_y
        width, height = width // bin_x, height // bin_y
        if width == 0 or height == 0:
            raise ValueError(f"camera_info binning {bin_x}x{bin_y} leaves an empty image")
    return PinholeIntrinsics(float(fx), float(fy), float(cx), float(cy), int(width), int(height))


def intrinsics_to_camera_info(intrinsics: PinholeIntrinsics, header=None, distortion=None,
                              distortion_model: str = "plumb_bob"):
    """Build a CameraInfo (K, R = identity, P = [K | 0], size) for ``intrinsics``.

    Args:
        intrinsics: the image's pinhole intrinsics in pixels.
        header: std_msgs/Header to copy; empty when None.
        distortion: D coefficients (default: five zeros, i.e. an undistorted image).
        distortion_model: ``plumb_bob`` (5 coefficients) or ``rational_polynomial`` (8).
    """
    from sensor_msgs.msg import CameraInfo

    fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise ValueError(f"invalid intrinsics {intrinsics}")
    msg = CameraInfo(width=int(intrinsics.width), height=int(intrinsics.height),
                     distortion_model=distortion_model,
                     d=[float(v) for v in (distortion if distortion is not None else [0.0] * 5)],
                     k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], dtype=np.float64),
                     r=np.eye(3).reshape(-1),
                     p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], dtype=np.float64))
    if header is not None:
        msg.header = header
    return msg
