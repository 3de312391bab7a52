"""Scripted experts succeed on both hands; trivial policies fail; episodes are deterministic.

The 50-episode acceptance table is produced by `humanprompt-sim eval --policy scripted` (see
docs/benchmark.md); these tests run a few seeds per skill to stay fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from humanprompt_ros.policies import make_policy
from humanprompt_ros.sim.env import SimEnv
from humanprompt_ros.sim.runner import ActionNoise, expert_episode, run_episode
from humanprompt_ros.sim.tasks import load_tasks

TASKS = load_tasks()
IDS = [t.name for t in TASKS]


@pytest.mark.parametrize("emb", ["robot", "human"])
@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_expert_succeeds(task, emb):
    env = SimEnv(task, emb, render=False)
    try:
        for seed in (11, 12):
            rec = expert_episode(task, emb, seed, env=env)
            assert rec.success, f"{task.name} {emb} seed {seed} failed"
            assert rec.actions.shape == (task.horizon, 24)
            assert rec.proprio.shape == (task.horizon + 1, 24)
    finally:
        env.close()


@pytest.mark.parametrize("emb", ["robot", "human"])
def test_same_seed_same_episode(emb):
    task = next(t for t in TASKS if t.skill == "pick_place")
    a = expert_episode(task, emb, 5, render=False)
    b = expert_episode(task, emb, 5, render=False)
    c = expert_episode(task, emb, 6, render=False)
    assert np.array_equal(a.actions, b.actions)
    assert np.array_equal(a.proprio, b.proprio) and np.array_equal(a.joints, b.joints)
    assert a.success == b.success
    assert not np.array_equal(a.actions, c.actions)


def test_robot_and_human_experts_share_the_script():
    task = next(t for t in TASKS if t.skill == "push_to_goal")
    r = expert_episode(task, "robot", 3, render=False)
    h = expert_episode(task, "human", 3, render=False)
    assert np.allclose(r.actions[:, :21], h.actions[:, :21])  # wrist + thumb..ring identical
    assert np.all(r.actions[:, 21:] == 0) and not np.all(h.actions[:, 21:] == 0)  # Allegro: no little finger


@pytest.mark.parametrize("spec", ["noop", "random"])
@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_trivial_policies_fail(task, spec):
    env = SimEnv(task, "robot", render=False)
    try:
        for seed in (21, 22):
            policy = make_policy(spec, seed=seed)
            rec = run_episode(env, policy, seed, policy_name=spec)
            assert not rec.success, f"{spec} solved {task.name} (seed {seed}): the predicate is too easy"
    finally:
        env.close()


def test_evaluation_renders_only_the_frames_the_policy_sees():
    class Chunks8:
        """Eight actions per act(), like the learned policy."""

        def __init__(self):
            self.inner = make_policy("random", seed=3)

        def set_prompt(self, prompt):
            pass

        def reset(self):
            self.inner.reset()

        def act(self, frame, proprio):
            assert frame is not None and frame.shape == (128, 128, 3)
            return np.concatenate([self.inner.act(frame, proprio) for _ in range(8)])[:8]

    task = next(t for t in TASKS if t.name == "press_button")
    env = SimEnv(task, "robot", render=True)
    try:
        full = run_episode(env, Chunks8(), 5, record_frames=True)
        sparse = run_episode(env, Chunks8(), 5, record_frames=False)
    finally:
        env.close()
    np.testing.assert_array_equal(full.actions, sparse.actions)
    assert full.success == sparse.success and len(full.frames) == len(full.actions) + 1
    assert len(sparse.frames) == -(-len(full.actions) // 8)  # one frame per act()
    np.testing.assert_array_equal(sparse.frames[1], full.frames[8])  # the frame the policy saw at step 8


def test_dart_noise_moves_the_hand_but_the_labels_stay_the_experts():
    """With ActionNoise the executed wrist drifts off the plan (the measured proprio differs), the recorded
    actions are the clean plan, the same seed gives the same noise, and the meta says what was injected."""
    task = next(t for t in TASKS if t.skill == "open_drawer")
    noise = ActionNoise(wrist_cm=1.0, tips_cm=0.3)
    clean = expert_episode(task, "robot", 4, render=False)
    noisy = expert_episode(task, "robot", 4, render=False, noise=noise)
    again = expert_episode(task, "robot", 4, render=False, noise=noise)
    assert np.array_equal(noisy.actions, clean.actions)
    drift = np.linalg.norm(noisy.proprio[:, :3] - clean.proprio[:, :3], axis=1)
    assert drift.max() > 0.005  # the hand was pushed off the plan by more than 5 mm somewhere
    assert np.array_equal(noisy.proprio, again.proprio)
    assert noisy.meta()["action_noise"] == {"wrist_cm": 1.0, "tips_cm": 0.3, "rho": 0.8}
    assert "action_noise" not in clean.meta()
    with pytest.raises(ValueError, match="rho in \\[0, 1\\)"):
        ActionNoise(rho=1.0).validate()
