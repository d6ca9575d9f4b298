"""Small synthetic studies of issue 17: depth head (sigmoid vs softplus) and sharing structures.

Each run is ``synergy train`` (the real trainer) on procedurally generated indoor scenes with
``config/train_synthetic_ablation.yaml`` shrunk to a CPU budget (ResNet-18, 48x64 pixels, 480
training scenes, batch 8, 2 epochs = 120 steps (variants: 1 epoch), 60 validation scenes), one
run per setting and
seed, each in its own process. Metrics are the last validation of each run (the depth-range
table of ``val_report.md`` and ``epochs.csv``), averaged over seeds (mean +- sample std).

    .venv/bin/python benchmarks/paper_study.py heads              # 2 heads x 3 seeds
    .venv/bin/python benchmarks/paper_study.py variants           # Table 1 layout, 3 seeds
    .venv/bin/python benchmarks/paper_study.py heads --seeds 0 1 2 3 --jobs 2

Writes ``benchmarks/results/paper_<study>.md`` and ``.json``. These are synthetic-data
results at a tiny budget, not NYUv2 (docs/experiments.md).
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "train_synthetic_ablation.yaml"
BUDGET = ["data.input_size=[48, 64]", "data.batch_size=8", "data.num_workers=1",
          "data.train=[{type: synthetic, num_samples: 480, kind: indoor}]",
          "data.val={type: synthetic, split: val, num_samples: 60, kind: indoor}",
          "train.epochs=2", "train.progress=false", "threads=1"]
#: Per-study additions to BUDGET: the variant study has 8 settings, so 1 epoch (60 steps;
#: the fine-tuned schedule spends 30 on each task) and a 5-step warm-up per stage.
STUDY_BUDGET = {"heads": [], "variants": ["train.epochs=1", "schedule.warmup_steps=5"]}
DEPTH_ONLY = "loss={depth_attention: 1.0, depth_gradient: 1.0}"
SEMANTIC_ONLY = "loss={focal: 1.0}"
#: study -> [(label, overrides)]; the variants follow Table 1's columns.
STUDIES = {
    "heads": [("softplus", ["model.depth_head=softplus"]),
              ("sigmoid", ["model.depth_head=sigmoid"])],
    "variants": [
        ("single_depth", ["model.sharing=separate", DEPTH_ONLY]),
        ("single_semantic", ["model.sharing=separate", SEMANTIC_ONLY]),
        ("finetuned_semantic_to_depth", ["model.sharing=separate", "train.mode=sequential",
                                         "train.task_order=[semantic, depth]"]),
        ("finetuned_depth_to_semantic", ["model.sharing=separate", "train.mode=sequential",
                                         "train.task_order=[depth, semantic]"]),
        ("cascaded_depth_first", ["model.sharing=cascaded", "model.cascade_first=depth"]),
        ("cascaded_semantic_first", ["model.sharing=cascaded", "model.cascade_first=semantic"]),
        ("merge_in", ["model.sharing=merge_in"]),
        ("branch_out", ["model.sharing=branch_out"]),
    ],
}
RANGE_COLUMNS = ("rel", "sq rel", "log10", "rms", "rms (log)", "δ<1.25", "δ<1.25²",
                 "δ<1.25³")


def run_one(study: str, label: str, overrides: list, seed: int, out_root: Path) -> dict:
    """Train one setting with one seed in a fresh process; return its final metrics."""
    out = out_root / study / f"{label}_s{seed}"
    if not (out / "epochs.csv").is_file():
        cmd = [sys.executable, "-m", "synergy_ros.cli", "train", "--config", str(CONFIG),
               "--output", str(out)]
        for item in BUDGET + STUDY_BUDGET[study] + overrides + [f"seed={seed}"]:
            cmd += ["--set", item]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        print(f"{label} seed {seed}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    with open(out / "epochs.csv", newline="") as handle:
        last = list(csv.DictReader(handle))[-1]
    return {"label": label, "seed": seed, "overrides": overrides,
            "all": {k: float(v) for k, v in last.items() if k not in ("epoch", "step")},
            "ranges": _ranges((out / "val_report.md").read_text())}


def _ranges(report: str) -> dict:
    """Parse the depth-range table of a val_report.md: {row: {column: value}}."""
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > len(RANGE_COLUMNS) and cells[0] in ("<=4m", "<=6m", "<=8m", "all"):
            rows[cells[0]] = {name: float(v) for name, v in zip(RANGE_COLUMNS, cells[1:9])}
    return rows


def _mean_std(values: list) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ±{std:.3f}"


def heads_markdown(results: list) -> str:
    """Depth-range table (Tables 4-7 layout) per head, mean ± std over seeds."""
    lines = ["| head | range | " + " | ".join(RANGE_COLUMNS) + " |",
             "|---|---|" + "---|" * len(RANGE_COLUMNS)]
    for label, _ in STUDIES["heads"]:
        runs = [r for r in results if r["label"] == label]
        for row in ("<=4m", "<=6m", "<=8m", "all"):
            cells = [_mean_std([r["ranges"][row][c] for r in runs]) for c in RANGE_COLUMNS]
            lines.append(f"| {label} | {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variants_markdown(results: list) -> str:
    """Table 1 layout: relative change vs the single-task baselines (+ = better)."""
    def mean(label: str, key: str) -> float:
        return statistics.mean(r["all"][key] for r in results if r["label"] == label)

    def seeds(label: str, key: str) -> list:
        return [r["all"][key] for r in sorted(results, key=lambda r: r["seed"])
                if r["label"] == label]

    base_rmse, base_miou = mean("single_depth", "rmse"), mean("single_semantic", "miou")
    lines = ["| structure | depth rms (m) | Δ depth (RMSE) | semantic mIoU | Δ semantic (mIoU) |",
             "|---|---|---|---|---|"]
    for label, _ in STUDIES["variants"]:
        rmse, miou = seeds(label, "rmse"), seeds(label, "miou")
        d_rmse = (base_rmse - statistics.mean(rmse)) / base_rmse
        d_miou = (statistics.mean(miou) - base_miou) / base_miou
        lines.append(f"| {label} | {_mean_std(rmse)} | {d_rmse:+.1%} | {_mean_std(miou)} | "
                     f"{d_miou:+.1%} |")
    return "\n".join(lines)


def main(argv: list | None = None) -> int:
    """Run a study and write its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (1 thread each)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "paper_study")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    jobs = [(args.study, label, overrides, seed, args.runs)
            for seed in args.seeds for label, overrides in STUDIES[args.study]]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run_one(*job), jobs))
    render = heads_markdown if args.study == "heads" else variants_markdown
    table = render(results)
    args.out.mkdir(parents=True, exist_ok=True)
    command = f"benchmarks/paper_study.py {args.study} --seeds {' '.join(map(str, args.seeds))}"
    (args.out / f"paper_{args.study}.md").write_text(
        f"# paper_study {args.study}\n\n`{command}`; budget: {' '.join(BUDGET)}; "
        f"{len(jobs)} runs, {time.perf_counter() - started:.0f} s\n\n{table}\n")
    (args.out / f"paper_{args.study}.json").write_text(json.dumps(
        {"command": command, "config": str(CONFIG.relative_to(ROOT)),
         "budget": BUDGET + STUDY_BUDGET[args.study],
         "results": results}, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
