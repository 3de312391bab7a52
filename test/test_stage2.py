"""Stage 2: the prompt-conditioned policy — training mechanics, ablation switches, the Policy backend,
and checkpoints that refuse to load for the wrong hand, action size, or when unsafe/corrupt."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.synthetic_clips import make_dataset, make_policy_dataset
from helpers.tiny_checkpoint import PLAIN_HEAD, plain_stage2, tiny_config
from humanprompt_ros.config.stage2 import PDCPSwitch, Stage2Config, Stage2Train
from humanprompt_ros.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from humanprompt_ros.models.diffusion_head import PolicyModelConfig
from humanprompt_ros.models.frame_encoder import FrameEncoderConfig
from humanprompt_ros.models.policy_model import load_policy_model
from humanprompt_ros.models.video_former import VideoFormerConfig
from humanprompt_ros.policies.learned import LearnedPolicy
from humanprompt_ros.train.stage1 import train_stage1
from humanprompt_ros.train.stage2 import train_stage2
from humanprompt_ros.video import write_video


@pytest.fixture(scope="module")
def stage1_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("s1")
    return train_stage1(tiny_config(out / "run", steps=10, ae_steps=10), make_dataset(range(2), size=32, length=12))


def stage2_config(out: Path, s1: Path, **kw) -> Stage2Config:
    return Stage2Config(
        data="",
        stage1=str(s1),
        out=str(out),
        video_former=VideoFormerConfig(queries_per_frame=2, width=16, depth=1, heads=2),
        policy=PolicyModelConfig(
            horizon=4, width=16, depth=1, heads=2, train_timesteps=20, inference_steps=3, **PLAIN_HEAD
        ),
        train=Stage2Train(steps=6, batch_size=8, log_every=2, checkpoint_every=3, warmup_steps=1),
        **plain_stage2(**kw),
    )


@pytest.fixture(scope="module")
def episodes():
    return make_policy_dataset(range(2), size=32, length=12)


@pytest.fixture(scope="module")
def policy_checkpoint(tmp_path_factory, stage1_checkpoint, episodes) -> Path:
    return train_stage2(stage2_config(tmp_path_factory.mktemp("s2") / "run", stage1_checkpoint), episodes)


def test_load_policy_episodes_filters_by_embodiment_and_count_per_task(tmp_path):
    """The policy's training data: successful episodes with actions and proprio, frames at the model's size;
    ``embodiment`` keeps one embodiment's, ``per_task`` the first N of each task and embodiment."""
    from humanprompt_ros.data import write_episode
    from humanprompt_ros.train.stage2_data import load_policy_episodes

    frames = [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(5)]

    def episode(name, task, embodiment, seed, success=True, proprio=True):
        meta = {
            "task": task,
            "skill": task,
            "embodiment": embodiment,
            "seed": seed,
            "success": success,
            "hand": "allegro_right",
            "mask": [True] * 5,
        }
        write_episode(
            tmp_path / name,
            frames,
            np.full((4, 24), seed, np.float32),
            meta,
            proprio=np.zeros((5, 24)) if proprio else None,
        )

    for i in range(3):
        episode(f"a_human_{i}", "press_button", "human", i)
        episode(f"b_robot_{i}", "press_button", "robot", 10 + i)
    episode("c_human_0", "rotate", "human", 20)
    episode("d_failed", "rotate", "human", 21, success=False)
    episode("e_no_proprio", "rotate", "human", 22, proprio=False)

    everything = load_policy_episodes(tmp_path, 8, show=False)
    assert [e.seed for e in everything] == [0, 1, 2, 10, 11, 12, 20]  # not the failed one, nor the one without proprio
    first = everything[0]
    assert first.frames.shape == (5, 8, 8, 3) and first.actions.dtype == np.float32 and np.all(first.actions == 0)
    assert [e.seed for e in load_policy_episodes(tmp_path, 8, show=False, embodiment="robot")] == [10, 11, 12]
    assert [e.seed for e in load_policy_episodes(tmp_path, 8, show=False, per_task=2)] == [0, 1, 10, 11, 20]
    assert [
        (e.task, e.seed) for e in load_policy_episodes(tmp_path, 8, show=False, embodiment="human", per_task=1)
    ] == [("press_button", 0), ("rotate", 20)]
    with pytest.raises(ValueError, match="no successful episodes"):
        load_policy_episodes(tmp_path, 8, show=False, embodiment="alien")


def test_policy_backend_acts_with_temporal_ensembling(policy_checkpoint, episodes, tmp_path):
    policy = LearnedPolicy(policy_checkpoint, hand="allegro_right", execute=2)
    with pytest.raises(ValueError, match="no prompt"):
        policy.act(episodes[0].frames[0], episodes[0].proprio[0])
    prompt = write_video(tmp_path / "prompt.mp4", episodes[0].frames, fps=10)
    policy.set_prompt(prompt)
    a = policy.act(episodes[0].frames[0], episodes[0].proprio[0])
    b = policy.act(episodes[0].frames[1], episodes[0].proprio[1])
    assert a.shape == b.shape == (2, 24) and np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    policy.reset()
    again = policy.act(episodes[0].frames[0], episodes[0].proprio[0])
    np.testing.assert_allclose(again, a, atol=1e-5)  # same seed after reset → same plan


