"""Export a model file to ONNX (and, via the TensorRT backend, to an engine), with checks.

The ONNX graph is :class:`synergy_ros.runtime.torch_graph.DeployGraph`:

* input ``image`` (B, 3, H, W) float32, normalised (see ``runtime/preprocess.py``);
* outputs ``depth`` (B, 1, H, W) float32 metres, ``labels`` (B, H, W) int32 class ids (argmax
  in-graph: int32 because TensorRT and onnxruntime both support it as an I/O type and it
  holds any class count; the predictors convert to uint8/uint16), and optionally
  ``attention`` (B, 1, h', w') float32.
* opset 17, static shape by default (B = 1), optionally a dynamic batch axis.
* ``fp16``: the weights and activations are float16 (``torch .half()`` before export) with
  float32 I/O casts in-graph, so callers never see float16. (onnxconverter-common is not used.)
  For TensorRT, exporting fp32 and building with ``--fp16`` gives the same speed; both work.
* the model metadata (``ModelMeta.to_json()``, with ``input_size`` = the exported H, W) in
  ``metadata_props["synergy_ros.meta"]``.

Exports use the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): in
torch 2.13 the default dynamo exporter needs ``onnxscript``, which is not a dependency here.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from synergy_ros import __version__
from synergy_ros.core.atomic import atomic_write_bytes
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ONNX_META_KEY, ModelMeta
from synergy_ros.runtime.base import (ATTENTION_NAME, DEPTH_NAME, INPUT_NAME, LABELS_NAME,
                                      graph_io_spec)
from synergy_ros.runtime.engine_cache import (cached_build, calibration_digest, calibration_files,
                                              file_sha256, key_digest, read_record,
                                              record_problems)
from synergy_ros.runtime.onnx_backend import OnnxRuntimePredictor
from synergy_ros.runtime.quantizer import (INT8_SUFFIX, Int8Options, Int8Report,
                                           check_calibration_folder, is_int8, quantize_int8)

LOG = logging.getLogger("synergy_ros.runtime.exporter")
DEFAULT_OPSET = 17


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How to export: input size (pixels), optional outputs and numeric format."""

    height: int
    width: int
    with_attention: bool = False
    fp16: bool = False
    dynamic_batch: bool = False
    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        """Reject sizes and opsets the graph cannot use."""
        if self.height < 32 or self.width < 32:
            raise SynergyError(f"export size {self.height}x{self.width} (HxW): height and "
                               "width must be >= 32 pixels (the encoder downsamples by 32)")
        if self.opset < 17:
            raise SynergyError(f"opset {self.opset} < 17 is not supported; use >= 17")

    def to_dict(self) -> dict:
        """JSON-serialisable dict (for cache keys and ONNX metadata)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Largest allowed onnxruntime-vs-torch difference on the sample image.

    depth_max_abs_m: max |depth_onnx - depth_torch| in metres; depth_mean_rel: mean relative
    depth difference; label_agreement: fraction of pixels with equal class ids.
    """

    depth_max_abs_m: float
    depth_mean_rel: float
    label_agreement: float


#: fp32: numerically the same graph (float reordering only). fp16: float16 rounding (~1e-3
#: relative per op) moves depth ~0.1-1 % and flips labels at near-tied logits.
TOLERANCES = {"fp32": Tolerance(1e-3, 1e-4, 0.999), "fp16": Tolerance(0.25, 0.01, 0.98)}


@dataclasses.dataclass
class ParityReport:
    """One backend's outputs vs a reference backend's on the same sample image
    (``compare_outputs``): onnxruntime vs torch fp32, or TensorRT vs onnxruntime."""

    depth_max_abs_m: float
    depth_mean_rel: float
    label_agreement: float
    tolerance: Tolerance

    @property
    def ok(self) -> bool:
        """True when every figure is within tolerance."""
        return (self.depth_max_abs_m <= self.tolerance.depth_max_abs_m
                and self.depth_mean_rel <= self.tolerance.depth_mean_rel
                and self.label_agreement >= self.tolerance.label_agreement)

    def summary(self) -> str:
        """One line with the figures and the limits."""
        tol = self.tolerance
        return (f"max |depth diff| {self.depth_max_abs_m:.3g} m (limit {tol.depth_max_abs_m:g}),"
                f" mean rel {self.depth_mean_rel:.3g} (limit {tol.depth_mean_rel:g}), label "
                f"agreement {self.label_agreement:.4%} (limit {tol.label_agreement:.1%})")


