"""Runtime: shared pre/post-processing, torch and onnxruntime predictors, load_predictor."""
import logging
import os

import numpy as np
import pytest

from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ModelMeta
from synergy_ros.runtime import choose_backend, load_predictor
from synergy_ros.runtime.device import module_installed
from synergy_ros.runtime.prediction import RawOutput
from synergy_ros.runtime.preprocess import Postprocessor, Preprocessor, label_dtype

NUM_CLASSES = 5
INPUT_SIZE = (64, 96)


def make_model_file(path, num_classes=NUM_CLASSES, input_size=INPUT_SIZE, seed=0,
                    class_names=None):
    """Write a real (untrained, seeded) resnet18 synergy model file; returns its path."""
    from synergy_ros.network.untrained import save_untrained_model

    names = class_names or [f"class{i}" for i in range(num_classes)]
    save_untrained_model(path, {"encoder": "resnet18", "num_classes": num_classes,
                                "decoder_width": 64},
                         names, [(10 * i, 20, 30) for i in range(len(names))],
                         input_size=input_size, seed=seed)
    return path


def sample_rgb(height=120, width=160, seed=1):
    """A deterministic smooth RGB image (same generator as the export parity check)."""
    from synergy_ros.runtime.exporter import sample_image

    return sample_image(height, width, seed)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """One small model file shared by this module's tests."""
    return make_model_file(tmp_path_factory.mktemp("model") / "tiny.pt")


# --- preprocessing / postprocessing (shared by every backend) -------------------------------

def test_preprocess_normalises_with_meta_mean_std():
    """Values equal (x / 255 - mean) / std, NCHW float32, resized to the model size."""
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    pre = Preprocessor((8, 12), mean, std)
    image = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    batch, sizes = pre([image])
    assert batch.shape == (1, 3, 8, 12) and batch.dtype == np.float32
    assert batch.flags["C_CONTIGUOUS"] and sizes == [(8, 12)]
    want = (image.astype(np.float64) / 255 - mean) / std
    np.testing.assert_allclose(batch[0].transpose(1, 2, 0), want, atol=1e-5)


def test_preprocess_resizes_other_sizes_bilinear():
    """A 2x larger constant image becomes the same constant at model size."""
    pre = Preprocessor((8, 12), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    image = np.full((16, 24, 3), 255, np.uint8)
    batch, sizes = pre([image, image[:8, :12]])
    assert batch.shape == (2, 3, 8, 12) and sizes == [(16, 24), (8, 12)]
    np.testing.assert_allclose(batch, 1.0, atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                 np.zeros((8, 8, 3), np.float32), [[1, 2, 3]]])
def test_preprocess_rejects_non_rgb8(bad):
    """Grey, RGBA, float and non-array inputs get a SynergyError saying what is expected."""
    with pytest.raises(SynergyError, match="uint8 RGB"):
        Preprocessor((8, 8), (0, 0, 0), (1, 1, 1))([bad])


