"""Tiny models for fast training tests: the stage-1 configuration (:data:`TINY`, :func:`tiny_config`) and a
tiny policy checkpoint (stage 1 + stage 2 trained for a few steps on synthetic clips) for the tests of the
ROS side of ``policy:=checkpoint``: it loads, encodes prompts and acts like the shipped one, in well under a
second per call. Its actions mean nothing.

Tests get the checkpoint of this pytest process through the session fixture ``tiny_checkpoint``
(test/conftest.py), trained on first use; :func:`make_tiny_policy_checkpoint` trains another one.
"""

from __future__ import annotations

from pathlib import Path

from humanprompt_ros.config.stage1 import Stage1Config, Stage1Train
from humanprompt_ros.models.cross_prediction import VideoModelConfig

TINY = VideoModelConfig(
    image_size=32,
    width=32,
    depth=2,
    heads=2,
    clip_frames=4,
    prompt_frames=4,
    prompt_tokens_per_frame=2,
    ae_channels=(8, 16, 16),
    feature_layer=1,
    sample_steps=3,
    prompt_dropout=0.0,
)


# The recipe the training tests were written against, spelled out now that the dataclass defaults are the
# shipped recipe's (config/stage2.yaml): a plain head (ε-prediction, no global condition, no guidance) and a
# stage 2 without its own frame encoder, prompted by human demos, with z pooled over the scene. A test of one
# of those mechanisms turns it on itself.
PLAIN_HEAD = dict(
    prediction_type="epsilon",
    timestep_spacing="leading",
    proprio_noise=0.0,
    min_std=1e-4,
    execute=8,
    global_cond=False,
    global_dropout=0.0,
    guidance=1.0,
)


def plain_stage2(**fields) -> dict:
    """``Stage2Config`` keyword arguments of the plain recipe above, with ``fields`` on top."""
    from humanprompt_ros.config.stage2 import PDCPSwitch
    from humanprompt_ros.models.frame_encoder import FrameEncoderConfig

    return {
        "prompt_embodiment": "human",
        "proprio": "all",
        "frame_encoder": FrameEncoderConfig(enabled=False),
        "pdcp": PDCPSwitch(pool="scene"),
        **fields,
    }


def tiny_config(out: Path, steps: int = 60, ae_steps: int = 30) -> Stage1Config:
    """A stage-1 configuration of the :data:`TINY` model, writing to ``out``."""
    return Stage1Config(
        data="",
        out=str(out),
        clip_stride=3,
        model=TINY,
        train=Stage1Train(
            ae_steps=ae_steps,
            ae_batch_size=16,
            steps=steps,
            batch_size=8,
            log_every=5,
            checkpoint_every=20,
            warmup_steps=5,
            seed=0,
            lr=2e-3,
        ),
    )


def tiny_stage1(out: Path) -> Path:
    """A stage-1 checkpoint of :func:`tiny_config` trained 4 + 4 steps on one synthetic clip (32×32) under ``out``:
    a stage 1 that loads and runs, for tests of what is built on it."""
    from helpers.synthetic_clips import make_dataset
    from humanprompt_ros.train.stage1 import train_stage1

    return train_stage1(tiny_config(out, steps=4, ae_steps=4), make_dataset(range(1), size=32, length=12))


def make_tiny_policy_checkpoint(root: Path, episodes=None, **overrides) -> Path:
    """Train the tiny stage-1 and stage-2 models under ``root``; the policy checkpoint's path. Stage 2 trains
    on ``episodes`` (default: synthetic clips at 32×32, the tiny stage 1's size) with ``overrides`` of its
    ``Stage2Config`` fields (e.g. ``pdcp=PDCPSwitch(enabled=False)``; ``policy`` a dict of head fields)."""
    import torch

    from helpers.synthetic_clips import make_policy_dataset
    from humanprompt_ros.config.stage2 import Stage2Config, Stage2Train
    from humanprompt_ros.models.diffusion_head import PolicyModelConfig
    from humanprompt_ros.models.video_former import VideoFormerConfig
    from humanprompt_ros.train.stage2 import train_stage2

    torch.set_num_threads(1)
    root = Path(root)
    s1 = tiny_stage1(root / "stage1")
    cfg = Stage2Config(
        data=overrides.pop("data", ""),
        stage1=str(s1),
        out=str(root / "stage2"),
        video_former=VideoFormerConfig(queries_per_frame=2, width=16, depth=1, heads=2),
        policy=PolicyModelConfig(
            **{
                **dict(horizon=4, width=16, depth=1, heads=2, train_timesteps=20, inference_steps=3),
                **PLAIN_HEAD,
                **overrides.pop("policy", {}),
            }
        ),
        train=Stage2Train(steps=2, batch_size=4, log_every=1, checkpoint_every=2, warmup_steps=1),
        **plain_stage2(**overrides),
    )
    return train_stage2(cfg, make_policy_dataset(range(1), size=32, length=12) if episodes is None else episodes)