def test_checkpoint_describes_itself_and_refuses_mismatches(policy_checkpoint, tmp_path):
    model, meta = load_policy_model(policy_checkpoint)
    assert meta["kind"] == "policy" and meta["hand"] == "allegro_right" and meta["action_dim"] == 24
    assert torch.any(model.head.action_norm.std != 1.0)  # normalisation statistics travel with the weights
    with pytest.raises(CheckpointError, match="trained for hand 'allegro_right', the configured hand is 'shadow'"):
        load_policy_model(policy_checkpoint, hand="shadow")
    with pytest.raises(CheckpointError, match="24-D actions, this stack uses 30-D"):
        load_policy_model(policy_checkpoint, action_dim=30)
    pickled = tmp_path / "evil.safetensors"
    torch.save(model.state_dict(), pickled)
    with pytest.raises(CheckpointError, match="can execute code on load"):
        LearnedPolicy(pickled)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(policy_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        LearnedPolicy(corrupt)
    tensors, meta = load_checkpoint(policy_checkpoint)
    name = next(k for k, v in tensors.items() if v.ndim == 2)
    tensors[name] = torch.zeros(3, 3)  # readable, named right, wrong shape: torch alone raises a bare RuntimeError
    reshaped = save_checkpoint(
        tmp_path / "reshaped.safetensors",
        tensors,
        "policy",
        meta.pop("config"),
        **{k: v for k, v in meta.items() if k not in ("format", "format_version", "kind")},
    )
    with pytest.raises(CheckpointError, match=rf"weights do not match .*other shape \['{re.escape(name)}'\]"):
        LearnedPolicy(reshaped)


@pytest.mark.parametrize(
    "switches",
    [
        {"condition": "none"},
        {"condition": "skill_oracle"},
        {"pdcp": PDCPSwitch(enabled=False)},
        {"stage1_pretrained": False},
        {"frame_encoder": FrameEncoderConfig(enabled=True, channels=[8, 8], keypoints=4)},
    ],
)
def test_every_ablation_trains(tmp_path, stage1_checkpoint, episodes, switches):
    final = train_stage2(stage2_config(tmp_path / "run", stage1_checkpoint, **switches), episodes)
    model, _ = load_policy_model(final)
    for key, value in switches.items():
        assert getattr(model.cfg, key) == value


def test_a_policy_with_its_own_frame_encoder_acts_and_keeps_image_points_out_of_pdcp(
    tmp_path, stage1_checkpoint, episodes
):
    fe = FrameEncoderConfig(enabled=True, channels=[8, 8], keypoints=4)
    final = train_stage2(stage2_config(tmp_path / "run", stage1_checkpoint, frame_encoder=fe), episodes)
    policy = LearnedPolicy(final, hand="allegro_right", execute=2)
    policy.set_prompt(write_video(tmp_path / "prompt.mp4", episodes[0].frames, fps=10))
    big = np.repeat(np.repeat(episodes[0].frames[0], 3, axis=0), 3, axis=1)  # a camera frame larger than the model's
    a = policy.act(big, episodes[0].proprio[0])
    assert a.shape == (2, 24) and np.all(np.isfinite(a))
    m = policy.model
    latent = m.video_model.encode_frames(torch.from_numpy(episodes[0].frames[:1]))
    with pytest.raises(ValueError, match="pass frames"):
        m.condition(policy.tokens, latent)
    cond = m.condition(policy.tokens, latent, frames=torch.from_numpy(episodes[0].frames[:1]))
    points = m.frame_encoder(torch.from_numpy(episodes[0].frames[:1]))  # the image points come last
    torch.testing.assert_close(cond[:, -4:], points)
    torch.testing.assert_close(m.pooled(cond), cond[:, :-4].mean(1))  # PDCP's z ignores them
    m.cfg.pdcp.image_points = True  # ... unless it is told to pool them too
    torch.testing.assert_close(m.pooled(cond), cond.mean(1))
    # pdcp.pool: prompt — z is the pool of the projected prompt tokens alone: another frame leaves it as it is
    m.cfg.pdcp.pool = "prompt"
    z = m.pooled(cond)
    torch.testing.assert_close(z, m.prompt_proj(policy.tokens).mean(1))
    other = torch.from_numpy(episodes[1].frames[5:6])
    cond2 = m.condition(policy.tokens, m.video_model.encode_frames(other), frames=other)
    assert not torch.allclose(cond2, cond)
    torch.testing.assert_close(m.pooled(cond2), z)
    m.cfg.condition = "skill_oracle"  # the oracle's skill token (between prompt and points) stays out too
    cond3 = m.condition(policy.tokens, latent, torch.tensor([0]), frames=torch.from_numpy(episodes[0].frames[:1]))
    assert cond3.shape[1] == cond.shape[1] + 1
    torch.testing.assert_close(m.pooled(cond3), z)
    with pytest.raises(ValueError, match="pool: must be 'scene' or 'prompt'"):
        PDCPSwitch(pool="frame").validate()
    with pytest.raises(ValueError, match="set prompt_tokens: true"):
        Stage2Config(data="", stage1="", prompt_tokens=False, pdcp=PDCPSwitch(pool="prompt")).validate()


def test_a_head_on_the_global_condition_trains_acts_and_is_guided(
    tmp_path, stage1_checkpoint, episodes, policy_checkpoint
):
    """policy.global_cond (+ global_dropout): the head is modulated by the pooled z; the checkpoint acts
    through the Policy backend, with the guidance scale overridable there. A head trained without a null
    condition refuses guidance, saying why."""
    cfg = stage2_config(tmp_path / "run", stage1_checkpoint)
    cfg.policy.global_cond, cfg.policy.global_dropout = True, 0.2
    final = train_stage2(cfg, episodes)
    prompt = write_video(tmp_path / "prompt.mp4", episodes[0].frames, fps=10)
    plans = {}
    for w in (1.0, 3.0):
        policy = LearnedPolicy(final, hand="allegro_right", execute=2, guidance=w)
        assert policy.model.head.cfg.guidance == w and policy.model.head.denoiser.null_global is not None
        policy.set_prompt(prompt)
        plans[w] = policy.act(episodes[0].frames[0], episodes[0].proprio[0])
        assert plans[w].shape == (2, 24) and np.all(np.isfinite(plans[w]))
    assert not np.allclose(plans[1.0], plans[3.0])  # the guided pass changes the plan
    from humanprompt_ros.cli.train import main as train_main

    guided = tmp_path / "guided.safetensors"  # a shipped file can carry its scale; the backend then runs it
    assert (
        train_main(
            [
                "export",
                "--checkpoint",
                str(final),
                "--out",
                str(guided),
                "--dtype",
                "float32",
                "--set",
                "policy.guidance=3",
            ]
        )
        == 0
    )
    policy = LearnedPolicy(guided, hand="allegro_right", execute=2)
    assert policy.model.head.cfg.guidance == 3.0 and policy.meta["inference_overrides"] == {"policy.guidance": 3.0}
    policy.set_prompt(prompt)
    np.testing.assert_allclose(policy.act(episodes[0].frames[0], episodes[0].proprio[0]), plans[3.0], atol=1e-5)
    with pytest.raises(ValueError, match="needs a head trained with global_dropout"):
        LearnedPolicy(policy_checkpoint, guidance=2.0)


def test_pdcp_terms_are_logged_and_training_resumes(tmp_path, stage1_checkpoint, episodes):
    import json
    import shutil
    import warnings

    from humanprompt_ros.models.checkpoint import load_checkpoint

    cfg = stage2_config(tmp_path / "run", stage1_checkpoint)
    train_stage2(cfg, episodes)
    state = tmp_path / "run" / "last.train.safetensors"
    assert load_checkpoint(state, kind="train_state")[1]["position"] == {"step": 6}
    shutil.copy(state, tmp_path / "step6.train.safetensors")
    cfg.train.steps = 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # weights and optimizer state of the same step: resumed quietly
        train_stage2(cfg, episodes)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)) and max(steps) == 8
    assert {"diffusion_loss", "nt_xent_loss", "proto_ce_loss", "siamese_loss"} <= set(records[0])
    # A run stopped between writing the weights (step 10) and the optimizer state (still step 6's):
    # the resume says so and starts fresh moments instead of pairing them.
    shutil.copy(tmp_path / "step6.train.safetensors", state)
    cfg.train.steps = 12
    with pytest.warns(
        UserWarning,
        match=r"optimizer state of \{'step': 6\}, but the weights beside it are at "
        r"\{'step': 10\}",
    ):
        train_stage2(cfg, episodes)
    assert load_checkpoint(state, kind="train_state")[1]["position"] == {"step": 12}


