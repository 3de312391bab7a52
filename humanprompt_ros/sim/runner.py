"""Running a policy for one episode in HumanPrompt-Sim, and generating the dataset with the experts.

``generate_job`` is the worker behind ``humanprompt-sim generate`` (closed-loop evaluation of a policy
is :mod:`humanprompt_ros.eval.rollout`); workers run in :mod:`multiprocessing` processes, so their
arguments are plain picklable values.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from humanprompt_ros.data import Episode, load_episode, write_episode
from humanprompt_ros.sim.env import STATE_LAYOUT, SimEnv, home_action
from humanprompt_ros.sim.experts import expert_actions
from humanprompt_ros.sim.scene import SimConfig, load_sim_config
from humanprompt_ros.sim.tasks import BENCHMARK_VERSION, Task, load_task
from humanprompt_ros.video import through_codec


class ScriptedPolicy:
    """The benchmark's expert as a policy: plans from the env's privileged initial state at
    :meth:`reset` (call it after ``env.reset``) and returns one action per :meth:`act`."""

    needs_prompt_video = False

    def __init__(self, env=None, **_: Any):
        if env is None:
            raise ValueError(
                "the scripted policy needs the simulation (make_policy('scripted', env=env)): it reads "
                "privileged state and only exists for tests and data generation"
            )
        self.env = env
        self.plan: np.ndarray | None = None

    def set_prompt(self, prompt: Any) -> None:
        pass  # the expert knows the task from the env

    def reset(self) -> None:
        self.plan = expert_actions(self.env.instance, home_action(self.env.cfg), self.env.horizon)

    def act(self, frame: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        if self.plan is None:
            self.reset()
        t = min(self.env.t, len(self.plan) - 1)
        return self.plan[t : t + 1].copy()


@dataclass
class ActionNoise:
    """Noise injected into the executed actions while an expert collects demonstrations (DART, Laskey et al.
    2017): the hand runs action + noise while the episode records the clean action as the label, so the
    data shows how to get back onto the plan from states near it (the plan's actions are absolute targets).
    The noise is AR(1), ``rho`` correlated from step to step, so it drifts the hand away as a policy's own
    errors do instead of averaging out under the position controller."""

    wrist_cm: float = 1.0  # stationary std of the wrist-position noise (cm)
    tips_cm: float = 0.0  # of every fingertip target (cm)
    rho: float = 0.8

    def validate(self) -> None:
        if self.wrist_cm < 0 or self.tips_cm < 0 or not 0.0 <= self.rho < 1.0:
            raise ValueError(f"action noise: wrist_cm, tips_cm >= 0 and rho in [0, 1), got {self}")

    def step(self, offset: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The next (24,) offset of the unified action after ``offset``."""
        std = np.zeros(24)
        std[0:3], std[9:24] = self.wrist_cm / 100, self.tips_cm / 100
        return self.rho * offset + np.sqrt(1 - self.rho**2) * std * rng.standard_normal(24)


@dataclass
class EpisodeRecord:
    task: Task
    embodiment: str
    seed: int
    hand_name: str
    mask: np.ndarray
    fps: float
    actions: np.ndarray  # (T, 24) commanded (masked for the embodiment)
    proprio: np.ndarray  # (T+1, 24)
    joints: np.ndarray  # (T+1, n)
    keypoints: np.ndarray | None  # (T+1, 21, 3) human
    frames: list[np.ndarray]  # T+1 frames, empty when not rendered
    success: bool
    instance: dict[str, Any] = field(default_factory=dict)
    joint_names: list[str] = field(default_factory=list)
    policy: str = ""
    seconds: float = 0.0
    measures: dict[str, float] = field(default_factory=dict)  # where the task ended (SuccessTracker.measures)
    state: np.ndarray | None = None  # (T+1, D) privileged scene state (sim.env.STATE_LAYOUT)
    noise: ActionNoise | None = None  # the noise the executed actions carried (the recorded ones are clean)

    def meta(self) -> dict[str, Any]:
        cfg = self.task.config
        return {
            "task": self.task.name,
            "skill": self.task.skill,
            "description": cfg.description,
            "embodiment": self.embodiment,
            "hand": self.hand_name,
            "mask": self.mask.tolist(),
            "success": bool(self.success),
            "seed": int(self.seed),
            "fps": self.fps,
            "horizon": self.task.horizon,
            "policy": self.policy,
            "joint_names": self.joint_names,
            "instance": self.instance,
            "task_file": Path(self.task.path).name,
            "benchmark": BENCHMARK_VERSION,
            **({"state_layout": STATE_LAYOUT} if self.state is not None else {}),
            **({"final": self.measures} if self.measures else {}),
            **({"action_noise": dataclasses.asdict(self.noise)} if self.noise else {}),
        }

    def to_episode(self, crf: int | None = None) -> Episode:
        """An in-memory Episode (e.g. a prompt generated on the fly). ``crf``: its frames as they come
        back from a video file written at that quality (a saved episode's), not the raw renders."""
        ep = Episode(None, self.meta(), None)
        ep._arrays = {
            "actions": self.actions,
            "proprio": self.proprio,
            "joints": self.joints,
            "keypoints": self.keypoints,
            "state": self.state,
        }
        if self.frames:
            ep._frames = np.stack(self.frames) if crf is None else through_codec(self.frames, self.fps, crf)
        return ep

    def save(self, directory: str | Path, crf: int = 12) -> Path:
        return write_episode(
            directory,
            self.frames,
            self.actions,
            self.meta(),
            proprio=self.proprio,
            joints=self.joints if self.embodiment == "robot" else None,
            keypoints=self.keypoints,
            state=self.state,
            fps=self.fps,
            crf=crf,
        )


def instance_summary(env: SimEnv) -> dict[str, Any]:
    inst = env.instance
    return {
        "objects": [
            {
                "name": o.name,
                "kind": o.kind,
                "xy": o.pos.round(5).tolist(),
                "yaw": round(o.yaw, 5),
                "size": o.size.round(5).tolist(),
                "rgba": o.rgba.round(4).tolist(),
            }
            for o in inst.objects
        ],
        "goal_xy": None if inst.goal_xy is None else inst.goal_xy.round(5).tolist(),
        "threshold": env.task.threshold,
        **(
            {
                "twin": env.twin.name,
                "marks": [
                    {"xy": np.round(m.xy, 5).tolist(), "radius": m.radius, "color": m.look.color, "shape": m.look.shape}
                    for m in inst.marks
                ],
            }
            if env.twin
            else {}
        ),
    }


def run_episode(
    env: SimEnv,
    policy,
    seed: int,
    prompt: Any = None,
    policy_name: str = "",
    record_frames: bool = True,
    noise: ActionNoise | None = None,
) -> EpisodeRecord:
    """Reset ``env`` with ``seed`` and run ``policy`` for the task's horizon (whole chunks executed).

    ``record_frames=False`` renders only the frames the policy sees (one per chunk), not every step:
    the record then has those frames only (enough for success, not for a dataset). ``noise``: executed
    actions carry it (seeded by ``seed``), recorded ones do not.
    """
    rng, offset = np.random.default_rng([seed, 4711]), np.zeros(24)
    t0 = time.perf_counter()
    renders = env.render_enabled
    obs = env.reset(seed)
    if prompt is not None:
        policy.set_prompt(prompt)
    policy.reset()
    frames = [obs.frame] if obs.frame is not None else []
    proprio, joints, kps, actions = [obs.proprio], [obs.joints], [obs.keypoints], []
    state = [env.scene_state()]
    mask = env.mask
    while env.t < env.horizon:
        if renders and obs.frame is None:
            obs.frame = env.render()
            frames.append(obs.frame)
        # a state-conditioned research policy (simulator only) also reads the true scene state
        extra = {"state": state[-1]} if getattr(policy, "needs_state", False) else {}
        chunk = np.asarray(policy.act(obs.frame, obs.proprio, **extra), np.float64)
        if chunk.ndim != 2 or chunk.shape[1] != 24 or len(chunk) == 0:
            raise ValueError(f"policy returned an action chunk of shape {chunk.shape}, expected (H, 24)")
        env.render_enabled = renders and record_frames
        for a in chunk:
            if env.t >= env.horizon:
                break
            if noise is not None:
                offset = noise.step(offset, rng)
            obs = env.step(a + offset)
            a = a.copy()
            a[9:24].reshape(5, 3)[~mask] = 0.0
            actions.append(a)
            proprio.append(obs.proprio)
            joints.append(obs.joints)
            kps.append(obs.keypoints)
            state.append(env.scene_state())
            if obs.frame is not None:
                frames.append(obs.frame)
        env.render_enabled = renders
    return EpisodeRecord(
        task=env.task,
        embodiment=env.embodiment,
        seed=seed,
        hand_name=env.hand_name,
        mask=mask.copy(),
        fps=env.cfg.control_hz,
        actions=np.stack(actions),
        proprio=np.stack(proprio),
        joints=np.stack(joints),
        keypoints=np.stack(kps) if env.embodiment == "human" else None,
        frames=frames,
        success=env.success,
        instance=instance_summary(env),
        joint_names=list(env.hand.joint_names),
        policy=policy_name,
        seconds=time.perf_counter() - t0,
        measures=env.measures(),
        state=np.stack(state),
        noise=noise,
    )


def expert_episode(
    task: Task,
    embodiment: str,
    seed: int,
    render: bool = True,
    env: SimEnv | None = None,
    noise: ActionNoise | None = None,
) -> EpisodeRecord:
    """The scripted expert's episode of ``task`` for ``embodiment`` at ``seed`` (executed with ``noise``)."""
    own = env is None
    env = env or SimEnv(task, embodiment, render=render)
    try:
        return run_episode(env, ScriptedPolicy(env), seed, policy_name="scripted", noise=noise)
    finally:
        if own:
            env.close()


def picklable_errors(fn):
    """Worker errors travel back through pickle: re-raise them as plain ValueError/RuntimeError
    with the message (an exception type that cannot be unpickled would hang ``Pool.imap``)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        except Exception as exc:
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from None

    return wrapper


# -- generate (worker) ---------------------------------------------------------------------------------
def sim_config(twin_scenes: str | None = None) -> SimConfig:
    """config/sim.yaml, with ``twin_scenes`` (own | shared) replaced when given."""
    cfg = load_sim_config()
    if twin_scenes is not None:
        cfg = dataclasses.replace(cfg, twin_scenes=twin_scenes)
        cfg.validate()
    return cfg


@picklable_errors
def generate_job(args: tuple) -> list[dict[str, Any]]:
    """Worker: (task_path, embodiment, seeds, out_dir, crf, overwrite, twin_scenes, noise) → one summary dict
    per episode. ``noise``: ActionNoise fields as a dict, or None."""
    task_path, embodiment, seeds, out_dir, crf, overwrite, twin_scenes, noise = args
    noise = ActionNoise(**noise) if noise else None
    task = load_task(task_path)
    env = SimEnv(task, embodiment, render=True, config=sim_config(twin_scenes))
    out = []
    try:
        for seed in seeds:
            d = Path(out_dir) / task.name / embodiment / f"{seed:07d}"
            if not overwrite and (d / "meta.json").is_file():
                _check_layouts(d, env)
                out.append(
                    {
                        "task": task.name,
                        "embodiment": embodiment,
                        "seed": seed,
                        "success": None,
                        "skipped": True,
                        "seconds": 0.0,
                    }
                )
                continue
            rec = expert_episode(task, embodiment, seed, env=env, noise=noise)
            rec.save(d, crf=crf)
            out.append(
                {
                    "task": task.name,
                    "skill": task.skill,
                    "embodiment": embodiment,
                    "seed": seed,
                    "success": rec.success,
                    "seconds": rec.seconds,
                }
            )
    finally:
        env.close()
    return out


def _check_layouts(episode_dir: Path, env: SimEnv) -> None:
    """An episode kept from an earlier run must have this run's twin-scene layouts: a dataset that mixes
    own and shared scenes would quietly train on both."""
    meta = load_episode(episode_dir).meta
    if meta.get("benchmark", 1) != BENCHMARK_VERSION:
        raise ValueError(
            f"{episode_dir} holds a scene of the benchmark's version {meta.get('benchmark', 1)}, this run generates "
            f'version {BENCHMARK_VERSION} ones (docs/benchmark.md, "Versions"): pass --overwrite to regenerate it, '
            "or another --out"
        )
    had_twin = "twin" in meta.get("instance", {})
    if had_twin != (env.twin is not None):
        was, now = ("shared", "own") if had_twin else ("own", "shared")
        raise ValueError(
            f"{episode_dir} holds a scene with {was} twin layouts, this run generates {now} ones "
            f"(twin_scenes): pass --overwrite to regenerate it, or another --out"
        )


def chunks(seeds: list[int], size: int) -> list[list[int]]:
    """``seeds`` cut into runs of at most ``size`` (one worker job each)."""
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def run_jobs(job: Callable[[tuple], list[dict]], jobs: list[tuple], workers: int) -> Iterator[list[dict]]:
    """Each job's results as it finishes: in ``workers`` spawned processes, or in this one when ``workers`` <= 1
    (MuJoCo and torch do not survive a fork, hence spawn)."""
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        yield from (pool.imap_unordered(job, jobs) if pool else map(job, jobs))
    finally:
        if pool:
            pool.close()
            pool.join()
