"""Model files: weights plus the metadata a predictor needs so it never guesses.

A model file (``*.pt``) is a ``torch.save`` of a plain dict::

    {"format": "synergy_ros.model", "format_version": 1,
     "meta": ModelMeta.to_dict(),          # JSON-serialisable
     "state_dict": {name: tensor}}          # SynergyNet.state_dict()

Training checkpoints are model files with extra keys (optimizer, scheduler, step, RNG...), so
every checkpoint can be used as a model. ONNX files carry the same ``meta`` as JSON in
``metadata_props["synergy_ros.meta"]``; TensorRT engines in a sidecar ``<engine>.json``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from synergy_ros import __version__
from synergy_ros.core.atomic import atomic_save
from synergy_ros.core.errors import SynergyError

MODEL_FORMAT = "synergy_ros.model"
MODEL_FORMAT_VERSION = 1
ONNX_META_KEY = "synergy_ros.meta"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Network config fields added after model files were first written, with the value that
#: reproduces what a file without the field computed (``ModelMeta.network`` is filled with
#: them on load). ``depth_head``: files before it had the sigmoid head; new configs default
#: to softplus (synergy_ros.network.config).
LEGACY_NETWORK_FIELDS = {"depth_head": "sigmoid"}


@dataclasses.dataclass
class ModelMeta:
    """Everything needed to run a model besides its weights.

    Attributes:
        network: the network config dict (``synergy_ros.network.NetworkConfig.to_dict()``);
            fields missing from an older file take ``LEGACY_NETWORK_FIELDS``.
        class_names: one name per semantic class id (len = number of classes).
        palette: one (r, g, b) 0-255 colour per class id.
        input_size: (height, width) in pixels the model runs at; images are resized to it.
        mean, std: per-channel RGB normalisation applied to images scaled to [0, 1].
        max_depth: the largest depth in metres the depth head can output.
        synergy_ros_version: package version that wrote the file.
        extra: free-form JSON (training command, metrics on the held-out split, ...).
    """

    network: dict
    class_names: list
    palette: list
    input_size: tuple = (240, 320)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    max_depth: float = 10.0
    synergy_ros_version: str = __version__
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        """Normalise sequence types, fill legacy network fields, check consistency."""
        if isinstance(self.network, dict):
            self.network = {**LEGACY_NETWORK_FIELDS, **self.network}
        self.input_size = tuple(int(v) for v in self.input_size)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.palette = [tuple(int(c) for c in rgb) for rgb in self.palette]
        self.class_names = [str(n) for n in self.class_names]
        problems = []
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            problems.append(f"input_size must be (height, width) > 0, got {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append("mean and std must have 3 values each, std > 0")
        if len(self.palette) != len(self.class_names):
            problems.append(f"palette has {len(self.palette)} colours for "
                            f"{len(self.class_names)} classes")
        if not self.max_depth > 0:
            problems.append(f"max_depth must be > 0 m, got {self.max_depth}")
        if problems:
            raise SynergyError("invalid model metadata: " + "; ".join(problems))

    @property
    def num_classes(self) -> int:
        """Number of semantic classes."""
        return len(self.class_names)

    def to_dict(self) -> dict:
        """JSON-serialisable dict."""
        data = dataclasses.asdict(self)
        data["input_size"] = list(self.input_size)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        data["palette"] = [list(rgb) for rgb in self.palette]
        return data

    def to_json(self) -> str:
        """Compact JSON string (for ONNX metadata_props and engine sidecars)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = "model metadata") -> "ModelMeta":
        """Build from a dict, naming ``source`` in the error when fields are missing/unknown."""
        if not isinstance(data, dict):
            raise SynergyError(f"{source}: metadata is not a dict")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("network", "class_names", "palette") if n not in data]
        if missing:
            raise SynergyError(f"{source}: metadata lacks {missing}; re-export the model with "
                               "`synergy export` from a synergy_ros checkpoint")
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str, source: str = "model metadata") -> "ModelMeta":
        """Parse JSON written by :meth:`to_json`."""
        try:
            return cls.from_dict(json.loads(text), source)
        except json.JSONDecodeError as exc:
            raise SynergyError(f"{source}: metadata is not valid JSON ({exc})") from exc


def save_model_file(path: str | os.PathLike, state_dict: dict, meta: ModelMeta,
                    **extra: Any) -> None:
    """Atomically write a model file (``extra`` keys are stored beside, e.g. optimizer state)."""
    import torch

    payload = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
               "meta": meta.to_dict(), "state_dict": state_dict, **extra}
    atomic_save(path, lambda handle: torch.save(payload, handle))


def load_model_file(path: str | os.PathLike, weights_only: bool = True,
                    mmap: bool = False) -> dict:
    """Load a model file or checkpoint; returns its dict with ``meta`` as a :class:`ModelMeta`.

    Raises SynergyError (naming the file and what to do) for missing, truncated or foreign
    files. ``weights_only=True`` (safe unpickling) is used unless the caller asks otherwise.
    ``mmap=True`` maps tensor storage from the file instead of reading it (cheap when only
    the metadata is needed).
    """
    import torch

    file = Path(path)
    if not file.is_file():
        raise SynergyError(f"model file {file} does not exist; pass a .pt written by "
                           "`synergy train`, e.g. models/synergy_demo_r18.pt")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=weights_only, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise SynergyError(f"{file} is not a readable synergy_ros model file "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                           "it may be truncated: re-download or re-train it") from exc
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise SynergyError(f"{file} is not a synergy_ros model file (no '{MODEL_FORMAT}' "
                           "header); export one with `synergy train` or use the bundled model")
    if int(payload.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise SynergyError(f"{file} has model format version {payload['format_version']}, newer "
                           f"than this synergy_ros supports ({MODEL_FORMAT_VERSION}); upgrade")
    payload["meta"] = ModelMeta.from_dict(payload.get("meta"), source=str(file))
    return payload


def load_model_meta(path: str | os.PathLike) -> ModelMeta:
    """The :class:`ModelMeta` of a model file without reading its weights into memory."""
    return load_model_file(path, mmap=True)["meta"]
