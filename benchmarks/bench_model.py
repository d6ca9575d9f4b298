"""Benchmark the synergy network per backbone: parameters, FLOPs, CPU latency (torch, eager).

Writes ``benchmarks/results/model_cpu.md`` and ``.json`` with the machine they ran on.

    .venv/bin/python benchmarks/bench_model.py                    # all backbones, 2 sizes
    .venv/bin/python benchmarks/bench_model.py --encoders resnet18 --iters 2 --out /tmp/b

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per
multiply-accumulate; convolutions and matmuls only, so BN/ReLU/resize are not included).
Latency: batch 1, fp32, ``torch.no_grad``, eval mode, after one warm-up run; min and median
wall time and median process CPU time of ``--iters`` runs. Untrained weights (speed does
not depend on their values).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synergy_ros.sizes import parse_size, size_arg  # noqa: E402 (needs ROOT on sys.path)

DEFAULT_SIZES = ("320x240", "640x480")  # width x height, as cameras are quoted
DEFAULT_ENCODERS = ("resnet18", "resnet34", "resnet50", "resnet101")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=list(DEFAULT_ENCODERS))
    parser.add_argument("--sizes", nargs="+", type=size_arg,
                        default=[parse_size(s) for s in DEFAULT_SIZES], help="WIDTHxHEIGHT")
    parser.add_argument("--iters", type=int, default=3, help="timed runs per size")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine OpenMP "
                             "threads spin-wait when preempted, measured here as 5-10x "
                             "slower runs with 2 threads, while 1 thread stays stable)")
    parser.add_argument("--num-classes", type=int, default=40)
    parser.add_argument("--paper-upproj", action="store_true", default=True,
                        help="also measure ResNet-50 with Laina up-projections (default on)")
    parser.add_argument("--no-paper-upproj", dest="paper_upproj", action="store_false")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="directory for model_cpu.md / model_cpu.json")
    return parser.parse_args(argv)


def count_parameters(model) -> dict[str, int]:
    """Parameter counts per ``parameter_groups()`` group and in total."""
    groups = {name: sum(p.numel() for p in params)
              for name, params in model.parameter_groups().items()}
    groups["total"] = sum(p.numel() for p in model.parameters())
    return groups


def count_flops(model, width: int, height: int) -> int:
    """Forward FLOPs of one (1, 3, height, width) image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, height, width))
    return int(counter.get_total_flops())


def time_forward(model, width: int, height: int, iters: int) -> tuple[list[float], list[float]]:
    """(wall seconds, process CPU seconds) per forward pass, after one warm-up run.

    CPU seconds (all threads of this process) barely change when other jobs share the cores,
    wall seconds do: on a busy machine CPU time / threads is the better latency estimate.
    """
    import torch

    image = torch.randn(1, 3, height, width)
    wall, cpu = [], []
    with torch.no_grad():
        model(image)
        for _ in range(iters):
            start, start_cpu = time.perf_counter(), time.process_time()
            model(image)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def run(args: argparse.Namespace) -> dict:
    """Measure every requested model and size; return the JSON-able result."""
    import torch
    from tqdm import tqdm

    from synergy_ros.machine import machine_info
    from synergy_ros.network import build_network

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = [{"encoder": e, "upconv": "bilinear"} for e in args.encoders]
    if args.paper_upproj:
        models.append({"encoder": "resnet50", "upconv": "upproj"})
    rows = []
    load_before = [round(v, 2) for v in os.getloadavg()]
    progress = tqdm(total=len(models) * len(args.sizes), desc="bench model", unit="run")
    for spec in models:
        model = build_network({**spec, "num_classes": args.num_classes}).eval()
        row = {"encoder": spec["encoder"], "upconv": spec["upconv"], "sharing": "lateral",
               "params": count_parameters(model), "sizes": {}}
        for width, height in args.sizes:
            progress.set_postfix_str(f"{spec['encoder']}/{spec['upconv']} {width}x{height}")
            times, cpu_times = time_forward(model, width, height, args.iters)
            row["sizes"][f"{width}x{height}"] = {
                "gflops": round(count_flops(model, width, height) / 1e9, 2),
                "latency_ms_median": round(1e3 * statistics.median(times), 1),
                "latency_ms_min": round(1e3 * min(times), 1),
                "cpu_ms_median": round(1e3 * statistics.median(cpu_times), 1),
                "iters": len(times),
            }
            progress.update()
        rows.append(row)
        del model
    progress.close()
    return {"benchmark": "synergy_ros model CPU", "machine": machine_info(),
            "settings": {"threads": args.threads, "iters": args.iters, "batch": 1,
                         "dtype": "float32", "num_classes": args.num_classes,
                         "sharing": "lateral", "framework": f"torch {torch.__version__} eager",
                         "load_average_1_5_15min_before": load_before,
                         "load_average_1_5_15min_after": [round(v, 2) for v in os.getloadavg()]},
            "results": rows}


