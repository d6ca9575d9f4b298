"""Model benchmark (`synergy bench model`): parameters, FLOPs and CPU latency per backbone.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per
multiply-accumulate; convolutions and matmuls only, so BN/ReLU/resize are not included).
Latency: batch 1, fp32, ``torch.no_grad``, eval mode, eager torch, after one warm-up run;
min and median wall time and median process CPU time of ``iters`` runs. Untrained weights
(speed does not depend on their values). Results name the machine (``synergy_ros.core.machine``)
and its load average before and after.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from typing import Iterable, Sequence

from synergy_ros.core.machine import machine_info, machine_summary
from synergy_ros.network import build_network
from synergy_ros.network.config import ENCODERS as DEFAULT_ENCODERS

DEFAULT_SIZES = ((320, 240), (640, 480))  # (width, height) pixels, as cameras are quoted


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


def run_model_benchmark(encoders: Iterable[str] = DEFAULT_ENCODERS,
                        sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES, iters: int = 3,
                        threads: int = 1, num_classes: int = 40,
                        paper_upproj: bool = True) -> dict:
    """Measure each encoder (bilinear up-convs) and, with ``paper_upproj``, ResNet-50 with
    Laina up-projections at each (width, height) size; returns the JSON-able result."""
    import torch
    from tqdm import tqdm

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    models = [{"encoder": e, "upconv": "bilinear"} for e in encoders]
    if paper_upproj:
        models.append({"encoder": "resnet50", "upconv": "upproj"})
    rows = []
    load_before = [round(v, 2) for v in os.getloadavg()]
    progress = tqdm(total=len(models) * len(sizes), desc="bench model", unit="run")
    try:
        for spec in models:
            model = build_network({**spec, "num_classes": num_classes}).eval()
            row = {"encoder": spec["encoder"], "upconv": spec["upconv"], "sharing": "lateral",
                   "params": count_parameters(model), "sizes": {}}
            for width, height in sizes:
                progress.set_postfix_str(f"{spec['encoder']}/{spec['upconv']} {width}x{height}")
                times, cpu_times = time_forward(model, width, height, iters)
                flops = count_flops(model, width, height)
                row["sizes"][f"{width}x{height}"] = {
                    "flops": flops, "gflops": round(flops / 1e9, 2),
                    "latency_ms_median": round(1e3 * statistics.median(times), 1),
                    "latency_ms_min": round(1e3 * min(times), 1),
                    "cpu_ms_median": round(1e3 * statistics.median(cpu_times), 1),
                    "iters": len(times),
                }
                progress.update()
            rows.append(row)
            del model
    finally:
        progress.close()
        torch.set_num_threads(previous_threads)
    return {"benchmark": "synergy_ros model CPU", "machine": machine_info(),
            "settings": {"threads": threads, "iters": iters, "batch": 1,
                         "dtype": "float32", "num_classes": num_classes,
                         "sharing": "lateral", "framework": f"torch {torch.__version__} eager",
                         "load_average_1_5_15min_before": load_before,
                         "load_average_1_5_15min_after": [round(v, 2) for v in os.getloadavg()]},
            "results": rows}


def to_markdown(result: dict) -> str:
    """Render a ``run_model_benchmark`` result as the committed markdown file."""

    settings = result["settings"]
    sizes = list(result["results"][0]["sizes"]) if result["results"] else []
    header = "| encoder | up-conv | params (M) | " + " | ".join(
        f"GFLOPs {s} | wall ms {s} min / median | CPU ms {s}" for s in sizes) + " |"
    lines = ["# Synergy network: size and CPU latency", "",
             f"Machine: {machine_summary(result['machine'])}, "
             f"{settings['threads']} torch threads; 1-min load average "
             f"{settings['load_average_1_5_15min_before'][0]} before, "
             f"{settings['load_average_1_5_15min_after'][0]} after.",
             f"Settings: {json.dumps(settings)}.", "",
             "Latency: min and median of the timed runs (batch 1, fp32, eager torch, after a "
             "warm-up). Other jobs on the machine slow the median more than the minimum, so "
             "with a load average above the core count the minimum is the better estimate. "
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
              "depth_sharing | semantic_sharing | semantic_head | total |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["results"]:
        p = row["params"]
        keys = ("encoder", "depth", "semantic", "sharing", "depth_sharing", "semantic_sharing",
                "semantic_head", "total")
        lines.append(f"| {row['encoder']} | {row['upconv']} | "
                     + " | ".join(f"{p.get(k, 0):,}" for k in keys) + " |")
    lines += ["", "The supplementary (Table 3) gives the layer layout of the ResNet-50 model "
              "but no parameter count; the counts above follow Table 3's channels (conv2 "
              "2048->1024, up-convs 1024->512->256->128->64, heads 64->1 and 64->40). The "
              "ResNet-50 encoder alone is 23.51 M (torchvision's 25.56 M minus the 2.05 M fc).",
              "", "Reproduce: `synergy bench model` (see `synergy bench --help`).", ""]
    return "\n".join(lines)
