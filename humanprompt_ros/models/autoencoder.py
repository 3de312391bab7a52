"""A small convolutional frame autoencoder: the latent space of the stage-1 video model.

Frames (B, 3, H, W) float in [-1, 1] ↔ latents (B, C, H/8, W/8) (three stride-2 stages).
``latent_scale`` (a buffer set from data after training) makes latents roughly unit-variance, as
diffusion expects.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, ch),
            nn.SiLU(),
            nn.Conv2d(ch, ch, 3, padding=1),
            nn.GroupNorm(8, ch),
            nn.SiLU(),
            nn.Conv2d(ch, ch, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FrameAutoencoder(nn.Module):
    """Conv encoder/decoder; ``channels`` per stage, ``latent_channels`` at 1/8 resolution."""

    downsample = 8

    def __init__(self, latent_channels: int = 4, channels: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        if len(channels) != 3:
            raise ValueError("the autoencoder has three stages: give three channel counts")
        c1, c2, c3 = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1),
            ResBlock(c1),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1),
            ResBlock(c2),
            nn.Conv2d(c2, c3, 4, stride=2, padding=1),
            ResBlock(c3),
            nn.Conv2d(c3, c3, 4, stride=2, padding=1),
            ResBlock(c3),
            nn.GroupNorm(8, c3),
            nn.SiLU(),
            nn.Conv2d(c3, latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, c3, 3, padding=1),
            ResBlock(c3),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c3, c2, 3, padding=1),
            ResBlock(c2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c2, c1, 3, padding=1),
            ResBlock(c1),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c1, c1, 3, padding=1),
            ResBlock(c1),
            nn.GroupNorm(8, c1),
            nn.SiLU(),
            nn.Conv2d(c1, 3, 3, padding=1),
        )
        self.register_buffer("latent_scale", torch.ones(()))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] → scaled latents (B, C, H/8, W/8)."""
        if frames.shape[-1] % self.downsample or frames.shape[-2] % self.downsample:
            raise ValueError(f"frame size {tuple(frames.shape[-2:])} must be divisible by {self.downsample}")
        return self.encoder(frames) / self.latent_scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, C, h, w) → frames (B, 3, 8h, 8w) in [-1, 1]."""
        return torch.tanh(self.decoder(latents * self.latent_scale))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Training objective on (B, 3, H, W) frames in [-1, 1]: reconstruction loss (L1 + MSE) with a
        small latent magnitude penalty. (forward() so DistributedDataParallel can wrap it.)"""
        z = self.encoder(frames)
        recon = torch.tanh(self.decoder(z))
        return F.l1_loss(recon, frames) + F.mse_loss(recon, frames) + 1e-4 * z.pow(2).mean()

    @torch.no_grad()
    def calibrate(self, frames: torch.Tensor) -> float:
        """Set ``latent_scale`` to the std of the raw latents of ``frames``; returns it."""
        std = float(self.encoder(frames).std().clamp_min(1e-3))
        self.latent_scale.fill_(std)
        return std


def to_model_frames(frames_uint8: torch.Tensor) -> torch.Tensor:
    """(..., H, W, 3) uint8 → (..., 3, H, W) float in [-1, 1]."""
    return frames_uint8.movedim(-1, -3).float().div(127.5).sub(1.0)


def to_uint8_frames(frames: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) float in [-1, 1] → (..., H, W, 3) uint8."""
    return frames.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).movedim(-3, -1)
