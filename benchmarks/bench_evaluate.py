"""Benchmark `synergy evaluate` model mode against the Predictor's own throughput.

Target (issue 8): evaluation throughput >= 0.9x the Predictor's throughput on the same images,
i.e. reading the bag, decoding, matching, scoring and writing per-frame rows cost less than
a tenth of inference. Writes ``benchmarks/results/evaluate_cpu.md`` and ``.json`` with the
machine they ran on.

    .venv/bin/python benchmarks/bench_evaluate.py                       # 320x240, 20 frames
    .venv/bin/python benchmarks/bench_evaluate.py --frames 5 --repeats 1 --out /tmp/b

Method: one synthetic bag (``write_synthetic_bag``: rgb8 image, camera_info, 32FC1 depth,
mono8 labels). Baseline: ``Predictor.predict`` over the bag's images already decoded in memory
(pure inference incl. the Predictor's pre/post-processing). Evaluation: the ``Evaluator`` in
model mode over the bag (with semantic GT and a per-frame CSV), timed from the first message
read to the last frame scored; its predictor is warmed up first, model loading is not timed.
Each repeat measures both back to back and the ratio of the two is reported per repeat
(median over repeats), so load from other processes on the machine affects both alike. One
table per ``--threads`` value: with all cores given to inference, reading and scoring compete
with it for CPU; with one core left free they overlap it.

Diagnostic column: the same evaluation with per-frame scoring skipped (reading, decoding,
matching and inference only), to show how much of a shortfall the bag reading alone causes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synergy_ros.core.sizes import size_arg  # noqa: E402 (needs ROOT on sys.path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=size_arg, default=(320, 240), help="WIDTHxHEIGHT")
    parser.add_argument("--models", nargs="+", default=["bundled", "untrained"],
                        help="model files; 'bundled' = models/synergy_demo_r18.pt (skipped when "
                             "absent), 'untrained' = a ResNet-18 synergy net running at --size "
                             "(speed does not depend on weights). Default: both")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1],
                        help="inference CPU threads; one table per value (default 2 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="directory for evaluate_cpu.md / evaluate_cpu.json")
    return parser.parse_args(argv)


def predictor_fps(predictor, images) -> float:
    """Frames per second of ``predictor.predict`` over ``images`` (decoded RGB arrays)."""
    start = time.perf_counter()
    for rgb in images:
        predictor.predict(rgb)
    return len(images) / (time.perf_counter() - start)


def evaluate_fps(options, warmup_rgb) -> tuple[float, dict]:
    """Frames per second of a model-mode evaluation (model load and warm-up not timed)."""
    from synergy_ros.evaluation.evaluator import Evaluator

    evaluator = Evaluator(options)
    evaluator.predictor.predict(warmup_rgb)
    result = evaluator.run()
    if result["frames"] != len(evaluator.scores.times_s) or not result["frames"]:
        raise RuntimeError(f"evaluation scored {result['frames']} frames: {result['status']}")
    return result["fps"], result


def unscored_fps(options, warmup_rgb, frames: int) -> float:
    """Diagnostic: frames per second of the evaluation with per-frame scoring skipped."""
    from synergy_ros.evaluation.evaluator import Evaluator

    class Unscored(Evaluator):
        def _score_frame(self, job, acc):  # _emit ignores None
            return None

    evaluator = Unscored(options)
    evaluator.predictor.predict(warmup_rgb)
    evaluator.run()
    return frames / evaluator.seconds


def measure(model, bag, images, backend: str, threads: int, repeats: int, tmp: Path) -> dict:
    """Repeated back-to-back Predictor / evaluate measurements with ``threads`` threads."""
    import torch

    from synergy_ros.evaluation.evaluator import EvaluateOptions
    from synergy_ros.runtime import load_predictor

    torch.set_num_threads(threads)
    predictor = load_predictor(model, backend=backend, device="cpu", num_threads=threads,
                               engine_cache_dir=tmp / "cache")
    predictor.predict(images[0])
    options = EvaluateOptions(
        bag=bag, gt_topic="/camera/depth_gt", image_topic="/camera/image_raw",
        semantic_gt_topic="/camera/semantic_gt", model=str(model), backend=backend,
        device="cpu", num_threads=threads, engine_cache_dir=tmp / "cache",
        csv_path=tmp / "frames.csv", progress=False)
    rows = []
    for index in range(repeats):
        base = predictor_fps(predictor, images)
        fps, result = evaluate_fps(options, images[0])
        frames = result["frames"]
        unscored = unscored_fps(options, images[0], len(images))
        rows.append({"predictor_fps": base, "evaluate_fps": fps, "ratio": fps / base,
                     "unscored_fps": unscored, "unscored_ratio": unscored / base,
                     "predict_ms_in_evaluate": 1000 * result["predict_seconds"] / frames,
                     "scoring_ms": 1000 * result["scoring_seconds"] / frames})
        print(f"{threads} threads, repeat {index + 1}: predictor {base:.2f} fps, evaluate "
              f"{fps:.2f} fps, ratio {fps / base:.3f}; unscored {unscored / base:.3f}",
              file=sys.stderr)
    from synergy_ros.evaluation.streaming import default_workers

    return {
        "threads": threads, "backend": predictor.backend_name, "repeats": rows,
        "workers": options.workers or default_workers(),
        "median_ratio": statistics.median(r["ratio"] for r in rows),
        "median_unscored_ratio": statistics.median(r["unscored_ratio"] for r in rows),
        "overhead_ms_per_frame": statistics.median(
            1000 / r["evaluate_fps"] - 1000 / r["predictor_fps"] for r in rows),
        "scoring_ms_per_frame": statistics.median(r["scoring_ms"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the result files."""
    from synergy_ros.bags.bagio import iter_messages
    from synergy_ros.core.atomic import atomic_write_text
    from synergy_ros.core.machine import machine_info, machine_summary
    from synergy_ros.data.synthetic import write_synthetic_bag
    from synergy_ros.demo_pipeline import build_untrained_model, find_bundled_model
    from synergy_ros.ros.conversions import image_to_rgb

    args = parse_args(argv)
    width, height = args.size
    load_before = os.getloadavg()
    cases = []
    with tempfile.TemporaryDirectory(prefix="bench_evaluate_") as tmp:
        tmp = Path(tmp)
        bag = tmp / "bag"
        write_synthetic_bag(bag, args.frames, height=height, width=width, seed=1)
        images = [image_to_rgb(m.message) for m in iter_messages(bag, ["/camera/image_raw"])]
        for name in args.models:
            if name == "bundled":
                model = find_bundled_model()
                if model is None:
                    print("bundled model not found: skipped", file=sys.stderr)
                    continue
                note = f"bundled {model.name}"
            elif name == "untrained":
                model = build_untrained_model(tmp / "untrained.pt", input_size=(height, width))
                note = f"ResNet-18 synergy net at {width}x{height} (untrained weights)"
            else:
                model, note = Path(name), name
            from synergy_ros.core.modelfile import load_model_file

            size = load_model_file(model)["meta"].input_size if model.suffix == ".pt" else None
            if size:
                note += f", model input {size[1]}x{size[0]}"
            for threads in args.threads:
                cases.append({"model": note, **measure(model, bag, images, args.backend,
                                                       threads, args.repeats, tmp)})
    summary = {
        "benchmark": "synergy evaluate (model mode) vs Predictor.predict",
        "machine": machine_info(), "machine_summary": machine_summary(),
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "image_size": {"width": width, "height": height}, "frames": args.frames,
        "cases": cases, "target_ratio": 0.9,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "evaluate_cpu.json", json.dumps(summary, indent=2) + "\n")
    lines = [
        "# `synergy evaluate` throughput (model mode) vs the Predictor", "",
        f"Machine: {summary['machine_summary']}; 1-min load average "
        f"{load_before[0]:.1f} before, {summary['load_average_1min']['after']:.1f} after "
        "(the 2 cores are shared with other jobs).", "",
        f"Synthetic bag of {args.frames} frames at {width}x{height} (rgb8 image, camera_info, "
        "32FC1 depth GT, mono8 semantic GT); evaluation with semantic scoring and a per-frame "
        "CSV, metrics at the ground truth's 320x240. Each repeat times the Predictor alone on "
        "the decoded images, then the evaluation, back to back; ratio = evaluate fps / "
        "Predictor fps (target >= 0.9).", "",
        "| model | threads | Predictor (fps, median) | evaluate (fps, median) | ratio (median) "
        "| ratios per repeat | scoring thread (ms/frame) | ratio without scoring (diagnostic) |",
        "|---|---:|---:|---:|---:|---|---:|---:|"]
    for case in cases:
        rows = case["repeats"]
        lines.append(
            f"| {case['model']} | {case['threads']} | "
            f"{statistics.median(r['predictor_fps'] for r in rows):.1f} | "
            f"{statistics.median(r['evaluate_fps'] for r in rows):.1f} | "
            f"**{case['median_ratio']:.2f}** | "
            + ", ".join(f"{r['ratio']:.2f}" for r in rows)
            + f" | {case['scoring_ms_per_frame']:.1f} | {case['median_unscored_ratio']:.2f} |")
    met = [case for case in cases if case["median_ratio"] >= 0.9]
    lines += ["", f"Target >= 0.9 met in {len(met)} of {len(cases)} cases. Scoring (ground-"
              "truth decoding, per-image metrics, the range table, the confusion matrix, CSV "
              f"rows) runs on {cases[0]['workers'] if cases else 1} thread(s) here "
              "(`--workers`, default CPU cores - 1) and overlaps the next inference; it costs "
              "throughput only where no core is free for it, i.e. when inference already uses "
              "every core (threads = cores): then its CPU time (scoring column) and the bag "
              "reading come straight off inference, compare them with 1000 / Predictor fps. "
              "The last column is the same evaluation with scoring skipped: where it is below "
              "0.9 too, reading and decoding the bag alone (which the Predictor baseline, fed "
              "decoded images from memory, does not do) already miss the target on this "
              "machine.", "",
              "Reproduce: `.venv/bin/python benchmarks/bench_evaluate.py`", ""]
    atomic_write_text(args.out / "evaluate_cpu.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
