"""The unified hand action space shared by human and robot hands.

A :class:`HandAction` is one hand pose:

* ``wrist_pos`` (3,): the wrist origin in the world/camera frame, metres.
* ``wrist_rot`` (3, 3): the wrist frame's axes in the world frame (columns), a proper rotation.
* ``fingertips`` (5, 3): thumb, index, middle, ring, little fingertip positions **in the wrist
  frame**, metres.
* ``mask`` (5,) bool: which fingers the hand has. A masked finger's fingertip is meaningless and is
  written as zeros in the flat array.

The wrist frame convention (the same for every hand; see :mod:`humanprompt_ros.hand.keypoints` for the
human construction and ``wrist_offset`` in ``config/hands/*.yaml`` for robots):

* origin at the wrist (base of the palm),
* +x from the wrist toward the knuckles of the middle finger (the hand's "forward"),
* +y across the palm toward the index/thumb side,
* +z = x × y: for a right hand, out of the back of the hand (dorsal).

All frames are right-handed, lengths in metres.

Flat layout (``ACTION_DIM`` = 24 floats)::

    [0:3]   wrist position
    [3:9]   wrist rotation 6D: the first two columns of the rotation matrix, column-major
            (r00, r10, r20, r01, r11, r21)
    [9:24]  fingertips thumb, index, middle, ring, little (5 × xyz) in the wrist frame
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")
ACTION_DIM = 24
WRIST_POS = slice(0, 3)
WRIST_ROT6D = slice(3, 9)
FINGERTIPS = slice(9, 24)


def rot6d_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices → (..., 6): the first two columns, column after column."""
    rot = np.asarray(rot, dtype=np.float64)
    return np.concatenate([rot[..., :, 0], rot[..., :, 1]], axis=-1)


def matrix_from_rot6d(r6: np.ndarray) -> np.ndarray:
    """(..., 6) → (..., 3, 3) proper rotation matrices by Gram–Schmidt (Zhou et al., CVPR 2019).

    Any 6-vector whose two halves are non-zero and not parallel maps to a valid rotation, which is
    why networks predict this representation; a degenerate input raises ``ValueError``.
    """
    r6 = np.asarray(r6, dtype=np.float64)
    a, b = r6[..., 0:3], r6[..., 3:6]
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    if np.any(na < 1e-9):
        raise ValueError("rotation 6D: first column has zero length")
    x = a / na
    b = b - np.sum(x * b, axis=-1, keepdims=True) * x
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    if np.any(nb < 1e-9):
        raise ValueError("rotation 6D: the two columns are parallel")
    y = b / nb
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


def _check_finite(name: str, value: np.ndarray) -> None:
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} contains NaN or inf: {value!r}")


@dataclass
class HandAction:
    """One pose of a hand in the unified action space (see the module docstring for frames)."""

    wrist_pos: np.ndarray
    wrist_rot: np.ndarray
    fingertips: np.ndarray
    mask: np.ndarray = field(default_factory=lambda: np.ones(len(FINGERS), dtype=bool))

    def __post_init__(self) -> None:
        self.wrist_pos = np.asarray(self.wrist_pos, dtype=np.float64).reshape(3)
        self.wrist_rot = np.asarray(self.wrist_rot, dtype=np.float64).reshape(3, 3)
        self.fingertips = np.asarray(self.fingertips, dtype=np.float64).reshape(len(FINGERS), 3)
        self.mask = np.asarray(self.mask, dtype=bool).reshape(len(FINGERS))
        self.fingertips[~self.mask] = 0.0

    # -- conversions ---------------------------------------------------------------------------
    def to_array(self) -> np.ndarray:
        """The flat (24,) float64 array of the module docstring; masked fingertips are zeros."""
        out = np.empty(ACTION_DIM)
        out[WRIST_POS] = self.wrist_pos
        out[WRIST_ROT6D] = rot6d_from_matrix(self.wrist_rot)
        out[FINGERTIPS] = self.fingertips.reshape(-1)
        return out

    @classmethod
    def from_array(cls, array: np.ndarray, mask: np.ndarray | None = None) -> "HandAction":
        """Inverse of :meth:`to_array`. The rotation is re-orthonormalised (Gram–Schmidt).

        Raises ``ValueError`` on a wrong shape, NaN/inf, or a degenerate rotation.
        """
        arr = np.asarray(array, dtype=np.float64)
        if arr.shape != (ACTION_DIM,):
            raise ValueError(f"a unified hand action is {ACTION_DIM} floats, got shape {arr.shape}")
        _check_finite("hand action", arr)
        return cls(
            wrist_pos=arr[WRIST_POS],
            wrist_rot=matrix_from_rot6d(arr[WRIST_ROT6D]),
            fingertips=arr[FINGERTIPS].reshape(len(FINGERS), 3),
            mask=np.ones(len(FINGERS), bool) if mask is None else mask,
        )

    # -- frames --------------------------------------------------------------------------------
    @property
    def wrist_pose(self) -> np.ndarray:
        """(4, 4) homogeneous transform world ← wrist."""
        pose = np.eye(4)
        pose[:3, :3] = self.wrist_rot
        pose[:3, 3] = self.wrist_pos
        return pose

    def fingertips_world(self) -> np.ndarray:
        """(5, 3) fingertip positions in the world frame (masked rows are meaningless)."""
        return self.fingertips @ self.wrist_rot.T + self.wrist_pos

    def with_wrist(self, pose: np.ndarray) -> "HandAction":
        """The same finger configuration carried by another (4, 4) wrist pose."""
        pose = np.asarray(pose, dtype=np.float64)
        return HandAction(pose[:3, 3], pose[:3, :3], self.fingertips.copy(), self.mask.copy())


