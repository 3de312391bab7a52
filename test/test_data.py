"""Episode format round trip, streaming loader and prompt validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from humanprompt_ros.data import (
    FORMAT_VERSION,
    iter_episodes,
    load_episode,
    load_prompt,
    read_video,
    write_episode,
    write_video,
)


def _frames(n=6, size=32):
    # smooth images (like camera frames): H.264 with 4:2:0 chroma keeps them close
    y, x = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(n):
        img = np.stack([x * 200 + 20, y * 180 + 30, np.full_like(x, 60.0 + 20 * i)], axis=2)
        img[size // 4 : size // 2, (i * 2) % size : (i * 2) % size + size // 4] = (230, 40, 40)
        out.append(img.astype(np.uint8))
    return out


def _meta(**kw):
    m = {
        "task": "push_box",
        "skill": "push_to_goal",
        "embodiment": "robot",
        "success": True,
        "seed": 1,
        "hand": "allegro_right",
        "mask": [True, True, True, True, False],
    }
    m.update(kw)
    return m


def test_round_trip(tmp_path):
    frames = _frames()
    actions = np.random.default_rng(1).normal(size=(5, 24))
    joints = np.random.default_rng(2).normal(size=(6, 16))
    d = write_episode(tmp_path / "ep", frames, actions, _meta(), joints=joints, proprio=np.zeros((6, 24)), fps=10)
    ep = load_episode(d)
    assert ep.meta["format_version"] == FORMAT_VERSION
    assert ep.meta["image_size"] == [32, 32] and ep.meta["num_frames"] == 6 and ep.meta["fps"] == 10
    assert ep.task == "push_box" and ep.skill == "push_to_goal" and ep.embodiment == "robot" and ep.success
    assert np.allclose(ep.actions, actions, atol=1e-6) and ep.actions.dtype == np.float32
    assert np.allclose(ep.joints, joints, atol=1e-6)
    assert ep.keypoints is None
    assert list(ep.mask) == [True, True, True, True, False]
    video = ep.frames()
    assert video.shape == (6, 32, 32, 3)
    # H.264 at CRF 12: close to the original
    assert np.abs(video.astype(float) - np.stack(frames)).mean() < 4


def test_streaming_loader_filters_and_is_lazy(tmp_path):
    for i, (emb, skill) in enumerate([("robot", "push_to_goal"), ("human", "push_to_goal"), ("human", "rotate")]):
        write_episode(
            tmp_path / skill / emb / f"{i:03d}",
            _frames(4),
            np.zeros((3, 24)),
            _meta(embodiment=emb, skill=skill, seed=i, success=i != 2),
        )
    (tmp_path / "half_written").mkdir()  # no meta.json: skipped
    it = iter_episodes(tmp_path)
    first = next(it)
    assert first._frames is None and first._arrays == {}  # nothing decoded yet
    assert len(list(iter_episodes(tmp_path))) == 3
    assert [e.seed for e in iter_episodes(tmp_path, embodiment="human")] == [1, 2]
    assert [e.seed for e in iter_episodes(tmp_path, skill="rotate")] == [2]
    assert sorted(e.seed for e in iter_episodes(tmp_path, success=True)) == [0, 1]


def test_episode_errors(tmp_path):
    with pytest.raises(ValueError, match="not an episode directory"):
        load_episode(tmp_path)
    d = write_episode(tmp_path / "ep", _frames(4), np.zeros((3, 24)), _meta())
    meta = json.loads((d / "meta.json").read_text())
    meta["format_version"] = 99
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format version 99"):
        load_episode(d)
    with pytest.raises(ValueError, match=r"\(T, 24\)"):
        write_episode(tmp_path / "bad", _frames(2), np.zeros((3, 7)), _meta())


def test_prompt_from_episode_and_bare_video(tmp_path):
    d = write_episode(tmp_path / "ep", _frames(8), np.ones((7, 24)), _meta())
    ep = load_prompt(d)
    assert ep.frames().shape[0] == 8 and ep.actions.shape == (7, 24)
    video = tmp_path / "demo.mp4"
    write_video(video, _frames(8), 10)
    bare = load_prompt(video)
    assert bare.frames().shape == (8, 32, 32, 3) and bare.actions is None
    with pytest.raises(ValueError, match="needs the demonstration's unified actions"):
        bare.require_actions("the replay policy")
    gif = tmp_path / "demo.gif"
    write_video(gif, _frames(5), 10)
    assert read_video(gif).shape[0] == 5


@pytest.mark.parametrize(
    "case,match",
    [
        ("missing", "not found"),
        ("text", "not a video file"),
        ("empty", "the file is empty"),
        ("garbage", "not a readable video"),
        ("short", "too short"),
        ("dir", "without meta.json or a video"),
    ],
)
def test_bad_prompts_have_readable_reasons(tmp_path, case, match):
    p = tmp_path / "prompt.mp4"
    if case == "missing":
        pass
    elif case == "text":
        p = tmp_path / "notes.txt"
        p.write_text("hello")
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "garbage":
        p.write_bytes(b"\x00\x01not really an mp4" * 100)
    elif case == "short":
        write_video(p, _frames(2), 10)
    elif case == "dir":
        p = tmp_path / "folder"
        p.mkdir()
    with pytest.raises(ValueError, match=match):
        load_prompt(p)


def test_resized_frames_are_cached_and_rebuilt_when_the_video_changes(tmp_path):
    import os

    from humanprompt_ros.video import resize_frames

    d = write_episode(tmp_path / "ep", _frames(), np.zeros((5, 24)), _meta(), fps=10)
    first = load_episode(d).frames_at(16)
    cache = d / "frames_16.npy"
    assert cache.is_file() and first.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(first, resize_frames(load_episode(d).frames(), 16))
    np.testing.assert_array_equal(load_episode(d).frames_at(16), first)  # served from the cache
    write_video(d / "video.mp4", [f[::-1].copy() for f in _frames()], fps=10)  # a newer video
    os.utime(cache, (1, 1))
    np.testing.assert_array_equal(load_episode(d).frames_at(16), resize_frames(load_episode(d).frames(), 16))
    assert not np.array_equal(load_episode(d).frames_at(16), first)


def test_an_episode_packed_without_its_video_trains_from_the_cached_frames(tmp_path):
    d = write_episode(tmp_path / "ep", _frames(), np.zeros((5, 24)), _meta(), fps=10)
    cached = load_episode(d).frames_at(16)
    (d / "video.mp4").unlink()
    np.testing.assert_array_equal(load_episode(d).frames_at(16), cached)
    with pytest.raises(ValueError, match="no video"):
        load_episode(d).frames_at(32)  # no cache at that size and nothing to rebuild it from


def test_frames_through_the_codec_match_a_saved_video(tmp_path):
    """A prompt generated in memory, passed through the codec, is what a saved episode's video decodes to."""
    from humanprompt_ros.video import through_codec, write_video

    rng = np.random.default_rng(0)
    frames = np.repeat(np.repeat(rng.integers(0, 255, (6, 8, 8, 3), np.uint8), 4, 1), 4, 2)
    coded = through_codec(frames, fps=10, crf=12)
    assert coded.shape == frames.shape and coded.dtype == np.uint8
    assert 0 < np.abs(coded.astype(int) - frames.astype(int)).mean() < 20  # lossy, but close
    np.testing.assert_array_equal(coded, read_video(write_video(tmp_path / "v.mp4", frames, fps=10, crf=12)))
