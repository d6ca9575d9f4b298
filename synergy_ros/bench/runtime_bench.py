"""Runtime benchmark: latency, FPS and memory of each backend at each image size.

Every (backend, precision, size) case runs in a fresh Python process (``python -m
synergy_ros.bench.runtime_bench --worker``) so its peak RSS and first-call latency are its own.
ONNX exports
(for onnxruntime / TensorRT) are made by the parent beforehand and reported as ``export_s``;
the worker reports ``load_s`` (session creation, engine build or cached engine load), the
first predict call, then ``iters`` timed predict calls after ``warmup`` untimed ones.

The camera image has the benchmark size and the model runs at that size, so preprocessing is
normalisation + layout and postprocessing is argmax-label conversion + copies (no resizing);
``prepost_share`` = (preprocess + postprocess) / inference time.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from synergy_ros.core.atomic import atomic_write_text
from synergy_ros.core.machine import machine_info, machine_summary
from synergy_ros.core.modelfile import load_model_meta
from synergy_ros.data.synthetic import SPLIT_SEED_OFFSETS, render_scene
from synergy_ros.runtime import load_predictor
from synergy_ros.runtime.device import module_installed
from synergy_ros.runtime.exporter import (ExportOptions, cached_int8_onnx, cached_onnx,
                                          sample_image)
from synergy_ros.runtime.prediction import RawOutput
from synergy_ros.runtime.preprocess import Postprocessor, Preprocessor
from synergy_ros.runtime.quantizer import Int8Options, Int8Thresholds
from synergy_ros.runtime.tensorrt_backend import engine_for_onnx

# smallest benchmark image side (pixels): the encoder downsamples by 32
MIN_SIDE = 32


#: Synthetic frames rendered for int8 calibration when no --calib-images is given.
BENCH_CALIB_FRAMES = 24
#: CPU flags (from /proc/cpuinfo) that decide the INT8 speed-up on x86 / ARM.
INT8_CPU_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8",
                  "asimddp", "i8mm")


def cpu_instructions(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """Which of :data:`INT8_CPU_FLAGS` this CPU has (empty when /proc/cpuinfo is missing)."""
    try:
        text = Path(cpuinfo).read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            flags.update(value.split())
    return [flag for flag in INT8_CPU_FLAGS if flag in flags]


def int8_bench_options(calib_images: str | os.PathLike) -> Int8Options:
    """Quantization for latency cases: the export's scheme, all layers quantized (no
    sensitivity search, which would take minutes per ResNet-50 size; the demo model's
    ``auto`` choice keeps none) and verification recorded, not enforced (untrained weights)."""
    return Int8Options(calib_images=calib_images, max_images=BENCH_CALIB_FRAMES,
                       fp32_layers="none", thresholds=Int8Thresholds(math.inf, 0.0, 0.0),
                       progress=False)


def _synthetic_frames(cache_dir: str | os.PathLike, sizes: Sequence[tuple]) -> Path:
    """:data:`BENCH_CALIB_FRAMES` synthetic indoor frames at the largest size, in cache_dir."""
    import cv2

    width, height = max(sizes, key=lambda size: size[0] * size[1])
    folder = Path(cache_dir) / f"calib_synthetic_{width}x{height}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(BENCH_CALIB_FRAMES):
        path = folder / f"frame{i:03d}.png"
        if not path.is_file():
            rgb = render_scene(SPLIT_SEED_OFFSETS["val"] + 7000 + i, height, width).rgb
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


def _stats(values_ms: Sequence[float]) -> dict:
    arr = np.asarray(values_ms, dtype=np.float64)
    return {"mean": float(arr.mean()), "p50": float(np.percentile(arr, 50)),
            "p95": float(np.percentile(arr, 95)), "min": float(arr.min())}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``VmHWM``; unlike ``ru_maxrss`` it is not
    inherited from the parent across fork + exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(spec: dict) -> dict:
    """Benchmark one case in this process; ``spec`` holds model, backend, precision, width,
    height, iters, warmup, threads, cache_dir, device. Returns the measurements."""

    width, height = spec["width"], spec["height"]
    result: dict = {}
    start = time.perf_counter()
    if spec["backend"] == "tensorrt":
        _, _, built = engine_for_onnx(spec["model"], spec["cache_dir"], spec["precision"],
                                      spec["device"])
        result["engine"] = "built" if built else "cached"
    predictor = load_predictor(spec["model"], backend=spec["backend"], device=spec["device"],
                               precision=spec["precision"], engine_cache_dir=spec["cache_dir"],
                               input_size=(height, width), num_threads=spec["threads"])
    result["load_s"] = time.perf_counter() - start
    image = sample_image(height, width, seed=3)
    start = time.perf_counter()
    predictor.predict(image)
    result["first_call_ms"] = (time.perf_counter() - start) * 1e3
    for _ in range(spec["warmup"]):
        predictor.predict(image)
    latency, cpu, pre, infer, post = [], [], [], [], []
    for _ in range(spec["iters"]):
        start, cpu_start = time.perf_counter(), time.process_time()
        prediction = predictor.predict(image)
        latency.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - cpu_start) * 1e3)
        pre.append(prediction.timings_ms["preprocess"])
        infer.append(prediction.timings_ms["inference"])
        post.append(prediction.timings_ms["postprocess"])
    result.update(latency_ms=_stats(latency), cpu_ms=_stats(cpu), inference_ms=_stats(infer),
                  preprocess_ms=float(np.mean(pre)), postprocess_ms=float(np.mean(post)))
    result["fps"] = 1000.0 / result["latency_ms"]["mean"]
    result["prepost_share"] = ((result["preprocess_ms"] + result["postprocess_ms"])
                               / result["inference_ms"]["mean"])
    result["peak_rss_mb"] = peak_rss_mb()
    result["peak_cuda_mb"] = None
    if spec["device"].startswith("cuda") and "torch" in sys.modules:
        import torch

        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20  # torch allocator
        free, total = torch.cuda.mem_get_info()  # device-wide: includes TensorRT/ORT arenas
        result["cuda_device_used_mb"] = (total - free) / 2**20
    result["describe"] = predictor.describe()
    return result


def measure_resize_path(camera_wh: tuple, model_wh: tuple, num_classes: int,
                        iters: int = 30) -> dict:
    """Mean ms of the shared pre/post-processing for a camera image of ``camera_wh`` run at a
    model size ``model_wh`` (resize down, normalise; depth/labels resized back up)."""

    (cam_w, cam_h), (model_w, model_h) = camera_wh, model_wh
    pre = Preprocessor((model_h, model_w), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    post = Postprocessor(num_classes, "input")
    image = sample_image(cam_h, cam_w, seed=4)
    rng = np.random.default_rng(0)
    raw = RawOutput(rng.uniform(0.5, 10, (1, 1, model_h, model_w)).astype(np.float32),
                    rng.integers(0, num_classes, (1, model_h, model_w)).astype(np.int32), None)
    pre_ms, post_ms = [], []
    for _ in range(iters):
        start = time.perf_counter()
        pre([image])
        middle = time.perf_counter()
        post(raw, [(cam_h, cam_w)])
        pre_ms.append((middle - start) * 1e3)
        post_ms.append((time.perf_counter() - middle) * 1e3)
    return {"camera": f"{cam_w}x{cam_h}", "model": f"{model_w}x{model_h}",
            "preprocess_ms": float(np.mean(pre_ms)), "postprocess_ms": float(np.mean(post_ms))}


def _run_isolated(spec: dict, timeout_s: float) -> dict:
    """Run :func:`run_case` in a fresh interpreter; returns its result or {'error': ...}."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]))
    proc = subprocess.run([sys.executable, "-m", "synergy_ros.bench.runtime_bench", "--worker",
                           json.dumps(spec)], capture_output=True, text=True, env=env,
                          timeout=timeout_s)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:300]}
    return json.loads(lines[-1])


