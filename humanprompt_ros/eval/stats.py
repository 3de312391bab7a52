"""Statistics for comparing success rates and paired measurements."""

from __future__ import annotations

import math

import numpy as np


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate k/n (sound at 0 and n, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` episodes only one policy did and ``c`` only the other did
    (a binomial test of b successes in b + c at 1/2; the episodes both or neither did carry no evidence)."""
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


def paired_difference(
    psnr_a: np.ndarray,
    psnr_b: np.ndarray,
    ssim_a: np.ndarray,
    ssim_b: np.ndarray,
    seed: int = 0,
    resamples: int = 10_000,
) -> dict[str, float]:
    """Per-clip PSNR/SSIM of condition a minus condition b on the same clips: mean differences, the
    share of clips where a is better, and a 95% bootstrap interval of the mean PSNR difference."""
    d = np.asarray(psnr_a) - np.asarray(psnr_b)
    boot = np.random.default_rng(seed).choice(d, size=(resamples, len(d))).mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {
        "psnr": float(d.mean()),
        "psnr_ci95": [float(lo), float(hi)],
        "ssim": float(np.mean(np.asarray(ssim_a) - np.asarray(ssim_b))),
        "a_better": float(np.mean(d > 0)),
        "clips": int(len(d)),
    }
