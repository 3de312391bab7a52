"""The prompt embedding: which skill a human demonstration shows, read off the video alone.

    prompt clip (Tp, S, S, 3) ──▶ frozen stage-1 prompt encoder ──▶ tokens (Tp·P, D) ──▶ attention pool ─┐
                              └─▶ small CNN over the Tp frames stacked as channels ─────────────────────────┴▶ MLP
        ──▶ z (E) ──▶ cosine similarity to one PDCP prototype per skill ──▶ the nearest prototype's skill

Trained with the PDCP terms (:mod:`.pdcp`: labelled NT-Xent, prototype cross-entropy, Siamese margin) on human
demonstrations of every skill, the robot's and the human-only ones alike.

Why it exists: the state-conditioned policy and the state estimator (:mod:`.state_estimator`) take a skill, and
at test time only the prompt says which one is asked (a twin pair's scenes look the same at the first frame).
Without it they would read the skill from the prompt episode's label, which a real prompt video does not have.
The stage-1 tokens alone confused push_to_goal with its twin pick_place (the box moves in both); the CNN over
the raw clip sees where the box ends up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from humanprompt_ros.config.loader import to_dict
from humanprompt_ros.config.stage1 import Stage1Config
from humanprompt_ros.models.checkpoint import command_line, load_checkpoint, load_weights, prefixed, save_checkpoint
from humanprompt_ros.models.cross_prediction import CrossPredictionModel
from humanprompt_ros.models.pdcp import PDCPConfig, PDCPLoss
from humanprompt_ros.models.video_model import build_video_model, embedded_configs

KIND = "prompt_embedding"


@dataclass
class PromptEmbeddingConfig:
    dim: int = 64  # E, the embedding PDCP shapes
    channels: list[int] = field(default_factory=lambda: [32, 64, 64])  # the clip CNN (each conv halves the size)
    heads: int = 4
    dropout: float = 0.1
    shift: int = 4  # random shift (pixels) of the clip while training
    skills: list[str] = field(default_factory=list)  # prototype order
    fps: float = 0.0  # the training demos' frame rate a prompt is resampled to (0: not resampled)
    stage1_tokens: bool = True  # false: the clip CNN alone (the no-stage-1 ablation)
    pdcp: PDCPConfig = field(
        default_factory=lambda: PDCPConfig(nt_xent_weight=1.0, proto_weight=1.0, siamese_weight=0.5)
    )

    def validate(self) -> None:
        if self.dim <= 0 or not self.channels or any(c <= 0 for c in self.channels):
            raise ValueError(f"dim and channels must be positive, got {self.dim}, {self.channels}")
        if not 0 <= self.dropout < 1 or self.shift < 0 or self.fps < 0:
            raise ValueError("dropout must be in [0, 1), shift and fps >= 0")
        self.pdcp.validate()


class PromptEmbedding(nn.Module):
    """Prompt tokens (B, S, D) and clips (B, Tp, S, S, 3) uint8 → embeddings z (B, E); skills by prototype."""

    def __init__(self, cfg: PromptEmbeddingConfig, stage1_cfg: Stage1Config, video_model: CrossPredictionModel):
        super().__init__()
        cfg.validate()
        self.cfg, self.stage1_cfg = cfg, stage1_cfg
        self.video_model = video_model.requires_grad_(False).eval()
        d, frames = video_model.prompt_dim, video_model.cfg.prompt_frames
        self.norm = nn.LayerNorm(d)
        self.query = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.attend = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
        convs: list[nn.Module] = []
        c_in = 3 * frames
        for c in cfg.channels:
            convs += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.SiLU()]
            c_in = c
        self.cnn = nn.Sequential(*convs, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        width = (d if cfg.stage1_tokens else 0) + c_in
        self.mlp = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(width, d), nn.GELU(), nn.Linear(d, cfg.dim))
        self.pdcp = PDCPLoss(cfg.pdcp, cfg.dim, max(1, len(cfg.skills)))

    def train(self, mode: bool = True) -> "PromptEmbedding":
        super().train(mode)
        self.video_model.eval()
        return self

    @torch.no_grad()
    def tokens(self, clips: np.ndarray) -> torch.Tensor:
        """(B, Tp, S, S, 3) uint8 clips at the stage-1 model's size → frozen prompt tokens (B, Tp·P, D)."""
        vm = self.video_model
        b, t = clips.shape[:2]
        latents = vm.encode_frames(torch.from_numpy(np.ascontiguousarray(clips.reshape(b * t, *clips.shape[2:]))))
        return vm.encode_prompt(latents.reshape(b, t, *latents.shape[1:]))

    def forward(self, tokens: torch.Tensor, clips: torch.Tensor) -> torch.Tensor:
        """(B, S, D) prompt tokens (ignored without ``stage1_tokens``), (B, Tp, F, F, 3) uint8 clips → z (B, E)."""
        b, t, f = clips.shape[:3]
        img = clips.permute(0, 1, 4, 2, 3).reshape(b, t * 3, f, f).float() / 127.5 - 1.0
        if self.training and self.cfg.shift:
            dx, dy = (int(v) for v in torch.randint(-self.cfg.shift, self.cfg.shift + 1, (2,)))
            img = torch.roll(img, (dy, dx), dims=(2, 3))
        parts = [self.cnn(img)]
        if self.cfg.stage1_tokens:
            x = self.norm(tokens)
            pooled, _ = self.attend(self.query.expand(len(x), -1, -1), x, x)
            parts.insert(0, pooled[:, 0])
        return self.mlp(torch.cat(parts, dim=-1))

    def clip(self, prompt: Any) -> np.ndarray:
        """A prompt (an ``Episode``) → its clip (Tp, S, S, 3) uint8 as the stage-1 model takes it."""
        vm = self.video_model.cfg
        return prompt.prompt_clip(vm.prompt_frames, vm.image_size, self.cfg.fps or None)[0]

    @torch.no_grad()
    def recognize(self, clip: np.ndarray) -> tuple[str, float]:
        """One clip (Tp, S, S, 3) uint8 → (the nearest prototype's skill, the cosine distance to it)."""
        z = self(self.tokens(clip[None]), torch.from_numpy(clip[None]))
        k, distance = self.pdcp.nearest(z[0])
        return self.cfg.skills[k], distance


def save_prompt_embedding(path: str | Path, model: PromptEmbedding, **meta: Any) -> Path:
    return save_checkpoint(
        path,
        model.state_dict(),
        KIND,
        to_dict(model.cfg),
        stage1_config=to_dict(model.stage1_cfg),
        command=command_line(),
        **meta,
    )


def prompt_embedding_from(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str, video_model: CrossPredictionModel | None = None
) -> PromptEmbedding:
    """A prompt embedding from its weights and metadata (``config``, ``stage1_config``): a checkpoint's, or a
    bundle's part. ``video_model``: the stage-1 model it reads, when ``tensors`` do not carry it (a bundle
    shares the policy's)."""
    cfg, s1 = embedded_configs(source, meta, PromptEmbeddingConfig)
    model = PromptEmbedding(cfg, s1, video_model if video_model is not None else build_video_model(s1.model))
    if video_model is not None:
        tensors = {**tensors, **prefixed("video_model", video_model.state_dict())}
    load_weights(model, tensors, f"{source}: weights do not match the prompt embedding its config describes")
    return model.eval()


def load_prompt_embedding(path: str | Path) -> PromptEmbedding:
    """Load a prompt embedding checkpoint (the stage-1 model it reads is inside); refuses other kinds."""
    tensors, meta = load_checkpoint(path, kind=KIND)
    return prompt_embedding_from(tensors, meta, str(path))
