"""Video Former: a fixed number of tokens from the video model's intermediate features.

Learned queries attend over each predicted frame's spatial tokens (space), then the per-frame query
tokens attend to each other across frames (time), as in Video Prediction Policy.

    features (B, T, N, D_in) → tokens (B, T·Q, D)        pooled: (B, D)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from humanprompt_ros.models.layers import MLP, Attention


@dataclass
class VideoFormerConfig:
    queries_per_frame: int = 4  # Q
    width: int = 128  # D
    depth: int = 2
    heads: int = 4

    def validate(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width: {self.width} is not divisible by heads={self.heads}")
        if self.queries_per_frame < 1 or self.depth < 1:
            raise ValueError("queries_per_frame: and depth must be >= 1")


class _SpaceTimeLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.n_space, self.n_time, self.n_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.space = Attention(dim, heads)
        self.time = Attention(dim, heads)
        self.mlp = MLP(dim)

    def forward(self, q: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """q (B, T, Q, D), feats (B·T, N, D) → (B, T, Q, D)."""
        b, t, nq, d = q.shape
        q = q + self.space(self.n_space(q).flatten(0, 1), context=feats).view(b, t, nq, d)
        h = self.n_time(q).transpose(1, 2).reshape(b * nq, t, d)
        q = q + self.time(h).view(b, nq, t, d).transpose(1, 2)
        return q + self.mlp(self.n_mlp(q))


class VideoFormer(nn.Module):
    """(B, T, N, D_in) features → (B, T·Q, D) tokens."""

    def __init__(self, cfg: VideoFormerConfig, feature_dim: int, frames: int):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.inp = nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, cfg.width))
        self.queries = nn.Parameter(torch.randn(1, 1, cfg.queries_per_frame, cfg.width) * 0.02)
        self.frame_pos = nn.Parameter(torch.zeros(1, frames, 1, cfg.width))
        self.layers = nn.ModuleList([_SpaceTimeLayer(cfg.width, cfg.heads) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, t, n, _ = features.shape
        feats = self.inp(features).flatten(0, 1)  # (B·T, N, D)
        q = (self.queries + self.frame_pos[:, :t]).expand(b, t, -1, -1)
        for layer in self.layers:
            q = layer(q, feats)
        return self.norm(q).flatten(1, 2)

    @property
    def num_tokens(self) -> int:
        """T·Q: the tokens it returns for features of all the frames it was built for."""
        return self.cfg.queries_per_frame * self.frame_pos.shape[1]

    @staticmethod
    def pool(tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, D) → (B, D): the prompt/scene embedding z used by the contrastive losses and probes."""
        return tokens.mean(dim=1)
