"""Unified hand actions and joint positions ↔ ROS messages.

Hand target as ``geometry_msgs/msg/PoseArray`` (``/humanprompt/hand_target``)
-------------------------------------------------------------------------------
Exactly six poses, ``header.frame_id`` the world (camera) frame of the wrist pose:

========  =====================================================================================
index     content
========  =====================================================================================
0         the wrist pose in the world frame (position + orientation quaternion)
1..5      thumb, index, middle, ring, little fingertip **positions in the wrist frame**, with the
          identity orientation (x, y, z, w) = (0, 0, 0, 1)
========  =====================================================================================

A **masked** finger (one the hand does not have, e.g. the Allegro hand's little finger) has the
orientation (0, 0, 0, 0) — an invalid quaternion, used as the mask flag — and position (0, 0, 0).
Any other fingertip orientation marks the finger as present (its orientation is otherwise
ignored). NaN or inf anywhere, a wrong number of poses or a wrist quaternion that is far from unit
length raise ``ValueError``; a wrist quaternion within 1 % of unit length is normalised.

This is the same information as the flat 24-float :class:`~humanprompt_ros.action.HandAction`
, written with standard messages so that rviz and ``ros2 topic echo`` can read it
(custom interfaces are avoided on purpose: ROS 2 from Python wheels cannot build them).

Joint states
------------
:func:`joint_positions` reads a ``sensor_msgs/msg/JointState`` into the order of a hand's
``joint_names`` (by name, so the publisher's order does not matter);
:func:`joint_state` builds one.

Prompt tokens as ``std_msgs/msg/Float32MultiArray`` (``/humanprompt/prompt_tokens``)
-------------------------------------------------------------------------------------
The active prompt encoded by a checkpoint's prompt encoder, (1, S, D) float32, row-major in
``data``; ``layout.dim`` = ``[(meta, 1, S·D), ("tokens", S, S·D), ("channels", D, D)]`` where the
first dimension's label is JSON ``{"prompt_id": ID, "checkpoint": IDENTITY, "skill": K or null}``:
the id of the prompt on ``/humanprompt/prompt`` these tokens encode, the identity of the checkpoint
that encoded them (:func:`humanprompt_ros.nodes.policy.checkpoint_identity`) and the skill index
(``skill_oracle`` policies). A cleared prompt is one dimension labelled ``{"prompt_id": ""}`` and no
data. :func:`tokens_to_msg` builds one, :func:`msg_to_tokens` reads and checks one.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
from geometry_msgs.msg import Pose, PoseArray
from sensor_msgs.msg import JointState

from humanprompt_ros.action import FINGERS, HandAction

__all__ = [
    "HAND_TARGET_POSES",
    "action_to_pose_array",
    "pose_array_to_action",
    "quaternion_from_matrix",
    "matrix_from_quaternion",
    "pose_from_matrix",
    "matrix_from_pose",
    "joint_positions",
    "joint_state",
    "tokens_to_msg",
    "msg_to_tokens",
]

HAND_TARGET_POSES = 1 + len(FINGERS)
_UNIT_TOLERANCE = 0.01


def quaternion_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(3, 3) rotation → unit quaternion (x, y, z, w) with w >= 0 (Shepperd's method)."""
    m = np.asarray(rot, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = np.array([(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array([0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s])
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array([(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array([(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s])
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def matrix_from_quaternion(q: Sequence[float]) -> np.ndarray:
    """Unit quaternion (x, y, z, w) → (3, 3) rotation."""
    x, y, z, w = (float(v) for v in q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def pose_from_matrix(pose: np.ndarray) -> Pose:
    """(4, 4) homogeneous transform → ``geometry_msgs/msg/Pose``."""
    pose = np.asarray(pose, dtype=np.float64)
    msg = Pose()
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in pose[:3, 3])
    qx, qy, qz, qw = quaternion_from_matrix(pose[:3, :3])
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (
        float(qx),
        float(qy),
        float(qz),
        float(qw),
    )
    return msg


def _quat(p: Pose) -> np.ndarray:
    return np.array([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w], dtype=np.float64)


def _pos(p: Pose) -> np.ndarray:
    return np.array([p.position.x, p.position.y, p.position.z], dtype=np.float64)


def matrix_from_pose(msg: Pose, what: str = "pose") -> np.ndarray:
    """``geometry_msgs/msg/Pose`` → (4, 4); ``ValueError`` on NaN/inf or a non-unit quaternion."""
    q, p = _quat(msg), _pos(msg)
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(p))):
        raise ValueError(f"{what} contains NaN or inf: position {p.tolist()}, orientation {q.tolist()}")
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > _UNIT_TOLERANCE:
        raise ValueError(f"{what}: orientation is not a unit quaternion (norm {norm:.4f}): {q.tolist()}")
    out = np.eye(4)
    out[:3, :3] = matrix_from_quaternion(q / norm)
    out[:3, 3] = p
    return out


def action_to_pose_array(action: HandAction, frame_id: str = "world", stamp: Any = None) -> PoseArray:
    """A :class:`HandAction` → the six-pose ``PoseArray`` of the module docstring.

    ``stamp`` is a ``builtin_interfaces.msg.Time`` (e.g. the observation's stamp) or None (zero).
    """
    arr = action.to_array()  # validates shapes; masked fingertips are zeros
    if not np.all(np.isfinite(arr)):
        raise ValueError("hand action contains NaN or inf")
    msg = PoseArray()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    poses = [pose_from_matrix(action.wrist_pose)]
    for i in range(len(FINGERS)):
        p = Pose()
        if action.mask[i]:
            p.position.x, p.position.y, p.position.z = (float(v) for v in action.fingertips[i])
            p.orientation.w = 1.0
        else:
            p.orientation.w = 0.0  # (0, 0, 0, 0): the mask flag
        poses.append(p)
    msg.poses = poses
    return msg


def pose_array_to_action(msg: PoseArray) -> HandAction:
    """The six-pose ``PoseArray`` of the module docstring → :class:`HandAction` (``ValueError`` if invalid)."""
    if len(msg.poses) != HAND_TARGET_POSES:
        raise ValueError(
            f"a hand target has {HAND_TARGET_POSES} poses (wrist + {', '.join(FINGERS)}), got {len(msg.poses)}"
        )
    wrist = matrix_from_pose(msg.poses[0], "wrist pose")
    tips = np.zeros((len(FINGERS), 3))
    mask = np.zeros(len(FINGERS), dtype=bool)
    for i, (finger, p) in enumerate(zip(FINGERS, msg.poses[1:])):
        q, pos = _quat(p), _pos(p)
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(pos))):
            raise ValueError(
                f"{finger} fingertip contains NaN or inf: position {pos.tolist()}, orientation {q.tolist()}"
            )
        mask[i] = bool(np.any(q != 0.0))
        if mask[i]:
            tips[i] = pos
    return HandAction(wrist[:3, 3], wrist[:3, :3], tips, mask)


def joint_positions(msg: JointState, joint_names: Sequence[str]) -> np.ndarray:
    """Positions of ``joint_names`` (in that order) from a JointState; ``ValueError`` if any is missing or not finite."""
    if len(msg.position) != len(msg.name):
        raise ValueError(f"JointState has {len(msg.name)} names but {len(msg.position)} positions")
    index = {n: i for i, n in enumerate(msg.name)}
    missing = [n for n in joint_names if n not in index]
    if missing:
        raise ValueError(f"JointState lacks joint(s) {', '.join(missing)} (it has: {', '.join(msg.name) or 'none'})")
    q = np.array([msg.position[index[n]] for n in joint_names], dtype=np.float64)
    if not np.all(np.isfinite(q)):
        bad = [n for n, v in zip(joint_names, q) if not np.isfinite(v)]
        raise ValueError(f"JointState has NaN or inf positions for {', '.join(bad)}")
    return q


def joint_state(
    joint_names: Sequence[str], positions: np.ndarray, stamp: Any = None, velocities: np.ndarray | None = None
) -> JointState:
    """A JointState with ``positions`` (and optionally ``velocities``) for ``joint_names``."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != (len(joint_names),):
        raise ValueError(f"expected {len(joint_names)} positions, got shape {positions.shape}")
    msg = JointState()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.name = list(joint_names)
    msg.position = positions.tolist()
    if velocities is not None:
        msg.velocity = np.asarray(velocities, dtype=np.float64).tolist()
    return msg


def tokens_to_msg(tokens: Any, prompt_id: str, checkpoint: str, skill: int | None = None):
    """(1, S, D) prompt tokens → ``std_msgs/Float32MultiArray`` (see the module docstring); ``tokens``
    None (or ``prompt_id`` empty): the "no prompt" message."""
    from std_msgs.msg import Float32MultiArray, MultiArrayDimension

    msg = Float32MultiArray()
    if tokens is None or not prompt_id:
        msg.layout.dim = [MultiArrayDimension(label=json.dumps({"prompt_id": ""}), size=0, stride=0)]
        return msg
    arr = np.ascontiguousarray(np.asarray(tokens, dtype=np.float32))
    if arr.ndim != 3 or arr.shape[0] != 1:
        raise ValueError(f"prompt tokens must be (1, S, D), got {arr.shape}")
    _, n, d = arr.shape
    meta = {"prompt_id": str(prompt_id), "checkpoint": str(checkpoint), "skill": None if skill is None else int(skill)}
    msg.layout.dim = [
        MultiArrayDimension(label=json.dumps(meta), size=1, stride=n * d),
        MultiArrayDimension(label="tokens", size=n, stride=n * d),
        MultiArrayDimension(label="channels", size=d, stride=d),
    ]
    msg.layout.data_offset = 0
    msg.data.frombytes(arr.astype("<f4", copy=False).tobytes())
    return msg


def msg_to_tokens(msg) -> tuple[dict[str, Any], np.ndarray | None]:
    """``/humanprompt/prompt_tokens`` message → (meta ``{prompt_id, checkpoint, skill}``, (1, S, D) float32
    tokens or None for the "no prompt" message). ``ValueError`` on a malformed message."""
    dims = list(msg.layout.dim)
    if not dims:
        raise ValueError("prompt tokens message without layout dimensions")
    try:
        meta = json.loads(dims[0].label)
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or "prompt_id" not in meta:
        raise ValueError(f"prompt tokens message: layout.dim[0].label is not the JSON meta: {dims[0].label[:80]!r}")
    meta = {
        "prompt_id": str(meta.get("prompt_id") or ""),
        "checkpoint": str(meta.get("checkpoint") or ""),
        "skill": meta.get("skill"),
    }
    if not meta["prompt_id"]:
        return meta, None
    if len(dims) != 3:
        raise ValueError(f"prompt tokens message: expected 3 layout dimensions (1, S, D), got {len(dims)}")
    shape = tuple(int(x.size) for x in dims)
    try:
        data = np.frombuffer(msg.data, np.float32)  # array.array('f') as rclpy delivers it: no copy
    except (TypeError, ValueError):
        data = np.asarray(msg.data, np.float32).ravel()
    off = int(msg.layout.data_offset)
    n = int(np.prod(shape))
    if shape[0] != 1 or len(data) < off + n:
        raise ValueError(f"prompt tokens message: layout {shape} (offset {off}) does not match {len(data)} values")
    return meta, data[off : off + n].reshape(shape).copy()
