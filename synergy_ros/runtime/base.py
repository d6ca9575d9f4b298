"""One Predictor interface for every backend: RGB image in, metric depth + class ids out.

A backend only implements :meth:`Predictor.infer` on an already normalised NCHW batch; the
shared preprocessing and postprocessing (``synergy_ros.runtime.preprocess``) run here, so
torch, onnxruntime and TensorRT all see byte-identical inputs and produce outputs the same way.
"""
from __future__ import annotations

import abc
import time
from typing import Sequence

import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ModelMeta
from synergy_ros.runtime.prediction import Prediction, RawOutput
from synergy_ros.runtime.preprocess import Postprocessor, Preprocessor

#: Names of the deployed graph's tensors (ONNX and TensorRT); see docs/runtime.md.
INPUT_NAME = "image"
DEPTH_NAME = "depth"
LABELS_NAME = "labels"
ATTENTION_NAME = "attention"
BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
OUTPUT_RESOLUTIONS = ("input", "model")


def graph_io_spec(input_size: Sequence[int], batch: int = 1,
                  with_attention: bool = False) -> dict:
    """The deployed graph's I/O contract ``{name: {"mode", "shape", "dtype"}}``.

    image (B, 3, h, w) float32 normalised in; depth (B, 1, h, w) float32 metres and labels
    (B, h, w) int32 class ids (argmax in-graph) out; attention (B, 1, h', w') float32 when
    exported with it. -1 means any size (dynamic batch, attention resolution).
    """
    height, width = (int(v) for v in input_size)
    spec = {INPUT_NAME: {"mode": "input", "shape": [batch, 3, height, width], "dtype": "float32"},
            DEPTH_NAME: {"mode": "output", "shape": [batch, 1, height, width],
                         "dtype": "float32"},
            LABELS_NAME: {"mode": "output", "shape": [batch, height, width], "dtype": "int32"}}
    if with_attention:
        spec[ATTENTION_NAME] = {"mode": "output", "shape": [batch, 1, -1, -1],
                                "dtype": "float32"}
    return spec


class Predictor(abc.ABC):
    """Base class: shared pre/post-processing around a backend's :meth:`infer`.

    Args:
        meta: the model's metadata (class names, input size, normalisation, ...).
        input_size: (height, width) pixels the model runs at; default ``meta.input_size``.
        output_resolution: ``"input"`` resizes depth (bilinear), labels (nearest) and
            attention (bilinear) back to each input image's size; ``"model"`` keeps the model
            resolution (cheaper; scale the camera intrinsics to it).
        with_attention: also return the attention map (the backend must provide it).
        max_batch: the largest batch the backend accepts in one call (static ONNX/engines: 1);
            ``predict_batch`` splits longer lists. None = unlimited.
    """

    backend_name: str = "base"

    def __init__(self, meta: ModelMeta, *, input_size: Sequence[int] | None = None,
                 output_resolution: str = "input", with_attention: bool = False,
                 max_batch: int | None = None) -> None:
        if output_resolution not in OUTPUT_RESOLUTIONS:
            raise SynergyError(f"output_resolution must be one of {OUTPUT_RESOLUTIONS}, "
                               f"got {output_resolution!r}")
        self.meta = meta
        self.input_size = tuple(int(v) for v in (input_size or meta.input_size))
        self.output_resolution = output_resolution
        self.with_attention = bool(with_attention)
        self.max_batch = max_batch
        self.device = "cpu"
        self.precision = "fp32"
        self.model_path: str | None = None
        self._pre = Preprocessor(self.input_size, meta.mean, meta.std)
        self._post = Postprocessor(meta.num_classes, output_resolution)

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> RawOutput:
        """Run the network on a normalised (B, 3, h, w) float32 batch (B <= max_batch)."""

    def predict(self, rgb: np.ndarray) -> Prediction:
        """Predict depth (metres) and class ids for one (H, W, 3) uint8 RGB image."""
        return self.predict_batch([rgb])[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        """Predict a list of (H, W, 3) uint8 RGB images (sizes may differ)."""
        images = list(images)
        if not images:
            return []
        step = self.max_batch or len(images)
        results: list[Prediction] = []
        for start in range(0, len(images), step):
            results.extend(self._predict_chunk(images[start:start + step]))
        return results

    def _predict_chunk(self, images: list[np.ndarray]) -> list[Prediction]:
        t0 = time.perf_counter()
        resized = [] if self.output_resolution == "model" else None
        batch, sizes = self._pre(images, resized)
        t1 = time.perf_counter()
        raw = self.infer(batch)
        t2 = time.perf_counter()
        if not self.with_attention:
            raw = raw._replace(attention=None)
        predictions = self._post(raw, sizes)
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                   "postprocess": (t3 - t2) * 1e3}
        for index, prediction in enumerate(predictions):
            prediction.timings_ms = dict(timings)
            if resized is not None and resized[index].shape[:2] == prediction.depth.shape:
                prediction.rgb = resized[index]  # the network's view, at the outputs' size
        return predictions

    def describe(self) -> dict:
        """JSON-serialisable summary: backend, device, precision, model file, input size."""
        return {"backend": self.backend_name, "device": self.device,
                "precision": self.precision, "model": self.model_path,
                "input_size": list(self.input_size), "max_batch": self.max_batch,
                "output_resolution": self.output_resolution,
                "num_classes": self.meta.num_classes}

    def close(self) -> None:
        """Release backend resources (sessions, GPU buffers); the predictor is unusable after."""

    def __enter__(self) -> "Predictor":
        """Use as a context manager that calls :meth:`close`."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Close the predictor."""
        self.close()

    def __repr__(self) -> str:
        """Short description for logs."""
        return (f"{type(self).__name__}(backend={self.backend_name}, device={self.device}, "
                f"precision={self.precision}, input_size={self.input_size}, "
                f"model={self.model_path})")
