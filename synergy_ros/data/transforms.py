"""Seeded augmentations on numpy samples, and conversion to the training-sample contract.

A *raw sample* is a dict of numpy arrays as the datasets load them::

    image  (H, W, 3) uint8 RGB
    depth  (H, W) float32 metres, 0 = invalid (NaN/inf/negative are treated as 0)
    labels (H, W) uint8 or int64 train ids, 255 = ignore
    has_depth, has_labels  bool

Every transform is ``transform(sample, rng) -> sample`` with a ``numpy.random.Generator``
``rng`` that the dataset derives from (seed, epoch, index), so augmentation is reproducible
regardless of DataLoader worker count. :class:`ToTensor` ends a pipeline and produces the
training-sample contract of docs/architecture.md: ``image`` (3, H, W) float32 normalised,
``depth`` (1, H, W) float32 metres (0 = invalid), ``labels`` (H, W) int64 (255 = ignore).

Geometry:

- :class:`RandomHorizontalFlip` flips image, depth and labels together (a mirrored scene is a
  valid scene; metric depth is unchanged).
- :class:`RandomScaleCrop` enlarges the image by ``s`` and crops. With the camera's focal
  length fixed, an image magnified by ``s`` looks like the scene seen from ``s`` times closer,
  so ``depth_mode="divide"`` (default, as Eigen et al. 2014) divides depth by ``s``: metric
  depth stays consistent with apparent size. ``depth_mode="keep"`` keeps the depth values,
  which is only honest if you think of the zoom as a focal-length change (intrinsics x ``s``)
  the network is not told about; use it only when you know you want that.
- :class:`Resize` resamples to a fixed size (e.g. 512x256 for the outdoor data as in the
  paper): the image with the runtime's rule (``synergy_ros.runtime.preprocess.resize_rgb``:
  area when shrinking, bilinear when enlarging), nearest neighbour for labels and for
  depth (never averages a valid depth with an invalid 0 or blends across object edges,
  so sparse LiDAR / disparity depth stays exact where it is kept).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import cv2
import numpy as np

from synergy_ros.core.labels import IGNORE_INDEX
from synergy_ros.core.modelfile import IMAGENET_MEAN, IMAGENET_STD
from synergy_ros.runtime.preprocess import normalisation, normalise_rgb, resize_rgb

Transform = Callable[[dict, np.random.Generator], dict]
#: ITU-R BT.601 luma weights of R, G, B (the grey image ColorJitter's contrast and saturation
#: factors act around).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _resize(array: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
    if array.shape[:2] == (height, width):
        return array
    return cv2.resize(array, (width, height), interpolation=interpolation)


#: The image resize shared with inference (area when shrinking, bilinear otherwise).
resize_image = resize_rgb


def resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of labels or depth (values are never mixed)."""
    return _resize(array, height, width, cv2.INTER_NEAREST)


def _geometric(sample: dict, fn: Callable[[np.ndarray], np.ndarray]) -> dict:
    out = dict(sample)
    for key in ("image", "depth", "labels"):
        if key in out:
            out[key] = np.ascontiguousarray(fn(out[key]))
    return out


class Compose:
    """Apply transforms in order, all drawing from the same ``rng``."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Run every transform."""
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample


class RandomHorizontalFlip:
    """Mirror image, depth and labels together with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Flip left-right (or not)."""
        if rng.random() >= self.p:
            return sample
        return _geometric(sample, lambda a: a[:, ::-1])


class ColorJitter:
    """Random brightness, contrast and saturation factors in ``[1 - x, 1 + x]``; image only."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.2) -> None:
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Jitter the image's colours; depth and labels are untouched."""
        image = sample["image"].astype(np.float32)
        b, c, s = (rng.uniform(1 - x, 1 + x) for x in
                   (self.brightness, self.contrast, self.saturation))
        image = image * b
        grey = image @ _LUMA
        image = (image - grey.mean()) * c + grey.mean()
        grey = (image @ _LUMA)[..., None]
        image = (image - grey) * s + grey
        out = dict(sample)
        out["image"] = np.clip(image + 0.5, 0, 255).astype(np.uint8)
        return out


def _pad_to(sample: dict, height: int, width: int) -> dict:
    """Pad bottom/right up to ``height`` x ``width`` (image 0, depth 0, labels ignore)."""
    h, w = sample["image"].shape[:2]
    if h >= height and w >= width:
        return sample
    ph, pw = max(0, height - h), max(0, width - w)
    out = dict(sample)
    out["image"] = np.pad(sample["image"], ((0, ph), (0, pw), (0, 0)))
    if "depth" in out:
        out["depth"] = np.pad(sample["depth"], ((0, ph), (0, pw)))
    if "labels" in out:
        out["labels"] = np.pad(sample["labels"], ((0, ph), (0, pw)),
                               constant_values=IGNORE_INDEX)
    return out


