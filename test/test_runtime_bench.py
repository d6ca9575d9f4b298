"""`synergy bench`: real (tiny) runs of each available backend, JSON + markdown output."""
import json

import pytest
from test_runtime import make_model_file

from synergy_ros.bench.runtime_bench import MIN_SIDE, compute_ratios, cpu_instructions
from synergy_ros.cli import main
from synergy_ros.core.errors import SynergyError
from synergy_ros.core.sizes import parse_sizes


def test_parse_sizes():
    """WIDTHxHEIGHT lists; bad or tiny sizes are SynergyErrors."""
    assert parse_sizes("320x240, 640x480", MIN_SIDE) == [(320, 240), (640, 480)]
    with pytest.raises(SynergyError, match="WIDTHxHEIGHT"):
        parse_sizes("640by480", MIN_SIDE)
    with pytest.raises(SynergyError, match="too small"):
        parse_sizes("16x16", MIN_SIDE)


def test_bench_cli_writes_json_and_markdown(tmp_path, capsys):
    """A tiny run: every case measured (or skipped with a reason), ratios, machine info."""
    model = make_model_file(tmp_path / "tiny.pt")
    output = tmp_path / "results" / "runtime"
    assert main(["bench", "--model", str(model), "--backend", "all", "--sizes", "64x64",
                 "--iters", "2", "--warmup", "0", "--threads", "1",
                 "--output", str(output)]) == 0
    report = json.loads(output.with_suffix(".json").read_text())
    by_backend = {e["backend"]: e for e in report["results"]}
    for backend in ("torch", "onnxruntime"):
        entry = by_backend[backend]
        assert "error" not in entry, entry
        lat = entry["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] and entry["fps"] > 0
        assert entry["first_call_ms"] > 0 and entry["peak_rss_mb"] > 50
        assert 0 <= entry["prepost_share"] < 10
    assert "export_s" in by_backend["onnxruntime"] and "export_s" not in by_backend["torch"]
    if "skipped" in by_backend["tensorrt"]:
        assert "tensorrt" in by_backend["tensorrt"]["skipped"]
    assert report["ratios"]["onnxruntime_vs_torch_speedup"]["64x64, 1 thread"] > 0
    assert by_backend["torch"]["threads"] == 1 and by_backend["torch"]["cpu_ms"]["p50"] > 0
    assert report["machine"]["cpu"] and report["settings"]["iters"] == 2
    markdown = output.with_suffix(".md").read_text()
    assert "| torch | fp32 | 1 | 64x64 |" in markdown and "onnxruntime CPU vs torch CPU" in markdown
    assert "wrote" in capsys.readouterr().out


def test_compute_ratios_from_entries():
    """Speed-up = torch p50 / other p50 at the same size; shares per backend."""
    results = [
        {"backend": "torch", "precision": "fp32", "size": "640x480",
         "latency_ms": {"mean": 310.0, "p50": 300.0}, "prepost_share": 0.02,
         "describe": {"device": "cpu"}},
        {"backend": "onnxruntime", "precision": "fp32", "size": "640x480",
         "latency_ms": {"mean": 190.0, "p50": 200.0}, "prepost_share": 0.03},
        {"backend": "tensorrt", "precision": "fp16", "size": "640x480",
         "skipped": "tensorrt is not installed"}]
    ratios = compute_ratios(results)
    assert ratios["onnxruntime_vs_torch_speedup"] == {"640x480": 1.5}
    assert ratios["prepost_share"] == {"torch/fp32@640x480": 0.02,
                                       "onnxruntime/fp32@640x480": 0.03}
    for entry in results:
        entry["threads"] = 2
    assert compute_ratios(results)["onnxruntime_vs_torch_speedup"] == {"640x480, 2 threads": 1.5}
    assert ratios["tensorrt_fp16_vs_torch_fp32_speedup"] == {}


def test_bench_rejects_unknown_backend(capsys):
    """Unknown backends exit 1 with the valid choices."""
    assert main(["bench", "--backend", "tflite"]) == 1
    assert "torch, onnxruntime, tensorrt" in capsys.readouterr().err


def test_bench_model_writes_parameters_flops_and_latency(tmp_path, capsys):
    """`synergy bench model`: real counts of a tiny run, checked against the network."""
    from synergy_ros.network import build_network

    output = tmp_path / "results" / "model"
    assert main(["bench", "model", "--encoders", "resnet18", "--sizes", "64x64,128x128",
                 "--iters", "1", "--no-paper-upproj", "--output", str(output)]) == 0
    result = json.loads(output.with_suffix(".json").read_text())
    assert result["machine"] and result["settings"]["threads"] == 1
    (row,) = result["results"]
    network = build_network({"encoder": "resnet18", "num_classes": 40})
    assert row["params"]["total"] == sum(p.numel() for p in network.parameters())
    assert row["params"]["encoder"] < row["params"]["total"]
    small, large = row["sizes"]["64x64"], row["sizes"]["128x128"]
    # conv/matmul FLOPs grow with the pixel count: every feature map is 4x larger
    assert large["flops"] == pytest.approx(4 * small["flops"], rel=1e-6)
    assert small["flops"] > 2 * 3 * 64 * 7 * 7 * 32 * 32  # more than the stem conv alone
    assert small["iters"] == 1 and small["latency_ms_min"] > 0 and small["cpu_ms_median"] > 0
    markdown = output.with_suffix(".md").read_text()
    assert f"| resnet18 | bilinear | {row['params']['total'] / 1e6:.2f} |" in markdown
    assert "GFLOPs 128x128" in markdown and "Machine:" in markdown
    assert "wrote" in capsys.readouterr().out


def test_bench_model_rejects_unknown_encoders_and_small_sizes(tmp_path, capsys):
    output = str(tmp_path / "model")
    assert main(["bench", "model", "--encoders", "resnet19", "--output", output]) == 1
    assert "choose from resnet18" in capsys.readouterr().err
    assert main(["bench", "model", "--sizes", "16x16", "--output", output]) == 1
    assert "too small" in capsys.readouterr().err
    assert not (tmp_path / "model.json").exists()


def test_int8_ratio_and_cpu_instructions(tmp_path):
    """INT8/FP32 onnxruntime latency ratio per size; INT8 CPU flags read from cpuinfo (x86
    'flags', ARM 'Features')."""
    results = [
        {"backend": "onnxruntime", "precision": precision, "size": "320x240", "threads": 1,
         "latency_ms": {"mean": ms, "p50": ms}, "cpu_ms": {"p50": ms * 0.9}}
        for precision, ms in (("fp32", 100.0), ("int8", 45.0))]
    ratios = compute_ratios(results)
    assert ratios["onnxruntime_int8_vs_fp32_latency"] == {"320x240, 1 thread": 0.45}
    assert ratios["onnxruntime_int8_vs_fp32_latency_cpu"]["320x240, 1 thread"] == \
        pytest.approx(0.45)
    x86 = tmp_path / "cpuinfo"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert cpu_instructions(str(x86)) == ["avx2", "avx512f", "avx512_vnni"]
    arm = tmp_path / "arm"
    arm.write_text("Features\t: fp asimd asimddp\n")
    assert cpu_instructions(str(arm)) == ["asimddp"]
    assert cpu_instructions(str(tmp_path / "missing")) == []
