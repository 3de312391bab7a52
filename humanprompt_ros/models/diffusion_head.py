"""Stage 2's action head: a transformer diffusion policy over action chunks.

    condition tokens (B, L, Dc)   Video Former tokens (prompt + current frame)
    proprio          (B, P)       the hand's current unified action (24 floats)
    actions          (B, H, A)    a chunk of H unified actions, normalised
    global_cond      (B, Dc)      optional: one vector for the whole chunk (the pooled condition z)
    noisy actions + t ──▶ ActionDenoiser (self-attn over the chunk, cross-attn to [cond; proprio];
                          with ``global_cond``, adaLN-Zero of every block on t + z) ──▶ ε

Normalisation statistics are buffers of :class:`Normalizer`, so they travel inside the checkpoint.
Inference is DDIM with few steps (``diffusers``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from humanprompt_ros.models.layers import CrossAttentionBlock, TimestepEmbedder


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
    prediction_type: str = "v_prediction"
    # DDIM's inference timesteps: "trailing" starts at the last training step (pure noise, where the
    # sampler starts), "leading" (the diffusers default) at T − T/steps, where a model reads the sampler's
    # pure noise as if it still held ~20% signal. Use trailing with v_prediction or sample (epsilon
    # cannot recover x0 from pure noise).
    timestep_spacing: str = "trailing"
    # Which proprio dimensions the policy sees (P bools; empty = all). Training fills it from the hand:
    # dimensions the robot hand lacks (Allegro's little finger) are zeros for every robot state and real
    # values in human demos, so left in they would tell the policy which embodiment it is looking at.
    proprio_mask: list[bool] = field(default_factory=list)
    proprio_noise: float = 0.1  # std of Gaussian noise on the normalised proprio while training
    min_std: float = 0.01  # floor of the normalisers' std: below it a dimension is not scaled up
    # relative: the head predicts positions (wrist, fingertips) as offsets from the current proprio, so
    # "stay where you are" is its zero and the chunk is anchored to the hand's measured state
    relative: bool = False
    # actions of each chunk executed before the next is planned (inference; saved so a checkpoint runs as
    # it was evaluated). Below ``horizon`` overlapping plans are blended (temporal ensembling); at
    # ``horizon`` (or more: capped) each chunk runs whole, measured better closed loop here (experiments/2026-12-02-shared-scene-model.md)
    execute: int = 16
    # per skill, actions per chunk instead of ``execute`` (inference), e.g. {rotate: 8}: replan more often where
    # a long chunk carries the hand past a goal it can see (a lever turned past its window)
    execute_by_skill: dict[str, int] = field(default_factory=dict)
    # true: every denoiser block is adaLN-Zero modulated by t + a projection of a global condition vector
    # (the pooled condition z that PDCP shapes), as DiT does with its class label; false: the condition
    # is only cross-attended (a task signal is then one key among many; on shared twin scenes either
    # way moves the chunk with the condition open loop, experiments/2026-12-02-shared-scene-model.md)
    global_cond: bool = True
    # classifier-free guidance on the global vector: while training, each sample's vector is replaced by a
    # learned null with probability global_dropout; sampling then runs ε_null + guidance·(ε_z − ε_null),
    # so guidance > 1 pushes the chunk further toward what the condition asks (needs global_dropout > 0)
    global_dropout: float = 0.1
    guidance: float = 3.0

    def validate(self) -> None:
        if self.proprio_mask and len(self.proprio_mask) != self.proprio_dim:
            raise ValueError(
                f"proprio_mask: needs {self.proprio_dim} entries (one per proprio dimension), "
                f"got {len(self.proprio_mask)}"
            )
        if self.relative and (self.action_dim != 24 or self.proprio_dim != 24):
            raise ValueError("relative: needs the 24-D unified action and proprio (positions at 0:3 and 9:24)")
        if self.proprio_noise < 0 or self.min_std <= 0:
            raise ValueError("proprio_noise must be >= 0 and min_std > 0")
        if self.width % self.heads:
            raise ValueError(f"width: {self.width} is not divisible by heads={self.heads}")
        if not 0.0 <= self.global_dropout < 1.0:
            raise ValueError(f"global_dropout: must be in [0, 1), got {self.global_dropout}")
        if self.global_dropout > 0 and not self.global_cond:
            raise ValueError("global_dropout: needs global_cond: true (it drops the global condition vector)")
        if self.guidance != 1.0 and self.global_dropout <= 0:
            raise ValueError(
                f"guidance: {self.guidance} needs a head trained with global_dropout > 0 (it has no "
                "null condition to guide away from); use guidance: 1"
            )
        if self.execute < 1:
            raise ValueError(f"execute: must be >= 1 (at most horizon={self.horizon} are used), got {self.execute}")
        bad = {k: v for k, v in self.execute_by_skill.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"execute_by_skill: actions per chunk must be integers >= 1, got {bad}")
        if not 1 <= self.inference_steps <= self.train_timesteps:
            raise ValueError("inference_steps: must be within 1..train_timesteps")
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction_type: unknown {self.prediction_type!r}")
        if self.timestep_spacing not in ("leading", "trailing"):
            raise ValueError(f"timestep_spacing: must be 'leading' or 'trailing', got {self.timestep_spacing!r}")


class Normalizer(nn.Module):
    """Per-dimension affine normalisation fitted on data.

    A constant dimension (std <= 1e-4 in the data) is marked in ``constant``. By default it passes
    through unscaled (std 1: right for an input, where a small deviation at test time must not be
    blown up). With ``hold_constant`` (an output) it is held at its mean exactly: it normalises to 0
    and unnormalises to the mean whatever the model puts there, so sampling noise on the robot's
    constant wrist rotation is never emitted as rotation, and float round-off in it is not amplified.
    A checkpoint saved before ``constant`` existed loads with no dimension marked (its old behaviour).
    """

    def __init__(self, dim: int, min_std: float = 1e-4, hold_constant: bool = False):
        super().__init__()
        self.min_std, self.hold_constant = min_std, hold_constant
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("constant", torch.zeros(dim, dtype=torch.bool))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 (torch's signature)
        state_dict.setdefault(prefix + "constant", torch.zeros_like(self.constant))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def fit(self, data: torch.Tensor) -> None:
        """data (..., dim)."""
        flat = data.reshape(-1, data.shape[-1]).float()
        self.mean.copy_(flat.mean(0))
        std = flat.std(0)
        self.constant.copy_(std <= 1e-4)
        # Any non-constant dimension is divided by at least min_std, so a little jitter is not blown up
        # to unit size (the human wrist's 0.001 rotation noise against the robot's exact constant would
        # otherwise become a loud embodiment signal).
        self.std.copy_(torch.where(self.constant, torch.ones_like(std), std.clamp_min(self.min_std)))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        y = (x - self.mean) / self.std
        return y.masked_fill(self.constant, 0.0) if self.hold_constant else y

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.std + self.mean
        return torch.where(self.constant, self.mean, y) if self.hold_constant else y


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
        self.global_cond = nn.Sequential(nn.LayerNorm(cond_dim), nn.Linear(cond_dim, d)) if cfg.global_cond else None
        # the "no condition" vector of classifier-free guidance
        self.null_global = nn.Parameter(torch.zeros(cond_dim)) if cfg.global_dropout > 0 else None
        self.blocks = nn.ModuleList(
            [CrossAttentionBlock(d, cfg.heads, adaptive=cfg.global_cond) for _ in range(cfg.depth)]
        )
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.action_dim))

    def forward(
        self,
        noisy: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        proprio: torch.Tensor,
        global_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        temb = self.t_embed(t)
        context = torch.cat([self.cond(cond), self.proprio(proprio)[:, None], temb[:, None]], dim=1)
        x = self.inp(noisy) + self.pos[:, : noisy.shape[1]] + temb[:, None]
        c = None
        if self.global_cond is not None:
            if global_cond is None:
                raise ValueError("this head is conditioned on a global vector (policy.global_cond): pass global_cond")
            c = temb + self.global_cond(global_cond)
        for block in self.blocks:
            x = block(x, context, c)
        return self.out(x)


# Position dimensions of the unified action (wrist 0:3, fingertips 9:24); the 6-D wrist rotation stays absolute.
POSITION_DIMS = list(range(0, 3)) + list(range(9, 24))


class DiffusionPolicyHead(nn.Module):
    """Denoiser + normalisers + schedulers: ``loss`` for training, ``sample`` for inference."""

    def __init__(self, cfg: PolicyModelConfig, cond_dim: int):
        super().__init__()
        cfg.validate()
        from diffusers import DDIMScheduler, DDPMScheduler

        self.cfg = cfg
        self.denoiser = ActionDenoiser(cfg, cond_dim)
        self.action_norm = Normalizer(cfg.action_dim, cfg.min_std, hold_constant=True)
        self.proprio_norm = Normalizer(cfg.proprio_dim, cfg.min_std)
        keep = torch.tensor(cfg.proprio_mask, dtype=torch.float32) if cfg.proprio_mask else None
        self.register_buffer("proprio_keep", keep, persistent=False)  # from the config, not the weights
        common = dict(
            num_train_timesteps=cfg.train_timesteps,
            beta_schedule="squaredcos_cap_v2",
            prediction_type=cfg.prediction_type,
            clip_sample=True,
            clip_sample_range=5.0,
        )
        self.train_scheduler = DDPMScheduler(**common)
        self.sample_scheduler = DDIMScheduler(**common, timestep_spacing=cfg.timestep_spacing)

    def _offset(self, proprio: torch.Tensor) -> torch.Tensor:
        """(B, P) proprio → (B, 1, A) what ``relative`` subtracts from an action chunk (zeros otherwise)."""
        off = torch.zeros(proprio.shape[0], 1, self.cfg.action_dim, device=proprio.device, dtype=proprio.dtype)
        if self.cfg.relative:
            off[:, 0, POSITION_DIMS] = proprio[:, POSITION_DIMS]
        return off

    @torch.no_grad()
    def fit_normalizers(self, actions: list[torch.Tensor], proprio: list[torch.Tensor]) -> None:
        """Fit both normalisers on demonstrations: per episode actions (T, A) and proprio (T+1, P). With
        ``relative``, the action statistics are those of the chunks the head predicts (offsets from the
        proprio at each chunk's start, H steps ahead)."""
        self.proprio_norm.fit(torch.cat(proprio))
        if not self.cfg.relative:
            self.action_norm.fit(torch.cat(actions))
            return
        h, rows = self.cfg.horizon, []
        for a, p in zip(actions, proprio):
            idx = torch.clamp(torch.arange(len(a))[:, None] + torch.arange(h)[None], max=len(a) - 1)
            rows.append(a[idx] - self._offset(p[: len(a)]))
        self.action_norm.fit(torch.cat(rows))

    def proprio_input(self, proprio: torch.Tensor, train: bool = False) -> torch.Tensor:
        """(B, P) measured proprio → the denoiser's input: normalised, masked dimensions zero, plus
        ``proprio_noise`` while training."""
        p = self.proprio_norm.normalize(proprio)
        if train and self.cfg.proprio_noise > 0:
            p = p + self.cfg.proprio_noise * torch.randn_like(p)
        return p if self.proprio_keep is None else p * self.proprio_keep

    def loss(
        self,
        cond: torch.Tensor,
        proprio: torch.Tensor,
        actions: torch.Tensor,
        action_mask: torch.Tensor | None = None,
        global_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Diffusion loss; ``action_mask`` (B, A) zeroes dimensions a demo does not have (masked fingers);
        ``global_cond`` (B, Dc): the head's global condition vector (``policy.global_cond`` only)."""
        x0 = self.action_norm.normalize(actions - self._offset(proprio))
        if action_mask is not None:  # a missing finger is "at the mean", so its garbage cannot leak in
            x0 = torch.where(action_mask[:, None, :], x0, torch.zeros_like(x0))
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.cfg.train_timesteps, (x0.shape[0],), device=x0.device)
        noisy = self.train_scheduler.add_noise(x0, noise, t)
        if global_cond is not None and self.cfg.global_dropout > 0:
            drop = torch.rand(global_cond.shape[0], 1, device=global_cond.device) < self.cfg.global_dropout
            global_cond = torch.where(drop, self.denoiser.null_global.expand_as(global_cond), global_cond)
        pred = self.denoiser(noisy, t, cond, self.proprio_input(proprio, train=True), global_cond)
        goal = {"epsilon": noise, "sample": x0}.get(self.cfg.prediction_type)
        if goal is None:
            goal = self.train_scheduler.get_velocity(x0, noise, t)
        err = F.mse_loss(pred, goal, reduction="none")
        if action_mask is None:
            return err.mean()
        m = action_mask[:, None, :].expand_as(err).float()
        return (err * m).sum() / m.sum().clamp_min(1.0)

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        proprio: torch.Tensor,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        global_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """DDIM → unnormalised action chunk (B, H, A); with ``guidance`` ≠ 1, classifier-free guided on
        ``global_cond`` (two denoiser passes per step, batched)."""
        b = cond.shape[0]
        x = torch.randn((b, self.cfg.horizon, self.cfg.action_dim), generator=generator, device=cond.device)
        p = self.proprio_input(proprio)
        sched = self.sample_scheduler
        sched.set_timesteps(steps or self.cfg.inference_steps)
        w = self.cfg.guidance
        guided = w != 1.0 and global_cond is not None
        if guided:
            null = self.denoiser.null_global.expand_as(global_cond)
            cond2, p2, g2 = torch.cat([cond, cond]), torch.cat([p, p]), torch.cat([global_cond, null])
        for t in sched.timesteps:
            tt = torch.full((b,), int(t), device=cond.device, dtype=torch.long)
            if guided:
                with_z, without = self.denoiser(torch.cat([x, x]), torch.cat([tt, tt]), cond2, p2, g2).chunk(2)
                pred = without + w * (with_z - without)
            else:
                pred = self.denoiser(x, tt, cond, p, global_cond)
            x = sched.step(pred, t, x).prev_sample
        return self.action_norm.unnormalize(x) + self._offset(proprio)
