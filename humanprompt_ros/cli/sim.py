"""``humanprompt-sim``: the HumanPrompt-Sim benchmark (generate data, render, evaluate policies).

    humanprompt-sim tasks                                   # list the tasks and check their YAML
    humanprompt-sim generate --out data/sim                 # the dataset of config/benchmark.yaml
    humanprompt-sim render --task push_box --seed 0 --out push_box.mp4
    humanprompt-sim eval --policy scripted --embodiment robot --episodes 50 --json
    humanprompt-sim eval --policy replay --episodes 50 --json   # prompts: held-out human demos
    humanprompt-sim eval --policy full=models/policy.safetensors --policy replay --split unseen --episodes 20
    humanprompt-sim compare full replay run1.json run2.json   # paired: who did which episode, McNemar p
    humanprompt-sim failures run1.json                       # how the failed episodes ended, per skill

``eval --json`` prints as its last line ``{"skills": {SKILL: {"success": RATE, "episodes": N}},
"mean": RATE, "seen_mean": RATE, "unseen_mean": RATE}``, the means taken over skills; with
several ``--policy NAME=SPEC`` rows, ``{"policies": {NAME: <that object>}, ...}``.

This module parses arguments and prints; the work is in :mod:`humanprompt_ros.sim` (runner, benchmark
splits, results files) and :mod:`humanprompt_ros.eval` (rollouts, statistics). The commands that simulate
import MuJoCo and torch when they run, so ``tasks``, ``table`` and ``compare`` start fast.

Kept as one module: the six subcommands' arguments and output, read together by a user of the
command; the work lives in :mod:`humanprompt_ros.sim` and :mod:`humanprompt_ros.eval`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from humanprompt_ros.eval.failures import failure_lines, summarize_failures
from humanprompt_ros.progress import progress
from humanprompt_ros.sim.benchmark import SPLITS, load_benchmark, split_tasks
from humanprompt_ros.sim.results import (
    compare_rows,
    count_table,
    markdown_table,
    read_eval_rows,
    success_table,
    summarize,
    write_eval_file,
)
from humanprompt_ros.sim.tasks import BENCHMARK_VERSION, TWIN_SCENES, load_task, task_files


# -- commands -------------------------------------------------------------------------------------
def cmd_tasks(args) -> int:
    for f in task_files(args.tasks):
        t = load_task(f)
        print(f"{t.name:16s} {t.skill:14s} horizon {t.horizon:3d}  {t.config.description}  ({f})")
    return 0


def _twin_scenes(args) -> str:
    """--twin-scenes, or config/sim.yaml's when not given."""
    from humanprompt_ros.sim.runner import sim_config

    return sim_config(args.twin_scenes).twin_scenes