def test_init_starts_from_a_policy_checkpoint_and_refuses_a_mismatched_one(
    tmp_path, policy_checkpoint, stage1_checkpoint, episodes
):
    start, _ = load_policy_model(policy_checkpoint)
    cfg = stage2_config(tmp_path / "run", stage1_checkpoint, init=str(policy_checkpoint), stage1_trainable=True)
    cfg.train.steps = 0  # nothing trained: the run's weights are the init checkpoint's
    same, _ = load_policy_model(train_stage2(cfg, episodes))
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in start.state_dict().items())
    cfg = stage2_config(tmp_path / "tuned", stage1_checkpoint, init=str(policy_checkpoint), stage1_trainable=True)
    tuned, _ = load_policy_model(train_stage2(cfg, episodes))
    prompt_enc = lambda m: m.video_model.prompt_encoder.state_dict()  # noqa: E731
    assert not all(torch.equal(v, prompt_enc(tuned)[k]) for k, v in prompt_enc(start).items())
    assert torch.equal(start.head.action_norm.mean, tuned.head.action_norm.mean)  # the init's normalisers
    wide = stage2_config(tmp_path / "wide", stage1_checkpoint, init=str(policy_checkpoint))
    wide.policy.width = 32
    with pytest.raises(CheckpointError, match="does not match the model this config describes"):
        train_stage2(wide, episodes)
    with pytest.raises(CheckpointError, match="trained on tasks .* this data has"):
        train_stage2(
            stage2_config(tmp_path / "other", stage1_checkpoint, init=str(policy_checkpoint)),
            [e for e in episodes if e.task == episodes[0].task],
        )


