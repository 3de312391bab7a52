"""The benchmark scene as a robot, ROS-free: a :class:`~humanprompt_ros.sim.env.SimEnv` driven by joint
position targets and a base-link pose target in real-time ticks, and its camera. The sim driver node is
its thin adapter (its docstring describes the timing and the lockstep mode).
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from humanprompt_ros.sim.env import SimEnv, camera_scene_option, mat_from_quat, quat_from_mat, rotate_toward, slerp
from humanprompt_ros.sim.scene import load_sim_config
from humanprompt_ros.sim.tasks import load_task, resolve_task


class SimRobot:
    """The ROS-free core: a :class:`SimEnv` driven by joint position targets and a base-link pose
    target in real-time ticks (see the module docstring)."""

    def __init__(self, image_size: int = 0, extra_steps: int = 20):
        self.cfg = load_sim_config()
        self.image_size = image_size or self.cfg.image_size
        self.extra_steps = extra_steps
        self.env = None
        self.task_file: Path | None = None
        self.seed = 0

    # -- episodes ------------------------------------------------------------------------------
    def reset(self, task: str, seed: int) -> None:

        task_file = resolve_task(task)
        if self.env is None or task_file != self.task_file:
            if self.env is not None:
                self.env.close()
            self.env = SimEnv(load_task(task_file), "robot", config=self.cfg, render=True, image_size=self.image_size)
            self.task_file = task_file
        env = self.env
        env.reset(int(seed))
        self.seed = int(seed)
        self.names = list(env.hand.joint_names)
        self.base_T_wrist = env.hand.base_T_wrist
        self.inv_base_T_wrist = np.linalg.inv(self.base_T_wrist)
        m, d = env.model, env.data
        self.mocap = int(m.body("wrist_target").mocapid[0])
        # hold the joint targets the reset left (the home pose's), exactly as the benchmark's first step
        # starts from them: the settled measured joints differ by a hair, and contacts amplify it
        self.q_target = env.joint_targets()
        base = np.eye(4)
        base[:3, 3] = d.mocap_pos[self.mocap]
        base[:3, :3] = mat_from_quat(d.mocap_quat[self.mocap])
        self.wrist = base @ self.base_T_wrist  # current (rate-limited) wrist pose the mocap holds
        self.wrist_goal = self.wrist.copy()
        self.started = False
        self.sim_time = 0.0  # seconds simulated since the episode started
        self.step = 0
        self.success = bool(env.success)
        self.done = False
        self._renderer = None
        self._mujoco = mujoco

    @property
    def horizon(self) -> int:
        return self.env.horizon

    @property
    def task_name(self) -> str:
        return self.env.task.name

    @property
    def skill(self) -> str:
        return self.env.task.skill

    def command_joints(self, q: np.ndarray) -> None:
        lo, hi = self.env.hand.joint_limits
        self.q_target = np.clip(np.asarray(q, float), lo, hi)
        self.started = True

    def command_base_pose(self, base_pose: np.ndarray) -> None:
        """Target pose of the hand's base link (what the command node sends the arm)."""
        wrist = np.asarray(base_pose, float) @ self.base_T_wrist
        lo, hi = (np.asarray(b, float) for b in self.cfg.wrist_bounds)
        wrist[:3, 3] = np.clip(wrist[:3, 3], lo, hi)
        self.wrist_goal = wrist
        self.started = True

    # -- physics -------------------------------------------------------------------------------
    def tick(self, dt: float) -> bool:
        """Advance ``dt`` seconds. Returns True when the task status changed."""
        env, cfg = self.env, self.cfg
        m, d = env.model, env.data
        n = max(1, int(round(dt / cfg.timestep)))
        dt = n * cfg.timestep
        # the arm: rate-limited like the benchmark's (per control period → per second)
        v_lin = cfg.max_wrist_step * cfg.control_hz
        v_rot = cfg.max_wrist_rot_step * cfg.control_hz
        p0 = self.wrist[:3, 3]
        delta = self.wrist_goal[:3, 3] - p0
        dist = float(np.linalg.norm(delta))
        p1 = p0 + delta * min(1.0, v_lin * dt / dist) if dist > 1e-12 else p0
        r1 = rotate_toward(self.wrist[:3, :3], self.wrist_goal[:3, :3], v_rot * dt)
        new = np.eye(4)
        new[:3, :3], new[:3, 3] = r1, p1
        b0, b1 = self.wrist @ self.inv_base_T_wrist, new @ self.inv_base_T_wrist
        q0, q1 = quat_from_mat(b0[:3, :3]), quat_from_mat(b1[:3, :3])
        d.ctrl[:] = self.q_target
        for k in range(n):
            s = (k + 1) / n
            d.mocap_pos[self.mocap] = (1 - s) * b0[:3, 3] + s * b1[:3, 3]
            d.mocap_quat[self.mocap] = slerp(q0, q1, s)
            self._mujoco.mj_step(m, d)
        self.wrist = new
        changed = False
        if self.started and not self.done:
            self.sim_time += dt
            period = 1.0 / cfg.control_hz
            while self.sim_time >= (self.step + 1) * period - 1e-9:
                self.step += 1
                env.update_success()
                success = bool(env.success)
                if success != self.success:
                    self.success, changed = success, True
                if self.step >= self.horizon + self.extra_steps:
                    self.done, changed = True, True
                    break
        return changed

    def step_once(self) -> bool:
        """Lockstep: one control period from the current commands, exactly as the benchmark steps
        (``SimEnv.step_joints``: joint targets interpolated over the substeps, the wrist rate-limited per
        period). Returns True when the task status changed."""
        if self.done:
            return False
        self.env.step_joints(self.q_target, self.wrist_goal)
        self.started = True
        self.sim_time += 1.0 / self.cfg.control_hz
        self.step += 1
        changed = False
        success = bool(self.env.success)
        if success != self.success:
            self.success, changed = success, True
        if self.step >= self.horizon + self.extra_steps:
            self.done, changed = True, True
        return changed

    def joints(self) -> np.ndarray:
        return self.env.joints()

    def base_pose(self) -> np.ndarray:
        return self.env.root_pose()

    def render(self) -> np.ndarray:
        return self.env.render()

    def status(self) -> dict:
        return {
            "task": self.task_name,
            "skill": self.skill,
            "seed": self.seed,
            "step": self.step,
            "horizon": self.horizon,
            "started": self.started,
            "success": bool(self.success),
            "done": bool(self.done),
        }

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


class SimCamera:
    """The benchmark's camera for one thread: copy the scene (under the caller's lock), then render."""

    def __init__(self, size: int):
        self.size = size
        self.option = camera_scene_option()
        self.renderer, self.model = None, None

    def update(self, env) -> None:
        if self.renderer is None or self.model is not env.model:
            self.close()
            self.model = env.model
            self.renderer = mujoco.Renderer(self.model, self.size, self.size)
        self.renderer.update_scene(env.data, camera="main", scene_option=self.option)

    def render(self) -> np.ndarray:
        return self.renderer.render()

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
