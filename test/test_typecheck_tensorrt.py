"""Type-check the TensorRT code against NVIDIA's typed API (PyPI ``tensorrt-stubs``) with mypy.

TensorRT cannot be installed on the CI machines, so its calls never run here; mypy against the
stubs catches a misspelt, removed or mis-called TensorRT method instead. ``make venv`` installs
``tensorrt-stubs`` with ``--no-deps`` (its wheel requires the real ``tensorrt-cu12-bindings``).

The stubs as published (10.8 to 10.13) have a few plugin-API lines that are not valid Python
(a parameter named ``in``, a required parameter after defaulted ones); the test type-checks
against a copy where only those method signatures are loosened to ``*args, **kwargs``.
"""
import ast
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The TensorRT code and the plain-Python modules it relies on.
MODULES = ["synergy_ros/runtime/tensorrt_backend.py", "synergy_ros/runtime/device.py",
           "synergy_ros/runtime/engine_cache.py"]
MYPY_CONFIG = """\
[mypy]
check_untyped_defs = True
follow_imports = silent
ignore_missing_imports = True
warn_unused_ignores = True
[mypy-tensorrt.*,tensorrt_bindings.*]
ignore_errors = True
[mypy-torch.*,onnx.*,cv2.*,onnxruntime.*]
follow_imports = skip
"""
_DEF = re.compile(r"^(\s*)def (\w+)\((.*)\)( -> .*)?:\s*$")

pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")


def loosen_invalid_signatures(text: str) -> tuple[str, int]:
    """Replace the parameter list of every ``def`` line Python cannot parse with
    ``(self, *args, **kwargs)`` (return type kept); returns (text, lines changed)."""
    lines, changed = [], 0
    for line in text.splitlines():
        match = _DEF.match(line)
        if match:
            try:
                ast.parse(line.strip() + " ...")
            except SyntaxError:
                indent, name, _, returns = match.groups()
                line = f"{indent}def {name}(self, *args, **kwargs){returns or ''}:"
                changed += 1
        lines.append(line)
    return "\n".join(lines) + "\n", changed


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    """A checkable copy of the installed tensorrt-stubs (tensorrt/, tensorrt_bindings/)."""
    try:
        dist = metadata.distribution("tensorrt-stubs")
    except metadata.PackageNotFoundError:
        pytest.skip("tensorrt-stubs is not installed (make venv installs it: pip install "
                    "--no-deps tensorrt-stubs==<pin in the Makefile>)")
    out = tmp_path_factory.mktemp("trt-stubs")
    copied = 0
    for file in dist.files or []:
        if file.suffix == ".pyi" and file.parts[0] in ("tensorrt", "tensorrt_bindings"):
            target = out / Path(*file.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            text, _ = loosen_invalid_signatures(Path(dist.locate_file(file)).read_text())
            target.write_text(text)
            copied += 1
    assert copied >= 2, f"tensorrt-stubs {dist.version} has no tensorrt .pyi files"
    return out


@pytest.fixture(scope="module")
def mypy_cache(request, tmp_path_factory):
    """mypy's cache, kept in pytest's cache dir between runs when there is one."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("mypy-tensorrt")) if cache else tmp_path_factory.mktemp("mypy")


def run_mypy(stubs_dir: Path, files: list, cache_dir: Path) -> subprocess.CompletedProcess:
    """mypy on ``files`` with the stubs and this checkout on its search path."""
    config = cache_dir / "mypy.ini"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(MYPY_CONFIG)
    env = {"MYPYPATH": f"{stubs_dir}:{ROOT}", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config),
                           "--cache-dir", str(cache_dir / "cache"), "--no-color-output",
                           *[str(f) for f in files]],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_tensorrt_code_matches_the_typed_api(stubs, mypy_cache):
    """tensorrt_backend.py type-checks against TensorRT 10's typed API."""
    result = run_mypy(stubs, MODULES, mypy_cache)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_catches_a_removed_tensorrt_method(stubs, mypy_cache, tmp_path):
    """The same check fails on the TensorRT 8 name execute_async_v2 (removed in 10) and on a
    misspelt builder call: the test above can fail."""
    source = (ROOT / MODULES[0]).read_text()
    for old, new in (("execute_async_v3(", "execute_async_v2("),
                     ("build_serialized_network(", "build_serialised_network(")):
        assert old in source
        source = source.replace(old, new)
    broken = tmp_path / "tensorrt_backend_broken.py"
    broken.write_text(source)
    result = run_mypy(stubs, [broken], mypy_cache)
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"IExecutionContext" has no attribute "execute_async_v2"' in result.stdout
    assert '"Builder" has no attribute "build_serialised_network"' in result.stdout


def test_loosening_touches_only_invalid_lines():
    """Valid signatures stay; the invalid stub forms are loosened."""
    text = ("class A:\n    def ok(self, x: int = 1) -> int: ...\n"
            "    def bad(self, in: list[int], out: list[int]) -> int:\n"
            "    def worse(self, a: int = None, b: int) -> None:\n")
    fixed, changed = loosen_invalid_signatures(text)
    assert changed == 2 and "def ok(self, x: int = 1) -> int: ..." in fixed
    assert "def bad(self, *args, **kwargs) -> int:" in fixed
    assert "def worse(self, *args, **kwargs) -> None:" in fixed