def available_backends() -> dict[str, str | None]:
    """{backend: None if usable here else the reason it is not}."""

    reasons: dict[str, str | None] = {"torch": None, "onnxruntime": None, "tensorrt": None}
    if not module_installed("onnxruntime"):
        reasons["onnxruntime"] = "onnxruntime is not installed"
    if not module_installed("tensorrt"):  # tensorrt-stubs alone leave an empty namespace
        reasons["tensorrt"] = "tensorrt is not installed (no GPU figures from this machine)"
    else:
        import torch

        if not torch.cuda.is_available():
            reasons["tensorrt"] = "no CUDA GPU visible"
    return reasons


def run_benchmark(model: str | os.PathLike, backends: Sequence[str], sizes: Sequence[tuple],
                  precisions: Sequence[str] = ("fp32",), iters: int = 20, warmup: int = 3,
                  threads: Sequence[int] = (2,), device: str = "cpu", cache_dir: str | None = None,
                  timeout_s: float = 1800.0, model_note: str = "",
                  calib_images: str | os.PathLike | None = None) -> dict:
    """Run every (backend, precision, size, thread count) case; returns the results dict.

    ``threads`` lists CPU thread counts used for torch and onnxruntime alike (TensorRT cases
    run once, at the first count). ``int8`` cases run the model quantized on
    ``calib_images`` (default: :data:`BENCH_CALIB_FRAMES` synthetic indoor frames), see
    :func:`int8_bench_options`.
    """
    from tqdm import tqdm

    model = Path(model)
    meta = load_model_meta(model)
    cache_dir = cache_dir or tempfile.mkdtemp(prefix="synergy_bench_")
    reasons = available_backends()
    cases, results = [], []
    for backend in backends:
        for precision in precisions:
            for count in (threads[:1] if backend == "tensorrt" else threads):
                for width, height in sizes:
                    cases.append((backend, precision, count, width, height))
    for backend, precision, count, width, height in tqdm(cases, desc="bench", unit="case"):
        entry = {"backend": backend, "precision": precision, "size": f"{width}x{height}",
                 "threads": count}
        results.append(entry)
        if reasons.get(backend):
            entry["skipped"] = reasons[backend]
            continue
        if backend == "torch" and precision != "fp32" and device == "cpu":
            entry["skipped"] = "torch fp16 runs on CUDA only"
            continue
        if backend == "torch" and precision == "int8":
            entry["skipped"] = "int8 runs on onnxruntime / TensorRT (quantized ONNX)"
            continue
        model_for_case = str(model)
        if precision == "int8" and backend in ("onnxruntime", "tensorrt"):
            start = time.perf_counter()
            path, record, _ = cached_int8_onnx(
                model, cache_dir, ExportOptions(height, width),
                int8_bench_options(calib_images or _synthetic_frames(cache_dir, sizes)))
            model_for_case = str(path)
            entry["export_s"] = time.perf_counter() - start
            entry["int8"] = {k: record["int8"][k] for k in ("verification", "fp32_layers")}
        elif backend in ("onnxruntime", "tensorrt"):
            start = time.perf_counter()
            options = ExportOptions(height, width, fp16=(backend == "onnxruntime"
                                                         and precision == "fp16"))
            model_for_case = str(cached_onnx(model, cache_dir, options))
            entry["export_s"] = time.perf_counter() - start
        spec = {"model": model_for_case, "backend": backend, "precision": precision,
                "width": width, "height": height, "iters": iters, "warmup": warmup,
                "threads": count, "cache_dir": str(cache_dir),
                "device": "cuda" if backend == "tensorrt" else device}
        entry.update(_run_isolated(spec, timeout_s))
    resize_path = None
    if len(set(sizes)) > 1:
        by_area = sorted(set(sizes), key=lambda size: size[0] * size[1])
        camera, model_size = by_area[-1], by_area[0]
        resize_path = measure_resize_path(camera, model_size, meta.num_classes)
    return {"model": {"path": str(model), "encoder": meta.network.get("encoder"),
                      "num_classes": meta.num_classes, "note": model_note},
            "settings": {"iters": iters, "warmup": warmup, "threads": list(threads),
                         "device": device, "isolated_processes": True},
            "machine": machine_info(), "cpu_instructions": cpu_instructions(),
            "load_average": list(os.getloadavg()),
            "results": results, "resize_path": resize_path,
            "ratios": compute_ratios(results, resize_path)}


