"""``load_predictor``: pick a backend for a model file and build its Predictor.

Model files by suffix:

* ``.pt`` model file / checkpoint: torch runs it directly; onnxruntime and TensorRT first
  export it to ONNX in the cache dir (keyed by the file's SHA-256 and the export options).
* ``.onnx`` written by ``synergy export`` (metadata in ``metadata_props``): onnxruntime, or
  TensorRT (engine built once into the cache dir).
* ``.engine`` with its sidecar ``.engine.json``: TensorRT only.

``backend="auto"`` picks TensorRT when ``tensorrt`` imports and a CUDA GPU is visible, else
onnxruntime (CUDA execution provider when available, else CPU), else torch; the choice and
why is logged (logger ``synergy_ros.runtime``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import load_model_meta
from synergy_ros.runtime.base import BACKENDS, PRECISIONS, Predictor
from synergy_ros.runtime.device import module_installed, parse_device
from synergy_ros.runtime.exporter import ExportOptions, cached_onnx, newest_cached_int8
from synergy_ros.runtime.onnx_backend import OnnxRuntimePredictor, cuda_provider_available
from synergy_ros.runtime.quantizer import is_int8
from synergy_ros.runtime.tensorrt_backend import load_tensorrt_predictor, onnx_interface

LOG = logging.getLogger("synergy_ros.runtime")
MODEL_SUFFIXES = (".pt", ".onnx", ".engine")
CACHE_ENV = "SYNERGY_CACHE_DIR"


def _installed(module: str) -> bool:
    return module_installed(module)


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken torch means no CUDA for us
        return False


def _ort_cuda() -> bool:
    if not _installed("onnxruntime"):
        return False

    return cuda_provider_available()


def choose_backend(model_path: str | os.PathLike, backend: str = "auto",
                   device: str = "auto") -> tuple[str, str, str]:
    """Resolve ``backend``/``device`` for ``model_path``; returns (backend, device, reason)."""
    suffix = Path(model_path).suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise SynergyError(f"{model_path}: unknown model file type {suffix!r}; pass a .pt model "
                           "file, an .onnx from `synergy export` or a TensorRT .engine")
    if backend not in ("auto", *BACKENDS):
        raise SynergyError(f"unknown backend {backend!r}; choose auto, {', '.join(BACKENDS)}")
    spec = parse_device(device)
    want_gpu = spec.kind != "cpu"
    if backend == "auto":
        trt_ok = _installed("tensorrt")
        cuda_ok = trt_ok and want_gpu and _cuda_available()  # torch imported only if useful
        if suffix == ".engine":
            backend, why = "tensorrt", "an .engine file runs only on TensorRT"
        elif suffix == ".pt" and not (_installed("onnxruntime") or (trt_ok and cuda_ok)):
            backend, why = "torch", "neither onnxruntime nor TensorRT+CUDA is available"
        elif want_gpu and trt_ok and cuda_ok:
            backend, why = "tensorrt", "tensorrt is installed and a CUDA GPU is visible"
        elif _installed("onnxruntime"):
            backend = "onnxruntime"
            why = ("device cpu requested" if not want_gpu else
                   "tensorrt is not installed" if not trt_ok else "no CUDA GPU visible")
        else:
            backend, why = "torch", "onnxruntime is not installed"
    else:
        why = "requested"
    if backend == "torch" and suffix != ".pt":
        raise SynergyError(f"{model_path}: the torch backend needs the .pt model file; pass "
                           "--backend onnxruntime for .onnx (tensorrt for .engine)")
    if backend == "onnxruntime" and suffix == ".engine":
        raise SynergyError(f"{model_path}: a TensorRT engine runs only with --backend "
                           "tensorrt; pass the .onnx or .pt to use onnxruntime")
    if spec.kind == "auto":
        probe = {"tensorrt": lambda: True, "torch": _cuda_available, "onnxruntime": _ort_cuda}
        gpu = probe[backend]()
        device = "cuda:0" if gpu else "cpu"
        if backend == "onnxruntime":
            why += "; CUDA execution provider" + (" available" if gpu else " not available")
    else:
        device = str(spec)  # canonical: cpu or cuda:N
    if backend == "tensorrt" and device == "cpu":
        raise SynergyError("TensorRT runs only on a CUDA GPU; pass --backend onnxruntime or "
                           "torch for --device cpu")
    return backend, device, why


def default_cache_dir(model_path: str | os.PathLike) -> Path:
    """``$SYNERGY_CACHE_DIR``, else ``<model dir>/.synergy_cache`` when writable, else
    ``~/.cache/synergy_ros`` (exports of .pt files and TensorRT engines live there)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    beside = Path(model_path).resolve().parent / ".synergy_cache"
    if os.access(beside if beside.exists() else beside.parent, os.W_OK):
        return beside
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "synergy_ros"


