"""Static INT8 post-training quantization of the exported ONNX graph, measured on camera frames.

``synergy export --format onnx --int8 --calib-images DIR`` turns the FP32 export into a
``.int8.onnx`` with onnxruntime's quantization tools (``onnxruntime.quantization
.quantize_static``):

* QDQ format (QuantizeLinear/DequantizeLinear pairs around the float ops), int8 symmetric
  weights quantized per output channel, activations per tensor: uint8 asymmetric for
  onnxruntime on CPUs (``target="cpu"``, the default), int8 symmetric for TensorRT
  (``target="tensorrt"``: zero point 0, what its explicit quantization accepts). One file
  for both was the plan; measured here, int8 symmetric activations leave onnxruntime's x86
  kernels at FP32 speed (see :data:`SCHEMES`), so the scheme follows the target.
* Activation ranges: MinMax calibration on the frames in DIR (sorted by name, the first
  ``max_images``), preprocessed by the one preprocessing definition
  (:class:`~synergy_ros.runtime.preprocess.Preprocessor`, as the node and the trainer do). The
  last ``verify_frames`` of them are held out of calibration and used only for verification.
* Layers kept in FP32: for each quantizable layer (a module of the network: one convolution,
  a residual add, the sharing unit's products, the output tail after the heads), the graph is
  quantized with all other layers and that one kept in FP32, and the error it removes on a few
  calibration frames is measured (:func:`layer_sensitivity`); ``fp32_layers="auto"`` keeps in
  FP32 the layers that each remove at least :data:`AUTO_SHARE` of the error of the fully
  quantized graph, at most ``max_fp32_layers`` of them. The table and the choice go into the
  file's metadata.
* Verification: on the held-out frames, the INT8 graph against the FP32 graph (median relative
  depth difference, share of pixels with max(d8/d32, d32/d8) < 1.25, label agreement)
  (:class:`Int8Agreement`); below :class:`Int8Thresholds` nothing is written and a
  SynergyError says which figure failed and what to change.

onnxruntime's calibration cache (``calibration_cache_path``) lets the sensitivity runs reuse
one calibration pass instead of recalibrating for every layer.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ModelMeta
from synergy_ros.runtime.base import DEPTH_NAME, INPUT_NAME, LABELS_NAME
from synergy_ros.runtime.engine_cache import calibration_digest, calibration_files
from synergy_ros.runtime.preprocess import Preprocessor

LOG = logging.getLogger("synergy_ros.runtime.quantizer")
#: Default number of calibration frames (the first by name).
DEFAULT_MAX_CALIB_IMAGES = 200
#: ``auto`` keeps a layer in FP32 when quantizing it alone costs at least this share of the
#: fully quantized graph's error (measured: the output tail of the demo model costs ~40 %).
AUTO_SHARE = 0.2
DEFAULT_MAX_FP32_LAYERS = 4
#: Calibration frames the sensitivity of each layer is measured on.
SENSITIVITY_FRAMES = 4
INT8_SUFFIX = ".int8.onnx"
#: The layer of the ops after the heads (see :func:`layer_of`).
OUTPUT_TAIL = "output tail"
#: Ops that take their input's quantization (or fuse into the op before them): a layer made of
#: only these changes nothing on its own, so its sensitivity is not measured.
PASS_THROUGH = frozenset({"Relu", "MaxPool", "Resize", "Slice", "Concat", "Reshape",
                          "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Gather", "Split"})


@dataclasses.dataclass(frozen=True)
class Int8Thresholds:
    """Smallest agreement of the INT8 graph with the FP32 graph on the held-out frames.

    max_median_rel: median over pixels of |d8 - d32| / d32; min_delta1: share of pixels with
    max(d8/d32, d32/d8) < 1.25; min_label_agreement: share of pixels with the same class id.
    """

    max_median_rel: float = 0.03
    min_delta1: float = 0.97
    min_label_agreement: float = 0.95


@dataclasses.dataclass
class Int8Agreement:
    """INT8 vs FP32 outputs on the same frames (see :class:`Int8Thresholds`)."""

    median_rel: float
    delta1: float
    label_agreement: float
    frames: int

    def failures(self, limits: Int8Thresholds) -> list[str]:
        """The figures past ``limits`` with the flag that changes each limit (empty: passed)."""
        problems = []
        if not self.median_rel <= limits.max_median_rel:
            problems.append(f"median relative depth difference {self.median_rel:.3%} > "
                            f"{limits.max_median_rel:.3%} (--int8-max-median-rel)")
        if not self.delta1 >= limits.min_delta1:
            problems.append(f"delta<1.25 agreement {self.delta1:.3%} < {limits.min_delta1:.3%} "
                            "(--int8-min-delta1)")
        if not self.label_agreement >= limits.min_label_agreement:
            problems.append(f"label agreement {self.label_agreement:.3%} < "
                            f"{limits.min_label_agreement:.3%} (--int8-min-label-agreement)")
        return problems

    def error(self) -> float:
        """One number to rank layers by: median relative depth difference + label disagreement
        + delta<1.25 disagreement (all fractions)."""
        return self.median_rel + (1.0 - self.label_agreement) + (1.0 - self.delta1)

    def summary(self) -> str:
        """One line with the figures."""
        return (f"median relative depth difference {self.median_rel:.3%}, delta<1.25 agreement "
                f"{self.delta1:.3%}, label agreement {self.label_agreement:.3%} "
                f"({self.frames} held-out frames)")

    def to_dict(self) -> dict:
        """JSON-serialisable figures (rounded)."""
        return {"median_rel_depth": round(self.median_rel, 6), "delta1": round(self.delta1, 6),
                "label_agreement": round(self.label_agreement, 6), "frames": self.frames}


@dataclasses.dataclass(frozen=True)
class Int8Options:
    """How to quantize.

    calib_images: folder of camera frames; max_images: use the first N by name;
    verify_frames: how many of them (the last by name) are held out for verification (None:
    a fifth, 1 to 50); fp32_layers: ``"auto"`` (measured), ``"none"`` or layer names to keep in
    FP32; max_fp32_layers: cap for ``auto``; thresholds: the verification limits.
    """

    calib_images: str | os.PathLike
    max_images: int = DEFAULT_MAX_CALIB_IMAGES
    verify_frames: int | None = None
    fp32_layers: str | Sequence[str] = "auto"
    max_fp32_layers: int = DEFAULT_MAX_FP32_LAYERS
    thresholds: Int8Thresholds = Int8Thresholds()
    progress: bool = True
    target: str = "cpu"

    def __post_init__(self) -> None:
        """Reject unknown targets."""
        if self.target not in SCHEMES:
            raise SynergyError(f"INT8 target {self.target!r}: choose {', '.join(SCHEMES)}")

    def key_dict(self) -> dict:
        """The options that change the quantized file (for cache keys; not the folder path,
        which the calibration digest replaces, nor progress)."""
        layers = self.fp32_layers
        return {"target": self.target, "max_images": int(self.max_images),
                "verify_frames": self.verify_frames,
                "fp32_layers": layers if isinstance(layers, str) else list(layers),
                "max_fp32_layers": int(self.max_fp32_layers),
                "thresholds": dataclasses.asdict(self.thresholds),
                "scheme": SCHEMES[self.target]}


@dataclasses.dataclass
class Int8Report:
    """What :func:`quantize_int8` did: the held-out agreement, the layers kept in FP32 and the
    per-layer sensitivity (how much keeping that layer in FP32 lowers the error, see
    :func:`layer_sensitivity`), calibration digest and counts, and timings (s)."""

    agreement: Int8Agreement
    fp32_layers: list[str]
    sensitivity: dict[str, float]
    full_int8_error: float | None
    calibration: dict
    seconds: dict
    target: str = "cpu"

    def to_dict(self) -> dict:
        """JSON-serialisable record (stored in the INT8 file's metadata)."""
        return {"verification": self.agreement.to_dict(), "fp32_layers": self.fp32_layers,
                "sensitivity": {k: round(v, 6) for k, v in self.sensitivity.items()},
                "full_int8_error": (None if self.full_int8_error is None
                                    else round(self.full_int8_error, 6)),
                "calibration": self.calibration, "seconds": self.seconds,
                "target": self.target, "scheme": SCHEMES[self.target]}


_COMMON = {"format": "QDQ", "weights": "int8 symmetric per-channel", "calibration": "MinMax",
           "tool": "onnxruntime.quantization.quantize_static"}
#: Quantization scheme per target, recorded in the metadata. ``cpu``: uint8 asymmetric
#: activations (onnxruntime's recommendation for x86; measured here on AVX-512 VNNI, ResNet-18
#: synergy net 320x240, 1 thread: 0.37-0.5x FP32 CPU time, while int8 symmetric activations
#: ran at 1.05x FP32). ``tensorrt``: int8 symmetric activations (zero point 0), the only int8
#: Q/DQ TensorRT's explicit quantization accepts.
SCHEMES = {"cpu": {**_COMMON, "activations": "uint8 asymmetric per-tensor"},
           "tensorrt": {**_COMMON, "activations": "int8 symmetric per-tensor"}}


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; SynergyError naming it when it does not decode."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise SynergyError(f"INT8 calibration: {path} is not a readable image (empty, corrupt "
                           "or not an image); remove it from the --calib-images folder or "
                           "replace it with a camera frame")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def check_calibration_folder(options: Int8Options) -> tuple[list, list]:
    """(calibration files, held-out files) of ``options.calib_images``, every one decoded once
    so that a bad folder fails before any export work. SynergyError naming the problem."""
    files = calibration_files(options.calib_images, options.max_images)
    calib, held = split_frames(files, options.verify_frames)
    for path in files:
        read_rgb(path)
    return calib, held


def split_frames(files: Sequence[Path], verify_frames: int | None) -> tuple[list, list]:
    """(calibration files, held-out files): the last ``verify_frames`` by name are held out
    (a later stretch of a recording, not neighbours of calibration frames)."""
    count = len(files)
    if count < 2:
        raise SynergyError(f"INT8 calibration needs at least 2 images (calibration + held-out "
                           f"verification), {Path(files[0]).parent if files else 'the folder'} "
                           f"has {count}; pass a folder with a few hundred camera frames")
    held = verify_frames if verify_frames is not None else min(50, max(1, count // 5))
    if not 1 <= held < count:
        raise SynergyError(f"--verify-frames {held}: must be between 1 and {count - 1} (the "
                           f"folder gives {count} images)")
    return list(files[:count - held]), list(files[count - held:])


class _FrameReader:
    """onnxruntime ``CalibrationDataReader``: preprocessed frames one by one, with progress."""

    def __init__(self, files: Sequence[Path], pre: Preprocessor, progress: bool) -> None:
        from tqdm import tqdm

        self.files = list(files)
        self.pre = pre
        self.bar = tqdm(total=len(self.files), desc="INT8 calibration", unit="frame",
                        disable=not progress)
        self.position = 0

    def get_next(self) -> dict | None:
        """The next frame as ``{"image": (1, 3, h, w) float32}``, None at the end."""
        if self.position >= len(self.files):
            self.bar.close()
            return None
        batch, _ = self.pre([read_rgb(self.files[self.position])])
        self.position += 1
        self.bar.update(1)
        return {INPUT_NAME: batch}

    def __len__(self) -> int:
        """Number of frames."""
        return len(self.files)


def _session(onnx_path: str | os.PathLike):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), sess_options=options,
                                providers=["CPUExecutionProvider"])


def run_graph(onnx_path: str | os.PathLike, batches: Iterable[np.ndarray]) -> list[tuple]:
    """[(depth (1, 1, h, w) m, labels (1, h, w))] of ``onnx_path`` on each batch (CPU)."""
    session = _session(onnx_path)
    return [tuple(session.run([DEPTH_NAME, LABELS_NAME], {INPUT_NAME: batch}))
            for batch in batches]


def agreement(got: Sequence[tuple], want: Sequence[tuple]) -> Int8Agreement:
    """Agreement of outputs ``got`` (INT8) with ``want`` (FP32), over all pixels of all frames."""
    depth_got = np.concatenate([np.ravel(d) for d, _ in got]).astype(np.float64)
    depth_want = np.concatenate([np.ravel(d) for d, _ in want]).astype(np.float64)
    safe_want = np.maximum(depth_want, 1e-6)
    ratio = np.maximum(depth_got, 1e-6) / safe_want
    labels_got = np.concatenate([np.ravel(lab) for _, lab in got])
    labels_want = np.concatenate([np.ravel(lab) for _, lab in want])
    return Int8Agreement(
        median_rel=float(np.median(np.abs(depth_got - depth_want) / safe_want)),
        delta1=float(np.mean(np.maximum(ratio, 1.0 / ratio) < 1.25)),
        label_agreement=float(np.mean(labels_got == labels_want)), frames=len(got))


def layer_of(node_name: str) -> str:
    """The layer a graph node belongs to: its module path, the node name without the op part
    (``/net/encoder/layer1/layer1.0/conv1/Conv`` -> ``/net/encoder/layer1/layer1.0/conv1``).
    Ops outside any submodule (``/net/Sigmoid``, ``/net/Mul``, ``/Clip``, ``/ArgMax``: the
    depth range and clamp after the heads, the argmax) form one layer, :data:`OUTPUT_TAIL`."""
    head, _, _ = node_name.rpartition("/")
    return OUTPUT_TAIL if head.count("/") <= 1 else head


def quantizable_layers(onnx_path: str | os.PathLike
                       ) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """(``{layer: [node names]}``, ``{layer: {op types}}``) of the nodes onnxruntime's QDQ
    quantizer would quantize, in graph order."""
    import onnx
    from onnxruntime.quantization.registry import QDQRegistry

    layers: dict[str, list[str]] = {}
    ops: dict[str, set[str]] = {}
    for node in onnx.load(str(onnx_path)).graph.node:
        if node.op_type in QDQRegistry and node.name:
            layers.setdefault(layer_of(node.name), []).append(node.name)
            ops.setdefault(layer_of(node.name), set()).add(node.op_type)
    return layers, ops


def quantize_graph(fp32_onnx: str | os.PathLike, output: str | os.PathLike,
                   calibration_cache: str | os.PathLike, reader: _FrameReader | None = None,
                   exclude: Sequence[str] = (), include: Sequence[str] | None = None,
                   target: str = "cpu") -> None:
    """One ``quantize_static`` call with ``target``'s scheme (:data:`SCHEMES`).

    ``reader`` calibrates and fills ``calibration_cache`` (onnxruntime's JSON of tensor
    ranges); without it the cache is reused. ``exclude`` nodes stay FP32; ``include``, when
    given, quantizes only those nodes.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    # MinMax calibration keeps only each tensor's ReduceMin/ReduceMax per frame (scalars), so
    # memory stays small without "CalibMaxIntermediateOutputs" - which in onnxruntime 1.32
    # drops the collected ranges instead of merging them (calibrate.py collect_data; seen here).
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # the tool warns about pre-processing per call
    try:
        quantize_static(str(fp32_onnx), str(output), calibration_data_reader=reader,
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=(QuantType.QUInt8 if target == "cpu"
                                         else QuantType.QInt8),
                        weight_type=QuantType.QInt8,
                        nodes_to_quantize=list(include) if include is not None else None,
                        nodes_to_exclude=list(exclude),
                        calibrate_method=CalibrationMethod.MinMax,
                        calibration_cache_path=str(calibration_cache),
                        extra_options={"ActivationSymmetric": target == "tensorrt",
                                       "WeightSymmetric": True})
    finally:
        root.setLevel(level)


def layer_sensitivity(fp32_onnx: Path, calibration_cache: Path, layers: dict[str, list[str]],
                      batches: Sequence[np.ndarray], reference: Sequence[tuple],
                      full_error: float, workdir: Path, progress: bool = True,
                      target: str = "cpu") -> dict[str, float]:
    """``{layer: gain}``: how much the error (:meth:`Int8Agreement.error` against
    ``reference``, the FP32 outputs on ``batches``) drops when that one layer stays FP32 and
    every other layer is quantized (``full_error``: all quantized). Leave-one-out, not
    quantize-one-alone: a layer's quantization error depends on the quantized layers around
    it (measured here: the output tail's Q/DQ scored 0 alone)."""
    from tqdm import tqdm

    scores = {}
    probe = workdir / "probe.onnx"
    for layer, nodes in tqdm(layers.items(), desc="INT8 layer sensitivity", unit="layer",
                             disable=not progress):
        quantize_graph(fp32_onnx, probe, calibration_cache, exclude=nodes, target=target)
        scores[layer] = full_error - agreement(run_graph(probe, batches), reference).error()
    return scores


def choose_fp32_layers(sensitivity: dict[str, float], full_error: float,
                       max_layers: int = DEFAULT_MAX_FP32_LAYERS,
                       share: float = AUTO_SHARE) -> list[str]:
    """The layers ``auto`` keeps in FP32: those whose FP32 version removes at least ``share``
    of ``full_error`` (the fully quantized graph's), most sensitive first, at most
    ``max_layers``."""
    ranked = sorted(sensitivity.items(), key=lambda item: -item[1])
    return [name for name, error in ranked
            if full_error > 0 and error >= share * full_error][:max(0, int(max_layers))]


def quantize_int8(fp32_onnx: str | os.PathLike, meta: ModelMeta, options: Int8Options,
                  output: str | os.PathLike) -> Int8Report:
    """Quantize ``fp32_onnx`` (an ONNX from ``synergy export``, metadata ``meta``) to
    ``output`` and verify it on held-out frames (see the module docstring).

    ``output`` gets the bare quantized graph; the caller adds the metadata. SynergyError when
    the folder has no readable images or the verification fails (then ``output`` is removed).
    """
    start = time.monotonic()
    files = calibration_files(options.calib_images, options.max_images)
    calib_files, held_files = split_frames(files, options.verify_frames)
    pre = Preprocessor(meta.input_size, meta.mean, meta.std)
    held = [pre([read_rgb(f)])[0] for f in held_files]  # reads (and checks) them first
    fp32_onnx, output = Path(fp32_onnx), Path(output)
    seconds: dict = {}
    with tempfile.TemporaryDirectory(prefix="synergy_int8_") as tmp:
        work = Path(tmp)
        cache = work / "ranges.json"
        reader = _FrameReader(calib_files, pre, options.progress)
        quantize_graph(fp32_onnx, output, cache, reader=reader, target=options.target)
        seconds["calibration"] = round(time.monotonic() - start, 1)
        layers, layer_ops = quantizable_layers(fp32_onnx)
        sensitivity: dict[str, float] = {}
        full_error = None
        if options.fp32_layers == "auto":
            probe_files = calib_files[:SENSITIVITY_FRAMES]
            probe = [pre([read_rgb(f)])[0] for f in probe_files]
            reference = run_graph(fp32_onnx, probe)
            full_error = agreement(run_graph(output, probe), reference).error()
            t0 = time.monotonic()
            candidates = {name: nodes for name, nodes in layers.items()
                          if any(op not in PASS_THROUGH for op in layer_ops[name])}
            sensitivity = layer_sensitivity(fp32_onnx, cache, candidates, probe, reference,
                                            full_error, work, options.progress,
                                            options.target)
            seconds["sensitivity"] = round(time.monotonic() - t0, 1)
            keep = choose_fp32_layers(sensitivity, full_error, options.max_fp32_layers)
        elif options.fp32_layers == "none":
            keep = []
        else:
            keep = list(options.fp32_layers)
            unknown = sorted(set(keep) - set(layers))
            if unknown:
                raise SynergyError(f"--fp32-layers: no quantizable layer {unknown}; the graph's "
                                   f"layers are {', '.join(layers)}")
        if keep:
            quantize_graph(fp32_onnx, output, cache, target=options.target,
                           exclude=[n for layer in keep for n in layers[layer]])
        result = agreement(run_graph(output, held), run_graph(fp32_onnx, held))
    seconds["total"] = round(time.monotonic() - start, 1)
    report = Int8Report(
        agreement=result, fp32_layers=keep, sensitivity=sensitivity, full_int8_error=full_error,
        calibration={"digest": calibration_digest(files, options.max_images),
                     "source": str(options.calib_images), "images": len(calib_files),
                     "held_out": len(held_files),
                     "held_out_first": Path(held_files[0]).name},
        seconds=seconds, target=options.target)
    problems = result.failures(options.thresholds)
    if problems:
        output.unlink(missing_ok=True)
        raise SynergyError(
            f"INT8 verification failed against FP32 on {result.frames} held-out frames: "
            f"{'; '.join(problems)}. Nothing was written. Keep more layers in FP32 "
            f"(--max-fp32-layers, --fp32-layers; kept now: {keep or 'none'}), calibrate on "
            "more frames like the deployment camera's, or change the limit named above")
    return report


def int8_output_name(checkpoint: str | os.PathLike, height: int, width: int) -> Path:
    """Default ``.int8.onnx`` path beside a model file: ``<stem>_<h>x<w>.int8.onnx``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}_{height}x{width}{INT8_SUFFIX}")


def is_int8(meta: ModelMeta) -> bool:
    """True for the metadata of a ``.int8.onnx`` written by :func:`quantize_int8`'s caller."""
    return bool(meta.extra.get("export", {}).get("int8"))
