"""Stage-2 training data: demonstrations with their actions and proprioception, as the policy sees them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from humanprompt_ros.config.loader import load_config
from humanprompt_ros.config.stage2 import Stage2Config
from humanprompt_ros.data import DatasetSpec
from humanprompt_ros.hand.hand import HandConfig, load_hand
from humanprompt_ros.paths import config_path
from humanprompt_ros.progress import progress
from humanprompt_ros.train.datasets import training_episodes


@dataclass
class PolicyEpisode:
    """A demonstration as stage 2 sees it."""

    frames: np.ndarray | None  # (T+1, S, S, 3) uint8 at the video model's size; None when not loaded
    actions: np.ndarray  # (T, 24)
    proprio: np.ndarray  # (T+1, 24)
    mask: np.ndarray  # (5,) fingers this demo has
    task: str
    skill: str
    embodiment: str
    seed: int = 0
    state: np.ndarray | None = None  # (T+1, D) the simulator's privileged scene state, when recorded
    root: str = ""  # the dataset root it came from: a seed names a scene only within one dataset


def hand_finger_mask(cfg: "Stage2Config", episodes: Sequence[PolicyEpisode]) -> np.ndarray:
    """(5,) the fingers of the robot hand ``cfg.hand``: from its robot demonstrations, else its YAML."""
    robot = {tuple(bool(x) for x in e.mask) for e in episodes if e.embodiment == "robot"}
    if len(robot) == 1:
        return np.array(robot.pop())
    return load_hand(config_path("hands", f"{cfg.hand}.yaml")).mask


def load_policy_episodes(
    root: DatasetSpec,
    image_size: int,
    show: bool = True,
    embodiment: str | None = None,
    per_task: int | None = None,
    frames: bool = True,
    state: bool = False,
    hand: str | None = None,
    same_rate: bool = True,
    success: bool | None = True,
) -> list[PolicyEpisode]:
    """Successful episodes (any outcome with ``success=None``: a state estimator's rollout frames) under ``root`` (one dataset, a glob or a list:
    :func:`~humanprompt_ros.data.dataset_roots`) with their actions and proprioception (only ``embodiment``'s,
    and the first ``per_task`` of each task and embodiment, when given), their frames unless ``frames`` is false
    (no video decoded), and with ``state`` their privileged scene state (required then). With ``same_rate`` all
    at one frame rate, with ``hand`` (the policy's robot hand, ``config/hands/<hand>.yaml``) robot episodes of
    that hand and human ones of its side, else ``ValueError``
    (:func:`~humanprompt_ros.train.datasets.training_episodes`). An episode without a skill (a recorded one) is
    its own task's skill."""
    side = load_config(HandConfig, config_path("hands", f"{hand}.yaml")).side if hand else None
    found = training_episodes(root, same_rate=same_rate, hand=hand, side=side, success=success, embodiment=embodiment)
    out: list[PolicyEpisode] = []
    count: dict[tuple[str, str], int] = {}
    for ep in progress(found, desc=f"load {root}", enabled=show):
        key = (ep.task, ep.embodiment)
        if per_task is not None and count.get(key, 0) >= per_task:
            continue
        actions, proprio = ep.actions, ep.proprio
        if actions is None or proprio is None:
            continue
        scene = ep.state if state else None
        if state and (scene is None or len(scene) != len(proprio)):
            raise ValueError(
                f"{ep.path}: no state.npy of {len(proprio)} steps; a state-conditioned policy trains on simulated "
                "episodes that record it: generate them again with `humanprompt-sim generate`"
            )
        count[key] = count.get(key, 0) + 1
        out.append(
            PolicyEpisode(
                ep.frames_at(image_size) if frames else None,
                actions.astype(np.float32),
                proprio.astype(np.float32),
                ep.mask,
                ep.task,
                ep.skill or ep.task,
                ep.embodiment,
                int(ep.seed or 0),
                None if scene is None else scene.astype(np.float32),
                str(ep.root),
            )
        )
    if not out:
        what = "successful episodes" if success else "episodes"
        raise ValueError(f"{root}: no {what} with actions and proprio found")
    return out


def chunk(actions: np.ndarray, t: int, horizon: int) -> np.ndarray:
    """actions[t : t+horizon], padded with the last action."""
    idx = np.minimum(np.arange(t, t + horizon), len(actions) - 1)
    return actions[idx]
