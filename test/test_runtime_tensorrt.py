"""TensorRT backend: engine build/cache/validation and parity with onnxruntime.

Needs ``tensorrt`` (10.x) and a CUDA GPU; on machines without them (this CI) the GPU tests are
skipped with the reason and only the "TensorRT missing" error path runs.
"""
import importlib.util
import json

import numpy as np
import pytest
from test_runtime import make_model_file, sample_rgb

from synergy_ros.core.errors import SynergyError
from synergy_ros.runtime import load_predictor
from synergy_ros.runtime.engine_cache import sidecar_path


def _has_cuda():
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
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
