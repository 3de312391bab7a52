"""The benchmark's splits (``config/benchmark.yaml``): which skills have robot data, which are human-only,
which scene seeds are for training and which are held out, and the task files of a split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from humanprompt_ros.config.loader import load_config
from humanprompt_ros.paths import config_path
from humanprompt_ros.sim.tasks import SKILLS, load_task, task_files


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
    return load_config(BenchmarkConfig, path or config_path("benchmark.yaml"))


SPLITS = ("seen", "unseen", "all")


def split_tasks(task_arg: str | None, split: str, benchmark: str | None = None) -> list[Path]:
    """The task files of ``--tasks`` whose skill is in ``split``: seen (robot skills), unseen (human-only)."""
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    bench = load_benchmark(benchmark)
    keep = {
        "seen": set(bench.robot_skills),
        "unseen": set(bench.human_only_skills),
        "all": set(bench.robot_skills) | set(bench.human_only_skills),
    }[split]
    files = [f for f in task_files(task_arg) if load_task(f).skill in keep]  # validates each task here
    if not files:
        raise ValueError(f"no task matches --tasks {task_arg or '(all)'} in split {split!r}")
    return files
