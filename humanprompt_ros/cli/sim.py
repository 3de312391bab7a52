"""``humanprompt-sim``: the HumanPrompt-Sim benchmark (generate data, render, evaluate policies).

    humanprompt-sim tasks                                   # list the tasks and check their YAML
    humanprompt-sim generate --out data/sim                 # the dataset of config/benchmark.yaml
    humanprompt-sim render --task push_box --seed 0 --out push_box.mp4
    humanprompt-sim eval --policy scripted --embodiment robot --episodes 50 --json
    humanprompt-sim eval --policy replay --episodes 50 --json   # prompts: held-out human demos
    humanprompt-sim eval --policy full=models/policy.safetensors --policy replay --split unseen --episodes 20
    humanprompt-sim compare full replay run1.json run2.json   # paired: who did which episode, McNemar p

``eval --json`` prints as its last line ``{"skills": {SKILL: {"success": RATE, "episodes": N}},
"mean": RATE, "seen_mean": RATE, "unseen_mean": RATE}`` (SPEC §4), the means taken over skills; with
several ``--policy NAME=SPEC`` rows, ``{"policies": {NAME: <that object>}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..sim.tasks import TWIN_SCENES


def _tqdm(**kw):
    from tqdm import tqdm

    return tqdm(**kw)


# -- splits ---------------------------------------------------------------------------------------
@dataclass
class SeedRange:
    start: int
    count: int

    def validate(self) -> None:
        if self.start < 0 or self.count < 0:
            raise ValueError(f"start: seeds must be >= 0 (start {self.start}, count {self.count})")

    def seeds(self) -> list[int]:
        return list(range(self.start, self.start + self.count))


@dataclass
class Seeds:
    train: SeedRange
    heldout: SeedRange


@dataclass
class BenchmarkConfig:
    """``config/benchmark.yaml``: which skills have robot data, which are human-only, which seeds."""

    robot_skills: list[str]
    human_only_skills: list[str]
    seeds: Seeds
    format_version: int = 1

    def validate(self) -> None:
        from ..sim.tasks import SKILLS

        for key in ("robot_skills", "human_only_skills"):
            bad = [s for s in getattr(self, key) if s not in SKILLS]
            if bad:
                raise ValueError(f"{key}: unknown skill {bad[0]!r} (valid: {', '.join(SKILLS)})")
        both = set(self.robot_skills) & set(self.human_only_skills)
        if both:
            raise ValueError(f"human_only_skills: {sorted(both)[0]!r} is also in robot_skills")
        tr, ho = self.seeds.train, self.seeds.heldout
        if tr.start < ho.start + ho.count and ho.start < tr.start + tr.count:
            raise ValueError("seeds: the train and heldout seed ranges overlap")


def load_benchmark(path: str | None = None) -> BenchmarkConfig:
    from ..config import load_config
    from ..paths import config_path

    return load_config(BenchmarkConfig, path or config_path("benchmark.yaml"))


# -- commands -------------------------------------------------------------------------------------
def cmd_tasks(args) -> int:
    from ..sim.tasks import task_files, load_task

    for f in task_files(args.tasks):
        t = load_task(f)
        print(f"{t.name:16s} {t.skill:14s} horizon {t.horizon:3d}  {t.config.description}  ({f})")
    return 0


def _twin_scenes(args) -> str:
    """--twin-scenes, or config/sim.yaml's when not given."""
    from ..sim.runner import sim_config

    return sim_config(args.twin_scenes).twin_scenes


def _pool(workers: int):
    return mp.get_context("spawn").Pool(workers) if workers > 1 else None


def _chunks(seeds: list[int], size: int) -> list[list[int]]:
    return [seeds[i:i + size] for i in range(0, len(seeds), size)]


