"""``condition: state``: a policy given the simulator's true scene state and the skill instead of images —
trained on real HumanPrompt-Sim episodes, run closed loop in MuJoCo, refused where no state exists (ROS) — and
the same policy with a state estimator and a prompt embedding, alone or bundled into one file, from camera
frames and a prompt video, through the ROS graph."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.episodes import expert_dataset
from helpers.ros import RosProcesses, require_rclpy, robot_feed
from helpers.tiny_checkpoint import PLAIN_HEAD, tiny_stage1
from humanprompt_ros.config.nodes import PolicyConfig, StartupError
from humanprompt_ros.config.stage2 import PDCPSwitch, Stage2Config, Stage2Train
from humanprompt_ros.control.backend import build_backend
from humanprompt_ros.data import load_episode
from humanprompt_ros.models.diffusion_head import PolicyModelConfig
from humanprompt_ros.models.frame_encoder import FrameEncoderConfig
from humanprompt_ros.models.policy_model import load_policy_model
from humanprompt_ros.policies.learned import LearnedPolicy
from humanprompt_ros.sim.env import SimEnv
from humanprompt_ros.sim.runner import run_episode
from humanprompt_ros.sim.tasks import load_task, resolve_task
from humanprompt_ros.train.stage2 import train_stage2
from humanprompt_ros.train.stage2_data import load_policy_episodes

TASKS = ("open_drawer", "pull_puck")


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory) -> Path:
    """Two robot expert episodes of two tasks, saved as a dataset (MuJoCo, with state.npy)."""
    return expert_dataset(tmp_path_factory.mktemp("sim"), TASKS, "robot", (0, 1))


@pytest.fixture(scope="module")
def stage1(tmp_path_factory) -> Path:
    return tiny_stage1(tmp_path_factory.mktemp("s1"))


def tiny_stage2(data: Path, s1: Path, out: Path, **fields) -> Stage2Config:
    cfg = Stage2Config(
        data=str(data),
        stage1=str(s1),
        out=str(out),
        policy=PolicyModelConfig(
            horizon=4, width=16, depth=1, heads=2, train_timesteps=20, inference_steps=3, **PLAIN_HEAD
        ),
        train=Stage2Train(steps=6, batch_size=8, log_every=2, checkpoint_every=3, warmup_steps=1),
        **fields,
    )
    cfg.video_former.width = 16
    cfg.validate()
    return cfg


@pytest.fixture(scope="module")
def state_checkpoint(tmp_path_factory, sim_data, stage1) -> Path:
    cfg = tiny_stage2(sim_data, stage1, tmp_path_factory.mktemp("state"), condition="state")
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
    with pytest.raises(ValueError, match="not prompt tokens"):
        policy.set_encoded(np.zeros((1, 8, 32), np.float32), 0)
    with pytest.raises(ValueError, match=r"skill index in \[0, 2\), got 7"):
        policy.set_encoded(None, 7)
    assert int(policy.skill) == model.cfg.skills.index("pull_to_goal")  # the refused encodings changed nothing
    policy.set_encoded(np.zeros((1, 0, 0), np.float32), 0)  # the prompt encoder node's encoding: a skill only
    assert int(policy.skill) == 0
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


@pytest.fixture(scope="module")
def estimator_checkpoint(sim_data, tmp_path_factory) -> Path:
    """A state estimator (3 steps) trained on the same episodes' frames, with ``humanprompt-train estimator``."""
    from humanprompt_ros.cli.train import main as train_main

    out = tmp_path_factory.mktemp("estimator") / "estimator.safetensors"
    argv = ["estimator", "--data", str(sim_data), "--channels", "8,8,16", "--steps", "3", "--first-frame"]
    assert train_main([*argv, "--out", str(out)]) == 0
    return out


