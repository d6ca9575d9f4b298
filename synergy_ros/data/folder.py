"""A folder of your own RGB / depth / label files, paired by file stem.

Layout (``root``, or ``root/<split>`` when ``split`` is given)::

    rgb/<stem>.png | .jpg | .jpeg      colour images (8-bit; grey is expanded to RGB)
    depth/<stem>.png                   16-bit depth, value / depth_png_scale metres
                                       (default 1000: millimetres, as ROS 16UC1 / REP 118);
                                       0 = invalid
    depth/<stem>.npy                   float (H, W) depth in metres; 0 / NaN / inf = invalid
    labels/<stem>.png                  single-channel (8- or 16-bit) train ids, 255 = ignore

``depth/`` and ``labels/`` are optional, but when a folder exists every image must have its
file there (a missing one is an error, not a silent unlabelled sample). Depth and labels must
have the image's size.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import LabelSet, get_label_set
from synergy_ros.core.rgb import IMAGE_SUFFIXES
from synergy_ros.data.base import (SampleDataset, read_png_depth, read_rgb, read_single_channel,
                                   require_dir)

LAYOUT = ("<root>[/<split>]/rgb/<stem>.png|jpg, optional depth/<stem>.png (16-bit, mm) or "
          ".npy (float m), optional labels/<stem>.png (train ids, 255 = ignore)")


def _by_stem(directory: Path, suffixes: tuple) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() in suffixes and path.is_file():
            if path.stem in files:
                raise SynergyError(f"{directory} has two files for stem {path.stem!r} "
                                   f"({files[path.stem].name}, {path.name}); keep one")
            files[path.stem] = path
    return files


class FolderDataset(SampleDataset):
    """RGB (+ depth) (+ labels) files paired by stem (layout in the module docstring).

    Args:
        root: dataset folder.
        split: optional sub-folder (e.g. ``train``, ``val``).
        label_set: label-set name or :class:`LabelSet` the label ids belong to (required when
            there is a ``labels/`` folder; ids are checked against it).
        depth_png_scale: PNG depth value per metre (1000 = millimetres, 256 = KITTI style).
        transform, seed: see :class:`~synergy_ros.data.base.SampleDataset`.
    """

    name = "folder"

    def __init__(self, root: str | os.PathLike, split: str | None = None,
                 label_set: str | LabelSet | None = None, depth_png_scale: float = 1000.0,
                 transform=None, seed: int = 0) -> None:
        super().__init__(transform, seed)
        base = require_dir(root, "folder dataset root", LAYOUT)
        self.root = require_dir(base / split, f"split {split!r} of", LAYOUT) if split else base
        rgb = require_dir(self.root / "rgb", "image folder", LAYOUT)
        self.images = _by_stem(rgb, IMAGE_SUFFIXES)
        if not self.images:
            raise SynergyError(f"{rgb} holds no .png/.jpg images; expected layout: {LAYOUT}")
        self.depths = self._partner("depth", (".png", ".npy"))
        self.labels = self._partner("labels", (".png",))
        if self.labels is not None and label_set is None:
            raise SynergyError(f"{self.root / 'labels'} exists: say which label set its ids "
                               "belong to (label_set=nyu40 / cityscapes19 / synthetic / ...)")
        self.label_set = get_label_set(label_set) if isinstance(label_set, str) else label_set
        if not depth_png_scale > 0:
            raise SynergyError(f"depth_png_scale must be > 0, got {depth_png_scale}")
        self.depth_png_scale = float(depth_png_scale)
        self.stems = sorted(self.images)
        self.name = f"folder {self.root}"

    def _partner(self, folder: str, suffixes: tuple) -> dict[str, Path] | None:
        directory = self.root / folder
        if not directory.is_dir():
            return None
        files = _by_stem(directory, suffixes)
        missing = [stem for stem in self.images if stem not in files]
        if missing:
            raise SynergyError(f"{directory} lacks files for {len(missing)} of "
                               f"{len(self.images)} images, e.g. {missing[0]}"
                               f"{{{','.join(suffixes)}}}; every image needs one, or remove "
                               f"the {folder}/ folder")
        return files

    def __len__(self) -> int:
        """Number of images."""
        return len(self.stems)

    def describe(self, index: int) -> str:
        """Name the image file."""
        return str(self.images[self.stems[index]])

    def load(self, index: int) -> dict:
        """Read image, depth (m) and labels of stem ``index``."""
        stem = self.stems[index]
        sample = {"image": read_rgb(self.images[stem]), "has_depth": self.depths is not None,
                  "has_labels": self.labels is not None}
        if self.depths is not None:
            path = self.depths[stem]
            if path.suffix == ".npy":
                try:
                    depth = np.load(path, allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise SynergyError(f"cannot read depth {path}: {exc}") from exc
                if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
                    raise SynergyError(f"{path} must hold a float (H, W) depth in metres, got "
                                       f"{depth.dtype} {depth.shape}")
                sample["depth"] = depth.astype(np.float32)
            else:
                sample["depth"] = read_png_depth(path, self.depth_png_scale)
        if self.labels is not None:
            sample["labels"] = read_single_channel(self.labels[stem])
        return sample
