"""The one place where images become network inputs and network outputs become predictions.

Every backend (torch, onnxruntime, TensorRT) goes through :class:`Preprocessor` and
:class:`Postprocessor`, so all of them see identical inputs and return identical layouts.

Preprocessing: RGB uint8 (H, W, 3) -> :func:`resize_rgb` to the model's (h, w) (area
interpolation when shrinking, bilinear when enlarging; skipped when the size already matches)
-> :func:`normalise_rgb` with the model's mean/std (``meta.mean``/``meta.std``: the values the
model was trained with) -> (B, 3, h, w) float32, C-contiguous. Images are stretched to (h, w),
not letter-boxed: the networks are trained on resized full frames.

Training and validation (``synergy_ros.data.transforms``) resize and normalise with these same
two functions, so the network sees the same input at training, validation, ``synergy
evaluate``, the node and the TensorRT INT8 calibrator (all through :class:`Preprocessor`).

Postprocessing at ``output_resolution="input"``: depth and attention are resized back to each
image's (H, W) bilinearly, labels with exact nearest-neighbour (``cv2.INTER_NEAREST_EXACT``,
pixel-centre aligned); at ``"model"`` they stay (h, w). Labels are uint8 for <= 255 classes,
else uint16.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.rgb import rgb8_problem
from synergy_ros.runtime.prediction import Prediction, RawOutput


def check_rgb_image(image: np.ndarray, index: int = 0) -> np.ndarray:
    """Return ``image`` if it is an (H, W, 3) uint8 array, else raise SynergyError."""
    problem = rgb8_problem(image)
    if problem:
        raise SynergyError(f"image {index}: {problem}")
    return image


def label_dtype(num_classes: int) -> np.dtype:
    """uint8 for up to 255 classes (ids 0..254, 255 stays free for 'ignore'), else uint16."""
    return np.dtype(np.uint8) if num_classes <= 255 else np.dtype(np.uint16)


def resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (H, W, 3) image to (height, width) pixels: ``cv2.INTER_AREA`` when the pixel
    count shrinks (averages the source pixels each output pixel covers, no aliasing),
    ``cv2.INTER_LINEAR`` otherwise; the image itself when the size already matches."""
    if image.shape[:2] == (height, width):
        return image
    shrink = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(np.ascontiguousarray(image), (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def normalisation(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, offset) float32 with ``x * scale + offset == (x / 255 - mean) / std``
    for uint8 x (folded once, in float64)."""
    std_arr = np.asarray(std, dtype=np.float64)
    scale = (1.0 / (255.0 * std_arr)).astype(np.float32)
    offset = (-np.asarray(mean, dtype=np.float64) / std_arr).astype(np.float32)
    return scale, offset


def normalise_rgb(image: np.ndarray, scale: np.ndarray, offset: np.ndarray,
                  out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 ``image * scale + offset`` per channel (see
    :func:`normalisation`), written into ``out`` when given."""
    if out is None:
        out = np.empty((3, *image.shape[:2]), dtype=np.float32)
    for channel in range(3):
        np.multiply(image[:, :, channel], scale[channel], out=out[channel], dtype=np.float32)
        out[channel] += offset[channel]
    return out


class Preprocessor:
    """Resize + normalise RGB uint8 images into a (B, 3, h, w) float32 batch.

    Args:
        input_size: (h, w) pixels the model runs at.
        mean, std: per-channel RGB normalisation of images scaled to [0, 1].
    """

    def __init__(self, input_size: Sequence[int], mean: Sequence[float],
                 std: Sequence[float]) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.scale, self.offset = normalisation(mean, std)

    def __call__(self, images: Sequence[np.ndarray],
                 resized: list | None = None) -> tuple[np.ndarray, list[tuple]]:
        """Return (batch (B, 3, h, w) float32, [(H, W) of each input image]).

        Args:
            images: (H, W, 3) uint8 RGB images (sizes may differ).
            resized: a list to append each image resized to (h, w) (uint8, before
                normalisation) to, for callers that need the network's view of the image.
        """
        height, width = self.input_size
        batch = np.empty((len(images), 3, height, width), dtype=np.float32)
        sizes = []
        for i, image in enumerate(images):
            check_rgb_image(image, i)
            sizes.append(image.shape[:2])
            small = resize_rgb(image, height, width)
            if resized is not None:
                resized.append(small)
            normalise_rgb(small, self.scale, self.offset, out=batch[i])
        return batch, sizes


class Postprocessor:
    """Turn a backend's :class:`RawOutput` into :class:`Prediction` objects.

    Args:
        num_classes: number of semantic classes (picks the label dtype).
        output_resolution: ``"input"`` (resize back to each image's size) or ``"model"``.
    """

    def __init__(self, num_classes: int, output_resolution: str = "input") -> None:
        self.label_dtype = label_dtype(num_classes)
        self.output_resolution = output_resolution

    def __call__(self, raw: RawOutput, sizes: Sequence[tuple]) -> list[Prediction]:
        """Split the batch into Predictions, resized per ``output_resolution``."""
        depth = np.asarray(raw.depth, dtype=np.float32)
        labels = np.asarray(raw.labels)
        if depth.ndim != 4 or depth.shape[1] != 1 or labels.ndim != 3:
            raise SynergyError(f"backend returned depth {depth.shape} / labels {labels.shape}; "
                               "expected (B, 1, h, w) / (B, h, w): re-export the model")
        model_hw = depth.shape[2:]
        results = []
        for i, size in enumerate(sizes):
            out_hw = tuple(size) if self.output_resolution == "input" else tuple(model_hw)
            item_depth = _resize(depth[i, 0], out_hw, cv2.INTER_LINEAR)
            item_labels = _resize(labels[i].astype(self.label_dtype, copy=False), out_hw,
                                  cv2.INTER_NEAREST_EXACT)
            attention = None
            if raw.attention is not None:
                attention = _resize(np.asarray(raw.attention[i, 0], dtype=np.float32), out_hw,
                                    cv2.INTER_LINEAR)
            results.append(Prediction(depth=np.ascontiguousarray(item_depth),
                                      labels=np.ascontiguousarray(item_labels),
                                      attention=attention))
        return results


def _resize(array: np.ndarray, out_hw: tuple, interpolation: int) -> np.ndarray:
    """Resize a 2-D array to (H, W) (a copy, never a view of a backend's reusable buffer)."""
    if array.shape == out_hw:
        return array.copy()
    return cv2.resize(array, (out_hw[1], out_hw[0]), interpolation=interpolation)
