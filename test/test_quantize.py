"""INT8 (Q/DQ) export: a small model quantized on synthetic frames, its metadata, the held-out
verification and its thresholds, the runtime and the bad-calibration-folder errors.

The model is a real (untrained, seeded) resnet18 synergy net at 64x64, calibrated on a few
48x64 synthetic frames, so the whole quantize-verify loop runs in seconds.
"""
import json

import cv2
import numpy as np
import onnx
import pytest
from test_runtime import make_model_file

from synergy_ros.cli import main
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ONNX_META_KEY
from synergy_ros.data.synthetic import render_scene
from synergy_ros.runtime import load_predictor
from synergy_ros.runtime.exporter import (ExportOptions, cached_int8_onnx, export_int8_onnx,
                                          export_onnx)
from synergy_ros.runtime.preprocess import Preprocessor
from synergy_ros.runtime.quantizer import (OUTPUT_TAIL, Int8Agreement, Int8Options,
                                           Int8Thresholds, _FrameReader, agreement,
                                           choose_fp32_layers, layer_of, layer_sensitivity,
                                           quantizable_layers, quantize_graph, read_rgb,
                                           run_graph)

SIZE = 64


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small real model file (input 64x64)."""
    return make_model_file(tmp_path_factory.mktemp("int8") / "tiny.pt", input_size=(SIZE, SIZE))


def write_frames(folder, count, first_seed=500):
    """``count`` synthetic indoor camera frames (48x64 PNG) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rgb = render_scene(first_seed + i, 48, 64).rgb
        cv2.imwrite(str(folder / f"frame{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Eight calibration frames (the last two are held out by --verify-frames 2)."""
    return write_frames(tmp_path_factory.mktemp("calib") / "frames", 8)


@pytest.fixture(scope="module")
def int8_file(model_file, frames, tmp_path_factory):
    """The CLI's INT8 export of the small model (all layers quantized) and what it printed."""
    out = tmp_path_factory.mktemp("int8_out") / "tiny_64x64.int8.onnx"
    code = main(["export", "--checkpoint", str(model_file), "--format", "onnx", "--int8",
                 "--calib-images", str(frames), "--verify-frames", "2", "--fp32-layers", "none",
                 "--output", str(out)])
    assert code == 0
    return out


def _meta(path):
    return json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}
                      [ONNX_META_KEY])


def test_int8_export_is_qdq_with_the_model_metadata_and_its_verification(int8_file, frames):
    """The file is checker-clean Q/DQ with int8 per-channel weights and carries the FP32
    export's metadata plus the calibration, the layer choice and the held-out agreement."""
    model = onnx.load(str(int8_file))
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    weight_scales = [init for init in model.graph.initializer
                     if init.name.endswith("weight_scale") and len(init.dims) == 1
                     and init.dims[0] > 1]
    assert weight_scales  # per-channel: one scale per output channel
    zero_points = {init.name: onnx.numpy_helper.to_array(init)
                   for init in model.graph.initializer if init.name.endswith("zero_point")}
    per_channel = [zp for zp in zero_points.values() if zp.ndim == 1 and zp.dtype == np.int8]
    activations = [zp for zp in zero_points.values() if zp.ndim == 0 and zp.dtype == np.uint8]
    assert per_channel and not any(zp.any() for zp in per_channel)  # symmetric int8 weights
    assert len(activations) > 20 and any(activations)  # cpu: uint8 asymmetric activations
    meta = _meta(int8_file)
    assert meta["input_size"] == [SIZE, SIZE] and len(meta["class_names"]) == 5
    record = meta["extra"]["export"]["int8"]
    assert record["calibration"]["images"] == 6 and record["calibration"]["held_out"] == 2
    assert record["calibration"]["held_out_first"] == "frame006.png"
    verification = record["verification"]
    assert verification["frames"] == 2 and 0 <= verification["median_rel_depth"] <= 0.03
    assert verification["delta1"] >= 0.97 and verification["label_agreement"] >= 0.95
    assert record["fp32_layers"] == [] and record["scheme"]["format"] == "QDQ"
    assert record["target"] == "cpu" and "uint8" in record["scheme"]["activations"]


