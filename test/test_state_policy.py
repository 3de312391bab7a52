"""``condition: state``: a policy given the simulator's true scene state and the skill instead of images —
trained on real HumanPrompt-Sim episodes, run closed loop in MuJoCo, refused where no state exists (ROS)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.synthetic_clips import make_dataset
from helpers.tiny_checkpoint import PLAIN_HEAD, tiny_config
from humanprompt_ros.config.nodes import PolicyConfig, StartupError
from humanprompt_ros.config.stage2 import Stage2Config, Stage2Train
from humanprompt_ros.control.backend import build_backend
from humanprompt_ros.models.diffusion_head import PolicyModelConfig
from humanprompt_ros.models.policy_model import load_policy_model
from humanprompt_ros.policies.learned import LearnedPolicy
from humanprompt_ros.sim.env import SimEnv
from humanprompt_ros.sim.runner import expert_episode, run_episode
from humanprompt_ros.sim.tasks import load_task, resolve_task
from humanprompt_ros.train.stage1 import train_stage1
from humanprompt_ros.train.stage2 import train_stage2
from humanprompt_ros.train.stage2_data import load_policy_episodes

TASKS = ("open_drawer", "pull_puck")


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory) -> Path:
    """Two robot expert episodes of two tasks, saved as a dataset (MuJoCo, with state.npy)."""
    root = tmp_path_factory.mktemp("sim")
    for name in TASKS:
        task = load_task(resolve_task(name))
        for seed in (0, 1):
            expert_episode(task, "robot", seed).save(root / name / "robot" / f"{seed:07d}")
    return root


@pytest.fixture(scope="module")
def state_checkpoint(tmp_path_factory, sim_data) -> Path:
    out = tmp_path_factory.mktemp("state")
    s1 = train_stage1(tiny_config(out / "s1", steps=4, ae_steps=4), make_dataset(range(1), size=32, length=12))
    cfg = Stage2Config(
        data=str(sim_data),
        stage1=str(s1),
        out=str(out / "s2"),
        condition="state",
        policy=PolicyModelConfig(
            horizon=4, width=16, depth=1, heads=2, train_timesteps=20, inference_steps=3, **PLAIN_HEAD
        ),
        train=Stage2Train(steps=6, batch_size=8, log_every=2, checkpoint_every=3, warmup_steps=1),
    )
    cfg.video_former.width = 16
    episodes = load_policy_episodes(sim_data, 32, show=False, frames=False, state=True)
    assert all(e.frames is None and e.state.shape == (len(e.proprio), 24) for e in episodes)
    return train_stage2(cfg, episodes)


def test_a_state_policy_trains_and_reads_the_state_and_the_skill(state_checkpoint, sim_data):
    model, _ = load_policy_model(state_checkpoint)
    assert model.cfg.condition == "state" and model.frame_encoder is None
    # the state normaliser was fitted on the training states: the table-top objects' x, y are not (0, 1)
    assert not torch.allclose(model.state_encoder.norm.mean[:2], torch.zeros(2))
    policy = LearnedPolicy(state_checkpoint, hand="allegro_right", execute=2)
    assert policy.needs_state and not policy.needs_frames and not policy.needs_prompt_video
    policy.set_prompt(sim_data / "pull_puck" / "robot" / "0000000")
    assert int(policy.skill) == model.cfg.skills.index("pull_to_goal")
    state = np.load(sim_data / "pull_puck" / "robot" / "0000000" / "state.npy")
    proprio = np.load(sim_data / "pull_puck" / "robot" / "0000000" / "proprio.npy")
    a = policy.act(None, proprio[0], state=state[0])
    assert a.shape == (2, 24) and np.all(np.isfinite(a))
    with pytest.raises(ValueError, match="true scene state .* HumanPrompt-Sim only"):
        policy.act(None, proprio[0])
    with pytest.raises(ValueError, match="not as tokens"):
        policy.set_encoded(np.zeros((1, 8, 32), np.float32))
    # the condition depends on the state and on the skill
    s = torch.from_numpy(state[:1])
    moved = s.clone()
    moved[0, :2] += 0.1
    c0 = model.condition(None, None, torch.tensor([0]), states=s)
    assert not torch.allclose(c0, model.condition(None, None, torch.tensor([0]), states=moved))
    assert not torch.allclose(c0, model.condition(None, None, torch.tensor([1]), states=s))
    with pytest.raises(ValueError, match="pass both"):
        model.condition(None, None, torch.tensor([0]))


def test_a_state_policy_runs_closed_loop_in_the_simulator_without_rendering(state_checkpoint, sim_data):
    policy = LearnedPolicy(state_checkpoint, hand="allegro_right")
    env = SimEnv(load_task(resolve_task("open_drawer")), "robot", render=False)
    try:
        rec = run_episode(env, policy, seed=5, prompt=sim_data / "open_drawer" / "robot" / "0000000")
    finally:
        env.close()
    assert rec.frames == [] and len(rec.actions) == env.horizon and np.all(np.isfinite(rec.actions))


def test_the_ros_backend_refuses_a_state_policy(state_checkpoint):
    with pytest.raises(StartupError, match="true scene state .* humanprompt-sim eval"):
        build_backend(PolicyConfig(checkpoint=str(state_checkpoint)), "allegro_right")


def test_episodes_without_a_recorded_state_are_refused_for_a_state_policy(sim_data, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(sim_data / "open_drawer", copy / "open_drawer")
    (copy / "open_drawer" / "robot" / "0000001" / "state.npy").unlink()
    with pytest.raises(ValueError, match=r"0000001: no state.npy .* `humanprompt-sim generate`"):
        load_policy_episodes(copy, 32, show=False, frames=False, state=True)
    assert len(load_policy_episodes(copy, 32, show=False, frames=False)) == 2  # without state: both load
