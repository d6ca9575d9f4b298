"""onnxruntime backend: runs an exported ONNX graph (CPU, or the CUDA execution provider)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ONNX_META_KEY, ModelMeta
from synergy_ros.runtime.base import (ATTENTION_NAME, DEPTH_NAME, INPUT_NAME, LABELS_NAME,
                                      Predictor, RawOutput, graph_io_spec)
from synergy_ros.runtime.device import parse_device
from synergy_ros.runtime.engine_cache import io_problems

LOG = logging.getLogger("synergy_ros.runtime")
REEXPORT_HINT = ("re-export it with `synergy export --checkpoint MODEL.pt --format onnx`")


def _shape(dims: Sequence) -> list:
    """onnxruntime shapes use strings/None for symbolic axes; map those to -1."""
    return [int(d) if isinstance(d, int) else -1 for d in dims]


def _dtype(type_name: str) -> str:
    """'tensor(float)' -> 'float32', 'tensor(int32)' -> 'int32'."""
    inner = type_name.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "float16": "float16", "double": "float64"}.get(inner, inner)


def open_session(onnx_path: str | os.PathLike, providers: list,
                 num_threads: int | None = None, thread_spinning: bool = True):
    """Create an onnxruntime InferenceSession, turning load failures into SynergyError."""
    import onnxruntime as ort

    path = Path(onnx_path)
    if not path.is_file():
        raise SynergyError(f"ONNX file {path} does not exist; {REEXPORT_HINT}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads:
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not thread_spinning:  # idle intra-op threads sleep instead of busy-waiting
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind exception types
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise SynergyError(f"{path} is not a loadable ONNX model ({first}); the file may be "
                           f"truncated or not ONNX: {REEXPORT_HINT}") from exc


def session_meta(session, path: str | os.PathLike) -> ModelMeta:
    """The ModelMeta embedded in an ONNX file's metadata_props (SynergyError if absent)."""
    props = session.get_modelmeta().custom_metadata_map
    if ONNX_META_KEY not in props:
        raise SynergyError(f"{path} has no '{ONNX_META_KEY}' metadata: it was not exported "
                           f"by synergy_ros (another network?); {REEXPORT_HINT}")
    return ModelMeta.from_json(props[ONNX_META_KEY], source=str(path))


def session_io(session) -> dict:
    """``{name: {"mode", "shape", "dtype"}}`` of a session's inputs and outputs."""
    spec = {}
    for mode, items in (("input", session.get_inputs()), ("output", session.get_outputs())):
        for item in items:
            spec[item.name] = {"mode": mode, "shape": _shape(item.shape),
                               "dtype": _dtype(item.type)}
    return spec


def cuda_provider_available() -> bool:
    """True when this onnxruntime build has the CUDA execution provider."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


class OnnxRuntimePredictor(Predictor):
    """Predictor on an exported ``.onnx`` file with onnxruntime.

    Args:
        onnx_path: an ONNX file written by ``synergy export`` (metadata embedded).
        device: ``"cpu"`` or ``"cuda"``/``"cuda:N"`` (CUDA execution provider).
        num_threads: intra-op threads (None: onnxruntime's default, one per core).
        thread_spinning: let idle intra-op threads busy-wait for the next run (onnxruntime's
            default: best back-to-back throughput). False for the node: after a run its
            threads otherwise spin for milliseconds on the cores that must build and publish
            the outputs (measured: node overhead 11.6 -> 2.5-6.8 ms, benchmarks/results).
        input_size: must equal the exported size when given (static graphs).
        output_resolution, with_attention: see :class:`Predictor`.
    """

    backend_name = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, device: str = "cpu",
                 input_size: Sequence[int] | None = None, output_resolution: str = "input",
                 with_attention: bool = False, num_threads: int | None = None,
                 thread_spinning: bool = True) -> None:
        spec = parse_device(device)
        if spec.kind == "auto":
            spec = parse_device("cuda" if cuda_provider_available() else "cpu")
        if spec.index is not None:
            if not cuda_provider_available():
                raise SynergyError(f"device {device} requested but this onnxruntime has no "
                                   "CUDAExecutionProvider (install onnxruntime-gpu) - pass "
                                   "--device cpu")
            providers = [("CUDAExecutionProvider", {"device_id": spec.index}),
                         "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        session = open_session(onnx_path, providers, num_threads, thread_spinning)
        meta = session_meta(session, onnx_path)
        io_spec = session_io(session)
        image_shape = io_spec.get(INPUT_NAME, {}).get("shape", [])
        if len(image_shape) != 4 or min(image_shape[2:]) <= 0:
            raise SynergyError(f"{onnx_path}: input '{INPUT_NAME}' must be (B, 3, H, W) with a "
                               f"static H, W; it has {image_shape or 'no such input'} (another "
                               f"network?); {REEXPORT_HINT}")
        exported = tuple(image_shape[2:])
        if input_size is not None and tuple(input_size) != exported:
            raise SynergyError(f"{onnx_path} was exported for {exported[0]}x{exported[1]} "
                               f"(HxW), not {input_size[0]}x{input_size[1]}; re-export with "
                               "--height/--width, or pass the .pt model to export on the fly")
        has_attention = ATTENTION_NAME in io_spec
        if with_attention and not has_attention:
            raise SynergyError(f"{onnx_path} has no '{ATTENTION_NAME}' output; re-export with "
                               "--attention")
        expected = graph_io_spec(exported, image_shape[0], with_attention)
        problems = io_problems(io_spec, expected)
        if problems:
            raise SynergyError(f"{onnx_path} does not have the synergy_ros graph interface "
                               f"({'; '.join(problems)}); {REEXPORT_HINT}")
        super().__init__(meta, input_size=exported, output_resolution=output_resolution,
                         with_attention=with_attention,
                         max_batch=image_shape[0] if image_shape[0] > 0 else None)
        self._session = session
        self._outputs = [DEPTH_NAME, LABELS_NAME] + ([ATTENTION_NAME] if with_attention else [])
        self.device = str(spec)
        export = meta.extra.get("export", {})
        self.precision = "int8" if export.get("int8") else "fp16" if export.get("fp16") else "fp32"
        self.model_path = str(onnx_path)
        self.providers = session.get_providers()

    def infer(self, batch: np.ndarray) -> RawOutput:
        """Run the session on a (B, 3, h, w) float32 batch."""
        outputs = self._session.run(self._outputs, {INPUT_NAME: batch})
        return RawOutput(outputs[0], outputs[1], outputs[2] if len(outputs) > 2 else None)

    def describe(self) -> dict:
        """Base description plus the execution providers in use."""
        return {**super().describe(), "providers": list(self.providers)}

    def close(self) -> None:
        """Release the session."""
        self._session = None
