"""TensorRT 10 backend: engine build (FP32/FP16/INT8) from the exported ONNX, cached engines,
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
from typing import Sequence

import numpy as np

from synergy_ros.core.atomic import atomic_write_bytes
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ONNX_META_KEY, ModelMeta
from synergy_ros.core.rgb import IMAGE_SUFFIXES
from synergy_ros.runtime.base import INPUT_NAME, Predictor, graph_io_spec
from synergy_ros.runtime.engine_cache import (EngineKey, cached_build, engine_cache_path,
                                              environment_problems, file_sha256, io_problems,
                                              read_record, record_problems, sidecar_path)
from synergy_ros.runtime.prediction import RawOutput
from synergy_ros.runtime.preprocess import Preprocessor

LOG = logging.getLogger("synergy_ros.runtime")
DEFAULT_WORKSPACE_GB = 2.0
_FALLBACK = "pass --backend onnxruntime to run without TensorRT"


def require_tensorrt(fallback: str = _FALLBACK):
    """Import tensorrt and check a CUDA GPU; SynergyError saying what to do otherwise."""
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
    return trt


def gpu_identity(device: str = "cuda") -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of ``device``."""
    import torch

    props = torch.cuda.get_device_properties(torch.device(device))
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


def _dtype_names(trt) -> dict:
    return {trt.float32: "float32", trt.float16: "float16", trt.int32: "int32",
            trt.int8: "int8", trt.bool: "bool", trt.uint8: "uint8", trt.int64: "int64"}


def engine_io(engine) -> dict:
    """``{name: {"mode", "shape", "dtype"}}`` of a deserialised ICudaEngine (-1: dynamic)."""
    import tensorrt as trt

    names = _dtype_names(trt)
    spec = {}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        spec[name] = {"mode": mode, "shape": [int(d) for d in engine.get_tensor_shape(name)],
                      "dtype": names.get(engine.get_tensor_dtype(name),
                                         str(engine.get_tensor_dtype(name)))}
    return spec


