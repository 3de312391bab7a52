"""Real video prompts: decoding only what a clip needs, resampling by frame rate, size limits, and the
prompt's distance from what a checkpoint was trained on (humanprompt_ros.video, data, policies.prompt_fit,
control.prompt)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from humanprompt_ros.config.nodes import PromptEncoderConfig, StartupError
from humanprompt_ros.data import PromptLimits, load_prompt
from humanprompt_ros.video import plan_clip, probe, read_clip, read_frames, time_indices, write_video

STEP = 10  # frame i is uniformly grey at i * STEP: its index survives H.264


def indexed_video(path, n: int, fps: float, w: int = 32, h: int = 24):
    return write_video(path, [np.full((h, w, 3), i * STEP, np.uint8) for i in range(n)], fps)


def indices_of(frames: np.ndarray) -> list[int]:
    """The index each decoded frame carries."""
    return [int(round(f.mean() / STEP)) for f in frames]


def test_time_indices():
    np.testing.assert_array_equal(time_indices(7, 10, 10), np.arange(7))
    np.testing.assert_array_equal(time_indices(7, None, 10), np.arange(7))  # rate unknown: not resampled
    np.testing.assert_array_equal(time_indices(25, 30, 10), np.arange(0, 25, 3))  # 0.8 s: 9 ticks
    np.testing.assert_array_equal(time_indices(5, 5, 10), [0, 0, 1, 1, 2, 2, 3, 3, 4])  # the earlier on a tie
    plan = plan_clip(25, 4, 30, 10)
    assert plan.frames_used == 9 and plan.indices == (0, 9, 15, 24) and plan.fps == 10 and plan.duration_s == 25 / 30
    assert plan_clip(8, 8, 10, 10).indices == tuple(range(8))  # at the training rate: what it always was


def test_probe_and_decode_only_the_frames_asked_for(tmp_path):
    video = indexed_video(tmp_path / "v.mp4", 25, 30, w=48, h=32)
    info = probe(video)
    assert (info.frames, info.fps, info.width, info.height) == (25, 30.0, 48, 32)
    assert info.duration_s == pytest.approx(25 / 30) and info.file_bytes == video.stat().st_size
    assert indices_of(read_frames(video, [24, 3, 3, 0])) == [24, 3, 3, 0]  # any order, repeats
    small = read_frames(video, [5, 6], size=16)
    assert small.shape == (2, 16, 16, 3) and indices_of(small) == [5, 6]
    with pytest.raises(ValueError, match="has only 1 of the 2 frames"):
        read_frames(video, [1, 40])
    gif = write_video(tmp_path / "v.gif", [np.full((16, 16, 3), i * STEP, np.uint8) for i in range(6)], 10)
    assert probe(gif).frames == 6 and indices_of(read_frames(gif, [5, 1])) == [5, 1]  # decoded frame by frame


@pytest.mark.parametrize("fps,expected", [(30, [0, 9, 15, 24]), (10, [0, 8, 16, 24]), (5, [0, 2, 5, 8])])
def test_prompt_clip_resamples_by_frame_rate(tmp_path, fps, expected):
    """A 30 fps, a 10 fps and a 5 fps video → 10 Hz → a 4-frame clip: the source frames it keeps, by content."""
    n = {30: 25, 10: 25, 5: 9}[fps]
    ep = load_prompt(indexed_video(tmp_path / f"v{fps}.mp4", n, fps))
    assert ep.meta["fps"] == fps  # a bare video is read at its own rate
    clip, plan = ep.prompt_clip(4, 16, fps=10)
    assert clip.shape == (4, 16, 16, 3) and list(plan.indices) == expected and indices_of(clip) == expected
    assert plan.frames_used == len(time_indices(n, fps, 10))
    ep.frames()  # frames already in memory are sampled the same way
    mem, mem_plan = ep.prompt_clip(4, 16, fps=10)
    assert mem_plan == plan and indices_of(mem) == expected


def test_a_shorter_video_than_declared_is_decoded_whole(tmp_path):
    video = indexed_video(tmp_path / "v.mp4", 9, 10)
    clip, plan = read_clip(video, 3, 16, 10, 10, length=20)  # a container that overstates its length
    assert plan.source_frames == 9 and indices_of(clip) == [0, 4, 8]


def test_limits_refuse_with_the_reason(tmp_path):
    from humanprompt_ros.control.prompt import PromptError, PromptValidator

    video = indexed_video(tmp_path / "v.mp4", 25, 10, w=48, h=32)
    for limits, why in [
        (PromptLimits(max_pixels=1000), "48x32 = 1536 pixels, more than max_pixels 1000"),
        (PromptLimits(max_duration_s=2.0), r"2.5 s long \(25 frames at 10 fps\), more than max_duration_s 2"),
        (PromptLimits(max_file_mb=1e-4), "MB, more than max_file_mb 0.0001"),
    ]:
        with pytest.raises(ValueError, match=why):
            load_prompt(video, limits=limits)
    assert load_prompt(video, limits=PromptLimits(2.5, 1536, 1.0)).video_info.frames == 25  # at the limits
    v = PromptValidator(PromptEncoderConfig(prompt_dirs=[str(tmp_path)], policy="checkpoint"))
    info = v.validate(str(video))
    assert (info["frames"], info["fps"], info["duration_s"], info["size"]) == (25, 10.0, 2.5, [48, 32])
    v.cfg = dataclasses.replace(v.cfg, max_duration_s=1.0)
    with pytest.raises(PromptError, match="more than max_duration_s 1"):
        v.validate(str(video))


def test_distance_and_sampling_in_the_prompt_message(tmp_path, tiny_checkpoint):
    from humanprompt_ros.control.prompt import PromptValidator

    ckpt = shutil.copy2(tiny_checkpoint, tmp_path / "policy.safetensors")  # the calibration goes beside it
    v = PromptValidator(PromptEncoderConfig(prompt_dirs=[str(tmp_path)], policy="checkpoint", checkpoint=str(ckpt)))
    assert v.has_distance and v.calibration is None and "not found" in v.calibration_note
    info = v.validate(str(indexed_video(tmp_path / "v.mp4", 25, 30)))
    assert info["prompt_fps"] == 10.0 and info["frames_used"] == 9 and info["fps"] == 30.0
    assert len(info["clip_indices"]) == v.backend.model.video_model.cfg.prompt_frames
    assert 0.0 <= info["ood_distance"] <= 2.0 and info["ood_skill"] in v.backend.model.cfg.skills
    assert info["ood_threshold"] is None and info["ood"] is None  # not calibrated
    json.dumps(info)  # the message is JSON


def test_calibrate_then_strict_refuses_and_keeps_the_old_prompt(tmp_path, tiny_checkpoint):
    from humanprompt_ros.cli.prompt import main
    from humanprompt_ros.control.prompt import PromptError, PromptValidator
    from humanprompt_ros.policies.prompt_fit import calibration_path, load_calibration

    ckpt = shutil.copy2(tiny_checkpoint, tmp_path / "policy.safetensors")
    held_out = tmp_path / "held_out"
    for k in range(3):
        write_video(held_out / f"p{k}.mp4", [np.full((32, 32, 3), 40 * k + 5 * i, np.uint8) for i in range(6)], 10)
    cfg = PromptEncoderConfig(prompt_dirs=[str(tmp_path)], policy="checkpoint", checkpoint=str(ckpt), strict=True)
    with pytest.raises(StartupError, match="no distance threshold"):
        PromptValidator(cfg)
    with pytest.raises(StartupError, match="needs policy: checkpoint with a checkpoint"):
        PromptValidator(dataclasses.replace(cfg, policy="replay"))
    assert main(["calibrate", *(str(p) for p in sorted(held_out.iterdir())), "--checkpoint", str(ckpt)]) == 0
    cal, where = load_calibration(ckpt)
    assert where == str(calibration_path(ckpt)) and cal.prompts == 3 and cal.threshold == pytest.approx(cal.max)
    v = PromptValidator(cfg)
    assert v.ood_threshold() == cal.threshold
    good = v.validate(str(held_out / "p2.mp4"))  # a calibration prompt: within the threshold
    assert good["ood"] is False and good["ood_threshold"] == cal.threshold
    v.cfg = dataclasses.replace(cfg, ood_threshold=1e-9)  # now everything is out of distribution
    with pytest.raises(PromptError, match=r"out of distribution: its embedding lies .* beyond the threshold"):
        v.validate(str(held_out / "p1.mp4"))
    assert v.encoded[0] == good["id"]  # the old prompt's tokens stay
    other = tmp_path / "other.safetensors"  # a calibration is for its own checkpoint only: one weight differs
    other.write_bytes(ckpt.read_bytes()[:-4] + b"\x00\x00\x80\x3f")
    shutil.copy2(calibration_path(ckpt), calibration_path(other))
    assert load_calibration(other)[0] is None and "another checkpoint" in load_calibration(other)[1]
