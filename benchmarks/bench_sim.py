"""HumanPrompt-Sim throughput: physics steps/s, rendered frames/s, generated episodes/s.

    python benchmarks/bench_sim.py                 # quick (about a minute on 2 cores)
    python benchmarks/bench_sim.py --episodes 40   # longer generation measurement

Prints one JSON object (last line). ``generate_1000_minutes`` extrapolates the measured parallel
generation rate (all tasks, both embodiments, 128x128 video) to 1,000 episodes; the acceptance bound
is 30 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from humanprompt_ros.sim.env import SimEnv, home_action  # noqa: E402
from humanprompt_ros.sim.experts import expert_actions  # noqa: E402
from humanprompt_ros.sim.tasks import load_task, task_files  # noqa: E402


def bench_physics(task, embodiment: str, episodes: int = 3) -> dict:
    env = SimEnv(task, embodiment, render=False)
    try:
        steps, control, t_total = 0, 0, 0.0
        for seed in range(episodes):
            env.reset(seed)
            acts = expert_actions(env.instance, home_action(env.cfg), task.horizon)
            t0 = time.perf_counter()
            for a in acts:
                env.step(a)
            t_total += time.perf_counter() - t0
            control += len(acts)
            steps += len(acts) * env.cfg.substeps
        return {
            "physics_steps_per_s": steps / t_total,
            "control_steps_per_s": control / t_total,
            "realtime_factor": control / env.cfg.control_hz / t_total,
        }
    finally:
        env.close()


def bench_render(task, embodiment: str, size: int, frames: int = 60) -> float:
    env = SimEnv(task, embodiment, render=True, image_size=size)
    try:
        env.reset(0)
        env.render()
        t0 = time.perf_counter()
        for _ in range(frames):
            env.render()
        return frames / (time.perf_counter() - t0)
    finally:
        env.close()


def bench_generate(episodes: int, workers: int) -> dict:
    from humanprompt_ros.cli.sim import main

    out = Path(tempfile.mkdtemp(prefix="humanprompt-bench-"))
    try:
        n_tasks = len(task_files())
        per = max(1, episodes // (2 * n_tasks))
        import resource

        def cpu() -> float:
            ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
            return sum(r.ru_utime + r.ru_stime for r in ru)

        c0, t0 = cpu(), time.perf_counter()
        main(
            [
                "generate",
                "--out",
                str(out),
                "--episodes",
                str(per),
                "--workers",
                str(workers),
                "--all-robot",
                "--quiet",
                "--chunk",
                str(per),
            ]
        )
        wall = time.perf_counter() - t0
        cpu_s = cpu() - c0  # worker processes are joined, so their CPU time is counted
        summary = json.loads((out / "generate_summary.json").read_text())
        n = summary["episodes"]
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        return {
            "episodes": n,
            "seconds": wall,
            "episodes_per_s": n / wall,
            "seconds_per_episode": wall / n,
            "cpu_seconds_per_episode": cpu_s / n,
            "generate_1000_minutes_if_cores_free": 1000 * cpu_s / n / workers / 60,
            "seconds_per_episode_per_worker": wall * workers / n,
            "mb_per_episode": size / n / 1e6,
            "generate_1000_minutes": 1000 * wall / n / 60,
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=32, help="episodes for the generation measurement")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    result: dict = {"cpus": os.cpu_count(), "workers": args.workers}
    task = load_task(task_files("pick_place")[0])
    for emb in ("robot", "human"):
        phys = bench_physics(task, emb)
        result[f"{emb}_physics_steps_per_s"] = round(phys["physics_steps_per_s"])
        result[f"{emb}_control_steps_per_s"] = round(phys["control_steps_per_s"], 1)
        result[f"{emb}_realtime_factor"] = round(phys["realtime_factor"], 2)
        for size in (128, 384):
            result[f"{emb}_render_fps_{size}"] = round(bench_render(task, emb, size), 1)
    gen = bench_generate(args.episodes, args.workers)
    result.update({f"generate_{k}" if not k.startswith("generate") else k: round(v, 3) for k, v in gen.items()})
    result["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on the machine skews wall times
    for k, v in result.items():
        print(f"{k:40s} {v}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
