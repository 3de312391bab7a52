"""Policies that learn nothing: the baselines and the experts.

* ``replay``: the prompt episode's own unified actions, open loop, chunk by chunk (the classic
  "retarget the human demonstration" baseline: the executor retargets them onto the robot). A
  prompt without actions (a bare video, or an episode with only its video) has its hand pose
  extracted (:func:`humanprompt_ros.hand.video_pose.extract_episode`, MediaPipe) and moved from the
  camera frame into the world frame with ``camera_pose`` (the camera's extrinsic calibration); without
  ``camera_pose`` it is refused with a ``ValueError`` that says so.
* ``noop``: holds the current hand pose (does nothing). ``random``: a random walk (``seed=``).
* ``scripted``: the benchmark's expert (needs ``env=``, a :class:`humanprompt_ros.sim.env.SimEnv`, for
  its privileged state; tests and data generation only). Inside the ROS graph, where there is no
  env, :class:`ScriptedFromPrompt` plans from the prompt episode's task and seed instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from humanprompt_ros.action import ACTION_DIM, HandAction, pose_from_xyz_rpy, transform_actions
from humanprompt_ros.data import load_episode
from humanprompt_ros.policies.base import as_prompt, register_policy
from humanprompt_ros.sim.env import SimEnv, home_action
from humanprompt_ros.sim.experts import OPEN, PADDLE, expert_actions, pinch
from humanprompt_ros.sim.runner import ScriptedPolicy
from humanprompt_ros.sim.tasks import load_task, resolve_task
from humanprompt_ros.video import time_indices


class OpenLoopPlan:
    """Executes a fixed action plan (T, 24) open loop, ``chunk`` actions per :meth:`act` call; after
    the last one it holds the final action. Subclasses fill ``plan`` in :meth:`set_prompt`."""

    needs_prompt_video = False
    name = "open-loop"

    def __init__(self, chunk: int = 8, **_: Any):
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.chunk = chunk
        self.plan: np.ndarray | None = None
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def act(self, frame: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        if self.plan is None:
            raise ValueError(f"the {self.name} policy has no prompt: call set_prompt() first")
        idx = np.minimum(np.arange(self.t, self.t + self.chunk), len(self.plan) - 1)
        self.t += self.chunk
        return self.plan[idx].copy()


def camera_pose_matrix(camera_pose: Any) -> np.ndarray | None:
    """The replay policy's ``camera_pose`` → (4, 4) world ← camera, or None when unset (None or empty).

    ``[x, y, z, roll, pitch, yaw]`` (m, rad; :func:`humanprompt_ros.action.pose_from_xyz_rpy`) or a (4, 4) matrix.
    """
    if camera_pose is None:
        return None
    arr = np.asarray(camera_pose, dtype=np.float64)
    if arr.size == 0:
        return None
    if arr.shape == (4, 4):
        return arr.copy()
    try:
        return pose_from_xyz_rpy(arr)
    except ValueError as exc:
        raise ValueError(f"camera_pose: {exc}") from None


class ReplayPolicy(OpenLoopPlan):
    """Replays the prompt's unified actions open loop (see :class:`OpenLoopPlan`).

    A prompt with actions (a simulated or extracted episode) is replayed as it is; ``camera_pose`` is not used.
    A prompt that is only a video (a video file, or an episode directory without ``actions.npy``) needs
    ``camera_pose``, the pose of the camera that filmed it in the robot's world frame (the extrinsic
    calibration: ``[x, y, z, roll, pitch, yaw]``, metres and radians, URDF convention, or a (4, 4) matrix):
    the hand pose is extracted from the video (MediaPipe, the ``human`` extra; ``intrinsics``: a camera
    intrinsics YAML, else a 60 degree field of view) in the camera frame and moved into the world frame.
    """

    name = "replay"

    def __init__(
        self,
        chunk: int = 8,
        camera_pose: Any = None,
        intrinsics: str | Path | None = None,
        rate: float = 10.0,
        **kw: Any,
    ):
        super().__init__(chunk, **kw)
        self.camera_pose = camera_pose_matrix(camera_pose)
        self.intrinsics = intrinsics or None
        self.rate = float(rate)  # actions per second the executor plays (the policy node's / sim's control rate)

    @property
    def actions(self) -> np.ndarray | None:
        """The prompt's (T, 24) unified actions being replayed (the plan), or None before a prompt."""
        return self.plan

    def set_prompt(self, prompt: Any) -> None:
        ep = as_prompt(prompt)
        if ep.actions is None and ep.video_path is not None:
            actions = self.video_actions(ep.video_path, str(ep.meta.get("handedness") or "right"))
        else:
            actions = np.asarray(ep.require_actions("the replay policy"), np.float64)
        if actions.ndim != 2 or actions.shape[1] != ACTION_DIM or len(actions) == 0:
            raise ValueError(
                f"the replay policy: prompt actions must be (T, {ACTION_DIM}) with T > 0, got {actions.shape}"
            )
        if not np.all(np.isfinite(actions)):
            raise ValueError("the replay policy: the prompt's actions contain NaN or inf")
        self.plan = actions
        self.t = 0

    def video_actions(self, video: Path, handedness: str = "right") -> np.ndarray:
        """The hand pose of a video as (T, 24) unified actions in the world frame (``camera_pose``).

        ``ValueError`` without ``camera_pose``, without mediapipe, or when the extraction fails.
        """
        if self.camera_pose is None:
            raise ValueError(
                f"the replay policy needs the demonstration's unified actions, but the prompt {video} is a video "
                "without them: set camera_pose, the camera's pose in the world frame (its extrinsic calibration: "
                "[x, y, z, roll, pitch, yaw], m, rad), to replay the hand pose extracted from it"
            )
        from humanprompt_ros.hand.video_pose import MediaPipeMissing, track_hand

        try:
            track = track_hand(video, handedness=handedness, intrinsics=self.intrinsics)
        except MediaPipeMissing as exc:
            raise ValueError(f"the replay policy: the prompt {video} is a video without actions, and {exc}") from None
        # one action per control period: the video's frames at its own rate, resampled to the executor's
        camera_actions = track.actions[time_indices(len(track.actions), track.fps, self.rate)]
        return transform_actions(camera_actions, self.camera_pose)


