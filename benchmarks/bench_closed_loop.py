"""Closed-loop success of the ROS graph on HumanPrompt-Sim, and frame → command latency with the
real replay policy in the loop.

::

    python benchmarks/bench_closed_loop.py --tasks press_button,push_box --seeds 10
    python benchmarks/bench_closed_loop.py --tasks press_button --seeds 2 --json
    python benchmarks/bench_closed_loop.py --policy checkpoint --checkpoint models/policy.safetensors \
        --prompt-seed other --tasks press_button --seeds 10 --json
    python benchmarks/bench_closed_loop.py --policy checkpoint --lockstep --tasks open_drawer --seeds 10
    python benchmarks/bench_closed_loop.py --latency 1000 --rate 30     # frame → command latency

For each task and seed: a human demonstration of that task is generated with the sim's human
expert into a prompt directory, at the same seed (``--prompt-seed same``, the default with
``--policy replay``) or at another held-out seed (``--prompt-seed other``, the default with
``--policy checkpoint``), picked by :func:`humanprompt_ros.eval.rollout.prompt_seed` exactly as
``humanprompt-sim eval --prompt-seed other`` picks it; then, through the running graph
(``humanprompt-bringup sim:=true policy:=POLICY [checkpoint:=PATH]``, real processes, real DDS), the
prompt is cleared, the sim driver is set to the task and seed and reset
(``/sim_driver/set_parameters``, ``/sim_driver/reset``), the prompt is set through
``/prompt_encoder/set_parameters`` (the service ``humanprompt-prompt set`` and ``ros2 param set``
call), and the episode runs until the sim driver reports ``done`` on ``/humanprompt/task_status``.
Prints a per-skill table, the command node's frame → joint command latency (observation stamp →
command) from its diagnostics, each node's achieved rates and CPU use. With ``--json``, one JSON
line with the details, then as the *last* line the result in the contract of
``humanprompt-sim eval --json``: ``{"skills": {SKILL: {"success": RATE, "episodes": N}},
"mean": RATE, ...}`` (computed by its own ``summarize``, seen/unseen means included), so the ROS
graph's result compares line for line with
``humanprompt-sim eval --policy CKPT --prompt-seed other --seed S --episodes N --json`` on the same seeds.

:class:`GraphClient` (humanprompt_ros.ros.graph_client) is also what ``test/test_closed_loop.py`` uses.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LATCHED_SKILLS = ("press_button", "pick_lift")  # success is final once reached


def _gen_one(args: tuple) -> tuple[str, int, str, bool]:
    task, seed, out = args
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    from humanprompt_ros.paths import config_path
    from humanprompt_ros.sim import expert_episode, load_task

    d = Path(out) / task / f"{seed:07d}"
    if not (d / "meta.json").is_file():
        rec = expert_episode(load_task(config_path("tasks", f"{task}.yaml")), "human", seed)
        rec.save(d)
    meta = json.loads((d / "meta.json").read_text())
    return task, seed, str(d), bool(meta["success"])


def generate_prompts(
    root: str | Path, tasks: list[str], seeds: list[int], workers: int = 2, prompt_mode: str = "same"
) -> dict:
    """Human expert demonstrations ``root/<task>/<prompt seed:07d>`` (cached); {(task, seed): path}, the
    prompt seed of each scene seed picked by ``humanprompt_ros.sim.runner.prompt_seed(seed, prompt_mode)``
    (the rule of ``humanprompt-sim eval --prompt-seed``)."""
    from humanprompt_ros.eval.rollout import prompt_seed

    jobs = [(t, prompt_seed(s, prompt_mode), str(root)) for t in tasks for s in seeds]
    if workers > 1 and len(jobs) > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            out = pool.map(_gen_one, jobs)
    else:
        out = [_gen_one(j) for j in jobs]
    paths = {(t, ps): p for t, ps, p, _ in out}
    return {(t, s): paths[(t, prompt_seed(s, prompt_mode))] for t in tasks for s in seeds}


def eval_summary(results: list[dict]) -> dict:
    """Per-episode results → ``{"skills": {SKILL: {"success": RATE, "episodes": N}}, "mean": RATE, ...}``:
    ``humanprompt-sim eval --json``'s own summary (with its seen/unseen means) where it has one."""
    import numpy as np

    try:
        from humanprompt_ros.sim.benchmark import load_benchmark
        from humanprompt_ros.sim.results import summarize
    except ImportError:
        summarize = None
    if summarize is not None:
        return summarize([{**r, "success": bool(r["success"])} for r in results], load_benchmark())
    per: dict[str, list[bool]] = {}
    for r in results:
        per.setdefault(r["skill"], []).append(bool(r["success"]))
    skills = {k: {"success": round(float(np.mean(v)), 4), "episodes": len(v)} for k, v in sorted(per.items())}
    mean = round(float(np.mean([v["success"] for v in skills.values()])), 4) if skills else 0.0
    return {"skills": skills, "mean": mean}


