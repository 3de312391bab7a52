"""The policy protocol and its simple backends."""

from __future__ import annotations

import numpy as np
import pytest

from humanprompt_ros.data import write_video
from humanprompt_ros.eval.rollout import prompt_seed
from humanprompt_ros.policies import Policy, ReplayPolicy, make_policy, register_policy
from humanprompt_ros.sim.env import SimEnv
from humanprompt_ros.sim.runner import expert_episode, run_episode
from humanprompt_ros.sim.tasks import load_task


def test_registry_and_errors(tmp_path):
    for spec in ("replay", "noop", "random"):
        assert isinstance(make_policy(spec), Policy)
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        make_policy("nope")
    with pytest.raises(ValueError, match="needs the simulation"):
        make_policy("scripted")
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"x")
    # a path goes to the learned-policy backend, which refuses a file that is not a checkpoint
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
        make_policy(str(ckpt))
    from humanprompt_ros.policies import base as mod

    learned = mod._REGISTRY["checkpoint"]
    register_policy("checkpoint", lambda path, **kw: ReplayPolicy())  # another backend can take its place
    try:
        assert isinstance(make_policy(str(ckpt)), ReplayPolicy)
    finally:
        register_policy("checkpoint", learned)


def test_replay_refuses_a_prompt_without_actions(tmp_path):
    video = tmp_path / "demo.mp4"
    write_video(video, [np.full((32, 32, 3), i * 20, np.uint8) for i in range(6)], 10)
    policy = make_policy("replay")
    with pytest.raises(ValueError, match="replay policy needs the demonstration's unified actions"):
        policy.set_prompt(video)
    with pytest.raises(ValueError, match="no prompt"):
        policy.act(np.zeros((8, 8, 3), np.uint8), np.zeros(24))


def test_replay_chunks_and_holds_the_last_action():
    task = load_task("config/tasks/press_button.yaml")
    prompt = expert_episode(task, "human", 0, render=False).to_episode()
    policy = ReplayPolicy(chunk=16)
    policy.set_prompt(prompt)
    chunks = [policy.act(None, np.zeros(24)) for _ in range(4)]
    assert all(c.shape == (16, 24) for c in chunks)
    flat = np.concatenate(chunks)
    assert np.array_equal(flat[: task.horizon], prompt.actions)
    assert np.array_equal(flat[-1], prompt.actions[-1])
    policy.reset()
    assert np.array_equal(policy.act(None, np.zeros(24))[0], prompt.actions[0])


@pytest.mark.parametrize("name", ["push_box", "pick_lift"])
def test_replay_of_a_same_seed_human_demo_succeeds_on_the_robot(name):
    task = load_task(f"config/tasks/{name}.yaml")
    seed = 3
    prompt = expert_episode(task, "human", prompt_seed(seed, "same"), render=False).to_episode()
    assert prompt.success
    env = SimEnv(task, "robot", render=False)
    try:
        rec = run_episode(env, make_policy("replay"), seed, prompt=prompt, policy_name="replay")
    finally:
        env.close()
    assert rec.success
    assert rec.joints.shape == (task.horizon + 1, 16)