def test_paired_cross_embodiment_term_pairs_twins_and_trains(tmp_path, stage1_checkpoint, episodes):
    import json

    from humanprompt_ros.models.policy_model import PromptPolicyModel
    from humanprompt_ros.models.video_model import load_stage1
    from humanprompt_ros.train.batcher import Batcher

    fe = FrameEncoderConfig(enabled=True, channels=[8, 8], keypoints=4)
    pdcp = PDCPSwitch(align_weight=1.0, align_pairs=4)
    cfg = stage2_config(tmp_path / "run", stage1_checkpoint, frame_encoder=fe, pdcp=pdcp)
    cfg.tasks, cfg.skills = sorted({e.task for e in episodes}), sorted({e.skill for e in episodes})
    vm, s1cfg, _ = load_stage1(stage1_checkpoint)
    batcher = Batcher(PromptPolicyModel(cfg, s1cfg, vm), episodes, seed=0)
    assert len(batcher.twins) == len(episodes) // 2  # every robot clip has its human twin
    for r, h in batcher.twins:
        er, eh = episodes[r], episodes[h]
        assert (er.embodiment, eh.embodiment) == ("robot", "human") and (er.task, er.seed) == (eh.task, eh.seed)
    plain = Batcher(PromptPolicyModel(cfg, s1cfg, vm), episodes, seed=0).sample(8, torch.device("cpu"))
    b = batcher.sample(8, torch.device("cpu"), pairs=4)
    assert b["twin_robot"]["frame"].shape == b["twin_human"]["frame"].shape == (4, 32, 32, 3)
    torch.testing.assert_close(b["actions"], plain["actions"])  # the main batch is the one without twins
    # a robot twin shows the robot (dark background), its human twin the human (light), same moment
    assert b["twin_robot"]["frame"].float().mean() < b["twin_human"]["frame"].float().mean()

    trained = train_stage2(cfg, episodes)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["align_loss"]) and r["align_loss"] > 0 for r in records)
    assert load_policy_model(trained)[0].cfg.pdcp.align_weight == 1.0
    cfg_off = stage2_config(
        tmp_path / "off", stage1_checkpoint, frame_encoder=fe, pdcp=PDCPSwitch(enabled=False, align_weight=1.0)
    )
    train_stage2(cfg_off, episodes)  # PDCP off: no paired term either
    assert "align_loss" not in (tmp_path / "off" / "metrics.jsonl").read_text()
    for condition in ("none", "skill_oracle"):  # the ablations keep it: it is about the frame, not the prompt
        run = tmp_path / condition
        train_stage2(stage2_config(run, stage1_checkpoint, frame_encoder=fe, pdcp=pdcp, condition=condition), episodes)
        assert "align_loss" in (run / "metrics.jsonl").read_text()


@pytest.mark.parametrize("pretrained,trainable", [(True, False), (False, False), (False, True), (True, True)])
def test_stage1_weights_random_or_trained_as_configured(tmp_path, stage1_checkpoint, episodes, pretrained, trainable):
    from humanprompt_ros.models.video_model import build_video_model, load_stage1

    cfg = stage2_config(tmp_path / "run", stage1_checkpoint, stage1_pretrained=pretrained, stage1_trainable=trainable)
    trained, _ = load_policy_model(train_stage2(cfg, episodes))
    s1, s1cfg, _ = load_stage1(stage1_checkpoint)
    torch.manual_seed(cfg.train.seed)
    start = s1 if pretrained else build_video_model(s1cfg.model)  # what training started from
    unchanged = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert unchanged(start.prompt_encoder.state_dict(), trained.video_model.prompt_encoder.state_dict()) != trainable
    assert unchanged(start.autoencoder.state_dict(), trained.video_model.autoencoder.state_dict())  # always fixed
    assert unchanged(s1.autoencoder.state_dict(), trained.video_model.autoencoder.state_dict()) == pretrained


