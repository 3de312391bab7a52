"""Training the prompt embedding (:mod:`humanprompt_ros.models.prompt_embedding`) on human demonstrations.

Each demonstration's clip goes through the frozen stage-1 prompt encoder once (cached); the head then trains on
batches of (tokens, clip, skill) with the PDCP terms, each task its own NT-Xent class and each skill a prototype.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from humanprompt_ros.config.stage1 import Stage1Config
from humanprompt_ros.data import Episode
from humanprompt_ros.models.cross_prediction import CrossPredictionModel
from humanprompt_ros.models.prompt_embedding import PromptEmbedding, PromptEmbeddingConfig
from humanprompt_ros.progress import progress
from humanprompt_ros.train.common import seed_everything, set_cosine_lr


@dataclass
class PromptEmbeddingTraining:
    steps: int = 2000
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0


@dataclass
class PromptSet:
    """Demonstrations as the embedding reads them: clips (N, Tp, S, S, 3) uint8, tokens (N, S', D), labels."""

    clips: np.ndarray
    tokens: torch.Tensor
    skills: list[str]
    tasks: list[str]


def prompt_set(model: PromptEmbedding, episodes: list[Episode], show: bool = True) -> PromptSet:
    """Clip and encode every episode once (the stage-1 encoder is frozen)."""
    clips, tokens = [], []
    for ep in progress(episodes, desc="encode prompts", enabled=show):
        clip = model.clip(ep)
        clips.append(clip)
        tokens.append(model.tokens(clip[None])[0])
    return PromptSet(np.stack(clips), torch.stack(tokens), [e.skill for e in episodes], [e.task for e in episodes])


def train_prompt_embedding(
    episodes: list[Episode],
    video_model: CrossPredictionModel,
    stage1_cfg: Stage1Config,
    cfg: PromptEmbeddingConfig,
    run: PromptEmbeddingTraining,
    show: bool = True,
) -> PromptEmbedding:
    """Train on ``episodes`` (human demonstrations with a skill, all at one frame rate)."""
    seed_everything(run.seed)
    rates = {e.meta.get("fps") for e in episodes}
    if len(rates) != 1:
        raise ValueError(f"prompt embedding: the demonstrations have several frame rates {sorted(map(str, rates))}")
    cfg = dataclasses.replace(cfg, skills=sorted({e.skill for e in episodes}), fps=float(rates.pop() or 0.0))
    model = PromptEmbedding(cfg, stage1_cfg, video_model)
    data = prompt_set(model, episodes, show)
    skills = torch.tensor([cfg.skills.index(s) for s in data.skills])
    task_names = sorted(set(data.tasks))
    tasks = torch.tensor([task_names.index(t) for t in data.tasks])
    params = [p for n, p in model.named_parameters() if not n.startswith("video_model.")]
    opt = torch.optim.AdamW(params, lr=run.lr, weight_decay=run.weight_decay)
    clips = torch.from_numpy(data.clips)
    model.train()
    bar = progress(range(run.steps), desc="prompt embedding", enabled=show)
    for step in bar:
        idx = torch.randint(len(skills), (min(run.batch, len(skills)),))
        set_cosine_lr(opt, run.lr, step, run.steps)
        losses = model.pdcp(model(data.tokens[idx], clips[idx]), tasks[idx], skills[idx])
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        if step % 50 == 0 and show:
            bar.set_postfix(loss=f"{losses['total'].item():.3f}", proto=f"{losses['proto_ce'].item():.3f}")
    return model.eval()


def recognition(model: PromptEmbedding, episodes: list[Episode], show: bool = True) -> dict[str, dict[str, int]]:
    """Per true skill, how many of ``episodes`` were recognised as each skill."""
    out: dict[str, Counter] = {}
    for ep in progress(episodes, desc="recognise prompts", enabled=show):
        skill, _ = model.recognize(model.clip(ep))
        out.setdefault(ep.skill, Counter())[skill] += 1
    return {k: dict(v) for k, v in sorted(out.items())}
