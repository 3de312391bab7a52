"""Stage 1: the cross-prediction video model G and its representation for control.

G denoises a video V_t of task k by embodiment t given a prompt video V_s of the same task by
embodiment s and V_t's first frame. The default backbone, :class:`LatentVideoModel`, works in the
latent space of a :class:`~humanprompt_ros.models.autoencoder.FrameAutoencoder`:

* prompt frames (B, Tp, C, h, w) → :class:`PromptEncoder` → prompt tokens (B, Tp·P, D)
* noisy target latents (B, T, C, h, w) ⊕ first-frame latent → :class:`SpaceTimeDenoiser`
  (spatial attention within a frame, temporal attention across frames, cross-attention to the
  prompt tokens, adaLN timestep conditioning) → ε or v prediction (B, T, C, h, w)

The representation for control (:meth:`LatentVideoModel.features`) is one forward pass at a fixed
noise level from a fixed noise draw, given the prompt tokens and the *current* frame as the first
frame; it returns the output of block ``feature_layer``: (B, T, N, D) with N = (h/p)·(w/p) patches.

Noise schedules come from ``diffusers`` (DDPM for training, DDIM for sampling).

Kept as one module: the config, the noise schedules and the blocks of the default
backbone are one design and are read together; the SVD backbone and the factory live beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from humanprompt_ros.models.autoencoder import FrameAutoencoder, to_model_frames, to_uint8_frames
from humanprompt_ros.models.layers import MLP, Attention, TimestepEmbedder, modulate

BACKBONES = ("latent_transformer", "svd")


@dataclass
class SVDUNetConfig:
    """The ``svd`` backbone: diffusers' spatio-temporal UNet (Stable Video Diffusion's denoiser).

    With ``pretrained`` (a local diffusers SVD folder with ``unet/`` and ``vae/``; nothing is
    downloaded) the UNet and the VAE are loaded from it and the sizes below are ignored; otherwise a
    UNet of these sizes is built from scratch on top of the frame autoencoder.
    """

    pretrained: str = ""
    block_out_channels: tuple[int, ...] = (64, 128)
    heads: tuple[int, ...] = (2, 4)
    layers_per_block: int = 1
    feature_block: int = 1  # index into unet.up_blocks whose output is the representation (as in VPP)


@dataclass
class VideoModelConfig:
    """Shapes and sizes of the stage-1 video model (saved inside every checkpoint)."""

    backbone: str = "latent_transformer"  # or "svd"
    image_size: int = 64  # frames are resized to image_size × image_size
    latent_channels: int = 4
    ae_channels: tuple[int, int, int] = (16, 32, 64)
    clip_frames: int = 8  # T: frames of the predicted video
    prompt_frames: int = 8  # Tp: frames the prompt video is resampled to
    prompt_tokens_per_frame: int = 4  # P
    patch: int = 2
    width: int = 128  # D
    depth: int = 4
    heads: int = 4
    feature_layer: int = 2  # 1-based block whose output is the representation
    prediction_type: str = "v_prediction"  # or "epsilon"
    residual: bool = True  # diffuse the change from the first frame (static scene = 0), not the frames
    train_timesteps: int = 1000
    repr_timestep: int = 400  # noise level of the representation pass
    sample_steps: int = 25  # DDIM steps when sampling a video
    # Classifier-free guidance: in training, each sample's prompt tokens are replaced by a learned
    # "no prompt" token set with this probability (0: no null prompt, as in format-1 checkpoints) ...
    prompt_dropout: float = 0.1
    # ... and predictions are uncond + guidance_scale · (cond − uncond) (1: plain conditional).
    guidance_scale: float = 1.0
    svd: SVDUNetConfig = field(default_factory=SVDUNetConfig)

    def validate(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone: unknown {self.backbone!r} (valid: {', '.join(BACKBONES)})")
        if self.image_size % (8 * self.patch):
            raise ValueError(f"image_size: {self.image_size} must be divisible by 8·patch = {8 * self.patch}")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type: must be epsilon or v_prediction, got {self.prediction_type!r}")
        if not 1 <= self.feature_layer <= self.depth:
            raise ValueError(f"feature_layer: must be within 1..depth={self.depth}, got {self.feature_layer}")
        if not 0 <= self.repr_timestep < self.train_timesteps:
            raise ValueError(f"repr_timestep: must be within [0, {self.train_timesteps})")
        if self.width % self.heads:
            raise ValueError(f"width: {self.width} is not divisible by heads={self.heads}")
        if not 0.0 <= self.prompt_dropout < 1.0:
            raise ValueError(f"prompt_dropout: must be within [0, 1), got {self.prompt_dropout}")
        if self.guidance_scale != 1.0 and self.prompt_dropout == 0.0:
            raise ValueError("guidance_scale: classifier-free guidance needs a model trained with prompt_dropout > 0")

    @property
    def latent_size(self) -> int:
        return self.image_size // 8

    @property
    def tokens_per_frame(self) -> int:
        return (self.latent_size // self.patch) ** 2


def make_schedulers(cfg: VideoModelConfig):
    """(DDPM for training, DDIM for sampling) with one shared noise schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler

    common = dict(
        num_train_timesteps=cfg.train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type=cfg.prediction_type,
        clip_sample=False,
    )
    return DDPMScheduler(**common), DDIMScheduler(**common)