def test_the_estimator_cli_trains_one_the_benchmark_measures(estimator_checkpoint, sim_data, tmp_path, capsys):
    import subprocess
    import sys

    from helpers.ros import REPO_ROOT
    from humanprompt_ros.cli.train import main as train_main
    from humanprompt_ros.models.state_estimator import load_estimator

    est = load_estimator(estimator_checkpoint)
    assert est.cfg.channels == [8, 8, 16] and est.cfg.first_frame and est.cfg.skills == ["open_drawer", "pull_to_goal"]
    capsys.readouterr()
    assert train_main(["estimator", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "e.safetensors")]) == 2
    assert "error: " in capsys.readouterr().err and not (tmp_path / "e.safetensors").exists()
    bench = [sys.executable, "benchmarks/bench_state_estimator.py", "--checkpoint", str(estimator_checkpoint)]
    out = subprocess.run([*bench, "--heldout", "1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| open_drawer |" in out.stdout and "| pull_puck |" in out.stdout


@pytest.fixture(scope="module")
def embedding_checkpoint(sim_data, stage1, tmp_path_factory) -> Path:
    """A prompt embedding trained (100 steps) on the same episodes' videos, reading the same stage 1."""
    from humanprompt_ros.data import iter_episodes
    from humanprompt_ros.models.prompt_embedding import PromptEmbeddingConfig, save_prompt_embedding
    from humanprompt_ros.models.video_model import load_stage1
    from humanprompt_ros.train.prompt_embedding import PromptEmbeddingTraining, train_prompt_embedding

    vm, s1cfg, _ = load_stage1(stage1)
    emb = train_prompt_embedding(
        list(iter_episodes(sim_data)),
        vm,
        s1cfg,
        PromptEmbeddingConfig(dim=16, channels=[8, 16]),
        PromptEmbeddingTraining(steps=100, batch=4),
        show=False,
    )
    return save_prompt_embedding(tmp_path_factory.mktemp("embedding") / "prompt.safetensors", emb)


@pytest.fixture()
def mislabelled(sim_data, tmp_path) -> Path:
    """An open_drawer robot episode whose meta.json says pull_puck."""
    import shutil

    out = tmp_path / "drawer_labelled_pull"
    shutil.copytree(sim_data / "open_drawer" / "robot" / "0000001", out)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "skill": "pull_to_goal", "task": "pull_puck"}))
    return out


def test_a_state_policy_with_a_state_estimator_sees_only_images(state_checkpoint, estimator_checkpoint, sim_data):
    """``estimator=``: the state policy reads the state off each rendered frame (a state estimator trained on the
    same episodes' frames), so it runs from images without the simulator's state."""
    policy = LearnedPolicy(state_checkpoint, hand="allegro_right", estimator=estimator_checkpoint)
    assert policy.needs_frames and not policy.needs_state and not policy.needs_prompt_video
    seen = []
    act = policy.act

    def spy(frame, proprio, lag=0, state=None):
        seen.append((None if frame is None else frame.shape, state))
        return act(frame, proprio, lag, state)

    policy.act = spy
    env = SimEnv(load_task(resolve_task("open_drawer")), "robot")
    try:
        rec = run_episode(env, policy, seed=5, prompt=sim_data / "open_drawer" / "robot" / "0000000")
    finally:
        env.close()
    assert len(rec.actions) == env.horizon and np.all(np.isfinite(rec.actions))
    assert seen and all(shape == (128, 128, 3) and state is None for shape, state in seen)  # frames, never the state


