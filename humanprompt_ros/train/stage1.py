"""Training stage 1: the cross-prediction video model, from demonstration episodes.

Training pairs: a *prompt* episode of task k by embodiment s, and a *target* episode of the same
task k by embodiment t; the model denoises a clip of the target that starts at a random frame
(the "current" frame, I_t0) and runs ``clip_frames`` frames ahead at ``clip_stride`` steps apart, given
the whole prompt resampled to ``prompt_frames`` frames (:mod:`humanprompt_ros.video`). Which (s, t)
pairs are drawn is the config's ``pairs`` mix: human→robot, robot→human, same embodiment.

The run directory holds ``stage1.safetensors`` (weights + config + format version), ``last.*`` for
resuming, ``metrics.jsonl`` and ``curves.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from humanprompt_ros.config.stage1 import PairMix, Stage1Config
from humanprompt_ros.data import DatasetSpec
from humanprompt_ros.models.checkpoint import load_checkpoint, load_train_state, save_train_state, unprefixed
from humanprompt_ros.models.cross_prediction import CrossPredictionModel
from humanprompt_ros.models.video_model import KIND, build_video_model, save_stage1
from humanprompt_ros.progress import progress
from humanprompt_ros.train.common import (
    Distributed,
    MetricsLog,
    StepBudget,
    cosine_lr,
    plot_metrics,
    seed_everything,
)
from humanprompt_ros.train.datasets import training_episodes
from humanprompt_ros.video import resample_indices


@dataclass
class ClipEpisode:
    """One demonstration as stage 1 sees it: frames at the model size plus labels."""

    frames: np.ndarray  # (L, S, S, 3) uint8
    task: str
    skill: str
    embodiment: str  # "human" | "robot"
    seed: int = 0
    latents: torch.Tensor | None = None  # (L, C, h, w), filled by encode_episodes
    root: str = ""  # the dataset root it came from


def clip_indices(length: int, start: int, frames: int, stride: int) -> np.ndarray:
    """Target frame indices after ``start``: start+stride, start+2·stride, ... clamped to the end."""
    return np.minimum(start + stride * np.arange(1, frames + 1), length - 1)


class PairSampler:
    """Draws (prompt episode, target episode, start frame) triples for cross-prediction."""

    def __init__(self, episodes: Sequence[ClipEpisode], mix: PairMix, seed: int):
        self.episodes = list(episodes)
        self.rng = np.random.default_rng(seed)
        self.by_task: dict[tuple[str, str], list[int]] = {}
        for i, ep in enumerate(self.episodes):
            self.by_task.setdefault((ep.task, ep.embodiment), []).append(i)
        self.mix = mix
        if not self.episodes:
            raise ValueError("no episodes to train on")

    def _prompt_embodiment(self, task: str, target: str) -> str:
        other = "robot" if target == "human" else "human"
        cross = self.mix.human_to_robot if target == "robot" else self.mix.robot_to_human
        weights = {
            other: cross if (task, other) in self.by_task else 0.0,
            target: self.mix.same if len(self.by_task.get((task, target), [])) > 1 else 0.0,
        }
        total = sum(weights.values())
        if total == 0:
            return target if (task, target) in self.by_task else other
        return other if self.rng.random() < weights[other] / total else target

    def sample(self) -> tuple[int, int, int]:
        t_idx = int(self.rng.integers(len(self.episodes)))
        target = self.episodes[t_idx]
        emb = self._prompt_embodiment(target.task, target.embodiment)
        pool = [i for i in self.by_task.get((target.task, emb), []) if i != t_idx] or [t_idx]
        p_idx = int(pool[self.rng.integers(len(pool))])
        start = int(self.rng.integers(max(1, len(target.frames) - 1)))
        return p_idx, t_idx, start


def encode_episodes(
    model: CrossPredictionModel, episodes: Sequence[ClipEpisode], batch: int = 256, show: bool = True
) -> None:
    """Fill ``ep.latents`` with the (frozen) autoencoder's latents of every frame."""
    model.eval()
    for ep in progress(episodes, desc="encode frames", enabled=show):
        chunks = [
            model.encode_frames(torch.from_numpy(ep.frames[i : i + batch])) for i in range(0, len(ep.frames), batch)
        ]
        ep.latents = torch.cat(chunks).to(torch.float16)


