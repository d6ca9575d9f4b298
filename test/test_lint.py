"""Lint as tests, the way ament_flake8 / ament_pep257 run them."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY_TARGETS = ["synergy_ros", "test", "setup.py", "launch", "benchmarks"]


def _run(args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_flake8():
    """flake8 (config in setup.cfg) over the package, tests, launch files and setup.py."""
    targets = [t for t in PY_TARGETS if (ROOT / t).exists()]
    result = _run(["flake8", *targets])
    assert result.returncode == 0, f"flake8 found problems:\n{result.stdout}{result.stderr}"


def test_pydocstyle_public_api():
    """Every public module-level function, class and method in the package has a docstring."""
    result = _run(["pydocstyle", "--select=D101,D102,D103,D300,D419", "synergy_ros"])
    assert result.returncode == 0, f"pydocstyle found problems:\n{result.stdout}{result.stderr}"
