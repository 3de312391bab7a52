"""A tiny synthetic cross-embodiment video set for fast training tests (no simulator needed).

Task k moves an object in direction k. The "human" is a red disc on a light background, the "robot"
a blue square on a dark one: the same tasks, visibly different embodiments.
"""

from __future__ import annotations

import numpy as np

from humanprompt_ros.train.stage1 import ClipEpisode

DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}


def make_episode(task: str, embodiment: str, seed: int, size: int = 32, length: int = 24) -> ClipEpisode:
    rng = np.random.default_rng(seed)
    dx, dy = DIRECTIONS[task]
    bg = 220 if embodiment == "human" else 40
    color = np.array([230, 40, 40] if embodiment == "human" else [40, 80, 230], np.uint8)
    x0, y0 = rng.uniform(0.35, 0.65, size=2) * size
    speed = size * 0.35 / length
    yy, xx = np.mgrid[:size, :size]
    frames = np.full((length, size, size, 3), bg, np.uint8)
    r = size * 0.12
    for t in range(length):
        cx, cy = x0 + dx * speed * t, y0 + dy * speed * t
        if embodiment == "human":
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
        else:
            inside = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
        frames[t][inside] = color
    return ClipEpisode(frames, task, f"move_{task}", embodiment, seed)


def make_dataset(seeds: range, size: int = 32, length: int = 24) -> list[ClipEpisode]:
    return [
        make_episode(task, emb, 1000 * i + s, size, length)
        for i, task in enumerate(DIRECTIONS)
        for emb in ("human", "robot")
        for s in seeds
    ]


def make_policy_dataset(seeds: range, size: int = 32, length: int = 24):
    """The same clips as policy episodes: the unified action moves the wrist like the object moves."""
    from humanprompt_ros.train.stage2_data import PolicyEpisode

    out = []
    for ep in make_dataset(seeds, size, length):
        dx, dy = DIRECTIONS[ep.task]
        t = np.arange(length, dtype=np.float32)[:, None]
        proprio = np.zeros((length, 24), np.float32)
        proprio[:, 0:2] = 0.01 * t * np.array([dx, dy], np.float32)
        proprio[:, 3], proprio[:, 7] = 1.0, 1.0  # identity rotation (6D)
        proprio[:, 9:24] = 0.05 if ep.embodiment == "human" else 0.08  # fingertips: differ by embodiment
        mask = np.array([True] * 5) if ep.embodiment == "human" else np.array([True] * 4 + [False])
        if not mask[4]:
            proprio[:, 21:24] = 0.0
        out.append(PolicyEpisode(ep.frames, proprio[1:], proprio, mask, ep.task, ep.skill, ep.embodiment, ep.seed))
    return out