from humanprompt_ros.ros.graph_client import GraphClient  # noqa: E402


def start_bringup(env: dict, *args: str, log_path: str | None = None) -> subprocess.Popen:
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "humanprompt_ros.cli.bringup", "sim:=true", *args],
        env=env,
        cwd=str(REPO),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def policy_graph_args(policy: str, checkpoint: str | None) -> tuple[list[str], str | None]:
    """bringup's arguments for ``policy`` and, for ``checkpoint``, the file the policy node will load (resolved as
    it resolves it). A checkpoint that would not load ends the benchmark: the reason on stderr, exit code 2."""
    if policy != "checkpoint":
        return [f"policy:={policy}"], None
    from humanprompt_ros.graph import build_graph, checkpoint_problem

    specs = build_graph({"sim": "true", "policy": "checkpoint", "checkpoint": checkpoint})
    problem = checkpoint_problem(specs)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    path = next(s.parameters["checkpoint"] for s in specs if s.name == "policy")
    return [f"policy:={policy}", f"checkpoint:={path}"], path


def stop_bringup(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM bringup (it stops its nodes), SIGKILL after ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def node_pids(log_path: str) -> dict[str, int]:
    pids = {}
    for line in Path(log_path).read_text().splitlines():
        m = re.match(r"\[bringup\] (?:re)?started (\w+) \(pid (\d+)", line)
        if m:
            pids[m.group(1)] = int(m.group(2))
    return pids


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def latency(frames: int, rate: float, workdir: Path) -> dict:
    """Camera frame → joint command latency with the real replay policy node in the loop.

    Processes: the camera node (a generated 640×480 video, looping, at ``rate`` Hz → 96×96), the
    policy node (``replay``, ``chunk:=1``, ``rate:=<rate>``: every control step runs ``act()`` on
    the latest frame and stamps the target with it), the command node; this process publishes the
    prompt (a long synthetic episode), echoes the commands on ``/joint_states`` and reads the
    diagnostics. Latency = command publish − capture stamp of the frame the target came from (the
    command node's ``frame_to_command`` over its last 1000 samples).
    """
    import numpy as np

    sys.path.insert(0, str(REPO / "test"))
    from std_msgs.msg import String

    from helpers.ros import make_ros_env, reserve_domain_id
    from humanprompt_ros.data import write_episode, write_video
    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.paths import config_path
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import joint_state

    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    lo, hi = hand.joint_limits
    n = int(frames * 1.5) + 100
    ph = np.linspace(0, 2 * np.pi * n / 90, n)
    acts = np.stack([hand.fk(lo + (hi - lo) * (0.4 + 0.2 * np.sin(p))).to_array() for p in ph]).astype(np.float32)
    acts[:, :3] = [-0.28, 0.0, 0.22]
    ep = write_episode(
        workdir / "latency_prompt",
        [np.zeros((16, 16, 3), np.uint8)] * 5,
        acts,
        {"task": "synthetic", "embodiment": "robot", "seed": 0},
    )
    rng = np.random.default_rng(0)
    video = workdir / "latency_camera.mp4"
    write_video(video, [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(30)], fps=rate)
    py = [sys.executable, "-m"]
    with reserve_domain_id() as domain:
        env = make_ros_env(domain)
        procs = {
            "camera": subprocess.Popen(
                py
                + [
                    "humanprompt_ros.nodes.camera",
                    "--ros-args",
                    "-p",
                    "source:=video",
                    "-p",
                    f"path:={video}",
                    "-p",
                    f"rate:={rate}",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            "policy": subprocess.Popen(
                py
                + [
                    "humanprompt_ros.nodes.policy",
                    "--ros-args",
                    "-p",
                    "policy:=replay",
                    "-p",
                    "chunk:=1",
                    "-p",
                    f"rate:={rate}",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            "command": subprocess.Popen(
                py + ["humanprompt_ros.nodes.command", "--ros-args"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        }
        client = GraphClient(domain)
        peer = client.peer
        try:
            js = peer.publisher(topics.JOINT_STATES)
            prompt = peer.publisher(topics.PROMPT)
            q = {"q": hand.neutral()}
            stop = __import__("threading").Event()

            def echo():
                while not stop.wait(0.02):
                    last = client.commands.last()
                    if last is not None:
                        q["q"] = np.array(last[1].position)
                    js.publish(joint_state(hand.joint_names, q["q"], peer.now_msg()))

            th = __import__("threading").Thread(target=echo, daemon=True)
            th.start()
            peer.wait_for_subscription(prompt, timeout=60, count=2)
            prompt.publish(String(data=json.dumps({"id": "latency@1", "path": str(ep)})))
            peer.wait_until(lambda: len(client.commands) > 10, 60, "joint commands")
            cpu0, t0 = {k: cpu_seconds(p.pid) for k, p in procs.items()}, time.monotonic()
            n0, tg0 = len(client.commands), len(client.targets)
            obs = peer.record(topics.OBSERVATION)
            time.sleep(frames / rate)
            wall = time.monotonic() - t0
            cpu = {k: round(100 * (cpu_seconds(p.pid) - cpu0[k]) / wall, 1) for k, p in procs.items()}
            rates = {
                "observation_hz": round(len(obs) / wall, 2),
                "hand_target_hz": round((len(client.targets) - tg0) / wall, 2),
                "joint_commands_hz": round((len(client.commands) - n0) / wall, 2),
            }
            time.sleep(1.2)
            cmd, pol = client.node_status("command"), client.node_status("policy")
            stop.set()
            th.join()
        finally:
            client.close()
            for p in procs.values():
                p.send_signal(__import__("signal").SIGINT)
            for p in procs.values():
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
    return {
        "frames": frames,
        "rate_hz": rate,
        "frame_to_command_ms": {k: cmd.get(f"frame_to_command_{k}_ms") for k in ("p50", "p95", "max")},
        "frame_to_command_samples": cmd.get("frame_to_command_samples"),
        "policy_frame_to_target_ms": {k: pol.get(f"frame_to_target_{k}_ms") for k in ("p50", "p95", "max")},
        "policy_inference_ms": {k: pol.get(f"inference_{k}_ms") for k in ("p50", "p95")},
        "policy_frames_dropped": pol.get("frames_dropped_stale"),
        "policy_frames_used": pol.get("frames_used"),
        "rates": rates,
        "cpu_percent": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--latency",
        type=int,
        default=0,
        metavar="FRAMES",
        help="instead of the closed-loop episodes: frame → command latency over FRAMES camera frames "
        "with the real replay policy (chunk 1) in the loop",
    )
    ap.add_argument("--rate", type=float, default=30.0, help="--latency: camera and control rate (Hz)")
    ap.add_argument("--tasks", default="press_button,push_box", help="comma-separated task names")
    ap.add_argument("--seeds", type=int, default=10, help="seeds per task")
    ap.add_argument("--seed-start", type=int, default=1_000_000, help="first seed (default: the heldout split)")
    ap.add_argument(
        "--policy", choices=["replay", "checkpoint"], default="replay", help="the graph's policy backend (policy:=...)"
    )
    ap.add_argument(
        "--checkpoint", default="", help="--policy checkpoint: the checkpoint file (default: models/policy.safetensors)"
    )
    ap.add_argument(
        "--prompt-seed",
        choices=["same", "other"],
        default=None,
        help="prompt = a human demo of the task at the same seed or at another held-out seed (the rule "
        "of humanprompt-sim eval --prompt-seed); default: same for replay, other for checkpoint",
    )
    ap.add_argument("--episode-timeout", type=float, default=120.0, help="seconds per episode before giving up")
    ap.add_argument("--prompt-dir", default="", help="prompt directory (default: a temporary one)")
    ap.add_argument("--domain", type=int, default=0, help="ROS_DOMAIN_ID (default: a free one)")
    ap.add_argument(
        "--json",
        action="store_true",
        help="end with a JSON line of details, then the result as the last line in the contract of "
        "humanprompt-sim eval --json (with --latency: one JSON line)",
    )
    ap.add_argument("--log", default="", help="bringup log file (default: in the prompt dir)")
    ap.add_argument(
        "--lockstep",
        action="store_true",
        help="run the graph in lockstep (bringup lockstep:=true): the sim steps once per command, "
        "episodes end at the horizon, as in humanprompt-sim eval",
    )
    args = ap.parse_args(argv)
    if args.latency:
        out = latency(args.latency, args.rate, Path(tempfile.mkdtemp(prefix="humanprompt-latency-")))
        print(json.dumps(out, indent=None if args.json else 1))
        return 0

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    mode = args.prompt_seed or ("same" if args.policy == "replay" else "other")
    graph_args, checkpoint = policy_graph_args(args.policy, args.checkpoint)
    graph_args += ["lockstep:=true"] if args.lockstep else []
    root = Path(args.prompt_dir or tempfile.mkdtemp(prefix="humanprompt-prompts-"))
    t0 = time.monotonic()
    prompts = generate_prompts(root, tasks, seeds, prompt_mode=mode)
    print(
        f"prompts: {len(prompts)} human demonstrations ({mode} seed) in {root} ({time.monotonic() - t0:.0f} s)",
        flush=True,
    )

    sys.path.insert(0, str(REPO / "test"))
    import contextlib

    from helpers.ros import make_ros_env, reserve_domain_id

    ctx = contextlib.nullcontext(args.domain) if args.domain else reserve_domain_id()
    with ctx as domain:
        env = make_ros_env(domain)
        env["HUMANPROMPT_PROMPT_DIR"] = str(root)
        env.setdefault("MUJOCO_GL", "osmesa")
        log_path = args.log or str(root / "bringup.log")
        proc = start_bringup(env, *graph_args, log_path=log_path)
        client = GraphClient(domain)
        results = []
        try:
            client.wait_ready()
            pids = node_pids(log_path)
            cpu0, w0 = {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
            for task in tasks:
                for seed in seeds:
                    r = client.run_episode(task, seed, prompts[(task, seed)], timeout=args.episode_timeout)
                    results.append(r)
                    print(
                        f"{task:14s} seed {seed}: {'success' if r['success'] else 'FAIL':7s} "
                        f"({r['steps']} steps, {r['seconds']:.1f} s)",
                        flush=True,
                    )
            wall = time.monotonic() - w0
            cpu = {n: round(100 * (cpu_seconds(p) - cpu0[n]) / wall, 1) for n, p in pids.items()}
            time.sleep(1.2)  # one more diagnostics round
            nodes = {n: client.node_status(n) for n in ("sim_driver", "camera", "policy", "command", "prompt_encoder")}
        finally:
            client.close()
            stop_bringup(proc, 15)

    table: dict[str, dict] = {}
    for r in results:
        s = table.setdefault(r["skill"], {"task": r["task"], "success": 0, "episodes": 0})
        s["episodes"] += 1
        s["success"] += int(r["success"])
    print("\n| task | skill | success | episodes |\n|---|---|---|---|")
    for skill, s in table.items():
        print(
            f"| {s['task']} | {skill} | {s['success'] / s['episodes']:.2f} ({s['success']}/{s['episodes']}) | "
            f"{s['episodes']} |"
        )
    cmd = nodes.get("command", {})
    lat = {k: cmd.get(f"frame_to_command_{k}_ms") for k in ("p50", "p95", "max")}
    print(
        f"\nframe → joint command latency (command node, stamp of the observation the target's chunk was "
        f"computed from → command; open-loop chunks of 8 at 10 Hz add up to 0.7 s of chunk age): "
        f"p50 {lat['p50']} ms, p95 {lat['p95']} ms, max {lat['max']} ms"
    )
    pol = nodes.get("policy", {})
    lat["policy_frame_to_target_p50"] = pol.get("frame_to_target_p50_ms")
    lat["policy_frame_to_target_p95"] = pol.get("frame_to_target_p95_ms")
    lat["retarget_p50"], lat["retarget_p95"] = cmd.get("retarget_p50_ms"), cmd.get("retarget_p95_ms")
    print(
        f"policy: camera frame → hand target when a chunk is computed (frame stamp → publish): p50 "
        f"{lat['policy_frame_to_target_p50']} ms, p95 {lat['policy_frame_to_target_p95']} ms; command node "
        f"retargeting p50 {lat['retarget_p50']} ms, p95 {lat['retarget_p95']} ms"
    )
    print(
        f"rates: sim images {nodes['sim_driver'].get('image_rate_hz')} Hz, physics "
        f"{nodes['sim_driver'].get('tick_rate_hz')} ticks/s, camera {nodes['camera'].get('rate_hz')} Hz, "
        f"targets {nodes['policy'].get('target_rate_hz')} Hz, commands {cmd.get('command_rate_hz')} Hz"
    )
    print(
        f"policy: frames used {nodes['policy'].get('frames_used')}, dropped (never used) "
        f"{nodes['policy'].get('frames_dropped_stale')}, inference p50 {nodes['policy'].get('inference_p50_ms')} ms"
    )
    print(f"CPU % of one core per node: {cpu}")
    summary = eval_summary(results)
    print(
        f"policy {args.policy}{f' ({checkpoint})' if checkpoint else ''}, prompt seed {mode}"
        f"{', lockstep' if args.lockstep else ', real time'}: "
        f"mean success over skills {summary['mean']:.3f}"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "policy": args.policy,
                    "checkpoint": checkpoint,
                    "lockstep": args.lockstep,
                    "prompt_seed": mode,
                    "seeds": [seeds[0], seeds[-1]],
                    "episodes": results,
                    "latency_ms": lat,
                    "cpu_percent": cpu,
                    "nodes": nodes,
                }
            )
        )
        print(json.dumps(summary))  # last line: the humanprompt-sim eval --json contract
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
