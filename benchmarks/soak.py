"""Soak test of the ROS graph: hours of resets, prompt changes and bad prompts, watched for leaks and faults.

::

    python benchmarks/soak.py --minutes 30                        # the learned policy (models/policy.safetensors)
    python benchmarks/soak.py --minutes 10 --policy replay        # cheaper: retarget the prompts' actions
    python benchmarks/soak.py --minutes 2 --out runs/soak/try     # a quick try

Brings the graph up in the simulator in real time (``humanprompt-bringup sim:=true policy:=POLICY``, real
processes, Fast DDS, a private ``ROS_DOMAIN_ID``) and drives it from this process, as an operator would:

* every ``--period`` seconds, a **cycle**: reset the episode (a random task of the 8, a random held-out seed
  ≥ 1,000,000; :meth:`GraphClient.reset_sim` clears the prompt first) and set a good prompt (a human
  demonstration of that task, generated with the sim's expert into the prompt directory, from another
  held-out scene as ``bench_closed_loop.py --prompt-seed other`` picks it); then a **bad prompt** (in turn: a
  non-video file, a truncated mp4 whose index is cut off, a missing path, a directory without ``meta.json``
  or any video), which must be refused while the old prompt stays; every other cycle, a second good prompt
  (of a random task) replaces the first mid-episode, without a reset.
* a good prompt is **lost** when its set is refused, or its id never becomes the policy's active prompt
  (policy diagnostics ``prompt``) within ``--prompt-timeout``; the active prompt is lost when a bad prompt is
  accepted or a new prompt message / another policy prompt follows a refused one.
* every ``--sample-every`` seconds: each node's RSS and CPU (psutil when installed, else ``/proc``), the
  machine's CPU use and load, and each node's latest ``/diagnostics`` (rates, latencies, counters).
* every joint command on ``/humanprompt/joint_commands`` is checked (:class:`CommandChecker`) against the
  hand's URDF limits less the command node's ``joint_limit_margin`` and against its ``max_joint_velocity``,
  judged from consecutive commands' stamps and positions (per step, and over ≥ 0.1 s windows) with
  ``--stamp-jitter-ms`` of slack for stamps taken a little late under load. The command node starts each
  new prompt from the measured joints, not from its last command, so for a while after a new prompt a
  command too far from the previous one is judged against the last ``/joint_states`` instead (once).
* bringup's output (in ``OUT/bringup.log``) is read for node exits and restarts (``restarted NAME``).

Written to ``--out`` (default ``runs/soak/<timestamp>``): ``soak.json`` (every sample, event and
violation, and the summary; rewritten every minute while running), ``soak.png`` (RSS, CPU, rates and
latencies over time) and ``bringup.log``. The summary is printed last. **Targets** (exit code 1 when one
is missed, so the script can gate): memory growth after warm-up < 5 % per node (warm-up = the first 20 %
of the run; growth = (median RSS over the last 10 % − median over the 10 % right after the warm-up) / the
latter), no node deaths, no command outside the limits or the velocity cap, no prompt lost, no bad prompt
accepted. Exit code 2: the graph could not be set up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TASKS = (
    "knock_over",
    "open_drawer",
    "pick_lift",
    "pick_place",
    "press_button",
    "pull_puck",
    "push_box",
    "rotate_lever",
)
NODES = ("sim_driver", "camera", "prompt_encoder", "policy", "command")
BAD_KINDS = ("not_a_video", "truncated_mp4", "missing_path", "dir_without_meta")
WARMUP_FRACTION = 0.2  # the first 20 % of the run
BASE_FRACTION = 0.1  # the baseline: the 10 % right after the warm-up
TAIL_FRACTION = 0.1  # the end: the last 10 %
GROWTH_TARGET = 0.05

# diagnostics plotted and summarised: (node, key, label)
RATES = (
    ("sim_driver", "image_rate_hz", "sim images"),
    ("camera", "rate_hz", "camera observations"),
    ("policy", "target_rate_hz", "policy targets"),
    ("command", "command_rate_hz", "joint commands"),
)
LATENCIES = (
    ("camera", "latency_p50_ms", "capture → observation p50"),
    ("policy", "inference_p50_ms", "inference p50"),
    ("command", "fresh_frame_to_command_p50_ms", "capture → first command of a chunk p50"),
    ("command", "frame_to_command_p50_ms", "capture → command p50 (with chunk age)"),
)


# -- pure logic (test/test_soak.py) -------------------------------------------------------------------------
def memory_growth(times: list[float], values: list[float | None], duration: float) -> dict:
    """Growth of a series sampled at ``times`` (seconds from the start of a run of ``duration`` s): the median
    over the last 10 % against the median over the 10 % right after the warm-up (the first 20 %).
    ``{"base", "end", "growth"}``; growth None when either window has no sample."""
    t = np.asarray(times, float)
    v = np.array([np.nan if x is None else x for x in values], float)
    w0, w1 = WARMUP_FRACTION * duration, (WARMUP_FRACTION + BASE_FRACTION) * duration
    base_sel = (t >= w0) & (t < w1) & np.isfinite(v)
    end_sel = (t >= (1 - TAIL_FRACTION) * duration) & np.isfinite(v)
    if not base_sel.any() or not end_sel.any():
        return {"base": None, "end": None, "growth": None}
    base, end = float(np.median(v[base_sel])), float(np.median(v[end_sel]))
    return {"base": base, "end": end, "growth": (end - base) / base if base > 0 else None}


@dataclass
class CommandChecker:
    """Checks a stream of joint commands against position limits and a velocity cap.

    ``lower``/``upper``: the limits the commands must stay within (URDF limits less the margin);
    ``max_velocity`` (rad/s per joint): judged between consecutive commands' stamps and over spans of at
    least ``window`` s; ``jitter`` (s): slack on each stamp difference, for stamps taken a little late under
    load. The command node starts each new prompt from the measured joints, not from its last command
    (:meth:`new_prompt`): for ``arm_s`` after a new prompt is seen, a command that fails the velocity check
    against the previous command is judged against the last measured joints instead (within one
    velocity step, ``period`` and ``jitter``, of where the hand was, plus ``measured_slack`` rad); the first
    that passes so starts a new segment."""

    names: list[str]
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: float
    period: float = 0.01
    jitter: float = 0.005
    window: float = 0.1
    pause: float = 0.15
    arm_s: float = 10.0
    measured_slack: float = 0.02
    eps: float = 1e-9
    keep: int = 200
    checked: int = 0
    segment_starts: int = 0
    max_step_ratio: float = 0.0  # the largest |Δq| / (max_velocity·Δt) between consecutive commands (no new segment)
    counts: dict = field(
        default_factory=lambda: {"limit": 0, "velocity": 0, "velocity_window": 0, "segment_start": 0, "malformed": 0}
    )
    violations: list = field(default_factory=list)
    pauses: list = field(default_factory=list)  # gaps in the command stream longer than `pause`: (stamp, s)
    _prev: tuple | None = None
    _recent: deque = field(default_factory=lambda: deque(maxlen=64))
    _armed: float | None = None  # when a new prompt was seen (s, the stamps' clock); None: not armed
    _measured: tuple | None = None  # (stamp s, positions)

    def new_prompt(self, t: float) -> None:
        """A new non-empty prompt was seen at time ``t`` (same clock as the stamps)."""
        self._armed = t

    def measured(self, t: float, q: np.ndarray) -> None:
        """The latest measured joint positions (``/joint_states`` stamped ``t``, in :attr:`names` order)."""
        self._measured = (t, np.asarray(q, float))

    def _violation(self, kind: str, t: float, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.violations) < self.keep:
            self.violations.append({"kind": kind, "stamp": t, "detail": detail})

    def _too_fast(self, t: float, q: np.ndarray, prev: tuple) -> tuple[str, str] | None:
        """(kind, detail) when ``q`` at ``t`` moved faster than the cap since ``prev`` or over the window."""
        dt = t - prev[0]
        delta = np.abs(q - prev[1])
        step = float(delta.max())
        allowed = self.max_velocity * (max(dt, 0.0) + self.jitter) + self.eps
        if step > allowed:
            j = int(np.argmax(delta))
            return "velocity", f"{self.names[j]} moved {step:.4f} rad in {dt * 1e3:.1f} ms (> {allowed:.4f} allowed)"
        old = None
        for item in self._recent:
            if t - item[0] >= self.window:
                old = item
            else:
                break
        if old is not None:
            span, move = t - old[0], float(np.max(np.abs(q - old[1])))
            if move > self.max_velocity * (span + self.jitter) + self.eps:
                return "velocity_window", f"moved {move:.4f} rad in {span * 1e3:.0f} ms (cap {self.max_velocity} rad/s)"
        return None

    def check(self, t: float, names: list[str], q) -> None:
        """One command stamped ``t`` (s) with ``names`` and positions ``q``."""
        self.checked += 1
        q = np.asarray(q, float)
        if list(names) != list(self.names) or q.shape != (len(self.names),) or not np.all(np.isfinite(q)):
            self._violation(
                "malformed", t, f"names {list(names)[:3]}..., {q.shape} values, finite {bool(np.isfinite(q).all())}"
            )
            return
        below, above = q < self.lower - self.eps, q > self.upper + self.eps
        for j in np.flatnonzero(below | above):
            bound = self.lower[j] if below[j] else self.upper[j]
            self._violation("limit", t, f"{self.names[j]} = {q[j]:.5f} beyond {bound:.5f}")
        prev, self._prev = self._prev, (t, q)
        if self._armed is not None and t - self._armed > self.arm_s:
            self._armed = None
        if prev is not None:
            if t - prev[0] > self.pause and len(self.pauses) < 20 * self.keep:
                self.pauses.append((round(t, 3), round(t - prev[0], 3)))
            bad = self._too_fast(t, q, prev)
            if bad is not None and self._armed is not None and self._measured is not None:
                # the first command of a new prompt starts from the measured joints
                t_m, q_m = self._measured
                step = float(np.max(np.abs(q - q_m)))
                allowed = self.max_velocity * (abs(t - t_m) + self.period + self.jitter) + self.measured_slack
                self._armed = None
                self._recent.clear()
                if step <= allowed:
                    self.segment_starts += 1
                    bad = None
                else:
                    bad = (
                        "segment_start",
                        f"{bad[1]}; and {step:.4f} rad from the measured joints (> {allowed:.4f}) after a new prompt",
                    )
            if bad is not None:
                self._violation(bad[0], t, bad[1])
            elif self._recent and t > prev[0]:  # a continuation: how close to the cap it came
                step = float(np.max(np.abs(q - prev[1])))
                self.max_step_ratio = max(self.max_step_ratio, step / (self.max_velocity * (t - prev[0])))
        while len(self._recent) > 1 and t - self._recent[1][0] >= self.window:
            self._recent.popleft()  # keep one entry at least `window` old
        self._recent.append((t, q))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def command_checker(jitter_s: float) -> tuple["CommandChecker", dict]:
    """A :class:`CommandChecker` for the shipped command node (config/command.yaml: its limit margin, velocity cap,
    rate and target timeout) on the Allegro hand, and those parameters."""
    import yaml

    from humanprompt_ros.control.safety import safe_limits
    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.paths import config_path

    cmd_params = yaml.safe_load(config_path("command.yaml").read_text())["command"]["ros__parameters"]
    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    lower, upper = safe_limits(*hand.joint_limits, float(cmd_params["joint_limit_margin"]))
    checker = CommandChecker(
        names=list(hand.joint_names),
        lower=lower,
        upper=upper,
        max_velocity=float(cmd_params["max_joint_velocity"]),
        period=1.0 / float(cmd_params["rate"]),
        jitter=jitter_s,
        pause=float(cmd_params["target_timeout"]),
    )
    return checker, cmd_params


def targets_missed(summary: dict) -> list[str]:
    """The targets a summary misses, one line each (empty: all met)."""
    out = []
    for node, m in summary["memory"].items():
        if m["growth"] is not None and m["growth"] >= GROWTH_TARGET:
            out.append(
                f"{node}: memory grew {100 * m['growth']:.1f} % after warm-up (target < {100 * GROWTH_TARGET:g} %)"
            )
    if summary["deaths"]:
        out.append(f"node deaths: {summary['deaths']} ({summary['death_events']})")
    if summary["commands"]["violations"]:
        out.append(f"joint commands outside the limits or the velocity cap: {summary['commands']['counts']}")
    if summary["prompts"]["lost"]:
        out.append(f"prompts lost: {summary['prompts']['lost']}")
    if summary["bad_prompts"]["accepted"]:
        out.append(f"bad prompts accepted: {summary['bad_prompts']['accepted']}")
    return out


# -- processes -------------------------------------------------------------------------------------------
try:
    import psutil
except ImportError:
    psutil = None

CLK = os.sysconf("SC_CLK_TCK")


_GONE = (OSError, ValueError, IndexError) + ((psutil.Error,) if psutil is not None else ())


def proc_sample(pid: int) -> dict | None:
    """{rss_mb, anon_mb, cpu_s} of a process (None when it is gone); anon_mb: psutil's USS, else RssAnon."""
    try:
        if psutil is not None:
            p = psutil.Process(pid)
            mem, cpu = p.memory_full_info(), p.cpu_times()
            return {"rss_mb": mem.rss / 2**20, "anon_mb": mem.uss / 2**20, "cpu_s": cpu.user + cpu.system}
        status = Path(f"/proc/{pid}/status").read_text()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kb = {ln.split(":")[0]: int(ln.split()[1]) for ln in status.splitlines() if ln.startswith(("VmRSS", "RssAnon"))}
        return {
            "rss_mb": kb.get("VmRSS", 0) / 1024,
            "anon_mb": kb.get("RssAnon", 0) / 1024,
            "cpu_s": (int(fields[11]) + int(fields[12])) / CLK,
        }
    except _GONE:
        return None


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine (/proc/stat)."""
    vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return float(sum(vals) - idle), float(sum(vals))


class BringupLog:
    """Reads bringup's output file as it grows: node pids, exits and restarts."""

    def __init__(self, path: Path):
        self.path = path
        self.pos = 0
        self.pids: dict[str, int] = {}
        self.events: list[dict] = []
        self.shutting_down = False

    def poll(self, t: float) -> None:
        import re

        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return
        data = data[: data.rfind(b"\n") + 1]  # whole lines only
        self.pos += len(data)
        for line in data.decode(errors="replace").splitlines():
            if not line.startswith("[bringup]"):
                continue
            if "received SIG" in line or "shutting down" in line:
                self.shutting_down = True
            m = re.match(r"\[bringup\] (re)?started (\w+) \(pid (\d+)", line)
            if m:
                self.pids[m.group(2)] = int(m.group(3))
                if m.group(1):
                    self.events.append({"t": t, "kind": "restarted", "node": m.group(2), "line": line})
                continue
            m = re.match(r"\[bringup\] (\w+) exited with code (-?\d+)", line)
            if m and not self.shutting_down:
                self.events.append(
                    {"t": t, "kind": "exited", "node": m.group(1), "code": int(m.group(2)), "line": line}
                )


