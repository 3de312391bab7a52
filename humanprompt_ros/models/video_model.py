"""The stage-1 video model as a whole: which backbone a config builds, its checkpoints, and how a
prompt video and a camera frame become its inputs.

The backbones live in :mod:`.cross_prediction` (the default latent transformer) and
:mod:`.svd_backbone` (Stable Video Diffusion's UNet, at GPU scale); both implement
:class:`~humanprompt_ros.models.cross_prediction.CrossPredictionModel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from humanprompt_ros.config.loader import from_dict, to_dict
from humanprompt_ros.config.stage1 import Stage1Config
from humanprompt_ros.models.checkpoint import (
    CheckpointError,
    command_line,
    load_checkpoint,
    load_weights,
    prefixed,
    save_checkpoint,
    unprefixed,
)
from humanprompt_ros.models.cross_prediction import CrossPredictionModel, LatentVideoModel, VideoModelConfig
from humanprompt_ros.models.svd_backbone import SVDVideoModel
from humanprompt_ros.video import resample_clip, resize_frames

KIND = "stage1"


def build_video_model(cfg: VideoModelConfig) -> CrossPredictionModel:
    """The stage-1 model for ``cfg.backbone``."""
    cfg.validate()
    if cfg.backbone == "svd":
        return SVDVideoModel(cfg)
    return LatentVideoModel(cfg)


def save_stage1(path: Path, model: CrossPredictionModel, cfg: Stage1Config, **meta: Any) -> Path:
    return save_checkpoint(
        path,
        prefixed("model", model.state_dict()),
        KIND,
        to_dict(cfg),
        backbone=model.name,
        command=command_line(),
        **meta,
    )


def load_stage1(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[CrossPredictionModel, Stage1Config, dict]:
    """Load a stage-1 checkpoint → (model in eval mode, its config, metadata). Refuses mismatches."""
    tensors, meta = load_checkpoint(path, kind=KIND)
    try:
        cfg = from_dict(Stage1Config, meta["config"], source=f"{path} (embedded config)")
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: embedded config is invalid: {exc}") from None
    if meta.get("backbone") != cfg.model.backbone:
        raise CheckpointError(
            f"{path}: weights are for backbone {meta.get('backbone')!r} but the embedded config "
            f"says {cfg.model.backbone!r}"
        )
    model = build_video_model(cfg.model)
    load_weights(model, unprefixed("model", tensors), f"{path}: weights do not match the model its config describes")
    return model.to(device).eval(), cfg, meta


def embedded_configs(path: str | Path, meta: dict[str, Any], cls: type) -> tuple[Any, Stage1Config]:
    """A checkpoint that carries the stage-1 model: (its own config as ``cls``, the stage-1 config) from its
    metadata; :class:`CheckpointError` naming ``path`` when either is missing or invalid."""
    try:
        cfg = from_dict(cls, meta["config"], source=f"{path} (embedded config)")
        s1 = from_dict(Stage1Config, meta["stage1_config"], source=f"{path} (embedded stage-1 config)")
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: embedded config is invalid: {exc}") from None
    return cfg, s1


def prepare_prompt(model: CrossPredictionModel, frames: np.ndarray) -> torch.Tensor:
    """Any prompt video (T, H, W, 3) uint8 → prompt latents (1, Tp, C, h, w) (resampled as documented)."""
    clip = resample_clip(frames, model.cfg.prompt_frames, model.cfg.image_size)
    return model.encode_frames(torch.from_numpy(clip))[None]


def prepare_frame(model: CrossPredictionModel, frame: np.ndarray) -> torch.Tensor:
    """One frame (H, W, 3) uint8 → latent (1, C, h, w)."""
    return model.encode_frames(torch.from_numpy(resize_frames(frame[None], model.cfg.image_size)))


@torch.no_grad()
def predict_video(
    model: CrossPredictionModel,
    prompt_frames: np.ndarray,
    first_frame: np.ndarray,
    seed: int = 0,
    steps: int | None = None,
    method: str = "sample",
    guidance: float | None = None,
) -> np.ndarray:
    """Predicted video (T, S, S, 3) uint8 of what follows ``first_frame`` when doing the prompt's task.

    ``method``: ``sample`` (DDIM, ``steps`` steps: one plausible future) or ``mean`` (one denoiser
    pass at the noisiest step: the model's estimate of the expected future, see
    :meth:`CrossPredictionModel.predict_mean`). ``guidance``: classifier-free guidance scale
    (default: the model's ``guidance_scale``; > 1 needs a model trained with ``prompt_dropout``).
    """
    prompt, first = prepare_prompt(model, prompt_frames), prepare_frame(model, first_frame)
    if method == "mean":
        lat = model.predict_mean(prompt, first, guidance)
    elif method == "sample":
        lat = model.sample(prompt, first, steps, torch.Generator().manual_seed(seed), guidance)
    else:
        raise ValueError(f"method: 'sample' or 'mean', got {method!r}")
    return model.decode_latents(lat)[0].numpy()
