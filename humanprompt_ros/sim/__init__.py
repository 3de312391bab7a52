"""HumanPrompt-Sim: a MuJoCo benchmark in which a human-like hand and the Allegro hand do the same
tasks. See docs/benchmark.md.

    from humanprompt_ros.sim import SimEnv, load_task, load_tasks, expert_episode

Names load on first use, so ``humanprompt_ros.sim.tasks`` (task files, twin scenes) imports without
MuJoCo, e.g. on a training machine that only has the dataset.
"""

import importlib
import os

# MuJoCo picks its GL backend when it is imported: on a headless machine, offscreen OSMesa (a
# package's submodules load after this file, so every entry point that simulates gets it).
if not os.environ.get("MUJOCO_GL") and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "osmesa"

_WHERE = {
    "EMBODIMENTS": "env",
    "Observation": "env",
    "SimEnv": "env",
    "home_action": "env",
    "EpisodeRecord": "runner",
    "expert_episode": "runner",
    "run_episode": "runner",
    "SimConfig": "scene",
    "load_sim_config": "scene",
    "SKILLS": "tasks",
    "Task": "tasks",
    "load_task": "tasks",
    "load_tasks": "tasks",
    "sample_instance": "tasks",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
