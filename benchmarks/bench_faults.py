"""Faults injected into a running ROS graph (issue 42, item 2): how fast the hand holds, whether any
command breaks the velocity cap, and how the graph recovers.

::

    python benchmarks/bench_faults.py --json runs/faults/faults.json              # policy:=replay, 2 repeats
    python benchmarks/bench_faults.py --policy checkpoint --repeats 3 --json runs/faults/ckpt.json
    python benchmarks/bench_faults.py --faults freeze_camera,flood_hand_target --repeats 1

Brings the graph up in the simulator in real time (``humanprompt-bringup sim:=true policy:=replay``, or
``--policy checkpoint``; real processes, Fast DDS, a private ``ROS_DOMAIN_ID``). For each fault and repeat, a
fresh episode: reset the sim to push_box (a long task) at a held-out seed, set a human demonstration of it as
the prompt (generated with the sim's human expert as ``bench_closed_loop.py`` does), wait until joint commands
flow and ``--settle`` s more (mid-motion), then inject the fault at ``t_fault`` (system time, the clock the
nodes stamp their messages with):

* ``kill_NODE`` (sim_driver, camera, prompt_encoder, policy, command): SIGKILL the node; bringup must respawn
  it (``restarted NAME`` in its output);
* ``freeze_camera``: SIGSTOP the camera process, SIGCONT after ``--fault-s`` (2) s;
* ``flood_hand_target``: another process publishes malformed hand targets (5, 0 or 7 poses) and NaN/inf
  poses on ``/humanprompt/hand_target`` as fast as it can (``--flood-rate``) for ``--fault-s`` s;
* ``joint_states_out_of_order``: another process re-publishes ``/joint_states`` messages it received
  0.5–1 s earlier (old stamps, old positions) at 100 Hz, interleaved with the sim driver's, for ``--fault-s``.

Measured per fault, from the joint commands' own stamps (so delivery delays do not count):

* **hold**: the command stream's gap that contains ``t_fault + --probe`` (1 s: every node-down fault lasts
  ≥ ``respawn_delay`` 2 s); ``hold_s`` = the last command stamped before that gap − ``t_fault`` (target
  ≤ 0.2 s); no such gap (a command stamped within ``--hold-gap`` of the probe): the hand did *not* hold;
* **resume_s**: the first command after the gap − ``t_fault``; at that command, the age of the latest camera
  frame (by stamps) and of the latest valid hand target (by this process's receive times), and how far the
  command is from the measured joints (``/joint_states`` from the sim driver);
* **velocity**: every command is checked (``soak.py``'s :class:`CommandChecker`) against the URDF limits less
  ``joint_limit_margin`` and ``max_joint_velocity`` by consecutive stamps and positions; violations counted
  per fault;
* **recovery**: bringup's ``restarted NAME`` (seconds after the fault), the prompt on ``/humanprompt/prompt``
  after it (the command and policy nodes' diagnostics ``prompt``), the command node's counters
  (``targets_rejected_*``, ``holds``) before and after.

Prints a table; ``--json FILE`` writes every fault's details and the summary. Not a CI test
(``test/test_faults.py`` checks the NaN/malformed flood).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

NODES = ("sim_driver", "camera", "prompt_encoder", "policy", "command")
FAULTS = tuple(f"kill_{n}" for n in NODES) + (
    "freeze_camera",
    "flood_hand_target",
    "joint_states_out_of_order",
    "recorder_disk_full",
)
TASK = "push_box"
COUNTERS = (
    "targets_received",
    "targets_accepted",
    "targets_rejected_nonfinite",
    "targets_rejected_invalid",
    "targets_rejected_frame",
    "holds",
    "commands_published",
    "joint_states_invalid",
)


# -- pure analysis (test/test_faults.py) ---------------------------------------------------------------------
def hold_and_resume(stamps: list[float], t_fault: float, probe: float = 1.0, hold_gap: float = 0.2) -> dict:
    """From sorted command stamps: the gap in the stream that contains ``t_fault + probe``.

    ``{"held": bool, "hold_s": last command before the gap − t_fault, "resume_s": first command after it −
    t_fault (None: none yet), "gap_s"}``; ``held`` False (and hold_s None) when a command lies within
    ``hold_gap`` of the probe time (the stream went on through the fault)."""
    s = np.asarray(sorted(stamps), float)
    tp = t_fault + probe
    k = int(np.searchsorted(s, tp, side="right"))  # s[k-1] <= tp < s[k]
    before = float(s[k - 1]) if k > 0 else None
    after = float(s[k]) if k < len(s) else None
    near = (before is not None and tp - before < hold_gap) or (after is not None and after - tp < hold_gap)
    if near:
        return {"held": False, "hold_s": None, "resume_s": None, "gap_s": None}
    return {
        "held": True,
        "hold_s": None if before is None else round(before - t_fault, 4),
        "resume_s": None if after is None else round(after - t_fault, 4),
        "gap_s": None if before is None or after is None else round(after - before, 4),
    }


def max_gap(stamps: list[float], t0: float, t1: float) -> float | None:
    """The longest gap between consecutive command stamps that overlaps [t0, t1]."""
    s = np.asarray(sorted(stamps), float)
    lo = max(int(np.searchsorted(s, t0)) - 1, 0)
    hi = int(np.searchsorted(s, t1, side="right"))
    sel = s[lo : hi + 1]
    return round(float(np.max(np.diff(sel))), 4) if len(sel) > 1 else None


def malformed_targets(stamp, frame_id: str = "world") -> list:
    """Hand targets the command node must reject: wrong pose counts (5, 0, 7) and NaN/inf values."""
    from geometry_msgs.msg import Pose, PoseArray

    def pose(x, y, z, qw=1.0, qx=0.0):
        p = Pose()
        p.position.x, p.position.y, p.position.z = float(x), float(y), float(z)
        p.orientation.x, p.orientation.w = float(qx), float(qw)
        return p

    def arr(poses):
        m = PoseArray()
        m.header.stamp, m.header.frame_id = stamp, frame_id
        m.poses = poses
        return m

    good = [pose(-0.28, 0.0, 0.22)] + [pose(0.1, 0.02 * i, 0.05) for i in range(4)] + [pose(0, 0, 0, qw=0.0)]
    nan_wrist = [pose(math.nan, 0.0, 0.22)] + good[1:]
    inf_tip = good[:2] + [pose(0.1, math.inf, 0.05)] + good[3:]
    nan_quat = [pose(-0.28, 0.0, 0.22, qw=math.nan)] + good[1:]
    return [arr(good[:5]), arr(nan_wrist), arr([]), arr(inf_tip), arr(good + [pose(0.1, 0.0, 0.0)]), arr(nan_quat)]


# -- workers (separate processes) ---------------------------------------------------------------------------
def worker(kind: str, domain: int, seconds: float, rate: float, subscribers: int = 2) -> int:
    """Another process on the graph's domain: prints {"event": "ready"}, waits for a line on stdin, injects
    for ``seconds`` and prints {"event": "done", "sent": N, "t0": ..., "t1": ...}."""
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.probe import RosPeer

    peer = RosPeer(domain, name=f"fault_{kind}")
    try:
        if kind == "flood_hand_target":
            pub = peer.publisher(topics.HAND_TARGET)
            peer.wait_for_subscription(pub, 60, count=subscribers)  # the command node and the benchmark's recorder
        elif kind == "joint_states_out_of_order":
            pub = peer.publisher(topics.JOINT_STATES)
            seen: deque = deque(maxlen=400)

            def on_state(m):  # the sim driver's, in order (not this process's own old ones coming back)
                ns = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                if not seen or ns > seen[-1][2]:
                    seen.append((time.monotonic(), m, ns))

            peer.node.create_subscription(
                topics.msg_class(topics.JOINT_STATES),
                topics.JOINT_STATES.name,
                on_state,
                topics.subscription_qos(topics.JOINT_STATES),
            )
            peer.wait_for_subscription(pub, 60, count=subscribers)
            peer.wait_until(lambda: len(seen) > 10, 60, "/joint_states")
        else:
            raise SystemExit(f"unknown worker {kind}")
        print(json.dumps({"event": "ready"}), flush=True)
        sys.stdin.readline()
        t0 = time.time()
        end = time.monotonic() + seconds
        sent, period = 0, 1.0 / rate
        next_t = time.monotonic()
        own: set[int] = set()
        while time.monotonic() < end:
            if kind == "flood_hand_target":
                for m in malformed_targets(peer.now_msg()):
                    pub.publish(m)
                    sent += 1
            else:
                now = time.monotonic()
                old = [m for t, m, _ in list(seen) if 0.5 <= now - t <= 1.0 and id(m) not in own]
                if old:
                    m = old[sent % len(old)]
                    own.add(id(m))  # not the same old message twice in a row
                    pub.publish(m)
                    sent += 1
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        print(json.dumps({"event": "done", "sent": sent, "t0": t0, "t1": time.time()}), flush=True)
    finally:
        peer.close()
    return 0


# -- the benchmark ----------------------------------------------------------------------------------------


def command_summary(cmds: list, checker) -> dict:
    """How many commands (receive time, stamp, positions) there were, all finite, all within the checker's limits."""
    q_all = np.array([q for _, _, q in cmds]) if cmds else np.zeros((0, len(checker.names)))
    lo, hi = checker.lower, checker.upper
    return {
        "commands": len(cmds),
        "commands_finite": bool(np.all(np.isfinite(q_all))),
        "commands_within_limits": bool(np.all((q_all >= lo - 1e-9) & (q_all <= hi + 1e-9))),
    }


