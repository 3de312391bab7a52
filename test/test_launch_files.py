"""Every launch/*.launch.py is a valid ROS 2 launch file.

Always: each file compiles and defines ``generate_launch_description()`` (a static check that
needs no ROS). Where the ROS 2 ``launch`` package is importable (a ROS 2 install, not the PyPI
wheels: ``launch`` has no PyPI wheel), each file is also loaded with ``launch`` itself and must
return a LaunchDescription.

Beware: this checkout has a ``launch/`` folder, which Python imports as an empty *namespace
package* called ``launch`` when the repository root is on sys.path (``python -m pytest`` puts the
working directory there). So "``import launch`` works" is not the test for ROS 2's launch; a real
module file with ``LaunchDescription`` is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers.ros import ros2_launch_missing

REPO_ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((REPO_ROOT / "launch").glob("*.launch.py"))


def test_there_are_launch_files():
    assert LAUNCH_FILES, "launch/ has no *.launch.py"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_defines_generate_launch_description(path):
    tree = ast.parse(path.read_text(), filename=str(path))  # SyntaxError fails the test
    compile(tree, str(path), "exec")
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions, f"{path.name} has no generate_launch_description()"
    assert not functions["generate_launch_description"].args.args, "generate_launch_description takes no arguments"


@pytest.mark.skipif(ros2_launch_missing() is not None, reason=ros2_launch_missing() or "")
@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_loads_with_ros2_launch(path):
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    from launch import LaunchDescription

    description = get_launch_description_from_python_launch_file(str(path))
    assert isinstance(description, LaunchDescription)
    assert description.entities, f"{path.name} describes nothing"
    if path.name == "hand_check.launch.py":
        args = {a.name: a for a in description.get_launch_arguments()}
        assert {"hand", "samples"} <= set(args)