def test_preprocess_accepts_non_contiguous_views():
    """Flipped/cropped views (negative strides) are handled like their copies."""
    pre = Preprocessor((8, 12), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    image = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    view = image[::-1, 5:25]
    got, _ = pre([view])
    want, _ = pre([view.copy()])
    np.testing.assert_array_equal(got, want)


def test_label_dtype_switches_at_255_classes():
    """uint8 for <= 255 classes, uint16 above."""
    assert label_dtype(255) == np.uint8 and label_dtype(256) == np.uint16


@pytest.mark.parametrize("resolution,expected_hw", [("input", (16, 24)), ("model", (8, 12))])
def test_postprocess_resolution(resolution, expected_hw):
    """'input' resizes to the image size, 'model' keeps the model size; dtypes fixed."""
    depth = np.linspace(1, 2, 8 * 12, dtype=np.float32).reshape(1, 1, 8, 12)
    labels = np.zeros((1, 8, 12), np.int32)
    labels[0, :, 6:] = 300
    attention = np.ones((1, 1, 2, 3), np.float32)
    post = Postprocessor(num_classes=400, output_resolution=resolution)
    (pred,) = post(RawOutput(depth, labels, attention), [(16, 24)])
    assert pred.depth.shape == pred.labels.shape == pred.attention.shape == expected_hw
    assert pred.depth.dtype == np.float32 and pred.labels.dtype == np.uint16
    assert set(np.unique(pred.labels)) == {0, 300}  # nearest: no invented class ids
    assert 1.0 <= pred.depth.min() and pred.depth.max() <= 2.0
    # exact nearest: the left half stays class 0, the right half 300
    assert (pred.labels[:, : expected_hw[1] // 2] == 0).all()
    assert (pred.labels[:, expected_hw[1] // 2:] == 300).all()


def test_postprocess_returns_copies_not_views_of_backend_buffers():
    """Predictions own their memory: a backend may reuse its output buffers."""
    depth = np.ones((1, 1, 4, 4), np.float32)
    (pred,) = Postprocessor(3, "model")(RawOutput(depth, np.zeros((1, 4, 4), np.int32), None),
                                        [(4, 4)])
    depth[:] = 7
    assert (pred.depth == 1).all()


# --- torch and onnxruntime predictors on a real model file ---------------------------------

def test_torch_predictor_outputs(model_file):
    """Depth in metres within the network's range at the image size; uint8 labels."""
    predictor = load_predictor(model_file, backend="torch", device="cpu")
    assert predictor.backend_name == "torch" and predictor.input_size == INPUT_SIZE
    pred = predictor.predict(sample_rgb())
    assert pred.depth.shape == (120, 160) and pred.depth.dtype == np.float32
    assert pred.labels.shape == (120, 160) and pred.labels.dtype == np.uint8
    assert 0 < pred.depth.min() and pred.depth.max() < predictor.meta.max_depth
    assert pred.labels.max() < NUM_CLASSES and pred.attention is None
    assert set(pred.timings_ms) == {"preprocess", "inference", "postprocess"}


def test_predict_batch_equals_single_predictions(model_file):
    """A batch of differently sized images gives the same results as one-by-one."""
    predictor = load_predictor(model_file, backend="torch", device="cpu",
                               output_resolution="model", with_attention=True)
    images = [sample_rgb(120, 160, 1), sample_rgb(64, 96, 2), sample_rgb(50, 50, 3)]
    batch = predictor.predict_batch(images)
    assert [p.depth.shape for p in batch] == [INPUT_SIZE] * 3
    for image, got in zip(images, batch):
        want = predictor.predict(image)
        np.testing.assert_allclose(got.depth, want.depth, rtol=1e-4, atol=1e-5)
        assert np.mean(got.labels == want.labels) > 0.999
        assert got.attention.shape == INPUT_SIZE and np.isfinite(got.attention).all()


def test_model_resolution_predictions_carry_the_networks_view_of_the_image(model_file):
    """output_resolution model: Prediction.rgb is the input resized as the network saw it
    (the node colours its clouds with it instead of resizing again); input: None."""
    from synergy_ros.runtime.preprocess import resize_rgb

    image = sample_rgb(120, 160, 1)
    model = load_predictor(model_file, backend="torch", device="cpu",
                           output_resolution="model").predict(image)
    np.testing.assert_array_equal(model.rgb, resize_rgb(image, *INPUT_SIZE))
    assert model.rgb.dtype == np.uint8 and model.rgb.shape[:2] == model.depth.shape
    full = load_predictor(model_file, backend="torch", device="cpu").predict(image)
    assert full.rgb is None


def test_onnxruntime_from_pt_matches_torch_and_caches_export(model_file, tmp_path, caplog):
    """auto picks onnxruntime here; the cached export is reused; outputs match torch."""
    caplog.set_level(logging.INFO, logger="synergy_ros")
    ort_pred = load_predictor(model_file, engine_cache_dir=tmp_path)
    assert ort_pred.backend_name == "onnxruntime"
    assert "inference backend onnxruntime" in caplog.text  # the choice and why are logged
    onnx_files = list(tmp_path.glob("*.onnx"))
    assert len(onnx_files) == 1 and onnx_files[0].with_name(onnx_files[0].name + ".json").is_file()
    mtime = onnx_files[0].stat().st_mtime_ns
    again = load_predictor(model_file, backend="onnxruntime", engine_cache_dir=tmp_path)
    assert onnx_files[0].stat().st_mtime_ns == mtime and again.model_path == str(onnx_files[0])
    torch_pred = load_predictor(model_file, backend="torch")
    image = sample_rgb()
    got, want = ort_pred.predict(image), torch_pred.predict(image)
    assert np.abs(got.depth - want.depth).max() < 1e-3
    assert np.mean(got.labels == want.labels) > 0.999


def test_changed_model_file_gets_a_new_export(tmp_path):
    """Retraining (new bytes at the same path) exports again instead of reusing stale ONNX."""
    path = make_model_file(tmp_path / "m.pt", seed=0)
    first = load_predictor(path, backend="onnxruntime", engine_cache_dir=tmp_path / "c")
    depth_first = first.predict(sample_rgb()).depth
    make_model_file(path, seed=1)
    second = load_predictor(path, backend="onnxruntime", engine_cache_dir=tmp_path / "c")
    assert second.model_path != first.model_path
    assert len(list((tmp_path / "c").glob("*.onnx"))) == 2
    assert np.abs(second.predict(sample_rgb()).depth - depth_first).max() > 1e-3


def test_onnxruntime_rejects_other_input_size(model_file, tmp_path):
    """A static .onnx runs only at its exported size; the message says how to re-export."""
    predictor = load_predictor(model_file, backend="onnxruntime", engine_cache_dir=tmp_path)
    with pytest.raises(SynergyError, match="re-export with --height/--width"):
        load_predictor(predictor.model_path, backend="onnxruntime", input_size=(32, 32))


def test_choose_backend_auto_without_tensorrt():
    """Without TensorRT (this machine) auto picks onnxruntime and says why."""
    pytest.importorskip("onnxruntime")
    if module_installed("tensorrt"):
        pytest.skip("tensorrt is installed here; auto would pick it on a GPU")
    backend, device, why = choose_backend("model.pt", "auto", "cpu")
    assert (backend, device) == ("onnxruntime", "cpu") and "cpu" in why


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "cuda0", "cudax"])
def test_choose_backend_rejects_malformed_devices(device):
    """Only auto, cpu, cuda and cuda:N pass; anything else is a SynergyError, never a
    ValueError/RuntimeError from parsing the index later on a GPU machine."""
    with pytest.raises(SynergyError, match="unknown device"):
        choose_backend("model.pt", "torch", device)


# --- bad input: clear SynergyError naming the file and what to do ---------------------------

def test_missing_and_unknown_model_files(tmp_path):
    """Missing files and unknown suffixes name the file."""
    with pytest.raises(SynergyError, match="does not exist"):
        load_predictor(tmp_path / "nope.pt")
    other = tmp_path / "weights.h5"
    other.write_bytes(b"x")
    with pytest.raises(SynergyError, match="unknown model file type"):
        load_predictor(other)


def test_backend_and_file_combinations(model_file, tmp_path):
    """torch needs a .pt, engines need TensorRT, int8 needs a quantized model, TensorRT needs
    CUDA."""
    onnx_path = load_predictor(model_file, backend="onnxruntime",
                               engine_cache_dir=tmp_path).model_path
    with pytest.raises(SynergyError, match="torch backend needs the .pt"):
        load_predictor(onnx_path, backend="torch")
    with pytest.raises(SynergyError, match="int8 needs a quantized model.*--int8 --calib-images"):
        load_predictor(model_file, backend="onnxruntime", precision="int8",
                       engine_cache_dir=tmp_path)
    with pytest.raises(SynergyError, match="TensorRT runs only on a CUDA GPU"):
        load_predictor(model_file, backend="tensorrt", device="cpu")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 64)
    with pytest.raises(SynergyError, match="--backend tensorrt"):
        load_predictor(engine, backend="onnxruntime")


def test_truncated_model_files(model_file, tmp_path):
    """Truncated .pt and .onnx files give SynergyError, not a crash."""
    data = model_file.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(SynergyError, match="cut.pt"):
        load_predictor(cut, backend="torch")
    onnx_path = load_predictor(model_file, backend="onnxruntime",
                               engine_cache_dir=tmp_path).model_path
    cut_onnx = tmp_path / "cut.onnx"
    cut_onnx.write_bytes(open(onnx_path, "rb").read()[:5000])
    with pytest.raises(SynergyError, match="cut.onnx.*re-export"):
        load_predictor(cut_onnx, backend="onnxruntime")
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    with pytest.raises(SynergyError, match="notes.onnx"):
        load_predictor(text, backend="onnxruntime")


def test_onnx_from_another_network(tmp_path):
    """An ONNX without synergy metadata, or with it but other I/O, is refused clearly."""
    import onnx
    import torch

    from synergy_ros.core.modelfile import ONNX_META_KEY

    conv = torch.nn.Conv2d(3, 2, 3, padding=1).eval()
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(conv, (torch.zeros(1, 3, 32, 32),), str(foreign), input_names=["input"],
                      output_names=["out"], opset_version=17, dynamo=False)
    with pytest.raises(SynergyError, match="foreign.onnx has no 'synergy_ros.meta'"):
        load_predictor(foreign, backend="onnxruntime")
    model = onnx.load(str(foreign))
    meta = ModelMeta(network={}, class_names=["a", "b"], palette=[(0, 0, 0), (1, 1, 1)])
    onnx.helper.set_model_props(model, {ONNX_META_KEY: meta.to_json()})
    relabelled = tmp_path / "relabelled.onnx"
    onnx.save(model, str(relabelled))
    with pytest.raises(SynergyError, match="relabelled.onnx.*(graph interface|input 'image')"):
        load_predictor(relabelled, backend="onnxruntime")


def test_checkpoint_for_different_classes(tmp_path):
    """Metadata naming 3 classes on weights for 5: the file is named, no shape traceback."""
    import torch

    path = make_model_file(tmp_path / "five.pt")
    payload = torch.load(path, weights_only=True)
    payload["meta"]["class_names"] = ["a", "b", "c"]
    payload["meta"]["palette"] = [[0, 0, 0]] * 3
    payload["meta"]["network"]["num_classes"] = 3
    torch.save(payload, tmp_path / "three.pt")
    with pytest.raises(SynergyError, match="three.pt: weights do not fit.*3 classes"):
        load_predictor(tmp_path / "three.pt", backend="torch")


def test_default_cache_dir_beside_model_or_env(tmp_path, monkeypatch):
    """Exports go to <model dir>/.synergy_cache unless SYNERGY_CACHE_DIR says otherwise."""
    from synergy_ros.runtime import default_cache_dir

    monkeypatch.delenv("SYNERGY_CACHE_DIR", raising=False)
    assert default_cache_dir(tmp_path / "m.pt") == tmp_path.resolve() / ".synergy_cache"
    monkeypatch.setenv("SYNERGY_CACHE_DIR", os.fspath(tmp_path / "c"))
    assert default_cache_dir(tmp_path / "m.pt") == tmp_path / "c"