# -- prompts --------------------------------------------------------------------------------------------
def make_bad_prompts(root: Path) -> dict[str, tuple[str, str]]:
    """The bad prompts, inside the prompt directory: {kind: (path, what the refusal must say)}."""
    from humanprompt_ros.data import write_video

    bad = root / "_soak_bad"
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "notes.txt").write_text("not a video\n")
    whole = write_video(bad / "whole.mp4", [np.full((32, 32, 3), 10 * i, np.uint8) for i in range(20)], 10)
    data = Path(whole).read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 2])  # the index (at the end) is cut off
    Path(whole).unlink()
    (bad / "no_meta").mkdir(exist_ok=True)
    (bad / "no_meta" / "readme.txt").write_text("a directory without meta.json or any video\n")
    return {
        "not_a_video": (str(bad / "notes.txt"), "not a video file"),
        "truncated_mp4": (str(bad / "truncated.mp4"), "not a readable video"),
        "missing_path": (str(bad / "missing.mp4"), "not found"),
        "dir_without_meta": (str(bad / "no_meta"), "without meta.json"),
    }


class Soak:
    def __init__(self, args, client, log: BringupLog, out: Path, checker: CommandChecker, t0: float):
        self.args, self.client, self.log, self.out, self.checker, self.t0 = args, client, log, out, checker, t0
        self.samples: list[dict] = []
        self.prompt_events: list[dict] = []
        self.bad_events: list[dict] = []
        self.cycles: list[dict] = []
        self.stop = threading.Event()
        self._cpu_prev: dict[str, tuple[int, float, float]] = {}
        self._machine_prev = machine_cpu()
        self._mono_prev = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- sampling ---------------------------------------------------------------------------------------
    def sample(self) -> dict:
        self.log.poll(self.now())
        mono = time.monotonic()
        s = {"t": round(self.now(), 2), "wall": time.time(), "rss_mb": {}, "anon_mb": {}, "cpu_pct": {}, "pid": {}}
        procs = dict(self.log.pids)
        procs["bringup"] = self.args._bringup_pid
        procs["soak (this process)"] = os.getpid()
        for name, pid in procs.items():
            p = proc_sample(pid)
            s["pid"][name] = pid
            if p is None:
                s["rss_mb"][name] = s["anon_mb"][name] = s["cpu_pct"][name] = None
                continue
            s["rss_mb"][name], s["anon_mb"][name] = round(p["rss_mb"], 2), round(p["anon_mb"], 2)
            prev = self._cpu_prev.get(name)
            if prev and prev[0] == pid and mono > prev[2]:
                s["cpu_pct"][name] = round(100 * (p["cpu_s"] - prev[1]) / (mono - prev[2]), 1)
            else:
                s["cpu_pct"][name] = None
            self._cpu_prev[name] = (pid, p["cpu_s"], mono)
        busy, total = machine_cpu()
        ncpu = os.cpu_count() or 1
        db, dt = busy - self._machine_prev[0], total - self._machine_prev[1]
        s["machine_cpu_pct"] = round(100 * ncpu * db / dt, 1) if dt > 0 else None  # % of one core, all processes
        self._machine_prev = (busy, total)
        mine = list(s["cpu_pct"].values())  # the graph's processes and this one
        known = s["machine_cpu_pct"] is not None and None not in mine
        s["others_cpu_pct"] = round(s["machine_cpu_pct"] - sum(mine), 1) if known else None
        s["load1"] = os.getloadavg()[0]
        s["diag"] = {}
        for node in NODES:
            st = self.client.node_status(node)
            vals = {}
            for k, v in st.items():
                try:
                    vals[k] = float(v)
                except (TypeError, ValueError):
                    if k in ("message", "prompt", "state", "last_problem", "last_refusal"):
                        vals[k] = v
            s["diag"][node] = vals
        with self.args._check_lock:
            s["commands_checked"] = self.checker.checked
            s["violations"] = self.checker.total
        self.samples.append(s)
        return s

    def sampler(self) -> None:
        next_t = time.monotonic()
        last_write = time.monotonic()
        while not self.stop.is_set():
            s = self.sample()
            line = "  ".join(f"{k} {v:.0f}" for k, v in s["rss_mb"].items() if v is not None and k in NODES)
            print(
                f"[soak {s['t'] / 60:5.1f} min] RSS MB: {line}; machine CPU {s['machine_cpu_pct']} % "
                f"(others {s['others_cpu_pct']} %), commands {s['commands_checked']}, violations {s['violations']}, "
                f"cycles {len(self.cycles)}, deaths {sum(e['kind'] == 'exited' for e in self.log.events)}",
                flush=True,
            )
            if time.monotonic() - last_write > 60:
                last_write = time.monotonic()
                with contextlib.suppress(Exception):
                    self.write(final=False)
            next_t += self.args.sample_every
            self.stop.wait(max(0.0, next_t - time.monotonic()))

    # -- prompts -----------------------------------------------------------------------------------------
    def policy_prompt_since(self, t_mono: float) -> str | None:
        """The policy's active prompt id in its latest diagnostics received after ``t_mono`` (None: none yet)."""
        for t, arr in reversed(self.client.diag.snapshot()):
            if t < t_mono:
                return None
            for st in arr.status:
                if st.name == "policy":
                    return next((kv.value for kv in st.values if kv.key == "prompt"), "")
        return None

    def set_good(self, path: str, task: str, why: str) -> dict:
        c, a = self.client, self.args
        ev = {"t": round(self.now(), 2), "path": path, "task": task, "why": why, "id": None}
        t_set = time.monotonic()
        try:
            ok, reason = c.set_prompt(path, timeout=a.prompt_timeout)
        except (TimeoutError, RuntimeError) as exc:
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        ev["accepted"], ev["set_s"] = ok, round(time.monotonic() - t_set, 3)
        if not ok:
            ev.update(lost=True, reason=reason)
            self.prompt_events.append(ev)
            print(f"[soak] LOST: good prompt {path} refused: {reason}", flush=True)
            return ev

        def published():
            for _, m in c.prompt.since(t_set):
                d = json.loads(m.data)
                if d.get("path") == path and d.get("id"):
                    return d["id"]
            return None

        try:
            ev["id"] = c.peer.wait_until(published, a.prompt_timeout, "the prompt message", poll=0.05)
            c.peer.wait_until(
                lambda: self.policy_prompt_since(t_set) == ev["id"], a.prompt_timeout, "the policy's prompt", poll=0.1
            )
            ev["active_s"], ev["lost"] = round(time.monotonic() - t_set, 3), False
        except TimeoutError as exc:
            ev.update(lost=True, reason=str(exc))
            print(f"[soak] LOST: prompt {ev['id'] or path} never became active: {exc}", flush=True)
        self.prompt_events.append(ev)
        return ev

    def set_bad(self, kind: str, path: str, expect: str, active: str | None) -> dict:
        c = self.client
        ev = {"t": round(self.now(), 2), "kind": kind, "path": path, "active_before": active}
        t_set = time.monotonic()
        try:
            ok, reason = c.set_prompt(path, timeout=self.args.prompt_timeout)
        except (TimeoutError, RuntimeError) as exc:
            ok, reason = None, f"{type(exc).__name__}: {exc}"  # no answer: neither refused nor accepted
        ev.update(accepted=ok is True, refused=ok is False, reason=reason, reason_expected=expect in (reason or ""))
        # the next policy diagnostics after the answer (1 Hz) must still show the old prompt, and nothing new
        # may have been published on /humanprompt/prompt
        t_ans = time.monotonic()
        with contextlib.suppress(TimeoutError):
            c.peer.wait_until(lambda: self.policy_prompt_since(t_ans + 0.05) is not None, 5, "policy diagnostics")
        after = self.policy_prompt_since(t_ans + 0.05)
        new_msgs = [json.loads(m.data).get("id") for _, m in c.prompt.since(t_set)]
        ev["policy_prompt_after"], ev["prompt_messages_after"] = after, new_msgs
        ev["old_prompt_kept"] = bool(active) and after == active and not new_msgs
        ev["lost"] = ok is True or not ev["old_prompt_kept"]
        if ev["lost"] or not ev["reason_expected"]:
            print(f"[soak] bad prompt {kind}: {ev}", flush=True)
        self.bad_events.append(ev)
        return ev

    # -- the driver ------------------------------------------------------------------------------------------
    def run(self, prompts: dict[str, list[str]], bad: dict[str, tuple[str, str]], duration: float) -> None:
        a, rng = self.args, random.Random(self.args.seed)
        k = 0
        while not self.stop.is_set() and self.now() < duration:
            start = time.monotonic()
            task, seed = rng.choice(TASKS), rng.randrange(1_000_000, 1_001_000)
            cyc = {"t": round(self.now(), 2), "task": task, "seed": seed}
            try:
                self.client.reset_sim(task, seed)
            except (TimeoutError, RuntimeError) as exc:
                cyc["reset_error"] = str(exc)
                print(f"[soak] cycle {k}: reset failed: {exc}", flush=True)
            cyc["reset_s"] = round(time.monotonic() - start, 2)
            good = self.set_good(rng.choice(prompts[task]), task, "after reset")
            active = good["id"] if not good.get("lost") else None
            kind = BAD_KINDS[k % len(BAD_KINDS)]
            self.stop.wait(max(0.0, start + 0.4 * a.period - time.monotonic()))
            if active:
                self.set_bad(kind, *bad[kind], active)
            if k % 2 == 1 and not self.stop.is_set() and self.now() < duration:
                self.stop.wait(max(0.0, start + 0.6 * a.period - time.monotonic()))
                other = rng.choice(TASKS)
                self.set_good(rng.choice(prompts[other]), other, "swap mid-episode")
            self.cycles.append(cyc)
            k += 1
            self.stop.wait(max(0.0, start + a.period - time.monotonic()))

    # -- results ---------------------------------------------------------------------------------------------
    def summary(self, duration: float) -> dict:
        times = [s["t"] for s in self.samples]
        memory = {}
        for node in NODES + ("bringup", "soak (this process)"):
            g = memory_growth(times, [s["rss_mb"].get(node) for s in self.samples], duration)
            cpu = [s["cpu_pct"].get(node) for s in self.samples if s["cpu_pct"].get(node) is not None]
            memory[node] = {
                **{k: None if v is None else round(v, 4 if k == "growth" else 1) for k, v in g.items()},
                "cpu_mean_pct": round(float(np.mean(cpu)), 1) if cpu else None,
                "gated": node in NODES,
            }
        deaths = [e for e in self.log.events if e["kind"] == "exited"]
        restarts = [e for e in self.log.events if e["kind"] == "restarted"]
        good = self.prompt_events
        act = [e["active_s"] for e in good if e.get("active_s") is not None]
        lost_good = [e for e in good if e.get("lost")]
        lost_bad = [e for e in self.bad_events if e["lost"]]
        ck = self.checker

        def med(node, key):
            v = [s["diag"].get(node, {}).get(key) for s in self.samples]
            v = [x for x in v if isinstance(x, float) and np.isfinite(x)]
            return round(float(np.median(v)), 2) if v else None

        machine = [s["machine_cpu_pct"] for s in self.samples if s.get("machine_cpu_pct") is not None]
        others = [s["others_cpu_pct"] for s in self.samples if s.get("others_cpu_pct") is not None]
        out = {
            "duration_s": round(duration, 1),
            "policy": self.args.policy,
            "samples": len(self.samples),
            "cycles": len(self.cycles),
            "memory": {k: v for k, v in memory.items() if k in NODES},
            "memory_not_gated": {k: v for k, v in memory.items() if k not in NODES},
            "deaths": len(deaths),
            "death_events": [f"{e['node']} exited {e['code']} at {e['t']:.0f} s" for e in deaths],
            "restarts": len(restarts),
            "commands": {
                "checked": ck.checked,
                "violations": ck.total,
                "counts": dict(ck.counts),
                "segment_starts": ck.segment_starts,
                "max_step_velocity_ratio": round(ck.max_step_ratio, 3),
                "first_violations": ck.violations[:20],
            },
            "prompts": {
                "good_set": len(good),
                "good_active": len(act),
                "lost": len(lost_good) + len(lost_bad),
                "lost_good_never_active": len(lost_good),
                "lost_to_bad": len(lost_bad),
                "activation_s": {
                    "p50": round(float(np.percentile(act, 50)), 2) if act else None,
                    "p95": round(float(np.percentile(act, 95)), 2) if act else None,
                    "max": round(float(np.max(act)), 2) if act else None,
                },
            },
            "bad_prompts": {
                "set": len(self.bad_events),
                "refused": sum(e["refused"] for e in self.bad_events),
                "accepted": sum(e["accepted"] for e in self.bad_events),
                "unanswered": sum(not e["refused"] and not e["accepted"] for e in self.bad_events),
                "reason_unexpected": sum(e["refused"] and not e["reason_expected"] for e in self.bad_events),
                "by_kind": {
                    k: {
                        "refused": sum(e["refused"] for e in self.bad_events if e["kind"] == k),
                        "accepted": sum(e["accepted"] for e in self.bad_events if e["kind"] == k),
                    }
                    for k in BAD_KINDS
                },
            },
            "diagnostics_median": {f"{n}.{k}": med(n, k) for n, k, _ in RATES + LATENCIES}
            | {"policy.inference_p95_ms": med("policy", "inference_p95_ms")},
            "machine": {
                "cpus": os.cpu_count(),
                "cpu_pct_of_one_core_median": round(float(np.median(machine)), 1) if machine else None,
                "others_cpu_pct_median": round(float(np.median(others)), 1) if others else None,
                "load1_median": round(float(np.median([s["load1"] for s in self.samples])), 2)
                if self.samples
                else None,
            },
        }
        out["targets_missed"] = targets_missed(out)
        return out

    def write(self, final: bool, duration: float | None = None) -> dict:
        duration = duration if duration is not None else self.now()
        summary = self.summary(duration)
        doc = {
            "args": {k: v for k, v in vars(self.args).items() if not k.startswith("_")},
            "final": final,
            "summary": summary,
            "samples": self.samples,
            "cycles": self.cycles,
            "prompt_events": self.prompt_events,
            "bad_prompt_events": self.bad_events,
            "bringup_events": self.log.events,
            "violations": self.checker.violations,
            "command_pauses": self.checker.pauses,
        }
        tmp = self.out / "soak.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1, default=str))
        tmp.replace(self.out / "soak.json")
        return summary