def test_with_a_prompt_embedding_the_skill_is_the_one_the_prompt_video_shows(
    state_checkpoint, embedding_checkpoint, mislabelled, tiny_checkpoint
):
    """``prompt_embedding=``: the skill comes from the video (the nearest PDCP prototype), not from the prompt
    episode's label; a checkpoint that encodes prompts itself refuses one."""
    path = embedding_checkpoint
    policy = LearnedPolicy(state_checkpoint, hand="allegro_right", prompt_embedding=path)
    assert policy.needs_prompt_video
    report: dict = {}
    _, skill = policy.encode(mislabelled, report)
    assert report["recognized_skill"] == "open_drawer" and 0 <= report["prototype_distance"] <= 2
    assert policy.model.cfg.skills[int(skill)] == "open_drawer"
    without = LearnedPolicy(state_checkpoint, hand="allegro_right")
    assert without.model.cfg.skills[int(without.encode(mislabelled)[1])] == "pull_to_goal"  # the label
    with pytest.raises(ValueError, match="encodes prompts itself"):
        LearnedPolicy(tiny_checkpoint, prompt_embedding=path)


def test_the_ros_backend_refuses_a_state_policy_without_an_estimator(state_checkpoint):
    with pytest.raises(StartupError, match="true scene state .* bundle a state estimator into it"):
        build_backend(PolicyConfig(checkpoint=str(state_checkpoint)), "allegro_right")


def test_a_bundle_carries_its_estimator_and_prompt_embedding_into_ros(
    state_checkpoint, estimator_checkpoint, embedding_checkpoint, mislabelled, sim_data, tiny_checkpoint, tmp_path
):
    """``humanprompt-train export --estimator --prompt-embedding``: one half-precision file that runs from camera
    frames and reads the skill off the prompt video; the ROS backend takes it, and the prompt encoder's encoding
    (a skill, no tokens) installs in the policy node's backend. Mismatched parts are refused."""
    from humanprompt_ros.cli.train import main as train_main
    from humanprompt_ros.config.nodes import PromptEncoderConfig
    from humanprompt_ros.control.prompt import PromptValidator
    from humanprompt_ros.models.bundle import bundle_policy
    from humanprompt_ros.models.checkpoint import CheckpointError

    out = tmp_path / "bundle.safetensors"
    argv = ["export", "--checkpoint", str(state_checkpoint), "--out", str(out)]
    parts = ["--estimator", str(estimator_checkpoint), "--prompt-embedding", str(embedding_checkpoint)]
    assert train_main([*argv, *parts, "--set", "policy.execute_by_skill=open_drawer:2"]) == 0
    separate = LearnedPolicy(
        state_checkpoint, estimator=estimator_checkpoint, prompt_embedding=embedding_checkpoint, threads=1
    )
    policy = build_backend(PolicyConfig(checkpoint=str(out)), "allegro_right")  # no longer refused: it sees frames
    assert policy.needs_frames and policy.needs_prompt_video and not policy.needs_state
    assert policy.meta["bundle"]["prompt_embedding"]["shares_policy_stage1"]  # stage 1 stored once
    report: dict = {}
    policy.set_prompt(mislabelled)
    policy.encode(mislabelled, report)
    assert report["recognized_skill"] == "open_drawer" and int(policy.skill) == policy.model.cfg.skills.index(
        "open_drawer"
    )
    ep = load_episode(sim_data / "open_drawer" / "robot" / "0000001")
    image, proprio = ep.frames_at(128)[0], ep.proprio[0]
    separate.set_prompt(mislabelled)
    assert policy.execute == 2 and separate.execute == 4  # open_drawer's own chunk; else all 4 of the horizon
    a, b = policy.act(image, proprio), separate.act(image, proprio)
    assert a.shape == (2, 24) and np.abs(a - b[:2]).max() < 0.05  # the same models (stored in float16)
    with pytest.raises(ValueError, match=r"knows the skills \['open_drawer', 'pull_to_goal'\], not \['spin'\]"):
        LearnedPolicy(out, execute_by_skill={"spin": 4})
    assert train_main([*argv, *parts, "--set", "policy.execute_by_skill=open_drawer"]) == 2  # no count: refused
    # the prompt encoder node's side: a skill, no tokens, which the policy node's backend installs
    validator = PromptValidator(PromptEncoderConfig(checkpoint=str(out), prompt_dirs=[str(tmp_path)]))
    info = validator.validate(str(mislabelled))
    _, tokens, skill = validator.encoded
    assert tokens.shape == (1, 0, 0) and info["recognized_skill"] == "open_drawer"
    policy.set_encoded(tokens, skill)
    assert int(policy.skill) == skill
    # the no-prompt ablation: every prompt becomes a grey clip, whatever it shows
    blank = LearnedPolicy(out, blank_prompt=True)
    seen = {
        blank.encode(p, r := {})[1].item(): r["recognized_skill"]
        for p in (mislabelled, sim_data / "pull_puck" / "robot" / "0000000")
    }
    assert len(seen) == 1 and list(seen.values())[0] in policy.model.cfg.skills
    with pytest.raises(ValueError, match="reads no prompt video"):
        LearnedPolicy(state_checkpoint, blank_prompt=True)
    # given parts replace the bundled ones
    from humanprompt_ros.models.state_estimator import StateEstimator, StateEstimatorConfig, save_estimator

    other = StateEstimator(StateEstimatorConfig(channels=[8, 8], skills=policy.estimator.cfg.skills))
    other_path = save_estimator(other, tmp_path / "other_estimator.safetensors")
    replaced = LearnedPolicy(out, estimator=other_path)
    assert replaced.estimator.cfg.channels == [8, 8] and policy.estimator.cfg.channels == [8, 8, 16]
    assert replaced.embedding.cfg.skills == policy.embedding.cfg.skills  # the part not replaced: the bundle's
    with pytest.raises(CheckpointError, match="already a bundle"):
        bundle_policy(out, tmp_path / "again.safetensors", estimator_checkpoint)
    with pytest.raises(CheckpointError, match="goes with a condition: state policy"):
        bundle_policy(tiny_checkpoint, tmp_path / "x.safetensors", estimator_checkpoint)
    with pytest.raises(CheckpointError, match="expected 'state_estimator'"):
        bundle_policy(state_checkpoint, tmp_path / "x.safetensors", embedding_checkpoint)


