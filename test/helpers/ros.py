"""Shared helpers for tests that talk over real DDS between separate processes.

Usage in a test module (``test/`` is on ``sys.path`` through ``pythonpath`` in pytest.ini)::

    import pytest
    from helpers.ros import HELPERS_DIR as HELPERS, RosProcesses, require_rclpy

    pytestmark = [pytest.mark.ros, require_rclpy()]

    def test_something(ros_env):             # ros_env: a fixture (test/conftest.py), dict of environment variables
        with RosProcesses(ros_env) as procs:
            sub = procs.start("subscriber", HELPERS / "my_sub.py", "--frames", "3")
            pub = procs.start("publisher", HELPERS / "my_pub.py", stdin=True)
            sub.wait(timeout=20)             # raises AssertionError with both logs on a timeout
            ...

Every child gets:

* ``ROS_DOMAIN_ID``: a domain of its own, reserved for the duration of the test with an
  exclusive lock file (``/tmp/humanprompt_ros-dds-domain-<id>.lock``), so parallel test runs on
  one machine (several pytest processes, xdist workers, CI beside a developer) never share one;
* ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and no static peers: discovery stays on this host;
* ``RMW_IMPLEMENTATION=rmw_fastrtps_cpp`` (the only RMW the project installs);
* ``AMENT_PREFIX_PATH`` including the interpreter's prefix (ROS 2 from wheels);
* ``PYTHONUNBUFFERED=1`` so the tests read the children's output line by line;
* ``MUJOCO_GL=osmesa`` unless set: offscreen rendering for children that run the simulator.

Children are the *same* interpreter as the test (``sys.executable``: the virtual environment's
python), and :class:`RosProcesses` kills whatever is still running on exit, so a failing or
hanging child can never outlive the test.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Iterator

import pytest

HELPERS_DIR = Path(__file__).resolve().parent
TEST_DIR = HELPERS_DIR.parent
REPO_ROOT = TEST_DIR.parent

#: Domain IDs handed out to tests. 0 (the default every ROS 2 user has) is never used; above
#: 101, Fast DDS's default port mapping may run into the ephemeral port range.
DOMAIN_RANGE = range(1, 101)
_LOCK_DIR = Path(tempfile.gettempdir())


def require_rclpy():
    """A skip mark for modules that need rclpy and Fast DDS (import-checked, without importing)."""
    missing = [m for m in ("rclpy", "rmw_fastrtps_cpp", "sensor_msgs") if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"ROS 2 Python packages missing ({', '.join(missing)}): run scripts/setup.sh",
    )


@contextlib.contextmanager
def reserve_domain_id() -> Iterator[int]:
    """Reserve a ROS_DOMAIN_ID no other cooperating process on this machine holds, until exit.

    The search starts at an offset derived from the pid, so parallel runs usually get different
    IDs on the first try; the lock file makes it certain. The lock is released (and the file
    left for reuse) on exit, also if the process dies (the kernel drops flock locks).
    """
    n = len(DOMAIN_RANGE)
    start = (os.getpid() * 7 + threading.get_ident()) % n
    for k in range(n):
        domain = DOMAIN_RANGE[(start + k) % n]
        path = _LOCK_DIR / f"humanprompt_ros-dds-domain-{domain}.lock"
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield domain
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return
    raise RuntimeError(f"all ROS_DOMAIN_IDs {DOMAIN_RANGE.start}..{DOMAIN_RANGE.stop - 1} are reserved by other tests")


def make_ros_env(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a DDS child process on `domain_id` (see the module docstring)."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated since Jazzy; conflicts with the above
    env["ROS_STATIC_PEERS"] = ""
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)  # a developer's XML profile must not leak in
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix not in prefixes:
        prefixes.insert(0, sys.prefix)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(prefixes)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MUJOCO_GL", "osmesa")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    return env


def ros2_launch_missing() -> str | None:
    """Why ROS 2's launch / launch_ros cannot be used here, or None when they can."""
    for name, attr in (("launch", "LaunchDescription"), ("launch_ros", "actions")):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin in (None, "namespace"):
            return (
                f"ROS 2's '{name}' package is not installed (it has no PyPI wheel; ROS 2 from wheels "
                "uses humanprompt-bringup instead of ros2 launch)"
            )
        module = importlib.import_module(name)
        if name == "launch" and not hasattr(module, attr):
            return f"'{name}' resolves to {module!r}, not ROS 2's launch package"
    return None


