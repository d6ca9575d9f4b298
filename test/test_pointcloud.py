"""Organized PointCloud2 building/reading and PLY export (synergy_ros.ros.pointcloud)."""
import struct

import numpy as np
import pytest

from synergy_ros.core.geometry import PinholeIntrinsics

pytest.importorskip("sensor_msgs.msg")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from synergy_ros.ros import pointcloud as pc  # noqa: E402

# ROS 2 message classes / serialization: run on Kilted and Jazzy (make test)
pytestmark = pytest.mark.ros

RNG = np.random.default_rng(3)
K = PinholeIntrinsics(fx=52.0, fy=48.0, cx=15.3, cy=11.7, width=32, height=24)


def _scene(height=24, width=32):
    depth = RNG.uniform(0.5, 6.0, (height, width)).astype(np.float32)
    depth[0, 0], depth[1, 2], depth[3, 3], depth[4, 4] = np.nan, 0.0, -1.0, np.inf
    rgb = RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)
    labels = RNG.integers(0, 300, (height, width)).astype(np.uint16)
    return depth, rgb, labels


def _expected_xyz(depth, k, us, vs):
    """Independent pinhole back-projection: x = (u - cx) z / fx, y = (v - cy) z / fy."""
    z = depth.astype(np.float64)
    valid = np.isfinite(z) & (z > 0)
    z = np.where(valid, z, np.nan)
    return (us[None, :] - k.cx) * z / k.fx, (vs[:, None] - k.cy) * z / k.fy, z


