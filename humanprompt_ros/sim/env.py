"""The HumanPrompt-Sim environment: one task, one embodiment, MuJoCo physics, a fixed RGB camera.

    env = SimEnv(load_task("config/tasks/push_box.yaml"), "robot")
    obs = env.reset(seed=3)                  # obs.frame uint8 (H, W, 3), obs.proprio (24,)
    for t in range(env.horizon):
        obs = env.step(action)               # action: unified (24,) array or HandAction
    env.success, env.close()

Actions are in the unified hand action space (:mod:`humanprompt_ros.action`), one per control step
(``control_hz``, 10 Hz by default). The wrist target moves the mocap body (rate-limited like an arm:
``max_wrist_step``), interpolated over the physics substeps. The fingers:

* ``robot``: the Allegro hand (``config/hands/allegro_right.yaml``). Fingertip targets are
  retargeted with :meth:`Hand.retarget` (fingertip IK, warm-started) and tracked by PD position
  actuators on the 16 joints; contacts are real.
* ``human``: the simulated human hand (:mod:`.human_hand`), posed by its own IK from the fingertip
  targets and driven by stiff position actuators; its 21 keypoints are read from sites.

``proprio`` is the measured hand state in the unified space (FK of the measured joints at the
measured wrist for the robot; :func:`keypoints_to_action` of the measured keypoints for the human),
so a policy sees the same kind of vector for both embodiments.

Success predicates and task measures are :mod:`humanprompt_ros.sim.success`; scene building, hands and
tasks live beside this module.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from humanprompt_ros.action import HandAction
from humanprompt_ros.hand.hand import load_hand
from humanprompt_ros.hand.keypoints import keypoints_to_action
from humanprompt_ros.paths import config_path
from humanprompt_ros.sim.experts import OPEN
from humanprompt_ros.sim.human_hand import load_human_hand
from humanprompt_ros.sim.scene import COLLISION_GROUP, SimConfig, allegro_mjcf, build_scene, load_sim_config
from humanprompt_ros.sim.success import SuccessTracker
from humanprompt_ros.sim.tasks import Task, TaskInstance, load_task, sample_instance, twin_tasks

EMBODIMENTS = ("robot", "human")
# SimEnv.scene_state: the privileged state a policy that cheats would see (saved per step as state.npy)
STATE_OBJECTS = 3
ARTICULATIONS = {"drawer": "_slide", "button": "_press", "lever": "_hinge"}
STATE_LAYOUT = (
    f"{STATE_OBJECTS} objects (the task's target first, then the others in scene order, zero-padded), each: "
    "x, y, z (m), cos yaw, sin yaw, articulation (drawer slide m, button press m, lever hinge rad; else 0), "
    "present (1/0); then the goal x, y (m) and has_goal (1/0)"
)


@dataclass
class Observation:
    frame: np.ndarray | None  # uint8 (H, W, 3), None when rendering is off
    proprio: np.ndarray  # (24,) measured unified hand state
    joints: np.ndarray  # robot: (16,) joint positions; human: (20,) joint angles
    keypoints: np.ndarray | None  # human: (21, 3) world keypoints; robot: None
    t: int = 0


def quat_from_mat(rot: np.ndarray) -> np.ndarray:
    """(3, 3) rotation → unit quaternion (w, x, y, z)."""
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(rot, dtype=np.float64).reshape(9))
    return q


def mat_from_quat(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, float))
    return m.reshape(3, 3)


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    if np.dot(q0, q1) < 0:
        q1 = -q1
    q = (1 - t) * q0 + t * q1
    return q / np.linalg.norm(q)


def _rot_angle(r: np.ndarray) -> float:
    return float(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0)))


def rotate_toward(r_from: np.ndarray, r_to: np.ndarray, max_angle: float) -> np.ndarray:
    """``r_from`` turned toward ``r_to`` by at most ``max_angle`` radians (a rate-limited wrist)."""
    rel = r_from.T @ r_to
    ang = _rot_angle(rel)
    if ang <= max_angle:
        return r_to
    q = quat_from_mat(rel)
    q = slerp(np.array([1.0, 0, 0, 0]), q, max_angle / ang)
    return r_from @ mat_from_quat(q)


_ROBOT_HAND = {}


def robot_hand(path: str | Path | None = None):
    """The Allegro hand (cached per process: building the retargeters is not free)."""
    key = str(path or config_path("hands", "allegro_right.yaml"))
    if key not in _ROBOT_HAND:
        _ROBOT_HAND[key] = load_hand(key)
    return _ROBOT_HAND[key]


def home_action(cfg: SimConfig, mask: np.ndarray | None = None) -> HandAction:
    """The pose every episode starts from: palm down, fingers toward +x, hand open."""
    return HandAction(
        np.asarray(cfg.home_wrist, float), np.eye(3), OPEN.copy(), np.ones(5, bool) if mask is None else mask
    )


def camera_scene_option() -> "mujoco.MjvOption":
    """What the benchmark's camera shows: no collision geometry, no marker sites (group 3)."""
    option = mujoco.MjvOption()
    option.geomgroup[COLLISION_GROUP] = 0
    option.sitegroup[3] = 0
    return option