class RosProcess:
    """A child python process whose stdout/stderr are collected by background threads."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], stdin: bool):
        self.name = name
        self.argv = argv
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=str(REPO_ROOT),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._lines = threading.Condition()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._stdout), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._stderr), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _pump(self, stream: IO[str], sink: list[str]) -> None:
        for line in stream:
            with self._lines:
                sink.append(line.rstrip("\n"))
                self._lines.notify_all()
        stream.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    @property
    def stdout_lines(self) -> list[str]:
        with self._lines:
            return list(self._stdout)

    @property
    def stderr_text(self) -> str:
        with self._lines:
            return "\n".join(self._stderr)

    def log(self) -> str:
        """Both streams, for assertion messages."""
        return (
            f"--- {self.name} (pid {self.pid}, rc {self.returncode}) stdout:\n"
            + "\n".join(self.stdout_lines)
            + f"\n--- {self.name} stderr:\n{self.stderr_text}\n"
        )

    def events(self) -> list[dict]:
        """Lines of stdout that are JSON objects (the helpers' protocol), in order."""
        with self._lines:
            return self._events_unlocked()

    def _events_unlocked(self) -> list[dict]:
        out = []
        for line in self._stdout:
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def wait_for_event(self, event: str, timeout: float) -> dict:
        """The first JSON line with ``"event": event``; AssertionError on timeout or early exit."""
        deadline = time.monotonic() + timeout
        with self._lines:
            while True:
                for ev in self._events_unlocked():
                    if ev.get("event") == event:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not any(t.is_alive() for t in self._readers)):
                    break
                self._lines.wait(min(left, 0.1))
        raise AssertionError(f"{self.name}: no {event!r} event within {timeout:.0f} s\n{self.log()}")

    def wait_for_log(self, text: str, timeout: float) -> float:
        """Wait until ``text`` appears in either stream; the monotonic time it was seen. AssertionError on
        timeout or early exit."""
        deadline = time.monotonic() + timeout
        with self._lines:
            while True:
                if any(text in line for line in self._stdout + self._stderr):
                    return time.monotonic()
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not any(t.is_alive() for t in self._readers)):
                    break
                self._lines.wait(min(left, 0.1))
        raise AssertionError(f"{self.name}: {text!r} not logged within {timeout:.0f} s\n{self.log()}")

    def close_stdin(self) -> None:
        """Closing stdin is the helpers' polite 'stop' signal."""
        if self.proc.stdin and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.close()

    def wait(self, timeout: float) -> int:
        """Wait for exit; on timeout kill it and raise AssertionError with its log."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout:.0f} s; killed\n{self.log()}") from None
        for t in self._readers:
            t.join(timeout=2)
        return rc

    def kill(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after 3 s) if still running."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.close_stdin()


class RosProcesses:
    """Starts helper scripts with ``sys.executable``; kills all still running on exit."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.procs: list[RosProcess] = []

    def start(self, name: str, script: str | Path, *args: str, stdin: bool = False) -> RosProcess:
        argv = [sys.executable, str(script), *map(str, args)]
        proc = RosProcess(name, argv, self.env, stdin)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "".join(p.log() for p in self.procs)

    def __enter__(self) -> "RosProcesses":
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.kill()

    def start_checkpoint_pair(self, checkpoint: str | Path, prompt_dir: str | Path) -> tuple[RosProcess, RosProcess]:
        """A prompt encoder and a policy node on one checkpoint (``policy:=checkpoint``, diagnostics every 0.2 s,
        the policy at 20 Hz), prompts allowed from ``prompt_dir`` → (encoder, policy)."""
        ckpt = ["-p", "policy:=checkpoint", "-p", f"checkpoint:={checkpoint}", "-p", "diagnostics_period:=0.2"]
        enc = self.start(
            "prompt_encoder", "-m", "humanprompt_ros.nodes.prompt_encoder", "--ros-args", *ckpt,
            "-p", f"prompt_dirs:=['{prompt_dir}']",
        )  # fmt: skip
        pol = self.start("policy", "-m", "humanprompt_ros.nodes.policy", "--ros-args", *ckpt, "-p", "rate:=20.0")
        return enc, pol


@contextlib.contextmanager
def robot_feed(peer, hand, frames, rate: float = 20.0):
    """Publish, from a thread at ``rate``, the robot's joint states (``hand`` at its neutral pose) and camera
    frames (``frames`` in turn, then the last one again) on the graph's topics → yields the observation
    publisher; stops on exit."""
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import joint_state
    from humanprompt_ros.ros.image import numpy_to_image

    obs_pub, js_pub = peer.publisher(topics.OBSERVATION), peer.publisher(topics.JOINT_STATES)
    stop = threading.Event()

    def feed():
        k = 0
        while not stop.wait(1 / rate):
            stamp = peer.now_msg()
            js_pub.publish(joint_state(hand.joint_names, hand.neutral(), stamp))
            obs_pub.publish(numpy_to_image(frames[min(k, len(frames) - 1)], "rgb8", stamp=stamp))
            k += 1

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield obs_pub
    finally:
        stop.set()
        feeder.join()
