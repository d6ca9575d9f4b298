"""Inference runtime: one Predictor interface over torch, onnxruntime and TensorRT.

``load_predictor(model_path, backend="auto", ...)`` returns a :class:`Predictor`;
``predictor.predict(rgb (H, W, 3) uint8) -> Prediction(depth m, labels, attention)``.
Importing this package does not import torch, onnxruntime or TensorRT.
"""
from synergy_ros.runtime.base import Predictor
from synergy_ros.runtime.loader import choose_backend, default_cache_dir, load_predictor
from synergy_ros.runtime.prediction import Prediction, RawOutput

__all__ = ["Prediction", "Predictor", "RawOutput", "choose_backend", "default_cache_dir",
           "load_predictor"]
