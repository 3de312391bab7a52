"""Safety rules for joint commands, ROS-free: joint limits with a margin, and a velocity cap per step."""

from __future__ import annotations

import numpy as np


def safe_limits(lower: np.ndarray, upper: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Limits shrunk by ``margin`` on each side (a range narrower than 2·margin collapses to its middle)."""
    lo, hi = lower + margin, upper - margin
    mid = 0.5 * (lower + upper)
    narrow = lo > hi
    return np.where(narrow, mid, lo), np.where(narrow, mid, hi)


def velocity_step(current: np.ndarray, goal: np.ndarray, max_velocity: float, dt: float) -> tuple[np.ndarray, bool]:
    """One step from ``current`` toward ``goal``, each joint moving at most ``max_velocity*dt``; (q, limited?)."""
    max_step = max_velocity * dt
    delta = goal - current
    limited = np.clip(delta, -max_step, max_step)
    return current + limited, bool(np.any(limited != delta))
