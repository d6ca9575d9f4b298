"""Image / CompressedImage / CameraInfo conversions without cv_bridge (ros.conversions)."""
import array
import math

import numpy as np
import pytest

from synergy_ros.core.geometry import PinholeIntrinsics

pytest.importorskip("sensor_msgs.msg")
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from synergy_ros.ros import conversions as conv  # noqa: E402

# ROS 2 message classes / serialization: run on Kilted and Jazzy (make test)
pytestmark = pytest.mark.ros

RNG = np.random.default_rng(7)

# encoding -> (dtype, channels) examples the node and the other modules use
CASES = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4), "mono8": (np.uint8, 1), "mono16": (np.uint16, 1),
    "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3), "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}


def _random_image(dtype, channels, height=5, width=7):
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def _manual_message(image, encoding, step=None, bigendian=False):
    """An Image built byte by byte (independently of array_to_image), optional row padding."""
    height, width = image.shape[:2]
    row = image.astype(image.dtype.newbyteorder(">" if bigendian else "<"))
    row_bytes = row[0].nbytes
    step = step or row_bytes
    payload = bytearray()
    for r in range(height):
        payload += row[r].tobytes() + bytes([0xAB]) * (step - row_bytes)
    return Image(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                 step=step, data=array.array("B", bytes(payload)))


@pytest.mark.parametrize("encoding", sorted(CASES))
def test_round_trip_every_encoding(encoding):
    dtype, channels = CASES[encoding]
    image = _random_image(dtype, channels)
    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = conv.array_to_image(image, encoding, header)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * np.dtype(dtype).itemsize
    assert len(msg.data) == msg.step * msg.height
    assert msg.header.frame_id == "camera_optical_frame" and msg.header.stamp.nanosec == 345
    back = conv.image_to_array(msg)
    assert back.dtype == np.dtype(dtype) and back.shape == image.shape
    np.testing.assert_array_equal(back, image)


def test_image_to_array_is_zero_copy_view_of_msg_data():
    msg = conv.array_to_image(_random_image(np.float32, 1), "32FC1")
    assert isinstance(msg.data, array.array)  # what rclpy stores for uint8[]
    view = conv.image_to_array(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, dtype=np.uint8))


@pytest.mark.parametrize("encoding,pad", [("rgb8", 3), ("16UC1", 5), ("32FC1", 4),
                                          ("mono8", 1), ("bgra8", 16)])
def test_padded_step_is_honoured(encoding, pad):
    dtype, channels = CASES[encoding]
    image = _random_image(dtype, channels, height=4, width=6)
    msg = _manual_message(image, encoding, step=image[0].nbytes + pad)
    back = conv.image_to_array(msg)
    np.testing.assert_array_equal(back, image)
    assert np.shares_memory(back, np.frombuffer(msg.data, dtype=np.uint8))


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1", "mono16"])
def test_big_endian_images_are_byte_swapped(encoding):
    dtype, channels = CASES[encoding]
    image = _random_image(dtype, channels)
    back = conv.image_to_array(_manual_message(image, encoding, step=image[0].nbytes + 2,
                                               bigendian=True))
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, image)


def test_generic_opencv_encodings():
    image = _random_image(np.int16, 2)
    np.testing.assert_array_equal(conv.image_to_array(conv.array_to_image(image, "16SC2")),
                                  image)
    assert conv.encoding_info("64FC4") == (np.dtype(np.float64), 4)


def test_image_to_rgb_reorders_channels_and_scales():
    rgb = _random_image(np.uint8, 3)
    for encoding, stored in [("rgb8", rgb), ("bgr8", rgb[:, :, ::-1]),
                             ("rgba8", np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])),
                             ("bgra8", np.dstack([rgb[:, :, ::-1],
                                                  np.zeros(rgb.shape[:2], np.uint8)]))]:
        out = conv.image_to_rgb(conv.array_to_image(stored, encoding))
        assert out.shape == rgb.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)
    mono16 = np.full((3, 4), 0x8123, np.uint16)
    np.testing.assert_array_equal(conv.image_to_rgb(conv.array_to_image(mono16, "mono16")),
                                  np.full((3, 4, 3), 0x81, np.uint8))


def test_image_to_rgb_rejects_nan_float_images():
    with pytest.raises(ValueError, match="non-finite"):
        conv.image_to_rgb(conv.array_to_image(np.full((4, 4), np.nan, np.float32), "32FC1"))