def _find(results: list, backend: str, precision: str, size: str,
          threads: int | None) -> dict | None:
    for entry in results:
        if (entry["backend"], entry["precision"], entry["size"]) == (backend, precision, size) \
                and threads in (None, entry.get("threads")) and "latency_ms" in entry:
            return entry
    return None


def _case_name(size: str, threads: int | None) -> str:
    return size if threads is None else f"{size}, {threads} thread{'s' * (threads != 1)}"


def compute_ratios(results: list, resize_path: dict | None = None) -> dict:
    """The targets as ratios measured in this run (missing cases are left out).

    Speed-ups compare median (p50) end-to-end latencies: on a shared machine the median is
    robust to bursts of other load, the mean is not. ``*_min`` compares the fastest runs
    (closest to an idle machine; torch's OpenMP pool degrades more than onnxruntime's under
    contention, so the two can differ a lot there). ``*_cpu`` compares process CPU time per
    call (p50), the figure least disturbed by other processes (at 1 thread it is the work
    done; with more threads it includes spinning).
    ``prepost_share``: pre+post / inference with camera size = model size;
    ``prepost_share_with_resize``: the ``resize_path`` pre+post (camera -> smaller model size
    and back) / each backend's inference time at that model size.
    """
    ratios: dict = {"onnxruntime_vs_torch_speedup": {}, "onnxruntime_vs_torch_speedup_min": {},
                    "onnxruntime_vs_torch_speedup_cpu": {},
                    "prepost_share": {},
                    "prepost_share_with_resize": {},
                    "tensorrt_fp16_vs_torch_fp32_speedup": {},
                    "onnxruntime_int8_vs_fp32_latency": {},
                    "onnxruntime_int8_vs_fp32_latency_cpu": {}}
    if resize_path:
        cost = resize_path["preprocess_ms"] + resize_path["postprocess_ms"]
        for entry in results:
            if entry["size"] == resize_path["model"] and "inference_ms" in entry:
                name = (f"{entry['backend']}/{entry['precision']}@"
                        f"{_case_name(entry['size'], entry.get('threads'))} model, "
                        f"{resize_path['camera']} camera")
                ratios["prepost_share_with_resize"][name] = cost / entry["inference_ms"]["mean"]
    keys = sorted({(e["size"], e.get("threads")) for e in results},
                  key=lambda k: (k[0], k[1] or 0))
    for size, count in keys:
        case = _case_name(size, count)
        torch32 = _find(results, "torch", "fp32", size, count)
        ort32 = _find(results, "onnxruntime", "fp32", size, count)
        trt16 = _find(results, "tensorrt", "fp16", size, None)
        if torch32 and ort32:
            ratios["onnxruntime_vs_torch_speedup"][case] = (torch32["latency_ms"]["p50"]
                                                            / ort32["latency_ms"]["p50"])
            if "min" in torch32["latency_ms"] and "min" in ort32["latency_ms"]:
                ratios["onnxruntime_vs_torch_speedup_min"][case] = (
                    torch32["latency_ms"]["min"] / ort32["latency_ms"]["min"])
            if "cpu_ms" in torch32 and "cpu_ms" in ort32:
                ratios["onnxruntime_vs_torch_speedup_cpu"][case] = (
                    torch32["cpu_ms"]["p50"] / ort32["cpu_ms"]["p50"])
        ort8 = _find(results, "onnxruntime", "int8", size, count)
        if ort32 and ort8:
            ratios["onnxruntime_int8_vs_fp32_latency"][case] = (ort8["latency_ms"]["p50"]
                                                                / ort32["latency_ms"]["p50"])
            ratios["onnxruntime_int8_vs_fp32_latency_cpu"][case] = (ort8["cpu_ms"]["p50"]
                                                                    / ort32["cpu_ms"]["p50"])
        if torch32 and trt16 and torch32.get("describe", {}).get("device", "").startswith("cuda"):
            ratios["tensorrt_fp16_vs_torch_fp32_speedup"][case] = (
                torch32["latency_ms"]["p50"] / trt16["latency_ms"]["p50"])
        for entry in results:
            if (entry["size"], entry.get("threads")) == (size, count) and "prepost_share" in entry:
                name = f"{entry['backend']}/{entry['precision']}@{case}"
                ratios["prepost_share"][name] = entry["prepost_share"]
    return ratios


