"""The policy protocol and its simple backends."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

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


# -- replaying a real video (the hand pose extracted with MediaPipe, moved into the world by camera_pose) ------
HAND_PHOTOS = Path(__file__).resolve().parent / "data" / "hands"  # README.md: source, licence
CAMERA_POSE = [0.4, -0.1, 0.7, 3.0, 0.2, -0.5]  # [x, y, z, roll, pitch, yaw]: a camera above the table, looking down


@pytest.fixture(scope="module")
def hand_video(tmp_path_factory):
    """A short video of a real right hand (test/data/hands/test5.jpg, still), as test_video_pose builds them."""
    from PIL import Image

    photo = np.asarray(Image.open(HAND_PHOTOS / "test5.jpg").convert("RGB"))
    return write_video(tmp_path_factory.mktemp("hand") / "hand.mp4", [photo] * 4, 10)


@pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")  # mediapipe 0.10.14 on protobuf 4.25
def test_replay_extracts_a_bare_video_into_the_world_frame_with_the_camera_pose(hand_video, tmp_path):
    pytest.importorskip("mediapipe", reason="hand landmarks need the human extra: pip install -e '.[human]'")
    from PIL import Image

    from humanprompt_ros.action import WRIST_POS, pose_from_xyz_rpy, transform_actions
    from humanprompt_ros.data import META_FILE, VIDEO_FILE, load_episode
    from humanprompt_ros.hand.video_pose import extract_episode

    camera = load_episode(extract_episode(hand_video, tmp_path / "ep", sheet=False).path).actions  # camera frame
    expected = transform_actions(camera, pose_from_xyz_rpy(CAMERA_POSE))
    policy = make_policy("replay", chunk=2, camera_pose=CAMERA_POSE)
    policy.set_prompt(hand_video)
    assert policy.actions.shape == (3, 24) and np.isfinite(policy.actions).all()
    np.testing.assert_allclose(policy.actions[:, WRIST_POS], expected[:, WRIST_POS], atol=1e-5)
    np.testing.assert_allclose(policy.actions, expected, atol=1e-5)
    assert not np.allclose(policy.actions[:, WRIST_POS], camera[:, WRIST_POS], atol=0.05)  # moved, not camera frame
    chunk = policy.act(np.zeros((8, 8, 3), np.uint8), np.zeros(24))
    np.testing.assert_array_equal(chunk, policy.actions[:2])
    # an episode directory with only its video (a recording whose extraction is pending) is extracted too
    pending = tmp_path / "pending"
    pending.mkdir()
    shutil.copy(hand_video, pending / VIDEO_FILE)
    meta = json.loads((tmp_path / "ep" / META_FILE).read_text())
    (pending / META_FILE).write_text(json.dumps({"format_version": meta["format_version"], "handedness": "right"}))
    policy.set_prompt(pending)
    np.testing.assert_allclose(policy.actions, expected, atol=1e-5)
    # a video at 30 fps plays in the same time at the control rate: every third frame's action at 10 Hz
    fast = write_video(
        tmp_path / "fast.mp4", [np.asarray(Image.open(HAND_PHOTOS / "test5.jpg").convert("RGB"))] * 10, 30
    )
    fast_camera = load_episode(extract_episode(fast, tmp_path / "fast_ep", sheet=False).path).actions
    policy.set_prompt(fast)
    assert len(fast_camera) == 9 and policy.actions.shape == (3, 24)  # 0.3 s of video: steps at 0, 0.1, 0.2 s
    np.testing.assert_allclose(
        policy.actions, transform_actions(fast_camera[[0, 3, 6]], pose_from_xyz_rpy(CAMERA_POSE)), atol=1e-5
    )


def test_replay_refuses_a_bare_video_without_the_camera_pose_or_mediapipe(hand_video, monkeypatch):
    with pytest.raises(
        ValueError, match=r"set camera_pose, the camera's pose in the world frame \(its extrinsic calibration"
    ):
        make_policy("replay").set_prompt(hand_video)
    with pytest.raises(ValueError, match="camera_pose: a pose is 6 numbers"):
        make_policy("replay", camera_pose=[0.0, 0.0, 1.0])
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe → ImportError
    with pytest.raises(ValueError, match=r"needs MediaPipe.*pip install -e '\.\[human\]'"):
        make_policy("replay", camera_pose=CAMERA_POSE).set_prompt(hand_video)


def test_replay_of_an_episode_with_actions_ignores_the_camera_pose():
    prompt = expert_episode(load_task("config/tasks/press_button.yaml"), "human", 0, render=False).to_episode()
    policy = make_policy("replay", camera_pose=CAMERA_POSE)
    policy.set_prompt(prompt)
    assert np.array_equal(policy.actions, prompt.actions)


@pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")
def test_the_prompt_check_for_replay_takes_a_bare_video_once_the_camera_pose_is_set(hand_video):
    from humanprompt_ros.config.nodes import PromptEncoderConfig
    from humanprompt_ros.control.prompt import PromptError, PromptValidator

    cfg = PromptEncoderConfig(prompt_dirs=[str(hand_video.parent)], policy="replay")
    with pytest.raises(PromptError, match="camera_pose"):
        PromptValidator(cfg).validate(str(hand_video))
    pytest.importorskip("mediapipe", reason="hand landmarks need the human extra: pip install -e '.[human]'")
    info = PromptValidator(PromptEncoderConfig(**{**cfg.__dict__, "camera_pose": CAMERA_POSE})).validate(
        str(hand_video)
    )
    assert info["actions"] == 3 and info["backend"] == "replay"
