"""A dexterous hand described by data: its YAML config, kinematics and retargeting.

Public API::

    from humanprompt_ros.hand import load_hand
    hand = load_hand("config/hands/allegro_right.yaml")
    hand.joint_names, hand.joint_limits          # (lower, upper) arrays, radians / metres
    action = hand.fk(q)                          # HandAction in the unified space
    q = hand.retarget(action, q_init=None)       # joint positions within limits

A hand YAML (every key below; see ``config/hands/allegro_right.yaml``)::

    name: allegro_right
    urdf: package://example-robot-data/robots/allegro_hand_description/urdf/allegro_right_hand.urdf
    base_link: palm_link            # the hand is the URDF subtree below this link
    fingertip_links: {thumb: link_15.0_tip, index: link_3.0_tip, middle: link_7.0_tip, ring: link_11.0_tip}
    wrist_offset: {xyz: [0, 0, -0.095], rpy: [...]}   # base_link → unified wrist frame
    retargeting: {type: fingertip_ik, scaling: 1.0}
    mimic:                          # optional: fix the URDF's mimic tags without editing the vendor file
      joint_3: {joint: joint_2, multiplier: 1.0, offset: 0.0}   # joint_3 = 1.0 * joint_2 + 0.0 (override or add)
      joint_7: null                 # drop joint_7's mimic tag: it becomes actuated

``urdf`` is absolute, relative to the YAML file, or ``package://NAME/...``. Fingers not listed in
``fingertip_links`` are masked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from humanprompt_ros.action import FINGERS, HandAction
from humanprompt_ros.config.loader import ConfigError, load_config
from humanprompt_ros.hand.kinematics import HandKinematics
from humanprompt_ros.hand.retargeting import DexRetargeter, FingertipIK, Retargeter
from humanprompt_ros.hand.urdf import Mimic, MimicOverrideError, extract_hand, resolve_path

RETARGETING_TYPES = ("fingertip_ik", "vector", "dexpilot", "position")


@dataclass
class RetargetingConfig:
    """How :meth:`Hand.retarget` turns a unified action into joint positions."""

    type: str = "fingertip_ik"  # fingertip_ik | vector | dexpilot | position
    scaling: float = 1.0  # dex-retargeting: human fingertip vectors are scaled by this (hand size ratio)
    low_pass_alpha: float | None = None  # dex-retargeting's low-pass filter on q; None = off
    ik_damping: float = 1e-4
    ik_max_iters: int = 100
    ik_tolerance: float = 1e-5  # metres, worst fingertip

    def validate(self) -> None:
        if self.type not in RETARGETING_TYPES:
            raise ValueError(f"type: unknown retargeting type {self.type!r} (valid: {', '.join(RETARGETING_TYPES)})")
        if self.scaling <= 0:
            raise ValueError(f"scaling: must be > 0, got {self.scaling}")
        if self.ik_max_iters < 1:
            raise ValueError(f"ik_max_iters: must be >= 1, got {self.ik_max_iters}")


@dataclass
class WristOffset:
    """Pose of the unified wrist frame in ``base_link``: translation (m) and roll-pitch-yaw (rad)."""

    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class MimicOverride:
    """A ``mimic`` entry of the hand YAML: the joint follows ``q[joint] * multiplier + offset``."""

    joint: str  # the joint it follows (a moving joint of the hand)
    multiplier: float = 1.0
    offset: float = 0.0

    def validate(self) -> None:
        if not (math.isfinite(self.multiplier) and math.isfinite(self.offset)):
            raise ValueError(f"multiplier and offset must be finite, got {self.multiplier}, {self.offset}")


@dataclass
class HandConfig:
    """One hand, as written in ``config/hands/*.yaml``."""

    name: str
    urdf: str
    base_link: str
    fingertip_links: dict[str, str]
    wrist_offset: WristOffset = field(default_factory=WristOffset)
    retargeting: RetargetingConfig = field(default_factory=RetargetingConfig)
    side: Literal["right", "left"] = "right"
    # Per joint: the mimic relation replacing (or adding to) the URDF's tag, or None to drop the tag.
    mimic: dict[str, MimicOverride | None] = field(default_factory=dict)

    def validate(self) -> None:
        unknown = [f for f in self.fingertip_links if f not in FINGERS]
        if unknown:
            raise ValueError(f"fingertip_links: unknown finger {unknown[0]!r} (valid: {', '.join(FINGERS)})")
        if not self.fingertip_links:
            raise ValueError("fingertip_links: a hand needs at least one fingertip")

    def mimic_overrides(self) -> dict[str, Mimic | None]:
        """The ``mimic`` section as :func:`~humanprompt_ros.hand.urdf.extract_hand` takes it."""
        return {n: None if o is None else Mimic(n, o.joint, o.multiplier, o.offset) for n, o in self.mimic.items()}


class Hand:
    """A hand: URDF subtree kinematics on pinocchio plus its retargeters (built once, reused)."""

    def __init__(self, config: HandConfig, config_dir: Path | None = None, source: str = ""):
        self.config = config
        self.name = config.name
        self.source = source
        try:
            self.urdf_path = resolve_path(config.urdf, config_dir)
        except ValueError as exc:
            raise ConfigError(source, "urdf", f"URDF not found: {exc}") from None
        self.fingers: list[str] = [f for f in FINGERS if f in config.fingertip_links]
        self.fingertip_links = [config.fingertip_links[f] for f in self.fingers]
        self.mask = np.array([f in config.fingertip_links for f in FINGERS])
        self._finger_rows = np.array([FINGERS.index(f) for f in self.fingers])
        try:
            self.urdf = extract_hand(
                self.urdf_path,
                config.base_link,
                self.fingertip_links,
                config.wrist_offset.xyz,
                config.wrist_offset.rpy,
                config.mimic_overrides(),
            )
            self.kin = HandKinematics(self.urdf, self.fingertip_links)
        except MimicOverrideError as exc:
            raise ConfigError(source, exc.key, exc.problem) from None
        except ValueError as exc:
            raise ValueError(f"hand {config.name!r} ({source or 'config'}): {exc}") from None
        self._retargeters: dict[str, Retargeter] = {}
        self._last_q: np.ndarray | None = None

    # -- description ---------------------------------------------------------------------------
    @property
    def joint_names(self) -> list[str]:
        """Actuated joints (mimic joints excluded), in URDF order: the order of every ``q``."""
        return list(self.kin.joint_names)

    @property
    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (n,), from the URDF."""
        return self.kin.lower.copy(), self.kin.upper.copy()

    @property
    def num_joints(self) -> int:
        return self.kin.n

    @property
    def base_T_wrist(self) -> np.ndarray:
        """(4, 4) pose of the unified wrist frame in ``base_link``."""
        return self.kin.base_T_wrist.copy()

    def neutral(self) -> np.ndarray:
        """Middle of the joint ranges, (n,)."""
        return 0.5 * (self.kin.lower + self.kin.upper)

    # -- kinematics ----------------------------------------------------------------------------
    def fk(self, q: np.ndarray, base_pose: np.ndarray | None = None) -> HandAction:
        """Joint positions (n,) → unified action.

        ``base_pose`` (4, 4) is ``base_link``'s pose in the world (from the arm or the mocap
        wrist); identity when omitted, so the wrist pose is then the wrist offset itself.
        """
        q = self.kin.check_q(q)
        tips = np.zeros((len(FINGERS), 3))
        tips[self._finger_rows] = self.kin.tips(q)
        world_T_base = np.eye(4) if base_pose is None else np.asarray(base_pose, dtype=np.float64)
        wrist = world_T_base @ self.kin.base_T_wrist
        return HandAction(wrist[:3, 3], wrist[:3, :3], tips, self.mask.copy())

    def fk_batch(self, qs: np.ndarray) -> np.ndarray:
        """(T, n) joint positions → (T, 24) flat unified actions (base at identity)."""
        qs = np.asarray(qs, dtype=np.float64)
        if qs.ndim != 2:
            raise ValueError(f"fk_batch expects (T, {self.num_joints}), got {qs.shape}")
        return np.stack([self.fk(q).to_array() for q in qs]) if len(qs) else np.zeros((0, 24))

    def base_pose_for(self, action: HandAction) -> np.ndarray:
        """(4, 4) world pose of ``base_link`` that puts the wrist where ``action`` says (for the arm)."""
        return action.wrist_pose @ np.linalg.inv(self.kin.base_T_wrist)

    # -- retargeting ---------------------------------------------------------------------------
    def retargeter(self, method: str | None = None) -> Retargeter:
        """The retargeter for ``method`` (default: the config's type), built on first use."""
        method = method or self.config.retargeting.type
        if method not in RETARGETING_TYPES:
            raise ValueError(f"unknown retargeting type {method!r} (valid: {', '.join(RETARGETING_TYPES)})")
        if method not in self._retargeters:
            rc = self.config.retargeting
            if method == "fingertip_ik":
                self._retargeters[method] = FingertipIK(self.kin, rc.ik_damping, rc.ik_max_iters, rc.ik_tolerance)
            else:
                self._retargeters[method] = DexRetargeter(
                    self.kin, self.urdf, self.fingers, self.fingertip_links, method, rc.scaling, rc.low_pass_alpha
                )
        return self._retargeters[method]

    def retarget(
        self, action: HandAction | np.ndarray, q_init: np.ndarray | None = None, method: str | None = None
    ) -> np.ndarray:
        """Unified action (or its flat (24,) array) → joint positions (n,) within the URDF limits.

        Only the fingers present in both the hand and ``action.mask`` are matched; the wrist pose
        is the arm's business (see :meth:`base_pose_for`). ``q_init`` warm-starts the solver;
        when omitted, the previous solution is used (:meth:`reset` forgets it). NaN/inf targets
        raise ``ValueError``: they never produce NaN joints.
        """
        if not isinstance(action, HandAction):
            action = HandAction.from_array(action)
        tips = np.asarray(action.fingertips, dtype=np.float64)
        if not np.all(np.isfinite(tips)) or not np.all(np.isfinite(action.wrist_pos)):
            raise ValueError("retarget: the target contains NaN or inf")
        if q_init is None:
            q_init = self._last_q if self._last_q is not None else self.neutral()
        q_init = self.kin.check_q(q_init)
        active = np.asarray(action.mask, bool)[self._finger_rows]
        q = self.retargeter(method).solve(tips[self._finger_rows], active, q_init)
        if not np.all(np.isfinite(q)):  # never hand NaN to a robot
            raise ValueError("retarget: the solver returned a non-finite solution")
        self._last_q = q
        return q

    def retarget_batch(
        self,
        actions: np.ndarray | list[HandAction],
        q_init: np.ndarray | None = None,
        method: str | None = None,
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """A trajectory (T, 24) or list of actions → (T, n), each step warm-started from the last."""
        if isinstance(actions, np.ndarray):
            actions = np.asarray(actions, dtype=np.float64)
            if actions.ndim != 2:
                raise ValueError(f"retarget_batch expects (T, 24), got {actions.shape}")
            actions = [HandAction.from_array(a, mask) for a in actions]
        out = np.zeros((len(actions), self.num_joints))
        q = self.neutral() if q_init is None else q_init
        for t, a in enumerate(actions):
            q = out[t] = self.retarget(a, q, method)
        return out

    def reset(self) -> None:
        """Forget the warm start of :meth:`retarget`."""
        self._last_q = None


def load_hand(path: str | Path) -> Hand:
    """Load a hand YAML (see the module docstring). Bad input raises ``ValueError`` naming the problem."""
    path = Path(path)
    config = load_config(HandConfig, path)
    return Hand(config, path.parent.resolve(), str(path))
