"""NYU Depth v2 (labeled subset): ``nyu_depth_v2_labeled.mat`` + split file + 894->40 mapping.

Files (none can ship with synergy_ros; download them from their authors):

- ``nyu_depth_v2_labeled.mat`` (Silberman et al. 2012), a MATLAB v7.3 (HDF5) file read with
  h5py. MATLAB stores arrays transposed, so h5py sees ``images`` (N, 3, W, H) uint8,
  ``depths`` (N, W, H) float metres and ``labels`` (N, W, H) uint16 class ids 0..894
  (0 = unlabelled); each sample is transposed back to (H, W[, 3]).
- the standard 795 / 654 train / test split, either ``splits.mat`` from the NYU toolbox
  (``trainNdxs`` / ``testNdxs``, 1-based; HDF5 files are read with h5py, MATLAB v5 files need
  scipy) or a text file of 1-based image indices (whitespace separated) for the requested split.
- the 894 -> 40 class mapping of Gupta et al. 2013: ``classMapping40.mat`` (variable
  ``mapClass``), or a ``.npy`` / ``.txt`` of 894 values (the NYU-40 id of raw classes 1..894)
  or 895 values (raw 0..894, entry 0 ignored). Pass ``label_format="nyu40"`` instead when the
  ``labels`` in your .mat are already NYU-40 ids (0..40).

NYU-40 ids 1..40 become train ids 0..39 (label set ``nyu40``); unlabelled pixels are 255.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import get_label_set
from synergy_ros.data.base import SampleDataset, require_file

SPLITS = ("train", "test", "all")
SPLIT_KEYS = {"train": "trainNdxs", "test": "testNdxs"}
LABEL_FORMATS = ("nyu894", "nyu40")
MAT_LAYOUT = ("nyu_depth_v2_labeled.mat (MATLAB v7.3/HDF5) with images (N,3,W,H) uint8, "
              "depths (N,W,H) float m, labels (N,W,H) uint16")


def read_mat_variable(path: str | os.PathLike, names: tuple) -> tuple[str, np.ndarray]:
    """Read the first of ``names`` present in a .mat file (HDF5 via h5py, v5 via scipy)."""
    import h5py

    path = Path(path)
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as mat:
            for name in names:
                if name in mat:
                    return name, np.asarray(mat[name])
            found = list(mat.keys())
    else:
        try:
            from scipy.io import loadmat
        except ImportError:
            raise SynergyError(f"{path} is a MATLAB v5 file, which needs scipy to read (pip "
                               "install scipy), or convert it to a text file of numbers "
                               "(see docs/data.md)") from None
        try:
            mat = loadmat(path)
        except Exception as exc:  # noqa: BLE001 - scipy raises several types for bad files
            raise SynergyError(f"cannot read {path} as a .mat file ({exc})") from exc
        for name in names:
            if name in mat:
                return name, np.asarray(mat[name])
        found = [k for k in mat if not k.startswith("__")]
    raise SynergyError(f"{path} has no variable {' or '.join(names)} (it holds {found})")


def _read_numbers(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False).reshape(-1)
        return np.array(path.read_text(encoding="utf-8").split(), dtype=np.float64)
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise SynergyError(f"{path} must hold whitespace-separated numbers or be a numeric "
                           f".npy array ({exc})") from exc


def read_split_indices(path: str | os.PathLike, split: str, count: int) -> np.ndarray:
    """0-based image indices of ``split`` from a splits.mat or a text file of 1-based indices."""
    path = require_file(path, "NYU split file")
    if path.suffix == ".mat":
        _, values = read_mat_variable(path, (SPLIT_KEYS[split],))
    else:
        values = _read_numbers(path)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise SynergyError(f"NYU {split} split in {path} is empty; expected 1-based indices "
                           "(795 train / 654 test for the standard split)")
    if not np.all(values == np.round(values)) or values.min() < 1 or values.max() > count:
        raise SynergyError(f"NYU split {path} holds indices outside 1..{count} (the .mat has "
                           f"{count} images); split indices are 1-based like MATLAB's")
    indices = values.astype(np.int64) - 1
    if np.unique(indices).size != indices.size:
        raise SynergyError(f"NYU split {path} repeats image indices")
    return indices


def read_class_mapping(path: str | os.PathLike) -> np.ndarray:
    """(895,) uint8 lookup raw NYU class (0..894) -> NYU-40 id (0..40), raw 0 -> 0."""
    path = require_file(path, "NYU 894->40 class mapping")
    if path.suffix == ".mat":
        _, values = read_mat_variable(path, ("mapClass",))
    else:
        values = _read_numbers(path)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 894:
        values = np.concatenate([[0.0], values])
    if values.size != 895:
        raise SynergyError(f"class mapping {path} has {values.size} entries; expected 894 (raw "
                           "classes 1..894) or 895 (0..894)")
    if values.min() < 0 or values.max() > 40 or not np.all(values == np.round(values)):
        raise SynergyError(f"class mapping {path} must map to NYU-40 ids 0..40")
    lut = values.astype(np.uint8)
    lut[0] = 0
    return lut


class NYUDepthV2Dataset(SampleDataset):
    """NYU Depth v2 labeled images with depth and NYU-40 labels (module docstring: files).

    Args:
        mat_path: ``nyu_depth_v2_labeled.mat``.
        split: ``train``, ``test`` or ``all`` (all 1449 images, no split file needed).
        splits_path: split file (``splits.mat`` or text of 1-based indices for ``split``).
        class_mapping: 894->40 mapping file (required for ``label_format="nyu894"``).
        label_format: ``nyu894`` (raw labels of the official file) or ``nyu40``.
        transform, seed: see :class:`~synergy_ros.data.base.SampleDataset`.
    """

    def __init__(self, mat_path: str | os.PathLike, split: str = "train",
                 splits_path: str | os.PathLike | None = None,
                 class_mapping: str | os.PathLike | None = None, label_format: str = "nyu894",
                 transform=None, seed: int = 0) -> None:
        import h5py

        super().__init__(transform, seed)
        if split not in SPLITS:
            raise SynergyError(f"NYU split must be one of {SPLITS}, got {split!r}")
        if label_format not in LABEL_FORMATS:
            raise SynergyError(f"NYU label_format must be one of {LABEL_FORMATS}, got "
                               f"{label_format!r}")
        self.mat_path = require_file(mat_path, "NYU Depth v2 file", MAT_LAYOUT)
        if not h5py.is_hdf5(self.mat_path):
            raise SynergyError(f"{self.mat_path} is not an HDF5 (MATLAB v7.3) file; expected "
                               f"{MAT_LAYOUT}")
        try:
            mat = h5py.File(self.mat_path, "r")
        except OSError as exc:
            raise SynergyError(f"cannot open {self.mat_path} ({exc}); it may be truncated: "
                               f"download it again ({MAT_LAYOUT})") from exc
        with mat:
            missing = [k for k in ("images", "depths", "labels") if k not in mat]
            if missing:
                raise SynergyError(f"{self.mat_path} lacks {missing} (it holds "
                                   f"{sorted(mat.keys())[:20]}); expected {MAT_LAYOUT}")
            shapes = {k: mat[k].shape for k in ("images", "depths", "labels")}
        n, channels, width, height = (shapes["images"] + (0, 0, 0, 0))[:4]
        if len(shapes["images"]) != 4 or channels != 3:
            raise SynergyError(f"{self.mat_path}: images has shape {shapes['images']}; "
                               f"expected (N, 3, W, H) ({MAT_LAYOUT})")
        for key in ("depths", "labels"):
            if shapes[key] != (n, width, height):
                raise SynergyError(f"{self.mat_path}: {key} has shape {shapes[key]} but images "
                                   f"{shapes['images']}; expected (N, W, H) = "
                                   f"{(n, width, height)}")
        if n == 0:
            raise SynergyError(f"{self.mat_path} holds no images")
        if split == "all":
            self.indices = np.arange(n)
        elif splits_path is None:
            raise SynergyError(f"NYU split {split!r} needs splits_path: the standard splits.mat "
                               "(trainNdxs/testNdxs) or a text file of 1-based indices")
        else:
            self.indices = read_split_indices(splits_path, split, n)
        if label_format == "nyu894":
            if class_mapping is None:
                raise SynergyError(
                    "NYU labels are raw 894-class ids: pass class_mapping (Gupta et al.'s "
                    "classMapping40.mat, or a .npy/.txt of 894 NYU-40 ids), which cannot ship "
                    "with synergy_ros; or label_format='nyu40' if your labels are 0..40")
            self.class_lut = read_class_mapping(class_mapping)
        else:
            self.class_lut = None
        self.label_set = get_label_set("nyu40")
        self.name = f"NYU Depth v2 {split}"
        self._file = None
        self._pid = None

    def __len__(self) -> int:
        """Number of images in the split."""
        return int(self.indices.size)

    def describe(self, index: int) -> str:
        """Name the image (1-based index like MATLAB)."""
        return f"{self.mat_path} image {int(self.indices[index]) + 1}"

    def _mat(self):
        import h5py

        if self._file is None or self._pid != os.getpid():  # one handle per worker process
            self._file, self._pid = h5py.File(self.mat_path, "r"), os.getpid()
        return self._file

    def __getstate__(self) -> dict:
        """Drop the open HDF5 handle when pickled to DataLoader workers."""
        state = dict(self.__dict__)
        state["_file"] = state["_pid"] = None
        return state

    def load(self, index: int) -> dict:
        """Read image ``index`` of the split, transposed back to (H, W)."""
        mat = self._mat()
        i = int(self.indices[index])
        image = np.ascontiguousarray(np.asarray(mat["images"][i]).transpose(2, 1, 0))
        depth = np.ascontiguousarray(np.asarray(mat["depths"][i], dtype=np.float32).T)
        raw = np.ascontiguousarray(np.asarray(mat["labels"][i]).T)
        if self.class_lut is not None:
            if raw.max() >= self.class_lut.size:
                raise SynergyError(f"{self.describe(index)}: raw class {int(raw.max())} is "
                                   "beyond the 894-class mapping")
            raw = self.class_lut[raw]
        elif raw.max() > 40:
            raise SynergyError(f"{self.describe(index)}: label {int(raw.max())} > 40 with "
                               "label_format='nyu40'; these are raw 894-class labels: pass "
                               "class_mapping and label_format='nyu894'")
        return {"image": image.astype(np.uint8), "depth": depth,
                "labels": self.label_set.map_raw(raw), "has_depth": True, "has_labels": True}
