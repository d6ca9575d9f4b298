"""TensorRT 10 backend: engine build (FP32/FP16, INT8 from a Q/DQ ONNX) from the exported ONNX,
cached engines,
and execution with the tensor API (``set_tensor_address`` + ``execute_async_v3``).

Device buffers are torch CUDA tensors allocated once per predictor (no pycuda); inputs go
through a pinned host buffer and run on a dedicated ``torch.cuda.Stream``. Engines are cached
by :mod:`synergy_ros.runtime.engine_cache` under the ONNX SHA-256, TensorRT version, GPU name
and compute capability, precision and input shape; explicit ``.engine`` files must carry their
sidecar ``.engine.json`` and are refused (with what to do) when built for another TensorRT
version or GPU. Needs ``tensorrt`` and a CUDA GPU; everything here imports them lazily.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ONNX_META_KEY, ModelMeta
from synergy_ros.runtime.base import INPUT_NAME, Predictor, graph_io_spec
from synergy_ros.runtime.device import module_installed, torch_device
from synergy_ros.runtime.engine_cache import (EngineKey, cached_build, engine_cache_path,
                                              environment_problems, file_sha256, io_problems,
                                              read_record, record_problems, sidecar_path)
from synergy_ros.runtime.prediction import RawOutput
from synergy_ros.runtime.quantizer import is_int8

if TYPE_CHECKING:  # the typed TensorRT API (PyPI tensorrt-stubs) for mypy; never imported here
    import tensorrt as trt

LOG = logging.getLogger("synergy_ros.runtime")
DEFAULT_WORKSPACE_GB = 2.0
INT8_NEEDS_QDQ = ("INT8 engines are built from a quantized (Q/DQ) ONNX and {onnx} is not one: "
                  "run `synergy export --checkpoint MODEL.pt --format onnx --int8 --calib-images "
                  "DIR` and pass the .int8.onnx, or `synergy export --format engine --int8 "
                  "--calib-images DIR`")
#: How long ``close()`` waits for a running inference before leaving the buffers to it (s).
CLOSE_TIMEOUT_S = 30.0
_FALLBACK = "pass --backend onnxruntime to run without TensorRT"


def require_tensorrt(fallback: str = _FALLBACK) -> None:
    """Check that TensorRT 10 imports and torch sees a CUDA GPU; SynergyError saying what to do
    otherwise. Callers then ``import tensorrt``."""
    if not module_installed("tensorrt"):  # a stubs-only tensorrt/ folder is not TensorRT
        raise SynergyError("TensorRT is not installed on this machine (no importable "
                           "'tensorrt' module); install TensorRT 10 for your CUDA version, or "
                           f"{fallback}")
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise SynergyError(f"TensorRT is not installed on this machine ({exc}); install "
                           f"TensorRT 10 for your CUDA version, or {fallback}") from exc
    import torch

    if not torch.cuda.is_available():
        raise SynergyError(f"TensorRT needs a CUDA GPU and torch sees none; {fallback}")
    if int(trt.__version__.split(".")[0]) < 10:
        raise SynergyError(f"TensorRT {trt.__version__} is too old: synergy_ros uses the "
                           f"TensorRT 10 API; upgrade, or {fallback}")


def use_cuda_device(device: str) -> int:
    """Make ``device`` (``cuda`` or ``cuda:N``, checked to exist) this thread's current CUDA
    device, where TensorRT builds and runs; returns its index."""
    import torch

    index = torch_device(device).index
    if index is None:
        raise SynergyError(f"TensorRT runs only on a CUDA GPU, not {device!r}; {_FALLBACK}")
    torch.cuda.set_device(index)
    return int(index)


def gpu_identity(device: str = "cuda") -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of ``device`` (``cuda`` or ``cuda:N``)."""
    import torch

    index = torch_device(device).index  # SynergyError naming the visible GPUs, not an assert
    if index is None:
        raise SynergyError(f"TensorRT needs a CUDA GPU, got device {device!r}; pass "
                           "--backend onnxruntime to run without one")
    props = torch.cuda.get_device_properties(index)
    return props.name, f"{props.major}.{props.minor}"


