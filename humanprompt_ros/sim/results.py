"""Evaluation results: per-episode outcomes → per-skill rates, the eval file that
``humanprompt-sim eval --out`` writes, and reading such files back to table or compare them.

An eval file holds the settings it was evaluated under (split, embodiment, seeds, prompt seeds,
twin scenes, policy arguments), the summary (per-skill success, seen/unseen means) and every
episode's outcome, so tables can be merged and paired comparisons made episode by episode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from humanprompt_ros.eval.stats import mcnemar_exact, wilson_interval
from humanprompt_ros.sim.benchmark import BenchmarkConfig, load_benchmark
from humanprompt_ros.sim.tasks import BENCHMARK_VERSION, load_task, task_files


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
    return {
        k: {
            "success": round(float(np.mean(v)), 4),
            "episodes": len(v),
            **({"twin_only": round(float(np.mean(twin[k])), 4)} if k in twin else {}),
        }
        for k, v in sorted(per.items())
    }


def success_table(results: list[dict]) -> dict:
    embodiments = sorted({r["embodiment"] for r in results if r.get("success") is not None})
    return {emb: skill_rates([r for r in results if r["embodiment"] == emb]) for emb in embodiments}


def summarize(results: list[dict], bench: BenchmarkConfig) -> dict:
    """Per-episode results → {"skills": skill_rates, "mean": …, "seen_mean": …, "unseen_mean": …}."""
    skills = skill_rates(results)
    out = {
        "skills": skills,
        "mean": round(float(np.mean([v["success"] for v in skills.values()])), 4) if skills else 0.0,
    }
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
        cells += [f"{r[c]:.2f}" if c in r else "–" for c in cols[len(skills) :]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


TABLE_SETTINGS = ("benchmark", "embodiment", "prompt_seed", "prompt_task", "twin_scenes", "policy_args")
# a file without the setting was written before it existed: files from before version 2 are version 1
SETTING_DEFAULTS: dict[str, Any] = {"benchmark": 1}
SETTING_HINTS = {
    "policy_args": "; to compare one checkpoint under two settings, export a copy with the other setting "
    "under another name (humanprompt-train export --set policy.guidance=G) and evaluate "
    "both in one run",
    "benchmark": f"; re-run the older file's evaluation on the benchmark's version {BENCHMARK_VERSION} "
    '(docs/benchmark.md, "Versions")',
}


def read_eval_files(specs: list[str]) -> dict[str, dict[tuple[str, int], bool]]:
    """``humanprompt-sim eval --out`` files → {row: {(task, seed): success}} (see :func:`read_eval_episodes`)."""
    return {row: {key: bool(e["success"]) for key, e in got.items()} for row, got in read_eval_episodes(specs).items()}


def read_eval_episodes(specs: list[str]) -> dict[str, dict[tuple[str, int], dict]]:
    """``humanprompt-sim eval --out`` files → {row: {(task, seed): the episode's record}} (``success``, and
    ``final`` where the file has it). ``NAME=FILE`` names the row of a single-policy file (default: the
    file's stem). The same episode in two files, or files evaluated under different settings
    (embodiment, prompt seeds, prompt task, --policy-args), are refused."""
    rows: dict[str, dict[tuple[str, int], dict]] = {}
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
            raise ValueError(
                f"{path}: no per-episode outcomes (the file of humanprompt-sim eval --out FILE has them; "
                "its printed --json line does not)"
            )
        if isinstance(episodes, list):
            episodes = {name or Path(path).stem: episodes}
        elif name:
            raise ValueError(
                f"{spec}: NAME= names the row of a single-policy file; {path} has the rows {', '.join(episodes)}"
            )
        for key in TABLE_SETTINGS:
            value = data.get(key, SETTING_DEFAULTS.get(key))
            if value is None:
                continue
            seen_value, seen_in = settings.setdefault(key, (value, path))
            if value != seen_value:
                raise ValueError(
                    f"{path}: {key} {value!r}, but {seen_in} has {seen_value!r}: one table compares "
                    f"episodes evaluated the same way{SETTING_HINTS.get(key, '')}"
                )
        for row, outcomes in episodes.items():
            got = rows.setdefault(row, {})
            for e in outcomes:
                key = (str(e["task"]), int(e["seed"]))
                if key in got:
                    raise ValueError(
                        f"{path}: {row}'s {key[0]} seed {key[1]} is also in {source[(row, *key)]} "
                        "(overlapping seed ranges): give each episode once"
                    )
                got[key] = e
                source[(row, *key)] = path
    return rows


def read_eval_rows(
    files: list[str], benchmark: str | None = None, episodes: bool = False
) -> tuple[BenchmarkConfig, dict[str, str], dict[str, dict[tuple[str, int], Any]]]:
    """``table``/``compare``/``failures`` input: the benchmark splits, {task: skill} and the rows of ``files``
    (``read_eval_files``: outcomes; with ``episodes``, ``read_eval_episodes``: whole records); a task that
    config/tasks does not define is refused."""
    bench = load_benchmark(benchmark)
    skill_of = {t.name: t.skill for t in map(load_task, task_files(None))}
    rows = read_eval_episodes(files) if episodes else read_eval_files(files)
    unknown = sorted({task for got in rows.values() for task, _ in got} - set(skill_of))
    if unknown:
        raise ValueError(f"tasks not in config/tasks: {', '.join(unknown)}")
    return bench, skill_of, rows


def split_groups(bench: BenchmarkConfig, skills: list[str]) -> list[tuple[str, set[str]]]:
    """The seen, human-only and all groups of ``skills`` (those with any of them), as tables total them."""
    groups = [("seen", set(bench.robot_skills)), ("human-only", set(bench.human_only_skills)), ("all", set(skills))]
    return [(label, group) for label, group in groups if group & set(skills)]


def count_table(bench: BenchmarkConfig, results: dict[str, list[dict]]) -> list[str]:
    """{row: [{"skill", "success"}]} → markdown lines: successes/episodes per skill, then the seen,
    human-only and all groups with a 95% Wilson interval."""
    skills = sorted({r["skill"] for rs in results.values() for r in rs})
    groups = split_groups(bench, skills)
    lines = [
        "| policy | " + " | ".join(skills + [g for g, _ in groups]) + " |",
        "|---" * (1 + len(skills) + len(groups)) + "|",
    ]
    for row, rs in results.items():

        def count(keep: set[str], rs: list[dict] = rs) -> tuple[int, int]:
            picked = [r["success"] for r in rs if r["skill"] in keep]
            return sum(picked), len(picked)

        cells = ["{}/{}".format(*c) if c[1] else "–" for c in (count({s}) for s in skills)]
        for _, group in groups:
            k, n = count(group)
            lo, hi = wilson_interval(k, n)
            cells.append(f"{k}/{n} = {k / n:.2f} ({lo:.2f}–{hi:.2f})" if n else "–")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


def compare_rows(
    bench: BenchmarkConfig,
    skill_of: dict[str, str],
    a: dict[tuple[str, int], bool],
    b: dict[tuple[str, int], bool],
    name_a: str = "a",
    name_b: str = "b",
) -> tuple[dict[str, dict], list[tuple[str, int]], int]:
    """Two rows' outcomes, paired by episode → ({skill or group: episodes, successes_a/_b, only_a/_b, exact
    McNemar p}, the shared episodes, how many episodes only one of them ran)."""
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError(f"{name_a} and {name_b} share no episode (task, seed): evaluate both on the same seeds")
    skills = sorted({skill_of[task] for task, _ in shared})
    result = {}
    for label, keep in [(s, {s}) for s in skills] + split_groups(bench, skills):
        eps = [e for e in shared if skill_of[e[0]] in keep]
        only_a = sum(a[e] and not b[e] for e in eps)
        only_b = sum(b[e] and not a[e] for e in eps)
        result[label] = {
            "episodes": len(eps),
            "successes_a": sum(a[e] for e in eps),
            "successes_b": sum(b[e] for e in eps),
            "only_a": only_a,
            "only_b": only_b,
            "p": round(mcnemar_exact(only_a, only_b), 4),
        }
    return result, shared, len(set(a) ^ set(b))


def write_eval_file(path: str | Path, settings: dict, result: dict, results: dict[str, list[dict]]) -> Path:
    """The eval file: ``settings``, the ``result`` summary and every episode's outcome per row (a single row's
    episodes as a plain list), which ``read_eval_files`` reads back."""
    episodes = {
        name: sorted(
            (
                {
                    "task": r["task"],
                    "seed": r["seed"],
                    "success": r["success"],
                    **({"twin_success": r["twin_success"]} if "twin_success" in r else {}),
                    **({"final": r["final"]} if r.get("final") else {}),
                }
                for r in rs
            ),
            key=lambda e: (e["task"], e["seed"]),
        )
        for name, rs in results.items()
    }
    full = dict(settings, **result, episodes=episodes if len(results) > 1 else next(iter(episodes.values())))
    Path(path).write_text(json.dumps(full, indent=1) + "\n")
    return Path(path)
