"""``config/stage1.yaml``: the stage-1 run (the cross-prediction video model and how it trains).

Training pairs: a *prompt* episode of task k by embodiment s, and a *target* episode of the same
task k by embodiment t; which (s, t) pairs are drawn is :class:`PairMix`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from humanprompt_ros.config.loader import load_config
from humanprompt_ros.config.train import TrainConfig
from humanprompt_ros.models.cross_prediction import VideoModelConfig


@dataclass
class PairMix:
    """Probabilities of (prompt embodiment → target embodiment) pairs; renormalised when a task lacks one."""

    human_to_robot: float = 0.4
    robot_to_human: float = 0.2
    same: float = 0.4

    def validate(self) -> None:
        if (
            min(self.human_to_robot, self.robot_to_human, self.same) < 0
            or self.human_to_robot + self.robot_to_human + self.same <= 0
        ):
            raise ValueError("human_to_robot: pair probabilities must be >= 0 and not all zero")


@dataclass
class Stage1Train(TrainConfig):
    steps: int = 5000
    batch_size: int = 16
    ae_steps: int = 800  # the frame autoencoder trains first (backbones with their own VAE skip it)
    ae_batch_size: int = 32
    ae_lr: float = 1e-3


@dataclass
class Stage1Config:
    # dataset directory (humanprompt-sim generate --out), a glob of them, or a list of either: read as one
    # (humanprompt_ros.data.dataset_roots)
    data: str | list[str]
    out: str = "runs/stage1"
    clip_stride: int = 6  # sim steps between predicted frames
    model: VideoModelConfig = field(default_factory=VideoModelConfig)
    pairs: PairMix = field(default_factory=PairMix)
    train: Stage1Train = field(default_factory=Stage1Train)

    def validate(self) -> None:
        if self.clip_stride < 1:
            raise ValueError("clip_stride: must be >= 1")


def load_stage1_config(path: str | Path, overrides: list[str] | None = None) -> Stage1Config:
    return load_config(Stage1Config, path, overrides)
