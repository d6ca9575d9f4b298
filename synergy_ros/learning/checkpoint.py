"""Training checkpoints: a model file plus everything needed to continue bit-for-bit.

A checkpoint is a model file (:mod:`synergy_ros.core.modelfile`) with one extra key::

    "training": {"epoch": int,            # epoch the next step belongs to (0-based)
                 "epoch_step": int,       # batches of that epoch already consumed
                 "step": int,             # batches consumed in total (global step)
                 "optimizer": ..., "scheduler": ..., "scaler": ...,   # state_dicts
                 "rng": {"python": ..., "numpy": ..., "torch": ..., "cuda": [...]},
                 "config": {...},         # the resolved training config
                 "best": {"metric": str, "mode": "min"|"max", "value": float | None},
                 "nonfinite_total": int}

so every checkpoint also works as a model for inference, export and ``init.checkpoint``.
Everything is stored as tensors and plain Python values, which is what lets
``torch.load(weights_only=True)`` (no arbitrary unpickling) read it back. Files are written
atomically (temp file + fsync + rename, :mod:`synergy_ros.core.atomic`): a crash or Ctrl-C while
saving leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ModelMeta, load_model_file, save_model_file

TRAINING_KEY = "training"
#: Entries of the ``training`` dict that resuming cannot do without.
REQUIRED_TRAINING_KEYS = ("epoch", "epoch_step", "step", "optimizer", "rng", "config")


def capture_rng_state() -> dict:
    """Return the python, numpy, torch (CPU) and CUDA generator states as safe-to-load values."""
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict) -> None:
    """Restore the generator states captured by :func:`capture_rng_state`."""
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:  # resumed on another GPU count: seed what we can, deterministically
            for index in range(min(len(cuda_states), torch.cuda.device_count())):
                torch.cuda.set_rng_state(cuda_states[index], index)


def save_checkpoint(path: str | os.PathLike, state_dict: dict, meta: ModelMeta,
                    training: dict) -> None:
    """Atomically write a checkpoint (a model file with a ``training`` entry).

    Args:
        path: destination ``.pt``.
        state_dict: ``SynergyNet.state_dict()`` (unwrapped from DDP/compile).
        meta: model metadata (network config, classes, palette, input size, max depth).
        training: the ``training`` dict described in the module docstring.
    """
    missing = [k for k in REQUIRED_TRAINING_KEYS if k not in training]
    if missing:
        raise ValueError(f"checkpoint training state lacks {missing}")
    save_model_file(path, state_dict, meta, **{TRAINING_KEY: training})


def load_checkpoint(path: str | os.PathLike, mmap: bool = False) -> dict:
    """Load a checkpoint for resuming; raise SynergyError if it is corrupt or not resumable.

    Returns the model-file dict (``meta`` as :class:`ModelMeta`, ``state_dict``,
    ``training``), loaded with ``weights_only=True``; ``mmap=True`` maps the tensors from
    the file instead of reading them (for callers that only need the config or metadata).
    """
    payload = load_model_file(path, weights_only=True, mmap=mmap)
    training = payload.get(TRAINING_KEY)
    if not isinstance(training, dict):
        raise SynergyError(f"{path} is a model file without training state, so it cannot be "
                           f"resumed; start a new run from its weights with "
                           f"--set init.checkpoint={path}")
    lacking = [k for k in REQUIRED_TRAINING_KEYS if k not in training]
    if lacking:
        raise SynergyError(f"checkpoint {path} lacks {lacking}; it was not written by this "
                           "version of `synergy train`. Start a new run with "
                           f"--set init.checkpoint={path}")
    return payload


def load_weights(model: Any, state_dict: dict, source: str,
                 skip_prefixes: tuple[str, ...] = ()) -> None:
    """Copy ``state_dict`` into ``model`` strictly, with a clear error on any mismatch.

    Args:
        model: a ``torch.nn.Module``.
        state_dict: weights (any float dtype; copied into the model's dtype).
        source: file name for the error message.
        skip_prefixes: keys starting with these are neither loaded nor required (e.g. a
            replaced semantic head).
    """
    own = model.state_dict()
    wanted = {k: v for k, v in state_dict.items() if not k.startswith(skip_prefixes)}
    expected = {k for k in own if not k.startswith(skip_prefixes)}
    missing = sorted(expected - set(wanted))
    unexpected = sorted(set(wanted) - expected)
    mismatched = [f"{k} {tuple(wanted[k].shape)} vs {tuple(own[k].shape)}"
                  for k in sorted(expected & set(wanted))
                  if tuple(wanted[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("shape mismatch (file vs model)", mismatched)):
            if items:
                more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
                parts.append(f"{label}: {', '.join(items[:3])}{more}")
        raise SynergyError(f"weights in {source} do not fit the configured network ("
                           + "; ".join(parts) + "); use the same model.* settings the file was "
                           "trained with (see its metadata with `synergy info`)")
    model.load_state_dict(wanted, strict=not skip_prefixes)


def checkpoint_path(output: str | os.PathLike, which: str = "last") -> Path:
    """Path of ``last.pt`` / ``best.pt`` inside a run folder."""
    return Path(output) / f"{which}.pt"