def cmd_generate(args) -> int:
    from humanprompt_ros.sim.runner import chunks, generate_job, run_jobs

    bench = load_benchmark(args.benchmark)
    if args.crf is None:
        from humanprompt_ros.sim.scene import load_sim_config

        args.crf = load_sim_config().video_crf
    split = getattr(bench.seeds, args.split)
    seeds = split.seeds()
    n = len(seeds) if args.episodes is None else args.episodes
    if n < 1:
        raise ValueError(f"--episodes {n}: at least 1")
    if args.seed is not None:
        seeds = list(range(args.seed, args.seed + n))
    elif n > len(seeds):
        raise ValueError(
            f"--episodes {n}: the {args.split} split has {len(seeds)} seeds "
            f"({seeds[0]}..{seeds[-1]}); pass --seed to generate past them"
        )
    else:
        seeds = seeds[:n]
    noise = None
    if args.noise_wrist_cm > 0 or args.noise_tips_cm > 0:
        from humanprompt_ros.sim.runner import ActionNoise

        spec = ActionNoise(args.noise_wrist_cm, args.noise_tips_cm, args.noise_rho)
        spec.validate()
        noise = dataclasses.asdict(spec)
    jobs = []
    for f in task_files(args.tasks):
        task = load_task(f)
        for emb in ["robot", "human"] if args.embodiment == "both" else [args.embodiment]:
            if emb == "robot" and task.skill not in bench.robot_skills and not args.all_robot:
                continue  # human-only skill (the unseen-skill setting)
            for chunk in chunks(seeds, args.chunk):
                jobs.append((str(f), emb, chunk, str(args.out), args.crf, args.overwrite, args.twin_scenes, noise))
    total = sum(len(j[2]) for j in jobs)
    if not total:
        print("nothing to generate (check --tasks, --embodiment and config/benchmark.yaml)", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    bar = progress(total=total, desc="generate", unit="ep", enabled=not args.quiet)
    with bar:
        for res in run_jobs(generate_job, jobs, args.workers):
            results += res
            bar.update(len(res))
            done = [r for r in results if r["success"] is not None]
            if done:
                bar.set_postfix(success=f"{np.mean([r['success'] for r in done]):.3f}")
    wall = time.perf_counter() - t0
    summary = success_table(results)
    summary.update(
        {
            "episodes": len(results),
            "seconds": round(wall, 1),
            "seconds_per_episode": round(wall / max(1, len(results)), 3),
            "workers": args.workers,
            "twin_scenes": _twin_scenes(args),
            "benchmark": BENCHMARK_VERSION,
        }
    )
    (out / "generate_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return 0


TWIN_SCENES_HELP = (
    "own: each task draws its own layout; shared: a task and its twin draw one layout per seed, "
    "so only the prompt says which is asked (default: config/sim.yaml twin_scenes)"
)
SIMPLE_POLICIES = ("scripted", "replay", "noop", "random")


def parse_policies(specs: list[str]) -> dict[str, str]:
    """``--policy`` values → {row name: policy spec}; ``NAME=SPEC`` names a row, else the spec is the name."""
    rows: dict[str, str] = {}
    for spec in specs:
        name, _, value = spec.partition("=") if "=" in spec else (spec, "", spec)
        name, value = name.strip(), value.strip()
        if not name or not value:
            raise ValueError(f"--policy {spec!r}: expected SPEC or NAME=SPEC")
        if name in rows:
            raise ValueError(f"--policy: the row name {name!r} is given twice (name them: NAME=SPEC)")
        if value not in SIMPLE_POLICIES and not Path(value).exists():
            from humanprompt_ros.policies import make_policy

            make_policy(value)  # raises the readable error here, before any worker starts
        rows[name] = value
    return rows


def cmd_eval(args) -> int:
    from humanprompt_ros.eval.rollout import eval_job
    from humanprompt_ros.sim.runner import chunks, run_jobs

    rows = parse_policies(args.policy)
    bench = load_benchmark(args.benchmark)
    files = split_tasks(args.tasks, args.split, args.benchmark)
    seeds = list(range(args.seed, args.seed + args.episodes))
    if not seeds:
        print("nothing to evaluate", file=sys.stderr)
        return 1
    kwargs = json.loads(args.policy_args) if args.policy_args else {}
    size = max(1, min(args.chunk, -(-len(seeds) // max(1, args.workers))))
    policies = list(rows.items())
    prompt_task = None
    if args.prompt_task:
        matches = task_files(args.prompt_task)
        if len(matches) != 1:
            raise ValueError(f"--prompt-task {args.prompt_task!r} names {len(matches)} tasks; name exactly one")
        prompt_task = str(matches[0])
    jobs = [
        (
            policies,
            str(f),
            args.embodiment,
            chunk,
            args.prompt_seed,
            kwargs,
            args.save_dir,
            prompt_task,
            args.twin_scenes,
        )
        for f in files
        for chunk in chunks(seeds, size)
    ]
    results: dict[str, list[dict]] = {name: [] for name in rows}
    bar = progress(
        total=len(rows) * len(files) * len(seeds),
        desc=f"eval {', '.join(rows)}",
        unit="ep",
        enabled=not args.quiet and sys.stderr.isatty(),
    )
    with bar:
        for res in run_jobs(eval_job, jobs, args.workers):
            for r in res:
                results[r["policy"]].append(r)
            bar.update(len(res))
    table = {name: summarize(results[name], bench) for name in rows}
    twin_scenes = _twin_scenes(args)
    settings = {
        "benchmark": BENCHMARK_VERSION,
        "split": args.split,
        "embodiment": args.embodiment,
        "seeds": [seeds[0], seeds[-1]],
        "prompt_seed": args.prompt_seed,
        "twin_scenes": twin_scenes,
        "policy_args": kwargs,
        **({"prompt_task": args.prompt_task} if args.prompt_task else {}),
    }
    header = (
        f"benchmark v{BENCHMARK_VERSION}  embodiment {args.embodiment}  split {args.split}  seeds {args.seed}..{args.seed + args.episodes - 1}"
        f"  twin scenes {twin_scenes}"
        f"  prompts: human demos{' of ' + args.prompt_task if args.prompt_task else ''} at "
        f"{'the same seed' if args.prompt_seed == 'same' else 'other held-out seeds'}"
        + (f"  policy args {json.dumps(kwargs)}" if kwargs else "")
    )
    if len(rows) == 1:
        result = next(iter(table.values()))
    else:
        result = {"policies": table, **settings}
    if args.out:  # the file also lists every episode's outcome and the settings (humanprompt-sim table merges files)
        write_eval_file(args.out, settings, result, results)
    if args.save_dir:  # before the output, so that with --json the result stays the last line
        from humanprompt_ros.sim.render import episode_sheets

        for sheet in episode_sheets(Path(args.save_dir)):
            print(f"contact sheet: {sheet}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    else:
        print(header)
        print(markdown_table(table))
        twin_lines = [
            f"  {name}: " + ", ".join(f"{k} {v['twin_only']:.2f}" for k, v in r["skills"].items() if "twin_only" in v)
            for name, r in table.items()
            if any("twin_only" in v for v in r["skills"].values())
        ]
        if twin_lines:
            print("did the twin's task instead of the prompted one (shared scenes):")
            print("\n".join(twin_lines))
        print_failures(results)
    return 0


def print_failures(rows: dict[str, list[dict]]) -> None:
    """How each row's failed episodes ended (:mod:`humanprompt_ros.eval.failures`)."""
    for name, episodes in rows.items():
        if any(not e.get("success") for e in episodes):
            print(f"how {name}'s failures ended:")
            print("\n".join(failure_lines(summarize_failures(episodes))))


def cmd_failures(args) -> int:
    _, skill_of, rows = read_eval_rows(args.files, args.benchmark, episodes=True)
    rows = {name: [dict(e, skill=skill_of[task]) for (task, _), e in sorted(got.items())] for name, got in rows.items()}
    if args.json:
        print(json.dumps({name: summarize_failures(eps) for name, eps in rows.items()}))
    else:
        print_failures(rows)
    return 0


def cmd_table(args) -> int:
    bench, skill_of, rows = read_eval_rows(args.files, args.benchmark)
    results = {
        row: [{"skill": skill_of[task], "success": ok} for (task, _), ok in sorted(got.items())]
        for row, got in rows.items()
    }
    if args.json:
        print(
            json.dumps(
                {
                    "policies": {row: summarize(r, bench) for row, r in results.items()},
                    "episodes": {row: len(r) for row, r in results.items()},
                }
            )
        )
        return 0
    lines = count_table(bench, results)
    print("successes / episodes per skill; totals with a 95% Wilson interval")
    print("\n".join(lines))
    covered = {row: set(got) for row, got in rows.items()}
    if len({frozenset(c) for c in covered.values()}) > 1:
        print(
            "note: the rows do not cover the same episodes ("
            + ", ".join(f"{r}: {len(c)}" for r, c in covered.items())
            + "); only rows over the same episodes compare exactly"
        )
    return 0


def cmd_compare(args) -> int:
    bench, skill_of, rows = read_eval_rows(args.files, args.benchmark)
    for name in (args.a, args.b):
        if name not in rows:
            raise ValueError(f"no policy {name!r} in the files (they have: {', '.join(rows)})")
    result, shared, dropped = compare_rows(bench, skill_of, rows[args.a], rows[args.b], args.a, args.b)
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, "groups": result}))
        return 0
    print(
        f"{args.a} vs {args.b} on the {len(shared)} episodes both ran: successes, the episodes only one of them "
        "did, and the two-sided exact McNemar p of those"
    )
    print(f"| skill | episodes | {args.a} | {args.b} | only {args.a} | only {args.b} | p |")
    print("|---" * 7 + "|")
    for label, r in result.items():
        cells = [r["episodes"], r["successes_a"], r["successes_b"], r["only_a"], r["only_b"], f"{r['p']:.3g}"]
        print(f"| {label} | " + " | ".join(map(str, cells)) + " |")
    if dropped:
        print(f"note: {dropped} episodes ran under only one of the two policies and are left out")
    return 0


def cmd_render(args) -> int:
    from humanprompt_ros.data import write_video
    from humanprompt_ros.sim.render import expert_side_by_side
    from humanprompt_ros.sim.scene import load_sim_config

    files = task_files(args.task)
    if len(files) != 1:
        raise ValueError(f"--task must name exactly one task, {args.task!r} matches {len(files)}")
    task, cfg = load_task(files[0]), load_sim_config()
    frames, success = expert_side_by_side(task, args.seed, args.size or cfg.video_size)
    for emb, ok in success.items():
        print(f"{task.name} seed {args.seed} {emb}: success {ok}", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(out, frames, cfg.control_hz)
    print(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="humanprompt-sim", description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    workers = max(1, os.cpu_count() or 1)

    t = sub.add_parser("tasks", help="list (and validate) the tasks")
    t.add_argument("--tasks", default=None, help="a task YAML, a directory, a path glob or a task-name glob")
    t.set_defaults(func=cmd_tasks)

    g = sub.add_parser("generate", help="write expert demonstrations (the dataset)")
    g.add_argument("--out", required=True, type=Path, help="dataset root: <out>/<task>/<embodiment>/<seed>/")
    g.add_argument("--tasks", default=None, help="task YAML, directory, path glob or name glob (default: all)")
    g.add_argument("--embodiment", choices=["robot", "human", "both"], default="both")
    g.add_argument("--split", choices=["train", "heldout"], default="train", help="seed range of config/benchmark.yaml")
    g.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="episodes per task and embodiment (default: the split's count; more needs --seed)",
    )
    g.add_argument("--seed", type=int, default=None, help="first seed (overrides the split's start)")
    g.add_argument("--all-robot", action="store_true", help="also robot episodes of the human-only skills")
    g.add_argument("--workers", type=int, default=workers)
    g.add_argument("--chunk", type=int, default=10, help="episodes per worker job")
    g.add_argument(
        "--crf", type=int, default=None, help="H.264 quality (lower is better, 0 lossless; default sim.yaml video_crf)"
    )
    g.add_argument("--overwrite", action="store_true", help="regenerate episodes that exist")
    g.add_argument("--benchmark", default=None, help="splits file (default config/benchmark.yaml)")
    g.add_argument("--twin-scenes", choices=TWIN_SCENES, default=None, help=TWIN_SCENES_HELP)
    g.add_argument(
        "--noise-wrist-cm",
        type=float,
        default=0.0,
        help="DART: the executed wrist position carries AR(1) noise of this std (cm); the recorded actions stay "
        "the expert's, so the data shows recoveries (0: none)",
    )
    g.add_argument("--noise-tips-cm", type=float, default=0.0, help="DART: the same for every fingertip target (cm)")
    g.add_argument("--noise-rho", type=float, default=0.8, help="DART: step-to-step correlation of that noise")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("render", help="a human and a robot episode of one task side by side (mp4 or gif)")
    r.add_argument("--task", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", required=True, help="output .mp4 or .gif")
    r.add_argument("--size", type=int, default=None, help="frame size per hand (default: sim.yaml video_size)")
    r.set_defaults(func=cmd_render)

    e = sub.add_parser("eval", help="closed-loop success rate of a policy")
    e.add_argument(
        "--policy",
        required=True,
        action="append",
        help="scripted | replay | noop | random | a checkpoint path; NAME=SPEC names the row; "
        "repeat to evaluate several policies on the same episodes (one table)",
    )
    e.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="seen: the robot skills under new scenes; unseen: the human-only skills; all (default)",
    )
    e.add_argument("--benchmark", default=None, help="splits file (default config/benchmark.yaml)")
    e.add_argument("--embodiment", choices=["robot", "human"], default="robot")
    e.add_argument("--episodes", type=int, default=10, help="episodes per task")
    e.add_argument("--seed", type=int, default=1_000_000, help="first seed (default: the held-out range)")
    e.add_argument("--tasks", default=None, help="task YAML, directory, path glob or name glob (default: all)")
    e.add_argument(
        "--prompt-seed",
        choices=["same", "other"],
        default="other",
        help="prompt = a human demo of the episode's task at another held-out seed (default; never "
        "a training scene) or at the same seed (the same scene)",
    )
    e.add_argument(
        "--prompt-task",
        default=None,
        help="prompt every episode with a human demo of this task instead of its own (a mismatched "
        "prompt: does the policy follow the prompt or the scene?); success is judged on the "
        "episode's own task",
    )
    e.add_argument("--twin-scenes", choices=TWIN_SCENES, default=None, help=TWIN_SCENES_HELP)
    e.add_argument("--policy-args", default=None, help="JSON object of extra policy arguments")
    e.add_argument("--workers", type=int, default=workers)
    e.add_argument("--chunk", type=int, default=10, help="max episodes per worker job")
    e.add_argument(
        "--save-dir",
        default=None,
        help="also write the evaluated episodes (every frame rendered) to DIR/<policy>/<task>/<embodiment>/<seed> "
        "and a contact sheet of them to DIR/<policy>/<task>/<embodiment>/sheet.png",
    )
    e.add_argument("--json", action="store_true", help="print the result JSON as the last line")
    e.add_argument("--out", default=None, help="also write the result JSON to this file, with every episode's outcome")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)

    tb = sub.add_parser("table", help="one table from several eval result files (more seeds, more policies)")
    tb.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="humanprompt-sim eval --out files; NAME=FILE names a single-policy file's row (default: "
        "its stem); each episode (policy, task, seed) may appear once",
    )
    tb.add_argument("--benchmark", default=None, help="splits file (default config/benchmark.yaml)")
    tb.add_argument("--json", action="store_true", help="print the eval JSON contract per policy instead")
    tb.set_defaults(func=cmd_table)

    cp = sub.add_parser("compare", help="two policies episode by episode (paired counts, exact McNemar p)")
    cp.add_argument("a", metavar="A", help="a policy row of the files (as in humanprompt-sim table)")
    cp.add_argument("b", metavar="B", help="the policy to compare it with")
    cp.add_argument("files", nargs="+", metavar="FILE", help="humanprompt-sim eval --out files, as for table")
    cp.add_argument("--benchmark", default=None, help="splits file (default config/benchmark.yaml)")
    cp.add_argument("--json", action="store_true", help='print {"a", "b", "groups": {GROUP: counts and p}}')
    cp.set_defaults(func=cmd_compare)

    fl = sub.add_parser("failures", help="how the failed episodes of eval files ended, per skill (failure modes)")
    fl.add_argument("files", nargs="+", metavar="FILE", help="humanprompt-sim eval --out files (NAME=FILE names a row)")
    fl.add_argument("--benchmark", default=None, help="splits file (default config/benchmark.yaml)")
    fl.add_argument(
        "--json", action="store_true", help="print {row: {skill: {episodes, failed, modes, median_failed}}}"
    )
    fl.set_defaults(func=cmd_failures)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"humanprompt-sim {args.cmd}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
