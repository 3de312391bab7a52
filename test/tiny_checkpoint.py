"""A tiny policy checkpoint (stage 1 + stage 2 trained for a few steps on synthetic clips) for the
tests of the ROS side of ``policy:=checkpoint``: it loads, encodes prompts and acts like the shipped
one, in well under a second per call. Its actions mean nothing.

::

    from tiny_checkpoint import tiny_policy_checkpoint

    @pytest.fixture(scope="module")
    def checkpoint(tmp_path_factory):
        return tiny_policy_checkpoint(tmp_path_factory)

One checkpoint per pytest process (cached here), whichever test module asks first.
"""
from __future__ import annotations

from pathlib import Path

_CACHE: dict[str, Path] = {}


def make_tiny_policy_checkpoint(root: Path, episodes=None, **overrides) -> Path:
    """Train the tiny stage-1 and stage-2 models under ``root``; the policy checkpoint's path. Stage 2 trains
    on ``episodes`` (default: synthetic clips at 32×32, the tiny stage 1's size) with ``overrides`` of its
    ``Stage2Config`` fields (e.g. ``pdcp=PDCPSwitch(enabled=False)``; ``policy`` a dict of head fields)."""
    import torch

    from humanprompt_ros.models.diffusion_head import PolicyModelConfig
    from humanprompt_ros.models.video_former import VideoFormerConfig
    from humanprompt_ros.train.stage1 import train_stage1
    from humanprompt_ros.config.stage2 import Stage2Config, Stage2Train
    from humanprompt_ros.train.stage2 import train_stage2
    from synthetic_clips import make_dataset, make_policy_dataset
    from test_stage1 import tiny_config

    torch.set_num_threads(1)
    root = Path(root)
    s1 = train_stage1(tiny_config(root / "stage1", steps=4, ae_steps=4), make_dataset(range(1), size=32, length=12))
    cfg = Stage2Config(data=overrides.pop("data", ""), stage1=str(s1), out=str(root / "stage2"),
                       video_former=VideoFormerConfig(queries_per_frame=2, width=16, depth=1, heads=2),
                       policy=PolicyModelConfig(**{**dict(horizon=4, width=16, depth=1, heads=2, train_timesteps=20,
                                                          inference_steps=3), **overrides.pop("policy", {})}),
                       train=Stage2Train(steps=2, batch_size=4, log_every=1, checkpoint_every=2, warmup_steps=1),
                       **overrides)
    return train_stage2(cfg, make_policy_dataset(range(1), size=32, length=12) if episodes is None else episodes)


def tiny_policy_checkpoint(tmp_path_factory) -> Path:
    """The tiny checkpoint of this pytest process (trained on first use)."""
    if "policy" not in _CACHE:
        _CACHE["policy"] = make_tiny_policy_checkpoint(tmp_path_factory.mktemp("tiny_checkpoint"))
    return _CACHE["policy"]
