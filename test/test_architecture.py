"""The package's layout rules: no import cycles (function-level imports included, so none can hide one),
the ROS-free core never imports the ROS layer, and it imports without rclpy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "humanprompt_ros"
ROS_LAYER = ("humanprompt_ros.nodes", "humanprompt_ros.ros", "humanprompt_ros.cli")


def in_ros_layer(module: str) -> bool:
    """Whether ``module`` is one of the ROS_LAYER packages or inside one (``humanprompt_ros.rosbag`` is not)."""
    return any(module == p or module.startswith(p + ".") for p in ROS_LAYER)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every humanprompt_ros module that ``path`` imports, at any depth of its code."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                base = module_name(path).split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + [node.module])
            else:
                target = node.module
            subs = {f"{target}.{a.name}" for a in node.names} & known
            out.update(subs or ({target} & known))
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, set(mods)) - {name} for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_relative_imports_resolve():
    graph = import_graph()
    assert "humanprompt_ros.policies.base" in graph["humanprompt_ros.policies.learned"]
    assert "humanprompt_ros.models.cross_prediction" in graph["humanprompt_ros.models.svd_backbone"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_core_does_not_import_the_ros_layer():
    bad = [
        f"{mod} imports {dep}"
        for mod, deps in import_graph().items()
        if not in_ros_layer(mod)
        for dep in deps
        if in_ros_layer(dep)
    ]
    assert not bad, "\n".join(bad)


def test_core_imports_without_rclpy():
    core = sorted(m for m in modules() if not in_ros_layer(m))
    code = (
        "import sys\n"
        "for name in ('rclpy', 'rcl_interfaces', 'sensor_msgs', 'geometry_msgs', 'std_msgs', 'std_srvs'):\n"
        "    sys.modules[name] = None  # any import of them raises ImportError\n"
        f"import importlib\nfor m in {core!r}:\n    importlib.import_module(m)\nprint('ok', len({core!r}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("ok")


def test_modules_stay_small_or_say_why():
    """A core module over ~400 lines says in its docstring why it is one piece."""
    long = []
    for name, path in modules().items():
        lines = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > 420 and "one module" not in doc:
            long.append(f"{name}: {lines} lines")
    assert not long, "split these or say in the docstring why they are one module: " + ", ".join(long)
