"""load_predictor(max_batch=N) for a node serving N cameras (issue 14): a .pt exports with a
dynamic batch axis under its own cache key and runs N images in one call; a dynamic-batch
ONNX keys a TensorRT engine with the profile 1..N (the engine build itself needs a GPU with
TensorRT: test_runtime_tensorrt.py)."""
import numpy as np
import pytest
from test_runtime import make_model_file, sample_rgb

from synergy_ros.runtime import load_predictor
from synergy_ros.runtime.tensorrt_backend import onnx_interface, plan_engine

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("multi") / "tiny.pt")


def test_a_pt_for_several_cameras_exports_a_dynamic_batch_onnx_and_runs_one_call(
        model_file, tmp_path):
    single = load_predictor(model_file, backend="onnxruntime", engine_cache_dir=tmp_path,
                            num_threads=1)
    multi = load_predictor(model_file, backend="onnxruntime", engine_cache_dir=tmp_path,
                           num_threads=1, max_batch=3)
    assert single.model_path != multi.model_path  # cached side by side, own keys
    assert onnx_interface(single.model_path)[1][0] == 1
    assert onnx_interface(multi.model_path)[1][0] == -1
    assert single.max_batch == 1 and multi.max_batch is None
    calls = []
    infer = multi.infer

    def counting(batch):
        calls.append(batch.shape[0])
        return infer(batch)

    multi.infer = counting
    images = [sample_rgb(72, 96, seed=1), sample_rgb(48, 64, seed=2), sample_rgb(60, 80, 3)]
    batched = multi.predict_batch(images)
    assert calls == [3]
    for image, got in zip(images, batched):  # same results as one image at a time
        want = single.predict(image)
        assert got.depth.shape == image.shape[:2]
        np.testing.assert_allclose(got.depth, want.depth, rtol=1e-4, atol=1e-5)
        assert np.mean(got.labels == want.labels) > 0.999
    again = load_predictor(model_file, backend="onnxruntime", engine_cache_dir=tmp_path,
                           max_batch=3)
    assert again.model_path == multi.model_path  # reused from the cache


def test_static_onnx_runs_a_batch_in_several_calls_and_says_so(model_file, tmp_path, caplog):
    static = load_predictor(model_file, backend="onnxruntime",
                            engine_cache_dir=tmp_path).model_path
    with caplog.at_level("INFO", logger="synergy_ros.runtime"):
        predictor = load_predictor(static, backend="onnxruntime", max_batch=3)
    assert predictor.max_batch == 1
    assert "batches of 3 run in several calls" in caplog.text
    assert len(predictor.predict_batch([sample_rgb(48, 64)] * 3)) == 3


def test_engine_plan_of_a_dynamic_onnx_keys_the_profile(model_file, tmp_path):
    """A dynamic-batch ONNX planned for 3 cameras is a different engine (profile 1..3) from
    the same ONNX for one camera; a static ONNX ignores max_batch (and keeps its old key)."""
    dynamic = load_predictor(model_file, backend="onnxruntime", engine_cache_dir=tmp_path,
                             max_batch=3).model_path
    static = load_predictor(model_file, backend="onnxruntime",
                            engine_cache_dir=tmp_path).model_path
    gpu = ("NVIDIA Orin", "8.7")
    key3, engine3 = plan_engine(dynamic, tmp_path, "fp16", "10.3.0", gpu, max_batch=3)
    key1, engine1 = plan_engine(dynamic, tmp_path, "fp16", "10.3.0", gpu)
    assert key3.max_batch == 3 and key3.to_dict()["max_batch"] == 3
    assert key1.max_batch is None and "max_batch" not in key1.to_dict()
    assert engine3 != engine1 and key3.input_shape[0] == -1
    static_key, static_engine = plan_engine(static, tmp_path, "fp16", "10.3.0", gpu,
                                            max_batch=3)
    assert static_key == plan_engine(static, tmp_path, "fp16", "10.3.0", gpu)[0]
    assert "max_batch" not in static_key.to_dict()
