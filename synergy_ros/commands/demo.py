"""`synergy demo`: the end-to-end demo (synthetic bag -> synergy node over DDS -> evaluation)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "run the end-to-end demo: synthetic bag -> synergy node over DDS -> metrics report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `synergy demo` flags."""
    parser.add_argument("--output", type=Path, default=Path("runs/demo"),
                        help="output folder (default runs/demo; a previous demo there is "
                             "replaced)")
    parser.add_argument("--frames", type=int, default=20, help="camera frames (default 20)")
    parser.add_argument("--model", type=Path,
                        help="model file (default: the bundled models/synergy_demo_r18.pt)")
    parser.add_argument("--height", type=int, default=240, help="image height (default 240)")
    parser.add_argument("--width", type=int, default=320, help="image width (default 320)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic scene seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when every frame came back on every output, else 1."""
    from synergy_ros.demo_pipeline import DemoOptions, demo_markdown, how_to_view, run_demo
    from synergy_ros.evaluation import report

    result = run_demo(DemoOptions(output=args.output, frames=args.frames, model=args.model,
                                  height=args.height, width=args.width, seed=args.seed,
                                  progress=not args.no_progress))
    metrics = result.metrics
    print()
    if metrics.get("depth"):
        print(report.depth_table_markdown([(row["range"], row)
                                           for row in metrics["depth_ranges"]]))
    if metrics.get("semantic"):
        print()
        print(report.semantic_markdown({k: v for k, v in metrics["semantic"].items()
                                        if k != "per_class_iou"}))
    print()
    print(demo_markdown(result))
    print(how_to_view(result))
    if not result.ok:
        print("synergy demo: frames were lost between the camera and the node's outputs "
              f"(drops {result.drops}); see {result.output / 'node.log'}", file=sys.stderr)
        return 1
    return 0