def test_layout_matches_depth_image_proc_xyzrgb_plus_label():
    depth, rgb, labels = _scene()
    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec = 42
    msg = pc.build_pointcloud2(depth, rgb, labels, K, header)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1), ("rgb", 16, PointField.FLOAT32, 1),
        ("label", 20, PointField.UINT32, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (24, 32, 32, 32 * 32)
    assert msg.is_dense is False and len(msg.data) == 24 * 32 * 32
    assert msg.header.frame_id == "camera_optical_frame" and msg.header.stamp.sec == 42
    wire = deserialize_message(serialize_message(msg), PointCloud2)  # valid for the C layer
    assert bytes(wire.data) == bytes(msg.data) and wire.fields[4].name == "label"


def test_values_match_pinhole_back_projection():
    depth, rgb, labels = _scene()
    cloud = pc.pointcloud2_to_array(pc.build_pointcloud2(depth, rgb, labels, K))
    x, y, z = _expected_xyz(depth, K, np.arange(32.0), np.arange(24.0))
    np.testing.assert_allclose(cloud["x"], x, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(cloud["y"], y, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(cloud["z"], z, rtol=1e-6, equal_nan=True)
    for v, u in [(0, 0), (1, 2), (3, 3), (4, 4)]:
        assert np.isnan([cloud["x"][v, u], cloud["y"][v, u], cloud["z"][v, u]]).all()
    np.testing.assert_array_equal(pc.unpack_rgb(cloud["rgb"]), rgb)  # colour kept for NaNs
    np.testing.assert_array_equal(cloud["label"], labels)


def test_rgb_is_0x00rrggbb_in_float_bits():
    depth = np.ones((1, 1), np.float32)
    msg = pc.build_pointcloud2(depth, np.array([[[0x12, 0x34, 0x56]]], np.uint8), None,
                               PinholeIntrinsics(1, 1, 0, 0, 1, 1))
    (bits,) = struct.unpack_from("<I", bytes(msg.data), 16)
    assert bits == 0x00123456
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"] and msg.point_step == 32


def test_max_range_sets_far_points_to_nan():
    depth = np.array([[1.0, 4.9, 5.0, 5.1, 20.0]], np.float32)
    cloud = pc.pointcloud2_to_array(pc.build_pointcloud2(
        depth, None, None, PinholeIntrinsics(2, 2, 2, 0, 5, 1), max_range=5.0))
    np.testing.assert_array_equal(np.isnan(cloud["z"][0]), [False, False, False, True, True])
    assert [f.name for f in pc.build_pointcloud2(depth, None, None, PinholeIntrinsics(
        2, 2, 2, 0, 5, 1)).fields] == ["x", "y", "z"]


@pytest.mark.parametrize("decimation", [2, 3, 5])
def test_decimation_keeps_every_dth_pixel_with_the_same_3d_points(decimation):
    depth, rgb, labels = _scene(23, 31)  # odd sizes: ceil(H/d) x ceil(W/d)
    k = PinholeIntrinsics(40.0, 41.0, 14.8, 10.9, 31, 23)
    full = pc.pointcloud2_to_array(pc.build_pointcloud2(depth, rgb, labels, k))
    small = pc.pointcloud2_to_array(pc.build_pointcloud2(depth, rgb, labels, k,
                                                         decimation=decimation))
    assert small.shape == (-(-23 // decimation), -(-31 // decimation))
    sub = full[::decimation, ::decimation]
    for name in ("x", "y", "z"):
        np.testing.assert_allclose(small[name], sub[name], rtol=1e-5, atol=1e-6,
                                   equal_nan=True)
    np.testing.assert_array_equal(small["label"], sub["label"])
    np.testing.assert_array_equal(small["rgb"].view(np.uint32), sub["rgb"].view(np.uint32))


@pytest.mark.parametrize("kwargs,reason", [
    (dict(decimation=0), "decimation"), (dict(max_range=0.0), "max_range"),
    (dict(rgb=np.zeros((2, 2, 3), np.uint8)), "rgb has shape"),
    (dict(labels=np.zeros((24, 32), np.float32)), "integer class ids"),
])
def test_build_rejects_bad_arguments(kwargs, reason):
    depth, rgb, labels = _scene()
    args = dict(depth=depth, rgb=rgb, labels=labels, intrinsics=K)
    args.update(kwargs)
    with pytest.raises(ValueError, match=reason):
        pc.build_pointcloud2(**args)


def test_reader_handles_big_endian_and_rejects_malformed_clouds():
    xyz = np.arange(12, dtype=">f4").reshape(2, 2, 3)
    msg = PointCloud2(height=2, width=2, is_bigendian=True, point_step=12, row_step=24,
                      fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32,
                                         count=1) for i, n in enumerate("xyz")],
                      data=list(xyz.tobytes()))
    np.testing.assert_array_equal(pc.pointcloud2_to_array(msg)["z"], [[2, 5], [8, 11]])
    msg.row_step = 10
    with pytest.raises(ValueError, match="row_step"):
        pc.pointcloud2_to_array(msg)
    msg.row_step, msg.data = 24, list(bytes(20))
    with pytest.raises(ValueError, match="fewer than"):
        pc.pointcloud2_to_array(msg)
    msg.fields[2].offset = 10
    with pytest.raises(ValueError, match="does not fit"):
        pc.pointcloud2_to_array(msg)


def _read_ply(path):
    """Minimal independent PLY reader: header lines and a numpy view of the vertices."""
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    count = int(next(line.split()[2] for line in header if line.startswith("element vertex")))
    props = [line.split()[1:] for line in header if line.startswith("property")]
    kinds = {"float": "<f4", "uchar": "u1", "uint": "<u4"}
    dtype = np.dtype([(name, kinds[kind]) for kind, name in props])
    if "format ascii 1.0" in header:
        rows = np.loadtxt(raw[end:].decode("ascii").splitlines(), ndmin=2)
        out = np.empty(len(rows), dtype)
        for i, name in enumerate(dtype.names):
            out[name] = rows[:, i]
        return header, out
    assert "format binary_little_endian 1.0" in header
    return header, np.frombuffer(raw[end:], dtype=dtype, count=count)


@pytest.mark.parametrize("binary", [True, False])
def test_write_ply_skips_invalid_points_and_round_trips(tmp_path, binary):
    depth, rgb, labels = _scene()
    cloud = pc.pointcloud2_to_array(pc.build_pointcloud2(depth, rgb, labels, K))
    points = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1)
    path = tmp_path / "cloud.ply"
    written = pc.write_ply(path, points, rgb, labels, binary=binary)
    valid = np.isfinite(points).all(axis=-1)
    assert written == int(valid.sum()) == 24 * 32 - 4
    header, vertices = _read_ply(path)
    assert header[0] == "ply" and f"element vertex {written}" in header
    np.testing.assert_allclose(np.stack([vertices["x"], vertices["y"], vertices["z"]], -1),
                               points[valid], rtol=1e-6)
    np.testing.assert_array_equal(np.stack([vertices["red"], vertices["green"],
                                            vertices["blue"]], -1), rgb[valid])
    np.testing.assert_array_equal(vertices["label"], labels[valid])
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary behind


def test_write_ply_opens_in_open3d_where_installed(tmp_path):
    o3d = pytest.importorskip("open3d", reason="open3d not installed here")
    points = RNG.uniform(-1, 1, (50, 3)).astype(np.float32)
    pc.write_ply(tmp_path / "c.ply", points, RNG.integers(0, 256, (50, 3), dtype=np.uint8))
    cloud = o3d.io.read_point_cloud(str(tmp_path / "c.ply"))
    np.testing.assert_allclose(np.asarray(cloud.points), points, rtol=1e-6)


def test_matches_sensor_msgs_py_where_installed():
    point_cloud2 = pytest.importorskip("sensor_msgs_py.point_cloud2",
                                       reason="sensor_msgs_py is not on PyPI; runs on ROS")
    depth, rgb, labels = _scene()
    msg = pc.build_pointcloud2(depth, rgb, labels, K)
    theirs = point_cloud2.read_points_numpy(msg, field_names=["x", "y", "z"])
    ours = pc.pointcloud2_to_array(msg)
    np.testing.assert_array_equal(theirs[:, 2], ours["z"].reshape(-1))


def test_dense_cloud_taken_at_indices_equals_the_selected_records():
    from synergy_ros.ros.pointcloud import POINT_STEP, dense_cloud_message

    records = np.arange(10 * POINT_STEP // 4, dtype=np.uint32).reshape(10, POINT_STEP // 4)
    index = np.array([1, 4, 9])
    taken = dense_cloud_message(records, index=index)
    assert (taken.width, taken.height, taken.is_dense) == (3, 1, True)
    assert bytes(taken.data) == bytes(dense_cloud_message(records[index]).data)
    assert dense_cloud_message(records, index=np.array([], np.intp)).width == 0
    with pytest.raises(ValueError, match="out of range"):
        dense_cloud_message(records, index=np.array([10]))


@pytest.mark.parametrize("shape", [(5, 3), (4, 6, 3), (0, 3), (1, 1, 3)])
def test_pack_rgb_matches_the_bit_formula(shape):
    rgb = RNG.integers(0, 256, shape, dtype=np.uint8)
    expected = ((rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8)
                | rgb[..., 2])
    packed = pc.pack_rgb(rgb)
    assert packed.dtype == np.uint32 and packed.shape == shape[:-1]
    np.testing.assert_array_equal(packed, expected)
    np.testing.assert_array_equal(pc.unpack_rgb(packed), rgb)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        pc.pack_rgb(rgb[..., :2])


@pytest.mark.parametrize("with_rgb,with_label", [(True, True), (False, True), (True, False),
                                                 (False, False)])
def test_write_records_overwrites_every_word(with_rgb, with_label):
    """The records may be a reused buffer: every word is written, padding zero."""
    depth, rgb, labels = _scene()
    z = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32)
    words = 8 if (with_rgb or with_label) else 4
    records = np.full((24, 32, words), 0xFFFFFFFF, np.uint32)
    pc.write_records(records, z, K, rgb if with_rgb else None, labels if with_label else None)
    x, y, _ = _expected_xyz(depth, K, np.arange(32.0), np.arange(24.0))
    np.testing.assert_allclose(records.view(np.float32)[..., 0], x, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(records.view(np.float32)[..., 1], y, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(records.view(np.float32)[..., 2], z)
    assert (records[..., 3] == 0).all()
    if words == 8:
        assert (records[..., 6:] == 0).all()
        np.testing.assert_array_equal(records[..., 4], pc.pack_rgb(rgb) if with_rgb else 0)
        np.testing.assert_array_equal(records[..., 5], labels if with_label else 0)
    with pytest.raises(ValueError, match="intrinsics"):
        pc.write_records(records[:3], z[:3], K, rgb[:3], labels[:3])
    with pytest.raises(ValueError, match="records must be"):
        pc.write_records(records[..., :2], z, K)


def test_write_records_into_a_strided_one_column_view():
    """numpy calls a one-column slice C-contiguous whatever its strides; OpenCV cannot write
    into it, so the records are merged aside and copied in."""
    wide = np.full((3, 2, 4), 7, np.uint32)
    z = np.array([[1.0], [2.0], [np.nan]], np.float32)
    k = PinholeIntrinsics(fx=2.0, fy=2.0, cx=0.0, cy=1.0, width=1, height=3)
    pc.write_records(wide[:, ::2], z, k)
    np.testing.assert_array_equal(wide[:, 0].view(np.float32)[:, 2], z[:, 0])
    assert (wide[:, 0, 3] == 0).all() and (wide[:, 1] == 7).all()  # the other column untouched
