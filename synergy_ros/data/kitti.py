"""KITTI depth: raw images with depth-benchmark PNGs or projected Velodyne, and stereo disparity.

KITTI has no semantic labels here: samples have ``has_labels=False`` (labels all 255), the
depth-only half of the paper's weakly-supervised outdoor training.

:class:`KittiDataset` - raw sequences (``raw_root`` = the unpacked raw data)::

    <raw_root>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    <raw_root>/<date>/<date>_drive_<nnnn>_sync/image_02/data/<frame:010d>.png   (image_03: right)
    <raw_root>/<date>/<date>_drive_<nnnn>_sync/velodyne_points/data/<frame:010d>.bin

  with depth from either

  - ``depth="benchmark"``: the depth-completion/prediction benchmark ground truth
    ``<depth_root>/{train,val}/<date>_drive_<nnnn>_sync/proj_depth/groundtruth/image_02/
    <frame:010d>.png`` (16-bit, value / 256 = metres, 0 = invalid), or
  - ``depth="velodyne"``: the scan projected into the rectified camera with the calibration
    files (``P_rect_0X @ R_rect_00 @ [R|T]_velo_to_cam``; the nearest return wins where
    several hit one pixel; pixel = round(projection) - 1, as KITTI's MATLAB devkit and
    Godard et al.'s ``generate_depth_map``).

  Samples come from a split file (Eigen et al. split: either monodepth2 lines
  ``2011_09_26/2011_09_26_drive_0002_sync 69 l`` or monodepth lines
  ``2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png <right image>``) or,
  without one, every frame that has depth (benchmark: all PNGs of ``split``; velodyne: all
  scans of all drives).

:class:`KittiStereoDataset` - the 200 training images of KITTI stereo / scene flow 2015 as in
the paper (left images with disparity converted to depth ``f * B / d`` like Godard et al.)::

    <root>/training/image_2/<nnnnnn>_10.png
    <root>/training/disp_noc_0/<nnnnnn>_10.png  (or disp_occ_0; 16-bit, value / 256 = pixels)
    <root>/training/calib_cam_to_cam/<nnnnnn>.txt   (optional, from data_scene_flow_calib.zip)

  ``f`` and ``B`` come from the calibration file (``P_rect_02``, ``P_rect_03``) when present,
  else from Godard et al.'s image-width -> focal table with ``B = 0.54`` m.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.data.base import (SampleDataset, read_png_depth, read_rgb, read_text_file,
                                   require_dir, require_file)

RAW_LAYOUT = ("<raw_root>/<date>/<date>_drive_<nnnn>_sync/image_02/data/<frame>.png with "
              "<raw_root>/<date>/calib_cam_to_cam.txt")
BENCHMARK_LAYOUT = ("<depth_root>/{train,val}/<drive>/proj_depth/groundtruth/image_02/"
                    "<frame>.png")
STEREO_LAYOUT = "<root>/training/image_2/<n>_10.png and <root>/training/disp_noc_0/<n>_10.png"
GODARD_WIDTH_TO_FOCAL = {1242: 721.5377, 1241: 718.856, 1224: 707.0493, 1238: 718.3351}
GODARD_BASELINE_M = 0.54
CAMERAS = {"l": "image_02", "r": "image_03"}


# ----------------------------------------------------------------------------- calibration
def read_calib_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Parse a KITTI calibration file (``key: v1 v2 ...`` lines; non-numeric lines skipped)."""
    values: dict[str, np.ndarray] = {}
    for line in read_text_file(path, "KITTI calibration file").splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            values[key.strip()] = np.array(rest.split(), dtype=np.float64)
        except ValueError:
            continue  # e.g. calib_time: 09-Jan-2012 13:57:47
    return values


def _calib_entry(calib: dict, key: str, size: int, path) -> np.ndarray:
    if key not in calib or calib[key].size != size:
        raise SynergyError(f"KITTI calibration {path} lacks {key} ({size} numbers)")
    return calib[key]