@pytest.fixture(scope="module")
def bundle(state_checkpoint, estimator_checkpoint, embedding_checkpoint, tmp_path_factory) -> Path:
    from humanprompt_ros.models.bundle import bundle_policy

    return bundle_policy(
        state_checkpoint,
        tmp_path_factory.mktemp("bundle") / "b.safetensors",
        estimator_checkpoint,
        embedding_checkpoint,
    )


@pytest.mark.ros
@require_rclpy()
@pytest.mark.timeout(180)
def test_a_bundle_drives_the_hand_through_the_ros_graph(bundle, mislabelled, ros_domain_id, ros_env):
    """Real DDS: the prompt encoder reads the skill off the prompt video and publishes it (no tokens); the policy
    node installs it without encoding again and turns camera frames into hand targets."""
    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.models.checkpoint import checkpoint_identity
    from humanprompt_ros.paths import config_path
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import msg_to_tokens
    from humanprompt_ros.ros.graph_client import GraphClient

    frames = load_episode(mislabelled).frames_at(128)
    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    with RosProcesses(ros_env) as procs:
        enc, pol = procs.start_checkpoint_pair(bundle, mislabelled.parent)
        c = GraphClient(ros_domain_id)
        peer = c.peer
        tokens = peer.record(topics.PROMPT_TOKENS)
        try:
            with robot_feed(peer, hand, frames) as obs_pub:
                assert c.enc_params.wait_for_service(timeout_sec=60), enc.log()
                peer.wait_for_subscription(obs_pub, timeout=60)
                ok, reason = c.set_prompt(str(mislabelled))
                assert ok, reason
                peer.wait_until(lambda: c.prompt.last() and json.loads(c.prompt.last()[1].data).get("id"), 20, "prompt")
                prompt = json.loads(c.prompt.last()[1].data)
                assert (
                    prompt["recognized_skill"] == "open_drawer" and prompt["skill"] == "pull_to_goal"
                )  # not the label
                peer.wait_until(lambda: tokens.last(), 10, "the prompt's encoding")
                meta, arr = msg_to_tokens(tokens.last()[1])
                assert meta == {"prompt_id": prompt["id"], "checkpoint": checkpoint_identity(bundle), "skill": 0}
                assert arr.shape == (1, 0, 0)
                peer.wait_until(lambda: len(c.targets) >= 5, 60, f"hand targets\n{pol.log()}")
                status = c.node_status("policy")
                assert int(status["prompts_from_tokens"]) == 1 and int(status["prompts_encoded_here"]) == 0, status
                assert pol.returncode is None and enc.returncode is None
        finally:
            c.close()


