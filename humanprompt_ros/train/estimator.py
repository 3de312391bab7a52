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
    StateEstimator,
    StateEstimatorConfig,
    estimator_loss,
    shift_batch,
    targets,
)
from humanprompt_ros.sim.scene import SimConfig
from humanprompt_ros.train.common import progress
from humanprompt_ros.train.stage2_data import PolicyEpisode


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
        for g in opt.param_groups:
            g["lr"] = run.lr * 0.5 * (1 + np.cos(np.pi * step / run.steps))
        losses = estimator_loss(model(frames, torch.tensor([skills[i] for i in idx])), uv, attrs, cfg.objects)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        if step % 20 == 0 and show:
            bar.set_postfix(px=f"{losses['px']:.2f}", attrs=f"{losses['attrs']:.3f}")
    return model.eval()
