"""`synergy train`: train or fine-tune a synergy network from a YAML config."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "train / fine-tune a synergy network from config/train_*.yaml (resumable, multi-GPU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `synergy train` flags."""
    parser.add_argument("--config", metavar="YAML",
                        help="training config, e.g. config/train_synthetic_demo.yaml (optional "
                             "with --resume PATH: the checkpoint's own config is used)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config key, e.g. --set optim.lr=1e-3 (repeatable)")
    parser.add_argument("--output", metavar="DIR",
                        help="run folder (default runs/<name>; with --resume PATH its folder)")
    parser.add_argument("--resume", metavar="PATH|auto",
                        help="continue from a checkpoint; 'auto' = <output>/last.pt if present")
    parser.add_argument("--release", metavar="MODEL.pt",
                        help="after training, score best.pt (else last.pt) on release.test "
                             "against constant baselines and write MODEL.pt (float16 weights) "
                             "+ MODEL.json metadata")
    parser.add_argument("--keys", action="store_true",
                        help="list every config key with its default and meaning, then exit")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as YAML and exit without training")


def resolve_run(args: argparse.Namespace) -> tuple[dict, Path]:
    """Return (resolved config, output folder) for the parsed arguments."""
    from synergy_ros.core.errors import SynergyError
    from synergy_ros.learning.config import apply_overrides, check_config, load_config

    resume_file = args.resume if args.resume and args.resume != "auto" else None
    if args.config:
        config = load_config(args.config, args.overrides)
    elif resume_file:
        from synergy_ros.learning.checkpoint import load_checkpoint

        # only its config is needed here (mapped, not read); the Trainer loads the weights
        saved = load_checkpoint(resume_file, mmap=True)["training"]["config"]
        config = apply_overrides(saved, args.overrides)
        check_config(config)
    else:
        raise SynergyError("pass --config config/train_<name>.yaml (bundled: "
                           "train_synthetic_demo, train_nyu40, train_outdoor_weak, "
                           "train_variant_*, train_loss_*), or --resume PATH")
    if args.output:
        output = Path(args.output)
    elif resume_file:
        output = Path(resume_file).parent
    else:
        output = Path("runs") / config["name"]
    return config, output


def run(args: argparse.Namespace) -> int:
    """Train; exit 0 when done, 130 after Ctrl-C (a resumable checkpoint is saved)."""
    if args.keys:
        from synergy_ros.learning.config import describe_keys

        print(describe_keys())
        return 0
    config, output = resolve_run(args)
    if args.print_config:
        from synergy_ros.learning.config import dump_config

        print(dump_config(config), end="")
        return 0
    from synergy_ros.learning.checkpoint import checkpoint_path
    from synergy_ros.learning.trainer import Trainer, TrainingInterrupted

    trainer = Trainer(config, output, resume=args.resume)
    try:
        summary = trainer.fit()
    except TrainingInterrupted as exc:
        if trainer.dist.is_main:
            print(f"synergy train: {exc}", file=sys.stderr)
        return 130
    finally:
        from synergy_ros.learning.distributed import shutdown_distributed

        shutdown_distributed(trainer.dist)
    if trainer.dist.is_main and args.release:
        from synergy_ros.learning.release import release_model

        best = checkpoint_path(output, "best")
        chosen = best if best.is_file() else checkpoint_path(output, "last")
        info = release_model(chosen, args.release, config, _command_line(args), summary)
        held = info["held_out"]
        print(f"synergy train: released {args.release} (+ .json): held-out rmse "
              f"{held['model']['rmse']:.3f} m vs constant {held['constant_baseline']['rmse']:.3f}"
              f" m, mIoU {held['model']['miou']:.3f} vs "
              f"{held['constant_baseline']['miou']:.3f}", file=sys.stderr)
    if trainer.dist.is_main:
        print(json.dumps(summary, indent=2))
        best_result = summary["best"]
        print(f"synergy train: done, {summary['steps']} steps in {summary['seconds']} s; "
              f"model: {checkpoint_path(output, 'last')}"
              + (f", best {best_result['metric']}={best_result['value']:.4f}: "
                 f"{checkpoint_path(output, 'best')}" if best_result["value"] is not None else ""),
              file=sys.stderr)
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The `synergy train` command that reproduces this run (quoted for a POSIX shell)."""
    import shlex

    parts = ["synergy", "train"]
    if args.config:
        parts += ["--config", args.config]
    for override in args.overrides:
        parts += ["--set", override]
    if args.output:
        parts += ["--output", args.output]
    parts += ["--release", args.release]
    return shlex.join(parts)