def test_feature_store_matches_the_live_representation_and_is_shared(tmp_path, stage1_checkpoint, episodes):
    from humanprompt_ros.models.policy_model import PromptPolicyModel
    from humanprompt_ros.models.video_model import load_stage1
    from humanprompt_ros.train.batcher import Batcher
    from humanprompt_ros.train.features import FeatureStore

    cfg = stage2_config(tmp_path / "run", stage1_checkpoint)
    cfg.tasks, cfg.skills = sorted({e.task for e in episodes}), sorted({e.skill for e in episodes})
    vm, s1cfg, _ = load_stage1(stage1_checkpoint)
    model = PromptPolicyModel(cfg, s1cfg, vm).eval()
    batcher = Batcher(model, episodes, seed=0)
    store = batcher.store
    assert store is not None and store.prompts.shape == (len(episodes), 2)
    for i, t, k in [(0, 0, 0), (1, 5, 1), (len(episodes) - 1, 3, 1)]:
        p = int(store.prompts[i, k])
        assert episodes[p].task == episodes[i].task and p != i
        with torch.no_grad():
            live = model.features(
                model.encode_prompt(episodes[p].frames),
                vm.encode_frames(torch.from_numpy(episodes[i].frames[t : t + 1])),
            )[0]
        torch.testing.assert_close(store.get(i, t, k), live, atol=2e-2, rtol=1e-2)
    files = list((stage1_checkpoint.parent / "features").glob("*.npy"))
    again = FeatureStore.build(model, episodes, batcher.prompt_pool, 2, seed=cfg.train.seed)
    assert list((stage1_checkpoint.parent / "features").glob("*.npy")) == files  # loaded, not rebuilt
    np.testing.assert_array_equal(again.prompts, store.prompts)
    b = batcher.sample(4, torch.device("cpu"))
    assert b["features"].shape[1:] == store.data.shape[2:]


def test_prompt_only_demos_prompt_but_never_train(tmp_path, stage1_checkpoint, episodes):
    """``prompt_data``: extra human demos widen each task's prompt pool; no action of theirs is a target."""
    import dataclasses

    from humanprompt_ros.models.policy_model import PromptPolicyModel
    from humanprompt_ros.models.video_model import load_stage1
    from humanprompt_ros.train.batcher import Batcher

    extra = [
        dataclasses.replace(e, actions=np.full_like(e.actions, 1e3))  # a target no training demo has
        for e in make_policy_dataset(range(2, 6), size=32, length=12)
        if e.embodiment == "human"
    ]
    cfg = stage2_config(tmp_path / "run", stage1_checkpoint)
    cfg.tasks, cfg.skills = sorted({e.task for e in episodes}), sorted({e.skill for e in episodes})
    vm, s1cfg, _ = load_stage1(stage1_checkpoint)
    model = PromptPolicyModel(cfg, s1cfg, vm).eval()
    batcher = Batcher(model, episodes, seed=0, prompt_episodes=extra)
    n = len(episodes)
    assert batcher.store is not None and batcher.store.prompts.shape == (n, 2)  # features of training frames only
    pool = batcher.prompt_pool(0)
    assert any(j >= n for j in pool) and all(batcher.episodes[j].task == episodes[0].task for j in pool)
    assert (batcher.store.prompts >= n).any()  # the cache draws prompt-only demos too
    i, k = map(int, np.argwhere(batcher.store.prompts >= n)[0])
    p = int(batcher.store.prompts[i, k])
    with torch.no_grad():
        live = model.features(
            model.encode_prompt(batcher.episodes[p].frames), vm.encode_frames(torch.from_numpy(episodes[i].frames[:1]))
        )[0]
    torch.testing.assert_close(batcher.store.get(i, 0, k), live, atol=2e-2, rtol=1e-2)
    for _ in range(10):
        assert batcher.sample(16, torch.device("cpu"))["actions"].abs().max() < 100
    plain = Batcher(model, episodes, seed=0).store
    assert plain.data.filename != batcher.store.data.filename  # another cache: other prompts
    cfg.prompt_data = "prompts"  # recorded in the checkpoint's config
    ckpt = train_stage2(cfg, episodes, prompt_episodes=extra)
    assert load_policy_model(ckpt)[1]["config"]["prompt_data"] == "prompts"


