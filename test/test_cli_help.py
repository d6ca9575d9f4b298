"""Every `synergy` subcommand is registered, listed by --help, and explains every option."""
import argparse
import subprocess
import sys

import pytest

from synergy_ros.cli import COMMANDS, _available_commands, build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_every_command_module_imports_and_is_listed_with_its_help(capsys):
    modules = _available_commands()
    assert list(modules) == list(COMMANDS)  # none silently skipped
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    listing = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    for name, module in modules.items():
        assert f"{name} {' '.join(module.HELP.split())}" in listing


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_text(name):
    parser = _subparsers(build_parser())[name]
    missing = [action.dest for action in parser._actions
               if action.help is None or not action.help.strip()]
    assert not missing, f"synergy {name}: options without help text: {missing}"


def test_python_m_help_works_for_every_command():
    for name in COMMANDS:
        result = subprocess.run([sys.executable, "-m", "synergy_ros", name, "--help"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (name, result.stderr)
        assert result.stdout.startswith(f"usage: synergy {name}"), (name, result.stdout[:80])