def test_episodes_without_a_recorded_state_are_refused_for_a_state_policy(sim_data, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(sim_data / "open_drawer", copy / "open_drawer")
    (copy / "open_drawer" / "robot" / "0000001" / "state.npy").unlink()
    with pytest.raises(ValueError, match=r"0000001: no state.npy .* `humanprompt-sim generate`"):
        load_policy_episodes(copy, 32, show=False, frames=False, state=True)
    assert len(load_policy_episodes(copy, 32, show=False, frames=False)) == 2  # without state: both load


def test_an_image_policy_without_stage1_features_sees_its_own_frame_size_and_learns_to_locate_objects(
    sim_data, stage1, tmp_path
):
    """stage1_features: false + frame_encoder.image_size + state_weight: the head reads the oracle's skill token
    and the image points of a 48-pixel frame (the stage-1 model works at 32); a probe learns the state."""
    fe = FrameEncoderConfig(enabled=True, channels=[8, 8], keypoints=4, image_size=48, state_weight=1.0)
    cfg = tiny_stage2(
        sim_data,
        stage1,
        tmp_path / "run",
        condition="skill_oracle",
        stage1_features=False,
        prompt_tokens=False,
        pdcp=PDCPSwitch(enabled=False, pool="scene"),
        frame_encoder=fe,
    )
    episodes = load_policy_episodes(sim_data, 48, show=False, state=True)
    assert episodes[0].frames.shape[1:] == (48, 48, 3)
    final = train_stage2(cfg, episodes)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["state_loss"]) for r in logged)
    model, _ = load_policy_model(final)
    assert model.frame_size == 48 and model.n_former == 0
    assert not torch.allclose(model.state_probe.norm.mean[:2], torch.zeros(2))
    policy = LearnedPolicy(final, hand="allegro_right", execute=2)
    policy.set_prompt(sim_data / "open_drawer" / "robot" / "0000000")
    camera = np.zeros((128, 128, 3), np.uint8)  # any camera size: resized to the encoder's 48
    assert policy.act(camera, np.zeros(24))[0].shape == (24,)
    cond = model.condition_on_frame(None, camera, torch.tensor([0]))
    assert cond.shape[1] == 1 + 4  # the skill token and the image points, nothing from stage 1
    with pytest.raises(ValueError, match="reads images itself"):  # a state estimator is for state checkpoints
        LearnedPolicy(final, hand="allegro_right", estimator=tmp_path / "any.safetensors")


def test_stage1_features_off_needs_the_frame_encoder_and_the_state_loss_needs_it_on(sim_data, stage1, tmp_path):
    with pytest.raises(ValueError, match="set frame_encoder.enabled: true"):
        tiny_stage2(sim_data, stage1, tmp_path, stage1_features=False, frame_encoder=FrameEncoderConfig(enabled=False))
    with pytest.raises(ValueError, match="state_weight: an auxiliary loss of the frame encoder, which is off"):
        tiny_stage2(sim_data, stage1, tmp_path, frame_encoder=FrameEncoderConfig(enabled=False, state_weight=1.0))


