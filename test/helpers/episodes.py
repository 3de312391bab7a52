"""Small episodes and prompts on disk, in the project's episode format."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from humanprompt_ros.data import write_episode

FRAME = np.full((16, 16, 3), 90, np.uint8)


def make_episode(d: Path, steps: int = 6, actions: bool = True) -> Path:
    """A human press_button episode (seed 5) of ``steps`` actions whose wrist x goes 0, 0.001, 0.002, ...
    (identity rotation), every frame :data:`FRAME`; without ``actions.npy`` when ``actions`` is False."""
    acts = np.zeros((steps, 24), np.float32)
    acts[:, 0] = np.arange(steps) * 0.001
    acts[:, 3], acts[:, 7] = 1.0, 1.0  # identity rotation (6D: first two columns)
    write_episode(
        d,
        [FRAME] * (steps + 1),
        acts,
        {"task": "press_button", "skill": "press_button", "embodiment": "human", "seed": 5, "success": True},
    )
    if not actions:
        (d / "actions.npy").unlink()
    return d


def human_prompts(root: Path, tasks: list[str], seed: int) -> dict[tuple[str, int], str]:
    """A human expert demonstration of each of ``tasks`` in the scene of ``seed`` (what the replay policy
    needs to complete the task there), saved as ``root/<task>/<seed:07d>``; {(task, seed): its path}."""
    from humanprompt_ros.paths import config_path
    from humanprompt_ros.sim import expert_episode, load_task

    out = {}
    for task in tasks:
        d = Path(root) / task / f"{seed:07d}"
        if not (d / "meta.json").is_file():
            expert_episode(load_task(config_path("tasks", f"{task}.yaml")), "human", seed).save(d)
        out[(task, seed)] = str(d)
    return out


def expert_dataset(root: Path, tasks: tuple[str, ...], embodiment: str, seeds: range | tuple[int, ...]) -> Path:
    """Scripted-expert episodes (MuJoCo, with ``state.npy``) of each of ``tasks`` at each of ``seeds``, saved as a
    dataset ``root/<task>/<embodiment>/<seed:07d>``; → ``root``."""
    from humanprompt_ros.sim import expert_episode, load_task
    from humanprompt_ros.sim.tasks import resolve_task

    for name in tasks:
        task = load_task(resolve_task(name))
        for seed in seeds:
            expert_episode(task, embodiment, seed).save(Path(root) / name / embodiment / f"{seed:07d}")
    return Path(root)
