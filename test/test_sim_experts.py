"""Scripted experts succeed on both hands; trivial policies fail; episodes are deterministic.

The 50-episode acceptance table is produced by `humanprompt-sim eval --policy scripted` (see
docs/benchmark.md); these tests run a few seeds per skill to stay fast.
"""
from __future__ import annotations

import numpy as np
import pytest

from humanprompt_ros.policy import make_policy
from humanprompt_ros.sim.env import SimEnv
from humanprompt_ros.sim.runner import expert_episode, run_episode
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
