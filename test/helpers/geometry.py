"""Geometry for tests: random rotations, a canonical human right hand."""

from __future__ import annotations

import numpy as np


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


# A right hand lying palm down, fingers along +x, thumb on +y (metres). Per finger: 4 joints.
_BASE = {
    "thumb": ([0.02, 0.025, -0.005], [0.02, 0.02, 0.0]),
    "index": ([0.09, 0.025, 0.0], [0.025, 0.0, 0.0]),
    "middle": ([0.095, 0.0, 0.0], [0.027, 0.0, 0.0]),
    "ring": ([0.09, -0.02, 0.0], [0.025, 0.0, 0.0]),
    "little": ([0.08, -0.038, 0.0], [0.02, 0.0, 0.0]),
}


def right_hand_keypoints() -> np.ndarray:
    kp = np.zeros((21, 3))
    for i, (start, step) in enumerate(_BASE.values()):
        for j in range(4):
            kp[1 + 4 * i + j] = np.array(start) + j * np.array(step)
    return kp
