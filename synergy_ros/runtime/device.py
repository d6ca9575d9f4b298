"""Device strings (``auto``, ``cpu``, ``cuda``, ``cuda:N``) and which GPU they mean.

One definition for every place that chooses a device: the backend chooser, the torch,
onnxruntime and TensorRT backends, ``synergy export``'s engine build and parity check, and the
trainer. ``cuda`` without an index means CUDA device 0, the first GPU this process sees (set
``CUDA_VISIBLE_DEVICES`` to choose which physical GPU that is), so ``cuda`` and ``cuda:0`` build
and run on the same GPU in every backend. torch wants an explicit index in some calls
(``torch.cuda.set_device(torch.device("cuda"))`` raises ``ValueError``), so the backends pass
:func:`cuda_index` rather than the string.

Parsing is plain Python; torch is imported only by :func:`torch_device` (and only when asked
for a CUDA device or ``auto``), so importing this module never imports torch.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

from synergy_ros.core.errors import SynergyError

DEVICE_HELP = "auto, cpu, cuda or cuda:N"


@dataclasses.dataclass(frozen=True)
class DeviceSpec:
    """A parsed device string: ``kind`` is ``auto``, ``cpu`` or ``cuda``; ``index`` is the CUDA
    device index (None for ``auto``/``cpu``; 0 for a bare ``cuda``)."""

    kind: str
    index: int | None

    def __str__(self) -> str:
        """Canonical spelling: ``auto``, ``cpu`` or ``cuda:N``."""
        return self.kind if self.index is None else f"cuda:{self.index}"


def parse_device(name: str) -> DeviceSpec:
    """Parse ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (N >= 0); SynergyError otherwise."""
    text = name.strip().lower() if isinstance(name, str) else ""
    if text in ("auto", "cpu"):
        return DeviceSpec(text, None)
    if text == "cuda":
        return DeviceSpec("cuda", 0)
    if text.startswith("cuda:") and text[5:].isdigit():
        return DeviceSpec("cuda", int(text[5:]))
    raise SynergyError(f"unknown device {name!r}; use {DEVICE_HELP} (N: the CUDA device index, "
                       "0 = the first visible GPU)")


def cuda_index(name: str) -> int:
    """The CUDA device index ``name`` (``cuda`` or ``cuda:N``) selects; SynergyError for others.

    Plain parsing: whether that GPU exists is checked by :func:`torch_device`.
    """
    spec = parse_device(name)
    if spec.index is None:
        raise SynergyError(f"device {name!r} is not a CUDA device; this path needs cuda or "
                           "cuda:N")
    return spec.index


def check_cuda_index(index: int, available: bool, count: int) -> None:
    """SynergyError unless CUDA is ``available`` and ``index`` < ``count`` visible GPUs."""
    if not available:
        raise SynergyError(f"device cuda:{index} requested but torch sees no CUDA GPU (CPU-only "
                           "torch, no driver, or CUDA_VISIBLE_DEVICES empty); pass --device cpu")
    if index >= count:
        raise SynergyError(f"device cuda:{index} requested but torch sees {count} CUDA "
                           f"GPU(s) (indices 0..{count - 1}; CUDA_VISIBLE_DEVICES renumbers "
                           "them); pick an index below that")


def torch_device(name: str) -> Any:
    """The ``torch.device`` for ``name``: ``cpu``; ``cuda[:N]`` with an explicit index, checked
    to exist; ``auto``: ``cuda:0`` when torch sees a GPU, else ``cpu``."""
    spec = parse_device(name)
    if spec.kind == "cpu":
        import torch

        return torch.device("cpu")
    import torch

    available = bool(torch.cuda.is_available())
    if spec.kind == "auto":
        return torch.device("cuda", 0) if available else torch.device("cpu")
    assert spec.index is not None
    check_cuda_index(spec.index, available, torch.cuda.device_count() if available else 0)
    return torch.device("cuda", spec.index)


def module_installed(module: str) -> bool:
    """True when ``module`` is importable as a real module.

    Type-stub wheels (``tensorrt-stubs`` ships ``tensorrt/__init__.pyi`` without code) leave a
    bare folder that Python imports as an empty namespace package; that does not count.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin not in (None, "namespace")
