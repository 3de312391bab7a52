"""The stage-2 policy model: the frozen stage-1 video model, the Video Former, the diffusion head and
the PDCP terms, and its checkpoints.

Per sample: the frozen stage-1 model encodes the prompt once (prompt tokens) and, with the current
frame as first frame, yields its representation (one denoiser pass); the Video Former turns that into
tokens; the diffusion head denoises the next ``horizon`` unified actions given those tokens and the
proprioception. PDCP shapes the pooled tokens z across the batch (same task → together, across
embodiments); with ``pdcp.align_weight`` it also pairs each robot frame with the human frame of the
same scene and moment and pulls their current-frame tokens together (:meth:`PromptPolicyModel.frame_parts`).
With ``condition: state`` the head's condition is the true scene state and the skill instead
(:mod:`.state_encoder`); the stage-1 model then only rides along in the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from humanprompt_ros.action import ACTION_DIM
from humanprompt_ros.config.loader import to_dict
from humanprompt_ros.config.stage1 import Stage1Config
from humanprompt_ros.config.stage2 import Stage2Config
from humanprompt_ros.models.checkpoint import (
    CheckpointError,
    command_line,
    load_checkpoint,
    load_weights,
    prefixed,
    save_checkpoint,
)
from humanprompt_ros.models.cross_prediction import CrossPredictionModel
from humanprompt_ros.models.diffusion_head import DiffusionPolicyHead
from humanprompt_ros.models.frame_encoder import FrameEncoder, StateProbe
from humanprompt_ros.models.pdcp import PDCPLoss
from humanprompt_ros.models.state_encoder import StateEncoder
from humanprompt_ros.models.video_former import VideoFormer
from humanprompt_ros.models.video_model import build_video_model, embedded_configs, prepare_prompt, save_stage1
from humanprompt_ros.video import resize_frames

KIND = "policy"
BUNDLE_PREFIX = "bundle."  # tensors of the parts a bundle carries (humanprompt_ros.models.bundle), not the policy's


class PromptPolicyModel(nn.Module):
    """Frozen stage-1 model + Video Former + diffusion head (+ PDCP terms for training)."""

    def __init__(self, cfg: Stage2Config, stage1_cfg: Stage1Config, video_model: CrossPredictionModel):
        super().__init__()
        self.cfg, self.stage1_cfg = cfg, stage1_cfg
        self.video_model = video_model.requires_grad_(False).eval()
        if cfg.stage1_trainable:
            # the prompt encoder and the denoiser's feature layers learn from the policy loss too (from
            # scratch with stage1_pretrained=false); the frame autoencoder stays fixed
            video_model.prompt_encoder.requires_grad_(True)
            video_model.denoiser.requires_grad_(True)
        t, _ = video_model.feature_tokens
        self.former = VideoFormer(cfg.video_former, video_model.feature_dim, t)
        self.prompt_proj = nn.Sequential(
            nn.LayerNorm(video_model.prompt_dim), nn.Linear(video_model.prompt_dim, cfg.video_former.width)
        )
        self.skill_embed = nn.Embedding(max(1, len(cfg.skills)), cfg.video_former.width)
        self.head = DiffusionPolicyHead(cfg.policy, cfg.video_former.width)
        self.frame_encoder = (
            FrameEncoder(cfg.frame_encoder, cfg.video_former.width)
            if cfg.frame_encoder.enabled and cfg.sees_images
            else None
        )
        self.state_encoder = None if cfg.sees_images else StateEncoder(cfg.state_encoder, cfg.video_former.width)
        fe = cfg.frame_encoder
        self.state_probe = (
            StateProbe(fe.keypoints, cfg.video_former.width, cfg.state_encoder.dim)
            if self.frame_encoder is not None and fe.state_weight > 0
            else None
        )
        # the frame size the policy's own encoder sees (the stage-1 model always gets its own size)
        self.frame_size = fe.image_size or video_model.cfg.image_size
        # how many Video Former tokens open the condition (none without stage-1 features)
        self.n_former = self.former.num_tokens if cfg.stage1_features else 0
        self.pdcp = PDCPLoss(cfg.pdcp, cfg.video_former.width, max(1, len(cfg.skills)))

    def train(self, mode: bool = True) -> "PromptPolicyModel":
        super().train(mode)
        self.video_model.eval()  # no dropout or norm statistics in it: eval mode even when it trains
        return self

    @property
    def trains_video_model(self) -> bool:
        """Whether the stage-1 prompt encoder and denoiser are trained here (``stage1_trainable``)."""
        return self.cfg.stage1_trainable

    def prompt_latents(self, prompt_frames: np.ndarray) -> torch.Tensor:
        """A prompt video (any length/size) → prompt latents (1, Tp, C, h, w) (resampled as documented)."""
        dev = next(self.head.parameters()).device
        return prepare_prompt(self.video_model, prompt_frames).to(dev)

    @torch.no_grad()
    def encode_prompt(self, prompt_frames: np.ndarray) -> torch.Tensor:
        """A prompt video (any length/size) → prompt tokens (1, S, D)."""
        return self.video_model.encode_prompt(self.prompt_latents(prompt_frames))

    def features(self, prompt_tokens: torch.Tensor, frame_latents: torch.Tensor) -> torch.Tensor:
        """The stage-1 representation (B, T, N, D) of (prompt, current frame); the no-prompt
        variant sees zero prompt tokens."""
        if self.cfg.condition == "none":
            prompt_tokens = torch.zeros_like(prompt_tokens)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trains_video_model):
            return self.video_model.features(prompt_tokens, frame_latents)

    def condition(
        self,
        prompt_tokens: torch.Tensor | None,
        frame_latents: torch.Tensor | None,
        skills: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        frames: torch.Tensor | None = None,
        states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B,S,D) prompt tokens, (B,C,h,w) current-frame latents (or their precomputed
        :meth:`features`), (B,F,F,3) uint8 current frames at :attr:`frame_size` (used by the
        ``frame_encoder`` only) → condition tokens (B, L, Dv).

        L = T·Q Video Former tokens (none without ``stage1_features``; + S projected prompt tokens with
        ``prompt_tokens``, + 1 skill token for the oracle, + K image-point tokens last with the frame
        encoder). With ``condition: state`` only ``skills`` and the (B, D) ``states`` are read: L = G state
        tokens + 1 skill token.
        """
        cfg = self.cfg
        if self.state_encoder is not None:
            if states is None or skills is None:
                raise ValueError("this policy is conditioned on the scene state and the skill: pass both")
            return torch.cat([self.state_encoder(states), self.skill_embed(skills)[:, None]], dim=1)
        if cfg.condition == "none" and prompt_tokens is not None:
            prompt_tokens = torch.zeros_like(prompt_tokens)
        parts = []
        if cfg.stage1_features:
            parts.append(self.former(self.features(prompt_tokens, frame_latents) if features is None else features))
        if cfg.prompt_tokens:
            parts.append(self.prompt_proj(prompt_tokens))
        if cfg.condition == "skill_oracle":
            parts.append(self.skill_embed(skills)[:, None])
        if self.frame_encoder is not None:
            if frames is None:
                raise ValueError("this policy encodes the current frame itself: pass frames")
            parts.append(self.frame_encoder(frames.to(next(self.head.parameters()).device)))
        return torch.cat(parts, dim=1)

    def condition_on_frame(
        self, prompt_tokens: torch.Tensor, frame: np.ndarray, skills: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One camera frame (H, W, 3) uint8, any size → condition tokens (1, L, Dv): the frame resized to
        the video model's size feeds the stage-1 representation, at :attr:`frame_size` the frame encoder."""
        frame = np.asarray(frame, np.uint8)[None]
        small = torch.from_numpy(resize_frames(frame, self.video_model.cfg.image_size))
        latents = self.video_model.encode_frames(small) if self.cfg.stage1_features else None
        own = small if self.frame_size == small.shape[1] else torch.from_numpy(resize_frames(frame, self.frame_size))
        return self.condition(prompt_tokens, latents, skills, frames=own)

    def frame_latents(self, frames: np.ndarray) -> torch.Tensor:
        """(T, F, F, 3) uint8 frames at any size → the stage-1 autoencoder's latents (T, C, h, w)."""
        vm = self.video_model
        if frames.shape[1] != vm.cfg.image_size:
            frames = resize_frames(frames, vm.cfg.image_size)
        return vm.encode_frames(torch.from_numpy(frames).to(next(self.head.parameters()).device))

    def state_loss(self, cond: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The auxiliary loss of ``frame_encoder.state_weight``: the image-point tokens (the last K of
        ``cond``) → the (B, D) scene state."""
        return self.state_probe.loss(cond[:, cond.shape[1] - self.cfg.frame_encoder.keypoints :], state)

    def pooled(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, L, Dv) condition tokens → (B, Dv) the embedding z PDCP shapes: the pool of the prompt/scene
        tokens, without the frame encoder's image points (where things are is not what the task is)
        unless ``pdcp.image_points``; with ``pdcp.pool: prompt``, of the projected prompt tokens only."""
        points = self.cfg.frame_encoder.keypoints if self.frame_encoder is not None else 0
        if self.state_encoder is not None:
            return VideoFormer.pool(cond)
        if self.cfg.pdcp.pool == "prompt":  # the tokens after the Video Former's, before skill and points
            end = cond.shape[1] - points - (self.cfg.condition == "skill_oracle")
            return VideoFormer.pool(cond[:, self.n_former : end])
        k = 0 if self.cfg.pdcp.image_points else points
        return VideoFormer.pool(cond[:, : cond.shape[1] - k])

    def global_condition(self, cond: torch.Tensor) -> torch.Tensor | None:
        """(B, L, Dv) condition tokens → the head's global condition (B, Dv): the pooled z that PDCP shapes,
        with ``policy.global_cond``; None otherwise (the head only cross-attends to the tokens)."""
        return self.pooled(cond) if self.cfg.policy.global_cond else None

    def sample_actions(
        self, cond: torch.Tensor, proprio: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, L, Dv) condition tokens, (B, P) proprio → an unnormalised action chunk (B, H, A) (DDIM)."""
        return self.head.sample(cond, proprio, generator=generator, global_cond=self.global_condition(cond))

    def frame_parts(self, cond: torch.Tensor) -> list[torch.Tensor]:
        """(B, L, Dv) condition tokens → the parts that depend on the current frame, each flattened to
        (B, ·): the Video Former tokens and, with the frame encoder, its image-point tokens. The paired
        cross-embodiment term aligns these (the prompt tokens are the prompt's, not the frame's)."""
        parts = [cond[:, : self.n_former].flatten(1)] if self.n_former else []
        if self.frame_encoder is not None:
            parts.append(cond[:, cond.shape[1] - self.cfg.frame_encoder.keypoints :].flatten(1))
        return parts


def compile_for_inference(model: PromptPolicyModel) -> PromptPolicyModel:
    """``torch.compile`` the inference path's networks (stage-1 denoiser, Video Former, head denoiser) with
    ``mode="reduce-overhead"``: on CUDA the batch-1 passes replay as CUDA graphs, which removes the
    per-kernel launch cost that dominates them. The first few calls compile (tens of seconds)."""
    vm = model.video_model
    if hasattr(vm, "denoiser"):
        vm.denoiser = torch.compile(vm.denoiser, mode="reduce-overhead", dynamic=False)
    model.former = torch.compile(model.former, mode="reduce-overhead", dynamic=False)
    model.head.denoiser = torch.compile(model.head.denoiser, mode="reduce-overhead", dynamic=False)
    return model


def save_policy(path: Path, model: PromptPolicyModel, **meta: Any) -> Path:
    tensors = {k: v for k, v in model.state_dict().items() if not k.startswith("video_model.")}
    tensors.update(prefixed("video_model", model.video_model.state_dict()))
    return save_checkpoint(
        path,
        tensors,
        KIND,
        to_dict(model.cfg),
        stage1_config=to_dict(model.stage1_cfg),
        hand=model.cfg.hand,
        action_dim=ACTION_DIM,
        action_layout="humanprompt_ros.action v1",
        command=command_line(),
        **meta,
    )


def load_policy_model(
    path: str | Path, hand: str | None = None, action_dim: int = ACTION_DIM, device: str | torch.device = "cpu"
) -> tuple[PromptPolicyModel, dict[str, Any]]:
    """Load a policy checkpoint; refuses one for another hand or action size, with a clear message."""
    tensors, meta = load_checkpoint(path, kind=KIND, keys=lambda k: not k.startswith(BUNDLE_PREFIX))  # models.bundle
    if meta.get("action_dim") != action_dim:
        raise CheckpointError(
            f"{path}: trained for {meta.get('action_dim')}-D actions, this stack uses {action_dim}-D unified actions"
        )
    if hand is not None and meta.get("hand") != hand:
        raise CheckpointError(f"{path}: trained for hand {meta.get('hand')!r}, the configured hand is {hand!r}")
    cfg, s1 = embedded_configs(path, meta, Stage2Config)
    model = PromptPolicyModel(cfg, s1, build_video_model(s1.model))
    load_weights(model, tensors, f"{path}: weights do not match the model its config describes")
    return model.to(device).eval(), meta


def extract_stage1(path: str | Path, out: str | Path) -> Path:
    """Write the stage-1 video model embedded in policy checkpoint ``path`` as a stage-1 checkpoint.

    Stage-2 runs can then share the very stage 1 a shipped policy was trained with (``stage1: OUT``)
    without training it again. With ``stage1_trainable`` the result is the fine-tuned video model."""
    model, meta = load_policy_model(path)
    return save_stage1(
        Path(out), model.video_model, model.stage1_cfg, extracted_from=str(path), policy_step=meta.get("step")
    )