def test_a_half_precision_export_loads_and_acts_like_the_original(policy_checkpoint, episodes, tmp_path):
    from humanprompt_ros.cli.train import main as train_main

    half = tmp_path / "half.safetensors"
    assert train_main(["export", "--checkpoint", str(policy_checkpoint), "--out", str(half)]) == 0
    assert half.stat().st_size < 0.6 * policy_checkpoint.stat().st_size
    prompt = write_video(tmp_path / "prompt.mp4", episodes[0].frames, fps=10)
    acts = []
    for path in (policy_checkpoint, half):
        policy = LearnedPolicy(path, hand="allegro_right", execute=2)
        policy.set_prompt(prompt)
        acts.append(policy.act(episodes[0].frames[0], episodes[0].proprio[0]))
        assert next(policy.model.parameters()).dtype == torch.float32  # cast back on load
    np.testing.assert_allclose(acts[1], acts[0], atol=0.05)
    _, meta = load_policy_model(half, "allegro_right")
    assert meta["stored_dtype"] == "float16"
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04junk")
    assert train_main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "x.safetensors")]) == 2


def test_export_changes_how_a_checkpoint_runs_but_never_what_it_learned(policy_checkpoint, tmp_path, capsys):
    from humanprompt_ros.cli.train import main as train_main

    assert LearnedPolicy(policy_checkpoint).execute == 4  # the default 8, capped at this tiny model's horizon 4
    out = tmp_path / "exec2.safetensors"
    assert (
        train_main(
            [
                "export",
                "--checkpoint",
                str(policy_checkpoint),
                "--out",
                str(out),
                "--set",
                "policy.execute=2",
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    policy = LearnedPolicy(out)
    assert policy.execute == 2 and policy.meta["inference_overrides"] == {"policy.execute": 2}
    assert LearnedPolicy(out, execute=3).execute == 3  # an explicit argument still wins
    for bad, why in (
        ("policy.width=8", "can only change policy.execute"),
        ("policy.execute=0", "must be >= 1"),
        ("policy.execute=two", "expected KEY=INTEGER"),
        ("policy.guidance=x", "expected KEY=NUMBER"),
        ("policy.guidance=3", "needs a head trained with global_dropout"),
    ):
        target = tmp_path / "bad.safetensors"
        assert train_main(["export", "--checkpoint", str(policy_checkpoint), "--out", str(target), "--set", bad]) == 2
        assert why in capsys.readouterr().err and not target.exists()


def test_export_stage1_writes_the_policys_own_stage1_for_new_stage2_runs(
    policy_checkpoint, stage1_checkpoint, tmp_path, capsys
):
    from humanprompt_ros.cli.train import main as train_main
    from humanprompt_ros.models.video_model import load_stage1

    out = tmp_path / "s1.safetensors"
    assert train_main(["export", "--stage1", "--checkpoint", str(policy_checkpoint), "--out", str(out)]) == 0
    extracted, cfg, meta = load_stage1(out)
    original, original_cfg, _ = load_stage1(stage1_checkpoint)
    assert cfg == original_cfg and meta["extracted_from"] == str(policy_checkpoint)
    policy_vm = load_policy_model(policy_checkpoint)[0].video_model.state_dict()
    extracted_sd = extracted.state_dict()
    for name, tensor in original.state_dict().items():  # frozen in stage 2: the very weights trained in stage 1
        torch.testing.assert_close(extracted_sd[name], tensor, rtol=0, atol=0)
        torch.testing.assert_close(policy_vm[name], tensor, rtol=0, atol=0)
    capsys.readouterr()
    assert (
        train_main(
            [
                "export",
                "--stage1",
                "--checkpoint",
                str(policy_checkpoint),
                "--out",
                str(out),
                "--set",
                "policy.execute=2",
            ]
        )
        == 2
    )
    assert "drop --set" in capsys.readouterr().err
    assert (
        train_main(
            ["export", "--stage1", "--checkpoint", str(policy_checkpoint), "--out", str(out), "--dtype", "float16"]
        )
        == 2
    )  # would be ignored: refused, not silently dropped
    assert "drop --set/--dtype" in capsys.readouterr().err
    assert (
        train_main(
            ["export", "--stage1", "--checkpoint", str(stage1_checkpoint), "--out", str(tmp_path / "x.safetensors")]
        )
        == 2
    )  # a stage-1 checkpoint is not a policy
    assert "is a 'stage1' checkpoint, expected 'policy'" in capsys.readouterr().err


def test_a_lagged_observation_skips_the_plan_steps_already_past(policy_checkpoint, episodes, tmp_path):
    prompt = write_video(tmp_path / "prompt.mp4", episodes[0].frames, fps=10)
    frame, proprio = episodes[0].frames[0], episodes[0].proprio[0]
    whole = LearnedPolicy(policy_checkpoint, hand="allegro_right", execute=4)  # horizon 4: the whole plan
    whole.set_prompt(prompt)
    plan = whole.act(frame, proprio)
    late = LearnedPolicy(policy_checkpoint, hand="allegro_right", execute=2)
    late.set_prompt(prompt)
    np.testing.assert_allclose(late.act(frame, proprio, lag=2), plan[2:4], atol=1e-6)  # same seed, same plan
    assert late.t == 2
    late.reset()
    np.testing.assert_allclose(late.act(frame, proprio, lag=3), plan[3:4], atol=1e-6)  # only one step is left
    assert late.t == 1
    with pytest.raises(ValueError, match="lower the runner's lookahead"):
        late.act(frame, proprio, lag=4)  # the whole plan would be in the past


def test_proprio_hand_mask_hides_the_fingers_the_robot_lacks(stage1_checkpoint, episodes, tmp_path):
    """proprio: hand — the little finger (zeros for the Allegro hand, real values in human demos) never
    reaches the policy, so it cannot tell the embodiment from it; the mask travels in the checkpoint."""
    cfg = stage2_config(tmp_path / "run", stage1_checkpoint, proprio="hand")
    cfg.train.steps = 2
    model, _ = load_policy_model(train_stage2(cfg, episodes))
    keep = model.cfg.policy.proprio_mask
    assert len(keep) == 24 and not any(keep[21:24]) and all(keep[:21])
    p = torch.from_numpy(episodes[0].proprio[:1].copy())
    q = p.clone()
    q[:, 21:24] += 0.3
    assert torch.equal(model.head.proprio_input(p), model.head.proprio_input(q))
    assert not torch.equal(model.head.proprio_input(p), model.head.proprio_input(p + 0.3))
    with pytest.raises(ValueError, match="proprio: must be 'all', 'hand' or 'wrist'"):
        Stage2Config(data="", stage1="", proprio="arm").validate()


def test_proprio_wrist_mask_hides_every_fingertip(stage1_checkpoint, episodes, tmp_path):
    cfg = stage2_config(tmp_path / "run", stage1_checkpoint, proprio="wrist")
    cfg.train.steps = 2
    model, _ = load_policy_model(train_stage2(cfg, episodes))
    assert model.cfg.policy.proprio_mask == [True] * 9 + [False] * 15
    p = torch.from_numpy(episodes[0].proprio[:1].copy())
    q = p.clone()
    q[:, 9:] += 0.3  # fingertips (they differ between a human demo and the robot)
    assert torch.equal(model.head.proprio_input(p), model.head.proprio_input(q))
    q[:, :3] += 0.3  # the wrist position still counts
    assert not torch.equal(model.head.proprio_input(p), model.head.proprio_input(q))


def test_offline_action_error_compares_same_and_other_task_prompts(policy_checkpoint, episodes):
    from humanprompt_ros.eval.actions import evaluate_actions

    model, _ = load_policy_model(policy_checkpoint)
    skills = sorted({e.skill for e in episodes})
    result = evaluate_actions(model, episodes, times=2, show=False, groups={"all": skills})
    robot_skills = {e.skill for e in episodes if e.embodiment == "robot"}
    assert set(result["skills"]) == robot_skills
    for r in [*result["skills"].values(), result["all"]]:
        assert r["samples"] > 0 and 0.0 <= r["same_better"] <= 1.0
        assert all(
            np.isfinite(r[k]) and r[k] >= 0
            for k in ("wrist_same", "wrist_other", "tips_same", "tips_other", "wrist_hold", "tips_hold")
        )
    # the hold-still baseline: the chunk's distance from the pose at its start, computed here directly
    from humanprompt_ros.train.stage2_data import chunk

    h = model.cfg.policy.horizon
    hold = [
        100 * np.linalg.norm(chunk(e.actions, int(t), h)[:, :3] - e.proprio[t][:3], axis=-1).mean()
        for e in episodes
        if e.embodiment == "robot"
        for t in np.linspace(0, len(e.actions) - 1, 2).round().astype(int)
    ]
    assert result["all"]["wrist_hold"] == pytest.approx(np.mean(hold), abs=1e-3)
    with pytest.raises(ValueError, match="needs held-out robot episodes"):
        evaluate_actions(model, [e for e in episodes if e.embodiment == "human"], show=False)


@pytest.mark.parametrize("mode", ["human", "same", "any"])
def test_prompt_embodiment_chooses_who_prompts_a_training_sample(tmp_path, stage1_checkpoint, episodes, mode):
    """human: a human demo of the task prompts every sample; same: the sample's own embodiment (robot frames
    only ever see robot prompts); any: either. Never the sample itself, always its task."""
    from humanprompt_ros.models.policy_model import PromptPolicyModel
    from humanprompt_ros.models.video_model import load_stage1
    from humanprompt_ros.train.batcher import Batcher

    cfg = stage2_config(tmp_path / "run", stage1_checkpoint)
    cfg.tasks, cfg.skills = sorted({e.task for e in episodes}), sorted({e.skill for e in episodes})
    cfg.prompt_embodiment, cfg.train.cached_prompts = mode, 0
    cfg.validate()
    vm, s1cfg, _ = load_stage1(stage1_checkpoint)
    batcher = Batcher(PromptPolicyModel(cfg, s1cfg, vm).eval(), episodes, seed=0)
    robot = [i for i, e in enumerate(episodes) if e.embodiment == "robot"]
    assert robot and any(e.embodiment == "human" for e in episodes)
    for i, ep in enumerate(episodes):
        pool = batcher.prompt_pool(i)
        assert pool and i not in pool and all(episodes[j].task == ep.task for j in pool)
        who = {episodes[j].embodiment for j in pool}
        others = {e.embodiment for k, e in enumerate(episodes) if e.task == ep.task and k != i}
        assert who == {"human": {"human"}, "same": {ep.embodiment}, "any": others}[mode], (i, ep.embodiment, who)


def test_an_unknown_prompt_embodiment_is_refused(tmp_path, stage1_checkpoint):
    cfg = stage2_config(tmp_path / "run", stage1_checkpoint)
    cfg.prompt_embodiment = "robot"
    with pytest.raises(ValueError, match="prompt_embodiment: must be one of human, same, any"):
        cfg.validate()


def test_sampled_steps_trims_the_final_hold():
    from humanprompt_ros.train.batcher import sampled_steps

    actions = np.zeros((10, 24))
    actions[1:6] = np.arange(1, 6)[:, None]  # moves at steps 1-5, then holds its final action for 4 steps
    assert sampled_steps(actions, -1) == 10
    assert [sampled_steps(actions, k) for k in (0, 2, 100)] == [6, 8, 10]
    assert sampled_steps(np.zeros((5, 24)), 0) == 1  # an episode that never moves keeps its first step


def test_batcher_draws_balanced_skills_and_trimmed_steps_only_when_asked(tmp_path, stage1_checkpoint, episodes):
    from humanprompt_ros.models.policy_model import PromptPolicyModel
    from humanprompt_ros.models.video_model import load_stage1
    from humanprompt_ros.train.batcher import Batcher, sampled_steps

    vm, s1cfg, _ = load_stage1(stage1_checkpoint)
    skills = sorted({e.skill for e in episodes})
    uneven = [e for e in episodes if e.skill != skills[0]] + [next(e for e in episodes if e.skill == skills[0])]

    def batcher(**train):
        cfg = stage2_config(tmp_path / "run", stage1_checkpoint)
        cfg.train = dataclasses.replace(cfg.train, cached_prompts=0, **train)
        cfg.tasks, cfg.skills = sorted({e.task for e in uneven}), skills
        return Batcher(PromptPolicyModel(cfg, s1cfg, vm), uneven, seed=0)

    def share_of_rare(b):
        return np.mean([uneven[b.draw_episode()].skill == skills[0] for _ in range(600)])

    assert share_of_rare(batcher()) < 1.5 / len(uneven)  # by episode: the one rare episode is rarely drawn
    assert abs(share_of_rare(batcher(balance="skill")) - 1 / len(skills)) < 0.07  # by skill: as often as any
    trimmed = batcher(hold_steps=0)
    assert trimmed.steps == [sampled_steps(e.actions, 0) for e in uneven]
    assert batcher().steps == [len(e.actions) for e in uneven]
    # the defaults draw exactly the batches they drew before these switches existed
    a, b = batcher().sample(8, torch.device("cpu")), batcher(hold_steps=-1).sample(8, torch.device("cpu"))
    torch.testing.assert_close(a["actions"], b["actions"])
    with pytest.raises(ValueError, match="balance"):
        dataclasses.replace(Stage2Train(), balance="task").validate()


def test_ema_checkpoint_holds_the_averaged_weights_and_resumes(tmp_path, stage1_checkpoint, episodes):
    from humanprompt_ros.train.common import EMA

    lin = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(lin.weight, 0.0)
    ema = EMA(lin, decay=0.99)
    torch.nn.init.constant_(lin.weight, 1.0)
    ema.update(lin)  # warm-up: the first update keeps only 1/10 of the old average
    assert float(ema.model.weight) == pytest.approx(0.9)

    cfg = stage2_config(tmp_path / "run", stage1_checkpoint)
    cfg.train = dataclasses.replace(cfg.train, ema_decay=0.5)
    final = train_stage2(cfg, episodes)
    shipped, meta = load_policy_model(final)
    raw, _ = load_policy_model(tmp_path / "run" / "last.safetensors")
    averaged, _ = load_policy_model(tmp_path / "run" / "last.ema.safetensors")
    assert meta["ema_decay"] == 0.5
    head = next(k for k, v in raw.state_dict().items() if k.startswith("head.denoiser") and v.is_floating_point())
    assert not torch.equal(shipped.state_dict()[head], raw.state_dict()[head])  # the average, not the raw weights
    torch.testing.assert_close(shipped.state_dict()[head], averaged.state_dict()[head])
    cfg.train = dataclasses.replace(cfg.train, steps=cfg.train.steps + 3)  # resume: the average goes on from its file
    train_stage2(cfg, episodes)
    assert load_policy_model(final)[1]["step"] == cfg.train.steps