def to_markdown(result: dict) -> str:
    """Render the result as the committed markdown file."""
    from synergy_ros.machine import machine_summary

    sizes = list(result["results"][0]["sizes"]) if result["results"] else []
    header = "| encoder | up-conv | params (M) | " + " | ".join(
        f"GFLOPs {s} | wall ms {s} min / median | CPU ms {s}" for s in sizes) + " |"
    lines = ["# Synergy network: size and CPU latency", "",
             f"Machine: {machine_summary(result['machine'])}, "
             f"{result['settings']['threads']} torch threads.",
             f"Settings: {json.dumps(result['settings'])}.", "",
             "Latency: min and median of the timed runs (batch 1, fp32, eager torch, after a "
             "warm-up). The machine's 2 cores were shared with other jobs while this ran, so "
             "the minimum is the better estimate and the median shows the contention. "
             "CPU ms is the median process CPU time (all threads) per frame, which contention "
             "barely changes: with T threads an idle machine needs about CPU ms / T wall ms. "
             "FLOPs count conv "
             "and matmul only (FlopCounterMode, 2 per multiply-accumulate).", "",
             header, "|" + "---|" * (3 + 3 * len(sizes))]
    for row in result["results"]:
        cells = [row["encoder"], row["upconv"], f"{row['params']['total'] / 1e6:.2f}"]
        for size in sizes:
            timing = row["sizes"][size]
            cells += [f"{timing['gflops']:.1f}",
                      f"{timing['latency_ms_min']:.0f} / {timing['latency_ms_median']:.0f}",
                      f"{timing['cpu_ms_median']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Parameters per group", "",
              "| encoder | up-conv | encoder+conv2 | depth | semantic | sharing | "
              "semantic_head | total |", "|---|---|---|---|---|---|---|---|"]
    for row in result["results"]:
        p = row["params"]
        keys = ("encoder", "depth", "semantic", "sharing", "semantic_head", "total")
        lines.append(f"| {row['encoder']} | {row['upconv']} | "
                     + " | ".join(f"{p[k]:,}" for k in keys) + " |")
    lines += ["", "The supplementary (Table 3) gives the layer layout of the ResNet-50 model "
              "but no parameter count; the counts above follow Table 3's channels (conv2 "
              "2048->1024, up-convs 1024->512->256->128->64, heads 64->1 and 64->40). The "
              "ResNet-50 encoder alone is 23.51 M (torchvision's 25.56 M minus the 2.05 M fc).",
              ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the result files atomically."""
    from synergy_ros.atomic import atomic_write_text

    args = parse_args(argv)
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "model_cpu.json", json.dumps(result, indent=2) + "\n")
    markdown = to_markdown(result)
    atomic_write_text(args.out / "model_cpu.md", markdown)
    print(markdown)
    print(f"wrote {args.out / 'model_cpu.md'} and {args.out / 'model_cpu.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
