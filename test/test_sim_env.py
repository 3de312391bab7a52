"""HumanPrompt-Sim scene and embodiments: real MuJoCo, both hands."""

from __future__ import annotations

import numpy as np
import pytest

from humanprompt_ros.action import HandAction
from humanprompt_ros.hand.keypoints import keypoints_to_action, wrist_frame
from humanprompt_ros.sim.env import SimEnv, home_action
from humanprompt_ros.sim.experts import OPEN, PADDLE, pinch
from humanprompt_ros.sim.human_hand import HumanHand
from humanprompt_ros.sim.tasks import load_task


@pytest.fixture(scope="module")
def task():
    return load_task("config/tasks/push_box.yaml")


def test_human_hand_keypoints_define_its_wrist_frame():
    hand = HumanHand()
    kp = hand.fk(hand.rest())
    assert kp.shape == (21, 3)
    assert np.allclose(wrist_frame(kp), np.eye(4), atol=1e-9)


def test_human_hand_ik_round_trip():
    hand = HumanHand()
    rng = np.random.default_rng(0)
    errs = []
    for _ in range(50):
        q = rng.uniform(hand.lower, hand.upper)
        q[3] = hand.config.ip_coupling * q[2]
        q[7::4] = hand.config.dip_coupling * q[6::4]
        tips = hand.fingertips(q)
        errs.append(np.linalg.norm(hand.fingertips(hand.ik(tips)) - tips, axis=1))
    assert np.median(errs) < 1e-4


@pytest.mark.parametrize(
    "pose,contact",
    [(OPEN, [1, 2, 3]), (PADDLE, [1, 2, 3]), (pinch(0.025, True), [0, 1, 2])],
    ids=["open", "paddle", "pinch"],
)
def test_expert_poses_are_reachable_by_the_contact_fingers_of_both_hands(pose, contact):
    from humanprompt_ros.sim.env import robot_hand

    robot = robot_hand()
    q = robot.retarget(HandAction(np.zeros(3), np.eye(3), pose), q_init=robot.neutral())
    err_robot = np.linalg.norm(robot.fk(q).fingertips - pose, axis=1)[:4]
    human = HumanHand()
    err_human = np.linalg.norm(human.fingertips(human.ik(pose)) - pose, axis=1)[contact]
    assert err_robot.max() < 0.008, err_robot
    assert err_human.max() < 0.012, err_human


def test_both_embodiments_render_and_look_different(task):
    frames = {}
    for emb in ("robot", "human"):
        env = SimEnv(task, emb)
        try:
            obs = env.reset(0)
            assert obs.frame.dtype == np.uint8 and obs.frame.shape == (env.image_size, env.image_size, 3)
            assert obs.proprio.shape == (24,)
            frames[emb] = obs.frame.astype(float)
            if emb == "human":
                assert obs.keypoints.shape == (21, 3)
                assert obs.joints.shape == (20,)
            else:
                assert obs.joints.shape == (16,) and obs.keypoints is None
        finally:
            env.close()
    diff = np.abs(frames["robot"] - frames["human"]).sum(axis=2)
    assert (diff > 60).mean() > 0.01  # the hand region differs clearly (dark robot vs skin)
    assert frames["robot"].std() > 10  # not a blank image


@pytest.mark.parametrize("emb", ["robot", "human"])
def test_hand_tracks_a_unified_action(task, emb):
    env = SimEnv(task, emb, render=False)
    try:
        env.reset(0)
        target = home_action(env.cfg)
        target = HandAction(target.wrist_pos + [0.05, 0.0, -0.03], np.eye(3), PADDLE)
        for _ in range(8):
            obs = env.step(target)
        state = HandAction.from_array(obs.proprio)
        assert np.linalg.norm(state.wrist_pos - target.wrist_pos) < 0.01
        err = np.linalg.norm(state.fingertips - target.fingertips, axis=1)[1:4]
        assert err.max() < 0.02, err
        if emb == "human":
            assert np.allclose(keypoints_to_action(obs.keypoints).to_array(), obs.proprio)
    finally:
        env.close()


def test_wrist_is_rate_limited(task):
    env = SimEnv(task, "human", render=False)
    try:
        env.reset(0)
        far = home_action(env.cfg)
        far = HandAction(far.wrist_pos + [0.4, 0.0, 0.0], np.eye(3), OPEN)
        obs = env.step(far)
        moved = HandAction.from_array(obs.proprio).wrist_pos[0] - env.cfg.home_wrist[0]
        assert moved <= env.cfg.max_wrist_step + 0.01
    finally:
        env.close()


def test_nan_action_is_rejected(task):
    env = SimEnv(task, "robot", render=False)
    try:
        env.reset(0)
        bad = home_action(env.cfg).to_array()
        bad[0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            env.step(bad)
    finally:
        env.close()


def test_step_joints_for_a_ros_joint_command(task):
    env = SimEnv(task, "robot", render=False)
    try:
        env.reset(0)
        lo, hi = env.hand.joint_limits
        q = 0.5 * (lo + hi)
        for _ in range(6):
            obs = env.step_joints(q)
        assert np.abs(obs.joints - q).max() < 0.1
        with pytest.raises(ValueError, match="expected 16 joint positions"):
            env.step_joints(np.zeros(3))
        with pytest.raises(ValueError, match="NaN"):
            env.step_joints(np.full(16, np.nan))
    finally:
        env.close()


def test_episodes_record_the_privileged_scene_state(tmp_path):
    """Every step's object poses, articulations and goal (sim.env.STATE_LAYOUT), saved as state.npy."""
    from humanprompt_ros.data import load_episode
    from humanprompt_ros.sim.env import STATE_LAYOUT, STATE_OBJECTS
    from humanprompt_ros.sim.runner import expert_episode
    from humanprompt_ros.sim.tasks import resolve_task

    push = load_task(resolve_task("push_box"))
    env = SimEnv(push, "robot", render=False)
    try:
        rec = expert_episode(push, "robot", 3, env=env)
        target, goal = env.instance.target, env.instance.goal_xy
    finally:
        env.close()
    s = rec.state
    assert s.shape == (len(rec.actions) + 1, STATE_OBJECTS * 7 + 3)
    np.testing.assert_allclose(s[0, :2], target.pos, atol=2e-3)  # the target first, where the scene put it
    np.testing.assert_allclose(s[:, -3:], np.tile([*goal, 1.0], (len(s), 1)), atol=1e-6)
    assert np.linalg.norm(s[-1, :2] - goal) < push.config.goal.radius  # pushed onto the goal
    saved = load_episode(rec.save(tmp_path / "ep"))
    np.testing.assert_allclose(saved.state, s)
    assert saved.meta["state_layout"] == STATE_LAYOUT

    drawer = load_task(resolve_task("open_drawer"))
    env = SimEnv(drawer, "robot", render=False)
    try:
        opened = expert_episode(drawer, "robot", 3, env=env).state
    finally:
        env.close()
    assert opened[0, 5] == pytest.approx(0.0, abs=1e-3) and opened[-1, 5] > drawer.threshold  # the slide opened
    assert opened[0, -1] == 0.0  # no goal disc
