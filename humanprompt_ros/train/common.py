"""What every training run shares: seeds, distributed set-up, the metrics log and its plot, the run
directory with checkpoints and resume.

Single process on CPU by default. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the same
code runs DistributedDataParallel: each rank draws its own batches from a rank-specific seed, and
only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from humanprompt_ros.config.train import TrainConfig


class EMA:
    """An exponential moving average of a model's trainable weights (buffers, e.g. normalisers, are copied).

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after n updates, so the average does not stay
    anchored to the initial weights; ``model`` is the averaged copy, in eval mode, for checkpoints.
    """

    def __init__(self, model: torch.nn.Module, decay: float, updates: int = 0):
        self.decay, self.updates = decay, updates
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for p, q in zip(model.parameters(), self.model.parameters()):
            if p.requires_grad:
                q.lerp_(p.detach(), 1.0 - d)
        for b, c in zip(model.buffers(), self.model.buffers()):
            c.copy_(b)
        self.updates += 1


class StepBudget:
    """Fits ``cfg.steps`` to ``cfg.time_budget_s`` seconds of training (a wall-clock budget).

    Every ``probe`` steps the remaining steps are re-estimated from the speed of the *last* ``probe``
    steps (so slow first steps — compilation, lazily filled caches — do not stick), capped at the
    configured ``steps``. The cosine schedule reads ``cfg.steps``, so it ends where training does, and
    the saved config records the steps that ran.
    """

    def __init__(self, cfg: TrainConfig, start_step: int, world_size: int = 1, probe: int = 20):
        if cfg.time_budget_s > 0 and world_size > 1:
            raise ValueError("train.time_budget_s: only for single-process training (set steps under torchrun)")
        self.cfg, self.probe, self.max_steps = cfg, probe, cfg.steps
        self.t0 = self.t_last = time.perf_counter()
        self.step_last = start_step

    def update(self, step: int, bar=None) -> None:
        """Call after finishing ``step`` steps in total."""
        if self.cfg.time_budget_s <= 0 or step - self.step_last < self.probe:
            return
        now = time.perf_counter()
        per_step = (now - self.t_last) / (step - self.step_last)
        self.t_last, self.step_last = now, step
        remaining = max(0.0, self.cfg.time_budget_s - (now - self.t0))
        self.cfg.steps = max(step, min(self.max_steps, step + int(remaining / per_step)))
        if bar is not None:
            bar.total = self.cfg.steps
            bar.refresh()


def cosine_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of ``cfg.lr`` at ``cfg.steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    done = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))


def set_cosine_lr(optimizer: torch.optim.Optimizer, lr: float, step: int, steps: int) -> None:
    """One cosine from ``lr`` at step 0 to 0 at ``steps``, no warm-up (the small side models' schedule)."""
    for g in optimizer.param_groups:
        g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "auto") -> "Distributed":
        """Initialise torch.distributed when launched by torchrun; otherwise a single process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        if world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            torch.distributed.init_process_group(backend=backend)
        return cls(rank, world, local, dev)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """DDP-wrap ``module`` when distributed (identity otherwise)."""
        if self.world_size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class MetricsLog:
    """Append-only JSON-lines log of training metrics; :func:`plot_metrics` draws it."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record: Any) -> None:
        if self.enabled:
            record.setdefault("time", time.time())
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume: drop records past the checkpoint's step, so the curve has no duplicates."""
        if self.enabled and self.path.exists():
            keep = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step
            ]
            self.path.write_text("".join(line + "\n" for line in keep))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def plot_metrics(log_path: Path, out_png: Path, title: str = "") -> Path | None:
    """One panel per metric (x = step, log scale for losses); returns the PNG path or None."""
    records = read_metrics(log_path)
    keys = sorted(
        {
            k
            for r in records
            for k in r
            if k not in ("step", "time", "phase", "epoch") and isinstance(r[k], (int, float))
        }
    )
    if not records or not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        pts = [(r["step"], r[key]) for r in records if key in r and "step" in r]
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax.plot(xs, ys, lw=1)
        if "loss" in key and min(ys) > 0:
            ax.set_yscale("log")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