def cmd_generate(args) -> int:
    from ..sim.runner import generate_job
    from ..sim.tasks import task_files, load_task

    bench = load_benchmark(args.benchmark)
    if args.crf is None:
        from ..sim.scene import load_sim_config

        args.crf = load_sim_config().video_crf
    split = getattr(bench.seeds, args.split)
    seeds = split.seeds()
    n = len(seeds) if args.episodes is None else args.episodes
    if n < 1:
        raise ValueError(f"--episodes {n}: at least 1")
    if args.seed is not None:
        seeds = list(range(args.seed, args.seed + n))
    elif n > len(seeds):
        raise ValueError(f"--episodes {n}: the {args.split} split has {len(seeds)} seeds "
                         f"({seeds[0]}..{seeds[-1]}); pass --seed to generate past them")
    else:
        seeds = seeds[:n]
    jobs = []
    for f in task_files(args.tasks):
        task = load_task(f)
        for emb in (["robot", "human"] if args.embodiment == "both" else [args.embodiment]):
            if emb == "robot" and task.skill not in bench.robot_skills and not args.all_robot:
                continue  # human-only skill (the unseen-skill setting)
            for chunk in _chunks(seeds, args.chunk):
                jobs.append((str(f), emb, chunk, str(args.out), args.crf, args.overwrite, args.twin_scenes))
    total = sum(len(j[2]) for j in jobs)
    if not total:
        print("nothing to generate (check --tasks, --embodiment and config/benchmark.yaml)", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    bar = _tqdm(total=total, desc="generate", unit="ep", disable=args.quiet)
    pool = _pool(args.workers)
    try:
        it = pool.imap_unordered(generate_job, jobs) if pool else map(generate_job, jobs)
        for res in it:
            results += res
            bar.update(len(res))
            done = [r for r in results if r["success"] is not None]
            if done:
                bar.set_postfix(success=f"{np.mean([r['success'] for r in done]):.3f}")
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
    wall = time.perf_counter() - t0
    summary = _success_table(results)
    summary.update({"episodes": len(results), "seconds": round(wall, 1),
                    "seconds_per_episode": round(wall / max(1, len(results)), 3), "workers": args.workers,
                    "twin_scenes": _twin_scenes(args)})
    (out / "generate_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return 0


def skill_rates(results: list[dict]) -> dict[str, dict]:
    """Per-episode results → {skill: {"success": RATE, "episodes": N}} (episodes without an outcome skipped),
    plus, on shared twin scenes, "twin_only": the rate at which the twin's task got done and this one not
    (the other task of the pair was done; both predicates can hold at once where the discs are close)."""
    per: dict[str, list[bool]] = {}
    twin: dict[str, list[bool]] = {}
    for r in results:
        if r.get("success") is not None:
            per.setdefault(r["skill"], []).append(bool(r["success"]))
            if r.get("twin_success") is not None:
                twin.setdefault(r["skill"], []).append(bool(r["twin_success"]) and not r["success"])
    return {k: {"success": round(float(np.mean(v)), 4), "episodes": len(v),
                **({"twin_only": round(float(np.mean(twin[k])), 4)} if k in twin else {})}
            for k, v in sorted(per.items())}


def _success_table(results: list[dict]) -> dict:
    embodiments = sorted({r["embodiment"] for r in results if r.get("success") is not None})
    return {emb: skill_rates([r for r in results if r["embodiment"] == emb]) for emb in embodiments}


SPLITS = ("seen", "unseen", "all")
TWIN_SCENES_HELP = ("own: each task draws its own layout; shared: a task and its twin draw one layout per seed, "
                    "so only the prompt says which is asked (default: config/sim.yaml twin_scenes)")
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
            from ..policy import make_policy

            make_policy(value)  # raises the readable error here, before any worker starts
        rows[name] = value
    return rows


def split_tasks(task_arg: str | None, split: str, benchmark: str | None = None) -> list[Path]:
    """The task files of ``--tasks`` whose skill is in ``split``: seen (robot skills), unseen (human-only)."""
    from ..sim.tasks import load_task, task_files

    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    bench = load_benchmark(benchmark)
    keep = {"seen": set(bench.robot_skills), "unseen": set(bench.human_only_skills),
            "all": set(bench.robot_skills) | set(bench.human_only_skills)}[split]
    files = [f for f in task_files(task_arg) if load_task(f).skill in keep]  # validates each task here
    if not files:
        raise ValueError(f"no task matches --tasks {task_arg or '(all)'} in split {split!r}")
    return files


def summarize(results: list[dict], bench: "BenchmarkConfig") -> dict:
    """Per-episode results → the eval JSON contract (SPEC §4) plus the seen/unseen means."""
    skills = skill_rates(results)
    out = {"skills": skills, "mean": round(float(np.mean([v["success"] for v in skills.values()])), 4) if skills else 0.0}
    for name, group in (("seen_mean", bench.robot_skills), ("unseen_mean", bench.human_only_skills)):
        vals = [v["success"] for k, v in skills.items() if k in group]
        if vals:
            out[name] = round(float(np.mean(vals)), 4)
    return out


def markdown_table(rows: dict[str, dict]) -> str:
    """{row: summary} → a markdown table, one column per skill, then the seen/unseen/overall means."""
    skills = sorted({k for r in rows.values() for k in r["skills"]})
    cols = skills + [c for c in ("seen_mean", "unseen_mean") if any(c in r for r in rows.values())] + ["mean"]
    lines = ["| policy | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in rows.items():
        cells = [f"{r['skills'][k]['success']:.2f}" if k in r["skills"] else "–" for k in skills]
        cells += [f"{r[c]:.2f}" if c in r else "–" for c in cols[len(skills):]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cmd_eval(args) -> int:
    from ..sim.runner import eval_job
    from ..sim.tasks import task_files

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
    jobs = [(policies, str(f), args.embodiment, chunk, args.prompt_seed, kwargs, args.save_dir, prompt_task,
             args.twin_scenes) for f in files for chunk in _chunks(seeds, size)]
    results: dict[str, list[dict]] = {name: [] for name in rows}
    bar = _tqdm(total=len(rows) * len(files) * len(seeds), desc=f"eval {', '.join(rows)}", unit="ep",
                disable=args.quiet or not sys.stderr.isatty())
    pool = _pool(args.workers)
    try:
        it = pool.imap_unordered(eval_job, jobs) if pool else map(eval_job, jobs)
        for res in it:
            for r in res:
                results[r["policy"]].append(r)
            bar.update(len(res))
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
    table = {name: summarize(results[name], bench) for name in rows}
    twin_scenes = _twin_scenes(args)
    settings = {"split": args.split, "embodiment": args.embodiment, "seeds": [seeds[0], seeds[-1]],
                "prompt_seed": args.prompt_seed, "twin_scenes": twin_scenes, "policy_args": kwargs,
                **({"prompt_task": args.prompt_task} if args.prompt_task else {})}
    header = (f"embodiment {args.embodiment}  split {args.split}  seeds {args.seed}..{args.seed + args.episodes - 1}"
              f"  twin scenes {twin_scenes}"
              f"  prompts: human demos{' of ' + args.prompt_task if args.prompt_task else ''} at "
              f"{'the same seed' if args.prompt_seed == 'same' else 'other held-out seeds'}"
              + (f"  policy args {json.dumps(kwargs)}" if kwargs else ""))
    if len(rows) == 1:
        result = next(iter(table.values()))
    else:
        result = {"policies": table, **settings}
    if args.out:  # the file also lists every episode's outcome and the settings (humanprompt-sim table merges files)
        episodes = {name: sorted(({"task": r["task"], "seed": r["seed"], "success": r["success"],
                                   **({"twin_success": r["twin_success"]} if "twin_success" in r else {})}
                                  for r in rs),
                                 key=lambda e: (e["task"], e["seed"])) for name, rs in results.items()}
        full = dict(settings, **result, episodes=episodes if len(rows) > 1 else next(iter(episodes.values())))
        Path(args.out).write_text(json.dumps(full, indent=1) + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        print(header)
        print(markdown_table(table))
        twin_lines = [f"  {name}: " + ", ".join(f"{k} {v['twin_only']:.2f}" for k, v in r["skills"].items()
                                                 if "twin_only" in v)
                      for name, r in table.items() if any("twin_only" in v for v in r["skills"].values())]
        if twin_lines:
            print("did the twin's task instead of the prompted one (shared scenes):")
            print("\n".join(twin_lines))
    return 0


# settings that must agree between the files of one table (a file without one says nothing about it)
TABLE_SETTINGS = ("embodiment", "prompt_seed", "prompt_task", "twin_scenes", "policy_args")
# what to do instead, where a mismatch has a way round
SETTING_HINTS = {"policy_args": "; to compare one checkpoint under two settings, export a copy with the other setting "
                                "under another name (humanprompt-train export --set policy.guidance=G) and evaluate "
                                "both in one run"}


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate k/n (sound at 0 and n, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def read_eval_files(specs: list[str]) -> dict[str, dict[tuple[str, int], bool]]:
    """``humanprompt-sim eval --out`` files → {row: {(task, seed): success}}. ``NAME=FILE`` names the row
    of a single-policy file (default: the file's stem). The same episode in two files, or files evaluated
    under different settings (embodiment, prompt seeds, prompt task, --policy-args), are refused."""
    rows: dict[str, dict[tuple[str, int], bool]] = {}
    source: dict[tuple[str, str, int], str] = {}
    settings: dict[str, tuple[object, str]] = {}
    for spec in specs:
        name, path = spec.split("=", 1) if "=" in spec and not Path(spec).exists() else ("", spec)
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file (an eval result: humanprompt-sim eval --out FILE)") from None
        except ValueError as exc:
            raise ValueError(f"{path}: not a JSON file ({exc})") from None
        episodes = data.get("episodes") if isinstance(data, dict) else None
        if episodes is None:
            raise ValueError(f"{path}: no per-episode outcomes (the file of humanprompt-sim eval --out FILE has them; "
                             "its printed --json line does not)")
        if isinstance(episodes, list):
            episodes = {name or Path(path).stem: episodes}
        elif name:
            raise ValueError(f"{spec}: NAME= names the row of a single-policy file; {path} has the rows "
                             f"{', '.join(episodes)}")
        for key in TABLE_SETTINGS:
            value = data.get(key)
            if value is None:
                continue
            seen_value, seen_in = settings.setdefault(key, (value, path))
            if value != seen_value:
                raise ValueError(f"{path}: {key} {value!r}, but {seen_in} has {seen_value!r}: one table compares "
                                 f"episodes evaluated the same way{SETTING_HINTS.get(key, '')}")
        for row, outcomes in episodes.items():
            got = rows.setdefault(row, {})
            for e in outcomes:
                key = (str(e["task"]), int(e["seed"]))
                if key in got:
                    raise ValueError(f"{path}: {row}'s {key[0]} seed {key[1]} is also in {source[(row, *key)]} "
                                     "(overlapping seed ranges): give each episode once")
                got[key] = bool(e["success"])
                source[(row, *key)] = path
    return rows


def read_eval_rows(args) -> tuple[object, dict[str, str], dict[str, dict[tuple[str, int], bool]]]:
    """``table``/``compare`` input: the benchmark splits, {task: skill} and the rows of ``args.files``
    (``read_eval_files``); a task that config/tasks does not define is refused."""
    from ..sim.tasks import load_task, task_files

    bench = load_benchmark(args.benchmark)
    skill_of = {t.name: t.skill for t in map(load_task, task_files(None))}
    rows = read_eval_files(args.files)
    unknown = sorted({task for got in rows.values() for task, _ in got} - set(skill_of))
    if unknown:
        raise ValueError(f"tasks not in config/tasks: {', '.join(unknown)}")
    return bench, skill_of, rows


def split_groups(bench, skills: list[str]) -> list[tuple[str, set[str]]]:
    """The seen, human-only and all groups of ``skills`` (those with any of them), as tables total them."""
    groups = [("seen", set(bench.robot_skills)), ("human-only", set(bench.human_only_skills)), ("all", set(skills))]
    return [(label, group) for label, group in groups if group & set(skills)]


def cmd_table(args) -> int:
    bench, skill_of, rows = read_eval_rows(args)
    results = {row: [{"skill": skill_of[task], "success": ok} for (task, _), ok in sorted(got.items())]
               for row, got in rows.items()}
    if args.json:
        print(json.dumps({"policies": {row: summarize(r, bench) for row, r in results.items()},
                          "episodes": {row: len(r) for row, r in results.items()}}))
        return 0
    skills = sorted({r["skill"] for rs in results.values() for r in rs})
    groups = split_groups(bench, skills)
    lines = ["| policy | " + " | ".join(skills + [g for g, _ in groups]) + " |", "|---" * (1 + len(skills) + len(groups)) + "|"]
    for row, rs in results.items():
        def count(keep: set[str]) -> tuple[int, int]:
            picked = [r["success"] for r in rs if r["skill"] in keep]
            return sum(picked), len(picked)

        cells = ["{}/{}".format(*c) if c[1] else "–" for c in (count({s}) for s in skills)]
        for _, group in groups:
            k, n = count(group)
            lo, hi = wilson_interval(k, n)
            cells.append(f"{k}/{n} = {k / n:.2f} ({lo:.2f}–{hi:.2f})" if n else "–")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    print("successes / episodes per skill; totals with a 95% Wilson interval")
    print("\n".join(lines))
    covered = {row: set(got) for row, got in rows.items()}
    if len({frozenset(c) for c in covered.values()}) > 1:
        print("note: the rows do not cover the same episodes (" + ", ".join(f"{r}: {len(c)}" for r, c in covered.items())
              + "); only rows over the same episodes compare exactly")
    return 0


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` episodes only one policy did and ``c`` only the other did
    (a binomial test of b successes in b + c at 1/2; the episodes both or neither did carry no evidence)."""
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


def cmd_compare(args) -> int:
    bench, skill_of, rows = read_eval_rows(args)
    for name in (args.a, args.b):
        if name not in rows:
            raise ValueError(f"no policy {name!r} in the files (they have: {', '.join(rows)})")
    a, b = rows[args.a], rows[args.b]
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError(f"{args.a} and {args.b} share no episode (task, seed): evaluate both on the same seeds")
    skills = sorted({skill_of[task] for task, _ in shared})
    result = {}
    for label, keep in [(s, {s}) for s in skills] + split_groups(bench, skills):
        eps = [e for e in shared if skill_of[e[0]] in keep]
        only_a = sum(a[e] and not b[e] for e in eps)
        only_b = sum(b[e] and not a[e] for e in eps)
        result[label] = {"episodes": len(eps), "successes_a": sum(a[e] for e in eps),
                         "successes_b": sum(b[e] for e in eps), "only_a": only_a, "only_b": only_b,
                         "p": round(mcnemar_exact(only_a, only_b), 4)}
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, "groups": result}))
        return 0
    print(f"{args.a} vs {args.b} on the {len(shared)} episodes both ran: successes, the episodes only one of them "
          "did, and the two-sided exact McNemar p of those")
    print(f"| skill | episodes | {args.a} | {args.b} | only {args.a} | only {args.b} | p |")
    print("|---" * 7 + "|")
    for label, r in result.items():
        cells = [r["episodes"], r["successes_a"], r["successes_b"], r["only_a"], r["only_b"], f"{r['p']:.3g}"]
        print(f"| {label} | " + " | ".join(map(str, cells)) + " |")
    dropped = len(set(a) ^ set(b))
    if dropped:
        print(f"note: {dropped} episodes ran under only one of the two policies and are left out")
    return 0


def _label(frame: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    out = frame.copy()
    out[: max(3, frame.shape[0] // 60)] = color
    return out


def cmd_render(args) -> int:
    from ..data import write_video
    from ..sim.env import SimEnv
    from ..sim.runner import expert_episode
    from ..sim.scene import load_sim_config
    from ..sim.tasks import task_files, load_task

    files = task_files(args.task)
    if len(files) != 1:
        raise ValueError(f"--task must name exactly one task, {args.task!r} matches {len(files)}")
    task = load_task(files[0])
    cfg = load_sim_config()
    size = args.size or cfg.video_size
    size += size % 2
    videos = {}
    for emb in ("human", "robot"):
        env = SimEnv(task, emb, render=True, image_size=size)
        try:
            rec = expert_episode(task, emb, args.seed, env=env)
        finally:
            env.close()
        videos[emb] = (rec.frames, rec.success)
        print(f"{task.name} seed {args.seed} {emb}: success {rec.success}", file=sys.stderr)
    n = max(len(v[0]) for v in videos.values())
    frames = []
    for t in range(n):
        h = videos["human"][0][min(t, len(videos["human"][0]) - 1)]
        r = videos["robot"][0][min(t, len(videos["robot"][0]) - 1)]
        gap = np.full((size, max(2, size // 64), 3), 255, np.uint8)
        frames.append(np.concatenate([_label(h, (230, 170, 140)), gap, _label(r, (40, 40, 45))], axis=1))
    if frames[0].shape[1] % 2:
        frames = [np.pad(f, ((0, 0), (0, 1), (0, 0)), constant_values=255) for f in frames]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(out, frames, cfg.control_hz)
    print(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="humanprompt-sim", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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
    g.add_argument("--episodes", type=int, default=None, help="episodes per task and embodiment (default: the split's count; more needs --seed)")
    g.add_argument("--seed", type=int, default=None, help="first seed (overrides the split's start)")
    g.add_argument("--all-robot", action="store_true", help="also robot episodes of the human-only skills")
    g.add_argument("--workers", type=int, default=workers)
    g.add_argument("--chunk", type=int, default=10, help="episodes per worker job")
    g.add_argument("--crf", type=int, default=None, help="H.264 quality (lower is better, 0 lossless; default sim.yaml video_crf)")
    g.add_argument("--overwrite", action="store_true", help="regenerate episodes that exist")
    g.add_argument("--benchmark", default=None, help="splits file (default config/benchmark.yaml)")
    g.add_argument("--twin-scenes", choices=TWIN_SCENES, default=None, help=TWIN_SCENES_HELP)
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("render", help="a human and a robot episode of one task side by side (mp4 or gif)")
    r.add_argument("--task", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", required=True, help="output .mp4 or .gif")
    r.add_argument("--size", type=int, default=None, help="frame size per hand (default: sim.yaml video_size)")
    r.set_defaults(func=cmd_render)

    e = sub.add_parser("eval", help="closed-loop success rate of a policy")
    e.add_argument("--policy", required=True, action="append",
                   help="scripted | replay | noop | random | a checkpoint path; NAME=SPEC names the row; "
                        "repeat to evaluate several policies on the same episodes (one table)")
    e.add_argument("--split", choices=SPLITS, default="all",
                   help="seen: the robot skills under new scenes; unseen: the human-only skills; all (default)")
    e.add_argument("--benchmark", default=None, help="splits file (default config/benchmark.yaml)")
    e.add_argument("--embodiment", choices=["robot", "human"], default="robot")
    e.add_argument("--episodes", type=int, default=10, help="episodes per task")
    e.add_argument("--seed", type=int, default=1_000_000, help="first seed (default: the held-out range)")
    e.add_argument("--tasks", default=None, help="task YAML, directory, path glob or name glob (default: all)")
    e.add_argument("--prompt-seed", choices=["same", "other"], default="other",
                   help="prompt = a human demo of the episode's task at another held-out seed (default; never "
                        "a training scene) or at the same seed (the same scene)")
    e.add_argument("--prompt-task", default=None,
                   help="prompt every episode with a human demo of this task instead of its own (a mismatched "
                        "prompt: does the policy follow the prompt or the scene?); success is judged on the "
                        "episode's own task")
    e.add_argument("--twin-scenes", choices=TWIN_SCENES, default=None, help=TWIN_SCENES_HELP)
    e.add_argument("--policy-args", default=None, help="JSON object of extra policy arguments")
    e.add_argument("--workers", type=int, default=workers)
    e.add_argument("--chunk", type=int, default=10, help="max episodes per worker job")
    e.add_argument("--save-dir", default=None,
                   help="also write the evaluated episodes (every frame rendered) to DIR/<policy>/<task>/<embodiment>/<seed>")
    e.add_argument("--json", action="store_true", help="print the result JSON as the last line")
    e.add_argument("--out", default=None, help="also write the result JSON to this file, with every episode's outcome")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)

    tb = sub.add_parser("table", help="one table from several eval result files (more seeds, more policies)")
    tb.add_argument("files", nargs="+", metavar="FILE",
                    help="humanprompt-sim eval --out files; NAME=FILE names a single-policy file's row (default: "
                         "its stem); each episode (policy, task, seed) may appear once")
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
