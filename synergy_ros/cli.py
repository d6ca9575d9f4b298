"""The `synergy` command: one CLI with a subcommand per job.

Each subcommand lives in ``synergy_ros/commands/<name>.py`` and provides ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Command modules import only argparse-level
code at import time (heavy imports such as torch go inside ``run``), so ``synergy --help`` is
instant. Add a new subcommand by adding its module name to ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from synergy_ros import __version__
from synergy_ros.core.errors import SynergyError

#: Subcommand name -> module under synergy_ros.commands, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "demo",
    "train",
    "evaluate",
    "export",
    "bench",
    "replay",
    "info",
)


def _available_commands() -> dict:
    """Import the command modules that exist (later issues add theirs)."""
    modules = {}
    for name in COMMANDS:
        try:
            modules[name] = importlib.import_module(f"synergy_ros.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"synergy_ros.commands.{name}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one subparser per available command."""
    parser = argparse.ArgumentParser(
        prog="synergy",
        description="synergy_ros: monocular depth, semantics and point clouds "
                    "(synergy network, Jiao et al. ECCV 2018).",
    )
    parser.add_argument("--version", action="version", version=f"synergy_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available_commands().items():
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def restore_ctrl_c() -> None:
    """Let Ctrl-C (SIGINT) interrupt even if this process was started with SIGINT ignored.

    A non-interactive shell starts ``command &`` with SIGINT ignored, and Python then keeps it
    ignored, so ``synergy replay --loop`` would never stop on SIGINT. ROS 2 tools behave the
    same way (rclpy installs its handler regardless); ``synergy train`` has its own handler.
    """
    import signal
    import threading

    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for usage errors, 1 for input errors)."""
    restore_ctrl_c()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SynergyError as exc:
        print(f"synergy {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"synergy {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