def _image_calibrator(trt, image_dir: Path, meta: ModelMeta, input_shape: Sequence[int],
                      cache_file: Path, max_images: int):
    """An IInt8EntropyCalibrator2 feeding preprocessed images from ``image_dir``."""
    import cv2
    import torch

    files = sorted(p for p in Path(image_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files and not cache_file.is_file():
        raise SynergyError(f"INT8 calibration: no images ({', '.join(IMAGE_SUFFIXES)}) in "
                           f"{image_dir}; pass --calib-images with a few hundred frames like "
                           "the deployment camera's")
    batch_size = max(1, int(input_shape[0]))
    pre = Preprocessor(input_shape[2:], meta.mean, meta.std)

    class ImageFolderCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.files = files[:max_images]
            self.position = 0
            self.device_input = torch.empty(tuple([batch_size, *input_shape[1:]]),
                                            dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names):
            if self.position + batch_size > len(self.files):
                return None
            images = []
            for path in self.files[self.position:self.position + batch_size]:
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise SynergyError(f"INT8 calibration: cannot read image {path}")
                images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            self.position += batch_size
            batch, _ = pre(images)
            self.device_input.copy_(torch.from_numpy(batch))
            torch.cuda.synchronize()
            return [int(self.device_input.data_ptr())]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            atomic_write_bytes(cache_file, bytes(cache))

    return ImageFolderCalibrator()


def build_engine(onnx_path: str | os.PathLike, precision: str = "fp32",
                 workspace_gb: float = DEFAULT_WORKSPACE_GB, calib_images: str | None = None,
                 calib_cache: str | os.PathLike | None = None, max_batch: int = 1,
                 max_calib_images: int = 500) -> tuple[bytes, dict]:
    """Build a serialized TensorRT engine from an exported ONNX file.

    TensorRT 10 API: ``Builder.create_network(0)`` (explicit batch is the only mode),
    ``OnnxParser``, ``set_memory_pool_limit(WORKSPACE)``, ``BuilderFlag.FP16`` /
    ``BuilderFlag.INT8`` with an ``IInt8EntropyCalibrator2`` (its cache file is reused), and
    ``build_serialized_network``. Returns (engine bytes, sidecar fields: meta and I/O).
    """
    trt = require_tensorrt()
    meta, input_shape = onnx_interface(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SynergyError(f"TensorRT cannot parse {onnx_path}: {errors[:500]}; re-export "
                           f"with `synergy export --format onnx` (opset 17), or {_FALLBACK}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    profile = None
    if input_shape[0] == -1:  # dynamic batch: one optimisation profile 1..max_batch
        profile = builder.create_optimization_profile()
        shape = list(input_shape[1:])
        profile.set_shape(INPUT_NAME, [1, *shape], [max_batch, *shape], [max_batch, *shape])
        config.add_optimization_profile(profile)
        input_shape = [max_batch, *shape]
    if precision == "int8":
        if calib_cache is None:
            raise SynergyError("INT8 needs a calibration cache path")
        calib_cache = Path(calib_cache)
        if calib_images is not None and not Path(calib_images).is_dir():
            raise SynergyError(f"--calib-images {calib_images} is not a folder; pass a folder "
                               "of camera frames (png/jpg)")
        if calib_images is None and not calib_cache.is_file():
            raise SynergyError("INT8 needs calibration images: `synergy export --format engine "
                               "--int8 --calib-images DIR` (a folder of camera frames)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _image_calibrator(
            trt, Path(calib_images) if calib_images else calib_cache.parent, meta, input_shape,
            calib_cache, max_calib_images)
        if profile is not None:
            config.set_calibration_profile(profile)
    LOG.info("building TensorRT %s engine from %s (this takes minutes)", precision, onnx_path)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise SynergyError(f"TensorRT failed to build an engine from {onnx_path} (see the "
                           f"TensorRT messages above); try fp32, a larger --workspace-gb, or "
                           f"{_FALLBACK}")
    data = bytes(serialized)
    engine = trt.Runtime(logger).deserialize_cuda_engine(data)
    return data, {"meta": meta.to_dict(), "io": engine_io(engine), "onnx": str(onnx_path)}


def engine_for_onnx(onnx_path: str | os.PathLike, cache_dir: str | os.PathLike,
                    precision: str = "fp32", device: str = "cuda",
                    engine_path: str | os.PathLike | None = None,
                    calib_images: str | None = None,
                    workspace_gb: float = DEFAULT_WORKSPACE_GB,
                    input_size: Sequence[int] | None = None) -> tuple[Path, dict, bool]:
    """The cached engine for ``onnx_path`` on this GPU/TensorRT (built if missing or stale).

    Returns (engine path, sidecar record, built now). ``engine_path`` overrides the cache
    file name (``synergy export --output``); its sidecar still records the full key.
    ``input_size`` (h, w) pixels, when given, must be the ONNX file's exported size.
    """
    trt = require_tensorrt()
    _, input_shape = onnx_interface(onnx_path)
    if input_size is not None and tuple(input_size) != tuple(input_shape[2:]):
        raise SynergyError(f"{onnx_path} was exported for {input_shape[2]}x{input_shape[3]} "
                           f"(HxW), not {input_size[0]}x{input_size[1]}; re-export with "
                           "--height/--width")
    gpu_name, capability = gpu_identity(device)
    onnx_sha = file_sha256(onnx_path)
    key = EngineKey(onnx_sha256=onnx_sha, tensorrt_version=trt.__version__,
                    gpu_name=gpu_name, compute_capability=capability, precision=precision,
                    input_shape=tuple(input_shape))
    target = Path(engine_path) if engine_path else engine_cache_path(cache_dir, onnx_path, key)
    calib_cache = Path(cache_dir) / f"{Path(onnx_path).stem}.{onnx_sha[:16]}.int8.calib"

    def build() -> tuple[bytes, dict]:
        return build_engine(onnx_path, precision, workspace_gb, calib_images, calib_cache)

    result = cached_build(target, key.to_dict(), build, what="TensorRT engine")
    return result.path, result.record, result.built


def check_engine_file(engine_path: str | os.PathLike, device: str = "cuda") -> dict:
    """Validate an explicit ``.engine`` and its sidecar for this machine; returns the record."""
    trt = require_tensorrt()
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
        device: ``cuda`` or ``cuda:N``.
        output_resolution, with_attention: see :class:`Predictor`.
    """

    backend_name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike, record: dict, device: str = "cuda",
                 output_resolution: str = "input", with_attention: bool = False) -> None:
        import torch

        trt = require_tensorrt()
        path = Path(engine_path)
        meta = ModelMeta.from_dict(record.get("meta"), source=str(sidecar_path(path)))
        torch.cuda.set_device(torch.device(device))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise SynergyError(f"TensorRT could not deserialize {path} (see the messages "
                               "above); rebuild it with `synergy export --format engine "
                               f"--build-only`, or {_FALLBACK}")
        io_spec = engine_io(engine)
        image_shape = io_spec.get(INPUT_NAME, {}).get("shape", [0, 0, 0, 0])
        dynamic = image_shape[0] == -1
        if dynamic:
            max_batch = int(engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0])
        else:
            max_batch = int(image_shape[0])
        expected = graph_io_spec(image_shape[2:], -1 if dynamic else max_batch, with_attention)
        problems = io_problems(io_spec, expected)
        recorded = record.get("io")
        if recorded and recorded != io_spec:
            problems.append(f"engine I/O {io_spec} differs from its sidecar {recorded}")
        if problems:
            raise SynergyError(f"{path} does not have the synergy_ros interface: "
                               f"{'; '.join(problems)}; rebuild it from the model's ONNX")
        super().__init__(meta, input_size=image_shape[2:], output_resolution=output_resolution,
                         with_attention=with_attention, max_batch=max_batch)
        self.device = device
        self.precision = (record.get("key") or {}).get("precision", "fp32")
        self.model_path = str(path)
        self._engine = engine
        self._context = engine.create_execution_context()
        self._dynamic = dynamic
        self._lock = threading.Lock()  # the buffers are shared: one inference at a time
        self._stream = torch.cuda.Stream(device=torch.device(device))
        torch_dtypes = {"float32": torch.float32, "float16": torch.float16,
                        "int32": torch.int32, "int8": torch.int8, "bool": torch.bool,
                        "uint8": torch.uint8, "int64": torch.int64}
        self._device_buffers, self._host_buffers, self._outputs = {}, {}, []
        for name, spec in io_spec.items():
            shape = [max_batch if d == -1 and i == 0 else d for i, d in enumerate(spec["shape"])]
            if dynamic and spec["mode"] == "input":
                self._context.set_input_shape(name, shape)
            if -1 in shape:
                shape = list(self._context.get_tensor_shape(name))
            dtype = torch_dtypes[spec["dtype"]]
            self._device_buffers[name] = torch.empty(shape, dtype=dtype, device=device)
            self._host_buffers[name] = torch.empty(shape, dtype=dtype, pin_memory=True)
            self._context.set_tensor_address(name, self._device_buffers[name].data_ptr())
            if spec["mode"] == "output":
                self._outputs.append(name)

    def infer(self, batch: np.ndarray) -> RawOutput:
        """Copy in, ``execute_async_v3`` on this predictor's stream, copy out, synchronise."""
        import torch

        count = batch.shape[0]
        with self._lock, torch.cuda.stream(self._stream):
            host_in = self._host_buffers[INPUT_NAME]
            host_in[:count].numpy()[...] = batch
            self._device_buffers[INPUT_NAME][:count].copy_(host_in[:count], non_blocking=True)
            if self._dynamic:
                self._context.set_input_shape(INPUT_NAME, tuple(batch.shape))
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise SynergyError(f"TensorRT execution failed for {self.model_path}")
            for name in self._outputs:
                self._host_buffers[name][:count].copy_(self._device_buffers[name][:count],
                                                       non_blocking=True)
            self._stream.synchronize()
            out = {name: self._host_buffers[name][:count].numpy().copy()
                   for name in self._outputs}
        return RawOutput(out["depth"], out["labels"], out.get("attention"))

    def close(self) -> None:
        """Free the execution context, engine and CUDA buffers."""
        self._context = None
        self._engine = None
        self._device_buffers.clear()
        self._host_buffers.clear()


def load_tensorrt_predictor(model_path: str | os.PathLike, cache_dir: str | os.PathLike,
                            device: str = "cuda", precision: str = "fp32",
                            input_size: Sequence[int] | None = None,
                            output_resolution: str = "input",
                            with_attention: bool = False) -> TensorRTPredictor:
    """TensorRT predictor for an ``.onnx`` (engine cached/built) or an explicit ``.engine``."""
    require_tensorrt()
    path = Path(model_path)
    if path.suffix.lower() == ".engine":
        record = check_engine_file(path, device)
    else:  # one read of the ONNX file checks the size and keys the engine
        path, record, _ = engine_for_onnx(path, cache_dir, precision, device,
                                          input_size=input_size)
    return TensorRTPredictor(path, record, device=device, output_resolution=output_resolution,
                             with_attention=with_attention)
