"""The optimisation settings every training run shares (a stage's config adds its own fields)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """The optimisation settings every stage shares (a stage adds its own fields)."""

    steps: int = 4000
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    grad_clip: float = 1.0
    log_every: int = 50
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"  # auto = cuda:LOCAL_RANK when available, else cpu
    # > 0: fit ``steps`` to this many seconds of training (measured after the first steps; the saved
    # config records the steps that ran). Single process only. 0: exactly ``steps``.
    time_budget_s: float = 0.0
