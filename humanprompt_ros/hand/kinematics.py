"""Forward kinematics and fingertip Jacobians of a hand on pinocchio.

:class:`HandKinematics` works in *actuated* joint coordinates ``q`` (n,) — one scalar per actuated
joint, in :attr:`joint_names` order; mimic joints are expanded internally (``q_mimic = m·q + o``,
chains resolved). Positions and Jacobians are expressed in the unified wrist frame (see
:mod:`humanprompt_ros.action`), metres.
"""

from __future__ import annotations

import numpy as np
import pinocchio as pin

from humanprompt_ros.hand.urdf import WRIST_FRAME, HandURDF


class HandKinematics:
    """pinocchio model of one hand (a :class:`~humanprompt_ros.hand.urdf.HandURDF`)."""

    def __init__(self, hand_urdf: HandURDF, fingertip_links: list[str]):
        try:
            self.model = pin.buildModelFromXML(hand_urdf.xml)
        except Exception as exc:  # pinocchio raises RuntimeError/ValueError variants
            raise ValueError(f"pinocchio cannot build a model from {hand_urdf.urdf_path}: {exc}") from None
        self.data = self.model.createData()
        self.joint_names: list[str] = list(hand_urdf.actuated_joints)
        self.lower = np.array([hand_urdf.limits[n][0] for n in self.joint_names])
        self.upper = np.array([hand_urdf.limits[n][1] for n in self.joint_names])
        self.n = len(self.joint_names)

        # Expansion actuated q → every moving joint: value = A[:, k] · q + b (chained mimics resolved).
        follow = {m.name: (m.source, m.multiplier, m.offset) for m in hand_urdf.mimics}
        moving = list(hand_urdf.limits)
        self._expand_A = np.zeros((len(moving), self.n))
        self._expand_b = np.zeros(len(moving))
        for row, name in enumerate(moving):
            mult, off, seen = 1.0, 0.0, set()
            while name in follow:
                if name in seen:
                    raise ValueError(f"{hand_urdf.urdf_path}: mimic joints form a cycle at {name!r}")
                seen.add(name)
                src, m, o = follow[name]
                # value = mult·q_name + off and q_name = m·q_src + o
                mult, off = mult * m, mult * o + off
                name = src
            self._expand_A[row, self.joint_names.index(name)] = mult
            self._expand_b[row] = off

        # pinocchio indices of every moving joint (q index, nq, v index).
        self._q_slots, self._v_idx = [], []
        for name in moving:
            if not self.model.existJointName(name):
                raise ValueError(f"joint {name!r} missing from the pinocchio model of {hand_urdf.urdf_path}")
            jm = self.model.joints[self.model.getJointId(name)]
            self._q_slots.append((jm.idx_q, jm.nq))
            self._v_idx.append(jm.idx_v)
        # Jacobian columns w.r.t. actuated q: J_act = J_pin[:, v_idx] @ A.
        self._v_idx = np.array(self._v_idx, dtype=int)

        self.tip_frames = []
        for link in fingertip_links:
            if not self.model.existFrame(link):
                raise ValueError(f"fingertip link {link!r} missing from the pinocchio model of {hand_urdf.urdf_path}")
            self.tip_frames.append(self.model.getFrameId(link))
        self.wrist_frame = self.model.getFrameId(WRIST_FRAME)
        self._q_pin = pin.neutral(self.model)
        # The wrist frame is fixed to the root (base_link): one constant transform.
        pin.framesForwardKinematics(self.model, self.data, self._q_pin)
        self._wrist_inv = self.data.oMf[self.wrist_frame].inverse()
        self.base_T_wrist: np.ndarray = self.data.oMf[self.wrist_frame].homogeneous.copy()

    # -- coordinates ---------------------------------------------------------------------------
    def check_q(self, q: np.ndarray) -> np.ndarray:
        """Validate actuated joint positions: shape (n,), finite."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.n,):
            raise ValueError(f"expected {self.n} joint positions ({', '.join(self.joint_names)}), got shape {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"joint positions contain NaN or inf: {q}")
        return q

    def clamp(self, q: np.ndarray) -> np.ndarray:
        """Clip actuated joint positions to the URDF limits."""
        return np.clip(q, self.lower, self.upper)

    def to_pinocchio(self, q: np.ndarray) -> np.ndarray:
        """Actuated q (n,) → pinocchio configuration (nq,), mimic joints expanded."""
        values = self._expand_A @ q + self._expand_b
        q_pin = self._q_pin.copy()
        for (iq, nq), v in zip(self._q_slots, values):
            if nq == 1:
                q_pin[iq] = v
            else:  # continuous joint: (cos, sin)
                q_pin[iq], q_pin[iq + 1] = np.cos(v), np.sin(v)
        return q_pin

    # -- kinematics ----------------------------------------------------------------------------
    def tips(self, q: np.ndarray) -> np.ndarray:
        """(k, 3) fingertip positions in the wrist frame, k = number of fingertip links."""
        pin.framesForwardKinematics(self.model, self.data, self.to_pinocchio(q))
        w_inv = self._wrist_inv
        return np.stack([(w_inv * self.data.oMf[f]).translation for f in self.tip_frames])

    def tips_and_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fingertip positions (k, 3) and their Jacobian (k, 3, n) w.r.t. actuated q, wrist frame."""
        q_pin = self.to_pinocchio(q)
        pin.computeJointJacobians(self.model, self.data, q_pin)
        pin.updateFramePlacements(self.model, self.data)
        w_inv = self._wrist_inv
        r_w = w_inv.rotation
        tips, jacs = [], []
        for f in self.tip_frames:
            tips.append((w_inv * self.data.oMf[f]).translation)
            j = pin.getFrameJacobian(self.model, self.data, f, pin.LOCAL_WORLD_ALIGNED)[:3]
            jacs.append(r_w @ j[:, self._v_idx] @ self._expand_A)
        return np.stack(tips), np.stack(jacs)

    def frame_poses(self, q: np.ndarray, frames: list[str]) -> dict[str, np.ndarray]:
        """(4, 4) poses of named frames in the wrist frame (for visualisation)."""
        pin.framesForwardKinematics(self.model, self.data, self.to_pinocchio(q))
        w_inv = self._wrist_inv
        return {name: (w_inv * self.data.oMf[self.model.getFrameId(name)]).homogeneous for name in frames}


def hand_segments(kin) -> tuple[list[str], list[tuple[int, int]]]:
    """Frames to draw for a hand and the (parent, child) index pairs to connect (pinocchio model)."""
    model = kin.model
    names = ["humanprompt_wrist"] if model.existFrame("humanprompt_wrist") else []
    joint_frames: dict[int, int] = {}
    for jid in range(1, model.njoints):
        jname = model.names[jid]
        if model.existFrame(jname):
            joint_frames[jid] = len(names)
            names.append(jname)
    segments = []
    for jid, idx in joint_frames.items():
        parent = model.parents[jid]
        if parent in joint_frames:
            segments.append((joint_frames[parent], idx))
        elif names and names[0] == "humanprompt_wrist":
            segments.append((0, idx))
    for fid in kin.tip_frames:
        frame = model.frames[fid]
        idx = len(names)
        names.append(frame.name)
        if frame.parentJoint in joint_frames:
            segments.append((joint_frames[frame.parentJoint], idx))
    return names, segments
