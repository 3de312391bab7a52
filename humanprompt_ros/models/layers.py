"""Transformer building blocks shared by the video model, the Video Former and the policy.

Shapes: B batch, L sequence length, D model width, S context length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) diffusion timesteps (any float scale) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class TimestepEmbedder(nn.Module):
    """(B,) timesteps → (B, D) through a sinusoid and a 2-layer MLP."""

    def __init__(self, dim: int, freq_dim: int = 128):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim))


class Attention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None. (B, L, D) → (B, L, D)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, n, d = x.shape
        ctx = x if context is None else context
        q = self.q(x).view(b, n, self.heads, d // self.heads).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Sequential):
    def __init__(self, dim: int, ratio: float = 4.0):
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x (B, L, D) with per-sample shift/scale (B, D)."""
    return x * (1 + scale[:, None]) + shift[:, None]


class CrossAttentionBlock(nn.Module):
    """Pre-norm block: self-attention, cross-attention to a context, MLP. (B, L, D) → (B, L, D).

    ``adaptive``: adaLN-Zero, as in DiT: a per-sample vector c (B, D) sets each sub-layer's norm shift and
    scale and the gate of its residual (zero at initialisation, so the block starts as the identity). A
    global condition then acts multiplicatively on every layer instead of being one key among many.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, adaptive: bool = False):
        super().__init__()
        self.n1, self.n2, self.n3 = (nn.LayerNorm(dim, elementwise_affine=not adaptive) for _ in range(3))
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads, context_dim)
        self.mlp = MLP(dim)
        self.ada = None
        if adaptive:
            self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 9 * dim))
            nn.init.zeros_(self.ada[1].weight)
            nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.ada is None:
            x = x + self.self_attn(self.n1(x))
            x = x + self.cross_attn(self.n2(x), context)
            return x + self.mlp(self.n3(x))
        if c is None:
            raise ValueError("an adaptive block needs its conditioning vector c (B, D)")
        (s1, k1, g1), (s2, k2, g2), (s3, k3, g3) = (m.chunk(3, dim=-1) for m in self.ada(c).chunk(3, dim=-1))
        x = x + g1[:, None] * self.self_attn(modulate(self.n1(x), s1, k1))
        x = x + g2[:, None] * self.cross_attn(modulate(self.n2(x), s2, k2), context)
        return x + g3[:, None] * self.mlp(modulate(self.n3(x), s3, k3))
