"""Seeded random-weight model files for pipeline checks, tests and latency benchmarks."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from synergy_ros.core.modelfile import ModelMeta, save_model_file
from synergy_ros.network.synergy import build_network


def save_untrained_model(path: str | os.PathLike, network: dict, class_names: list,
                         palette: list, input_size: tuple = (240, 320), seed: int = 0,
                         extra: dict | None = None) -> Path:
    """Write a real synergy model file with seeded random (untrained) weights.

    For pipeline checks, tests and latency benchmarks, where the weights do not matter.

    Args:
        path: output ``.pt``.
        network: NetworkConfig fields; ``num_classes`` defaults to ``len(class_names)``.
        class_names, palette: one name and one (r, g, b) colour per class id.
        input_size: (height, width) in pixels the model runs at.
        seed: torch seed for the random weights.
        extra: free-form JSON stored in the metadata (e.g. a note that it is untrained).
    """
    torch.manual_seed(seed)
    model = build_network({"num_classes": len(class_names), **network})
    meta = ModelMeta(network=model.config.to_dict(), class_names=list(class_names),
                     palette=list(palette), input_size=tuple(input_size),
                     max_depth=model.config.max_depth, extra=dict(extra or {}))
    save_model_file(path, model.state_dict(), meta)
    return Path(path)
