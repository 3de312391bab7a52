"""Videos of the simulator for people to watch (``humanprompt-sim render``)."""

from __future__ import annotations

import numpy as np

from humanprompt_ros.sim.env import SimEnv
from humanprompt_ros.sim.runner import expert_episode
from humanprompt_ros.sim.tasks import Task

HUMAN_COLOR, ROBOT_COLOR = (230, 170, 140), (40, 40, 45)


def label(frame: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """``frame`` (H, W, 3) with a bar of ``color`` along its top edge."""
    out = frame.copy()
    out[: max(3, frame.shape[0] // 60)] = color
    return out


def expert_side_by_side(task: Task, seed: int, size: int) -> tuple[list[np.ndarray], dict[str, bool]]:
    """The experts' episodes of ``task`` at ``seed``, the human hand's left of the robot's, each ``size``² (made
    even, as video codecs want) → (frames (size, 2·size + gap, 3) uint8, {embodiment: success})."""
    size += size % 2
    videos, success = {}, {}
    for emb in ("human", "robot"):
        env = SimEnv(task, emb, render=True, image_size=size)
        try:
            rec = expert_episode(task, emb, seed, env=env)
        finally:
            env.close()
        videos[emb], success[emb] = rec.frames, bool(rec.success)
    gap = np.full((size, max(2, size // 64), 3), 255, np.uint8)
    frames = []
    for t in range(max(len(v) for v in videos.values())):
        h = videos["human"][min(t, len(videos["human"]) - 1)]
        r = videos["robot"][min(t, len(videos["robot"]) - 1)]
        frames.append(np.concatenate([label(h, HUMAN_COLOR), gap, label(r, ROBOT_COLOR)], axis=1))
    if frames[0].shape[1] % 2:
        frames = [np.pad(f, ((0, 0), (0, 1), (0, 0)), constant_values=255) for f in frames]
    return frames, success