def actions_to_array(actions: list[HandAction]) -> np.ndarray:
    """A sequence of actions → (T, 24)."""
    return np.stack([a.to_array() for a in actions]) if actions else np.zeros((0, ACTION_DIM))


def actions_from_array(array: np.ndarray, mask: np.ndarray | None = None) -> list[HandAction]:
    """(T, 24) → a list of T actions sharing one finger mask."""
    arr = np.asarray(array, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != ACTION_DIM:
        raise ValueError(f"expected an array of shape (T, {ACTION_DIM}), got {arr.shape}")
    return [HandAction.from_array(row, mask) for row in arr]


def action_dim_mask(finger_mask: np.ndarray) -> np.ndarray:
    """(5,) finger mask → (24,) mask of the unified action's dimensions."""
    m = np.ones(ACTION_DIM, bool)
    for i, ok in enumerate(finger_mask):
        m[9 + 3 * i : 12 + 3 * i] = bool(ok)
    return m


# -- changing the frame of actions -----------------------------------------------------------------
def pose_from_xyz_rpy(pose: "list[float] | np.ndarray") -> np.ndarray:
    """``[x, y, z, roll, pitch, yaw]`` (metres, radians; URDF's ``<origin xyz rpy>`` convention, the one of
    ``wrist_offset`` in ``config/hands/*.yaml``: R = Rz(yaw) Ry(pitch) Rx(roll), fixed axes) → (4, 4).

    Raises ``ValueError`` for another length or NaN/inf.
    """
    v = np.asarray(pose, dtype=np.float64).reshape(-1)
    if v.shape != (6,):
        raise ValueError(f"a pose is 6 numbers [x, y, z, roll, pitch, yaw] (m, rad), got {v.size}")
    _check_finite("pose", v)
    cr, sr = np.cos(v[3]), np.sin(v[3])
    cp, sp = np.cos(v[4]), np.sin(v[4])
    cy, sy = np.cos(v[5]), np.sin(v[5])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    out = np.eye(4)
    out[:3, :3] = rz @ ry @ rx
    out[:3, 3] = v[:3]
    return out


def transform_actions(actions: np.ndarray, world_T_frame: np.ndarray) -> np.ndarray:
    """(T, 24) unified actions expressed in a frame (e.g. the camera's) → the same actions in the world frame,
    given ``world_T_frame`` (4, 4), that frame's pose in the world: wrist position p_w = R p + t, wrist rotation
    R_w = R R_frame (re-encoded as 6D), fingertips unchanged (they are in the wrist frame). A (24,) action gives
    a (24,) one. Raises ``ValueError`` for a bad shape, NaN/inf or a transform whose rotation is not proper.
    """
    arr = np.asarray(actions, dtype=np.float64)
    pose = np.asarray(world_T_frame, dtype=np.float64)
    if arr.shape[-1:] != (ACTION_DIM,) or arr.ndim > 2:
        raise ValueError(f"expected actions of shape (T, {ACTION_DIM}) or ({ACTION_DIM},), got {arr.shape}")
    if pose.shape != (4, 4):
        raise ValueError(f"world_T_frame must be a (4, 4) transform, got {pose.shape}")
    _check_finite("actions", arr)
    _check_finite("world_T_frame", pose)
    rot, t = pose[:3, :3], pose[:3, 3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0:
        raise ValueError("world_T_frame: its rotation is not a proper rotation matrix")
    out = arr.copy()
    out[..., WRIST_POS] = arr[..., WRIST_POS] @ rot.T + t
    out[..., WRIST_ROT6D] = rot6d_from_matrix(rot @ matrix_from_rot6d(arr[..., WRIST_ROT6D]))
    return out
