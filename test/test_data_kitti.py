"""KITTI loaders on tiny fixtures in KITTI's on-disk formats."""
import cv2
import numpy as np
import pytest

from synergy_ros.core.errors import SynergyError
from synergy_ros.data.kitti import (KittiDataset, KittiStereoDataset, parse_split_file,
                                    project_velodyne, velodyne_to_image_matrix)

DATE, DRIVE = "2011_09_26", "2011_09_26_drive_0002_sync"
H, W, F = 12, 20, 10.0
CX, CY = 10.0, 6.0


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _calib(raw_root):
    """calib files in KITTI's text format: velodyne (x fwd, y left, z up) -> camera axes."""
    date_dir = raw_root / DATE
    date_dir.mkdir(parents=True, exist_ok=True)
    p2 = f"{F} 0 {CX} 0 0 {F} {CY} 0 0 0 1 0"
    p3 = f"{F} 0 {CX} {-0.54 * F} 0 {F} {CY} 0 0 0 1 0"
    (date_dir / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n"
        f"S_rect_02: {W} {H}\nR_rect_00: 1 0 0 0 1 0 0 0 1\nP_rect_02: {p2}\n"
        f"S_rect_03: {W} {H}\nP_rect_03: {p3}\n")
    (date_dir / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\nR: 0 -1 0 0 0 -1 1 0 0\nT: 0 0 0\n"
        "delta_f: 0 0\ndelta_c: 0 0\n")


def _raw(raw_root, frames=(0, 1, 2)):
    _calib(raw_root)
    for frame in frames:
        rgb = np.random.default_rng(frame).integers(0, 256, (H, W, 3), dtype=np.uint8)
        _png(raw_root / DATE / DRIVE / "image_02" / "data" / f"{frame:010d}.png", rgb)
        # two returns on one pixel (the nearer must win) and one behind the car
        scan = np.array([[10.0, 0.0, 0.0, 0.5], [20.0, 0.0, 0.0, 0.5],
                         [5.0, -1.0, 0.5, 0.2], [-4.0, 0.0, 0.0, 0.1]], np.float32)
        scan[:, 0] += frame
        path = raw_root / DATE / DRIVE / "velodyne_points" / "data" / f"{frame:010d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        scan.tofile(path)


def _benchmark(depth_root, frames=(0, 1, 2), split="train"):
    out = {}
    for frame in frames:
        depth = np.zeros((H, W), np.uint16)
        depth[5, 7] = int(12.5 * 256)
        depth[8, 3] = int(3.0 * 256) + frame
        _png(depth_root / split / DRIVE / "proj_depth" / "groundtruth" / "image_02" /
             f"{frame:010d}.png", depth)
        out[frame] = depth
    return out


def test_benchmark_depth_png_value_over_256(tmp_path):
    _raw(tmp_path / "raw")
    truth = _benchmark(tmp_path / "depth")
    dataset = KittiDataset(tmp_path / "raw", depth="benchmark", depth_root=tmp_path / "depth")
    assert len(dataset) == 3
    raw = dataset.load(1)
    np.testing.assert_array_equal(raw["depth"], truth[1] / np.float32(256))
    assert raw["depth"][5, 7] == 12.5 and raw["depth"][0, 0] == 0
    sample = dataset[1]
    assert not sample["has_labels"] and (sample["labels"] == 255).all() and sample["has_depth"]
    assert sample["image"].shape == (3, H, W)


def test_velodyne_projection_through_calibration(tmp_path):
    _raw(tmp_path / "raw")
    dataset = KittiDataset(tmp_path / "raw", depth="velodyne")
    assert len(dataset) == 3
    depth = dataset.load(0)["depth"]
    # (10, 0, 0) and (20, 0, 0) project to the principal point; the nearer (10 m) wins.
    assert depth[int(CY) - 1, int(CX) - 1] == pytest.approx(10.0)
    # (5, -1, 0.5): camera (1, -0.5, 5) -> u = 10 * 1 / 5 + 10 = 12, v = -1 + 6 = 5
    assert depth[5 - 1, 12 - 1] == pytest.approx(5.0)
    assert (depth > 0).sum() == 2  # the point behind the car is dropped
    matrix, size = velodyne_to_image_matrix(tmp_path / "raw" / DATE / "calib_cam_to_cam.txt",
                                            tmp_path / "raw" / DATE / "calib_velo_to_cam.txt")
    assert size == (W, H)
    again = project_velodyne(np.fromfile(tmp_path / "raw" / DATE / DRIVE / "velodyne_points" /
                                         "data" / "0000000000.bin", np.float32), matrix, W, H)
    np.testing.assert_array_equal(again, depth)