def test_state_noise_perturbs_only_what_is_there_and_only_while_training():
    """state_encoder.*_noise: the state a state estimator would give (positions, yaw, articulation a little
    off) on present objects and the goal; absent slots stay zero, flags and heights untouched; eval is exact."""
    from humanprompt_ros.models.state_encoder import StateEncoder, StateEncoderConfig

    enc = StateEncoder(StateEncoderConfig(position_noise=0.01, yaw_noise=0.1, articulation_noise=0.02), width=8)
    s = torch.zeros(4000, 24)
    s[:, :7] = torch.tensor([0.1, -0.05, 0.03, 1.0, 0.0, 0.02, 1.0])  # one object; the others absent
    s[:, 21:] = torch.tensor([0.12, 0.0, 1.0])  # a goal
    out = enc.perturb(s)
    assert torch.equal(out[:, 7:21], s[:, 7:21]) and torch.equal(out[:, [2, 6, 23]], s[:, [2, 6, 23]])
    assert (
        abs(float((out[:, 0] - s[:, 0]).std()) - 0.01) < 0.001 and abs(float((out[:, 21] - 0.12).std()) - 0.01) < 0.001
    )
    yaw = torch.atan2(out[:, 4], out[:, 3])
    assert abs(float(yaw.std()) - 0.1) < 0.01 and torch.allclose(out[:, 3] ** 2 + out[:, 4] ** 2, torch.ones(4000))
    assert abs(float((out[:, 5] - 0.02).std()) - 0.02) < 0.002
    enc.eval()
    assert torch.equal(enc(s), enc(s))  # no noise outside training
    enc.train()
    assert not torch.equal(enc(s), enc(s))


def test_motion_lag_adds_the_wrist_motion_in_training_and_in_the_closed_loop(sim_data, stage1, tmp_path):
    """``state_encoder.motion_lag``: one more token, the wrist's displacement over the last lag steps, fitted and
    trained from the demos' proprioception and, closed loop, from what the policy was given at its earlier
    calls (so going down and coming back up differ)."""
    from humanprompt_ros.models.state_encoder import StateEncoderConfig, encoder_input, wrist_motion

    proprio = np.zeros((10, 24), np.float32)
    proprio[:, 2] = np.arange(10) * 0.01  # the wrist rises 1 cm a step
    np.testing.assert_allclose(wrist_motion(proprio, np.array([0, 2, 9]), 4)[:, 2], [0.0, 0.02, 0.04], atol=1e-7)
    se = StateEncoderConfig(motion_lag=4)
    assert encoder_input(se, np.ones((10, 24), np.float32), proprio, 9).shape == (27,) and se.input_dim == 27

    cfg = tiny_stage2(sim_data, stage1, tmp_path, condition="state", state_encoder=se)
    path = train_stage2(cfg, load_policy_episodes(sim_data, 32, show=False, frames=False, state=True))
    model, _ = load_policy_model(path)
    assert model.state_encoder.norm.mean.shape == (27,) and len(model.state_encoder.groups) == 5
    policy = LearnedPolicy(path, hand="allegro_right", execute=2)
    seen = []
    condition = policy.model.condition

    def spy(*args, states=None, **kw):
        seen.append(states[0, -3:].clone())
        return condition(*args, states=states, **kw)

    policy.model.condition = spy
    env = SimEnv(load_task(resolve_task("open_drawer")), "robot", render=False)
    try:
        rec = run_episode(env, policy, seed=5, prompt=sim_data / "open_drawer" / "robot" / "0000000")
    finally:
        env.close()
    assert torch.equal(seen[0], torch.zeros(3))  # no earlier call: no motion yet
    calls = np.arange(0, len(rec.actions), 2)[: len(seen)]
    expected = rec.proprio[calls, :3] - rec.proprio[np.maximum(calls - 4, 0), :3]
    np.testing.assert_allclose(torch.stack(seen).numpy(), expected, atol=1e-5)
    assert np.abs(expected).max() > 1e-3  # the hand did move