class RandomScaleCrop:
    """Scale by ``s ~ U(scale_range)`` about the image, then take a random crop of ``size``.

    Args:
        size: (height, width) of the crop in pixels.
        scale_range: (min, max) zoom factors; 1.0 = no zoom.
        depth_mode: ``divide`` (depth / s, consistent with a fixed focal length) or ``keep``
            (module docstring explains the trade-off).
    """

    def __init__(self, size: tuple[int, int], scale_range: tuple[float, float] = (1.0, 1.5),
                 depth_mode: str = "divide") -> None:
        if depth_mode not in ("divide", "keep"):
            raise ValueError(f"depth_mode must be 'divide' or 'keep', got {depth_mode!r}")
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be 0 < min <= max, got {scale_range}")
        self.size = (int(size[0]), int(size[1]))
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.depth_mode = depth_mode

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Zoom and crop image, depth and labels identically."""
        s = float(rng.uniform(*self.scale_range))
        h, w = sample["image"].shape[:2]
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        out = dict(sample)
        out["image"] = resize_image(sample["image"], sh, sw)
        if "depth" in out:
            depth = resize_nearest(sample["depth"], sh, sw)
            out["depth"] = depth / np.float32(s) if self.depth_mode == "divide" else depth
        if "labels" in out:
            out["labels"] = resize_nearest(sample["labels"], sh, sw)
        ch, cw = self.size
        out = _pad_to(out, ch, cw)
        top = int(rng.integers(0, out["image"].shape[0] - ch + 1))
        left = int(rng.integers(0, out["image"].shape[1] - cw + 1))
        return _geometric(out, lambda a: a[top:top + ch, left:left + cw])


class Resize:
    """Resample to ``size`` = (height, width): bilinear/area image, nearest depth and labels."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        """Resize every array to ``size``."""
        h, w = self.size
        out = dict(sample)
        out["image"] = resize_image(sample["image"], h, w)
        for key in ("depth", "labels"):
            if key in out:
                out[key] = resize_nearest(sample[key], h, w)
        return out


class ToTensor:
    """Convert a raw sample to the training-sample contract (torch tensors).

    ``image`` -> (3, H, W) float32 ``(x / 255 - mean) / std`` (the runtime's
    ``normalise_rgb``, so training and inference inputs are bit-identical); ``depth`` ->
    (1, H, W) float32 metres with every non-finite or non-positive value set to 0;
    ``labels`` -> (H, W) int64.
    Missing depth / labels become all-0 / all-255 with ``has_depth`` / ``has_labels`` False.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.scale, self.offset = normalisation(self.mean, self.std)

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        """Normalise and convert."""
        import torch

        image = sample["image"]
        h, w = image.shape[:2]
        normalised = normalise_rgb(image, self.scale, self.offset)
        depth = sample.get("depth")
        has_depth = bool(sample.get("has_depth", depth is not None)) and depth is not None
        if has_depth:
            depth = np.asarray(depth, dtype=np.float32)
            depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0))
        else:
            depth = np.zeros((h, w), np.float32)
        labels = sample.get("labels")
        has_labels = bool(sample.get("has_labels", labels is not None)) and labels is not None
        labels = (np.asarray(labels, dtype=np.int64) if has_labels
                  else np.full((h, w), IGNORE_INDEX, np.int64))
        out = {key: value for key, value in sample.items()
               if key not in ("image", "depth", "labels", "has_depth", "has_labels")}
        out.update(image=torch.from_numpy(normalised),
                   depth=torch.from_numpy(np.ascontiguousarray(depth))[None],
                   labels=torch.from_numpy(np.ascontiguousarray(labels)),
                   has_depth=has_depth, has_labels=has_labels)
        return out


def build_transform(size: tuple[int, int] | None, train: bool, *,
                    scale_range: tuple[float, float] = (1.0, 1.5), depth_mode: str = "divide",
                    flip: bool = True, jitter: float = 0.2,
                    mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> Compose:
    """The standard pipeline ending in :class:`ToTensor`.

    Training: resize to ``size`` (height, width), random zoom-crop back to ``size``, flip,
    colour jitter. Evaluation: resize only. ``size=None`` keeps the native size (evaluation).
    """
    steps: list = []
    if size is not None:
        steps.append(Resize(size))
        if train and not math.isclose(scale_range[1], 1.0):
            steps.append(RandomScaleCrop(size, scale_range, depth_mode))
    if train and flip:
        steps.append(RandomHorizontalFlip())
    if train and jitter > 0:
        steps.append(ColorJitter(jitter, jitter, jitter))
    steps.append(ToTensor(mean, std))
    return Compose(steps)
