"""TensorRT backend: engine build/cache/validation and parity with onnxruntime.

The GPU tests need ``tensorrt`` (10.x) and a CUDA GPU; on machines without them (this CI) they
are skipped with the reason. Everything around the TensorRT/CUDA calls runs here on CPU: the
engine plan (cache key, INT8 from a Q/DQ ONNX), profile and buffer shapes, interface checks, and
the infer/close locking with CPU tensors in place of the CUDA buffers.
"""
import json
import threading
import time

import numpy as np
import pytest
from test_runtime import make_model_file, sample_rgb

from synergy_ros.core.errors import SynergyError
from synergy_ros.runtime import load_predictor
from synergy_ros.runtime.device import module_installed
from synergy_ros.runtime.engine_cache import sidecar_path
from synergy_ros.runtime.tensorrt_backend import (TensorRTPredictor, buffer_shape,
                                                  engine_interface_problems, gpu_identity,
                                                  plan_engine,
                                                  profile_shapes)


def _has_cuda():
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


HAVE_TRT = module_installed("tensorrt")  # a stubs-only tensorrt/ folder does not count
needs_trt = pytest.mark.skipif(not (HAVE_TRT and _has_cuda()),
                               reason="TensorRT 10 and a CUDA GPU are not available here")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small real model file."""
    return make_model_file(tmp_path_factory.mktemp("trt") / "tiny.pt")


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed: the missing-TensorRT path can't run")
def test_missing_tensorrt_says_what_to_do(model_file, tmp_path):
    """Asking for TensorRT where it is not installed names the fallback backend."""
    with pytest.raises(SynergyError, match="--backend onnxruntime"):
        load_predictor(model_file, backend="tensorrt", device="cuda", engine_cache_dir=tmp_path)
    engine = tmp_path / "copied.engine"
    engine.write_bytes(b"\0" * 128)
    with pytest.raises(SynergyError, match="TensorRT is not installed"):
        load_predictor(engine)  # auto: an .engine can only mean TensorRT


@needs_trt
@pytest.mark.parametrize("precision,depth_rel,label_agree",
                         [("fp32", 1e-3, 0.995), ("fp16", 1e-2, 0.97)])
def test_tensorrt_matches_onnxruntime(model_file, tmp_path, precision, depth_rel, label_agree):
    """Engine built once, cached, reused; outputs match onnxruntime fp32 on the sample."""
    trt_pred = load_predictor(model_file, backend="tensorrt", precision=precision,
                              engine_cache_dir=tmp_path)
    engines = list(tmp_path.glob(f"*.{precision}.*.engine"))
    assert len(engines) == 1 and sidecar_path(engines[0]).is_file()
    mtime = engines[0].stat().st_mtime_ns
    again = load_predictor(model_file, backend="tensorrt", precision=precision,
                           engine_cache_dir=tmp_path)
    assert engines[0].stat().st_mtime_ns == mtime and again.model_path == str(engines[0])
    ort_pred = load_predictor(model_file, backend="onnxruntime", engine_cache_dir=tmp_path)
    image = sample_rgb()
    got, want = trt_pred.predict(image), ort_pred.predict(image)
    rel = np.abs(got.depth - want.depth) / want.depth
    assert rel.mean() < depth_rel and np.mean(got.labels == want.labels) > label_agree
    batch = trt_pred.predict_batch([image, image])  # static engine: split into batch-1 runs
    np.testing.assert_allclose(batch[1].depth, got.depth, rtol=1e-5, atol=1e-5)


@needs_trt
def test_engine_for_other_trt_or_gpu_is_refused_or_rebuilt(model_file, tmp_path, caplog):
    """An explicit .engine recorded for another TensorRT is refused; in the cache it is rebuilt."""
    predictor = load_predictor(model_file, backend="tensorrt", engine_cache_dir=tmp_path)
    engine = predictor.model_path
    record = json.loads(sidecar_path(engine).read_text())
    record["key"]["tensorrt_version"] = "9.0.0"
    sidecar_path(engine).write_text(json.dumps(record))
    with pytest.raises(SynergyError, match="cannot run here.*9.0.0.*--build-only"):
        load_predictor(engine, backend="tensorrt")
    again = load_predictor(model_file, backend="tensorrt", engine_cache_dir=tmp_path)
    assert "is stale, rebuilding" in caplog.text and again.model_path == engine
    sidecar_path(engine).unlink()
    with pytest.raises(SynergyError, match="no readable sidecar"):
        load_predictor(engine, backend="tensorrt")


@needs_trt
def test_truncated_engine_is_refused(model_file, tmp_path):
    """A truncated engine (sidecar hash mismatch) is refused before TensorRT sees it."""
    engine = load_predictor(model_file, backend="tensorrt", engine_cache_dir=tmp_path).model_path
    data = open(engine, "rb").read()
    cut = tmp_path / "cut.engine"
    cut.write_bytes(data[: len(data) // 2])
    sidecar_path(cut).write_text(sidecar_path(engine).read_text())
    with pytest.raises(SynergyError, match="cut.engine cannot run here.*truncated"):
        load_predictor(cut, backend="tensorrt")


@needs_trt
def test_onnx_of_another_size_is_refused(model_file, tmp_path):
    """An .onnx run at an input size other than its exported one names both sizes."""
    onnx_path = load_predictor(model_file, backend="onnxruntime",
                               engine_cache_dir=tmp_path).model_path
    with pytest.raises(SynergyError, match="was exported for 64x96 .HxW., not 32x32"):
        load_predictor(onnx_path, backend="tensorrt", input_size=(32, 32),
                       engine_cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.engine"))  # refused before any engine build


# --- CPU tests of everything around the TensorRT / CUDA calls --------------------------------

@pytest.fixture(scope="module")
def onnx_file(model_file, tmp_path_factory):
    """The small model exported to ONNX (64x96, static batch 1)."""
    cache = tmp_path_factory.mktemp("onnx")
    return load_predictor(model_file, backend="onnxruntime", engine_cache_dir=cache).model_path


@pytest.fixture(scope="module")
def qdq_file(model_file, tmp_path_factory):
    """The small model quantized to a Q/DQ .int8.onnx (all layers, 6 + 2 synthetic frames)."""
    from test_quantize import write_frames

    from synergy_ros.runtime.exporter import ExportOptions, export_int8_onnx
    from synergy_ros.runtime.quantizer import Int8Options

    folder = tmp_path_factory.mktemp("qdq")
    out = folder / "tiny_64x96.int8.onnx"
    export_int8_onnx(model_file, out, ExportOptions(64, 96),
                     Int8Options(write_frames(folder / "frames", 8), verify_frames=2,
                                 fp32_layers="none", progress=False, target="tensorrt"))
    return out


def test_int8_plan_is_explicit_quantization_of_the_qdq_onnx(onnx_file, qdq_file, tmp_path):
    """A Q/DQ ONNX plans an INT8 engine keyed by its hash and calibration digest (whatever
    precision was asked); INT8 from an FP32 ONNX is refused with the commands to run."""
    cache, gpu = tmp_path / "cache", ("NVIDIA Orin", "8.7")
    key, engine = plan_engine(qdq_file, cache, "int8", "10.3.0", gpu)
    assert key.precision == "int8" and len(key.calibration) == 16
    assert ".int8." in engine.name and engine.parent == cache
    assert plan_engine(qdq_file, cache, "fp16", "10.3.0", gpu)[0] == key
    with pytest.raises(SynergyError, match="quantized .Q/DQ. ONNX.*--int8 --calib-images DIR"):
        plan_engine(onnx_file, cache, "int8", "10.3.0", gpu)
    cpu_file = qdq_file.with_name("cpu.int8.onnx")
    from test_quantize import write_frames

    from synergy_ros.runtime.exporter import ExportOptions, export_int8_onnx
    from synergy_ros.runtime.quantizer import Int8Options

    export_int8_onnx(onnx_file, cpu_file, ExportOptions(64, 96),
                     Int8Options(write_frames(tmp_path / "frames", 4), verify_frames=1,
                                 fp32_layers="none", progress=False))
    with pytest.raises(SynergyError, match="quantized for onnxruntime on CPUs.*tensorrt"):
        plan_engine(cpu_file, cache, "int8", "10.3.0", gpu)
    key_32, engine_32 = plan_engine(onnx_file, cache, "fp32", "10.3.0", gpu)
    assert "calibration" not in key_32.to_dict() and engine_32 != engine
    assert engine_32.name.startswith("tiny") and ".fp32." in engine_32.name


@needs_trt
def test_int8_engine_from_the_qdq_onnx_matches_onnxruntime(qdq_file, tmp_path):
    """Explicit quantization: the Q/DQ ONNX builds an INT8 engine (no calibrator) that agrees
    with onnxruntime running the same Q/DQ graph."""
    trt_pred = load_predictor(qdq_file, backend="tensorrt", engine_cache_dir=tmp_path)
    assert trt_pred.precision == "int8" and list(tmp_path.glob("*.int8.*.engine"))
    ort_pred = load_predictor(qdq_file, backend="onnxruntime")
    image = sample_rgb(64, 96)
    got, want = trt_pred.predict(image), ort_pred.predict(image)
    assert np.median(np.abs(got.depth - want.depth) / want.depth) < 0.02
    assert np.mean(got.labels == want.labels) > 0.9


def test_plan_refuses_another_size(onnx_file, tmp_path):
    """An input size other than the exported one names both."""
    with pytest.raises(SynergyError, match="exported for 64x96"):
        plan_engine(onnx_file, tmp_path, "fp32", "10.3.0", ("GPU", "8.6"), input_size=(32, 32))


def test_profile_and_buffer_shapes():
    """Dynamic batch: profile 1..max at the exported h, w; buffers sized for max_batch."""
    assert profile_shapes([-1, 3, 64, 96], 4) == ([1, 3, 64, 96], [4, 3, 64, 96],
                                                  [4, 3, 64, 96])
    with pytest.raises(SynergyError, match="only the batch axis may be dynamic"):
        profile_shapes([-1, 3, -1, 96], 2)
    with pytest.raises(SynergyError, match="max batch must be >= 1"):
        profile_shapes([-1, 3, 64, 96], 0)
    assert buffer_shape([-1, 1, 64, 96], 4) == [4, 1, 64, 96]
    assert buffer_shape([1, 1, -1, -1], 4) == [1, 1, -1, -1]  # the context resolves these


def test_engine_interface_problems():
    """The synergy graph passes; a missing output or a sidecar mismatch is named."""
    from synergy_ros.runtime.base import graph_io_spec

    good = graph_io_spec((64, 96), 1)
    assert engine_interface_problems(good, {"io": good}, False) == []
    assert engine_interface_problems(good, {}, False) == []
    broken = {k: v for k, v in good.items() if k != "labels"}
    assert "missing tensors ['labels']" in engine_interface_problems(broken, {}, False)[0]
    other = graph_io_spec((64, 96), -1)
    assert "differs from its sidecar" in engine_interface_problems(good, {"io": other},
                                                                   False)[0]
    assert "attention" in " ".join(engine_interface_problems(good, {}, True))


class _SlowContext:
    """CPU stand-in for TensorRT's IExecutionContext: 'runs' for ``seconds`` and writes
    depth = 2 x input into the output buffers (the real one runs on the GPU)."""

    def __init__(self, buffers, seconds):
        self.buffers, self.seconds = buffers, seconds
        self.started = threading.Event()

    def execute_async_v3(self, stream_handle):
        self.started.set()
        time.sleep(self.seconds)
        image = self.buffers["image"]
        self.buffers["depth"][...] = 2 * image[:, :1]
        self.buffers["labels"][...] = 1
        return True


class _Stream:
    cuda_stream = 0

    def synchronize(self):
        pass


def _cpu_predictor(seconds):
    """A TensorRTPredictor with CPU tensors where the CUDA buffers would be."""
    import torch

    predictor = object.__new__(TensorRTPredictor)
    shapes = {"image": (1, 3, 4, 6), "depth": (1, 1, 4, 6), "labels": (1, 4, 6)}
    dtypes = {"image": torch.float32, "depth": torch.float32, "labels": torch.int32}
    predictor._device_buffers = {n: torch.zeros(s, dtype=dtypes[n]) for n, s in shapes.items()}
    predictor._host_buffers = {n: torch.zeros(s, dtype=dtypes[n]) for n, s in shapes.items()}
    predictor._context = _SlowContext(predictor._device_buffers, seconds)
    predictor._engine = object()
    predictor._stream = _Stream()
    predictor._outputs = ["depth", "labels"]
    predictor._dynamic = False
    predictor._lock = threading.Lock()
    predictor._closed = False
    predictor.model_path = "cpu-test.engine"
    return predictor


def test_close_waits_for_a_running_inference():
    """close() during infer() waits instead of freeing the buffers under it; infer returns
    its result; later calls say the predictor is closed."""
    predictor = _cpu_predictor(seconds=0.5)
    batch = np.full((1, 3, 4, 6), 1.5, np.float32)
    result, errors = {}, []

    def run():
        try:
            result["out"] = predictor.infer(batch)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert predictor._context.started.wait(5)
    predictor.close()
    worker.join(5)
    assert not errors, errors
    np.testing.assert_allclose(result["out"].depth, 3.0)
    assert predictor._host_buffers == {} and predictor._context is None
    with pytest.raises(SynergyError, match="is closed"):
        predictor.infer(batch)


def test_close_that_gives_up_leaves_the_buffers_to_the_inference():
    """A close() timing out (a stuck GPU) frees nothing; the inference frees them when done."""
    predictor = _cpu_predictor(seconds=0.6)
    worker = threading.Thread(target=predictor.infer, args=(np.ones((1, 3, 4, 6), np.float32),))
    worker.start()
    assert predictor._context.started.wait(5)
    predictor.close(timeout_s=0.05)
    assert predictor._host_buffers and predictor._context is not None  # still in use
    worker.join(5)
    assert predictor._host_buffers == {} and predictor._context is None


@pytest.mark.skipif(_has_cuda(), reason="checks the no-GPU error")
def test_gpu_identity_of_a_missing_gpu_is_a_synergy_error():
    """A cuda:N that torch cannot see is a SynergyError naming the problem (torch itself
    raises a bare AssertionError 'Invalid device id' or a RuntimeError)."""
    for device in ("cuda", "cuda:1", "cpu"):
        with pytest.raises(SynergyError, match="CUDA|cuda"):
            gpu_identity(device)