def to_markdown(report: dict) -> str:
    """Markdown table + targets + machine for ``report`` from :func:`run_benchmark`."""

    model = report["model"]
    lines = [f"# Runtime benchmark: {model['encoder']} synergy net, {model['num_classes']} "
             "classes", "",
             f"Machine: {machine_summary(report['machine'])}; load average at the end "
             f"{', '.join(f'{v:.2f}' for v in report['load_average'])}; INT8-relevant CPU "
             f"instructions: {', '.join(report.get('cpu_instructions') or []) or 'none found'}.",
             f"Settings: {report['settings']['iters']} timed iterations after "
             f"{report['settings']['warmup']} warm-up ones, CPU threads "
             f"{report['settings']['threads']} (torch and onnxruntime alike), one fresh "
             "process per case. `cpu ms`: process CPU time per call (less sensitive to other "
             "load than wall time; includes thread-pool spinning).",
             f"Model: `{Path(model['path']).name}` {model['note']}", "",
             "| backend | precision | threads | size (WxH) | mean ms | min ms | p50 ms | p95 ms | "
             "cpu ms p50 | FPS | "
             "first call ms | load s | export s | pre ms | post ms | pre+post share | "
             "peak RSS MB | peak CUDA MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["results"]:
        head = f"| {e['backend']} | {e['precision']} | {e.get('threads', '-')} | {e['size']} |"
        if "latency_ms" not in e:
            lines.append(f"{head} {e.get('skipped') or 'error: ' + e.get('error', '?')} |"
                         + " |" * 13)
            continue
        lat = e["latency_ms"]
        cuda = f"{e['peak_cuda_mb']:.0f}" if e.get("peak_cuda_mb") is not None else "-"
        export = f"{e['export_s']:.1f}" if "export_s" in e else "-"
        lines.append(f"{head} {lat['mean']:.1f} | {lat['min']:.1f} | {lat['p50']:.1f} | "
                     f"{lat['p95']:.1f} | {e['cpu_ms']['p50']:.1f} | "
                     f"{e['fps']:.2f} | {e['first_call_ms']:.0f} | {e['load_s']:.2f} | "
                     f"{export} | {e['preprocess_ms']:.2f} | {e['postprocess_ms']:.2f} | "
                     f"{e['prepost_share']:.2%} | {e['peak_rss_mb']:.0f} | {cuda} |")
    ratios = report["ratios"]
    lines += ["", "## Targets (ratios from this run; speed-ups compare p50 latencies)", ""]
    for size, value in ratios["onnxruntime_vs_torch_speedup"].items():
        verdict = "met" if value >= 1.0 else "NOT met"
        best = ratios.get("onnxruntime_vs_torch_speedup_min", {}).get(size)
        cpu = ratios.get("onnxruntime_vs_torch_speedup_cpu", {}).get(size)
        best_text = f"; fastest runs: {best:.2f}x" if best is not None else ""
        best_text += f"; CPU time per call: {cpu:.2f}x" if cpu is not None else ""
        lines.append(f"- onnxruntime CPU vs torch CPU at {size}: {value:.2f}x p50 (target >= "
                     f"1.0x: {verdict}){best_text}")
    for name, share in ratios["prepost_share"].items():
        if "@640x480" in name:
            verdict = "met" if share <= 0.05 else "NOT met"
            lines.append(f"- pre+post processing share, {name}: {share:.2%} (target <= 5%: "
                         f"{verdict})")
    resize = report.get("resize_path")
    if resize:
        lines.append(f"- pre+post processing with resizing ({resize['camera']} camera image, "
                     f"model at {resize['model']}): {resize['preprocess_ms']:.2f} + "
                     f"{resize['postprocess_ms']:.2f} ms")
        for name, share in ratios["prepost_share_with_resize"].items():
            verdict = "met" if share <= 0.05 else "NOT met"
            lines.append(f"  - share of {name}: {share:.2%} (target <= 5%: {verdict})")
    for size, value in ratios.get("onnxruntime_int8_vs_fp32_latency", {}).items():
        verdict = "met" if value <= 0.6 else "NOT met"
        cpu = ratios["onnxruntime_int8_vs_fp32_latency_cpu"][size]
        lines.append(f"- onnxruntime INT8 vs FP32 latency at {size}: {value:.2f}x p50 (target "
                     f"<= 0.6x: {verdict}); CPU time per call: {cpu:.2f}x")
    int8_rows = [e for e in report["results"] if "int8" in e]
    for e in int8_rows:
        lines.append(f"- INT8 model at {e['size']} vs FP32 on held-out calibration frames: "
                     f"{e['int8']['verification']}, FP32 layers: "
                     f"{e['int8']['fp32_layers'] or 'none'}")
    if ratios["tensorrt_fp16_vs_torch_fp32_speedup"]:
        for size, value in ratios["tensorrt_fp16_vs_torch_fp32_speedup"].items():
            verdict = "met" if value >= 3.0 else "NOT met"
            lines.append(f"- TensorRT FP16 vs torch FP32 on the GPU at {size}: {value:.2f}x "
                         f"(target >= 3x: {verdict})")
    else:
        lines.append("- TensorRT FP16 vs torch FP32 (GPU): not measured - no TensorRT/GPU on "
                     "this machine.")
    return "\n".join(lines) + "\n"


def write_result_files(result: dict, markdown: str, output: str | os.PathLike
                       ) -> tuple[Path, Path]:
    """Write ``result`` to ``<output>.json`` and ``markdown`` to ``<output>.md`` atomically
    (folders created); returns both paths."""

    base = Path(output)
    base.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    atomic_write_text(json_path, json.dumps(result, indent=2, sort_keys=True) + "\n")
    atomic_write_text(md_path, markdown)
    return json_path, md_path


def _worker_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="internal: one benchmark case")
    parser.add_argument("--worker", required=True, help="JSON case spec")
    args = parser.parse_args(argv)
    print(json.dumps(run_case(json.loads(args.worker))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main())
