"""The policy's own current-frame encoder: a small CNN with a spatial soft-argmax, trained with the policy.

    frame (B, S, S, 3) uint8 ──▶ conv stack ──▶ K heat maps ──▶ soft-argmax ──▶ K image points (B, K, 2)
                                                             ──▶ tokens (B, K, D) for the diffusion head

Why it exists: the frozen stage-1 representation tells the policy *what* to do (it reads the prompt), but
a linear probe on held-out scenes (experiments/2026-11-27-first-models.md) showed it barely tells *where*
the objects are in a scene it has not seen. Image points from a soft-argmax are the classic remedy in
visuomotor learning (Levine et al. 2016; Diffusion Policy's image encoder): each map learns to fire on
one thing (an object, the goal disc, a fingertip) and the policy gets its coordinates. Random shifts of
the frame while training (DrQ) keep the points from memorising pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from humanprompt_ros.models.diffusion_head import Normalizer


@dataclass
class FrameEncoderConfig:
    enabled: bool = True
    channels: list[int] = field(default_factory=lambda: [32, 32, 64])  # conv widths, first two downsample
    keypoints: int = 32  # K soft-argmax points
    shift: int = 4  # random shift (pixels, replicate padding) while training; 0 disables it
    image_size: int = 0  # the square frame it sees (pixels); 0: the stage-1 video model's size
    # > 0: an auxiliary loss of this weight while training: a small probe reads the scene state (objects,
    # goal: the episodes' state.npy) from the image points, so the points learn to find the objects
    state_weight: float = 0.0

    def validate(self) -> None:
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ValueError(f"channels: positive conv widths, got {self.channels}")
        if self.keypoints <= 0 or self.shift < 0:
            raise ValueError("keypoints must be > 0 and shift >= 0")
        if self.image_size < 0 or self.state_weight < 0:
            raise ValueError("image_size (0: the video model's) and state_weight must be >= 0")


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """(B, C, S, S) → the same images shifted by up to ``pad`` pixels each way (edges replicated)."""
    b, _, s, _ = x.shape
    x = F.pad(x, (pad,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * pad + 1, (2, b), device=x.device)
    rows = torch.arange(s, device=x.device)[None] + dy[:, None]  # (B, S)
    cols = torch.arange(s, device=x.device)[None] + dx[:, None]
    x = x.gather(2, rows[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3]))
    return x.gather(3, cols[:, None, None, :].expand(-1, x.shape[1], s, -1))


class SpatialSoftArgmax(nn.Module):
    """(B, K, h, w) maps → (B, K, 2) expected (x, y) in [-1, 1] under each map's softmax."""

    def __init__(self):
        super().__init__()
        self.log_temperature = nn.Parameter(torch.zeros(1))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        b, k, h, w = maps.shape
        p = torch.softmax(maps.reshape(b, k, h * w) / self.log_temperature.exp(), dim=-1).reshape(b, k, h, w)
        xs = torch.linspace(-1, 1, w, device=maps.device, dtype=maps.dtype)
        ys = torch.linspace(-1, 1, h, device=maps.device, dtype=maps.dtype)
        return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], dim=-1)


class FrameEncoder(nn.Module):
    """(B, S, S, 3) uint8 frames → (B, K, width) tokens (one per image point)."""

    def __init__(self, cfg: FrameEncoderConfig, width: int):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(cfg.channels):
            layers += [nn.Conv2d(c_in, c, 3, stride=2 if i < 2 else 1, padding=1), nn.GroupNorm(8, c), nn.SiLU()]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.maps = nn.Conv2d(c_in, cfg.keypoints, 1)
        self.argmax = SpatialSoftArgmax()
        self.point = nn.Linear(2, width)
        self.ids = nn.Parameter(torch.randn(1, cfg.keypoints, width) * 0.02)

    def points(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 → (B, K, 2) image points in [-1, 1] (shifted at random while training)."""
        x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if self.training and self.cfg.shift > 0:
            x = random_shift(x, self.cfg.shift)
        return self.argmax(self.maps(self.convs(x)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.point(self.points(frames)) + self.ids


class StateProbe(nn.Module):
    """(B, K, width) image-point tokens → (B, D) the normalised scene state they should locate (the auxiliary
    loss of ``frame_encoder.state_weight``; the normaliser is fitted on the training states)."""

    def __init__(self, keypoints: int, width: int, state_dim: int, hidden: int = 256):
        super().__init__()
        self.norm = Normalizer(state_dim, min_std=1e-3)
        self.mlp = nn.Sequential(
            nn.Flatten(1), nn.Linear(keypoints * width, hidden), nn.GELU(), nn.Linear(hidden, state_dim)
        )

    def loss(self, tokens: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the predicted against the true normalised state (B, D)."""
        return F.mse_loss(self.mlp(tokens), self.norm.normalize(state.float()))
