"""The benchmark scripts whose result files the README quotes still run (a few frames each)."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.ros  # rclpy's serialize_message
def test_bench_navigation_writes_every_case_and_recovers_the_scale(tmp_path):
    pytest.importorskip("rclpy")
    assert _script("bench_navigation").main(["--iters", "10", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "navigation_cpu.json").read_text())
    for row in result["rows"]:
        assert set(row["build_window_ms"]) == {"base", "+obstacles", "+scale", "+scale/1",
                                               "+obstacles+scale", "+obstacles+ground+scale"}
        assert row["scale_status"] == "ok" and row["scale"] == pytest.approx(1.25, rel=0.01)
        assert row["obstacle_points"] > 0
    text = (tmp_path / "navigation_cpu.md").read_text()
    assert "| 128x96 | +obstacles+scale |" in text and "Machine:" in text


def test_cpu_batch_check_times_both_exports(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    assert _script("cpu_batch_check").main(["--max-batch", "2", "--iters", "2", "--out",
                                            str(tmp_path)]) == 0
    result = json.loads((tmp_path / "multi_camera_cpu_batch.json").read_text())
    assert {(row["export"], row["batch"]) for row in result["rows"]} == {
        ("static", 1), ("dynamic", 1), ("static", 2), ("dynamic", 2)}
    assert all(row["call_ms"] > 0 for row in result["rows"])


def test_bench_node_paired_overhead_and_render(tmp_path):
    """The paired overhead is the median of per-round differences with a bootstrap interval
    around it; --render re-writes the committed JSON's report without benchmarking."""
    bench = _script("bench_node")
    node = [30.0, 31.0, 29.0, 35.0, 30.5]
    relay = [5.0, 5.5, 4.5, 9.0, 5.0]
    model = [20.0, 20.5, 19.5, 21.0, 20.5]
    median, low, high = bench.paired_overhead(node, relay, model)
    assert median == 5.0 and low <= median <= high  # rounds: 5, 5, 5, 5, 5
    median, low, high = bench.paired_overhead([10, 20, 30], [0, 0, 0], [0, 0, 0])
    assert median == 20 and 10 <= low < high <= 30
    assert all(v != v for v in bench.paired_overhead([], [], []))  # NaN without rounds
    assert bench.main(["--render", str(ROOT / "benchmarks" / "results" / "node_cpu.json"),
                       "--out", str(tmp_path)]) == 0
    text = (tmp_path / "node_cpu.md").read_text()
    assert "| paired (ms, 90 % interval) |" in text and "| demo | 320x240 | 128x96" in text
    (tmp_path / "node_cpu.md").write_text("old table\n\n## Reading (by hand)\n\nkept\n")
    assert bench.main(["--render", str(ROOT / "benchmarks" / "results" / "node_cpu.json"),
                       "--out", str(tmp_path)]) == 0
    text = (tmp_path / "node_cpu.md").read_text()
    assert "old table" not in text and text.endswith("## Reading (by hand)\n\nkept\n")
    assert "| paired (ms, 90 % interval) |" in text
