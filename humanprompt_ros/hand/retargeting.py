"""Retargeting: unified fingertip targets → hand joint positions.

Two families behind one interface, :meth:`Retargeter.solve`:

* :class:`FingertipIK` (``type: fingertip_ik``, the default): damped least squares on pinocchio
  fingertip Jacobians with joint-limit clamping and adaptive damping. For targets the hand can reach
  exactly — robot demonstrations and the policy's outputs — it is near-exact and fast.
* :class:`DexRetargeter` (``type: vector | dexpilot | position``): dex-retargeting's optimizers, the
  right objective for human → robot where hand proportions differ (vector matching with scaling).

Targets are fingertip positions in the unified wrist frame, (k, 3) for the hand's k fingers in
:attr:`Hand.fingers` order, with a boolean ``active`` (k,) selecting which to match.
"""

from __future__ import annotations

import contextlib
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from humanprompt_ros.hand.kinematics import HandKinematics
from humanprompt_ros.hand.urdf import WRIST_FRAME, HandURDF


class Retargeter(Protocol):
    def solve(self, tips: np.ndarray, active: np.ndarray, q_init: np.ndarray) -> np.ndarray:
        """Fingertip targets (k, 3), wrist frame → joint positions (n,), within limits."""


class FingertipIK:
    """Damped-least-squares fingertip IK (Levenberg–Marquardt damping), clamped to limits.

    Starts from ``q_init``; if that does not converge within ``tolerance`` it restarts from the
    middle of the joint ranges and keeps the better solution, so an unrelated warm start cannot trap
    it in a fold of the joint limits.
    """

    def __init__(
        self,
        kin: HandKinematics,
        damping: float = 1e-4,
        max_iters: int = 100,
        tolerance: float = 1e-5,
        max_step: float = 0.5,
    ):
        self.kin = kin
        self.damping = damping
        self.max_iters = max_iters
        self.tolerance = tolerance
        self.max_step = max_step

    def _descend(self, tips: np.ndarray, active: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, float]:
        kin, lam = self.kin, self.damping
        q = kin.clamp(q)
        cur, jac = kin.tips_and_jacobian(q)
        err = (tips - cur)[active].reshape(-1)
        cost = float(err @ err)
        for _ in range(self.max_iters):
            if np.sqrt(np.max(np.sum(err.reshape(-1, 3) ** 2, axis=1))) < self.tolerance:
                break
            j = jac[active].reshape(-1, kin.n)
            dq = j.T @ np.linalg.solve(j @ j.T + lam * np.eye(j.shape[0]), err)
            step = np.max(np.abs(dq))
            if step > self.max_step:
                dq *= self.max_step / step
            q_new = kin.clamp(q + dq)
            cur_new, jac_new = kin.tips_and_jacobian(q_new)
            err_new = (tips - cur_new)[active].reshape(-1)
            cost_new = float(err_new @ err_new)
            if cost_new < cost:
                q, jac, err, cost = q_new, jac_new, err_new, cost_new
                lam = max(lam * 0.5, 1e-9)
            else:
                lam *= 10.0
                if lam > 1e3:  # no descent direction left within the limits
                    break
        worst = float(np.sqrt(np.max(np.sum(err.reshape(-1, 3) ** 2, axis=1)))) if err.size else 0.0
        return q, worst

    def solve(self, tips: np.ndarray, active: np.ndarray, q_init: np.ndarray) -> np.ndarray:
        if not np.any(active):
            return self.kin.clamp(q_init)
        q, worst = self._descend(tips, active, q_init)
        if worst > self.tolerance:
            q2, worst2 = self._descend(tips, active, 0.5 * (self.kin.lower + self.kin.upper))
            if worst2 < worst:
                q = q2
        return q


@contextlib.contextmanager
def _private_tempdir() -> Iterator[str]:
    """dex-retargeting's build() leaves a temp dir behind; give it one that we delete."""
    with tempfile.TemporaryDirectory(prefix="humanprompt-dexretarget-") as tmp:
        old = tempfile.tempdir
        tempfile.tempdir = tmp
        try:
            yield tmp
        finally:
            tempfile.tempdir = old


# MediaPipe/MANO landmark index of each fingertip: dex-retargeting's configs and DexPilot's default
# link pairs index a 21-keypoint array this way.
_TIP_LANDMARK = {"thumb": 4, "index": 8, "middle": 12, "ring": 16, "little": 20}


