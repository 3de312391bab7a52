"""Where the time from camera frame to joint command goes, per stage, with the learned policy in real time.

::

    python benchmarks/bench_latency_budget.py                      # 240 s of episodes, models/policy.safetensors
    python benchmarks/bench_latency_budget.py --seconds 600 --json runs/latency_budget.json
    python benchmarks/bench_latency_budget.py --policy replay      # the replay baseline (no inference)

Brings the graph up in the simulator in real time (``humanprompt-bringup sim:=true policy:=checkpoint``,
real processes, Fast DDS), runs episodes of ``--tasks`` on held-out seeds (each prompted by a human
demonstration of the task from another held-out scene, generated with the sim's expert, as
``bench_closed_loop.py --prompt-seed other`` does) for ``--seconds``, then reads each node's
``/diagnostics`` and prints a table of p50/p95 per stage:

=================================================  ==========================================================
stage                                              measured by (diagnostics key, p50/p95 over its window)
=================================================  ==========================================================
capture → observation published                    camera ``latency``: publish − the sim's capture stamp (the
                                                   render, the sim → camera hop, crop/resize); the render
                                                   alone: sim_driver ``render``
observation published → policy has it              ≈ policy ``frame_receive`` (receipt − capture stamp) −
                                                   camera ``latency``
policy has it → taken for act()                    policy ``frame_wait``: the frame waits for the chunk boundary
inference                                          policy ``inference``: ``act()``, one chunk
act() returns → target published                   policy ``target_after_act`` (policy ``frame_to_target``:
                                                   publish − capture stamp)
target published → command node has it            ≈ command ``fresh_target_receive`` (receipt − capture stamp) −
                                                   policy ``frame_to_target``
command node has it → command published            command ``fresh_target_handling`` (retarget, velocity step,
                                                   publish); retarget alone: command ``retarget``
end to end                                         command ``fresh_frame_to_command``: publish − capture stamp
=================================================  ==========================================================

The ``fresh_*`` figures count only the first target computed from each new frame (a new chunk's first
action), so "end to end" is the age of the newest camera frame behind a command when it is sent. Every
later action of a chunk runs from the same frame, one control period later each: the command node's
``frame_to_command`` over all commands (printed too) includes that chunk age. A stage between two
processes (a DDS hop) is not timed per frame: its p50 is the difference of two cumulative medians
(marked ≈), an estimate, and it has no p95; for scale, the script also times a DDS hop it can see
whole (a joint command, stamped when sent, arriving in this process). Every other stage is timed per
frame in one node. Stage medians need not add up to the end-to-end median.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

NODES = ("sim_driver", "camera", "policy", "command", "prompt_encoder")


def _f(values: dict, key: str) -> float | None:
    try:
        v = float(values.get(key))
    except (TypeError, ValueError):
        return None
    return v if v == v else None  # NaN → None


def _pair(values: dict, name: str) -> tuple[float | None, float | None]:
    return _f(values, f"{name}_p50_ms"), _f(values, f"{name}_p95_ms")


def _sub(a, b):
    return None if a is None or b is None else a - b


def budget_rows(nodes: dict[str, dict]) -> list[dict]:
    """Per-stage rows from the nodes' diagnostics values ({node: {key: value}}): each row has ``stage``,
    ``source``, ``p50``/``p95`` (ms; the stage's own time), ``cum_p50``/``cum_p95`` (ms since capture, where a
    node measures it; else None) and ``derived`` (True: the stage's p50 is the difference of two cumulative
    medians measured in two processes, not measured per frame; its p95 is None: tails of two windows of
    different samples do not subtract)."""
    sim, cam, pol, cmd = (nodes.get(n, {}) for n in ("sim_driver", "camera", "policy", "command"))
    published = _pair(cam, "latency")
    received = _pair(pol, "frame_receive")
    target = _pair(pol, "frame_to_target")
    at_cmd = _pair(cmd, "fresh_target_receive")
    command = _pair(cmd, "fresh_frame_to_command")
    none = (None, None)
    rows = [
        ("capture → observation published", "camera latency", published, published, False),
        ("  of which the sim renders the frame", "sim_driver render", _pair(sim, "render"), none, False),
        (
            "observation published → policy has it",
            "policy frame_receive − camera latency",
            (_sub(received[0], published[0]), None),
            received,
            True,
        ),
        (
            "policy has it → taken for act() (chunk boundary)",
            "policy frame_wait",
            _pair(pol, "frame_wait"),
            none,
            False,
        ),
        ("inference: act(), one chunk", "policy inference", _pair(pol, "inference"), none, False),
        ("act() returns → target published", "policy target_after_act", _pair(pol, "target_after_act"), target, False),
        (
            "target published → command node has it",
            "command fresh_target_receive − policy frame_to_target",
            (_sub(at_cmd[0], target[0]), None),
            at_cmd,
            True,
        ),
        (
            "command node has it → command published",
            "command fresh_target_handling",
            _pair(cmd, "fresh_target_handling"),
            command,
            False,
        ),
        ("  of which retarget (every target)", "command retarget", _pair(cmd, "retarget"), none, False),
        ("end to end: capture → first command of the chunk", "command fresh_frame_to_command", command, command, False),
    ]
    return [
        {"stage": s, "source": src, "p50": v[0], "p95": v[1], "cum_p50": c[0], "cum_p95": c[1], "derived": d}
        for s, src, v, c, d in rows
    ]


def format_table(rows: list[dict]) -> str:
    def ms(v, derived=False):
        return "" if v is None else f"{'≈' if derived else ''}{v:.1f}"

    out = ["| stage | p50 ms | p95 ms | since capture p50 / p95 ms | measured by |", "|---|---|---|---|---|"]
    for r in rows:
        cum = "" if r["cum_p50"] is None else f"{r['cum_p50']:.1f} / {r['cum_p95']:.1f}"
        out.append(
            f"| {r['stage']} | {ms(r['p50'], r['derived'])} | {ms(r['p95'], r['derived'])} | {cum} | {r['source']} |"
        )
    return "\n".join(out)


def execution(checkpoint: str, policy_yaml: str) -> dict:
    """How the learned policy runs: the checkpoint's chunk (``policy.horizon``, ``execute`` and its per-skill
    ``execute_by_skill``, DDIM steps,
    guidance, after its ``inference_overrides``) and the policy node's ``rate`` and ``lookahead``."""
    import yaml
    from safetensors import safe_open

    out: dict = {}
    with contextlib.suppress(Exception):
        with safe_open(checkpoint, "pt") as f:
            meta = f.metadata() or {}
        pc = json.loads(meta.get("config", "{}")).get("policy", {})
        over = json.loads(meta.get("inference_overrides", "{}"))
        for k in ("horizon", "execute", "execute_by_skill", "inference_steps", "guidance"):
            out[k] = over.get(f"policy.{k}", pc.get(k))
    with contextlib.suppress(Exception):
        params = yaml.safe_load(policy_yaml)["policy"]["ros__parameters"]
        out.update({k: params[k] for k in ("rate", "lookahead", "threads")})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=240.0, help="how long to run episodes (after warm-up)")
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds of episodes before CPU use is measured")
    ap.add_argument("--tasks", default="knock_over,open_drawer,press_button,push_box", help="comma-separated tasks")
    ap.add_argument("--seeds", type=int, default=3, help="held-out seeds per task (1,000,000 on)")
    ap.add_argument("--policy", choices=["checkpoint", "replay"], default="checkpoint")
    ap.add_argument("--checkpoint", default="", help="default: models/policy.safetensors")
    ap.add_argument("--prompt-dir", default="", help="prompt directory (default: runs/prompts_heldout, cached)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--log", default="", help="bringup log (default: in a temporary directory)")
    args = ap.parse_args(argv)

    from bench_closed_loop import (
        cpu_seconds,
        generate_prompts,
        node_pids,
        policy_graph_args,
        start_bringup,
        stop_bringup,
    )

    from humanprompt_ros.ros.graph_client import GraphClient

    graph_args, checkpoint = policy_graph_args(args.policy, args.checkpoint)
    mode = "other" if args.policy == "checkpoint" else "same"
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    seeds = list(range(1_000_000, 1_000_000 + args.seeds))
    root = Path(args.prompt_dir or REPO / "runs" / "prompts_heldout")
    t0 = time.monotonic()
    prompts = generate_prompts(root, tasks, seeds, prompt_mode=mode)
    print(f"prompts: {len(prompts)} human demonstrations in {root} ({time.monotonic() - t0:.0f} s)", flush=True)

    sys.path.insert(0, str(REPO / "test"))
    from helpers.ros import make_ros_env, reserve_domain_id

    policy_yaml = (REPO / "config" / "policy.yaml").read_text()
    with reserve_domain_id() as domain, tempfile.TemporaryDirectory() as tmp:
        env = make_ros_env(domain)
        env["HUMANPROMPT_PROMPT_DIR"] = str(root)
        log_path = args.log or str(Path(tmp) / "bringup.log")
        proc = start_bringup(env, *graph_args, log_path=log_path)
        client = GraphClient(domain, keep=20000)
        episodes, queue = [], [(t, s) for s in seeds for t in tasks]
        try:
            client.wait_ready(timeout=180)
            pids = node_pids(log_path)
            started = time.monotonic()
            measuring, cpu0, w0 = False, {}, 0.0
            i = 0
            while time.monotonic() - started < args.warmup + args.seconds:
                if not measuring and time.monotonic() - started >= args.warmup:
                    # CPU is measured from here; the nodes' statistics are rolling windows (the last 300-2000
                    # samples), so a run several times longer than the warm-up is dominated by steady state
                    measuring, cpu0, w0 = True, {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
                task, seed = queue[i % len(queue)]
                i += 1
                try:
                    r = client.run_episode(task, seed, prompts[(task, seed)], timeout=120)
                except (TimeoutError, RuntimeError) as exc:
                    print(f"{task} seed {seed}: {exc}", flush=True)
                    continue
                episodes.append(r)
                print(
                    f"{task:14s} seed {seed}: {'success' if r['success'] else 'fail':7s} ({r['steps']} steps, "
                    f"{r['seconds']:.1f} s)",
                    flush=True,
                )
            wall = time.monotonic() - w0
            cpu = {n: round(100 * (cpu_seconds(p) - cpu0[n]) / wall, 1) for n, p in pids.items()} if cpu0 else {}
            time.sleep(1.5)
            nodes = {n: client.node_status(n) for n in NODES}
            offset = time.time() - time.monotonic()
            hop = [
                (t + offset - (m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec)) * 1e3
                for t, m in client.commands.snapshot()
                if t >= w0
            ]
        finally:
            client.close()
            stop_bringup(proc, 20)

    import numpy as np

    rows = budget_rows(nodes)
    pol, cmd = nodes.get("policy", {}), nodes.get("command", {})
    run = execution(checkpoint, policy_yaml) if checkpoint else {}
    print(
        f"\npolicy {args.policy}{f' ({checkpoint})' if checkpoint else ''}, real time, {len(episodes)} episodes; "
        f"execution: {run}"
    )
    print(format_table(rows))
    all_cmd = _pair(cmd, "frame_to_command")
    print(
        f"\nevery command (each later action of a chunk runs from the same frame): capture → command p50 "
        f"{all_cmd[0]} ms, p95 {all_cmd[1]} ms over {cmd.get('frame_to_command_samples')} commands; "
        f"fresh chunks {cmd.get('fresh_frame_to_command_samples')}, inference samples {pol.get('inference_samples')}"
    )
    if hop:
        print(
            f"a DDS hop for reference (/humanprompt/joint_commands publish → this process): p50 "
            f"{np.percentile(hop, 50):.1f} ms, p95 {np.percentile(hop, 95):.1f} ms ({len(hop)} commands)"
        )
    print(
        f"rates: sim images {nodes['sim_driver'].get('image_rate_hz')} Hz, camera {nodes['camera'].get('rate_hz')} Hz, "
        f"targets {pol.get('target_rate_hz')} Hz, commands {cmd.get('command_rate_hz')} Hz; policy lookahead "
        f"{pol.get('lookahead')}, chunks {pol.get('chunks')}, chunks_late {pol.get('chunks_late')}; command node "
        f"holds {cmd.get('holds')} (it holds when no target came for target_timeout)"
    )
    print(f"CPU % of one core per node: {cpu}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    out = {
        "policy": args.policy,
        "checkpoint": checkpoint,
        "seconds": args.seconds,
        "episodes": episodes,
        "rows": rows,
        "frame_to_command_all_ms": {"p50": all_cmd[0], "p95": all_cmd[1]},
        "dds_hop_ms": {"p50": float(np.percentile(hop, 50)), "p95": float(np.percentile(hop, 95))} if hop else None,
        "cpu_percent": cpu,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "execution": run,
        "nodes": nodes,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
