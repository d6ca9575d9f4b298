"""What a Predictor returns: :class:`Prediction` per image and a backend's :class:`RawOutput`."""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np


@dataclasses.dataclass
class Prediction:
    """One image's result.

    Attributes:
        depth: (H, W) float32 depth in metres (> 0).
        labels: (H, W) semantic class ids, uint8 (<= 255 classes) or uint16.
        attention: (H, W) float32 attention map (the paper's depth-aware attention), or None
            when not requested / not exported.
        timings_ms: wall time of the batch this image was in: ``preprocess``, ``inference``,
            ``postprocess`` (milliseconds).
        rgb: (H, W, 3) uint8 input image at this prediction's size when the preprocessing
            already made it (``output_resolution="model"``: the network's input before
            normalisation), else None. Lets the node colour its clouds without resizing the
            camera image a second time. When the image already had the model's size this is
            the caller's own array (not a copy): read it, do not write into it.

    H, W are the input image's size (``output_resolution="input"``, the default) or the
    model's input size (``output_resolution="model"``).
    """

    depth: np.ndarray
    labels: np.ndarray
    attention: np.ndarray | None = None
    timings_ms: dict = dataclasses.field(default_factory=dict)
    rgb: np.ndarray | None = None


class RawOutput(NamedTuple):
    """A backend's raw result at model resolution (numpy, batch first).

    depth (B, 1, h, w) float32 metres; labels (B, h, w) integer class ids (argmax done by the
    backend / in-graph); attention (B, 1, h', w') float32 or None.
    """

    depth: np.ndarray
    labels: np.ndarray
    attention: np.ndarray | None