def sample_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic, natural-looking (H, W, 3) uint8 RGB test image (smooth blobs + edges)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, height // 16), max(2, width // 16), 3),
                         dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, size=image.shape)
    return np.clip(image.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def export_onnx_bytes(model_path: str | os.PathLike,
                      options: ExportOptions) -> tuple[bytes, ModelMeta]:
    """Export a ``.pt`` model file to ONNX bytes (metadata embedded, ``onnx.checker``-clean)."""
    import onnx
    import torch

    # lazy: torch_graph imports torch; importing synergy_ros.runtime must not (layer rule)
    from synergy_ros.runtime.torch_graph import DeployGraph, build_from_model_file

    net, meta = build_from_model_file(model_path)
    if options.fp16:
        net = net.half()
    graph = DeployGraph(net, with_attention=options.with_attention).eval()
    example = torch.zeros(1, 3, options.height, options.width, dtype=torch.float32)
    outputs = [DEPTH_NAME, LABELS_NAME] + ([ATTENTION_NAME] if options.with_attention else [])
    dynamic_axes = None
    if options.dynamic_batch:
        dynamic_axes = {name: {0: "batch"} for name in [INPUT_NAME, *outputs]}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(graph, (example,), buffer, input_names=[INPUT_NAME],
                              output_names=outputs, opset_version=options.opset,
                              dynamic_axes=dynamic_axes, do_constant_folding=True,
                              dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    export_meta = dataclasses.replace(
        meta, input_size=(options.height, options.width),
        extra={**meta.extra, "export": {**options.to_dict(), "torch": torch.__version__,
                                        "source": Path(model_path).name}})
    onnx.helper.set_model_props(model, {ONNX_META_KEY: export_meta.to_json()})
    model.producer_name = "synergy_ros"
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(), export_meta


def verify_onnx(onnx_path: str | os.PathLike, model_path: str | os.PathLike,
                seed: int = 0) -> ParityReport:
    """Compare onnxruntime (CPU) on ``onnx_path`` with torch fp32 on ``model_path``.

    Both run on the same preprocessed sample image (``sample_image`` at the ONNX input size).
    The tolerance follows the ONNX file's precision (``TOLERANCES``).
    """
    # lazy: torch_backend imports torch; importing synergy_ros.runtime must not (layer rule)
    from synergy_ros.runtime.torch_backend import TorchPredictor

    with OnnxRuntimePredictor(onnx_path, device="cpu") as onnx_pred, \
            TorchPredictor(model_path, device="cpu", input_size=onnx_pred.input_size) as torch_pred:
        height, width = onnx_pred.input_size
        batch, _ = onnx_pred._pre([sample_image(height, width, seed)])
        got = onnx_pred.infer(batch)
        want = torch_pred.infer(batch)
    fp16 = bool(onnx_pred.meta.extra.get("export", {}).get("fp16"))
    return compare_outputs(got, want, TOLERANCES["fp16" if fp16 else "fp32"])


def compare_outputs(got, want, tolerance: Tolerance) -> ParityReport:
    """Compare two backends' results on the same image(s) against ``tolerance``.

    ``got`` / ``want``: anything with ``depth`` (metres, > 0) and ``labels`` arrays of equal
    shapes (a ``RawOutput`` or a ``Prediction``); ``want`` is the reference.
    """
    diff = np.abs(got.depth.astype(np.float64) - want.depth)
    rel = diff / np.maximum(np.abs(want.depth), 1e-6)
    return ParityReport(depth_max_abs_m=float(diff.max()), depth_mean_rel=float(rel.mean()),
                        label_agreement=float(np.mean(got.labels == want.labels)),
                        tolerance=tolerance)


def export_onnx(model_path: str | os.PathLike, output: str | os.PathLike,
                options: ExportOptions, verify: bool = True) -> ParityReport | None:
    """Write ``output`` (atomically), then check onnxruntime against torch when ``verify``.

    Raises SynergyError when the parity check fails (the file stays, for inspection).
    """

    data, _ = export_onnx_bytes(model_path, options)
    atomic_write_bytes(output, data)
    LOG.info("wrote %s (%.1f MB)", output, len(data) / 1e6)
    if not verify:
        return None
    report = verify_onnx(output, model_path)
    if not report.ok:
        raise SynergyError(f"{output}: onnxruntime disagrees with torch beyond tolerance: "
                           f"{report.summary()}; report this as a bug (export with a different "
                           "--opset, or without --fp16)")
    return report


def _package_version(name: str) -> str | None:
    """Installed version of ``name`` without importing it (torch takes seconds to import)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cached_onnx(model_path: str | os.PathLike, cache_dir: str | os.PathLike,
                options: ExportOptions) -> Path:
    """ONNX export of a ``.pt`` model kept in ``cache_dir``, keyed by the file's SHA-256, the
    export options and the synergy_ros/torch versions; exported (once, under a file lock) when
    missing or stale."""

    model_path = Path(model_path)
    if not model_path.is_file():
        raise SynergyError(f"model file {model_path} does not exist")
    key = {"source_sha256": file_sha256(model_path), "options": options.to_dict(),
           "synergy_ros": __version__, "torch": _package_version("torch")}
    target = Path(cache_dir) / f"{model_path.stem}.{key_digest(key)}.onnx"

    def build() -> tuple[bytes, dict]:
        data, meta = export_onnx_bytes(model_path, options)
        return data, {"source": str(model_path), "meta": meta.to_dict(),
                      "io": graph_io_spec((options.height, options.width),
                                          -1 if options.dynamic_batch else 1,
                                          options.with_attention)}

    return cached_build(target, key, build, what="ONNX export").path


def _int8_bytes(model_path: str | os.PathLike, options: ExportOptions,
                int8: Int8Options) -> tuple[bytes, ModelMeta, Int8Report]:
    """(INT8 Q/DQ ONNX bytes with metadata, its ModelMeta, the quantization report) of a
    ``.pt`` model file (exported at ``options`` first) or an FP32 ``.onnx`` from ``synergy
    export`` (quantized as it is). SynergyError when the verification fails."""
    import onnx

    if options.fp16:
        raise SynergyError("choose one of --fp16 and --int8")
    check_calibration_folder(int8)  # a bad folder fails before the export
    source = Path(model_path)
    with tempfile.TemporaryDirectory(prefix="synergy_export_int8_") as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        if source.suffix.lower() == ".onnx":
            props = {p.key: p.value for p in onnx.load(str(source)).metadata_props}
            if ONNX_META_KEY not in props:
                raise SynergyError(f"{source} has no '{ONNX_META_KEY}' metadata; pass the .pt "
                                   "model file or an ONNX from `synergy export`")
            meta = ModelMeta.from_json(props[ONNX_META_KEY], source=str(source))
            if is_int8(meta):
                raise SynergyError(f"{source} is already quantized (INT8 Q/DQ)")
            fp32_path.write_bytes(source.read_bytes())
        else:
            data, meta = export_onnx_bytes(source, options)
            fp32_path.write_bytes(data)
        report = quantize_int8(fp32_path, meta, int8, int8_path)
        model = onnx.load(str(int8_path))
    export = {**meta.extra.get("export", {}), "int8": report.to_dict()}
    int8_meta = dataclasses.replace(meta, extra={**meta.extra, "export": export})
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {ONNX_META_KEY: int8_meta.to_json()})
    model.producer_name = "synergy_ros"
    onnx.checker.check_model(model)
    return model.SerializeToString(), int8_meta, report


def export_int8_onnx(model_path: str | os.PathLike, output: str | os.PathLike,
                     options: ExportOptions, int8: Int8Options) -> Int8Report:
    """Export ``model_path`` to FP32 ONNX, quantize it to INT8 (Q/DQ) on ``int8.calib_images``
    and write ``output`` (atomically) with the model's metadata plus the quantization record
    (``extra["export"]["int8"]``: calibration, layers kept in FP32, sensitivity, held-out
    agreement). SynergyError (nothing written) when the held-out verification fails.
    """
    data, _, report = _int8_bytes(model_path, options, int8)
    atomic_write_bytes(output, data)
    LOG.info("wrote %s (%.1f MB)", output, len(data) / 1e6)
    return report


def _int8_prefix(model_path: Path, source_sha256: str) -> str:
    """File-name prefix of the cached INT8 ONNX files of one model file."""
    return f"{model_path.stem}.{source_sha256[:16]}."


def cached_int8_onnx(model_path: str | os.PathLike, cache_dir: str | os.PathLike,
                     options: ExportOptions, int8: Int8Options) -> tuple[Path, dict, bool]:
    """The INT8 Q/DQ ONNX of ``model_path`` (``.pt``, or an FP32 ``.onnx``) for the engine path
    (``synergy export --format engine --int8``), kept in ``cache_dir`` as
    ``<stem>.<source sha 16>.<key digest>.int8.onnx``; the key holds the source's SHA-256, the
    export options, the calibration images' digest, the quantization options and the
    synergy_ros/torch/onnxruntime versions. Returns (path, sidecar record, built now)."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise SynergyError(f"model file {model_path} does not exist")
    files = calibration_files(int8.calib_images, int8.max_images)
    source_sha = file_sha256(model_path)
    key = {"source_sha256": source_sha, "options": options.to_dict(),
           "calibration": calibration_digest(files, int8.max_images),
           "int8": int8.key_dict(), "synergy_ros": __version__,
           "torch": _package_version("torch"), "onnxruntime": _package_version("onnxruntime")}
    target = (Path(cache_dir)
              / f"{_int8_prefix(model_path, source_sha)}{key_digest(key)}{INT8_SUFFIX}")

    def build() -> tuple[bytes, dict]:
        data, meta, report = _int8_bytes(model_path, options, int8)
        return data, {"source": str(model_path), "meta": meta.to_dict(),
                      "int8": report.to_dict()}

    result = cached_build(target, key, build, what="INT8 ONNX")
    return result.path, result.record, result.built


def newest_cached_int8(model_path: str | os.PathLike, cache_dir: str | os.PathLike) -> Path:
    """The newest valid INT8 ONNX cached for ``model_path`` in ``cache_dir`` (made by ``synergy
    export --format engine --int8 --calib-images``): what ``precision="int8"`` runs for a model
    file that is not quantized itself. SynergyError saying how to make one when there is none.
    """
    import glob

    model_path = Path(model_path)
    prefix = _int8_prefix(model_path, file_sha256(model_path))
    found = [p for p in Path(cache_dir).glob(f"{glob.escape(prefix)}*{INT8_SUFFIX}")
             if p.is_file() and not record_problems(p, read_record(p),
                                                    (read_record(p) or {}).get("key") or {},
                                                    check_hash=False)]
    if not found:
        raise SynergyError(
            f"int8 needs a quantized model and {cache_dir} holds none for {model_path.name}: "
            f"pass an .int8.onnx from `synergy export --checkpoint {model_path.name} --format "
            "onnx --int8 --calib-images DIR`, or run `synergy export --format engine --int8 "
            "--calib-images DIR` with the same cache dir first")
    newest = max(found, key=lambda p: (p.stat().st_mtime_ns, p.name))
    if len(found) > 1:
        LOG.info("int8: %d quantized models cached for %s; using the newest, %s", len(found),
                 model_path.name, newest.name)
    return newest
