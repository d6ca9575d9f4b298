"""Benchmark training throughput per backbone and how long each step waits for data.

Runs the real trainer (``synergy_ros.learning.trainer.Trainer``: DataLoader with worker processes,
synthetic scenes rendered on the fly, augmentation, forward, loss, backward, optimizer) for a
few steps per backbone and reads its per-step log: ``data_s`` is the time the training loop
spent blocked in ``next(loader)``, ``step_s`` the rest of the step. Writes
``benchmarks/results/data_cpu.md`` and ``.json`` with the machine they ran on.

    .venv/bin/python benchmarks/bench_data.py                        # 320x240, 2 workers
    .venv/bin/python benchmarks/bench_data.py --encoders resnet18 --steps 4 --out /tmp/b

Target (issue 5): data waiting <= 10 % of step time with 2 workers at 320x240 on CPU.
The first ``--warmup`` steps (worker start-up, first allocations) are not counted.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from synergy_ros.core.sizes import size_arg  # noqa: E402 - after the sys.path set-up

DEFAULT_ENCODERS = ("resnet18", "resnet34", "resnet50")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=list(DEFAULT_ENCODERS))
    parser.add_argument("--size", type=size_arg, default="320x240",
                        help="WIDTHxHEIGHT of training images")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--compare-workers", type=int, nargs="*", default=[0],
                        help="also time the first encoder with these worker counts "
                             "(default 0: loading in the training process, for comparison)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per backbone")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of the training process (0: torch default)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="directory for data_cpu.md / data_cpu.json")
    return parser.parse_args(argv)


def measure(encoder: str, workers: int, args: argparse.Namespace, workdir: Path) -> dict:
    """Train ``warmup + steps`` steps with ``encoder``; return timing statistics."""
    from synergy_ros.learning.config import load_config
    from synergy_ros.learning.trainer import Trainer

    width, height = args.size
    total = args.warmup + args.steps
    config = load_config(ROOT / "config" / "train_synthetic_demo.yaml", [
        f"model.encoder={encoder}", f"data.input_size=[{height}, {width}]",
        f"data.batch_size={args.batch_size}", f"data.num_workers={workers}",
        f"data.train=[{{type: synthetic, num_samples: {total * args.batch_size}}}]",
        "train.epochs=1", "val.every_epochs=0", "train.progress=false",
        f"threads={args.threads}", "device=cpu"])
    output = workdir / f"{encoder}_{workers}"
    started = time.perf_counter()
    Trainer(config, output).fit()
    wall = time.perf_counter() - started
    with open(output / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[args.warmup:]
    data_s = sum(float(r["data_s"]) for r in rows)
    step_s = sum(float(r["step_s"]) for r in rows)
    return {"encoder": encoder, "workers": workers, "steps": len(rows),
            "batch_size": args.batch_size,
            "data_wait_fraction": data_s / (data_s + step_s),
            "data_wait_s_per_step": data_s / len(rows),
            "compute_s_per_step": step_s / len(rows),
            "steps_per_s": len(rows) / (data_s + step_s),
            "images_per_s": len(rows) * args.batch_size / (data_s + step_s),
            "wall_s_including_setup": wall}


def to_markdown(result: dict) -> str:
    """The result table as markdown."""
    setup = result["setup"]
    lines = [
        "# Training data pipeline and throughput (CPU)",
        "",
        f"Machine: {result['machine']}  ",
        f"Date: {result['date']}  ",
        f"Setup: synthetic scenes rendered on the fly at {setup['size']} (W x H), "
        f"batch {setup['batch_size']}, {setup['workers']} DataLoader workers unless the "
        f"table says otherwise, full training "
        f"step (augmentation, forward, full loss, backward, AdamW), "
        f"{setup['steps']} timed steps after {setup['warmup']} warm-up steps, torch threads: "
        f"{setup['threads'] or 'default'}.  ",
        f"Command: `{result['command']}`",
        "",
        "| Backbone | workers | waiting for data | data wait / step | compute / step | it/s "
        "| images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['encoder']} | {row['workers']} | "
                     f"{100 * row['data_wait_fraction']:.1f} % | "
                     f"{1000 * row['data_wait_s_per_step']:.0f} ms | "
                     f"{row['compute_s_per_step']:.2f} s | {row['steps_per_s']:.3f} | "
                     f"{row['images_per_s']:.2f} |")
    lines += ["", "Target (issue 5): waiting for data <= 10 % of the step time with 2 workers "
                  "at 320x240. The machine is shared with other jobs, so absolute speeds vary "
                  "between runs; the fraction is the figure of merit.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the result files."""
    import torch

    from synergy_ros.core.atomic import atomic_write_text
    from synergy_ros.core.machine import machine_info, machine_summary

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_data_") as workdir:
        runs = [(encoder, args.workers) for encoder in args.encoders]
        runs += [(args.encoders[0], workers) for workers in args.compare_workers
                 if workers != args.workers]
        for encoder, workers in runs:
            row = measure(encoder, workers, args, Path(workdir))
            print(f"{encoder}, {workers} workers: {100 * row['data_wait_fraction']:.1f} % "
                  f"waiting for data, {row['steps_per_s']:.3f} it/s", flush=True)
            rows.append(row)
    result = {"machine": machine_summary(), "machine_info": machine_info(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": "python benchmarks/bench_data.py " + " ".join(sys.argv[1:]
                                                                       if argv is None
                                                                       else argv),
              "setup": {"size": f"{args.size[0]}x{args.size[1]}", "batch_size": args.batch_size,
                        "workers": args.workers, "steps": args.steps, "warmup": args.warmup,
                        "threads": args.threads},
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "data_cpu.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "data_cpu.md", to_markdown(result))
    print(f"wrote {args.out / 'data_cpu.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