def make_batch(
    episodes: Sequence[ClipEpisode], triples: list[tuple[int, int, int]], cfg: Stage1Config, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triples → (prompt latents (B,Tp,C,h,w), first latent (B,C,h,w), target latents (B,T,C,h,w))."""
    m = cfg.model
    prompts, firsts, targets = [], [], []
    for p, t, s in triples:
        pe, te = episodes[p], episodes[t]
        prompts.append(pe.latents[resample_indices(len(pe.latents), m.prompt_frames)])
        firsts.append(te.latents[s])
        targets.append(te.latents[clip_indices(len(te.latents), s, m.clip_frames, cfg.clip_stride)])
    as_t = lambda xs: torch.stack(xs).float().to(device)  # noqa: E731
    return as_t(prompts), as_t(firsts), as_t(targets)


class _LossModule(torch.nn.Module):
    """Wraps the model's loss in forward() so DistributedDataParallel can average its gradients."""

    def __init__(self, model: CrossPredictionModel):
        super().__init__()
        self.model = model

    def forward(self, prompt: torch.Tensor, first: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.model.loss(prompt, first, target)


def train_stage1(cfg: Stage1Config, episodes: Sequence[ClipEpisode], resume: bool = True) -> Path:
    """Train the autoencoder, then the cross-prediction denoiser; returns the final checkpoint path."""
    dist = Distributed.from_env(cfg.train.device)
    tc = cfg.train
    seed_everything(tc.seed + dist.rank)
    out = Path(cfg.out)
    log = MetricsLog(out / "metrics.jsonl", enabled=dist.is_main)
    model = build_video_model(cfg.model).to(dist.device)
    ae_opt = torch.optim.Adam(model.autoencoder.parameters(), lr=tc.ae_lr)
    params = [p for n, p in model.named_parameters() if not n.startswith("autoencoder.")]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    phase, step = ("ae" if model.trains_autoencoder else "denoiser"), 0

    last = out / "last.safetensors"
    if resume and last.exists():
        tensors, meta = load_checkpoint(last, kind=KIND)
        model.load_state_dict(unprefixed("model", tensors))
        phase, step = meta["phase"], int(meta["step"])
        load_train_state(out / "last.train.safetensors", ae_opt if phase == "ae" else opt, phase=phase, step=step)
        log.truncate_after(step if phase == "denoiser" else -1)
        if dist.is_main:
            print(f"[stage1] resumed from {last}: phase {phase}, step {step}")

    def checkpoint(phase_: str, step_: int, optimizer: torch.optim.Optimizer) -> None:
        if not dist.is_main:
            return
        save_stage1(last, model, cfg, phase=phase_, step=step_)
        save_train_state(out / "last.train.safetensors", optimizer, phase=phase_, step=step_)

    rng = np.random.default_rng(tc.seed + 1000 * dist.rank)
    all_frames = [(i, j) for i, ep in enumerate(episodes) for j in range(len(ep.frames))]

    # Phase 1: the frame autoencoder.
    if phase == "ae":
        ae = dist.wrap(model.autoencoder)
        bar = progress(
            range(step, tc.ae_steps), total=tc.ae_steps, initial=step, desc="stage1 autoencoder", enabled=dist.is_main
        )
        for step in bar:
            pick = rng.integers(len(all_frames), size=tc.ae_batch_size)
            frames = np.stack([episodes[all_frames[k][0]].frames[all_frames[k][1]] for k in pick])
            x = torch.from_numpy(frames).to(dist.device).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            loss = ae(x)
            ae_opt.zero_grad(set_to_none=True)
            loss.backward()
            ae_opt.step()
            if step % tc.log_every == 0:
                log.write(step=step, phase="ae", ae_loss=float(loss.detach()))
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        pick = rng.integers(len(all_frames), size=min(1024, len(all_frames)))
        calib = torch.from_numpy(np.stack([episodes[all_frames[k][0]].frames[all_frames[k][1]] for k in pick]))
        scale = model.autoencoder.calibrate(calib.to(dist.device).permute(0, 3, 1, 2).float().div(127.5).sub(1))
        log.write(step=0, phase="ae_done", latent_scale=scale)
        phase, step = "denoiser", 0
        checkpoint(phase, step, opt)

    # Phase 2: cross-prediction on cached latents.
    model.autoencoder.requires_grad_(False)
    encode_episodes(model, episodes, show=dist.is_main)
    model.train()
    net = dist.wrap(_LossModule(model))
    sampler = PairSampler(episodes, cfg.pairs, tc.seed + 7919 * dist.rank + step)
    budget = StepBudget(tc, step, dist.world_size)
    bar = progress(total=tc.steps, initial=step, desc="stage1 cross-prediction", enabled=dist.is_main)
    while step < tc.steps:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, tc)
        prompt, first, target = make_batch(episodes, [sampler.sample() for _ in range(tc.batch_size)], cfg, dist.device)
        loss = net(prompt, first, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        opt.step()
        if step % tc.log_every == 0:
            log.write(
                step=step, phase="denoiser", loss=float(loss.detach()), grad_norm=float(gnorm), lr=cosine_lr(step, tc)
            )
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if (step + 1) % tc.checkpoint_every == 0:
            checkpoint("denoiser", step + 1, opt)
        step += 1
        bar.update()
        budget.update(step, bar)
    bar.close()
    final = out / "stage1.safetensors"
    if dist.is_main:
        checkpoint("denoiser", tc.steps, opt)
        save_stage1(final, model, cfg, phase="done", step=tc.steps)
        plot_metrics(out / "metrics.jsonl", out / "curves.png", title=f"stage 1 ({out})")
        print(f"[stage1] wrote {final} and {out / 'curves.png'}")
    dist.barrier()
    dist.close()
    return final


def load_clip_episodes(
    root: DatasetSpec, image_size: int, success_only: bool = True, show: bool = True
) -> list[ClipEpisode]:
    """Every episode under ``root`` (one dataset, a glob or a list: :func:`~humanprompt_ros.data.dataset_roots`;
    the benchmark's dataset format), frames resized to the model size; all at one frame rate (the clip stride
    counts steps), else ``ValueError``. An episode without a skill (a recorded one) is its own task's skill."""
    episodes = []
    found = training_episodes(root, success=True if success_only else None)
    for ep in progress(found, desc=f"load {root}", enabled=show):
        episodes.append(
            ClipEpisode(
                ep.frames_at(image_size),
                ep.task,
                ep.skill or ep.task,
                ep.embodiment,
                int(ep.seed or 0),
                root=str(ep.root),
            )
        )
    if not episodes:
        raise ValueError(
            f"{root}: no {'successful ' if success_only else ''}episodes found "
            f"(generate some with: humanprompt-sim generate --out {root})"
        )
    return episodes
