"""The `synergy` CLI: help, `python -m`, usage errors exit 2 without a traceback."""
import subprocess
import sys
from pathlib import Path

import pytest

from synergy_ros.cli import COMMANDS, main

BIN = Path(sys.executable).parent


def _run(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [[str(BIN / "synergy")], [sys.executable, "-m", "synergy_ros"]])
def test_help_lists_subcommands(command):
    """`synergy --help` and `python -m synergy_ros --help` list the available subcommands."""
    result = _run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "info" in result.stdout and "demo" in result.stdout


def test_unknown_subcommand_exits_2_without_traceback():
    """An unknown subcommand prints usage and exits 2."""
    result = _run(str(BIN / "synergy"), "no-such-command")
    assert result.returncode == 2
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


def test_bad_flag_exits_2():
    """A bad flag on a real subcommand prints usage and exits 2."""
    with pytest.raises(SystemExit) as exc:
        main(["info", "--no-such-flag"])
    assert exc.value.code == 2


def test_info_json():
    """`synergy info --json` reports library versions."""
    result = _run(str(BIN / "synergy"), "info", "--json")
    assert result.returncode == 0, result.stderr
    assert '"numpy"' in result.stdout and '"rclpy"' in result.stdout


def test_every_listed_command_is_registered():
    """Every module under synergy_ros/commands is listed in COMMANDS (and vice versa if present)."""
    commands_dir = Path(__file__).resolve().parents[1] / "synergy_ros" / "commands"
    modules = {p.stem for p in commands_dir.glob("*.py") if p.stem != "__init__"}
    assert modules <= set(COMMANDS), f"command modules not listed in cli.COMMANDS: {modules}"


def test_node_entry_point_exists():
    """The synergy_node console script is installed."""
    assert (BIN / "synergy_node").exists()
