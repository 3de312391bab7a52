"""Per-frame tracks with holes (a hand not found in some frames): gap filling and temporal smoothing.

:func:`fill_gaps` interpolates short gaps linearly and holds (and marks invalid) longer ones; :func:`smooth` runs a
One-Euro filter (Casiez et al., CHI 2012) or an exponential moving average over each run of valid frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass
class SmoothingConfig:
    """``smoothing:`` of ``config/hand_video.yaml``: the temporal filter on the keypoints (metres)."""

    method: Literal["one_euro", "ema", "none"] = "one_euro"
    min_cutoff: float = 1.0  # one_euro: Hz, the cutoff at rest (lower: smoother, more lag)
    beta: float = 10.0  # one_euro: cutoff increase per m/s of speed (higher: less lag in fast moves)
    d_cutoff: float = 1.0  # one_euro: Hz, the cutoff of the speed estimate
    alpha: float = 0.5  # ema: weight of the new frame, (0, 1]

    def validate(self) -> None:
        for name in ("min_cutoff", "d_cutoff"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0 Hz, got {getattr(self, name)}")
        if self.beta < 0:
            raise ValueError(f"beta: must be >= 0, got {self.beta}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha: must be in (0, 1], got {self.alpha}")


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a 1-D mask."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def fill_gaps(values: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, ...) with NaN where a frame has no value → (filled, valid).

    A gap of at most ``max_gap`` frames between two frames with values is interpolated linearly (valid); a
    longer gap, or one at the start or end, holds the nearest value and is invalid. Raises ``ValueError``
    when no frame has a value.
    """
    out = np.array(values, np.float64)
    present = np.isfinite(out.reshape(len(out), -1)).all(axis=1)
    if not present.any():
        raise ValueError("no frame has a value to fill the gaps from")
    valid = present.copy()
    for a, b in true_runs(~present):
        if 0 < a and b < len(out) and b - a <= max_gap:
            w = ((np.arange(a, b) - (a - 1)) / (b - a + 1)).reshape(-1, *[1] * (out.ndim - 1))
            out[a:b] = (1 - w) * out[a - 1] + w * out[b]
            valid[a:b] = True
        else:
            out[a:b] = out[a - 1] if a > 0 else out[b]
    return out, valid


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., CHI 2012) on arrays of any shape, element-wise: a low-pass filter
    whose cutoff rises with the speed, so a still hand is smooth and a fast one lags little."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        self._dx = self._dx + self._alpha(self.d_cutoff, dt) * ((x - self._x) / dt - self._dx)
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self._dx), dt)
        self._x = self._x + a * (x - self._x)
        return self._x.copy()


def smooth(values: np.ndarray, valid: np.ndarray, fps: float, cfg: SmoothingConfig) -> np.ndarray:
    """(T, ...) values filtered in time (``cfg.method``) over each run of valid frames, each run from a fresh
    filter; invalid frames are returned as they are."""
    out = np.array(values, np.float64)
    if cfg.method == "none":
        return out
    dt = 1.0 / fps
    for a, b in true_runs(valid):
        one_euro = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
        for t in range(a, b):
            if cfg.method == "one_euro":
                out[t] = one_euro(values[t], dt)
            elif t > a:
                out[t] = cfg.alpha * values[t] + (1 - cfg.alpha) * out[t - 1]
    return out
