"""humanprompt-bringup (ROS 2 from wheels) and launch/bringup.launch.py (ROS 2 installs).

The DDS test starts a graph subset made of nodes that exist in this checkout (camera + command),
kills a node and checks that bringup restarts it, then stops bringup with SIGTERM.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.ros import RosProcesses, require_rclpy, ros2_launch_missing
from humanprompt_ros.graph import GRAPH_ARGS, NodeSpec, build_graph

REPO = Path(__file__).resolve().parent.parent
LAUNCH = REPO / "launch" / "bringup.launch.py"
BRINGUP = ("-m", "humanprompt_ros.cli.bringup")


def run_bringup(*args, timeout=30):
    return subprocess.run([sys.executable, *BRINGUP, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_dry_run_prints_the_graph_commands():
    out = run_bringup("--dry-run", "nodes:=camera,command", "camera_source:=video", "camera_path:=/tmp/x.mp4")
    assert out.returncode == 0, out.stderr
    lines = [shlex.split(line) for line in out.stdout.splitlines()]
    specs = [
        s
        for s in build_graph({"nodes": "camera,command", "camera_source": "video", "camera_path": "/tmp/x.mp4"})
        if s.enabled
    ]
    from humanprompt_ros.paths import share_dir

    assert lines == [s.command(sys.executable, share_dir(), "info") for s in specs]
    assert ["-r", "__node:=camera"] == lines[0][4:6]
    assert any(a.endswith("config/camera.yaml") for a in lines[0])


def test_help_lists_every_argument():
    out = run_bringup("--help")
    assert out.returncode == 0
    for name in GRAPH_ARGS:
        assert f"{name}:=" in out.stdout


def test_unknown_argument_is_a_clear_error():
    out = run_bringup("simulation:=true")
    assert out.returncode == 2
    assert "unknown argument 'simulation'; valid arguments: sim, policy" in out.stderr
    assert "Traceback" not in out.stderr


def test_preflight_names_a_missing_module(tmp_path):
    from humanprompt_ros.cli.bringup import preflight

    spec = NodeSpec(
        "ghost", "humanprompt-ghost", "humanprompt_ros.nodes.ghost", "not there", params_files=("config/ghost.yaml",)
    )
    problems = preflight([spec], tmp_path)
    assert any("module humanprompt_ros.nodes.ghost not found" in p for p in problems)
    assert any("config/ghost.yaml not found" in p for p in problems)


def test_preflight_refuses_a_missing_checkpoint_before_starting_anything(tmp_path):
    from humanprompt_ros.cli.bringup import preflight
    from humanprompt_ros.paths import share_dir

    missing = tmp_path / "models" / "policy.safetensors"
    problems = preflight([s for s in build_graph({"checkpoint": str(missing)}) if s.enabled], share_dir())
    assert len(problems) == 1, problems
    assert (
        str(missing) in problems[0]
        and "scripts/train_prompted_state.sh" in problems[0]
        and "policy:=replay" in problems[0]
    )
    missing.parent.mkdir()
    missing.write_bytes(b"weights")  # preflight checks that the file is there; the policy node checks its content
    assert preflight([s for s in build_graph({"checkpoint": str(missing)}) if s.enabled], share_dir()) == []
    assert preflight([s for s in build_graph({"policy": "replay"}) if s.enabled], share_dir()) == []
    # the command line: exit 2, one clear line, nothing started
    out = run_bringup(f"checkpoint:={tmp_path / 'nope.safetensors'}", "sim:=true")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "cannot start the graph" in out.stderr
    assert f"{tmp_path / 'nope.safetensors'}, which does not exist" in out.stderr
    assert "started" not in out.stdout and "Traceback" not in out.stderr


def test_launch_file_reads_the_graph_module():
    text = LAUNCH.read_text()
    tree = ast.parse(text)
    froms = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "humanprompt_ros.graph" in froms, "bringup.launch.py must build its nodes from humanprompt_ros.graph"
    assert "build_graph" in text and "GRAPH_ARGS" in text and "OpaqueFunction" in text
    assert "respawn=" in text
    assert "checkpoint_problem" in text, "a missing checkpoint must stop ros2 launch too, with the same message"


@pytest.mark.skipif(ros2_launch_missing() is not None, reason=ros2_launch_missing() or "")
def test_launch_file_declares_the_graph_arguments():
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    description = get_launch_description_from_python_launch_file(str(LAUNCH))
    declared = {a.name: a for a in description.get_launch_arguments()}
    assert set(declared) == set(GRAPH_ARGS)


@pytest.fixture
def frames_dir(tmp_path):
    from PIL import Image as PILImage

    for i in range(3):
        PILImage.fromarray(np.full((32, 32, 3), 80 * i, np.uint8)).save(tmp_path / f"{i}.png")
    return tmp_path


@pytest.mark.ros
@require_rclpy()
@pytest.mark.timeout(120)
def test_bringup_runs_respawns_a_killed_node_and_shuts_down_cleanly(ros_env, peer, frames_dir):
    from humanprompt_ros.ros import topics

    with RosProcesses(ros_env) as procs:
        frames = peer.record(topics.OBSERVATION)
        diag = peer.record(topics.DIAGNOSTICS)
        bringup = procs.start(
            "bringup",
            *BRINGUP,
            "nodes:=camera,command",
            "camera_source:=folder",
            f"camera_path:={frames_dir}",
            "respawn_delay:=0.5",
        )

        def pid_of(name, nth=1):
            pids = [
                int(m.group(1))
                for line in bringup.stdout_lines
                for m in [re.search(rf"\bstarted {name} \(pid (\d+)", line)]
                if m
            ]
            return pids[nth - 1] if len(pids) >= nth else None

        peer.wait_until(lambda: len(frames) >= 5, 45, f"frames through bringup\n{bringup.log()}")
        peer.wait_until(
            lambda: any(s.name == "command" for _, a in diag.snapshot() for s in a.status),
            30,
            f"command diagnostics\n{bringup.log()}",
        )
        assert any(line.startswith("[camera] ") for line in bringup.stdout_lines), "node output is prefixed"
        camera_pid, command_pid = pid_of("camera"), pid_of("command")
        assert camera_pid and command_pid

        os.kill(camera_pid, signal.SIGKILL)
        peer.wait_until(
            lambda: any("camera exited with code -9; respawning" in line for line in bringup.stdout_lines),
            10,
            f"the respawn log line\n{bringup.log()}",
        )
        peer.wait_until(
            lambda: any("restarted camera" in line for line in bringup.stdout_lines),
            10,
            f"the camera restarted\n{bringup.log()}",
        )
        t_back = time.monotonic()
        peer.wait_until(lambda: len(frames.since(t_back)) >= 3, 45, f"frames after the respawn\n{bringup.log()}")
        new_camera_pid = next(
            int(m.group(1))
            for line in bringup.stdout_lines
            for m in [re.search(r"restarted camera \(pid (\d+), start #2\)", line)]
            if m
        )

        bringup.proc.send_signal(signal.SIGTERM)
        assert bringup.wait(timeout=20) == 0, bringup.log()
        log = "\n".join(bringup.stdout_lines)
        assert "received SIGTERM" in log and "all nodes stopped" in log
        assert "SIGKILL" not in log, "nodes should stop on SIGINT"
        for pid in (new_camera_pid, command_pid):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


@pytest.mark.ros
@require_rclpy()
@pytest.mark.timeout(60)
def test_a_node_that_cannot_start_is_not_respawned(ros_env):
    with RosProcesses(ros_env) as procs:
        bringup = procs.start(
            "bringup",
            *BRINGUP,
            "nodes:=camera",
            "camera_source:=video",
            "camera_path:=/nonexistent/clip.mp4",
            "respawn_delay:=0.2",
        )
        rc = bringup.wait(timeout=45)
        log = "\n".join(bringup.stdout_lines)
        assert rc == 1, bringup.log()
        assert "no such file: /nonexistent/clip.mp4" in log
        assert "camera exited with code 2 (cannot start: configuration); not respawning" in log
        assert "Traceback" not in log
