"""humanprompt-bringup: start the node graph as separate processes (ROS 2 from Python wheels).

::

    humanprompt-bringup sim:=true                  # the learned policy, models/policy.safetensors
    humanprompt-bringup sim:=true checkpoint:=runs/stage2/policy.safetensors
    humanprompt-bringup sim:=true policy:=replay   # retarget the prompt's own actions (no checkpoint)
    humanprompt-bringup camera_source:=video camera_path:=demo.mp4 nodes:=camera,command
    humanprompt-bringup --dry-run sim:=true        # print the commands, start nothing
    humanprompt-bringup --help                     # the arguments and their defaults

The same ``name:=value`` arguments and the same nodes, parameter files and parameters as
``ros2 launch humanprompt_ros bringup.launch.py``: both read :mod:`humanprompt_ros.graph`.

* Each node runs as ``python -m <module> --ros-args -r __node:=NAME --params-file ... -p k:=v``
  with this interpreter, in a process group of its own; its output is prefixed with ``[NAME]``.
* Before starting anything, every node is checked (its module importable, its parameter files
  present, and with ``policy:=checkpoint`` — the default — the checkpoint file present); a problem
  is reported in one line each and the exit code is 2.
* A node that exits while the graph runs is restarted after ``respawn_delay`` seconds, with a log
  line — except after exit code 2 (the node's "cannot start: bad configuration" code: restarting
  would fail the same way).
* Ctrl-C or SIGTERM: SIGINT to every node, up to 5 s for them to exit, then SIGTERM, then SIGKILL.
  The exit code is 0 after such a shutdown; 1 when every node has stopped by itself and none
  can be restarted.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from humanprompt_ros.graph import GRAPH_ARGS, NodeSpec, build_graph, checkpoint_problem

EXIT_CONFIG_ERROR = 2
SHUTDOWN_GRACE_S = 5.0
TERM_GRACE_S = 3.0


def log(msg: str) -> None:
    print(f"[bringup] {msg}", flush=True)


def usage() -> str:
    lines = [__doc__.split("\n\n")[0], "", "arguments (name:=value):"]
    for name, a in GRAPH_ARGS.items():
        shown = " | ".join(c or "''" for c in a.choices)
        choices = f" [{shown}]" if a.choices else ""
        lines.append(f"  {name + ':=' + a.default:<44} {a.description}{choices}")
    lines += ["", "options: --dry-run (print the commands), -h/--help"]
    return "\n".join(lines)


def parse_cli(argv: list[str]) -> tuple[dict[str, str], bool]:
    args, dry_run = {}, False
    for item in argv:
        if item == "--dry-run":
            dry_run = True
        elif ":=" in item:
            name, _, value = item.partition(":=")
            args[name.strip()] = value
        else:
            raise ValueError(f"expected name:=value arguments, got {item!r} (see --help)")
    return args, dry_run


def preflight(specs: list[NodeSpec], share: Path) -> list[str]:
    """Why each node cannot start, if it cannot (empty: all can)."""
    problems = []
    for s in specs:
        if s.module:
            try:
                found = importlib.util.find_spec(s.module) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                problems.append(
                    f"node {s.name!r}: module {s.module} not found (not implemented in this checkout, or "
                    f"humanprompt_ros is not installed in {sys.prefix}); leave it out with nodes:=..."
                )
        elif shutil.which(s.executable) is None:
            problems.append(
                f"node {s.name!r}: {s.executable} is not installed (ROS 2 from wheels has no "
                f"{s.executable}; use {s.name}:=false or a ROS 2 install)"
            )
        for p in s.params_paths(share):
            if not p.is_file():
                problems.append(f"node {s.name!r}: parameter file {p} not found")
    ckpt = checkpoint_problem(specs)
    if ckpt:
        problems.append(ckpt)
    return problems


@dataclass
class Child:
    spec: NodeSpec
    cmd: list[str]
    proc: subprocess.Popen | None = None
    starts: int = 0
    respawn_at: float | None = None
    done: bool = False  # exited and will not be restarted


class Supervisor:
    def __init__(self, specs: list[NodeSpec], share: Path, respawn_delay: float, log_level: str):
        self.children = [Child(s, s.command(sys.executable, share, log_level)) for s in specs]
        self.respawn_delay = respawn_delay
        self.stop = threading.Event()
        self.env = dict(os.environ)
        prefixes = [p for p in self.env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
        if sys.prefix not in prefixes:  # ROS 2 from wheels: the ament index is the environment's prefix
            self.env["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix] + prefixes)
        self.env["PYTHONUNBUFFERED"] = "1"

    def start(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            child.cmd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        child.starts += 1
        child.respawn_at = None
        if child.starts == 1:
            log(f"started {child.spec.name} (pid {child.proc.pid}): {shlex.join(child.cmd)}")
        else:
            log(f"restarted {child.spec.name} (pid {child.proc.pid}, start #{child.starts})")
        threading.Thread(target=self._pump, args=(child.spec.name, child.proc), daemon=True).start()

    @staticmethod
    def _pump(name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            sys.stdout.write(f"[{name}] {line}" if line.endswith("\n") else f"[{name}] {line}\n")
            sys.stdout.flush()

    def run(self) -> int:
        for c in self.children:
            self.start(c)
        while not self.stop.wait(0.1):
            now = time.monotonic()
            for c in self.children:
                if c.done:
                    continue
                if c.proc is not None and c.respawn_at is None:
                    rc = c.proc.poll()
                    if rc is None:
                        continue
                    if rc == EXIT_CONFIG_ERROR:
                        log(f"{c.spec.name} exited with code {rc} (cannot start: configuration); not respawning")
                        c.done = True
                    elif c.spec.respawn:
                        log(f"{c.spec.name} exited with code {rc}; respawning in {self.respawn_delay:g} s")
                        c.respawn_at = now + self.respawn_delay
                    else:
                        log(f"{c.spec.name} exited with code {rc}; not respawned (respawn off)")
                        c.done = True
                elif c.respawn_at is not None and now >= c.respawn_at:
                    self.start(c)
            if all(c.done for c in self.children):
                log("every node has stopped and none can be restarted; exiting")
                return 1
        self.shutdown()
        return 0

    def shutdown(self) -> None:
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        log(f"shutting down {len(running)} node(s): SIGINT")
        self._signal_all(running, signal.SIGINT)
        running = self._wait(running, SHUTDOWN_GRACE_S)
        if running:
            log(f"still running after {SHUTDOWN_GRACE_S:g} s: {', '.join(c.spec.name for c in running)}; SIGTERM")
            self._signal_all(running, signal.SIGTERM)
            running = self._wait(running, TERM_GRACE_S)
        if running:
            log(f"still running: {', '.join(c.spec.name for c in running)}; SIGKILL")
            self._signal_all(running, signal.SIGKILL)
            self._wait(running, TERM_GRACE_S)
        log("all nodes stopped")

    @staticmethod
    def _signal_all(children: list[Child], sig: int) -> None:
        for c in children:
            try:
                os.killpg(c.proc.pid, sig)  # the node and anything it started
            except (ProcessLookupError, PermissionError):
                pass

    @staticmethod
    def _wait(children: list[Child], timeout: float) -> list[Child]:
        deadline = time.monotonic() + timeout
        left = list(children)
        while left and time.monotonic() < deadline:
            left = [c for c in left if c.proc.poll() is None]
            time.sleep(0.05)
        return [c for c in left if c.proc.poll() is None]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return 0
    from humanprompt_ros.paths import share_dir

    try:
        share = share_dir()
        args, dry_run = parse_cli(argv)
        specs = [s for s in build_graph(args, share) if s.enabled]
    except (ValueError, FileNotFoundError) as exc:
        print(f"humanprompt-bringup: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    log_level = args.get("log_level", GRAPH_ARGS["log_level"].default)
    if not specs:
        print("humanprompt-bringup: no node to start with these arguments", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if dry_run:
        for s in specs:
            print(shlex.join(s.command(sys.executable, share, log_level)))
        return 0
    problems = preflight(specs, share)
    if problems:
        print("humanprompt-bringup: cannot start the graph:\n  " + "\n  ".join(problems), file=sys.stderr)
        return EXIT_CONFIG_ERROR

    sup = Supervisor(specs, share, float(args.get("respawn_delay", GRAPH_ARGS["respawn_delay"].default)), log_level)

    def on_signal(signum, _frame):
        log(f"received {signal.Signals(signum).name}")
        sup.stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return sup.run()


if __name__ == "__main__":
    raise SystemExit(main())