def test_int8_onnx_runs_on_onnxruntime_cpu_and_auto(int8_file, model_file):
    """backend auto picks onnxruntime for the .int8.onnx here; it predicts like the FP32 model."""
    predictor = load_predictor(int8_file, device="cpu")
    assert predictor.backend_name == "onnxruntime" and predictor.precision == "int8"
    image = render_scene(900, 48, 64).rgb
    got = predictor.predict(image)
    want = load_predictor(model_file, backend="torch").predict(image)
    assert got.depth.shape == want.depth.shape == (48, 64)
    assert np.median(np.abs(got.depth - want.depth) / want.depth) < 0.05
    assert np.mean(got.labels == want.labels) > 0.9
    with pytest.raises(SynergyError, match="torch backend"):
        load_predictor(model_file, backend="torch", precision="int8")


def test_thresholds_are_enforced_and_nothing_is_written(model_file, frames, tmp_path, capsys):
    """A limit the quantized model cannot meet fails the export with the flag to change it."""
    out = tmp_path / "strict.int8.onnx"
    code = main(["export", "--checkpoint", str(model_file), "--format", "onnx", "--int8",
                 "--calib-images", str(frames), "--verify-frames", "2", "--fp32-layers", "none",
                 "--int8-max-median-rel", "0", "--output", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "INT8 verification failed" in err and "--int8-max-median-rel" in err
    assert "Nothing was written" in err and not out.exists()


def test_agreement_figures_and_thresholds():
    """Median relative difference, delta<1.25 and label agreement as defined, and each limit
    names its flag."""
    want = [(np.full((1, 1, 2, 2), 2.0, np.float32), np.zeros((1, 2, 2), np.int32))]
    depth = np.array([[[[2.0, 2.2], [3.0, 2.0]]]], np.float32)  # rel 0, .1, .5, 0
    labels = np.array([[[0, 1], [0, 0]]], np.int32)
    result = agreement([(depth, labels)], want)
    assert result.median_rel == pytest.approx(0.05) and result.delta1 == 0.75
    assert result.label_agreement == 0.75 and result.frames == 1
    problems = result.failures(Int8Thresholds(0.01, 0.8, 0.8))
    assert len(problems) == 3 and "--int8-min-delta1" in problems[1]
    assert not Int8Agreement(0.0, 1.0, 1.0, 1).failures(Int8Thresholds())


def test_layer_names_and_the_auto_choice():
    """Layers are module paths; ops outside modules are the output tail; auto keeps the layers
    that remove at least a fifth of the error, most sensitive first, capped."""
    conv = "/net/encoder/layer1/layer1.0/conv1"
    assert layer_of(f"{conv}/Conv") == conv
    assert layer_of("/net/Sigmoid") == layer_of("/Clip") == OUTPUT_TAIL
    gains = {"a": 0.001, "head": 0.5, "tail": 0.3, "b": 0.25}
    assert choose_fp32_layers(gains, 1.0) == ["head", "tail", "b"]
    assert choose_fp32_layers(gains, 1.0, max_layers=1) == ["head"]
    assert choose_fp32_layers(gains, 0.0) == []


def test_sensitivity_is_the_error_a_float_layer_removes(model_file, frames, tmp_path):
    """layer_sensitivity: keeping a layer FP32 while the rest is quantized removes part of the
    fully quantized graph's error (measured on real outputs, a few layers for speed)."""
    fp32 = tmp_path / "m.onnx"
    export_onnx(model_file, fp32, ExportOptions(SIZE, SIZE), verify=False)
    meta = load_predictor(fp32, backend="onnxruntime").meta
    files = sorted(frames.glob("*.png"))[:6]
    pre = Preprocessor(meta.input_size, meta.mean, meta.std)
    batches = [pre([read_rgb(f)])[0] for f in files[:2]]
    reference = run_graph(fp32, batches)
    cache, full = tmp_path / "ranges.json", tmp_path / "full.onnx"
    quantize_graph(fp32, full, cache, reader=_FrameReader(files, pre, progress=False))
    full_error = agreement(run_graph(full, batches), reference).error()
    layers, _ = quantizable_layers(fp32)
    chosen = {name: layers[name] for name in ("/net/encoder/conv1", "/net/depth_head")}
    gains = layer_sensitivity(fp32, cache, chosen, batches, reference, full_error, tmp_path,
                              progress=False)
    assert set(gains) == set(chosen) and full_error > 0
    assert all(-full_error < gain < full_error for gain in gains.values())
    assert any(gain != 0 for gain in gains.values())


def test_fp32_layers_stay_float(model_file, frames, tmp_path):
    """Layers named in fp32_layers keep float Conv weights; an unknown name lists the layers."""
    out = tmp_path / "kept.int8.onnx"
    keep = ["/net/depth_head", OUTPUT_TAIL]
    report = export_int8_onnx(model_file, out, ExportOptions(SIZE, SIZE),
                              Int8Options(frames, verify_frames=2, fp32_layers=keep,
                                          progress=False))
    assert report.fp32_layers == keep and _meta(out)["extra"]["export"]["int8"]["fp32_layers"]
    nodes = {n.name: n for n in onnx.load(str(out)).graph.node}
    weights = {init.name for init in onnx.load(str(out)).graph.initializer}
    assert nodes["/net/depth_head/Conv"].input[1] in weights  # float weights, no Q/DQ
    assert nodes["/net/semantic_head/Conv"].input[1].endswith("DequantizeLinear_Output")
    with pytest.raises(SynergyError, match="no quantizable layer.*/net/encoder/conv1"):
        export_int8_onnx(model_file, out, ExportOptions(SIZE, SIZE),
                         Int8Options(frames, verify_frames=2, fp32_layers=["/net/nope"],
                                     progress=False))


def test_bad_calibration_folders_name_the_problem(model_file, tmp_path):
    """Empty folder, a single frame and a corrupt image each give a clear SynergyError."""
    options = ExportOptions(SIZE, SIZE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynergyError, match="no images"):
        export_int8_onnx(model_file, tmp_path / "x.onnx", options,
                         Int8Options(tmp_path / "empty", progress=False))
    one = write_frames(tmp_path / "one", 1)
    with pytest.raises(SynergyError, match="at least 2 images"):
        export_int8_onnx(model_file, tmp_path / "x.onnx", options,
                         Int8Options(one, progress=False))
    corrupt = write_frames(tmp_path / "corrupt", 4)
    (corrupt / "frame001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(SynergyError, match="frame001.png is not a readable image"):
        export_int8_onnx(model_file, tmp_path / "x.onnx", options,
                         Int8Options(corrupt, fp32_layers="none", progress=False))
    (corrupt / "frame001.png").write_bytes(b"")
    with pytest.raises(SynergyError, match="frame001.png is not a readable image"):
        export_int8_onnx(model_file, tmp_path / "x.onnx", options,
                         Int8Options(corrupt, fp32_layers="none", progress=False))
    assert not (tmp_path / "x.onnx").exists()


def test_int8_precision_finds_the_cached_quantized_model(model_file, frames, tmp_path):
    """precision int8 on a .pt runs the newest INT8 ONNX cached for it (the engine path's
    cache); with none it says how to make one. The cache is keyed by the calibration images."""
    cache = tmp_path / "cache"
    with pytest.raises(SynergyError, match="--int8 --calib-images DIR"):
        load_predictor(model_file, backend="onnxruntime", precision="int8",
                       engine_cache_dir=cache)
    options = Int8Options(frames, verify_frames=2, fp32_layers="none", progress=False)
    path, record, built = cached_int8_onnx(model_file, cache, ExportOptions(SIZE, SIZE), options)
    assert built and record["int8"]["verification"]["frames"] == 2
    assert cached_int8_onnx(model_file, cache, ExportOptions(SIZE, SIZE), options)[2] is False
    predictor = load_predictor(model_file, backend="onnxruntime", precision="int8",
                               engine_cache_dir=cache)
    assert predictor.model_path == str(path) and predictor.precision == "int8"
    other = write_frames(tmp_path / "other", 8, first_seed=900)
    second = cached_int8_onnx(model_file, cache, ExportOptions(SIZE, SIZE),
                              Int8Options(other, verify_frames=2, fp32_layers="none",
                                          progress=False))[0]
    assert second != path


def test_int8_of_an_exported_fp32_onnx(model_file, frames, tmp_path):
    """An FP32 .onnx from synergy export quantizes too; a quantized one is refused."""
    fp32 = tmp_path / "m.onnx"
    export_onnx(model_file, fp32, ExportOptions(SIZE, SIZE), verify=False)
    out = tmp_path / "m.int8.onnx"
    options = Int8Options(frames, verify_frames=2, fp32_layers="none", progress=False)
    export_int8_onnx(fp32, out, ExportOptions(SIZE, SIZE), options)
    assert _meta(out)["extra"]["export"]["int8"]["verification"]["frames"] == 2
    with pytest.raises(SynergyError, match="already quantized"):
        export_int8_onnx(out, tmp_path / "again.onnx", ExportOptions(SIZE, SIZE), options)