class DexRetargeter:
    """dex-retargeting's vector / DexPilot / position optimizer for one hand, built once."""

    def __init__(
        self,
        kin: HandKinematics,
        hand_urdf: HandURDF,
        fingers: list[str],
        fingertip_links: list[str],
        kind: str,
        scaling: float = 1.0,
        low_pass_alpha: float | None = None,
    ):
        from dex_retargeting.retargeting_config import RetargetingConfig

        self.kin, self.kind, self.fingers, self.scaling = kin, kind, fingers, scaling
        tip_idx = [_TIP_LANDMARK[f] for f in fingers]
        cfg = dict(
            type=kind,
            urdf_path="",  # set below
            target_joint_names=list(kin.joint_names),
            low_pass_alpha=-1.0 if low_pass_alpha is None else low_pass_alpha,
            scaling_factor=scaling,
        )
        if kind == "vector":
            cfg.update(
                target_origin_link_names=[WRIST_FRAME] * len(fingers),
                target_task_link_names=list(fingertip_links),
                target_link_human_indices=np.array([[0] * len(fingers), tip_idx]),
            )
        elif kind == "position":
            cfg.update(target_link_names=list(fingertip_links), target_link_human_indices=np.array(tip_idx))
        elif kind == "dexpilot":
            cfg.update(wrist_link_name=WRIST_FRAME, finger_tip_link_names=list(fingertip_links))
            if tip_idx != [4 * (i + 1) for i in range(len(fingers))]:
                # DexPilot's default pairs assume fingers thumb, index, middle, ... without gaps.
                origin, task = _dexpilot_pairs(len(fingers))
                lm = [0, *tip_idx]
                cfg["target_link_human_indices"] = np.array([[lm[i] for i in origin], [lm[i] for i in task]])
        else:
            raise ValueError(f"unknown dex-retargeting type {kind!r} (vector, dexpilot, position)")

        with _private_tempdir() as tmp:
            path = Path(tmp) / "hand.urdf"
            path.write_text(_kinematic_only(hand_urdf.xml))
            cfg["urdf_path"] = str(path)
            self._seq = RetargetingConfig.from_dict(cfg).build()
        names = self._seq.optimizer.robot.dof_joint_names
        self._to_ours = np.array([names.index(n) for n in kin.joint_names])
        self._dof = len(names)

    def solve(self, tips: np.ndarray, active: np.ndarray, q_init: np.ndarray) -> np.ndarray:
        if not np.all(active):
            missing = [f for f, a in zip(self.fingers, active) if not a]
            raise ValueError(
                f"dex-retargeting ({self.kind}) needs a target for every finger of the hand; "
                f"masked: {missing}. Use retargeting type fingertip_ik for partial targets."
            )
        full = np.zeros(self._dof)
        full[self._to_ours] = self.kin.clamp(q_init)
        self._seq.set_qpos(full)
        # dex-retargeting works in the hand's root (base_link) frame; our targets are in the wrist frame.
        base_T_wrist = self.kin.base_T_wrist
        keypoints = np.zeros((21, 3))
        keypoints[0] = base_T_wrist[:3, 3]
        tips_base = tips @ base_T_wrist[:3, :3].T + base_T_wrist[:3, 3]
        for f, p in zip(self.fingers, tips_base):
            keypoints[_TIP_LANDMARK[f]] = p
        idx = self._seq.optimizer.target_link_human_indices
        if self.kind == "position":
            ref = keypoints[idx]
        else:
            ref = keypoints[idx[1]] - keypoints[idx[0]]
        q = self._seq.retarget(ref)
        return self.kin.clamp(np.asarray(q, dtype=np.float64)[self._to_ours])


def _dexpilot_pairs(num_fingers: int) -> tuple[list[int], list[int]]:
    from dex_retargeting.optimizer import DexPilotOptimizer

    return DexPilotOptimizer.generate_link_indices(num_fingers)


def _kinematic_only(xml: str) -> str:
    """Drop visual/collision elements: dex-retargeting only needs the kinematic tree."""
    root = ET.fromstring(xml)
    for link in root.findall("link"):
        for tag in ("visual", "collision"):
            for el in link.findall(tag):
                link.remove(el)
    return ET.tostring(root, encoding="unicode")
