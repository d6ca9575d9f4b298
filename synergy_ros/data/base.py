"""Shared dataset machinery: seeded per-sample transforms, sample checks, image file readers.

Every dataset subclasses :class:`SampleDataset` and implements ``__len__`` and
``load(index) -> raw sample`` (numpy, see :mod:`synergy_ros.data.transforms`); the base class
checks the raw sample (sizes agree, label ids in range), applies the transform with a
generator seeded from (seed, epoch, index) and returns the training-sample contract.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.labels import LabelSet, check_train_ids
from synergy_ros.core.rgb import rgb8_problem
from synergy_ros.data.transforms import ToTensor

try:  # torch is a hard dependency of training; keep import-time light for tools that only
    from torch.utils.data import Dataset as _TorchDataset  # list or check data
except ImportError:  # pragma: no cover
    _TorchDataset = object


class SampleDataset(_TorchDataset):
    """Base class: subclasses set ``self.label_set`` (or None) and implement ``load``.

    Args:
        transform: ``transform(raw_sample, rng) -> sample``; default
            :class:`~synergy_ros.data.transforms.ToTensor` (native size, ImageNet mean/std).
        seed: augmentation seed; sample ``i`` in epoch ``e`` uses ``default_rng([seed, e, i])``.
    """

    label_set: LabelSet | None = None
    name = "dataset"

    def __init__(self, transform: Callable | None = None, seed: int = 0) -> None:
        self.transform = transform if transform is not None else ToTensor()
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation stream for ``epoch`` (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Number of samples."""
        raise NotImplementedError

    def load(self, index: int) -> dict:
        """Return raw sample ``index`` (numpy arrays, no augmentation)."""
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """Where sample ``index`` comes from (used in error messages)."""
        return f"{self.name} sample {index}"

    def __getitem__(self, index: int) -> dict:
        """Load, check, transform sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name} has {len(self)} samples, index {index} requested")
        sample = check_sample(self.load(index), self.label_set, self.describe(index))
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        return self.transform(sample, rng)


def check_sample(sample: dict, label_set: LabelSet | None, source: str) -> dict:
    """Check a raw sample: (H, W, 3) uint8 image, depth/labels of the same H x W, label ids
    within ``label_set`` (or 255). Raises SynergyError naming ``source``."""
    image = sample.get("image")
    problem = rgb8_problem(image)
    if problem:
        raise SynergyError(f"{source}: image: {problem}")
    size = image.shape[:2]
    for key in ("depth", "labels"):
        array = sample.get(key)
        if array is not None and array.shape != size:
            raise SynergyError(f"{source}: {key} is {array.shape[1]}x{array.shape[0]} but the "
                               f"image is {size[1]}x{size[0]}; {key} and image must be the same "
                               "size (pixel-aligned)")
    labels = sample.get("labels")
    if labels is not None and label_set is not None and sample.get("has_labels", True):
        check_train_ids(labels, label_set.num_classes,
                        f"{source} (label set {label_set.name})")
    return sample


# ----------------------------------------------------------------------------- file readers
def require_dir(path: str | os.PathLike, what: str, layout: str) -> Path:
    """Return ``path`` if it is a directory, else raise naming ``what`` and the ``layout``."""
    directory = Path(path)
    if not directory.is_dir():
        raise SynergyError(f"{what} {directory} is not a directory; expected layout: {layout}")
    return directory


def require_file(path: str | os.PathLike, what: str, layout: str = "") -> Path:
    """Return ``path`` if it is a file, else raise naming ``what`` (and the ``layout``)."""
    file = Path(path)
    if not file.is_file():
        hint = f"; expected layout: {layout}" if layout else ""
        raise SynergyError(f"{what} {file} does not exist{hint}")
    return file


def read_text_file(path: str | os.PathLike, what: str) -> str:
    """UTF-8 text of file ``path``; raise SynergyError naming ``what`` if missing or binary."""
    file = require_file(path, what)
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SynergyError(f"{what} {file} is not a text file ({exc})") from exc


def _imread(path: str | os.PathLike) -> np.ndarray:
    """Read an image file unchanged (OpenCV channel order, native bit depth)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SynergyError(f"cannot read image {path} (missing, truncated or not an image)")
    return image


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read a colour image file as (H, W, 3) uint8 RGB (8-bit; 16-bit is scaled down)."""
    image = _imread(path)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def read_single_channel(path: str | os.PathLike, dtypes: tuple = (np.uint8, np.uint16)
                        ) -> np.ndarray:
    """Read a one-channel PNG unchanged (8- or 16-bit); raise if it has colour channels."""
    image = _imread(path)
    if image.ndim != 2:
        raise SynergyError(f"{path} has {image.shape[2]} channels; expected a single-channel "
                           "(grey) PNG of ids or depth values, not a colour visualisation")
    if image.dtype not in dtypes:
        raise SynergyError(f"{path} is {image.dtype}; expected one of "
                           f"{[np.dtype(d).name for d in dtypes]}")
    return image


def read_png_depth(path: str | os.PathLike, scale: float) -> np.ndarray:
    """16-bit PNG depth -> float32 metres (value / ``scale``; 0 stays 0 = invalid)."""
    raw = read_single_channel(path, (np.uint16,))
    return raw.astype(np.float32) / np.float32(scale)
