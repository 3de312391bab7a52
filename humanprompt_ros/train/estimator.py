"""Training the state estimator (:mod:`humanprompt_ros.models.state_estimator`) on simulated episodes.

Every frame of every successful episode with a ``state.npy`` is a labelled example: the state says where each
object and the goal are, and the benchmark camera (:func:`humanprompt_ros.sim.scene.project`) says where that
is in the image.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from humanprompt_ros.models.state_estimator import (
    OBJECT_SIZE,
    StateEstimator,
    StateEstimatorConfig,
    estimator_loss,
    shift_batch,
    targets,
)
from humanprompt_ros.progress import progress
from humanprompt_ros.sim.scene import TABLE_HALF_EXTENT, SimConfig
from humanprompt_ros.train.common import set_cosine_lr
from humanprompt_ros.train.stage2_data import PolicyEpisode, load_policy_episodes


@dataclasses.dataclass
class EstimatorTraining:
    steps: int = 4000
    batch: int = 32
    lr: float = 1e-3
    seed: int = 0


def train_estimator(
    episodes: list[PolicyEpisode], cam: SimConfig, cfg: StateEstimatorConfig, run: EstimatorTraining, show: bool = True
) -> StateEstimator:
    """Train on every frame of ``episodes`` (frames at ``cfg.image_size``, with state)."""
    torch.manual_seed(run.seed)
    rng = np.random.default_rng(run.seed)
    cfg = dataclasses.replace(cfg, skills=sorted({e.skill for e in episodes}))
    model = StateEstimator(cfg)
    labels = [targets(e.state, cam, cfg.image_size, cfg.objects) for e in episodes]
    skills = [cfg.skills.index(e.skill) for e in episodes]
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, weight_decay=1e-4)
    bar = progress(range(run.steps), desc="state estimator", enabled=show)
    for step in bar:
        idx = rng.integers(len(episodes), size=run.batch)
        ts = [int(rng.integers(len(episodes[i].state))) for i in idx]
        frames = torch.from_numpy(np.stack([episodes[i].frames[t] for i, t in zip(idx, ts)]))
        if cfg.first_frame:
            first = torch.from_numpy(np.stack([episodes[i].frames[0] for i in idx]))
            frames = torch.cat([frames, first], dim=-1)
        uv = torch.from_numpy(np.stack([labels[i][0][t] for i, t in zip(idx, ts)]))
        attrs = torch.from_numpy(np.stack([labels[i][1][t] for i, t in zip(idx, ts)]))
        if cfg.shift:
            frames, uv = shift_batch(frames, uv, cfg.shift)
        set_cosine_lr(opt, run.lr, step, run.steps)
        losses = estimator_loss(model(frames, torch.tensor([skills[i] for i in idx])), uv, attrs, cfg.objects)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        if step % 20 == 0 and show:
            bar.set_postfix(px=f"{losses['px']:.2f}", attrs=f"{losses['attrs']:.3f}")
    return model.eval()


def twin_views(episodes: list[PolicyEpisode], tolerance: float = 1e-3) -> list[PolicyEpisode]:
    """Each episode's frames read under its twin task's skill, where ``episodes`` hold the twin's episode of the
    same scene (a shared twin scene: the same seed, any embodiment): the twin's target and goal at their places
    in these frames, every object where it is now.

    Why: a human-only skill has human frames only, and an estimator trained on them alone mislocates that skill's
    goal under the robot hand (pick_place's by 13 cm). Its twin's robot frames show the same scene under the robot
    hand, so read as the human-only skill they teach the estimator that skill's slots under the robot hand without
    any robot demonstration of it. Objects are matched by their position in the first frame (identical in a twin
    pair); a pair whose objects do not all match within ``tolerance`` metres is left out.
    """
    from humanprompt_ros.sim.tasks import twin_tasks

    twins = twin_tasks()
    first: dict[tuple[str, int], np.ndarray] = {}  # (task, seed) → its first state (the first such episode's)
    skills: dict[str, str] = {}
    for e in episodes:
        skills.setdefault(e.task, e.skill)
        if e.state is not None:
            first.setdefault((e.task, e.seed), e.state[0])
    out: list[PolicyEpisode] = []
    for ep in episodes:
        twin = twins.get(ep.task)
        source = first.get((twin, ep.seed))
        if ep.state is None or source is None:
            continue
        state = _as_twin(ep.state, source, tolerance)
        if state is not None:
            out.append(dataclasses.replace(ep, task=twin, skill=skills[twin], state=state))
    return out


def _as_twin(state: np.ndarray, twin_first: np.ndarray, tolerance: float) -> np.ndarray | None:
    """States (T, D) of an episode → the same moments in its twin task's layout, given the twin's first state."""
    n = (state.shape[1] - 3) // OBJECT_SIZE
    mine = state[:, : n * OBJECT_SIZE].reshape(len(state), n, OBJECT_SIZE)
    theirs = twin_first[: n * OBJECT_SIZE].reshape(n, OBJECT_SIZE)
    present = OBJECT_SIZE - 1  # the last value of an object's row
    out = np.zeros_like(state)
    for k in range(n):
        if not theirs[k, present]:
            continue
        d = np.linalg.norm(mine[0, :, :2] - theirs[k, :2], axis=1) + (mine[0, :, present] == 0) * 1e9
        j = int(d.argmin())
        if d[j] > tolerance:
            return None
        out[:, k * OBJECT_SIZE : (k + 1) * OBJECT_SIZE] = mine[:, j]
    out[:, -3:] = twin_first[-3:]
    return out


def estimator_episodes(
    data: list[str], size: int, per_task: int | None = None, twins: bool = False, rollouts: list[str] | None = None
) -> tuple[list[PolicyEpisode], int]:
    """The state estimator's training episodes: the successful ones with a state under ``data`` (the first
    ``per_task`` of each task and embodiment), with ``twins`` also read under their twin task's skill
    (:func:`twin_views`), plus ``rollouts`` whatever their outcome (a policy's own, saved by ``humanprompt-sim
    eval --save-dir``: the states a policy gets itself into). → (episodes, how many are twin views)."""
    episodes = load_policy_episodes(data, size, state=True, per_task=per_task)
    views = twin_views(episodes) if twins else []
    extra = load_policy_episodes(rollouts, size, state=True, success=None) if rollouts else []
    kept = [e for e in (on_table(e) for e in extra) if e is not None]
    return episodes + views + kept, len(views)


def on_table(ep: PolicyEpisode) -> PolicyEpisode | None:
    """``ep`` up to the last frame before an object left the table (a policy's rollout can knock one off, and it
    falls on forever: no image point or height to learn from); None when none is left."""
    objects = ep.state[:, : (ep.state.shape[1] - 3)].reshape(len(ep.state), -1, OBJECT_SIZE)
    present = objects[..., 6] > 0
    beyond = (np.abs(objects[..., :2]) > np.array(TABLE_HALF_EXTENT)).any(-1)
    off = present & ((objects[..., 2] < -0.02) | beyond)
    bad = np.flatnonzero(off.any(axis=1))
    n = int(bad[0]) if len(bad) else len(ep.state)
    if n < 2:
        return None
    if n == len(ep.state):
        return ep
    return dataclasses.replace(
        ep, frames=ep.frames[:n], state=ep.state[:n], proprio=ep.proprio[:n], actions=ep.actions[: n - 1]
    )