class GraphDown(RuntimeError):
    """The graph did not command a fresh episode: it did not recover from the previous fault."""


class Bench:
    def __init__(self, args, client, log_path: Path, checker, env: dict, domain: int):
        self.args, self.client, self.log_path, self.checker, self.env, self.domain = (
            args,
            client,
            log_path,
            checker,
            env,
            domain,
        )
        self.lock = threading.Lock()
        self.cmds: list[tuple[float, float, np.ndarray]] = []  # (receive mono, stamp, q)
        self.obs: list[tuple[float, float]] = []  # (receive mono, stamp)
        self.states: list[tuple[float, float, np.ndarray]] = []  # sim driver's /joint_states (not re-sent ones)
        self.prompts: list[tuple[float, str]] = []  # (receive wall time, id)

    def subscribe(self) -> None:
        from humanprompt_ros.ros import topics
        from humanprompt_ros.ros.conversions import joint_positions

        node, ck = self.client.peer.node, self.checker

        def stamp(m):
            return m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec

        def on_command(m):
            t = stamp(m)
            with self.lock:
                ck.check(t, list(m.name), m.position)
                self.cmds.append((time.monotonic(), t, np.asarray(m.position, float)))

        def on_joints(m):
            with contextlib.suppress(ValueError), self.lock:
                q = joint_positions(m, ck.names)
                t = stamp(m)
                if not self.states or t > self.states[-1][1]:  # in order only: the re-sent old ones are not
                    self.states.append((time.monotonic(), t, q))
                    ck.measured(t, q)

        def on_obs(m):
            with self.lock:
                self.obs.append((time.monotonic(), stamp(m)))

        def on_prompt(m):
            with contextlib.suppress(ValueError):
                pid = str(json.loads(m.data).get("id") or "")
                with self.lock:
                    if pid and (not self.prompts or self.prompts[-1][1] != pid):
                        ck.new_prompt(time.time())
                    self.prompts.append((time.time(), pid))

        for topic, cb in (
            (topics.JOINT_COMMANDS, on_command),
            (topics.JOINT_STATES, on_joints),
            (topics.OBSERVATION, on_obs),
            (topics.PROMPT, on_prompt),
        ):
            node.create_subscription(topics.msg_class(topic), topic.name, cb, topics.subscription_qos(topic))

    # -- bringup's output ------------------------------------------------------------------------------
    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def pids(self) -> dict[str, int]:
        out = {}
        for line in self.log_lines():
            m = re.match(r"\[bringup\] (?:re)?started (\w+) \(pid (\d+)", line)
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    def wait_restart(self, node: str, n_lines: int, timeout: float) -> float | None:
        """Wall time when ``restarted NODE`` appeared after line ``n_lines`` (polled), None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith(f"[bringup] restarted {node} ") for line in self.log_lines()[n_lines:]):
                return time.time()
            time.sleep(0.02)
        return None

    def command_status_after(self, t_mono: float, timeout: float = 5.0) -> dict:
        """The command node's first diagnostics received after ``t_mono``."""

        def find():
            for _, arr in self.client.diag.since(t_mono):
                for st in arr.status:
                    if st.name == "command":
                        return {"message": st.message, **{kv.key: kv.value for kv in st.values}}
            return None

        with contextlib.suppress(TimeoutError):
            return self.client.peer.wait_until(find, timeout, "command diagnostics", poll=0.05)
        return {}

    def start_worker(self, kind: str) -> subprocess.Popen:
        p = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                kind,
                "--domain",
                str(self.domain),
                "--fault-s",
                str(self.args.fault_s),
                "--flood-rate",
                str(self.args.flood_rate),
            ],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = p.stdout.readline()
        if '"ready"' not in line:
            p.kill()
            raise RuntimeError(f"worker {kind} did not get ready: {line!r}")
        return p

    def start_episode(self, seed: int, prompt: str) -> None:
        """Reset the sim, set the prompt, wait until joint commands flow (GraphDown when they do not: the
        previous fault left the graph broken)."""
        c = self.client
        try:
            c.reset_sim(TASK, seed)
            ok, reason = c.set_prompt(prompt)
            if not ok:
                raise RuntimeError(f"prompt refused: {reason}")
            c.peer.wait_until(lambda: len(c.commands.since(time.monotonic() - 0.2)) > 5, 30, "joint commands")
        except (TimeoutError, RuntimeError) as exc:
            raise GraphDown(f"{type(exc).__name__}: {exc}; {self.status_line()}") from exc

    def status_line(self) -> str:
        return "; ".join(f"{n}: {self.client.node_status(n).get('message')}" for n in NODES)

    # -- the recorder on a full disk -------------------------------------------------------------------
    def run_recorder_disk_full(self, seed: int, prompt: str) -> dict:
        """A recorder node (not part of bringup's graph) records the running graph into a ``--disk-kb`` tmpfs in
        its own mount namespace (``unshare -rm``): a first short episode fits and is saved, the second fills
        the file system. The first must stay readable (``load_episode``), the second be reported at ``~/stop``
        and in the diagnostics, the recorder stay up, and the graph's commands be unaffected."""
        import shutil
        import tempfile

        from std_srvs.srv import Trigger

        from humanprompt_ros.data import load_episode

        a, c = self.args, self.client
        rec: dict = {"fault": "recorder_disk_full", "seed": seed}
        if shutil.which("unshare") is None:
            return {**rec, "error": "no unshare(1): cannot mount a private tmpfs"}
        self.start_episode(seed, prompt)
        with self.lock:
            n_viol0, n_cmd0 = self.checker.total, len(self.cmds)
        mnt = Path(tempfile.mkdtemp(prefix="hp_faults_disk_"))
        node_cmd = (
            f"mount -t tmpfs -o size={a.disk_kb}k tmpfs {mnt} && exec {sys.executable} -m "
            f"humanprompt_ros.nodes.recorder --ros-args -p root:={mnt}/data -p task:={TASK} "
            "-p diagnostics_period:=0.5"
        )
        node = subprocess.Popen(
            ["unshare", "-rm", "sh", "-c", node_cmd],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        threading.Thread(target=lambda: [lines.append(ln.rstrip()) for ln in node.stdout], daemon=True).start()
        call = {n: c.peer.node.create_client(Trigger, f"/recorder/{n}") for n in ("start", "stop")}
        try:
            t0 = time.time()
            assert c.trigger(call["start"], timeout=60).success
            time.sleep(a.first_episode_s)
            first = c.trigger(call["stop"], timeout=60)
            rec["first_stop"] = {"success": first.success, "message": first.message[:300]}
            t_fault = time.time()
            second_start = c.trigger(call["start"], timeout=30)
            rec["second_start"] = second_start.success
            with contextlib.suppress(TimeoutError):
                c.peer.wait_until(
                    lambda: any("failed while recording" in ln for ln in lines), 30, "the write failure", poll=0.1
                )
            rec["write_failed_after_s"] = round(time.time() - t_fault, 2)
            second = c.trigger(call["stop"], timeout=60)
            rec["second_stop"] = {"success": second.success, "message": second.message[:300]}
            root = Path(f"/proc/{node.pid}/root") / str(mnt).lstrip("/") / "data"
            eps = sorted(p.name for p in (root / TASK / "robot").iterdir()) if (root / TASK).exists() else []
            rec["episodes_on_disk"] = eps
            try:
                ep = load_episode(root / TASK / "robot" / "0000000")
                rec["first_episode_readable"] = True
                rec["first_episode_frames"] = len(ep.frames())
            except Exception as exc:  # noqa: BLE001 - the finding
                rec["first_episode_readable"] = f"{type(exc).__name__}: {exc}"
            rec["partial_removed"] = "0000001" not in eps
            time.sleep(1.2)
            st = {}
            for _, arr in reversed(c.diag.snapshot()):
                st = next(({kv.key: kv.value for kv in s.values} for s in arr.status if s.name == "recorder"), {})
                if st:
                    break
            rec["diagnostics"] = {k: st.get(k) for k in ("episodes_saved", "episodes_failed", "last_error")}
            rec["recorder_alive"] = node.poll() is None
            rec["t_fault"] = t_fault
            rec["recording_s"] = round(time.time() - t0, 1)
        finally:
            node.send_signal(signal.SIGINT)
            try:
                node.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.kill()
            with contextlib.suppress(OSError):
                mnt.rmdir()
        with self.lock:
            cmds = self.cmds[n_cmd0:]
            rec["velocity_violations"] = self.checker.total - n_viol0
        stamps = [s for _, s, _ in cmds]
        rec.update(command_summary(cmds, self.checker))
        rec["max_gap_during_fault_s"] = max_gap(stamps, rec.get("t_fault", 0.0), time.time())
        rec["held"], rec["hold_s"], rec["resume_s"] = False, None, None
        rec["recorder_log_tail"] = lines[-6:]
        return rec

    # -- one fault ---------------------------------------------------------------------------------------
    def run_fault(self, fault: str, seed: int, prompt: str) -> dict:
        if fault == "recorder_disk_full":
            return self.run_recorder_disk_full(seed, prompt)
        a, c = self.args, self.client
        rec: dict = {"fault": fault, "seed": seed}
        worker_proc = None
        if fault in ("flood_hand_target", "joint_states_out_of_order"):
            worker_proc = self.start_worker(fault)  # discovery before the episode starts
        try:
            self.start_episode(seed, prompt)
        except GraphDown:
            if worker_proc is not None:
                worker_proc.kill()
            raise
        pid_prompt = json.loads(c.prompt.last()[1].data).get("id")
        time.sleep(a.settle)
        before = c.node_status("command")
        with self.lock:
            n_viol0, n_cmd0 = self.checker.total, len(self.cmds)
        n_lines = len(self.log_lines())
        end_of_fault = None
        t_fault = None
        if fault.startswith("kill_"):
            node = fault[5:]
            pid = self.pids()[node]
            t_fault = time.time()
            os.kill(pid, signal.SIGKILL)
            t_restart = self.wait_restart(node, n_lines, 60)
            rec["restarted_after_s"] = None if t_restart is None else round(t_restart - t_fault, 2)
            end_of_fault = t_restart
        elif fault == "freeze_camera":
            pid = self.pids()["camera"]
            t_fault = time.time()
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(a.fault_s)
            finally:
                os.kill(pid, signal.SIGCONT)
            end_of_fault = time.time()
        else:
            t_fault = time.time()
            worker_proc.stdin.write("go\n")
            worker_proc.stdin.flush()
            done = json.loads(worker_proc.stdout.readline() or "{}")
            worker_proc.wait(timeout=30)
            rec["injected"] = done.get("sent")
            end_of_fault = done.get("t1", time.time())
        rec["fault_s"] = round((end_of_fault or time.time()) - t_fault, 2)
        # wait for the stream to resume (or for --resume-timeout)
        if fault == "kill_prompt_encoder":
            # the respawned encoder re-applies the prompt it kept (resume_file): wait for it, then a moment
            with contextlib.suppress(TimeoutError):
                c.peer.wait_until(
                    lambda: any(t > t_fault for t, _ in self.prompts), a.resume_timeout, "the prompt re-applied"
                )
            time.sleep(1.0)
        else:
            with contextlib.suppress(TimeoutError):
                c.peer.wait_until(
                    lambda: any(s > max(end_of_fault or 0, t_fault + a.probe) for _, s, _ in self.cmds[-50:]),
                    a.resume_timeout,
                    "joint commands after the fault",
                    poll=0.05,
                )
            time.sleep(1.0)
        after = self.command_status_after(time.monotonic(), timeout=3.0)
        with self.lock:
            cmds = self.cmds[n_cmd0:]
            earlier = [st for _, st, _ in self.cmds[max(0, n_cmd0 - 100) : n_cmd0]]  # the stream before the fault
            rec["velocity_violations"] = self.checker.total - n_viol0
            obs = list(self.obs)
            states = list(self.states)
            prompts = list(self.prompts)
        stamps = [s for _, s, _ in cmds]
        rec.update(command_summary(cmds, self.checker))
        rec["t_fault"] = t_fault
        rec["max_gap_during_fault_s"] = max_gap(stamps, t_fault, end_of_fault or t_fault + a.fault_s)
        rec["commands_during_fault"] = sum(t_fault < s <= (end_of_fault or t_fault) for s in stamps)
        h = hold_and_resume(earlier + stamps, t_fault, a.probe, a.hold_gap)
        if fault == "kill_prompt_encoder":
            # the stream goes on while the encoder is down; the respawned one re-publishes the prompt it kept,
            # under the same id, so the policy carries on (a cleared or new prompt would stop or restart it)
            kept = next((p for t, p in reversed(prompts) if t <= t_fault), "")
            again = next(((t, p) for t, p in prompts if t > t_fault), None)
            rec["prompt_reapplied_after_s"] = None if again is None else round(again[0] - t_fault, 2)
            rec["prompt_same_id"] = again is not None and again[1] == kept != ""
            last = max(stamps, default=None)
            rec["commands_flowing_at_end"] = last is not None and time.time() - last < 0.5
        rec.update(h)
        if h["held"] and h["resume_s"] is not None:
            t_res = t_fault + h["resume_s"]
            i = next(k for k, (_, s, _) in enumerate(cmds) if s >= t_res - 1e-9)
            recv, _, q = cmds[i]
            o = [s for _, s in obs if s <= t_res]
            rec["frame_age_at_resume_s"] = round(t_res - o[-1], 3) if o else None  # by capture stamps
            o = [t for t, _ in obs if t <= recv]
            rec["frame_arrival_age_at_resume_s"] = round(recv - o[-1], 3) if o else None  # by arrival here
            tg = [
                t
                for t, m in c.targets.snapshot()
                if t <= recv and len(m.poses) == 6 and all(math.isfinite(p.position.x) for p in m.poses)
            ]
            rec["target_age_at_resume_s"] = round(recv - tg[-1], 3) if tg else None
            st = [(s, qq) for _, s, qq in states if s <= t_res]
            if st:
                rec["resume_vs_measured_rad"] = round(float(np.max(np.abs(q - st[-1][1]))), 4)
                rec["measured_age_at_resume_s"] = round(t_res - st[-1][0], 3)
        rec["counters"] = {k: [before.get(k), after.get(k)] for k in COUNTERS}
        rec["command_state_after"] = after.get("message")
        rec["prompt_before"] = pid_prompt
        rec["prompt_after"] = {"command": after.get("prompt"), "policy": c.node_status("policy").get("prompt")}
        rec["policy_state_after"] = c.node_status("policy").get("message")
        if fault.startswith("kill_"):
            rec["pid_changed"] = self.pids().get(fault[5:]) != pid
        return rec


def summarize(records: list[dict]) -> dict:
    out = {}
    for fault in dict.fromkeys(r["fault"] for r in records):
        rs = [r for r in records if r["fault"] == fault]
        holds = [r["hold_s"] for r in rs if r.get("held") and r.get("hold_s") is not None]
        res = [r["resume_s"] for r in rs if r.get("held") and r.get("resume_s") is not None]

        def pm(v):
            return {"p50": round(float(np.median(v)), 3), "max": round(float(np.max(v)), 3)} if v else None

        out[fault] = {
            "repeats": len(rs),
            "held": sum(bool(r.get("held")) for r in rs),
            "hold_s": pm(holds),
            "resume_s": pm(res),
            "restarted_after_s": pm([r["restarted_after_s"] for r in rs if r.get("restarted_after_s") is not None]),
            "velocity_violations": sum(r["velocity_violations"] for r in rs),
            "non_finite_or_out_of_limits": sum(not (r["commands_finite"] and r["commands_within_limits"]) for r in rs),
            "max_gap_during_fault_s": pm([r["max_gap_during_fault_s"] for r in rs if r["max_gap_during_fault_s"]]),
            "frame_age_at_resume_s": pm([r["frame_age_at_resume_s"] for r in rs if r.get("frame_age_at_resume_s")]),
            "target_age_at_resume_s": pm(
                [r["target_age_at_resume_s"] for r in rs if r.get("target_age_at_resume_s") is not None]
            ),
            "resume_vs_measured_rad": pm(
                [r["resume_vs_measured_rad"] for r in rs if r.get("resume_vs_measured_rad") is not None]
            ),
        }
    return out


def print_table(summary: dict, records: list[dict]) -> None:
    def f(d, k="p50"):
        return "-" if not d else f"{d[k]:.3f}"

    print(
        f"\n{'fault':28s} {'n':>2s} {'held':>4s} {'hold p50':>9s} {'hold max':>9s} {'resume p50':>10s} "
        f"{'respawn p50':>11s} {'vel.viol':>8s} {'bad cmds':>8s} {'max gap':>8s}"
    )
    for fault, s in summary.items():
        print(
            f"{fault:28s} {s['repeats']:2d} {s['held']:4d} {f(s['hold_s']):>9s} {f(s['hold_s'], 'max'):>9s} "
            f"{f(s['resume_s']):>10s} {f(s['restarted_after_s']):>11s} {s['velocity_violations']:8d} "
            f"{s['non_finite_or_out_of_limits']:8d} {f(s['max_gap_during_fault_s'], 'max'):>8s}"
        )
    print("\nper fault:")
    for r in records:
        keep = {k: v for k, v in r.items() if k not in ("t_fault",)}
        print(json.dumps(keep, default=str))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", choices=["replay", "checkpoint"], default="replay")
    ap.add_argument("--checkpoint", default="", help="--policy checkpoint: default models/policy.safetensors")
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS)}")
    ap.add_argument("--repeats", type=int, default=2, help="episodes per fault")
    ap.add_argument("--fault-s", type=float, default=2.0, help="freeze / flood / out-of-order duration")
    ap.add_argument("--flood-rate", type=float, default=200.0, help="flood bursts per second (6 messages each)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds of motion before the fault")
    ap.add_argument("--probe", type=float, default=1.0, help="the hold must cover t_fault + this")
    ap.add_argument("--hold-gap", type=float, default=0.2, help="no command within this of the probe: held")
    ap.add_argument("--resume-timeout", type=float, default=60.0)
    ap.add_argument("--disk-kb", type=int, default=1024, help="recorder_disk_full: the tmpfs size")
    ap.add_argument("--first-episode-s", type=float, default=1.0, help="recorder_disk_full: the episode that fits")
    ap.add_argument("--respawn-delay", type=float, default=2.0)
    ap.add_argument("--stamp-jitter-ms", type=float, default=1.0)
    ap.add_argument("--prompt-dir", default="", help="default runs/faults/prompts (cached)")
    ap.add_argument("--json", default="", help="write the details and summary here")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--domain", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--subscribers", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.domain, args.fault_s, args.flood_rate, args.subscribers)
    faults = [f for f in args.faults.split(",") if f]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        ap.error(f"unknown faults {unknown}")

    from bench_closed_loop import generate_prompts, policy_graph_args, start_bringup
    from soak import command_checker

    graph_args, _ = policy_graph_args(args.policy, args.checkpoint)
    graph_args.append(f"respawn_delay:={args.respawn_delay}")
    root = Path(args.prompt_dir or REPO / "runs" / "faults" / "prompts").resolve()
    seeds = [1_000_000 + k for k in range(min(args.repeats, 3))]
    by_scene = generate_prompts(root, [TASK], seeds, prompt_mode="other" if args.policy == "checkpoint" else "same")
    checker, cmd_params = command_checker(args.stamp_jitter_ms / 1e3)

    sys.path.insert(0, str(REPO / "test"))
    from helpers.ros import make_ros_env, reserve_domain_id
    from humanprompt_ros.ros.graph_client import GraphClient

    out_dir = Path(args.json).resolve().parent if args.json else REPO / "runs" / "faults"
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "bringup.log"
    records: list[dict] = []
    t_start = time.monotonic()
    load0 = os.getloadavg()[0]
    with reserve_domain_id() as domain:
        env = make_ros_env(domain)
        env["HUMANPROMPT_PROMPT_DIR"] = str(root)
        proc = start_bringup(env, *graph_args, log_path=str(log_path))
        client = GraphClient(domain)
        bench = Bench(args, client, log_path, checker, env, domain)
        bench.subscribe()
        restarts = 0

        def stop_bringup(p):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

        try:
            client.wait_ready(timeout=240)
            print(f"[faults] graph up (domain {domain}, policy {args.policy}); faults {faults}", flush=True)
            previous = None
            for rep in range(args.repeats):
                for fault in faults:
                    seed = seeds[rep % len(seeds)]
                    for _attempt in range(2):
                        try:
                            r = bench.run_fault(fault, seed, by_scene[(TASK, seed)])
                        except GraphDown as exc:
                            # the graph did not recover from the previous fault: say so, start it again
                            down = {"fault": previous, "repeat": rep, "graph_down_after": True, "error": str(exc)}
                            records.append(down)
                            print(f"[faults] GRAPH DOWN after {previous}: {exc}; restarting bringup", flush=True)
                            stop_bringup(proc)
                            restarts += 1
                            bench.log_path = log_path = out_dir / f"bringup.{restarts}.log"
                            proc = start_bringup(env, *graph_args, log_path=str(log_path))
                            client.wait_ready(timeout=240)
                            continue
                        except Exception as exc:  # noqa: BLE001 - report it, go on with the next fault
                            r = {"fault": fault, "seed": seed, "error": f"{type(exc).__name__}: {exc}"}
                        break
                    else:
                        r = {"fault": fault, "seed": seed, "error": "the graph did not come up twice"}
                    r["repeat"] = rep
                    records.append(r)
                    previous = fault
                    print(f"[faults] {json.dumps(r, default=str)}", flush=True)
                    # every node back before the next fault
                    with contextlib.suppress(TimeoutError):
                        client.wait_ready(timeout=120)
        finally:
            client.close()
            stop_bringup(proc)
    ok = [r for r in records if "error" not in r]
    summary = summarize(ok)
    for r in records:
        if r.get("graph_down_after") and r["fault"] in summary:
            summary[r["fault"]]["graph_not_recovered"] = summary[r["fault"]].get("graph_not_recovered", 0) + 1
    machine = {"cpus": os.cpu_count(), "load1_start": round(load0, 2), "load1_end": round(os.getloadavg()[0], 2)}
    print_table(summary, records)
    print(f"bringup restarted by this script (graph not recovered): {restarts}")
    errors = [r for r in records if "error" in r]
    if errors:
        print(f"\n{len(errors)} fault runs failed: {[(r['fault'], r['error']) for r in errors]}")
    print(f"machine: {machine}; {time.monotonic() - t_start:.0f} s")
    if args.json:
        doc = {
            "args": vars(args),
            "command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]),
            "machine": machine,
            "summary": summary,
            "records": records,
            "checker": {"counts": dict(checker.counts), "violations": checker.violations[:50]},
        }
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