def load_predictor(model_path: str | os.PathLike, backend: str = "auto", device: str = "auto",
                   precision: str = "fp32", engine_cache_dir: str | os.PathLike | None = None,
                   *, input_size: Sequence[int] | None = None, output_resolution: str = "input",
                   with_attention: bool = False, num_threads: int | None = None,
                   thread_spinning: bool = True, max_batch: int = 1) -> Predictor:
    """Build a :class:`Predictor` for ``model_path`` (``.pt``, ``.onnx`` or ``.engine``).

    Args:
        backend: ``auto``, ``torch``, ``onnxruntime`` or ``tensorrt``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``fp16`` (torch on CUDA, fp16 ONNX export, TensorRT FP16) or
            ``int8`` (onnxruntime or TensorRT on a quantized ``.int8.onnx``: the file itself,
            or for another model file the newest one cached for it, see ``synergy export
            --int8``). A quantized ``.onnx`` always runs in INT8.
        engine_cache_dir: where ONNX exports and engines are cached (see
            :func:`default_cache_dir`).
        input_size: (h, w) pixels to run at; default the model's ``meta.input_size`` (an
            ``.onnx``/``.engine`` runs at its exported size).
        output_resolution: ``input`` (resize outputs to the image) or ``model``.
        with_attention: also return the attention map.
        num_threads: CPU threads for torch / onnxruntime.
        thread_spinning: onnxruntime's idle threads busy-wait between runs (its default);
            False when other work shares the cores right after each run (the node).
        max_batch: the largest batch the caller runs at once (a node serving N cameras: N).
            Above 1, a ``.pt`` is exported to ONNX with a dynamic batch axis and a TensorRT
            engine gets an optimisation profile for batches 1..max_batch, each cached under
            its own key. A given static-batch ``.onnx``/``.engine`` runs the frames one by one
            (``predict_batch`` splits), which is logged.
    """
    path = Path(model_path)
    if not path.is_file():
        raise SynergyError(f"model file {path} does not exist; pass a .pt from `synergy train`, "
                           "an .onnx from `synergy export` or a TensorRT .engine")
    if precision not in PRECISIONS:
        raise SynergyError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    backend, device, why = choose_backend(path, backend, device)
    LOG.info("inference backend %s on %s for %s (%s)", backend, device, path.name, why)
    cache_dir = Path(engine_cache_dir) if engine_cache_dir else default_cache_dir(path)
    if precision == "int8":
        if backend == "torch":
            raise SynergyError("int8 runs on onnxruntime or TensorRT from a quantized .int8.onnx "
                               "(`synergy export --format onnx --int8 --calib-images DIR`); the "
                               "torch backend runs fp32 or fp16")
        if not _is_int8_onnx(path):
            path = newest_cached_int8(path, cache_dir)
            LOG.info("int8: running %s", path)
    elif _is_int8_onnx(path):
        LOG.info("%s is quantized: running it in INT8 (the file's own precision)", path.name)
    common = {"output_resolution": output_resolution, "with_attention": with_attention}
    if backend == "torch":
        # lazy: torch_backend imports torch; importing synergy_ros.runtime must not (layer rule)
        from synergy_ros.runtime.torch_backend import TorchPredictor

        return TorchPredictor(path, device=device, precision=precision, input_size=input_size,
                              num_threads=num_threads, **common)
    if backend == "onnxruntime":
        onnx_path = path
        if path.suffix.lower() == ".pt":
            onnx_path = _export_for(path, cache_dir, input_size, with_attention,
                                    fp16=precision == "fp16", max_batch=max_batch)
        elif precision == "fp16":
            LOG.info("precision fp16 with an .onnx file: the file's own precision is used")
        return _note_static_batch(OnnxRuntimePredictor(
            onnx_path, device=device, input_size=input_size, num_threads=num_threads,
            thread_spinning=thread_spinning, **common), max_batch)

    onnx_or_engine = path
    if path.suffix.lower() == ".pt":
        onnx_or_engine = _export_for(path, cache_dir, input_size, with_attention, fp16=False,
                                     max_batch=max_batch)
    predictor = load_tensorrt_predictor(onnx_or_engine, cache_dir=cache_dir, device=device,
                                        precision=precision, input_size=input_size,
                                        max_batch=max_batch, **common)
    return _note_static_batch(predictor, max_batch)


def _is_int8_onnx(path: Path) -> bool:
    """True for an ``.onnx`` whose metadata says it is quantized (``synergy export --int8``)."""
    if path.suffix.lower() != ".onnx":
        return False
    try:
        return is_int8(onnx_interface(path)[0])
    except SynergyError:
        return False  # not readable here: the backend reports it with the fix


def _note_static_batch(predictor: Predictor, max_batch: int) -> Predictor:
    """Log when ``predictor`` takes fewer than ``max_batch`` images per call (a static-batch
    ``.onnx``/``.engine`` given by the user): batches then run in several calls."""
    if max_batch > 1 and predictor.max_batch is not None and predictor.max_batch < max_batch:
        LOG.info("%s takes batches of at most %d; batches of %d run in several calls "
                 "(for one call pass the .pt, or export with `synergy export --dynamic-batch` "
                 "(onnx) / `--format engine --max-batch N` (TensorRT))",
                 predictor.model_path, predictor.max_batch, max_batch)
    return predictor


def _export_for(model_path: Path, cache_dir: Path, input_size: Sequence[int] | None,
                with_attention: bool, fp16: bool, max_batch: int = 1) -> Path:
    """Cached ONNX export of a .pt model file at ``input_size`` (default its meta's), with a
    dynamic batch axis when ``max_batch`` > 1 (cached under its own key: the options differ)."""

    if input_size is None:
        input_size = load_model_meta(model_path).input_size
    options = ExportOptions(height=int(input_size[0]), width=int(input_size[1]),
                            with_attention=with_attention, fp16=fp16,
                            dynamic_batch=max_batch > 1)
    return cached_onnx(model_path, cache_dir, options)
