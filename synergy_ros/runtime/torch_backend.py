"""PyTorch backend: runs the model file's SynergyNet directly (CPU or CUDA, fp32/fp16)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.runtime.base import Predictor
from synergy_ros.runtime.device import torch_device
from synergy_ros.runtime.prediction import RawOutput
from synergy_ros.runtime.torch_graph import DeployGraph, build_from_model_file


class TorchPredictor(Predictor):
    """Predictor on a ``.pt`` model file with PyTorch.

    Args:
        model_path: model file or training checkpoint (``synergy_ros.core.modelfile``).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (:mod:`synergy_ros.runtime.device`).
        precision: ``"fp32"``, or ``"fp16"`` (CUDA only: CPU half convolutions are slower).
        num_threads: torch intra-op threads (None: leave torch's setting).
        input_size, output_resolution, with_attention: see :class:`Predictor`.
    """

    backend_name = "torch"

    def __init__(self, model_path: str | os.PathLike, device: str = "cpu",
                 precision: str = "fp32", input_size: Sequence[int] | None = None,
                 output_resolution: str = "input", with_attention: bool = False,
                 num_threads: int | None = None) -> None:
        if precision not in ("fp32", "fp16"):
            raise SynergyError(f"the torch backend runs fp32 or fp16, not {precision!r}; "
                               "int8 needs --backend tensorrt")
        target = torch_device(device)  # cuda[:N] checked to exist; auto picks
        if precision == "fp16" and target.type != "cuda":
            raise SynergyError("fp16 with the torch backend needs a CUDA device; use fp32 on "
                               "CPU")
        if num_threads:
            torch.set_num_threads(int(num_threads))
        net, meta = build_from_model_file(model_path)
        super().__init__(meta, input_size=input_size, output_resolution=output_resolution,
                         with_attention=with_attention, max_batch=None)
        self.device = str(target)
        self.precision = precision
        self.model_path = str(model_path)
        self._target = target
        net = net.to(target)
        if precision == "fp16":
            net = net.half()
        self._graph = DeployGraph(net, with_attention=with_attention).eval()

    def infer(self, batch: np.ndarray) -> RawOutput:
        """Run the network on a (B, 3, h, w) float32 batch."""
        with torch.inference_mode():
            image = torch.from_numpy(batch).to(self._target, non_blocking=True)
            outputs = self._graph(image)
            arrays = [t.cpu().numpy() for t in outputs]
        return RawOutput(arrays[0], arrays[1], arrays[2] if len(arrays) > 2 else None)

    def close(self) -> None:
        """Drop the network (frees GPU memory when on CUDA)."""
        self._graph = None
        if self._target.type == "cuda":
            torch.cuda.empty_cache()