def test_eigen_split_files_in_both_formats(tmp_path):
    _raw(tmp_path / "raw")
    _benchmark(tmp_path / "depth", frames=(0,), split="train")
    _benchmark(tmp_path / "depth", frames=(2,), split="val")
    (tmp_path / "md2.txt").write_text(f"{DATE}/{DRIVE} 2 l\n{DATE}/{DRIVE} 0 l\n")
    (tmp_path / "md1.txt").write_text(
        f"{DATE}/{DRIVE}/image_02/data/0000000002.png {DATE}/{DRIVE}/image_03/data/"
        "0000000002.png\n")
    assert parse_split_file(tmp_path / "md2.txt") == [(f"{DATE}/{DRIVE}", "image_02", 2),
                                                      (f"{DATE}/{DRIVE}", "image_02", 0)]
    assert parse_split_file(tmp_path / "md1.txt") == [(f"{DATE}/{DRIVE}", "image_02", 2)]
    dataset = KittiDataset(tmp_path / "raw", "benchmark", tmp_path / "depth",
                           split_file=tmp_path / "md2.txt")
    assert len(dataset) == 2 and dataset.load(0)["depth"][8, 3] == pytest.approx(3.0 + 2 / 256)
    (tmp_path / "bad.txt").write_text("hello world\n")
    with pytest.raises(SynergyError, match="bad.txt:1"):
        parse_split_file(tmp_path / "bad.txt")
    (tmp_path / "gap.txt").write_text(f"{DATE}/{DRIVE} 7 l\n")
    with pytest.raises(SynergyError, match="0000000007.png"):
        KittiDataset(tmp_path / "raw", "benchmark", tmp_path / "depth",
                     split_file=tmp_path / "gap.txt")


def test_kitti_errors(tmp_path):
    with pytest.raises(SynergyError, match="not a directory"):
        KittiDataset(tmp_path / "nope", "velodyne")
    _raw(tmp_path / "raw")
    with pytest.raises(SynergyError, match="depth_root"):
        KittiDataset(tmp_path / "raw", "benchmark")
    (tmp_path / "depth" / "train").mkdir(parents=True)
    with pytest.raises(SynergyError, match="no depth PNGs"):
        KittiDataset(tmp_path / "raw", "benchmark", tmp_path / "depth")
    (tmp_path / "raw" / DATE / "calib_velo_to_cam.txt").unlink()
    with pytest.raises(SynergyError, match="calib_velo_to_cam"):
        KittiDataset(tmp_path / "raw", "velodyne")
    (tmp_path / "split.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(SynergyError, match="KITTI split file .*split.png is not a text file"):
        parse_split_file(tmp_path / "split.png")
    with pytest.raises(SynergyError, match="KITTI split file .*missing.txt does not exist"):
        parse_split_file(tmp_path / "missing.txt")


def _stereo(root, n=2, calib=True):
    for i in range(n):
        rgb = np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)
        _png(root / "training" / "image_2" / f"{i:06d}_10.png", rgb)
        _png(root / "training" / "image_2" / f"{i:06d}_11.png", rgb)
        disp = np.zeros((H, W), np.uint16)
        disp[3, 4] = int(2.5 * 256)
        _png(root / "training" / "disp_noc_0" / f"{i:06d}_10.png", disp)
        if calib:
            (root / "training" / "calib_cam_to_cam").mkdir(parents=True, exist_ok=True)
            (root / "training" / "calib_cam_to_cam" / f"{i:06d}.txt").write_text(
                f"P_rect_02: {F} 0 {CX} 0.3 0 {F} {CY} 0 0 0 1 0\n"
                f"P_rect_03: {F} 0 {CX} {0.3 - 0.5 * F} 0 {F} {CY} 0 0 0 1 0\n")


def test_stereo_disparity_to_depth_with_calibration(tmp_path):
    _stereo(tmp_path)
    dataset = KittiStereoDataset(tmp_path)
    assert len(dataset) == 2  # only the *_10 frames
    depth = dataset.load(0)["depth"]
    assert depth[3, 4] == pytest.approx(F * 0.5 / 2.5)  # f * B / d, B from P_rect_02/03
    assert (depth > 0).sum() == 1
    assert not dataset[1]["has_labels"]


def test_stereo_without_calibration_uses_godard_focal_table(tmp_path):
    _stereo(tmp_path, n=1, calib=False)
    with pytest.raises(SynergyError, match="focal table"):
        KittiStereoDataset(tmp_path).load(0)
    rgb = np.zeros((4, 1242, 3), np.uint8)
    _png(tmp_path / "wide" / "training" / "image_2" / "000000_10.png", rgb)
    disp = np.zeros((4, 1242), np.uint16)
    disp[1, 1] = 40 * 256
    _png(tmp_path / "wide" / "training" / "disp_noc_0" / "000000_10.png", disp)
    depth = KittiStereoDataset(tmp_path / "wide").load(0)["depth"]
    assert depth[1, 1] == pytest.approx(721.5377 * 0.54 / 40, rel=1e-6)
    (tmp_path / "wide" / "training" / "disp_noc_0" / "000000_10.png").unlink()
    with pytest.raises(SynergyError, match="disparity file"):
        KittiStereoDataset(tmp_path / "wide")


def test_outdoor_config_points_at_the_unpacked_scene_flow_folder(tmp_path, monkeypatch):
    """data_scene_flow.zip unpacks to training/ and testing/; the config names their parent."""
    from pathlib import Path

    from synergy_ros.learning.batches import build_dataset
    from synergy_ros.learning.config import load_config

    config_file = Path(__file__).resolve().parents[1] / "config" / "train_outdoor_weak.yaml"
    config = load_config(config_file)
    spec = config["data"]["train"][0]
    assert spec["type"] == "kitti_stereo"
    _stereo(tmp_path / "data" / "kitti" / "data_scene_flow")  # unzipped here: training/...
    monkeypatch.chdir(tmp_path)
    dataset = build_dataset(spec, config["data"]["input_size"], True, config["seed"])
    assert len(dataset) == 2 and dataset[0]["has_depth"]
