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
The readers and the layout itself live in the ROS-free :mod:`humanprompt_ros.messages` (re-exported
here), which the bag tools (:mod:`humanprompt_ros.rosbag`) share.

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

from humanprompt_ros.action import HandAction
from humanprompt_ros.messages import (  # noqa: F401  (re-exported: the readers are ROS-free)
    HAND_TARGET_POSES,
    hand_target_poses,
    joint_positions,
    matrix_from_pose,
    matrix_from_quaternion,
    pose_array_to_action,
    quaternion_from_matrix,
)

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


def pose_from_matrix(pose: np.ndarray) -> Pose:
    """(4, 4) homogeneous transform → ``geometry_msgs/msg/Pose``."""
    pose = np.asarray(pose, dtype=np.float64)
    return _pose(np.concatenate([pose[:3, 3], quaternion_from_matrix(pose[:3, :3])]))


def _pose(row: np.ndarray) -> Pose:
    """``x, y, z, qx, qy, qz, qw`` → ``geometry_msgs/msg/Pose``."""
    msg = Pose()
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in row[:3])
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (float(v) for v in row[3:7])
    return msg


def action_to_pose_array(action: HandAction, frame_id: str = "world", stamp: Any = None) -> PoseArray:
    """A :class:`HandAction` → the six-pose ``PoseArray`` of the module docstring.

    ``stamp`` is a ``builtin_interfaces.msg.Time`` (e.g. the observation's stamp) or None (zero).
    """
    rows = hand_target_poses(action)  # validates; the layout is shared with the bag tools
    msg = PoseArray()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.poses = [_pose(row) for row in rows]
    return msg


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