def plot(samples: list[dict], events: list[dict], duration: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s["t"] for s in samples]) / 60
    fig, axes = plt.subplots(4, 1, figsize=(11, 13), sharex=True)

    def series(get):
        return np.array([np.nan if (v := get(s)) is None or isinstance(v, str) else v for s in samples], float)

    for node in NODES:
        axes[0].plot(t, series(lambda s, n=node: s["rss_mb"].get(n)), label=node)
        axes[1].plot(t, series(lambda s, n=node: s["cpu_pct"].get(n)), label=node)
    axes[1].plot(t, series(lambda s: s.get("others_cpu_pct")), "k:", label="other processes")
    for node, key, label in RATES:
        axes[2].plot(t, series(lambda s, n=node, k=key: s["diag"].get(n, {}).get(k)), label=label)
    for node, key, label in LATENCIES:
        axes[3].plot(t, series(lambda s, n=node, k=key: s["diag"].get(n, {}).get(k)), label=label)
    for ax, ylabel in zip(axes, ("RSS (MB)", "CPU (% of one core)", "rate (Hz)", "latency (ms)")):
        ax.set_ylabel(ylabel)
        ax.axvspan(0, WARMUP_FRACTION * duration / 60, color="0.9", zorder=0)
        for e in events:
            ax.axvline(e["t"] / 60, color="r", lw=0.8)
        ax.legend(fontsize=7, loc="best", ncol=3)
        ax.grid(alpha=0.3)
    axes[3].set_yscale("log")
    axes[-1].set_xlabel("minutes (grey: warm-up; red: node exits/restarts)")
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def print_summary(s: dict) -> None:
    print(f"\n== soak summary: {s['duration_s'] / 60:.1f} min, policy {s['policy']}, {s['cycles']} cycles ==")
    print("memory growth after warm-up (median RSS, MB: after warm-up → last 10 %), CPU mean % of one core:")
    for node, m in {**s["memory"], **s["memory_not_gated"]}.items():
        g = "n/a" if m["growth"] is None else f"{100 * m['growth']:+.2f} %"
        print(
            f"  {node:22s} {m['base']} → {m['end']} MB  {g:>9s}  CPU {m['cpu_mean_pct']} %{'' if m['gated'] else '  (not gated)'}"
        )
    print(f"node deaths: {s['deaths']} {s['death_events']}; restarts: {s['restarts']}")
    c = s["commands"]
    print(
        f"joint commands: {c['checked']} checked, {c['violations']} outside the limits or velocity cap {c['counts']}; "
        f"{c['segment_starts']} first commands of a prompt judged against the measured joints; largest step / cap "
        f"{c['max_step_velocity_ratio']}"
    )
    p = s["prompts"]
    print(
        f"prompts: {p['good_set']} good set, {p['good_active']} became active (set → active p50 "
        f"{p['activation_s']['p50']} s, p95 {p['activation_s']['p95']} s, max {p['activation_s']['max']} s); "
        f"lost {p['lost']} (never active {p['lost_good_never_active']}, replaced by a bad one {p['lost_to_bad']})"
    )
    b = s["bad_prompts"]
    print(
        f"bad prompts: {b['set']} set, {b['refused']} refused, {b['accepted']} accepted, {b['unanswered']} unanswered "
        f"({b['reason_unexpected']} refused with an unexpected reason); by kind {b['by_kind']}"
    )
    print(f"diagnostics (median of samples): {s['diagnostics_median']}")
    m = s["machine"]
    print(
        f"machine: {m['cpus']} CPUs, all processes {m['cpu_pct_of_one_core_median']} % of one core (median), of which "
        f"not the graph or this script {m['others_cpu_pct_median']} %; load average {m['load1_median']}"
    )
    print("targets: " + ("all met" if not s["targets_missed"] else "MISSED: " + "; ".join(s["targets_missed"])))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    ap.add_argument("--policy", choices=["checkpoint", "replay"], default="checkpoint", help="the graph's policy")
    ap.add_argument("--checkpoint", default="", help="--policy checkpoint: default models/policy.safetensors")
    ap.add_argument("--out", default="", help="output directory (default runs/soak/<timestamp>)")
    ap.add_argument("--period", type=float, default=10.0, help="seconds per cycle (reset + prompt + bad prompt)")
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between resource samples")
    ap.add_argument("--prompt-dir", default="", help="human demonstrations (default runs/soak/prompts, cached)")
    ap.add_argument("--prompt-seeds", type=int, default=2, help="demonstrations per task")
    ap.add_argument("--prompt-timeout", type=float, default=30.0, help="seconds for a prompt to become active")
    ap.add_argument("--stamp-jitter-ms", type=float, default=1.0, help="slack on each stamp difference (velocity)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the tasks, scenes and prompts")
    ap.add_argument("--respawn-delay", type=float, default=2.0, help="bringup respawn_delay")
    args = ap.parse_args(argv)

    from bench_closed_loop import generate_prompts, policy_graph_args, start_bringup, stop_bringup

    graph_args, _ = policy_graph_args(args.policy, args.checkpoint)
    graph_args.append(f"respawn_delay:={args.respawn_delay}")
    out = Path(args.out or REPO / "runs" / "soak" / time.strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.prompt_dir or REPO / "runs" / "soak" / "prompts").resolve()
    t = time.monotonic()
    seeds = list(range(1_000_000, 1_000_000 + args.prompt_seeds))
    by_scene = generate_prompts(
        root, list(TASKS), seeds, prompt_mode="other" if args.policy == "checkpoint" else "same"
    )
    prompts = {task: sorted({p for (tk, _), p in by_scene.items() if tk == task}) for task in TASKS}
    bad = make_bad_prompts(root)
    print(f"[soak] prompts: {len(by_scene)} human demonstrations in {root} ({time.monotonic() - t:.0f} s)", flush=True)

    checker, cmd_params = command_checker(args.stamp_jitter_ms / 1e3)
    print(
        f"[soak] commands must stay within the URDF limits less {cmd_params['joint_limit_margin']} rad and move at "
        f"most {checker.max_velocity} rad/s (config/command.yaml)",
        flush=True,
    )

    sys.path.insert(0, str(REPO / "test"))
    from helpers.ros import make_ros_env, reserve_domain_id
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import joint_positions
    from humanprompt_ros.ros.graph_client import GraphClient

    stop = threading.Event()

    def on_signal(signum, _frame):
        print(f"[soak] {signal.Signals(signum).name}: stopping early, writing what was measured", flush=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    duration = args.minutes * 60
    with reserve_domain_id() as domain:
        env = make_ros_env(domain)
        env["HUMANPROMPT_PROMPT_DIR"] = str(root)
        log_path = out / "bringup.log"
        proc = start_bringup(env, *graph_args, log_path=str(log_path))
        args._bringup_pid = proc.pid
        args._check_lock = threading.Lock()
        client = GraphClient(domain, keep=5000)
        log = BringupLog(log_path)
        node = client.peer.node

        def on_command(msg):
            t_s = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
            with args._check_lock:
                checker.check(t_s, list(msg.name), msg.position)

        def on_joints(msg):
            t_s = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
            with contextlib.suppress(ValueError), args._check_lock:
                checker.measured(t_s, joint_positions(msg, checker.names))

        last_id = [""]

        def on_prompt(msg):
            with contextlib.suppress(ValueError):
                pid = str(json.loads(msg.data).get("id") or "")
                if pid and pid != last_id[0]:
                    with args._check_lock:
                        checker.new_prompt(time.time())
                last_id[0] = pid

        for topic, cb in (
            (topics.JOINT_COMMANDS, on_command),
            (topics.JOINT_STATES, on_joints),
            (topics.PROMPT, on_prompt),
        ):
            node.create_subscription(topics.msg_class(topic), topic.name, cb, topics.subscription_qos(topic))
        soak = None
        try:
            try:
                client.wait_ready(timeout=240)
            except TimeoutError as exc:
                log.poll(0)
                print(f"[soak] the graph did not come up: {exc}\n{log_path.read_text()[-3000:]}", file=sys.stderr)
                return 2
            t0 = time.monotonic()
            soak = Soak(args, client, log, out, checker, t0)
            soak.stop = stop
            print(f"[soak] graph up (domain {domain}); running {args.minutes:g} min, output in {out}", flush=True)
            sampler = threading.Thread(target=soak.sampler, daemon=True)
            sampler.start()
            soak.run(prompts, bad, duration)
            # the run is over (or stopped): one last sample after the last cycle, then stop sampling
            stop.wait(max(0.0, min(duration - soak.now(), 5.0)))
            stop.set()
            sampler.join(timeout=30)
            soak.sample()
            run_s = soak.now()
        finally:
            client.close()
            stop_bringup(proc, 30)
    summary = soak.write(final=True, duration=run_s)
    title = f"soak {run_s / 60:.1f} min, policy {args.policy}, {os.cpu_count()} CPUs (shared), {out}"
    try:
        plot(soak.samples, log.events, run_s, out / "soak.png", title)
    except Exception as exc:  # noqa: BLE001 - the JSON is what matters
        print(f"[soak] plot failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    print_summary(summary)
    print(f"[soak] wrote {out / 'soak.json'}, {out / 'soak.png'}, {log_path}")
    return 1 if summary["targets_missed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