class NoOpPolicy:
    """Does nothing: commands the current measured hand pose."""

    needs_prompt_video = False

    def __init__(self, **_: Any):
        pass

    def set_prompt(self, prompt: Any) -> None:
        pass

    def reset(self) -> None:
        pass

    def act(self, frame: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        return np.asarray(proprio, np.float64).reshape(1, ACTION_DIM).copy()


class RandomPolicy:
    """A random walk of the wrist over the table and random finger poses (seeded)."""

    needs_prompt_video = False
    LOW = np.array([-0.3, -0.22, 0.03])
    HIGH = np.array([0.25, 0.22, 0.3])

    def __init__(self, seed: int = 0, step: float = 0.04, **_: Any):
        self.seed = seed
        self.step = step
        self.rng = np.random.default_rng(seed)

    def set_prompt(self, prompt: Any) -> None:
        pass

    def reset(self) -> None:
        self.rng = np.random.default_rng([self.seed, int(self.rng.integers(1 << 30))])

    def act(self, frame: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        cur = HandAction.from_array(np.asarray(proprio, np.float64))
        pos = np.clip(cur.wrist_pos + self.rng.normal(0, self.step, 3), self.LOW, self.HIGH)
        yaw = float(np.arctan2(cur.wrist_rot[1, 0], cur.wrist_rot[0, 0]) + self.rng.normal(0, 0.2))
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        poses = [OPEN, PADDLE, pinch(0.025, False), pinch(0.025, True)]
        w = self.rng.dirichlet(np.ones(len(poses)))
        tips = sum(wi * p for wi, p in zip(w, poses)) + self.rng.normal(0, 0.01, (5, 3))
        return HandAction(pos, rot, tips).to_array().reshape(1, ACTION_DIM)


class ScriptedFromPrompt(OpenLoopPlan):
    """``scripted`` inside the graph: the benchmark expert's plan for the prompt's task and seed
    (read from the prompt episode's meta), computed from the simulator's privileged initial state,
    executed open loop ``chunk`` actions per call. Tests only: a real robot has no such state."""

    name = "scripted"

    def set_prompt(self, prompt: Any) -> None:
        ep = load_episode(prompt) if not hasattr(prompt, "meta") else prompt
        task, seed = ep.meta.get("task"), ep.meta.get("seed")
        if task is None or seed is None:
            raise ValueError(
                "the scripted policy needs a benchmark episode as the prompt (its meta.json names the task and seed)"
            )
        env = SimEnv(load_task(resolve_task(str(task))), "robot", render=False)
        try:
            env.reset(int(seed))
            self.plan = expert_actions(env.instance, home_action(env.cfg), env.horizon)
        finally:
            env.close()
        self.t = 0


register_policy("replay", ReplayPolicy)
register_policy("noop", NoOpPolicy)
register_policy("random", RandomPolicy)
register_policy("scripted", ScriptedPolicy)
