"""Bad inputs the ROS stack refuses or survives, ROS-free (docs/ros.md, "Bad input"): prompt videos cut
short, 4K, a folder without meta.json, an episode whose frame rate is not a rate; checkpoints the policy
node refuses at startup; empty camera frames. Node behaviour over DDS is in the node tests."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.episodes import FRAME, make_episode
from humanprompt_ros.config.nodes import PolicyConfig, PromptEncoderConfig, StartupError
from humanprompt_ros.video import write_video


def validator(root: Path, **fields):
    from humanprompt_ros.control.prompt import PromptValidator

    return PromptValidator(PromptEncoderConfig(prompt_dirs=[str(root)], policy="checkpoint", **fields))


def faststart(src: Path, dst: Path) -> Path:
    """``src`` with its index (moov) moved to the front, as streaming tools write mp4s."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(src), "-c", "copy"]
    subprocess.run([*cmd, "-movflags", "+faststart", str(dst)], check=True, timeout=60)
    return dst


# -- prompts ------------------------------------------------------------------------------------------------
def test_a_truncated_prompt_is_refused_in_one_line_or_read_as_far_as_it_goes(tmp_path):
    from humanprompt_ros.control.prompt import PromptError

    v = validator(tmp_path)
    whole = write_video(tmp_path / "whole.mp4", [np.full((32, 32, 3), 10 * i, np.uint8) for i in range(20)], 10)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index (at the end) is gone
    with pytest.raises(PromptError) as err:
        v.validate(str(cut))
    reason = str(err.value)
    assert reason.startswith(f"prompt {cut}: not a readable video (") and "moov atom not found" in reason
    assert "\n" not in reason and "configuration:" not in reason and len(reason) < 300, reason  # no ffmpeg banner
    streamed = faststart(whole, tmp_path / "streamed.mp4").read_bytes()
    tail_cut = tmp_path / "tail_cut.mp4"
    tail_cut.write_bytes(streamed[: int(len(streamed) * 0.95)])  # index first: only the last frames are lost
    info = v.validate(str(tail_cut))
    assert 4 <= info["frames"] < 20 and info["fps"] == 10.0


def test_a_4k_prompt_is_accepted_and_encoded_from_the_few_frames_its_clip_needs(tmp_path, tiny_checkpoint):
    uhd = write_video(tmp_path / "uhd.mp4", [np.full((2160, 3840, 3), 40 * i, np.uint8) for i in range(4)], 10)
    v = validator(tmp_path, checkpoint=str(tiny_checkpoint))  # default limits: max_pixels 8294400 = 3840x2160
    info = v.validate(str(uhd))
    assert info["size"] == [3840, 2160] and info["frames"] == 4
    pid, tokens, _ = v.encoded
    assert pid == info["id"] and tokens.shape[0] == 1 and np.all(np.isfinite(tokens))
    assert len(info["clip_indices"]) == v.backend.model.video_model.cfg.prompt_frames


def test_a_directory_without_meta_json_is_read_as_its_first_video(tmp_path):
    folder = tmp_path / "demo"
    write_video(folder / "b.mp4", [FRAME] * 6, fps=10)
    write_video(folder / "a.mp4", [FRAME] * 5, fps=30)
    info = validator(tmp_path).validate(str(folder))
    assert (info["frames"], info["fps"], info["task"]) == (5, 30.0, None)  # a.mp4, at its container's rate


@pytest.mark.parametrize("fps", [0, -5, math.nan, True, "ten", [10]])
def test_an_episode_whose_fps_is_not_a_rate_is_refused(tmp_path, fps):
    from humanprompt_ros.control.prompt import PromptError

    v = validator(tmp_path)
    ep = make_episode(tmp_path / "ep")
    meta = json.loads((ep / "meta.json").read_text())
    (ep / "meta.json").write_text(json.dumps({**meta, "fps": fps}))
    with pytest.raises(PromptError, match=rf"prompt {ep}: meta.json fps .* is not a frame rate \(a positive number\)"):
        v.validate(str(ep))
    (ep / "meta.json").write_text(json.dumps({**meta, "fps": None}))  # no rate: the video's own
    assert v.validate(str(ep))["fps"] == 10.0


# -- checkpoints --------------------------------------------------------------------------------------------
def rewritten(src: Path, dst: Path, **header: str) -> Path:
    """``src`` with safetensors header entries replaced (raw strings, as stored)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        meta = {**(f.metadata() or {}), **header}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(dst), metadata={k: v for k, v in meta.items() if v is not None})
    return dst


def test_bad_checkpoints_stop_the_policy_node_and_the_prompt_encoder_with_the_reason(tmp_path, tiny_checkpoint):
    from humanprompt_ros.control.backend import build_backend

    data = tiny_checkpoint.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    pickled = tmp_path / "pickled.safetensors"
    torch.save({"w": torch.zeros(2)}, pickled)
    cases = {
        tmp_path / "missing.safetensors": "no such checkpoint file",
        truncated: "is not a readable safetensors checkpoint (corrupt or truncated?)",
        pickled: "it is a zip archive (torch.save format), which unpickles Python objects and can execute code",
        rewritten(tiny_checkpoint, tmp_path / "foreign.safetensors", format=None): "not a humanprompt_ros checkpoint",
        rewritten(tiny_checkpoint, tmp_path / "v2.safetensors", format_version="2"): "format version 2; this code "
        "reads version 1",
        rewritten(tiny_checkpoint, tmp_path / "a30.safetensors", action_dim="30"): "trained for 30-D actions, this "
        "stack uses 24-D",
    }
    for path, why in cases.items():
        with pytest.raises(StartupError) as err:  # the policy node: "[policy] cannot start: ...", exit code 2
            build_backend(PolicyConfig(checkpoint=str(path)), "allegro_right")
        assert why in str(err.value) and str(path) in str(err.value), str(err.value)
    with pytest.raises(StartupError, match="trained for hand 'allegro_right', the configured hand is 'shadow'"):
        build_backend(PolicyConfig(checkpoint=str(tiny_checkpoint)), "shadow")
    assert build_backend(PolicyConfig(checkpoint=str(tiny_checkpoint)), "allegro_right") is not None
    for path, why in list(cases.items())[1:]:  # the prompt encoder, given the same file, refuses to start too
        with pytest.raises(ValueError) as err:  # "[prompt_encoder] cannot start: ...", exit code 2
            validator(tmp_path, checkpoint=str(path))
        assert why in str(err.value) and str(path) in str(err.value), str(err.value)


# -- camera frames ------------------------------------------------------------------------------------------
def test_an_empty_frame_is_a_bad_frame():
    from humanprompt_ros.camera import BadFrame, as_rgb, fit

    for shape in [(0, 0, 3), (0, 5, 3), (4, 0)]:
        with pytest.raises(BadFrame, match="empty frame"):
            fit(as_rgb(np.zeros(shape, np.uint8)), 96, 96)