def velodyne_to_image_matrix(cam_to_cam: str | os.PathLike, velo_to_cam: str | os.PathLike,
                             camera: int = 2) -> tuple[np.ndarray, tuple[int, int]]:
    """(3, 4) projection velodyne -> rectified image of ``camera``, and its (width, height)."""
    c2c = read_calib_file(cam_to_cam)
    v2c = read_calib_file(velo_to_cam)
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3] = _calib_entry(v2c, "R", 9, velo_to_cam).reshape(3, 3)
    velo_to_cam[:3, 3] = _calib_entry(v2c, "T", 3, velo_to_cam)
    rect = np.eye(4)
    rect[:3, :3] = _calib_entry(c2c, "R_rect_00", 9, cam_to_cam).reshape(3, 3)
    p_rect = _calib_entry(c2c, f"P_rect_0{camera}", 12, cam_to_cam).reshape(3, 4)
    size = _calib_entry(c2c, f"S_rect_0{camera}", 2, cam_to_cam)
    return p_rect @ rect @ velo_to_cam, (int(size[0]), int(size[1]))


def project_velodyne(points: np.ndarray, velo_to_image: np.ndarray, width: int, height: int
                     ) -> np.ndarray:
    """Project (N, 4) Velodyne points (x, y, z, reflectance) to an (H, W) float32 depth image
    (metres along the rectified camera's z; 0 = no return; nearest return per pixel)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 4)
    points = points[points[:, 0] >= 0]  # in front of the car
    homogeneous = np.concatenate([points[:, :3], np.ones((len(points), 1))], axis=1)
    projected = homogeneous @ velo_to_image.T
    z = projected[:, 2]
    keep = z > 0
    projected, z = projected[keep], z[keep]
    u = np.round(projected[:, 0] / z).astype(np.int64) - 1
    v = np.round(projected[:, 1] / z).astype(np.int64) - 1
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[inside], v[inside], z[inside]
    depth = np.full(height * width, np.inf)
    np.minimum.at(depth, v * width + u, z)
    depth[~np.isfinite(depth)] = 0.0
    return depth.reshape(height, width).astype(np.float32)


def read_velodyne(path: str | os.PathLike) -> np.ndarray:
    """Read a KITTI ``.bin`` scan as (N, 4) float32."""
    path = require_file(path, "KITTI velodyne scan")
    data = np.fromfile(path, dtype=np.float32)
    if data.size % 4:
        raise SynergyError(f"{path} has {data.size} floats, not a multiple of 4 (x, y, z, r); "
                           "the scan is truncated")
    return data.reshape(-1, 4)


# ----------------------------------------------------------------------------- split files
_MONODEPTH2 = re.compile(r"^(\S+?)/?\s+(\d+)\s+([lr])$")
_MONODEPTH = re.compile(r"^(\S+_sync)/(image_0[23])/data/(\d+)\.(?:png|jpg)\b")


def parse_split_file(path: str | os.PathLike) -> list[tuple[str, str, int]]:
    """Read an Eigen-style split file -> [(date/drive_sync, image_0X, frame)]."""
    entries = []
    for number, line in enumerate(read_text_file(path, "KITTI split file").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _MONODEPTH2.match(line)
        if match:
            entries.append((match.group(1), CAMERAS[match.group(3)], int(match.group(2))))
            continue
        match = _MONODEPTH.match(line)
        if match:
            entries.append((match.group(1), match.group(2), int(match.group(3))))
            continue
        raise SynergyError(f"{path}:{number}: cannot parse {line!r}; expected "
                           "'2011_09_26/2011_09_26_drive_0002_sync 69 l' or "
                           "'2011_09_26/2011_09_26_drive_0002_sync/image_02/data/"
                           "0000000069.png ...'")
    if not entries:
        raise SynergyError(f"KITTI split file {path} lists no frames")
    return entries


# ----------------------------------------------------------------------------- raw + depth
class KittiDataset(SampleDataset):
    """KITTI raw images with metric depth (module docstring: layouts and depth sources).

    Args:
        raw_root: unpacked KITTI raw data.
        depth: ``benchmark`` (needs ``depth_root``) or ``velodyne``.
        depth_root: depth benchmark folder (``train/`` and ``val/`` inside).
        split_file: Eigen-style split file; None = every frame that has depth.
        split: ``train`` or ``val`` folder of the benchmark when there is no split file.
        transform, seed: see :class:`~synergy_ros.data.base.SampleDataset`.
    """

    def __init__(self, raw_root: str | os.PathLike, depth: str = "benchmark",
                 depth_root: str | os.PathLike | None = None,
                 split_file: str | os.PathLike | None = None, split: str = "train",
                 transform=None, seed: int = 0) -> None:
        super().__init__(transform, seed)
        if depth not in ("benchmark", "velodyne"):
            raise SynergyError(f"KITTI depth must be 'benchmark' or 'velodyne', got {depth!r}")
        self.raw_root = require_dir(raw_root, "KITTI raw root", RAW_LAYOUT)
        self.depth = depth
        if depth == "benchmark":
            if depth_root is None:
                raise SynergyError("KITTI depth='benchmark' needs depth_root (the depth "
                                   f"benchmark folder: {BENCHMARK_LAYOUT})")
            self.depth_root = require_dir(depth_root, "KITTI depth benchmark root",
                                          BENCHMARK_LAYOUT)
        if split_file is not None:
            entries = parse_split_file(split_file)
        elif depth == "benchmark":
            entries = self._benchmark_entries(split)
        else:
            entries = self._velodyne_entries()
        self.entries = entries
        self._check_files()
        self._projections: dict[tuple[str, str], tuple[np.ndarray, tuple[int, int]]] = {}
        self.name = f"KITTI ({depth} depth)"

    def _benchmark_entries(self, split: str) -> list[tuple[str, str, int]]:
        folder = require_dir(self.depth_root / split, f"KITTI depth benchmark split {split!r}",
                             BENCHMARK_LAYOUT)
        entries = []
        for png in sorted(folder.glob("*_sync/proj_depth/groundtruth/image_0[23]/*.png")):
            drive = png.parents[3].name
            entries.append((f"{drive[:10]}/{drive}", png.parent.name, int(png.stem)))
        if not entries:
            raise SynergyError(f"no depth PNGs under {folder}; expected layout: "
                               f"{BENCHMARK_LAYOUT}")
        return entries

    def _velodyne_entries(self) -> list[tuple[str, str, int]]:
        entries = []
        for scan in sorted(self.raw_root.glob("*/*_sync/velodyne_points/data/*.bin")):
            drive_dir = scan.parents[2]
            entries.append((f"{drive_dir.parent.name}/{drive_dir.name}", "image_02",
                            int(scan.stem)))
        if not entries:
            raise SynergyError(f"no velodyne scans under {self.raw_root}/<date>/<drive>/"
                               "velodyne_points/data/; expected layout: " + RAW_LAYOUT)
        return entries

    def image_path(self, entry) -> Path:
        """Raw image of a (drive, camera, frame) entry."""
        drive, camera, frame = entry
        return self.raw_root / drive / camera / "data" / f"{frame:010d}.png"

    def depth_path(self, entry) -> Path:
        """Depth source (benchmark PNG or velodyne scan) of an entry."""
        drive, camera, frame = entry
        if self.depth == "velodyne":
            return self.raw_root / drive / "velodyne_points" / "data" / f"{frame:010d}.bin"
        name = Path(drive).name
        for split in ("train", "val"):
            candidate = (self.depth_root / split / name / "proj_depth" / "groundtruth" / camera
                         / f"{frame:010d}.png")
            if candidate.is_file():
                return candidate
        return self.depth_root / "train" / name / "proj_depth" / "groundtruth" / camera / \
            f"{frame:010d}.png"

    def _check_files(self) -> None:
        missing = [p for e in self.entries for p in (self.image_path(e), self.depth_path(e))
                   if not p.is_file()]
        if self.depth == "velodyne":
            dates = {Path(drive).parts[0] for drive, _, _ in self.entries}
            missing += [self.raw_root / d / n for d in sorted(dates)
                        for n in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt")
                        if not (self.raw_root / d / n).is_file()]
        if missing:
            layout = RAW_LAYOUT if self.depth == "velodyne" else \
                f"{RAW_LAYOUT}; depth {BENCHMARK_LAYOUT}"
            raise SynergyError(f"{len(missing)} KITTI file(s) missing, e.g. {missing[0]}; "
                               f"expected layout: {layout}")

    def __len__(self) -> int:
        """Number of frames."""
        return len(self.entries)

    def describe(self, index: int) -> str:
        """Name the image file."""
        return str(self.image_path(self.entries[index]))

    def _projection(self, drive: str, camera: str):
        key = (drive, camera)
        if key not in self._projections:
            date_dir = self.raw_root / Path(drive).parts[0]
            self._projections[key] = velodyne_to_image_matrix(
                date_dir / "calib_cam_to_cam.txt", date_dir / "calib_velo_to_cam.txt",
                int(camera[-1]))
        return self._projections[key]

    def load(self, index: int) -> dict:
        """Read the image and its metric depth."""
        entry = self.entries[index]
        image = read_rgb(self.image_path(entry))
        if self.depth == "benchmark":
            depth = read_png_depth(self.depth_path(entry), 256.0)
        else:
            matrix, (width, height) = self._projection(entry[0], entry[1])
            if (width, height) != (image.shape[1], image.shape[0]):
                raise SynergyError(f"{self.describe(index)} is {image.shape[1]}x"
                                   f"{image.shape[0]} but its calibration says {width}x{height}")
            depth = project_velodyne(read_velodyne(self.depth_path(entry)), matrix, width,
                                     height)
        return {"image": image, "depth": depth, "has_depth": True, "has_labels": False}


# ----------------------------------------------------------------------------- stereo 2015
class KittiStereoDataset(SampleDataset):
    """KITTI stereo/scene-flow 2015 training images with disparity -> depth (module docstring).

    Args:
        root: folder holding ``training/``.
        disparity: ``disp_noc_0`` (non-occluded) or ``disp_occ_0`` (all pixels).
        transform, seed: see :class:`~synergy_ros.data.base.SampleDataset`.
    """

    def __init__(self, root: str | os.PathLike, disparity: str = "disp_noc_0", transform=None,
                 seed: int = 0) -> None:
        super().__init__(transform, seed)
        if disparity not in ("disp_noc_0", "disp_occ_0"):
            raise SynergyError(f"disparity must be disp_noc_0 or disp_occ_0, got {disparity!r}")
        training = require_dir(Path(root) / "training", "KITTI stereo training folder",
                               STEREO_LAYOUT)
        images_dir = require_dir(training / "image_2", "KITTI stereo image folder",
                                 STEREO_LAYOUT)
        self.images = sorted(images_dir.glob("*_10.png"))
        if not self.images:
            raise SynergyError(f"no *_10.png images in {images_dir}; expected {STEREO_LAYOUT}")
        self.disparities = [training / disparity / p.name for p in self.images]
        missing = [p for p in self.disparities if not p.is_file()]
        if missing:
            raise SynergyError(f"{len(missing)} disparity file(s) missing, e.g. {missing[0]}; "
                               f"expected {STEREO_LAYOUT}")
        self.calib_dir = training / "calib_cam_to_cam"
        self.name = "KITTI stereo 2015"

    def __len__(self) -> int:
        """Number of images."""
        return len(self.images)

    def describe(self, index: int) -> str:
        """Name the image file."""
        return str(self.images[index])

    def focal_and_baseline(self, index: int, width: int) -> tuple[float, float]:
        """(focal px, baseline m) from the calibration file, else Godard et al.'s table."""
        calib = self.calib_dir / f"{self.images[index].name.split('_')[0]}.txt"
        if calib.is_file():
            values = read_calib_file(calib)
            p2 = _calib_entry(values, "P_rect_02", 12, calib).reshape(3, 4)
            p3 = _calib_entry(values, "P_rect_03", 12, calib).reshape(3, 4)
            return float(p2[0, 0]), float((p2[0, 3] - p3[0, 3]) / p2[0, 0])
        if width not in GODARD_WIDTH_TO_FOCAL:
            raise SynergyError(f"{self.describe(index)}: no calibration file {calib} and image "
                               f"width {width} is not in the KITTI focal table "
                               f"{sorted(GODARD_WIDTH_TO_FOCAL)}; add data_scene_flow_calib")
        return GODARD_WIDTH_TO_FOCAL[width], GODARD_BASELINE_M

    def load(self, index: int) -> dict:
        """Read the left image and convert its disparity to depth (m)."""
        image = read_rgb(self.images[index])
        disparity = read_png_depth(self.disparities[index], 256.0)  # value / 256 = pixels
        focal, baseline = self.focal_and_baseline(index, image.shape[1])
        with np.errstate(divide="ignore"):
            depth = np.where(disparity > 0, focal * baseline / disparity, 0.0)
        return {"image": image, "depth": depth.astype(np.float32), "has_depth": True,
                "has_labels": False}
