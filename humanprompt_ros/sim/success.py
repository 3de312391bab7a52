"""Whether an episode's task got done, and where it stands: the success predicate of each skill on the
physics state, read after every control step, and the task measures that show *how* an episode failed.

``env`` is the :class:`~humanprompt_ros.sim.env.SimEnv` being judged (duck-typed here: the environment
imports this module, not the other way round).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from humanprompt_ros.action import HandAction
from humanprompt_ros.sim.tasks import Task, TaskInstance


class SuccessTracker:
    """Success predicates on the physics state (read after every control step).

    ``final`` skills succeed when the predicate holds at the end of the episode; ``latched`` skills
    once it has held for ``hold`` consecutive control steps (a button springs back after a press).
    """

    FINAL = ("push_to_goal", "pull_to_goal", "pick_place", "open_drawer", "rotate", "knock_over")
    ROTATE_WINDOW = 25.0  # degrees beyond the threshold that still count
    KNOCK_CONE = 45.0  # degrees around the marked side within which the bottle must fall
    KNOCK_LAND = 0.06  # metres: its centre must come to rest this close to the disc

    def __init__(self, env: Any, task: Task | None = None, instance: TaskInstance | None = None):
        """``task``/``instance``: judge another task in this scene (default: the env's own)."""
        self.env = env
        self.instance = inst = instance or env.instance
        task = task or env.task
        self.skill = task.skill
        self.obj = inst.target
        self.threshold = task.threshold
        self.radius = task.config.goal.radius
        self.z0 = None
        self.angle0 = None
        self.latched = False
        self.run = 0
        self.hold = 3 if self.skill in ("pick_lift", "press_button") else 1
        self.current = False
        self.start: dict[str, float] | None = None  # the task quantities after the scene settled
        self.peak = 0.0  # latched skills (press, lift): the most of the quantity held so far
        self._levels: list[float] = []  # and the last ``hold`` levels of it
        self.hand_min = float("inf")  # closest fingertip to the object's surface so far (m)
        m = env.model
        body = m.body(self.obj.name).id
        inside = [b for b in range(m.nbody) if b == body or self._descends(m, b, body)]
        self._geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] in inside]
        self._half = [self._half_extents(m.geom_type[g], m.geom_size[g]) for g in self._geoms]

    @staticmethod
    def _half_extents(kind: int, size: np.ndarray) -> np.ndarray:
        """A geom's bounding-box half extents in its own frame."""
        if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
            return size[[0, 0, 0]]
        if kind == mujoco.mjtGeom.mjGEOM_CYLINDER:
            return size[[0, 0, 1]]
        if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
            return size[[0, 0, 1]] + [0, 0, size[0]]
        return size.copy()

    @staticmethod
    def _descends(m, b: int, ancestor: int) -> bool:
        while b > 0:
            b = m.body_parentid[b]
            if b == ancestor:
                return True
        return False

    def note_hand(self, hand: HandAction) -> None:
        """Track how close the hand came to the object: the closest fingertip (world positions from the unified
        state) to the bounding box of any of the object's geoms."""
        tips = hand.wrist_pos + hand.fingertips[hand.mask] @ hand.wrist_rot.T
        d = self.env.data
        for g, half in zip(self._geoms, self._half):
            local = (tips - d.geom_xpos[g]) @ d.geom_xmat[g].reshape(3, 3)  # into the geom's frame
            gap = np.linalg.norm(local - np.clip(local, -half, half), axis=1)
            if len(gap):
                self.hand_min = min(self.hand_min, float(gap.min()))

    def _quantities(self) -> dict[str, float]:
        """The raw task quantities of the current state (metres, degrees, fractions)."""
        env, o, skill = self.env, self.obj, self.skill
        q: dict[str, float] = {}
        if skill in ("push_to_goal", "pull_to_goal", "pick_place", "pick_lift", "knock_over"):
            p = env.body_pos(o.name)
            q.update(x=float(p[0]), y=float(p[1]), z=float(p[2]), tilt_deg=self._tilt(o.name))
            if self.instance.goal_xy is not None:
                q["goal_dist"] = float(np.linalg.norm(p[:2] - self.instance.goal_xy))
        elif skill == "press_button":
            q["press"] = float(-env.joint_qpos(f"{o.name}_press") / o.size[1])
        elif skill == "open_drawer":
            q["opening"] = env.joint_qpos(f"{o.name}_slide")
        elif skill == "rotate":
            q["angle_deg"] = float(np.degrees(env.joint_qpos(f"{o.name}_hinge")))
        return q

    def _level(self) -> float:
        """A latched skill's quantity now: the lift above the resting height (m) or the button's press fraction."""
        if self.skill == "pick_lift":
            return float(self.env.body_pos(self.obj.name)[2]) - self.start["z"]
        return float(-self.env.joint_qpos(f"{self.obj.name}_press") / self.obj.size[1])

    def _button_rest(self) -> float:
        """The press fraction at which the button's cap rests on its spring under gravity."""
        m, o = self.env.model, self.obj
        joint = m.joint(f"{o.name}_press")
        weight = m.body_subtreemass[m.body(o.name).id] * -m.opt.gravity[2]
        return float(weight / m.jnt_stiffness[joint.id] / o.size[1])

    def measures(self) -> dict[str, float]:
        """The final task distances of the episode so far, for seeing *how* it failed (rounded; cm and degrees):

        ``hand_min_cm`` (closest fingertip to the object's surface), ``moved_cm`` (object displacement since
        the start), and per skill: ``goal_cm`` (object centre to the goal disc; push, pull, pick_place,
        knock_over) with ``goal_start_cm``, ``lift_cm`` (height above its resting height), ``tilt_deg``,
        ``fall_dir_deg`` (knock_over: the fall direction's angle to the marked side), ``press`` (fraction of
        the button travel), ``opening_cm`` (drawer), ``angle_deg`` (lever, counter-clockwise), and
        ``progress``: the skill's quantity as a fraction of what success needs (1 = enough). For the latched
        skills (press_button, pick_lift) the quantity is the most that was held for the steps success needs; a
        button's progress counts from where its cap rests under its own weight.
        """
        now, start = self._quantities(), self.start or {}
        out: dict[str, float] = {"hand_min_cm": 100 * self.hand_min if np.isfinite(self.hand_min) else -1.0}
        if self.skill == "pick_lift":  # latched: what counts is the most that was held
            now["z"] = start["z"] + max(self._level(), self.peak)
        elif self.skill == "press_button":
            now["press"] = max(self._level(), self.peak)
        if "x" in now:
            moved = np.linalg.norm([now[k] - start.get(k, now[k]) for k in ("x", "y", "z")])
            out.update(
                moved_cm=100 * moved, lift_cm=100 * (now["z"] - start.get("z", now["z"])), tilt_deg=now["tilt_deg"]
            )
        if "goal_dist" in now:
            out.update(goal_cm=100 * now["goal_dist"], goal_start_cm=100 * start.get("goal_dist", now["goal_dist"]))
        skill = self.skill
        if skill in ("push_to_goal", "pull_to_goal", "pick_place"):
            travel = max(start.get("goal_dist", 0.0) - self.radius, 1e-6)
            out["progress"] = (start.get("goal_dist", 0.0) - now["goal_dist"]) / travel
        elif skill == "pick_lift":
            out["progress"] = out["lift_cm"] / (100 * self.threshold)
        elif skill == "press_button":  # from where the cap rests under its own weight, not from the top
            rest = self._button_rest()
            out.update(press=now["press"], progress=(now["press"] - rest) / (self.threshold - rest))
        elif skill == "open_drawer":
            out.update(opening_cm=100 * now["opening"], progress=now["opening"] / self.threshold)
        elif skill == "rotate":
            out.update(angle_deg=now["angle_deg"], progress=now["angle_deg"] / self.threshold)
        elif skill == "knock_over":
            axis = self.env.body_rot(self.obj.name)[:, 2]
            want = self.instance.goal_xy - self.obj.pos
            if np.linalg.norm(axis[:2]) > 1e-6:
                cos = float(axis[:2] @ want) / (np.linalg.norm(axis[:2]) * np.linalg.norm(want))
                out["fall_dir_deg"] = float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
            out["progress"] = now["tilt_deg"] / self.threshold
        return {k: round(float(v), 3) for k, v in out.items()}

    def _tilt(self, name: str) -> float:
        r = self.env.body_rot(name)
        return float(np.degrees(np.arccos(np.clip(r[2, 2], -1, 1))))

    def check(self) -> bool:
        env, o, skill = self.env, self.obj, self.skill
        if skill in ("push_to_goal", "pull_to_goal"):
            p = env.body_pos(o.name)
            return bool(np.linalg.norm(p[:2] - self.instance.goal_xy) <= self.radius and p[2] < self.z0 + 0.02)
        if skill == "pick_place":
            p = env.body_pos(o.name)
            return bool(
                np.linalg.norm(p[:2] - self.instance.goal_xy) <= self.radius
                and p[2] < self.z0 + 0.01
                and self._tilt(o.name) < 30
            )
        if skill == "pick_lift":
            return bool(env.body_pos(o.name)[2] >= self.z0 + self.threshold)
        if skill == "press_button":
            return bool(-env.joint_qpos(f"{o.name}_press") >= self.threshold * o.size[1])
        if skill == "open_drawer":
            return bool(env.joint_qpos(f"{o.name}_slide") >= self.threshold)
        if skill == "rotate":
            # counter-clockwise by at least the threshold, not spun past it by more than 60 degrees
            angle = np.degrees(env.joint_qpos(f"{o.name}_hinge"))
            return bool(self.threshold <= angle <= self.threshold + self.ROTATE_WINDOW)
        if skill == "knock_over":
            # fallen, toward the side marked by the disc (within 45 degrees): knocked over on purpose
            axis = env.body_rot(o.name)[:, 2]
            horiz = np.linalg.norm(axis[:2])
            want = self.instance.goal_xy - o.pos
            want = want / np.linalg.norm(want)
            landed = np.linalg.norm(env.body_pos(o.name)[:2] - self.instance.goal_xy)
            return bool(
                self._tilt(o.name) >= self.threshold
                and horiz > 1e-6
                and landed <= self.KNOCK_LAND
                and float(axis[:2] @ want) / horiz >= np.cos(np.radians(self.KNOCK_CONE))
            )
        raise ValueError(f"no success predicate for skill {skill!r}")

    def update(self) -> None:
        if self.start is None:
            self.start = self._quantities()
        if self.z0 is None and self.skill in ("push_to_goal", "pull_to_goal", "pick_place", "pick_lift"):
            self.z0 = float(self.env.body_pos(self.obj.name)[2])
        self.current = self.check()
        if self.skill in ("pick_lift", "press_button"):
            self._levels = (self._levels + [self._level()])[-self.hold :]
            if len(self._levels) == self.hold:  # held for the steps success needs
                self.peak = max(self.peak, min(self._levels))
        self.run = self.run + 1 if self.current else 0
        if self.run >= self.hold:
            self.latched = True

    @property
    def success(self) -> bool:
        if self.skill in self.FINAL:
            return self.current
        return self.latched