class Patchify(nn.Module):
    """(B, C, h, w) → (B, N, D) with N = (h/p)(w/p), plus learned spatial positions."""

    def __init__(self, in_ch: int, patch: int, dim: int, tokens: int):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2) + self.pos


class PromptEncoder(nn.Module):
    """Prompt latents (B, Tp, C, h, w) → prompt tokens (B, Tp·P, D).

    Each frame's patches are summarised by P learned queries (attention pooling); a temporal
    position embedding marks the frame. The frame autoencoder (the video model's own encoder) is
    shared and frozen; this module is what stage 2 keeps frozen as the prompt encoder.
    """

    def __init__(self, cfg: VideoModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        self.patchify = Patchify(cfg.latent_channels, cfg.patch, d, cfg.tokens_per_frame)
        self.norm = nn.LayerNorm(d)
        self.frame_attn = Attention(d, cfg.heads)
        self.queries = nn.Parameter(torch.randn(1, cfg.prompt_tokens_per_frame, d) * 0.02)
        self.pool = Attention(d, cfg.heads)
        self.time = nn.Parameter(torch.zeros(1, cfg.prompt_frames, 1, d))
        self.out = nn.Sequential(nn.LayerNorm(d), MLP(d, 2.0))
        # the learned "no prompt" tokens of classifier-free guidance (S = Tp·P of them)
        self.null = (
            nn.Parameter(torch.randn(1, cfg.prompt_frames * cfg.prompt_tokens_per_frame, d) * 0.02)
            if cfg.prompt_dropout > 0
            else None
        )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        b, tp = latents.shape[:2]
        x = self.patchify(latents.flatten(0, 1))  # (B·Tp, N, D)
        x = x + self.frame_attn(self.norm(x))
        q = self.pool(self.queries.expand(x.shape[0], -1, -1), context=x)  # (B·Tp, P, D)
        q = q.view(b, tp, -1, q.shape[-1]) + self.time[:, :tp]
        q = q.flatten(1, 2)
        return q + self.out(q)


class SpaceTimeBlock(nn.Module):
    """adaLN-Zero block: spatial self-attn, temporal self-attn, cross-attn to the prompt, MLP.

    x: (B, T, N, D); c: (B, D) timestep conditioning; prompt: (B, S, D).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norms = nn.ModuleList([nn.LayerNorm(dim, elementwise_affine=False) for _ in range(4)])
        self.spatial = Attention(dim, heads)
        self.temporal = Attention(dim, heads)
        self.cross = Attention(dim, heads)
        self.mlp = MLP(dim)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 12 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        b, t, n, d = x.shape
        mods = self.ada(c).chunk(12, dim=-1)
        (s1, k1, g1), (s2, k2, g2), (s3, k3, g3), (s4, k4, g4) = (mods[i : i + 3] for i in range(0, 12, 3))

        h = modulate(self.norms[0](x.reshape(b, t * n, d)), s1, k1).reshape(b * t, n, d)
        x = x + g1[:, None, None] * self.spatial(h).reshape(b, t, n, d)

        h = modulate(self.norms[1](x.reshape(b, t * n, d)), s2, k2).reshape(b, t, n, d)
        h = h.transpose(1, 2).reshape(b * n, t, d)
        x = x + g2[:, None, None] * self.temporal(h).reshape(b, n, t, d).transpose(1, 2)

        h = modulate(self.norms[2](x.reshape(b, t * n, d)), s3, k3)
        x = x + g3[:, None, None] * self.cross(h, context=prompt).reshape(b, t, n, d)

        h = modulate(self.norms[3](x.reshape(b, t * n, d)), s4, k4)
        return x + g4[:, None, None] * self.mlp(h).reshape(b, t, n, d)


class SpaceTimeDenoiser(nn.Module):
    """(noisy latents (B,T,C,h,w), first latent (B,C,h,w), t (B,), prompt (B,S,D)) → (B,T,C,h,w)."""

    def __init__(self, cfg: VideoModelConfig):
        super().__init__()
        self.cfg = cfg
        d, c, p = cfg.width, cfg.latent_channels, cfg.patch
        self.patchify = Patchify(2 * c, p, d, cfg.tokens_per_frame)
        self.time_pos = nn.Parameter(torch.zeros(1, cfg.clip_frames, 1, d))
        self.t_embed = TimestepEmbedder(d)
        self.blocks = nn.ModuleList([SpaceTimeBlock(d, cfg.heads) for _ in range(cfg.depth)])
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.final = nn.Linear(d, p * p * c)
        for m in (self.final_ada[1], self.final):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(
        self,
        noisy: torch.Tensor,
        first: torch.Tensor,
        t: torch.Tensor,
        prompt: torch.Tensor,
        stop_at: int | None = None,
    ) -> torch.Tensor:
        """Prediction (B, T, C, h, w); with ``stop_at=L``, the output of block L: (B, T, N, D)."""
        b, nt, c, h, w = noisy.shape
        x = torch.cat([noisy, first[:, None].expand(-1, nt, -1, -1, -1)], dim=2)
        x = self.patchify(x.flatten(0, 1)).view(b, nt, -1, self.cfg.width) + self.time_pos[:, :nt]
        cond = self.t_embed(t)
        for i, block in enumerate(self.blocks, start=1):
            x = block(x, cond, prompt)
            if stop_at == i:
                return x
        shift, scale = self.final_ada(cond).chunk(2, dim=-1)
        x = self.final(modulate(self.final_norm(x.flatten(1, 2)), shift, scale))  # (B, T·N, p·p·C)
        p, g = self.cfg.patch, h // self.cfg.patch
        x = x.view(b, nt, g, g, p, p, c).permute(0, 1, 6, 2, 4, 3, 5)
        return x.reshape(b, nt, c, h, w)


class CrossPredictionModel(nn.Module):
    """What every stage-1 backbone offers (the interface the trainer and the policy use).

    Subclasses provide ``autoencoder`` (encode/decode to scaled latents), ``prompt_encoder`` and
    :meth:`denoise`; this class turns them into the training loss, DDIM sampling and the
    single-pass representation for control.
    """

    name = "base"
    autoencoder: nn.Module
    prompt_encoder: nn.Module

    def __init__(self, cfg: VideoModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.train_scheduler, self.sample_scheduler = make_schedulers(cfg)
        g = torch.Generator().manual_seed(0)
        ls = cfg.latent_size
        # One fixed noise draw for the representation pass: the same frame gives the same features.
        self.register_buffer("repr_noise", torch.randn(1, cfg.clip_frames, cfg.latent_channels, ls, ls, generator=g))
        self.register_buffer("alphas_cumprod", self.train_scheduler.alphas_cumprod.float(), persistent=False)

    def denoise(
        self, noisy: torch.Tensor, first: torch.Tensor, t: torch.Tensor, prompt: torch.Tensor, features: bool = False
    ) -> torch.Tensor:
        """(B,T,C,h,w) noisy latents, (B,C,h,w) first latent, (B,) t, (B,S,D) prompt tokens →
        prediction (B,T,C,h,w), or with ``features=True`` the representation (B,T,N,D)."""
        raise NotImplementedError

    @property
    def trains_autoencoder(self) -> bool:
        """Whether stage-1 training must fit the frame autoencoder first."""
        return True

    # -- shapes ----------------------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        raise NotImplementedError

    @property
    def prompt_dim(self) -> int:
        """D of the prompt tokens (B, S, D) that :meth:`encode_prompt` returns."""
        return self.prompt_encoder.cfg.width

    @property
    def feature_tokens(self) -> tuple[int, int]:
        """(T, N) of :meth:`features`."""
        raise NotImplementedError

    # -- encoders --------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.repr_noise.device

    def encode_frames(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """(..., H, W, 3) uint8 at image_size → latents (..., C, h, w) on the model's device (frozen autoencoder)."""
        frames_uint8 = frames_uint8.to(self.device)
        lead = frames_uint8.shape[:-3]
        with torch.no_grad():
            z = self.autoencoder.encode(
                to_model_frames(frames_uint8.flatten(0, len(lead) - 1) if lead else frames_uint8[None])
            )
        return z.view(*lead, *z.shape[1:]) if lead else z[0]

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(..., C, h, w) → (..., H, W, 3) uint8 on the CPU."""
        lead = latents.shape[:-3]
        x = self.autoencoder.decode(latents.reshape(-1, *latents.shape[-3:]))
        return to_uint8_frames(x).view(*lead, *x.shape[-2:], 3).cpu()

    def encode_prompt(self, prompt_latents: torch.Tensor) -> torch.Tensor:
        """(B, Tp, C, h, w) → prompt tokens (B, Tp·P, D)."""
        return self.prompt_encoder(prompt_latents)

    # -- classifier-free guidance ----------------------------------------------------------------
    @property
    def has_null_prompt(self) -> bool:
        return getattr(self.prompt_encoder, "null", None) is not None

    def null_prompt(self, batch: int) -> torch.Tensor:
        """The learned "no prompt" tokens (B, S, D) (models trained with ``prompt_dropout > 0``)."""
        if not self.has_null_prompt:
            raise ValueError(
                "this stage-1 model was trained without prompt_dropout, so it has no null prompt "
                "for classifier-free guidance: use guidance 1"
            )
        return self.prompt_encoder.null.expand(batch, -1, -1)

    def drop_prompts(self, prompt: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training: each sample's prompt tokens (B, S, D) become the null prompt with probability ``prompt_dropout``."""
        if not self.has_null_prompt:
            return prompt
        drop = torch.rand(prompt.shape[0], generator=generator, device=prompt.device) < self.cfg.prompt_dropout
        return torch.where(drop[:, None, None], self.null_prompt(prompt.shape[0]).to(prompt.dtype), prompt)

    def guided_denoise(
        self,
        noisy: torch.Tensor,
        first: torch.Tensor,
        t: torch.Tensor,
        prompt: torch.Tensor,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """:meth:`denoise` with classifier-free guidance: uncond + guidance · (cond − uncond) (one batched pass;
        ``guidance`` None: ``cfg.guidance_scale``)."""
        guidance = self.cfg.guidance_scale if guidance is None else guidance
        if guidance == 1.0:
            return self.denoise(noisy, first, t, prompt)
        b = noisy.shape[0]
        out = self.denoise(
            torch.cat([noisy, noisy]),
            torch.cat([first, first]),
            torch.cat([t, t]),
            torch.cat([prompt, self.null_prompt(b).to(prompt.dtype)]),
        )
        cond, uncond = out[:b], out[b:]
        return uncond + guidance * (cond - uncond)

    # -- training --------------------------------------------------------------------------------
    def loss(
        self,
        prompt_latents: torch.Tensor,
        first_latent: torch.Tensor,
        target_latents: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Cross-prediction diffusion loss: denoise target (B,T,C,h,w) given prompt and first frame."""
        b = target_latents.shape[0]
        x0 = self._to_diffused(target_latents, first_latent)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        t = torch.randint(0, self.cfg.train_timesteps, (b,), generator=generator, device=x0.device)
        noisy = self.train_scheduler.add_noise(x0, noise, t)
        pred = self.denoise(noisy, first_latent, t, self.drop_prompts(self.encode_prompt(prompt_latents), generator))
        if self.cfg.prediction_type == "epsilon":
            goal = noise
        else:
            goal = self.train_scheduler.get_velocity(x0, noise, t)
        return F.mse_loss(pred, goal)

    def _to_diffused(self, latents: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """Frame latents (B,T,C,h,w) → what the diffusion models (their change from the first frame
        when ``residual``)."""
        return latents - first[:, None] if self.cfg.residual else latents

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_mean(
        self, prompt_latents: torch.Tensor, first_latent: torch.Tensor, guidance: float | None = None
    ) -> torch.Tensor:
        """One denoiser pass at the noisiest step: the model's estimate of the *expected* target
        latents (B, T, C, h, w) given the prompt and the first frame (blurry where the future is
        uncertain; deterministic: the fixed noise draw of the representation pass). ``guidance``:
        classifier-free guidance scale (default ``cfg.guidance_scale``)."""
        b = first_latent.shape[0]
        t_max = self.cfg.train_timesteps - 1
        t = torch.full((b,), t_max, device=first_latent.device, dtype=torch.long)
        a = self.alphas_cumprod[t_max]
        noise = self.repr_noise.expand(b, -1, -1, -1, -1)
        out = self.guided_denoise(noise, first_latent, t, self.encode_prompt(prompt_latents), guidance)
        x0 = (
            (noise - (1 - a).sqrt() * out) / a.sqrt().clamp_min(1e-4)
            if self.cfg.prediction_type == "epsilon"
            else a.sqrt() * noise - (1 - a).sqrt() * out
        )
        return x0 + first_latent[:, None] if self.cfg.residual else x0

    @torch.no_grad()
    def sample(
        self,
        prompt_latents: torch.Tensor,
        first_latent: torch.Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        guidance: float | None = None,
    ) -> torch.Tensor:
        """DDIM-sample target latents (B, T, C, h, w) given prompt latents and the first latent
        (``guidance``: classifier-free guidance scale, default ``cfg.guidance_scale``)."""
        prompt = self.encode_prompt(prompt_latents)
        b = first_latent.shape[0]
        ls = self.cfg.latent_size
        x = torch.randn(
            (b, self.cfg.clip_frames, self.cfg.latent_channels, ls, ls),
            generator=generator,
            device=generator.device if generator is not None else first_latent.device,
        ).to(first_latent.device)
        sched = self.sample_scheduler
        sched.set_timesteps(steps or self.cfg.sample_steps)
        for t in sched.timesteps:
            tt = torch.full((b,), int(t), device=x.device, dtype=torch.long)
            pred = self.guided_denoise(x, first_latent, tt, prompt, guidance)
            x = sched.step(pred, t, x).prev_sample
        return x + first_latent[:, None] if self.cfg.residual else x

    # -- representation for control --------------------------------------------------------------
    def features(self, prompt_tokens: torch.Tensor, frame_latent: torch.Tensor) -> torch.Tensor:
        """One denoiser pass at ``repr_timestep``: (B, S, D) prompt tokens, (B, C, h, w) current
        frame latent → the backbone's intermediate features (B, T, N, D)."""
        b = frame_latent.shape[0]
        t = torch.full((b,), self.cfg.repr_timestep, device=frame_latent.device, dtype=torch.long)
        a = self.alphas_cumprod[self.cfg.repr_timestep]
        static = frame_latent[:, None].expand(-1, self.cfg.clip_frames, -1, -1, -1)  # "nothing moves"
        noisy = a.sqrt() * self._to_diffused(static, frame_latent) + (1 - a).sqrt() * self.repr_noise.expand(
            b, -1, -1, -1, -1
        )
        return self.denoise(noisy, frame_latent, t, prompt_tokens, features=True)


class LatentVideoModel(CrossPredictionModel):
    """The default backbone: frame autoencoder + prompt encoder + space-time transformer denoiser."""

    name = "latent_transformer"

    def __init__(self, cfg: VideoModelConfig):
        super().__init__(cfg)
        self.autoencoder = FrameAutoencoder(cfg.latent_channels, cfg.ae_channels)
        self.prompt_encoder = PromptEncoder(cfg)
        self.denoiser = SpaceTimeDenoiser(cfg)

    def denoise(self, noisy, first, t, prompt, features=False):
        return self.denoiser(noisy, first, t, prompt, stop_at=self.cfg.feature_layer if features else None)

    @property
    def feature_dim(self) -> int:
        return self.cfg.width

    @property
    def feature_tokens(self) -> tuple[int, int]:
        return self.cfg.clip_frames, self.cfg.tokens_per_frame
