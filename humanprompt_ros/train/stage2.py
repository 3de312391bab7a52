"""Training stage 2: the prompt-conditioned diffusion policy with PDCP, on a frozen stage-1 model.

One code path trains every row of the results table (the ablations are config switches, see
:mod:`humanprompt_ros.config.stage2`). The run directory holds ``policy.safetensors``, ``last.*``
for resuming, ``metrics.jsonl`` and ``curves.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from humanprompt_ros.action import action_dim_mask
from humanprompt_ros.config.stage2 import Stage2Config
from humanprompt_ros.models.checkpoint import (
    CheckpointError,
    load_train_state,
    load_weights,
    save_train_state,
)
from humanprompt_ros.models.pdcp import paired_nt_xent
from humanprompt_ros.models.policy_model import PromptPolicyModel, load_policy_model, save_policy
from humanprompt_ros.models.state_encoder import encoder_input
from humanprompt_ros.models.video_model import build_video_model, load_stage1
from humanprompt_ros.progress import progress
from humanprompt_ros.train.batcher import Batcher
from humanprompt_ros.train.common import (
    EMA,
    Distributed,
    MetricsLog,
    StepBudget,
    cosine_lr,
    plot_metrics,
    seed_everything,
)
from humanprompt_ros.train.stage2_data import PolicyEpisode, hand_finger_mask


class _TrainStep(nn.Module):
    """forward() = the whole stage-2 loss, so DistributedDataParallel can wrap it."""

    def __init__(self, model: PromptPolicyModel):
        super().__init__()
        self.model = model

    def _condition(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        m = self.model
        if not m.cfg.sees_images:
            return m.condition(None, None, b["skill"], states=b["state"])
        tokens = None
        if "prompt" in b:
            with torch.set_grad_enabled(m.trains_video_model):
                tokens = m.video_model.encode_prompt(b["prompt"])
        return m.condition(tokens, b.get("latent"), b.get("skill"), features=b.get("features"), frames=b["frame"])

    def forward(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m = self.model
        cond = self._condition(b)
        out = {"diffusion": m.head.loss(cond, b["proprio"], b["actions"], b["mask"], m.global_condition(cond))}
        total = out["diffusion"]
        if m.state_probe is not None:
            out["state"] = m.state_loss(cond, b["state"])
            total = total + m.cfg.frame_encoder.state_weight * out["state"]
        if m.cfg.pdcp.enabled and m.cfg.condition == "prompt":
            terms = m.pdcp(m.pooled(cond), b["task"], b["skill"])
            out.update({k: v for k, v in terms.items() if k != "total"})
            total = total + terms["total"]
        if "twin_robot" in b:  # the paired term is about the current frame, so every condition gets it
            a, h = (self._condition(b[side]) for side in ("twin_robot", "twin_human"))
            parts = [
                paired_nt_xent(x, y, m.cfg.pdcp.align_temperature) for x, y in zip(m.frame_parts(a), m.frame_parts(h))
            ]
            out["align"] = torch.stack(parts).mean()
            total = total + m.cfg.pdcp.align_weight * out["align"]
        out["loss"] = total
        return out


def init_weights(model: PromptPolicyModel, path: str | Path) -> None:
    """Start ``model`` from the weights of policy checkpoint ``path`` (the ``init`` key): refuses one for another
    hand, other tasks or skills, or another architecture, naming what differs."""
    cfg = model.cfg
    loaded, _ = load_policy_model(path, cfg.hand)
    for key in ("tasks", "skills"):
        if getattr(loaded.cfg, key) != getattr(cfg, key):
            raise CheckpointError(
                f"init: {path} was trained on {key} {getattr(loaded.cfg, key)}, this data has "
                f"{getattr(cfg, key)}; start from a checkpoint of the same {key} or leave init empty"
            )
    load_weights(
        model,
        loaded.state_dict(),
        f"init: {path} does not match the model this config describes",
        "; use the architecture it was trained with (its embedded config) or leave init empty",
    )


def train_stage2(
    cfg: Stage2Config,
    episodes: Sequence[PolicyEpisode],
    resume: bool = True,
    prompt_episodes: Sequence[PolicyEpisode] = (),
) -> Path:
    """Train the policy (Video Former + diffusion head + PDCP parts); returns the checkpoint path.
    ``prompt_episodes``: extra demonstrations drawn only as prompts (their human ones of training tasks)."""
    dist = Distributed.from_env(cfg.train.device)
    tc = cfg.train
    seed_everything(tc.seed + dist.rank)
    cfg.tasks = sorted({e.task for e in episodes})
    cfg.skills = sorted({e.skill for e in episodes})
    if cfg.proprio == "hand":
        cfg.policy.proprio_mask = action_dim_mask(hand_finger_mask(cfg, episodes)).tolist()
    elif cfg.proprio == "wrist":
        cfg.policy.proprio_mask = action_dim_mask(np.zeros(5, bool)).tolist()
    if cfg.stage1_pretrained:
        video_model, s1cfg, _ = load_stage1(cfg.stage1)
    else:
        _, s1cfg, _ = load_stage1(cfg.stage1)  # same architecture, random weights
        torch.manual_seed(tc.seed)
        video_model = build_video_model(s1cfg.model)
    model = PromptPolicyModel(cfg, s1cfg, video_model).to(dist.device)
    out = Path(cfg.out)
    last = out / "last.safetensors"
    resuming = resume and last.exists()  # then every weight and normaliser comes from ``last`` below
    if cfg.init and not resuming:
        init_weights(model, cfg.init)  # the init checkpoint's normalisers come with its weights
    elif not resuming:
        # Normalisation statistics from the training actions (stored in the checkpoint with the weights).
        model.head.fit_normalizers(
            [torch.from_numpy(e.actions) for e in episodes], [torch.from_numpy(e.proprio) for e in episodes]
        )
        if model.state_probe is not None:
            model.state_probe.norm.fit(torch.from_numpy(np.concatenate([e.state for e in episodes])))
        if model.state_encoder is not None:
            se = cfg.state_encoder
            rows = [encoder_input(se, e.state, e.proprio, np.arange(len(e.state))) for e in episodes]
            model.state_encoder.norm.fit(torch.from_numpy(np.concatenate(rows)))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    log = MetricsLog(out / "metrics.jsonl", enabled=dist.is_main)
    step = 0
    if resuming:
        loaded, meta = load_policy_model(last, cfg.hand)
        model.load_state_dict(loaded.state_dict())
        step = int(meta["step"])
        load_train_state(out / "last.train.safetensors", opt, step=step)
        log.truncate_after(step)
        if dist.is_main:
            print(f"[stage2] resumed from {last} at step {step}")

    ema = EMA(model, tc.ema_decay, updates=step) if tc.ema_decay > 0 else None
    last_ema = out / "last.ema.safetensors"
    if ema is not None and resuming and last_ema.exists():
        ema.model.load_state_dict(load_policy_model(last_ema, cfg.hand)[0].state_dict())

    def checkpoint(step_: int) -> None:
        if dist.is_main:
            save_policy(last, model, step=step_)
            save_train_state(out / "last.train.safetensors", opt, step=step_)
            if ema is not None:
                save_policy(last_ema, ema.model, step=step_, ema_decay=tc.ema_decay)

    prompt_only = [e for e in prompt_episodes if e.embodiment == "human" and e.task in cfg.tasks]
    batcher = Batcher(model, episodes, tc.seed + 7919 * dist.rank + step, prompt_only)
    pairs = cfg.pdcp.align_pairs if cfg.sees_images and cfg.pdcp.enabled and cfg.pdcp.align_weight > 0 else 0
    if pairs and not batcher.twins and dist.is_main:
        print(
            "[stage2] pdcp.align_weight > 0 but no robot episode has a human twin (same task and seed): "
            "the paired term is off for this data"
        )
    net = dist.wrap(_TrainStep(model))
    model.train()
    budget = StepBudget(tc, step, dist.world_size)
    bar = progress(total=tc.steps, initial=step, desc=f"stage2 ({cfg.condition})", enabled=dist.is_main)
    while step < tc.steps:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, tc)
        losses = net(batcher.sample(tc.batch_size, dist.device, pairs))
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        opt.step()
        if ema is not None:
            ema.update(model)
        if step % tc.log_every == 0:
            log.write(
                step=step,
                grad_norm=float(gnorm),
                lr=cosine_lr(step, tc),
                **{f"{k}_loss" if not k.endswith("loss") else k: float(v.detach()) for k, v in losses.items()},
            )
            bar.set_postfix(loss=f"{float(losses['loss'].detach()):.4f}")
        if (step + 1) % tc.checkpoint_every == 0:
            checkpoint(step + 1)
        step += 1
        bar.update()
        budget.update(step, bar)
    bar.close()
    final = out / "policy.safetensors"
    if dist.is_main:
        checkpoint(tc.steps)
        if ema is not None:  # what the run ships: the averaged weights
            save_policy(final, ema.model, step=tc.steps, ema_decay=tc.ema_decay)
        else:
            save_policy(final, model, step=tc.steps)
        plot_metrics(out / "metrics.jsonl", out / "curves.png", title=f"stage 2 ({out})")
        print(f"[stage2] wrote {final}")
    dist.barrier()
    dist.close()
    return final
