"""Running policies in HumanPrompt-Sim: one episode, data generation and closed-loop evaluation.

These are the functions behind ``humanprompt-sim generate`` and ``eval``; they run in worker
processes (:mod:`multiprocessing`), so their arguments are plain picklable values.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Episode, load_episode, write_episode
from .env import SimEnv
from .scene import SimConfig, load_sim_config
from .tasks import Task, load_task

# seeds of "other" prompts are drawn from a range no evaluation uses
OTHER_PROMPT_OFFSET = 7_000_000
FRAME_FREE_POLICIES = ("scripted", "replay", "noop", "random")
PROMPTLESS_POLICIES = ("scripted", "noop", "random")  # these ignore the prompt: none is generated for them


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

    def meta(self) -> dict[str, Any]:
        cfg = self.task.config
        return {
            "task": self.task.name, "skill": self.task.skill, "description": cfg.description,
            "embodiment": self.embodiment, "hand": self.hand_name, "mask": self.mask.tolist(),
            "success": bool(self.success), "seed": int(self.seed), "fps": self.fps,
            "horizon": self.task.horizon, "policy": self.policy, "joint_names": self.joint_names,
            "instance": self.instance, "task_file": Path(self.task.path).name,
        }

    def to_episode(self, crf: int | None = None) -> Episode:
        """An in-memory Episode (e.g. a prompt generated on the fly). ``crf``: its frames as they come
        back from a video file written at that quality (a saved episode's), not the raw renders."""
        from ..video import through_codec

        ep = Episode(None, self.meta(), None)
        ep._arrays = {"actions": self.actions, "proprio": self.proprio, "joints": self.joints,
                      "keypoints": self.keypoints}
        if self.frames:
            ep._frames = np.stack(self.frames) if crf is None else through_codec(self.frames, self.fps, crf)
        return ep

    def save(self, directory: str | Path, crf: int = 12) -> Path:
        return write_episode(directory, self.frames, self.actions, self.meta(), proprio=self.proprio,
                             joints=self.joints if self.embodiment == "robot" else None,
                             keypoints=self.keypoints, fps=self.fps, crf=crf)


def instance_summary(env: SimEnv) -> dict[str, Any]:
    inst = env.instance
    return {
        "objects": [{"name": o.name, "kind": o.kind, "xy": o.pos.round(5).tolist(), "yaw": round(o.yaw, 5),
                     "size": o.size.round(5).tolist(), "rgba": o.rgba.round(4).tolist()} for o in inst.objects],
        "goal_xy": None if inst.goal_xy is None else inst.goal_xy.round(5).tolist(),
        "threshold": env.task.threshold,
        **({"twin": env.twin.name, "discs": [{"xy": np.round(xy, 5).tolist(), "radius": r}
                                               for xy, r in inst.extra["discs"]]} if env.twin else {}),
    }


def run_episode(env: SimEnv, policy, seed: int, prompt: Any = None, policy_name: str = "",
                record_frames: bool = True) -> EpisodeRecord:
    """Reset ``env`` with ``seed`` and run ``policy`` for the task's horizon (whole chunks executed).

    ``record_frames=False`` renders only the frames the policy sees (one per chunk), not every step:
    the record then has those frames only (enough for success, not for a dataset).
    """
    t0 = time.perf_counter()
    renders = env.render_enabled
    obs = env.reset(seed)
    if prompt is not None:
        policy.set_prompt(prompt)
    policy.reset()
    frames = [obs.frame] if obs.frame is not None else []
    proprio, joints, kps, actions = [obs.proprio], [obs.joints], [obs.keypoints], []
    mask = env.mask
    while env.t < env.horizon:
        if renders and obs.frame is None:
            obs.frame = env.render()
            frames.append(obs.frame)
        chunk = np.asarray(policy.act(obs.frame, obs.proprio), np.float64)
        if chunk.ndim != 2 or chunk.shape[1] != 24 or len(chunk) == 0:
            raise ValueError(f"policy returned an action chunk of shape {chunk.shape}, expected (H, 24)")
        env.render_enabled = renders and record_frames
        for a in chunk:
            if env.t >= env.horizon:
                break
            obs = env.step(a)
            a = a.copy()
            a[9:24].reshape(5, 3)[~mask] = 0.0
            actions.append(a)
            proprio.append(obs.proprio)
            joints.append(obs.joints)
            kps.append(obs.keypoints)
            if obs.frame is not None:
                frames.append(obs.frame)
        env.render_enabled = renders
    return EpisodeRecord(
        task=env.task, embodiment=env.embodiment, seed=seed, hand_name=env.hand_name, mask=mask.copy(),
        fps=env.cfg.control_hz, actions=np.stack(actions), proprio=np.stack(proprio), joints=np.stack(joints),
        keypoints=np.stack(kps) if env.embodiment == "human" else None, frames=frames, success=env.success,
        instance=instance_summary(env), joint_names=list(env.hand.joint_names), policy=policy_name,
        seconds=time.perf_counter() - t0)


def expert_episode(task: Task, embodiment: str, seed: int, render: bool = True, env: SimEnv | None = None) -> EpisodeRecord:
    """The scripted expert's episode of ``task`` for ``embodiment`` at ``seed``."""
    from ..policy import ScriptedPolicy

    own = env is None
    env = env or SimEnv(task, embodiment, render=render)
    try:
        return run_episode(env, ScriptedPolicy(env), seed, policy_name="scripted")
    finally:
        if own:
            env.close()


def _picklable_errors(fn):
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


@_picklable_errors
def generate_job(args: tuple) -> list[dict[str, Any]]:
    """Worker: (task_path, embodiment, seeds, out_dir, crf, overwrite, twin_scenes) → one summary dict per
    episode."""
    task_path, embodiment, seeds, out_dir, crf, overwrite, twin_scenes = args
    task = load_task(task_path)
    env = SimEnv(task, embodiment, render=True, config=sim_config(twin_scenes))
    out = []
    try:
        for seed in seeds:
            d = Path(out_dir) / task.name / embodiment / f"{seed:07d}"
            if not overwrite and (d / "meta.json").is_file():
                _check_layouts(d, env)
                out.append({"task": task.name, "embodiment": embodiment, "seed": seed, "success": None,
                            "skipped": True, "seconds": 0.0})
                continue
            rec = expert_episode(task, embodiment, seed, env=env)
            rec.save(d, crf=crf)
            out.append({"task": task.name, "skill": task.skill, "embodiment": embodiment, "seed": seed,
                        "success": rec.success, "seconds": rec.seconds})
    finally:
        env.close()
    return out


def _check_layouts(episode_dir: Path, env: SimEnv) -> None:
    """An episode kept from an earlier run must have this run's twin-scene layouts: a dataset that mixes
    own and shared scenes would quietly train on both."""
    had_twin = "twin" in load_episode(episode_dir).meta.get("instance", {})
    if had_twin != (env.twin is not None):
        was, now = ("shared", "own") if had_twin else ("own", "shared")
        raise ValueError(f"{episode_dir} holds a scene with {was} twin layouts, this run generates {now} ones "
                         f"(twin_scenes): pass --overwrite to regenerate it, or another --out")


# -- eval (worker) --------------------------------------------------------------------------------------
def prompt_seed(seed: int, mode: str) -> int:
    if mode == "same":
        return seed
    if mode == "other":
        return seed + OTHER_PROMPT_OFFSET
    raise ValueError(f"--prompt-seed must be 'same' or 'other', got {mode!r}")


@_picklable_errors
def eval_job(args: tuple) -> list[dict[str, Any]]:
    """Worker: (policies [(name, spec)], task_path, embodiment, seeds, prompt_mode, policy_kwargs, save_dir,
    prompt_task_path, twin_scenes) → one result dict per (policy, episode).

    Every policy sees the same scenes and the same prompt per seed (generated once per seed). The prompt
    demonstrates the episode's own task, or ``prompt_task_path``'s task when given (a mismatched prompt:
    does the policy follow the prompt or the scene?); success is always judged on the episode's task.
    """
    from ..policy import make_policy

    policies, task_path, embodiment, seeds, prompt_mode, policy_kwargs, save_dir, prompt_task_path, twin_scenes = args
    task = load_task(task_path)
    prompt_task = load_task(prompt_task_path) if prompt_task_path else task
    specs = [spec for _, spec in policies]
    cfg = sim_config(twin_scenes)
    # the simple backends ignore the camera: skip rendering for them (4x faster)
    env = SimEnv(task, embodiment, render=any(spec not in FRAME_FREE_POLICIES for spec in specs), config=cfg)
    results = []
    prompt_env = None
    try:
        built = []
        for name, spec in policies:
            kwargs = dict(policy_kwargs or {})
            if spec == "scripted":
                kwargs["env"] = env
            if spec == "random":
                kwargs.setdefault("seed", seeds[0])
            built.append((name, spec, make_policy(spec, **kwargs)))
        wants_video = any(getattr(p, "needs_prompt_video", True) for _, spec, p in built
                          if spec not in PROMPTLESS_POLICIES)
        for seed in seeds:
            prompt = None
            for name, spec, policy in built:
                if spec not in PROMPTLESS_POLICIES and prompt is None:
                    # the prompt: a human demonstration of the task (same scene or another one), as
                    # a video file gives it (the codec's artefacts included), like the training prompts
                    # and a prompt set through ROS
                    if prompt_env is None:
                        prompt_env = SimEnv(prompt_task, "human", render=wants_video, config=cfg)
                    demo = expert_episode(prompt_task, "human", prompt_seed(seed, prompt_mode), env=prompt_env)
                    prompt = demo.to_episode(crf=prompt_env.cfg.video_crf if wants_video else None)
                rec = run_episode(env, policy, seed, prompt=None if spec in PROMPTLESS_POLICIES else prompt,
                                  policy_name=spec, record_frames=bool(save_dir))
                if save_dir:
                    rec.save(Path(save_dir) / name / task.name / embodiment / f"{seed:07d}")
                results.append({"policy": name, "task": task.name, "skill": task.skill, "seed": seed,
                                "success": bool(rec.success), "seconds": rec.seconds,
                                **({} if env.twin_success is None else {"twin_success": env.twin_success})})
    finally:
        if prompt_env is not None:
            prompt_env.close()
        env.close()
    return results
