"""`synergy export`: ONNX graph contract, metadata, checker, parity with torch, bad flags."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_runtime import make_model_file, sample_rgb

from synergy_ros.cli import main
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.modelfile import ONNX_META_KEY
from synergy_ros.runtime.device import module_installed
from synergy_ros.runtime.exporter import ExportOptions, export_onnx, verify_onnx


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small real model file (input size 64x96)."""
    return make_model_file(tmp_path_factory.mktemp("export") / "tiny.pt")


def test_cli_onnx_export_contract(model_file, tmp_path, capsys):
    """Static fp32 export: opset 17, checker-clean, I/O names/shapes/dtypes, metadata, parity."""
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(model_file), "--format", "onnx",
                 "--height", "64", "--width", "64", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime vs torch: max |depth diff|" in printed and "-> OK" in printed
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    meta = json.loads({p.key: p.value for p in model.metadata_props}[ONNX_META_KEY])
    assert meta["input_size"] == [64, 64] and len(meta["class_names"]) == 5
    assert meta["extra"]["export"]["opset"] == 17
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.shape, i.type) for i in session.get_inputs()}
    outputs = {o.name: (o.shape, o.type) for o in session.get_outputs()}
    assert inputs == {"image": ([1, 3, 64, 64], "tensor(float)")}
    assert outputs == {"depth": ([1, 1, 64, 64], "tensor(float)"),
                       "labels": ([1, 64, 64], "tensor(int32)")}


def test_fp16_dynamic_batch_attention_export(model_file, tmp_path):
    """fp16 weights with fp32 I/O, dynamic batch and attention; runs batch 2 within tolerance."""
    out = tmp_path / "m16.onnx"
    report = export_onnx(model_file, out, ExportOptions(64, 96, with_attention=True, fp16=True,
                                                        dynamic_batch=True))
    assert report.ok and report.tolerance.depth_mean_rel == 0.01
    model = onnx.load(str(out))
    types = {init.data_type for init in model.graph.initializer if len(init.dims) == 4}
    assert types == {onnx.TensorProto.FLOAT16}  # conv weights are stored as float16
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["depth", "labels", "attention"]
    assert session.get_inputs()[0].type == "tensor(float)"
    from synergy_ros.runtime import load_predictor

    pred16 = load_predictor(out, backend="onnxruntime", with_attention=True)
    assert pred16.max_batch is None and pred16.precision == "fp16"
    pred32 = load_predictor(model_file, backend="torch")
    images = [sample_rgb(64, 96, 1), sample_rgb(64, 96, 2)]
    for got, want in zip(pred16.predict_batch(images), pred32.predict_batch(images)):
        assert np.mean(np.abs(got.depth - want.depth) / want.depth) < 0.01
        assert np.mean(got.labels == want.labels) > 0.98
        assert got.attention.shape == got.depth.shape


def test_parity_check_fails_for_a_different_model(model_file, tmp_path):
    """The parity check is real: an ONNX of other weights fails the tolerance."""
    other = make_model_file(tmp_path / "other.pt", seed=1)
    out = tmp_path / "other.onnx"
    export_onnx(other, out, ExportOptions(64, 96), verify=False)
    report = verify_onnx(out, model_file)
    assert not report.ok and report.depth_max_abs_m > 1e-3


def test_export_size_and_flag_errors(model_file, tmp_path, capsys):
    """Bad sizes, flag combinations and missing files exit 1 with a one-line message."""
    with pytest.raises(SynergyError, match=">= 32 pixels"):
        ExportOptions(16, 64)
    with pytest.raises(SynergyError, match="opset"):
        ExportOptions(64, 64, opset=13)
    assert main(["export", "--checkpoint", str(model_file), "--int8"]) == 1
    assert "--int8 needs --calib-images DIR" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(model_file), "--build-only"]) == 1
    assert "applies to --format engine" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(model_file), "--calib-images", "x"]) == 1
    assert "applies to --int8" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(model_file), "--format", "engine",
                 "--max-batch", "0"]) == 1
    assert "--max-batch must be >= 1" in capsys.readouterr().err
    static = tmp_path / "static.onnx"
    assert main(["export", "--checkpoint", str(model_file), "--format", "onnx",
                 "--output", str(static), "--no-verify"]) == 0
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(static), "--format", "engine",
                 "--max-batch", "2"]) == 1
    assert "static batch of 1" in capsys.readouterr().err


@pytest.mark.skipif(module_installed("tensorrt"),
                    reason="tensorrt is installed; engine builds are tested in "
                           "test_runtime_tensorrt.py")
def test_engine_without_tensorrt_says_where_to_build(model_file, capsys):
    """--format engine here: clear message (build on the GPU machine, or use onnx)."""
    assert main(["export", "--checkpoint", str(model_file), "--format", "engine",
                 "--build-only"]) == 1
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "--format onnx" in err
