"""The state estimator: the camera geometry it is supervised with, its targets, training and checkpoints."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from humanprompt_ros.models.state_estimator import (
    StateEstimatorConfig,
    estimate,
    estimator_loss,
    load_estimator,
    save_estimator,
    shift_batch,
    targets,
    to_state,
)
from humanprompt_ros.sim.runner import expert_episode, sim_config
from humanprompt_ros.sim.scene import project, unproject
from humanprompt_ros.sim.tasks import load_task, resolve_task
from humanprompt_ros.train.estimator import EstimatorTraining, train_estimator, twin_views
from humanprompt_ros.train.stage2_data import PolicyEpisode


@pytest.fixture(scope="module")
def episodes():
    """Two expert episodes of push_box (128² frames, with state), as training sees them."""
    task = load_task(resolve_task("push_box"))
    out = []
    for seed in (0, 1):
        rec = expert_episode(task, "robot", seed)
        out.append(
            PolicyEpisode(
                np.stack(rec.frames), rec.actions, rec.proprio, np.ones(5, bool), "push_box", task.skill, "robot",
                seed, rec.state,
            )
        )  # fmt: skip
    return out


def test_projection_finds_the_objects_in_the_rendered_frame(episodes):
    """Where project() puts each object's centre and the goal, the rendered frame shows that object's colour
    (and the goal mark's), and unproject() at the same height gives the point back."""
    cam = sim_config()
    ep = episodes[0]
    rec = expert_episode(load_task(resolve_task("push_box")), "robot", 0, render=False)
    colours = [np.array(o["rgba"][:3]) for o in rec.instance["objects"]]
    state = ep.state[0]
    for k, colour in enumerate(colours):
        xyz = state[7 * k : 7 * k + 3]
        uv = project(cam, xyz, 128)
        assert np.allclose(unproject(cam, uv, xyz[2], 128), xyz, atol=1e-9)
        pixel = ep.frames[0][int(uv[1]), int(uv[0])] / 255.0
        # lit, not flat: the hue matches (the strongest channel of the object's colour is the pixel's too)
        assert np.argmax(pixel) == np.argmax(colour), (k, pixel, colour)
    goal = project(cam, np.array([*state[-3:-1], 0.0]), 128)
    assert ep.frames[0][int(goal[1]), int(goal[0])][1] > 150  # push_box's goal: a green disc


def test_targets_and_to_state_round_trip(episodes):
    """A perfect estimate (the targets themselves) maps back to the true state."""
    cam = sim_config()
    state = episodes[0].state
    uv, attrs = targets(state, cam, 128, 3)
    assert uv.shape == (len(state), 4, 2) and attrs.shape == (len(state), 4, 5)
    logits = attrs.copy()
    logits[..., 4] = np.where(attrs[..., 4] > 0, 10.0, -10.0)
    back = to_state({"uv": torch.from_numpy(uv), "attrs": torch.from_numpy(logits)}, cam, 128, 3)
    assert np.allclose(back, state, atol=2e-4)


def test_a_shift_moves_the_targets_with_the_image():
    frames = torch.zeros(4, 32, 32, 3, dtype=torch.uint8)
    frames[:, 10, 20] = 255  # one white pixel at (u, v) = (20, 10)
    uv = torch.tensor([[[20.5, 10.5]]]).expand(4, 1, 2)
    shifted, moved = shift_batch(frames, uv, 3)
    for b in range(4):
        v, u = np.argwhere(shifted[b, :, :, 0].numpy() == 255)[0]
        assert np.allclose(moved[b, 0].numpy(), [u + 0.5, v + 0.5])


def test_training_learns_and_a_checkpoint_round_trips(episodes, tmp_path):
    """Real training on real renders: the point error falls well below its start; a saved estimator loads
    and estimates the same; a file that is not an estimator is refused, saying what it is."""
    cam = sim_config()
    cfg = StateEstimatorConfig(channels=[16, 16, 32], shift=2)
    torch.manual_seed(0)
    uv, attrs = (torch.from_numpy(np.stack(x)) for x in zip(*[targets(e.state, cam, 128, 3) for e in episodes]))
    frames = torch.from_numpy(np.stack([e.frames for e in episodes]))

    def px(model) -> float:
        with torch.no_grad():
            out = model(frames.flatten(0, 1), torch.zeros(frames.shape[0] * frames.shape[1], dtype=torch.long))
        return float(estimator_loss(out, uv.flatten(0, 1), attrs.flatten(0, 1), 3)["px"])

    untrained = train_estimator(episodes, cam, cfg, EstimatorTraining(steps=0), show=False)
    model = train_estimator(episodes, cam, cfg, EstimatorTraining(steps=150, batch=16, lr=3e-3), show=False)
    before, after = px(untrained), px(model)
    assert after < 0.5 * before, (before, after)
    path = tmp_path / "est.safetensors"
    save_estimator(model, path)
    again = load_estimator(path)
    assert again.cfg.skills == ["push_to_goal"]
    f = episodes[0].frames[:3]
    assert np.allclose(estimate(model, f, "push_to_goal", cam), estimate(again, f, "push_to_goal", cam), atol=1e-5)
    with pytest.raises(ValueError, match="not 'rotate'"):
        estimate(again, f, "rotate", cam)
    # one that also reads the episode's first frame (what moved since) needs it
    first = train_estimator(episodes, cam, replace(cfg, first_frame=True), EstimatorTraining(steps=2), show=False)
    assert estimate(first, f, "push_to_goal", cam, first=episodes[0].frames[0]).shape == (3, 24)
    with pytest.raises(ValueError, match="first frame: pass first="):
        estimate(first, f, "push_to_goal", cam)
    from humanprompt_ros.models.checkpoint import CheckpointError, save_checkpoint

    other = save_checkpoint(tmp_path / "other.safetensors", {"w": torch.zeros(1)}, "policy", {})
    with pytest.raises(CheckpointError, match="is a 'policy' checkpoint, expected 'state_estimator'"):
        load_estimator(other)
    torch.save(model.state_dict(), tmp_path / "pickle.pt")  # a pickle is never unpickled
    with pytest.raises(CheckpointError, match="refusing to load .* execute code"):
        load_estimator(tmp_path / "pickle.pt")


def test_twin_views_read_a_robot_episode_under_the_human_only_twin_skill(episodes):
    """A robot push_box episode and a human pick_place demo of the same shared scene: the push frames, read as
    pick_place, get pick_place's goal and the box where the push has moved it; another seed gives nothing."""
    task = load_task(resolve_task("pick_place"))
    rec = expert_episode(task, "human", 0, render=False)
    human = PolicyEpisode(
        None, rec.actions, rec.proprio, np.ones(5, bool), "pick_place", task.skill, "human", 0, rec.state
    )
    views = twin_views([*episodes, human])
    robot_views = [v for v in views if v.embodiment == "robot"]
    assert [(v.task, v.skill, v.seed) for v in robot_views] == [("pick_place", "pick_place", 0)]
    view, push = robot_views[0], episodes[0]
    assert view.frames is push.frames and len(view.state) == len(push.state)
    np.testing.assert_allclose(view.state[0], rec.state[0], atol=1e-6)  # the twin's own first state
    np.testing.assert_allclose(view.state[:, -3:], np.broadcast_to(rec.state[0, -3:], view.state[:, -3:].shape))
    assert not np.allclose(view.state[:, -3:-1], push.state[:, -3:-1])  # pick_place's goal, not push_box's
    np.testing.assert_allclose(view.state[-1, :7], push.state[-1, :7])  # the box (both targets) where pushed
    assert np.linalg.norm(push.state[-1, :2] - push.state[0, :2]) > 0.02
    assert [(v.task, v.embodiment) for v in views if v.embodiment == "human"] == [("push_box", "human")]


def test_a_rollout_is_kept_up_to_the_frame_an_object_left_the_table(episodes):
    """A policy's rollout may knock an object off the table; it then falls on forever (z of metres below the
    table), which no image point or height describes: those frames are dropped, the rest kept."""
    from humanprompt_ros.train.estimator import on_table

    ep = episodes[0]
    assert on_table(ep) is ep  # nothing left the table: the episode itself
    state = ep.state.copy()
    state[5:, 2] = -3.0  # the target falls off at frame 5
    cut = on_table(replace(ep, state=state))
    assert len(cut.state) == len(cut.frames) == len(cut.proprio) == 5 and len(cut.actions) == 4
    state[:, 7] = 0.9  # the other object lies beyond the table's edge from the start
    assert on_table(replace(ep, state=state)) is None
    absent = state.copy()
    absent[:, 7:14] = 0.0  # an absent slot (present 0) never counts
    assert len(on_table(replace(ep, state=absent)).state) == 5