class SimEnv:
    """One task with one embodiment (see the module docstring)."""

    def __init__(
        self,
        task: Task,
        embodiment: str = "robot",
        config: SimConfig | None = None,
        render: bool = True,
        image_size: int | None = None,
    ):
        if embodiment not in EMBODIMENTS:
            raise ValueError(f"unknown embodiment {embodiment!r} (valid: {', '.join(EMBODIMENTS)})")
        self.task = task
        self.embodiment = embodiment
        self.cfg = config or load_sim_config()
        self.render_enabled = render
        self.image_size = image_size or self.cfg.image_size
        if embodiment == "robot":
            self.hand = robot_hand()
            self.mask = self.hand.mask.copy()
            self._base_T_wrist = self.hand.base_T_wrist
            assets, body, acts = allegro_mjcf(
                str(self.hand.urdf_path),
                self.cfg.robot_kp,
                self.cfg.robot_kv,
                self.cfg.robot_force,
                tuple(self.hand.joint_names),
            )
            self._hand_xml = (assets, body, acts, "palm_link")
            self.hand_name = self.hand.name
        else:
            self.hand = load_human_hand()
            self.mask = np.ones(5, bool)
            self._base_T_wrist = np.eye(4)
            body, acts = self.hand.mjcf("h_")
            self._hand_xml = ("", body, acts, "h_wrist")
            self.hand_name = self.hand.name
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._renderers: dict[int, mujoco.Renderer] = {}
        self.instance: TaskInstance | None = None

    @property
    def horizon(self) -> int:
        return self.task.horizon

    @functools.cached_property
    def twin(self) -> Task | None:
        """The task sharing this task's scenes under ``twin_scenes: shared`` (None: own layouts, or no twin)."""
        if self.cfg.twin_scenes != "shared":
            return None
        folder = Path(self.task.path).parent
        name = twin_tasks(sorted(folder.glob("*.yaml"))).get(self.task.name)
        return None if name is None else load_task(folder / f"{name}.yaml")

    # -- lifecycle -------------------------------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        self.close()
        self.seed = int(seed)
        self.instance = sample_instance(self.task, self.seed, twin=self.twin)
        assets, body, acts, root = self._hand_xml
        xml = build_scene(
            self.instance, self.cfg, assets, body, acts, root, max(self.cfg.video_size, self.image_size, 640)
        )
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        m, d = self.model, self.data
        self._mocap = m.body("wrist_target").mocapid[0]
        root_jnt = m.joint("robot_root" if self.embodiment == "robot" else "h_root")
        self._root_qadr = root_jnt.qposadr[0]
        if self.embodiment == "robot":
            self._jnt_qadr = np.array([m.joint(n).qposadr[0] for n in self.hand.joint_names])
        else:
            self._jnt_qadr = np.array([m.joint("h_" + n).qposadr[0] for n in self.hand.joint_names])
            self._kp_sites = np.array([m.site(f"h_kp{i}").id for i in range(21)])
            self.hand.reset()
        if self.embodiment == "robot":
            self.hand.reset()
        # start at the home pose, at rest
        home = home_action(self.cfg, self.mask)
        self._wrist = home.wrist_pose
        q0 = self._finger_targets(home, reset=True)
        root_pose = self._wrist @ np.linalg.inv(self._base_T_wrist)
        d.mocap_pos[self._mocap] = root_pose[:3, 3]
        d.mocap_quat[self._mocap] = quat_from_mat(root_pose[:3, :3])
        d.qpos[self._root_qadr : self._root_qadr + 3] = root_pose[:3, 3]
        d.qpos[self._root_qadr + 3 : self._root_qadr + 7] = d.mocap_quat[self._mocap]
        d.qpos[self._jnt_qadr] = q0
        d.ctrl[:] = q0
        mujoco.mj_forward(m, d)
        self._tracker = SuccessTracker(self)
        # on a shared twin scene, also whether the twin's task got done (the prompt was not followed)
        self._twin_tracker = (
            None
            if self.twin is None
            else SuccessTracker(self, self.twin, sample_instance(self.twin, self.seed, twin=self.task))
        )
        self.t = 0
        self._last_q_target = q0
        # settle objects for a moment
        for _ in range(20):
            mujoco.mj_step(m, d)
        self._update_trackers()
        return self.observe()

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers = {}

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- control ---------------------------------------------------------------------------------
    def _finger_targets(self, action: HandAction, reset: bool = False) -> np.ndarray:
        if self.embodiment == "robot":
            a = HandAction(action.wrist_pos, action.wrist_rot, action.fingertips, self.mask & action.mask)
            q_init = None if reset else self._last_q_target
            return self.hand.retarget(a, q_init=q_init if q_init is not None else self.hand.neutral())
        return self.hand.ik(action.fingertips, action.mask)

    def step(self, action) -> Observation:
        """Apply one unified action (HandAction or (24,) array) for one control period."""
        if not isinstance(action, HandAction):
            action = HandAction.from_array(np.asarray(action, float), self.mask)
        else:
            action = HandAction(action.wrist_pos, action.wrist_rot, action.fingertips, action.mask & self.mask)
        q_target = self._finger_targets(action)
        return self._apply(action.wrist_pose, q_target)

    def step_joints(self, q: np.ndarray, wrist_pose: np.ndarray | None = None) -> Observation:
        """One control period from joint position targets (a ROS joint command: robot (16,) in
        ``hand.joint_names`` order, human (20,)) and an optional (4, 4) unified wrist target (the
        arm's; None keeps the current one). Targets are clamped to the joint limits."""
        q = np.asarray(q, float).reshape(-1)
        names = self.hand.joint_names
        if q.shape != (len(names),):
            raise ValueError(f"step_joints: expected {len(names)} joint positions, got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError("step_joints: joint targets contain NaN or inf")
        lo, hi = self.hand.joint_limits if self.embodiment == "robot" else (self.hand.lower, self.hand.upper)
        wrist = self._wrist if wrist_pose is None else np.asarray(wrist_pose, float)
        if wrist.shape != (4, 4) or not np.all(np.isfinite(wrist)):
            raise ValueError("step_joints: the wrist target must be a finite (4, 4) pose")
        return self._apply(wrist, np.clip(q, lo, hi))

    def _apply(self, wrist_target: np.ndarray, q_target: np.ndarray) -> Observation:
        m, d, cfg = self.model, self.data, self.cfg
        # wrist: clamp to the workspace and rate-limit (an arm cannot teleport)
        lo, hi = np.asarray(cfg.wrist_bounds[0]), np.asarray(cfg.wrist_bounds[1])
        target_pos = np.clip(wrist_target[:3, 3], lo, hi)
        delta = target_pos - self._wrist[:3, 3]
        dist = np.linalg.norm(delta)
        if dist > cfg.max_wrist_step:
            target_pos = self._wrist[:3, 3] + delta * (cfg.max_wrist_step / dist)
        target_rot = rotate_toward(self._wrist[:3, :3], wrist_target[:3, :3], cfg.max_wrist_rot_step)
        new_wrist = np.eye(4)
        new_wrist[:3, :3], new_wrist[:3, 3] = target_rot, target_pos
        self._last_q_target = q_target
        inv = np.linalg.inv(self._base_T_wrist)
        p0 = self._wrist @ inv
        p1 = new_wrist @ inv
        q0, q1 = quat_from_mat(p0[:3, :3]), quat_from_mat(p1[:3, :3])
        ctrl0 = d.ctrl.copy()
        n = cfg.substeps
        for k in range(n):
            s = (k + 1) / n
            d.mocap_pos[self._mocap] = (1 - s) * p0[:3, 3] + s * p1[:3, 3]
            d.mocap_quat[self._mocap] = slerp(q0, q1, s)
            d.ctrl[:] = (1 - s) * ctrl0 + s * q_target
            mujoco.mj_step(m, d)
        self._wrist = new_wrist
        self.t += 1
        self._update_trackers()
        return self.observe()

    def step_keypoints(self, keypoints: np.ndarray) -> Observation:
        """Drive the hand from 21 human keypoints (world frame, MediaPipe order), e.g. a hand tracked
        in a real video: the wrist frame is fitted to the palm and the fingertips are matched."""
        return self.step(keypoints_to_action(keypoints))

    # -- state -----------------------------------------------------------------------------------
    def root_pose(self) -> np.ndarray:
        d = self.data
        pose = np.eye(4)
        pose[:3, 3] = d.qpos[self._root_qadr : self._root_qadr + 3]
        pose[:3, :3] = mat_from_quat(d.qpos[self._root_qadr + 3 : self._root_qadr + 7])
        return pose

    def joints(self) -> np.ndarray:
        return self.data.qpos[self._jnt_qadr].copy()

    def joint_targets(self) -> np.ndarray:
        """The joint position targets the hand's actuators hold (the last step's, or the home pose's)."""
        return np.asarray(self._last_q_target, float).copy()

    def keypoints(self) -> np.ndarray:
        """Human: the 21 keypoints in the world (MediaPipe order)."""
        return self.data.site_xpos[self._kp_sites].copy()

    def hand_state(self) -> HandAction:
        if self.embodiment == "robot":
            return self.hand.fk(self.joints(), base_pose=self.root_pose())
        return keypoints_to_action(self.keypoints())

    def observe(self) -> Observation:
        frame = self.render() if self.render_enabled else None
        kp = self.keypoints() if self.embodiment == "human" else None
        hand = self.hand_state()
        self._tracker.note_hand(hand)
        return Observation(frame, hand.to_array(), self.joints(), kp, self.t)

    def scene_state(self) -> np.ndarray:
        """The privileged scene state now, (STATE_OBJECTS * 7 + 3,) float32, laid out as :data:`STATE_LAYOUT`."""
        inst = self.instance
        objects = [inst.target] + [o for o in inst.objects if o is not inst.target]
        out = np.zeros(STATE_OBJECTS * 7 + 3, np.float32)
        for k, o in enumerate(objects[:STATE_OBJECTS]):
            rot = self.body_rot(o.name)
            yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
            joint = ARTICULATIONS.get(o.kind)
            art = self.joint_qpos(o.name + joint) if joint else 0.0
            out[7 * k : 7 * k + 7] = [*self.body_pos(o.name), np.cos(yaw), np.sin(yaw), art, 1.0]
        if inst.goal_xy is not None:
            out[-3:] = [inst.goal_xy[0], inst.goal_xy[1], 1.0]
        return out

    def measures(self) -> dict[str, float]:
        """Where the task stands now: :meth:`SuccessTracker.measures` of this episode's task."""
        return self._tracker.measures()

    @property
    def success(self) -> bool:
        return self._tracker.success

    @property
    def twin_success(self) -> bool | None:
        """On a shared twin scene, whether the twin task's predicate holds (its success, judged like this
        task's): a policy that did the other task of the pair. None without a twin scene."""
        return None if self._twin_tracker is None else self._twin_tracker.success

    def _update_trackers(self) -> None:
        self._tracker.update()
        if self._twin_tracker is not None:
            self._twin_tracker.update()

    def update_success(self) -> None:
        """Evaluate the success predicate once more (for drivers that step physics themselves)."""
        self._update_trackers()

    def success_now(self) -> bool:
        return self._tracker.check()

    # -- rendering -------------------------------------------------------------------------------
    def render(self, size: int | None = None) -> np.ndarray:
        size = int(size or self.image_size)
        r = self._renderers.get(size)
        if r is None:
            r = self._renderers[size] = mujoco.Renderer(self.model, size, size)
            self._scene_option = camera_scene_option()
        r.update_scene(self.data, camera="main", scene_option=self._scene_option)
        return r.render().copy()

    # -- privileged state for experts and predicates -----------------------------------------------
    def body_pos(self, name: str) -> np.ndarray:
        return self.data.body(name).xpos.copy()

    def body_rot(self, name: str) -> np.ndarray:
        return self.data.body(name).xmat.reshape(3, 3).copy()

    def joint_qpos(self, name: str) -> float:
        return float(self.data.joint(name).qpos[0])
