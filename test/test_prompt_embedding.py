"""The prompt embedding: trained with PDCP on real HumanPrompt-Sim human demonstrations, it tells which skill a
prompt video shows; checkpoints round-trip and refuse other kinds."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.episodes import expert_dataset
from helpers.tiny_checkpoint import tiny_stage1
from humanprompt_ros.data import iter_episodes, load_episode
from humanprompt_ros.models.checkpoint import CheckpointError
from humanprompt_ros.models.prompt_embedding import (
    PromptEmbeddingConfig,
    load_prompt_embedding,
    save_prompt_embedding,
)
from humanprompt_ros.models.video_model import load_stage1
from humanprompt_ros.train.prompt_embedding import PromptEmbeddingTraining, recognition, train_prompt_embedding

TASKS = ("open_drawer", "pull_puck", "press_button")


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    """Three human demonstrations of each of three tasks (MuJoCo, the scripted human hand)."""
    return expert_dataset(tmp_path_factory.mktemp("human"), TASKS, "human", range(3))


@pytest.fixture(scope="module")
def stage1(tmp_path_factory) -> Path:
    return tiny_stage1(tmp_path_factory.mktemp("stage1"))


@pytest.fixture(scope="module")
def embedding(demos, stage1, tmp_path_factory) -> Path:
    vm, s1cfg, _ = load_stage1(stage1)
    cfg = PromptEmbeddingConfig(dim=16, channels=[8, 16])
    model = train_prompt_embedding(
        list(iter_episodes(demos)), vm, s1cfg, cfg, PromptEmbeddingTraining(steps=150, batch=9), show=False
    )
    return save_prompt_embedding(tmp_path_factory.mktemp("emb") / "prompt.safetensors", model)


def test_it_learns_which_skill_each_demonstration_shows(embedding, demos):
    model = load_prompt_embedding(embedding)
    assert model.cfg.skills == ["open_drawer", "press_button", "pull_to_goal"]
    assert model.cfg.fps > 0  # the demos' rate, which a prompt is resampled to
    table = recognition(model, list(iter_episodes(demos)), show=False)
    assert table == {s: {s: 3} for s in model.cfg.skills}, table


def test_a_checkpoint_round_trips_and_other_kinds_are_refused(embedding, demos, stage1, tmp_path):
    a, b = load_prompt_embedding(embedding), load_prompt_embedding(embedding)
    clip = a.clip(load_episode(demos / "pull_puck" / "human" / "0000001"))
    assert clip.shape == (a.video_model.cfg.prompt_frames, 32, 32, 3)
    with torch.no_grad():
        za = a(a.tokens(clip[None]), torch.from_numpy(clip[None]))
        zb = b(b.tokens(clip[None]), torch.from_numpy(clip[None]))
    assert torch.equal(za, zb) and a.recognize(clip) == b.recognize(clip)
    with pytest.raises(CheckpointError, match="a 'stage1' checkpoint, expected 'prompt_embedding'"):
        load_prompt_embedding(stage1)


def test_the_stage1_model_stays_frozen(demos, stage1):
    vm, s1cfg, _ = load_stage1(stage1)
    before = {k: v.clone() for k, v in vm.state_dict().items()}
    train_prompt_embedding(
        list(iter_episodes(demos)),
        vm,
        s1cfg,
        PromptEmbeddingConfig(dim=8, channels=[8]),
        PromptEmbeddingTraining(steps=5, batch=4),
        show=False,
    )
    assert all(torch.equal(before[k], v) for k, v in vm.state_dict().items())


def test_demonstrations_at_several_frame_rates_are_refused(demos, stage1, tmp_path):
    eps = list(iter_episodes(demos))
    eps[0].meta["fps"] = float(eps[0].meta["fps"]) * 2
    vm, s1cfg, _ = load_stage1(stage1)
    with pytest.raises(ValueError, match="several frame rates"):
        train_prompt_embedding(eps, vm, s1cfg, PromptEmbeddingConfig(), PromptEmbeddingTraining(steps=1))


def test_the_cli_trains_saves_and_reports_held_out_recognition(demos, stage1, tmp_path, capsys):
    from humanprompt_ros.cli.train import main

    out = tmp_path / "prompt.safetensors"
    args = ["prompt-embedding", "--data", str(demos), "--heldout", str(demos), "--stage1", str(stage1)]
    assert main([*args, "--out", str(out), "--steps", "20", "--batch", "9", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["prompts"] == 9 and set(report["skills"]) == {"open_drawer", "press_button", "pull_to_goal"}
    assert load_prompt_embedding(out).cfg.skills == sorted(report["skills"])
    # the ablations: without PDCP's contrastive terms, without the stage-1 tokens (the clip CNN alone)
    ablated = tmp_path / "ablated.safetensors"
    assert main([*args, "--out", str(ablated), "--steps", "5", "--batch", "9", "--no-pdcp", "--no-stage1"]) == 0
    model = load_prompt_embedding(ablated)
    assert not model.cfg.stage1_tokens and model.cfg.pdcp.nt_xent_weight == model.cfg.pdcp.siamese_weight == 0
    assert model.cfg.pdcp.proto_weight > 0
    clip = np.zeros((1, *model.clip(next(iter_episodes(demos))).shape), np.uint8)
    z = model(torch.randn(1, 4, model.video_model.prompt_dim), torch.from_numpy(clip))
    assert torch.equal(z, model(torch.randn(1, 4, model.video_model.prompt_dim), torch.from_numpy(clip)))  # no tokens
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["prompt-embedding", "--data", str(empty), "--stage1", str(stage1), "--out", str(out)]) == 2
    assert "no successful human demonstrations" in capsys.readouterr().err
