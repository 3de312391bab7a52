"""Training on several datasets at once (a config's ``data``: a root, a glob or a list): simulated robot
episodes mixed with a lab's recorded ones, loaded by both stages' loaders, refused for a mix of frame rates or
hands, kept apart where a seed is a key, and a tiny stage-2 run through ``humanprompt-train stage2``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers.episodes import expert_dataset
from helpers.tiny_checkpoint import PLAIN_HEAD, plain_stage2, tiny_stage1
from humanprompt_ros.config.loader import to_dict
from humanprompt_ros.config.stage2 import PDCPSwitch, Stage2Config, Stage2Train, load_stage2_config
from humanprompt_ros.data import dataset_roots, iter_episodes, write_episode
from humanprompt_ros.hand.keypoints import keypoints_to_action
from humanprompt_ros.models.checkpoint import load_checkpoint
from humanprompt_ros.models.diffusion_head import PolicyModelConfig
from humanprompt_ros.models.video_former import VideoFormerConfig
from humanprompt_ros.sim.runner import expert_episode
from humanprompt_ros.sim.tasks import load_task, resolve_task
from humanprompt_ros.train.batcher import Batcher
from humanprompt_ros.train.stage1 import load_clip_episodes
from humanprompt_ros.train.stage2_data import load_policy_episodes

TASK = "open_drawer"


def human_video_episode(out: Path, *, fps: float = 10.0, handedness: str = "right") -> Path:
    """A human episode as ``humanprompt-hand extract`` writes one (its meta fields; video_pose.py), from the
    simulated human expert's frames and keypoints: proprio t = the keypoints' unified action, action t = proprio t+1."""
    record = expert_episode(load_task(resolve_task(TASK)), "human", 0)
    keypoints = np.asarray(record.keypoints, np.float32)
    proprio = np.stack([keypoints_to_action(k).to_array() for k in keypoints])
    n = len(keypoints)
    meta = {
        "task": TASK,
        "skill": None,
        "embodiment": "human",
        "hand": "human",
        "handedness": handedness,
        "mask": [True] * 5,
        "success": True,
        "seed": 0,
        "fps": fps,
        "source": str(out / "demo.mp4"),
        "source_video": {"fps": fps, "size": [128, 128], "mirrored": False},
        "valid": [True] * n,
        "detected": [True] * n,
    }
    return write_episode(out, record.frames, proprio[1:], meta, proprio=proprio, keypoints=keypoints, fps=fps)


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    """``sim/``: two simulated robot episodes (seeds 0, 1); ``lab/``: a robot episode that also has seed 0 (as
    ``humanprompt-record`` numbers them) and a human episode extracted from a video (seed 0, no skill)."""
    base = tmp_path_factory.mktemp("mix")
    expert_dataset(base / "sim", (TASK,), "robot", (0, 1))
    shutil.copytree(base / "sim" / TASK / "robot" / "0000000", base / "lab" / TASK / "robot" / "0000000")
    human_video_episode(base / "lab" / TASK / "human" / "0000000")
    return base


@pytest.fixture(scope="module")
def stage1(tmp_path_factory) -> Path:
    return tiny_stage1(tmp_path_factory.mktemp("s1"))


def test_dataset_roots_take_a_root_a_glob_or_a_list_and_name_what_is_missing(mix, tmp_path):
    sim, lab = mix / "sim", mix / "lab"
    assert dataset_roots(sim) == [sim]
    assert dataset_roots(str(mix / "*")) == [lab, sim]  # a glob's matches, sorted
    assert dataset_roots([str(sim), str(mix / "l*"), str(sim)]) == [sim, lab]  # each root once
    (tmp_path / "a[1]").mkdir()
    assert dataset_roots(str(tmp_path / "a[1]")) == [tmp_path / "a[1]"]  # an existing directory is taken as written
    with pytest.raises(ValueError, match=f"{tmp_path / 'nope'}: dataset directory not found"):
        dataset_roots([str(sim), str(tmp_path / "nope")])
    with pytest.raises(ValueError, match="no dataset directory matches this pattern"):
        dataset_roots(str(tmp_path / "real" / "*"))
    with pytest.raises(ValueError, match="read twice"):
        dataset_roots([str(mix), str(sim)])
    with pytest.raises(ValueError, match="no empty entry"):
        dataset_roots([])


def test_both_stages_load_a_list_and_a_glob_as_one_dataset(mix):
    as_list = load_policy_episodes([mix / "sim", mix / "lab"], 32, show=False, hand="allegro_right")
    as_glob = load_policy_episodes(str(mix / "*"), 32, show=False, hand="allegro_right")
    assert [(Path(e.root).name, e.embodiment, e.seed) for e in as_list] == [
        ("sim", "robot", 0),
        ("sim", "robot", 1),
        ("lab", "human", 0),
        ("lab", "robot", 0),
    ]
    assert [(e.root, e.embodiment, e.seed) for e in as_glob] == sorted(
        (e.root, e.embodiment, e.seed) for e in as_list
    )  # lab before sim
    human = next(e for e in as_list if e.embodiment == "human")
    assert human.skill == TASK and human.frames.shape[1:] == (32, 32, 3)  # no skill recorded: the task's
    clips = load_clip_episodes(str(mix / "*"), 32, show=False)
    assert sorted((Path(e.root).name, e.embodiment) for e in clips) == [
        ("lab", "human"),
        ("lab", "robot"),
        ("sim", "robot"),
        ("sim", "robot"),
    ]
    assert [e.root for e in iter_episodes([mix / "sim", mix / "lab"], embodiment="human")] == [mix / "lab"]


def test_a_mix_of_frame_rates_is_refused_naming_the_rates_and_roots(mix, tmp_path):
    human_video_episode(tmp_path / "phone" / TASK / "human" / "0000000", fps=30.0)
    with pytest.raises(ValueError, match="different frame rates") as err:
        load_policy_episodes([mix / "sim", tmp_path / "phone"], 32, show=False)
    msg = str(err.value)
    assert "10 fps: 2 episode(s)" in msg and f"30 fps: 1 episode(s) under {tmp_path / 'phone'}" in msg
    assert "ffmpeg -i in.mp4 -vf fps=10 out.mp4" in msg and "import-bag --fps 10" in msg
    with pytest.raises(ValueError, match="different frame rates"):
        load_clip_episodes([mix / "sim", tmp_path / "phone"], 32, show=False)
    # prompts only: their rate does not matter (a prompt is resampled over its whole length)
    assert len(load_policy_episodes([mix / "sim", tmp_path / "phone"], 32, show=False, same_rate=False)) == 3


def test_episodes_of_another_hand_are_refused(mix, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(mix / "sim" / TASK / "robot" / "0000000", other / TASK / "robot" / "0000000")
    meta_file = other / TASK / "robot" / "0000000" / "meta.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "hand": "leap_right"}))
    human_video_episode(other / TASK / "human" / "0000000", handedness="left")
    with pytest.raises(ValueError) as err:
        load_policy_episodes([mix / "sim", other], 32, show=False, hand="allegro_right")
    msg = str(err.value)
    assert "1 robot episode(s) of hand leap_right, not 'allegro_right'" in msg
    assert "1 human episode(s) of a left hand, the robot hand is a right one" in msg and "mirror image" in msg
    assert len(load_policy_episodes([mix / "sim", other], 32, show=False)) == 4  # no hand given: not checked


def test_a_tiny_stage2_trains_on_the_mix_through_the_cli_and_seeds_stay_apart_by_root(mix, stage1, tmp_path, capsys):
    from humanprompt_ros.cli.train import main

    cfg = Stage2Config(
        data="",
        stage1=str(stage1),
        out=str(tmp_path / "run"),
        video_former=VideoFormerConfig(queries_per_frame=2, width=16, depth=1, heads=2),
        policy=PolicyModelConfig(
            horizon=4, width=16, depth=1, heads=2, train_timesteps=20, inference_steps=3, **PLAIN_HEAD
        ),
        train=Stage2Train(steps=4, batch_size=4, log_every=2, checkpoint_every=2, warmup_steps=1, device="cpu"),
        **plain_stage2(prompt_embodiment="any", pdcp=PDCPSwitch(pool="scene", align_weight=0.1, align_pairs=2)),
    )
    config = tmp_path / "stage2.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg)))
    data = f"data=[{mix / 'sim'}, {mix / 'l*'}]"  # a list, one of its entries a glob
    assert main(["stage2", "--config", str(config), "--set", data]) == 0
    out = capsys.readouterr().out
    assert f"{mix / 'sim'}: 0 human, 2 robot; {mix / 'lab'}: 1 human, 1 robot" in out
    policy = tmp_path / "run" / "policy.safetensors"
    _, meta = load_checkpoint(policy)
    assert meta["config"]["data"] == [str(mix / "sim"), str(mix / "l*")]

    from humanprompt_ros.policies.prompt_fit import training_fps

    assert training_fps(meta) == (10.0, f"dataset {mix / 'sim'}")  # the rate of the listed data

    # the paired term's twins: robot and human of one root, task and seed; the simulated robot seed 0 is not the
    # lab human seed 0's twin
    from humanprompt_ros.models.policy_model import load_policy_model

    model, _ = load_policy_model(policy)
    model.cfg.train.cached_prompts = 0
    loaded = load_stage2_config(config, [data])
    episodes = load_policy_episodes(loaded.data, 32, show=False, hand=loaded.hand)
    twins = Batcher(model, episodes, seed=0).twins
    assert [(Path(episodes[r].root).name, Path(episodes[h].root).name) for r, h in twins] == [("lab", "lab")]