def onnx_interface(onnx_path: str | os.PathLike) -> tuple[ModelMeta, list]:
    """(metadata, image input shape [B, 3, H, W] with -1 for dynamic axes) of an ONNX file."""
    import onnx

    path = Path(onnx_path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors vary
        raise SynergyError(f"{path} is not a readable ONNX file ({exc}); re-export it with "
                           "`synergy export --format onnx`") from exc
    props = {p.key: p.value for p in model.metadata_props}
    if ONNX_META_KEY not in props:
        raise SynergyError(f"{path} has no '{ONNX_META_KEY}' metadata (not exported by "
                           "synergy_ros); re-export it with `synergy export --format onnx`")
    meta = ModelMeta.from_json(props[ONNX_META_KEY], source=str(path))
    inputs = {i.name: i for i in model.graph.input}
    if INPUT_NAME not in inputs:
        raise SynergyError(f"{path} has no input '{INPUT_NAME}' (inputs: {sorted(inputs)}); "
                           "re-export it with `synergy export --format onnx`")
    dims = inputs[INPUT_NAME].type.tensor_type.shape.dim
    return meta, [d.dim_value if d.HasField("dim_value") else -1 for d in dims]


def profile_shapes(input_shape: Sequence[int],
                   max_batch: int) -> tuple[list[int], list[int], list[int]]:
    """(min, opt, max) shapes of the optimisation profile for a dynamic-batch (B = -1) image
    input (B, 3, h, w): batch 1 to ``max_batch``, tuned for ``max_batch``."""
    if int(max_batch) < 1:
        raise SynergyError(f"max batch must be >= 1, got {max_batch}")
    rest = [int(v) for v in input_shape[1:]]
    if any(v <= 0 for v in rest):
        raise SynergyError(f"only the batch axis may be dynamic; the ONNX input is "
                           f"{list(input_shape)}: re-export with fixed --height/--width")
    return [1, *rest], [int(max_batch), *rest], [int(max_batch), *rest]


def buffer_shape(shape: Sequence[int], max_batch: int) -> list[int]:
    """An I/O tensor's buffer shape: a dynamic batch (-1 first) becomes ``max_batch``; other
    -1 axes stay for the execution context to resolve."""
    return [int(max_batch) if d == -1 and i == 0 else int(d) for i, d in enumerate(shape)]


def engine_interface_problems(io_spec: dict, record: dict, with_attention: bool) -> list[str]:
    """Why an engine with tensors ``io_spec`` and sidecar ``record`` is not a synergy_ros graph
    (see :func:`~synergy_ros.runtime.base.graph_io_spec`); empty when it is."""
    image_shape = io_spec.get(INPUT_NAME, {}).get("shape", [0, 0, 0, 0])
    if len(image_shape) != 4:
        return [f"input '{INPUT_NAME}' has shape {image_shape}, expected (B, 3, h, w)"]
    problems = io_problems(io_spec, graph_io_spec(image_shape[2:], image_shape[0],
                                                  with_attention))
    recorded = record.get("io")
    if recorded and recorded != io_spec:
        problems.append(f"engine I/O {io_spec} differs from its sidecar {recorded}")
    return problems


def dims_list(dims: trt.Dims) -> list[int]:
    """A TensorRT ``Dims`` as a list of ints (-1: dynamic)."""
    return [int(dims[i]) for i in range(len(dims))]


def _dtype_names() -> dict:
    import tensorrt as trt

    return {trt.float32: "float32", trt.float16: "float16", trt.int32: "int32",
            trt.int8: "int8", trt.bool: "bool", trt.uint8: "uint8", trt.int64: "int64"}


def engine_io(engine: trt.ICudaEngine) -> dict:
    """``{name: {"mode", "shape", "dtype"}}`` of a deserialised ICudaEngine (-1: dynamic)."""
    import tensorrt as trt

    names = _dtype_names()
    spec = {}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        spec[name] = {"mode": mode, "shape": dims_list(engine.get_tensor_shape(name)),
                      "dtype": names.get(engine.get_tensor_dtype(name),
                                         str(engine.get_tensor_dtype(name)))}
    return spec


def build_engine(onnx_path: str | os.PathLike, precision: str = "fp32",
                 workspace_gb: float = DEFAULT_WORKSPACE_GB, max_batch: int = 1,
                 device: str = "cuda") -> tuple[bytes, dict]:
    """Build a serialized TensorRT engine from an exported ONNX file on CUDA ``device``.

    TensorRT 10 API: ``OnnxParser``, ``set_memory_pool_limit(WORKSPACE)``,
    ``build_serialized_network``. fp32/fp16: ``create_network(0)`` (explicit batch is the only
    mode) and ``BuilderFlag.FP16`` for fp16. int8: explicit quantization of a Q/DQ ONNX from
    ``synergy export --int8`` in a strongly typed network
    (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, no precision flags and no calibrator,
    as TensorRT 10's "Explicit Quantization" guide prescribes; the Q/DQ scales in the file are
    the calibration). Returns (engine bytes, sidecar fields: meta, I/O, quantization record).
    """
    require_tensorrt()
    import tensorrt as trt

    device_index = use_cuda_device(device)
    meta, input_shape = onnx_interface(onnx_path)
    explicit_int8 = precision == "int8"
    if explicit_int8 and not is_int8(meta):
        raise SynergyError(INT8_NEEDS_QDQ.format(onnx=onnx_path))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if explicit_int8 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SynergyError(f"TensorRT cannot parse {onnx_path}: {errors[:500]}; re-export "
                           f"with `synergy export --format onnx` (opset 17), or {_FALLBACK}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = None
    if input_shape[0] == -1:  # dynamic batch: one optimisation profile 1..max_batch
        profile = builder.create_optimization_profile()
        low, opt, high = profile_shapes(input_shape, max_batch)
        profile.set_shape(INPUT_NAME, trt.Dims(low), trt.Dims(opt), trt.Dims(high))
        config.add_optimization_profile(profile)
    LOG.info("building TensorRT %s engine from %s on cuda:%d (this takes minutes)", precision,
             onnx_path, device_index)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise SynergyError(f"TensorRT failed to build an engine from {onnx_path} (see the "
                           f"TensorRT messages above); try fp32, a larger --workspace-gb, or "
                           f"{_FALLBACK}")
    data = bytes(serialized)
    engine = trt.Runtime(logger).deserialize_cuda_engine(data)
    extra = {"meta": meta.to_dict(), "io": engine_io(engine), "onnx": str(onnx_path)}
    if explicit_int8:
        extra["quantization"] = "explicit Q/DQ (strongly typed network)"
    return data, extra


def plan_engine(onnx_path: str | os.PathLike, cache_dir: str | os.PathLike, precision: str,
                tensorrt_version: str, gpu: tuple[str, str],
                engine_path: str | os.PathLike | None = None,
                input_size: Sequence[int] | None = None,
                max_batch: int = 1) -> tuple[EngineKey, Path]:
    """(engine key, engine file) for building ``onnx_path`` with TensorRT ``tensorrt_version``
    on ``gpu`` = (name, compute capability).

    A Q/DQ ONNX (``synergy export --int8``) always builds an INT8 engine with explicit
    quantization, keyed by its SHA-256 (which covers the Q/DQ scales) and, for the file name
    and the sidecar, its calibration digest; ``int8`` with an FP32 ONNX is refused with what to
    run. Plain Python (reads the ONNX file), so it runs anywhere. ``input_size`` (h, w)
    pixels, when given, must be the ONNX file's exported size. ``max_batch`` > 1 with a
    dynamic-batch ONNX keys an engine whose optimisation profile covers batches 1..max_batch
    (a node serving that many cameras); a static-batch ONNX ignores it.
    """
    meta, input_shape = onnx_interface(onnx_path)
    if input_size is not None and tuple(input_size) != tuple(input_shape[2:]):
        raise SynergyError(f"{onnx_path} was exported for {input_shape[2]}x{input_shape[3]} "
                           f"(HxW), not {input_size[0]}x{input_size[1]}; re-export with "
                           "--height/--width")
    calibration = None
    if is_int8(meta):
        if precision != "int8":
            LOG.info("%s is quantized (Q/DQ): building an INT8 engine, not %s",
                     Path(onnx_path).name, precision)
        precision = "int8"
        record = meta.extra["export"]["int8"]
        if record.get("target", "cpu") != "tensorrt":
            raise SynergyError(f"{onnx_path} is quantized for onnxruntime on CPUs (uint8 "
                               "activations, which TensorRT does not accept); re-export with "
                               "`--int8 --int8-target tensorrt`, or build with `synergy export "
                               "--format engine --int8 --calib-images DIR`")
        calibration = record.get("calibration", {}).get("digest")
    elif precision == "int8":
        raise SynergyError(INT8_NEEDS_QDQ.format(onnx=onnx_path))
    key = EngineKey(onnx_sha256=file_sha256(onnx_path), tensorrt_version=tensorrt_version,
                    gpu_name=gpu[0], compute_capability=gpu[1], precision=precision,
                    input_shape=tuple(input_shape), calibration=calibration,
                    max_batch=int(max_batch) if input_shape[0] == -1 and max_batch > 1
                    else None)
    target = Path(engine_path) if engine_path else engine_cache_path(cache_dir, onnx_path, key)
    return key, target


def engine_for_onnx(onnx_path: str | os.PathLike, cache_dir: str | os.PathLike,
                    precision: str = "fp32", device: str = "cuda",
                    engine_path: str | os.PathLike | None = None,
                    workspace_gb: float = DEFAULT_WORKSPACE_GB,
                    input_size: Sequence[int] | None = None,
                    max_batch: int = 1) -> tuple[Path, dict, bool]:
    """The cached engine for ``onnx_path`` on this GPU/TensorRT (built if missing or stale).

    Returns (engine path, sidecar record, built now). ``engine_path`` overrides the cache
    file name (``synergy export --output``); its sidecar still records the full key. INT8
    engines come from Q/DQ ONNX files (:func:`plan_engine`).
    """
    require_tensorrt()
    import tensorrt as trt

    key, target = plan_engine(onnx_path, cache_dir, precision, trt.__version__,
                              gpu_identity(device), engine_path, input_size, max_batch)

    def build() -> tuple[bytes, dict]:
        return build_engine(onnx_path, key.precision, workspace_gb,
                            max_batch=key.max_batch or 1, device=device)

    result = cached_build(target, key.to_dict(), build, what="TensorRT engine")
    return result.path, result.record, result.built


def check_engine_file(engine_path: str | os.PathLike, device: str = "cuda") -> dict:
    """Validate an explicit ``.engine`` and its sidecar for this machine; returns the record."""
    require_tensorrt()
    import tensorrt as trt

    path = Path(engine_path)
    rebuild = ("rebuild it on this machine with `synergy export --checkpoint MODEL --format "
               f"engine --build-only`, or {_FALLBACK} and the .onnx/.pt")
    record = read_record(path)
    if record is None or "error" in record:
        raise SynergyError(f"{path}: no readable sidecar {sidecar_path(path).name} (it holds "
                           f"the model metadata and build key); {rebuild}")
    problems = environment_problems(record, trt.__version__, *gpu_identity(device))
    problems += record_problems(path, record, record.get("key") or {})
    if problems:
        raise SynergyError(f"{path} cannot run here: {'; '.join(problems)}; {rebuild}")
    return record


class TensorRTPredictor(Predictor):
    """Predictor on a TensorRT engine (sidecar-validated) with preallocated CUDA buffers.

    Args:
        engine_path: the ``.engine`` file; ``record`` its sidecar record (meta, I/O, key).
        device: ``cuda`` or ``cuda:N`` (:mod:`synergy_ros.runtime.device`).
        output_resolution, with_attention: see :class:`Predictor`.

    One inference at a time (the buffers are shared); :meth:`close` waits for a running one
    instead of freeing its buffers under it.
    """

    backend_name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike, record: dict, device: str = "cuda",
                 output_resolution: str = "input", with_attention: bool = False) -> None:
        import tensorrt as trt
        import torch

        require_tensorrt()
        path = Path(engine_path)
        meta = ModelMeta.from_dict(record.get("meta"), source=str(sidecar_path(path)))
        index = use_cuda_device(device)
        cuda = torch.device("cuda", index)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise SynergyError(f"TensorRT could not deserialize {path} (see the messages "
                               "above); rebuild it with `synergy export --format engine "
                               f"--build-only`, or {_FALLBACK}")
        io_spec = engine_io(engine)
        problems = engine_interface_problems(io_spec, record, with_attention)
        if problems:
            raise SynergyError(f"{path} does not have the synergy_ros interface: "
                               f"{'; '.join(problems)}; rebuild it from the model's ONNX")
        image_shape = io_spec[INPUT_NAME]["shape"]
        dynamic = image_shape[0] == -1
        if dynamic:
            max_batch = int(engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0])
        else:
            max_batch = int(image_shape[0])
        super().__init__(meta, input_size=image_shape[2:], output_resolution=output_resolution,
                         with_attention=with_attention, max_batch=max_batch)
        self.device = str(cuda)
        self.precision = (record.get("key") or {}).get("precision", "fp32")
        self.model_path = str(path)
        self._engine: trt.ICudaEngine | None = engine
        self._context: trt.IExecutionContext | None = engine.create_execution_context()
        self._dynamic = dynamic
        self._lock = threading.Lock()  # the buffers are shared: one inference at a time
        self._closed = False
        self._stream = torch.cuda.Stream(device=cuda)
        torch_dtypes = {"float32": torch.float32, "float16": torch.float16,
                        "int32": torch.int32, "int8": torch.int8, "bool": torch.bool,
                        "uint8": torch.uint8, "int64": torch.int64}
        self._device_buffers: dict = {}
        self._host_buffers: dict = {}
        self._outputs: list[str] = []
        for name, spec in io_spec.items():
            shape = buffer_shape(spec["shape"], max_batch)
            if dynamic and spec["mode"] == "input" and not self._context.set_input_shape(
                    name, shape):
                raise SynergyError(
                    f"TensorRT engine {self.model_path} refused input shape {shape} for "
                    f"{name}: its optimisation profile does not reach batch {max_batch}")
            if -1 in shape:
                shape = dims_list(self._context.get_tensor_shape(name))
            dtype = torch_dtypes[spec["dtype"]]
            self._device_buffers[name] = torch.empty(shape, dtype=dtype, device=cuda)
            self._host_buffers[name] = torch.empty(shape, dtype=dtype, pin_memory=True)
            self._context.set_tensor_address(name, self._device_buffers[name].data_ptr())
            if spec["mode"] == "output":
                self._outputs.append(name)

    def infer(self, batch: np.ndarray) -> RawOutput:
        """Copy in, ``execute_async_v3`` on this predictor's stream, copy out, synchronise.

        SynergyError after :meth:`close`.
        """
        import torch

        count = batch.shape[0]
        with self._lock:
            context = self._context
            if self._closed or context is None:
                raise SynergyError(f"the TensorRT predictor for {self.model_path} is closed; "
                                   "load the model again")
            try:
                with torch.cuda.stream(self._stream):
                    host_in = self._host_buffers[INPUT_NAME]
                    host_in[:count].numpy()[...] = batch
                    self._device_buffers[INPUT_NAME][:count].copy_(host_in[:count],
                                                                   non_blocking=True)
                    if self._dynamic and not context.set_input_shape(INPUT_NAME,
                                                                     tuple(batch.shape)):
                        raise SynergyError(  # TensorRT 10 returns False, it does not raise
                            f"TensorRT refused input shape {tuple(batch.shape)} for "
                            f"{self.model_path}: outside the engine's optimisation profile "
                            "(rebuild it with the batch range 1..N: synergy export --format "
                            "engine from the .pt or a dynamic-batch .onnx)")
                    if not context.execute_async_v3(self._stream.cuda_stream):
                        raise SynergyError(f"TensorRT execution failed for {self.model_path}")
                    for name in self._outputs:
                        self._host_buffers[name][:count].copy_(
                            self._device_buffers[name][:count], non_blocking=True)
                    self._stream.synchronize()
                    out = {name: self._host_buffers[name][:count].numpy().copy()
                           for name in self._outputs}
            finally:
                if self._closed:  # close() gave up waiting for this run: free after it
                    self._release()
        return RawOutput(out["depth"], out["labels"], out.get("attention"))

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Free the execution context, engine and CUDA buffers once no inference runs.

        Waits up to ``timeout_s`` seconds for a running :meth:`infer`; if it is still running
        then, that inference frees them when it ends (never while the GPU uses them). Later
        :meth:`infer` calls raise SynergyError.
        """
        self._closed = True  # refuse new inferences from now on
        if not self._lock.acquire(timeout=timeout_s):
            LOG.warning("TensorRT inference still running %.0f s after close(); its buffers are "
                        "freed when it ends", timeout_s)
            return
        try:
            self._release()
        finally:
            self._lock.release()

    def _release(self) -> None:
        """Drop the context, engine and buffers (callers hold ``self._lock``)."""
        self._context = None
        self._engine = None
        self._device_buffers.clear()
        self._host_buffers.clear()


def load_tensorrt_predictor(model_path: str | os.PathLike, cache_dir: str | os.PathLike,
                            device: str = "cuda", precision: str = "fp32",
                            input_size: Sequence[int] | None = None,
                            output_resolution: str = "input",
                            with_attention: bool = False,
                            max_batch: int = 1) -> TensorRTPredictor:
    """TensorRT predictor for an ``.onnx`` (engine cached/built; a dynamic-batch ONNX gets the
    profile 1..``max_batch``) or an explicit ``.engine`` (its own profile)."""
    require_tensorrt()
    path = Path(model_path)
    if path.suffix.lower() == ".engine":
        record = check_engine_file(path, device)
    else:  # one read of the ONNX file checks the size and keys the engine
        path, record, _ = engine_for_onnx(path, cache_dir, precision, device,
                                          input_size=input_size, max_batch=max_batch)
    return TensorRTPredictor(path, record, device=device, output_resolution=output_resolution,
                             with_attention=with_attention)
