"""Closed-loop evaluation in HumanPrompt-Sim: each policy on the same held-out scenes, prompted by the
same human demonstration per scene (the env runner behind ``humanprompt-sim eval``).

``eval_job`` runs in :mod:`multiprocessing` workers, so its arguments are plain picklable values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from humanprompt_ros.policies import make_policy
from humanprompt_ros.sim.env import SimEnv
from humanprompt_ros.sim.runner import expert_episode, picklable_errors, run_episode, sim_config
from humanprompt_ros.sim.tasks import load_task

# seeds of "other" prompts are drawn from a range no evaluation uses
OTHER_PROMPT_OFFSET = 7_000_000
FRAME_FREE_POLICIES = ("scripted", "replay", "noop", "random")
PROMPTLESS_POLICIES = ("scripted", "noop", "random")  # these ignore the prompt: none is generated for them


def prompt_seed(seed: int, mode: str) -> int:
    if mode == "same":
        return seed
    if mode == "other":
        return seed + OTHER_PROMPT_OFFSET
    raise ValueError(f"--prompt-seed must be 'same' or 'other', got {mode!r}")


@picklable_errors
def eval_job(args: tuple) -> list[dict[str, Any]]:
    """Worker: (policies [(name, spec)], task_path, embodiment, seeds, prompt_mode, policy_kwargs, save_dir,
    prompt_task_path, twin_scenes) → one result dict per (policy, episode).

    Every policy sees the same scenes and the same prompt per seed (generated once per seed). The prompt
    demonstrates the episode's own task, or ``prompt_task_path``'s task when given (a mismatched prompt:
    does the policy follow the prompt or the scene?); success is always judged on the episode's task.
    """
    policies, task_path, embodiment, seeds, prompt_mode, policy_kwargs, save_dir, prompt_task_path, twin_scenes = args
    task = load_task(task_path)
    prompt_task = load_task(prompt_task_path) if prompt_task_path else task
    cfg = sim_config(twin_scenes)
    env = SimEnv(task, embodiment, config=cfg)
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
        # the simple backends and state policies ignore the camera: skip rendering for them (4x faster) unless
        # the episodes are saved
        env.render_enabled = bool(save_dir) or any(
            getattr(p, "needs_frames", spec not in FRAME_FREE_POLICIES) for _, spec, p in built
        )
        wants_video = any(
            getattr(p, "needs_prompt_video", True) for _, spec, p in built if spec not in PROMPTLESS_POLICIES
        )
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
                rec = run_episode(
                    env,
                    policy,
                    seed,
                    prompt=None if spec in PROMPTLESS_POLICIES else prompt,
                    policy_name=spec,
                    record_frames=bool(save_dir),
                )
                if save_dir:
                    rec.save(Path(save_dir) / name / task.name / embodiment / f"{seed:07d}")
                results.append(
                    {
                        "policy": name,
                        "task": task.name,
                        "skill": task.skill,
                        "seed": seed,
                        "success": bool(rec.success),
                        "seconds": rec.seconds,
                        **({} if env.twin_success is None else {"twin_success": env.twin_success}),
                        "final": rec.measures,
                    }
                )
    finally:
        if prompt_env is not None:
            prompt_env.close()
        env.close()
    return results
