"""Human hand keypoints (21 landmarks, MediaPipe / MANO order) → the unified action space.

Landmark order (MediaPipe Hands)::

    0 wrist
    1-4   thumb  CMC, MCP, IP, tip
    5-8   index  MCP, PIP, DIP, tip
    9-12  middle MCP, PIP, DIP, tip
    13-16 ring   MCP, PIP, DIP, tip
    17-20 little MCP, PIP, DIP, tip

Wrist frame construction (origin at landmark 0; axes as in :mod:`humanprompt_ros.action`):

1. The palm plane is fitted by least squares (SVD) to the six palm points: the wrist and the four
   finger MCPs. Using six points instead of three averages out keypoint noise.
2. ``x_raw`` = mean of the four MCPs − wrist (forward); ``y_raw`` = index MCP − little MCP
   (across the palm, a ~7 cm baseline). The plane normal is oriented along ``x_raw × y_raw`` and
   becomes +z.
3. +x is ``x_raw`` projected into the palm plane; +y = z × x.

For a right hand +z points out of the back of the hand; for a left hand, out of the palm (the frame
stays right-handed, so left hands are mirror images in this space).
"""

from __future__ import annotations

import numpy as np

from humanprompt_ros.action import FINGERS, HandAction

NUM_KEYPOINTS = 21
WRIST = 0
MCP = {"index": 5, "middle": 9, "ring": 13, "little": 17}
TIPS: tuple[int, ...] = (4, 8, 12, 16, 20)  # thumb, index, middle, ring, little
PALM_POINTS: tuple[int, ...] = (WRIST, *MCP.values())
# The skeleton's bones: pairs of landmarks as in MediaPipe's HAND_CONNECTIONS (each finger from its base out,
# and the palm's outline wrist, index, middle, ring, little MCP, wrist). For drawing.
BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16),
    (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip
assert len(TIPS) == len(FINGERS)


def validate_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Return keypoints as float64 (21, 3); raise ``ValueError`` on a wrong shape or NaN/inf."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"hand keypoints must have shape ({NUM_KEYPOINTS}, 3) in MediaPipe/MANO order, got {kp.shape}")
    if not np.all(np.isfinite(kp)):
        bad = sorted(set(np.argwhere(~np.isfinite(kp))[:, 0].tolist()))
        raise ValueError(f"hand keypoints contain NaN or inf at landmarks {bad}")
    return kp


def wrist_frame(keypoints: np.ndarray) -> np.ndarray:
    """(21, 3) keypoints → (4, 4) transform world ← wrist (construction in the module docstring)."""
    kp = validate_keypoints(keypoints)
    wrist = kp[WRIST]
    mcps = kp[list(MCP.values())]
    x_raw = mcps.mean(axis=0) - wrist
    y_raw = kp[MCP["index"]] - kp[MCP["little"]]
    z_hint = np.cross(x_raw, y_raw)
    if np.linalg.norm(x_raw) < 1e-6 or np.linalg.norm(z_hint) < 1e-9:
        raise ValueError("hand keypoints are degenerate: the palm points are collinear or coincide")
    palm = kp[list(PALM_POINTS)]
    _, _, vt = np.linalg.svd(palm - palm.mean(axis=0))
    z = vt[2]
    if np.dot(z, z_hint) < 0:
        z = -z
    x = x_raw - np.dot(x_raw, z) * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, y, z], axis=1)
    pose[:3, 3] = wrist
    return pose


def keypoints_to_action(keypoints: np.ndarray) -> HandAction:
    """(21, 3) keypoints in the world/camera frame (metres) → :class:`HandAction` (all 5 fingers)."""
    kp = validate_keypoints(keypoints)
    pose = wrist_frame(kp)
    rot, origin = pose[:3, :3], pose[:3, 3]
    tips_local = (kp[list(TIPS)] - origin) @ rot
    return HandAction(origin, rot, tips_local, np.ones(len(FINGERS), bool))


def keypoints_in_wrist_frame(keypoints: np.ndarray) -> np.ndarray:
    """All 21 keypoints expressed in the wrist frame, (21, 3) (what dex-retargeting consumes)."""
    kp = validate_keypoints(keypoints)
    pose = wrist_frame(kp)
    return (kp - pose[:3, 3]) @ pose[:3, :3]