def test_bayer_and_yuv_are_converted_with_opencv():
    colour = np.array([200, 100, 50], np.uint8)
    height, width = 8, 10
    mosaic = np.zeros((height, width), np.uint8)  # RGGB: R at (even, even), B at (odd, odd)
    mosaic[0::2, 0::2] = colour[0]
    mosaic[0::2, 1::2] = colour[1]
    mosaic[1::2, 0::2] = colour[1]
    mosaic[1::2, 1::2] = colour[2]
    rgb = conv.image_to_rgb(conv.array_to_image(mosaic, "bayer_rggb8"))
    assert rgb.shape == (height, width, 3)
    np.testing.assert_allclose(rgb[2:-2, 2:-2].reshape(-1, 3).mean(0), colour, atol=2)
    uyvy = np.full((height, width, 2), 128, np.uint8)  # U=V=128 (no colour), Y=128
    rgb = conv.image_to_rgb(conv.array_to_image(uyvy, "uyvy"))
    assert rgb.shape == (height, width, 3) and abs(int(rgb.mean()) - 128) <= 2


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_round_trip(fmt):
    yy, xx = np.mgrid[0:32, 0:48]
    rgb = np.dstack([xx * 5, yy * 7, (xx + yy) * 3]).astype(np.uint8)  # smooth: jpeg-friendly
    msg = conv.rgb_to_compressed(rgb, fmt, header=Header(frame_id="cam"))
    assert isinstance(msg, CompressedImage) and fmt in msg.format
    out = conv.compressed_to_rgb(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if fmt == "png":
        np.testing.assert_array_equal(out, rgb)
    else:
        assert np.abs(out.astype(int) - rgb).mean() < 4


def test_compressed_garbage_raises_value_error():
    for data in (b"", b"\x89PNG not really", bytes(RNG.integers(0, 255, 500, dtype=np.uint8))):
        with pytest.raises(ValueError):
            conv.compressed_to_rgb(CompressedImage(format="jpeg", data=array.array("B", data)))
    with pytest.raises(ValueError, match="compressed depth"):
        conv.compressed_to_rgb(CompressedImage(format="16UC1; compressedDepth png",
                                               data=array.array("B", b"1234")))


def _unchecked(built):
    """A copy as a subscriber receives it: rclpy's default, no field checks on assignment."""
    msg = Image()
    for name in ("header", "height", "width", "encoding", "is_bigendian", "step", "data"):
        setattr(msg, name, getattr(built, name))
    return msg


@pytest.mark.parametrize("mutate,reason", [
    (dict(encoding="yuv420p_nope"), "unsupported image encoding"),
    (dict(width=0), "width is 0"),
    (dict(height=0), "height is 0"),
    (dict(step=5), "smaller than one row"),
    (dict(height=1 << 20), "absurd"),
    (dict(data=array.array("B", b"\x00" * 10)), "fewer than step x height"),
    (dict(width="7"), "must be an integer"),
])
def test_malformed_images_raise_value_error_with_reason(mutate, reason):
    msg = _unchecked(conv.array_to_image(_random_image(np.uint8, 3), "rgb8"))
    for key, value in mutate.items():
        setattr(msg, key, value)
    with pytest.raises(ValueError, match=reason):
        conv.image_to_array(msg)


def test_labels_to_image_encoding_follows_the_dtype():
    small = np.array([[0, 3], [7, 1]], np.uint16)  # uint16 ids below 256 stay mono16
    for ids, encoding in ((small.astype(np.uint8), "mono8"), (small, "mono16"),
                          (small.astype(np.int64) * 100, "mono16")):
        msg = conv.labels_to_image(ids, Header(frame_id="cam"))
        assert (msg.encoding, msg.header.frame_id) == (encoding, "cam")
        np.testing.assert_array_equal(conv.image_to_array(msg), ids)
    for bad in (np.array([[70000]]), np.array([[-1]]), np.array([[0.5]])):
        with pytest.raises(ValueError, match="0..65535"):
            conv.labels_to_image(bad)


def test_array_to_image_rejects_mismatched_arrays():
    with pytest.raises(ValueError, match="shape"):
        conv.array_to_image(np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="dtype"):
        conv.array_to_image(np.zeros((4, 4), np.float64), "32FC1")
    with pytest.raises(ValueError, match="unsupported"):
        conv.array_to_image(np.zeros((4, 4), np.uint8), "jpeg")


def _fuzzed_message(rng):
    """A message derived from a valid one with 1-3 random fields corrupted."""
    encodings = sorted(CASES) + ["bayer_grbg8", "uyvy", "64FC2", "", "RGB8", "rgb 8", "32FC5"]
    encoding = str(rng.choice(sorted(CASES)))
    dtype, channels = CASES[encoding]
    image = _random_image(dtype, channels, int(rng.integers(1, 9)), int(rng.integers(1, 9)))
    msg = _unchecked(conv.array_to_image(image, encoding))
    ints = [0, 1, 2, 3, 7, 8, 64, -1, -(1 << 31), (1 << 32) - 1, 1 << 40, 255, 1 << 15,
            (1 << 15) + 1]
    for _ in range(int(rng.integers(1, 4))):
        field = str(rng.choice(["height", "width", "step", "encoding", "data", "is_bigendian",
                                "type"]))
        if field == "encoding":
            msg.encoding = str(rng.choice(encodings))
        elif field == "data":
            size = int(rng.choice([0, 1, len(msg.data) - 1, len(msg.data) // 2,
                                   len(msg.data) + 3]))
            msg.data = array.array("B", bytes(rng.integers(0, 256, max(size, 0),
                                                           dtype=np.uint8)))
        elif field == "is_bigendian":
            msg.is_bigendian = int(rng.integers(0, 2))
        elif field == "type":  # wrong Python types (rclpy does not check fields by default)
            setattr(msg, str(rng.choice(["height", "width", "step"])),
                    [None, 3.5, "12", b"\x01", [4]][int(rng.integers(0, 5))])
        else:
            value = int(rng.choice(ints)) if rng.random() < 0.6 else int(rng.integers(0, 50))
            setattr(msg, field, value)
    return msg


def test_fuzz_1000_malformed_images_raise_only_value_error():
    rng = np.random.default_rng(2024)
    outcomes = {"ok": 0, "ValueError": 0}
    for i in range(1500):
        msg = _fuzzed_message(rng)
        try:
            out = conv.image_to_array(msg)
        except ValueError as exc:
            assert str(exc), "ValueError without a reason"
            outcomes["ValueError"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"message {i} ({msg.encoding!r} {msg.height}x{msg.width} step "
                        f"{msg.step!r}, {len(msg.data)} B) raised {type(exc).__name__}: {exc}")
        outcomes["ok"] += 1
        assert out.shape[:2] == (msg.height, msg.width)
        try:  # the RGB path must also only raise ValueError (e.g. 2-channel, NaN floats)
            conv.image_to_rgb(msg)
        except ValueError:
            pass
    assert outcomes["ValueError"] >= 1000, outcomes  # mostly malformed, some still valid
    assert outcomes["ok"] > 0, outcomes


def test_fuzz_compressed_images_raise_only_value_error():
    rng = np.random.default_rng(5)
    valid = conv.rgb_to_compressed(_random_image(np.uint8, 3), "jpeg").data.tobytes()
    for _ in range(200):
        data = bytearray(valid[:int(rng.integers(0, len(valid)))])
        for pos in rng.integers(0, max(len(data), 1), 5):
            if pos < len(data):
                data[pos] = int(rng.integers(0, 256))
        try:
            conv.compressed_to_rgb(CompressedImage(format="jpeg", data=array.array("B", data)))
        except ValueError:
            pass


def test_camera_info_round_trip_and_adjustments():
    intrinsics = PinholeIntrinsics(500.0, 510.0, 319.5, 239.5, 640, 480)
    header = Header(frame_id="cam")
    info = conv.intrinsics_to_camera_info(intrinsics, header)
    assert (info.width, info.height, info.header.frame_id) == (640, 480, "cam")
    np.testing.assert_array_equal(info.r, np.eye(3).reshape(-1))
    np.testing.assert_array_equal(info.p, [500, 0, 319.5, 0, 0, 510, 239.5, 0, 0, 0, 1, 0])
    assert list(info.d) == [0.0] * 5 and info.distortion_model == "plumb_bob"
    assert conv.camera_info_to_intrinsics(info) == intrinsics
    info.binning_x = info.binning_y = 2
    binned = conv.camera_info_to_intrinsics(info)
    assert (binned.width, binned.height, binned.fx, binned.cx) == (320, 240, 250.0, 159.75)
    info.binning_x = info.binning_y = 0
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 100, 50, 200, 100
    cropped = conv.camera_info_to_intrinsics(info)
    assert (cropped.width, cropped.height, cropped.cx, cropped.cy) == (200, 100, 219.5, 189.5)


@pytest.mark.parametrize("mutate,reason", [
    (dict(k=np.zeros(9)), "not calibrated"),
    (dict(k=np.array([math.nan] * 9)), "not calibrated"),
    (dict(width=0), "width is 0"),
])
def test_bad_camera_info_raises_value_error(mutate, reason):
    info = conv.intrinsics_to_camera_info(PinholeIntrinsics(5, 5, 2, 2, 4, 4))
    for key, value in mutate.items():
        setattr(info, key, value)
    with pytest.raises(ValueError, match=reason):
        conv.camera_info_to_intrinsics(info)
    assert isinstance(CameraInfo(), CameraInfo)


def test_matches_cv_bridge_where_installed():
    """On a ROS install with a working cv_bridge, both codecs must agree byte for byte."""
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge not installed (PyPI build "
                                    "is broken with numpy 2); runs on ROS machines")
    bridge = cv_bridge.CvBridge()
    for encoding, (dtype, channels) in CASES.items():
        image = _random_image(dtype, channels)
        ours = conv.array_to_image(image, encoding)
        theirs = bridge.cv2_to_imgmsg(image, encoding=encoding)
        assert bytes(ours.data) == bytes(theirs.data) and ours.step == theirs.step
        np.testing.assert_array_equal(conv.image_to_array(theirs),
                                      bridge.imgmsg_to_cv2(ours, "passthrough"))
