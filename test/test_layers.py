"""The package's architecture as a test: layers, ROS-free inference, no cycles, imports on top.

Read from the source with ``ast`` (every ``import`` statement, also those inside functions), so
a forbidden dependency fails here whether it runs at import time or only on some code path.
The rules are docs/architecture.md's:

* layers, each importing only from its own layer or those before it::

      core -> network -> runtime -> ros -> bags -> data -> evaluation -> learning
           -> bench / demo_pipeline / commands / cli (top)

* ``network`` and ``runtime`` import neither rclpy nor ROS message packages, and importing
  ``synergy_ros.runtime`` imports none of torch, onnxruntime, TensorRT or rclpy;
* no import cycle between modules;
* package imports at the top of modules; inside functions only in ``commands/`` and ``cli``
  (a fast ``--help``) and in :data:`LAZY_ALLOWED`, each with a ``# lazy:`` comment saying why.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "synergy_ros"

#: Layer of each top-level name under synergy_ros; a module may import its layer or lower ones.
LAYERS = {"core": 0, "network": 1, "runtime": 2, "ros": 3, "bags": 4, "data": 5,
          "evaluation": 6, "learning": 7,
          "bench": 8, "demo_pipeline": 8, "commands": 8, "cli": 8, "__main__": 8}

#: Top-level module prefixes that are ROS (rclpy, its C layers and message packages).
ROS_MODULES = ("rclpy", "rcl_interfaces", "rosidl_runtime_py", "builtin_interfaces",
               "sensor_msgs", "std_msgs", "diagnostic_msgs", "geometry_msgs", "lifecycle_msgs",
               "launch", "launch_ros", "ament_index_python")

#: (importing module, imported module) pairs allowed inside functions outside commands/cli.
LAZY_ALLOWED = {
    ("synergy_ros.runtime.loader", "synergy_ros.runtime.torch_backend"):
        "torch_backend imports torch; `import synergy_ros.runtime` must not",
    ("synergy_ros.runtime.exporter", "synergy_ros.runtime.torch_backend"):
        "torch_backend imports torch; `import synergy_ros.runtime` must not",
    ("synergy_ros.runtime.exporter", "synergy_ros.runtime.torch_graph"):
        "torch_graph imports torch; `import synergy_ros.runtime` must not",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function/class body) for each import in ``path``."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative imports are not used in this package; treat as error
                names = ["<relative>"]
            elif node.module == "synergy_ros":  # from synergy_ros import sub
                names = [f"synergy_ros.{alias.name}" for alias in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            found.append((name, node.lineno, node.col_offset > 0))
    return found


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _internal_target(name: str) -> str | None:
    """The synergy_ros module ``name`` refers to (a module, or a package's __init__)."""
    if not name.startswith("synergy_ros"):
        return None
    while name and name not in MODULES:  # from synergy_ros.x import function -> synergy_ros.x
        name = name.rpartition(".")[0]
    return name or None


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # synergy_ros itself (__version__): below everything
    return LAYERS.get(parts[1])


def test_every_module_has_a_layer():
    unknown = sorted(m for m in MODULES if _layer(m) is None)
    assert not unknown, (f"modules outside the layer table {unknown}: put them in a subpackage "
                         "of docs/architecture.md's layers or add the new one to LAYERS")


def test_layers_import_only_downwards():
    bad = []
    for module, path in MODULES.items():
        for name, line, _ in _imports(path):
            assert name != "<relative>", f"{path}:{line}: use absolute imports"
            target = _internal_target(name)
            if target and _layer(target) > _layer(module):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {module} (layer "
                           f"{_layer(module)}) imports {target} (layer {_layer(target)})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


@pytest.mark.parametrize("layer", ["network", "runtime"])
def test_inference_layers_are_ros_free(layer):
    bad = [f"{path.relative_to(ROOT)}:{line}: imports {name}"
           for module, path in MODULES.items() if module.split(".")[1:2] == [layer]
           for name, line, _ in _imports(path) if name.split(".")[0] in ROS_MODULES]
    assert not bad, f"{layer} must not import ROS:\n" + "\n".join(bad)


def test_importing_runtime_loads_no_heavy_framework():
    code = ("import sys, synergy_ros.runtime, synergy_ros.runtime.loader;"
            "print(','.join(m for m in ('torch', 'onnxruntime', 'tensorrt', 'rclpy', 'onnx') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120, check=True)
    assert result.stdout.strip() == "", (f"import synergy_ros.runtime imported "
                                         f"{result.stdout.strip()}: keep those imports lazy")


def test_no_import_cycles():
    graph = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        for name, _, _ in _imports(path):
            target = _internal_target(name)
            if target and target != module:
                graph[module].add(target)
    # Tarjan's strongly connected components
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            # a package __init__ re-exporting its own modules is not a cycle of modules
            package_reexport = all(m == node or m.startswith(node + ".") for m in component)
            if len(component) > 1 and not package_reexport:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles between modules: {cycles}"


def test_package_imports_are_at_module_top():
    bad = []
    for module, path in MODULES.items():
        top = module.split(".")[1:2]
        lines = path.read_text(encoding="utf-8").splitlines()
        for name, line, nested in _imports(path):
            target = _internal_target(name)
            if not (nested and target) or top in (["commands"], ["cli"]):
                continue
            if (module, target) not in LAZY_ALLOWED:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {target} imported inside a "
                           "function; import it at the top (or justify it in LAZY_ALLOWED)")
            elif "# lazy:" not in lines[line - 2]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: lazy import without a "
                           "'# lazy: <why>' comment on the line before")
    assert not bad, "\n".join(bad)


def test_layer_checker_catches_a_forbidden_import(tmp_path):
    """The checker itself: a runtime module importing the ROS layer is reported."""
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from synergy_ros.ros.node import main\n", encoding="utf-8")
    [(name, line, nested)] = _imports(fake)
    assert (name, line, nested) == ("synergy_ros.ros.node", 2, True)
    assert _layer(_internal_target(name)) > _layer("synergy_ros.runtime.loader")
