"""Stage 2's action head: a transformer diffusion policy over action chunks (SPEC §1).

    condition tokens (B, L, Dc)   Video Former tokens (prompt + current frame)
    proprio          (B, P)       the hand's current unified action (24 floats)
    actions          (B, H, A)    a chunk of H unified actions, normalised
    noisy actions + t ──▶ ActionDenoiser (self-attn over the chunk, cross-attn to [cond; proprio]) ──▶ ε

Normalisation statistics are buffers of :class:`Normalizer`, so they travel inside the checkpoint.
Inference is DDIM with few steps (``diffusers``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import CrossAttentionBlock, TimestepEmbedder


@dataclass
class PolicyModelConfig:
    horizon: int = 16  # H
    action_dim: int = 24  # A: the unified action
    proprio_dim: int = 24  # P
    width: int = 128
    depth: int = 4
    heads: int = 4
    train_timesteps: int = 100
    inference_steps: int = 8  # DDIM
    prediction_type: str = "epsilon"

    def validate(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width: {self.width} is not divisible by heads={self.heads}")
        if not 1 <= self.inference_steps <= self.train_timesteps:
            raise ValueError("inference_steps: must be within 1..train_timesteps")
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction_type: unknown {self.prediction_type!r}")


class Normalizer(nn.Module):
    """Per-dimension affine normalisation fitted on data; constant dimensions pass through."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, data: torch.Tensor) -> None:
        """data (..., dim)."""
        flat = data.reshape(-1, data.shape[-1]).float()
        self.mean.copy_(flat.mean(0))
        std = flat.std(0)
        self.std.copy_(torch.where(std > 1e-4, std, torch.ones_like(std)))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


class ActionDenoiser(nn.Module):
    """(noisy (B,H,A), t (B,), cond (B,L,Dc), proprio (B,P)) → prediction (B,H,A)."""

    def __init__(self, cfg: PolicyModelConfig, cond_dim: int):
        super().__init__()
        d = cfg.width
        self.inp = nn.Linear(cfg.action_dim, d)
        self.pos = nn.Parameter(torch.randn(1, cfg.horizon, d) * 0.02)
        self.t_embed = TimestepEmbedder(d)
        self.cond = nn.Linear(cond_dim, d)
        self.proprio = nn.Sequential(nn.Linear(cfg.proprio_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList([CrossAttentionBlock(d, cfg.heads) for _ in range(cfg.depth)])
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.action_dim))

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        context = torch.cat([self.cond(cond), self.proprio(proprio)[:, None], self.t_embed(t)[:, None]], dim=1)
        x = self.inp(noisy) + self.pos[:, :noisy.shape[1]] + self.t_embed(t)[:, None]
        for block in self.blocks:
            x = block(x, context)
        return self.out(x)


class DiffusionPolicyHead(nn.Module):
    """Denoiser + normalisers + schedulers: ``loss`` for training, ``sample`` for inference."""

    def __init__(self, cfg: PolicyModelConfig, cond_dim: int):
        super().__init__()
        cfg.validate()
        from diffusers import DDIMScheduler, DDPMScheduler

        self.cfg = cfg
        self.denoiser = ActionDenoiser(cfg, cond_dim)
        self.action_norm = Normalizer(cfg.action_dim)
        self.proprio_norm = Normalizer(cfg.proprio_dim)
        common = dict(num_train_timesteps=cfg.train_timesteps, beta_schedule="squaredcos_cap_v2",
                      prediction_type=cfg.prediction_type, clip_sample=True, clip_sample_range=5.0)
        self.train_scheduler = DDPMScheduler(**common)
        self.sample_scheduler = DDIMScheduler(**common)

    def loss(self, cond: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor,
             action_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Diffusion loss; ``action_mask`` (B, A) zeroes dimensions a demo does not have (masked fingers)."""
        x0 = self.action_norm.normalize(actions)
        if action_mask is not None:  # a missing finger is "at the mean", so its garbage cannot leak in
            x0 = torch.where(action_mask[:, None, :], x0, torch.zeros_like(x0))
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.cfg.train_timesteps, (x0.shape[0],), device=x0.device)
        noisy = self.train_scheduler.add_noise(x0, noise, t)
        pred = self.denoiser(noisy, t, cond, self.proprio_norm.normalize(proprio))
        goal = {"epsilon": noise, "sample": x0}.get(self.cfg.prediction_type)
        if goal is None:
            goal = self.train_scheduler.get_velocity(x0, noise, t)
        err = F.mse_loss(pred, goal, reduction="none")
        if action_mask is None:
            return err.mean()
        m = action_mask[:, None, :].expand_as(err).float()
        return (err * m).sum() / m.sum().clamp_min(1.0)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, proprio: torch.Tensor, generator: torch.Generator | None = None,
               steps: int | None = None) -> torch.Tensor:
        """DDIM → unnormalised action chunk (B, H, A)."""
        b = cond.shape[0]
        x = torch.randn((b, self.cfg.horizon, self.cfg.action_dim), generator=generator, device=cond.device)
        p = self.proprio_norm.normalize(proprio)
        sched = self.sample_scheduler
        sched.set_timesteps(steps or self.cfg.inference_steps)
        for t in sched.timesteps:
            tt = torch.full((b,), int(t), device=cond.device, dtype=torch.long)
            x = sched.step(self.denoiser(x, tt, cond, p), t, x).prev_sample
        return self.action_norm.unnormalize(x)
