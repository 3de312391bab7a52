"""The recorder's ROS-free core (humanprompt_ros.recording): resampling live streams into a robot episode the way the
bag import does, human episodes with the hand pose pending, the atomic write, and cleanup after a failed write.
The node over DDS, and a full disk on a real small file system: test_node_recorder.py."""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from humanprompt_ros.config.nodes import RecorderConfig
from humanprompt_ros.data import META_FILE, iter_episodes, load_episode
from humanprompt_ros.hand.hand import load_hand
from humanprompt_ros.messages import matrix_from_quaternion
from humanprompt_ros.paths import config_path
from humanprompt_ros.recording import STAGING_DIR, EpisodeRecorder, FrameSpool, RecordingFailed

NS = 1_000_000_000


class Clock:
    """A monotonic clock the test sets."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def hand():
    return load_hand(config_path("hands", "allegro_right.yaml"))


def wrist_pose() -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = matrix_from_quaternion([0.0, 0.0, np.sin(0.3), np.cos(0.3)])
    pose[:3, 3] = [0.1, -0.2, 0.3]
    return pose


def frame(k: int, size: int = 16) -> np.ndarray:
    """A flat frame whose grey level says its index."""
    return np.full((size, size, 3), 8 * k, np.uint8)


def feed_robot(rec: EpisodeRecorder, hand, clock: Clock, actions: bool = False) -> dict:
    """Frames at 30 Hz over 0..1 s, joints at 100 Hz over 0.05..1.2 s, the wrist at 50 Hz over 0.1..0.95 s (and hand
    targets at 20 Hz) — in time order, as they would arrive; returns what was sent."""
    sent = {"frames": {}, "joints": {}, "actions": {}}
    events = [(k / 30, "frame", k) for k in range(31)]
    events += [(0.05 + k / 100, "joints", k) for k in range(116)]
    events += [(0.1 + k / 50, "wrist", k) for k in range(43)]
    if actions:
        events += [(k / 20, "action", k) for k in range(25)]
    for t, kind, k in sorted(events):
        clock.t = t
        ns = int(round(t * NS))
        if kind == "frame":
            sent["frames"][ns] = k
            rec.add_frame(frame(k), ns, ns)
        elif kind == "joints":
            q = hand.neutral() + 0.2 * t
            sent["joints"][ns] = q
            rec.add_joints(q, ns, ns)
        elif kind == "wrist":
            rec.add_wrist(wrist_pose(), ns, ns, "world")
        else:
            a = hand.fk(hand.neutral(), base_pose=wrist_pose()).to_array()
            a[0] += 0.001 * k
            sent["actions"][ns] = a
            rec.add_action(a, ns, ns)
    return sent


def cfg(tmp_path, **kw) -> RecorderConfig:
    return dataclasses.replace(RecorderConfig(), root=str(tmp_path / "data"), task="pick", **kw)


def staging_is_empty(tmp_path) -> bool:
    staging = tmp_path / "data" / STAGING_DIR
    return not staging.exists() or not any(staging.iterdir())


def test_robot_episode_resampled_like_a_bag_import(tmp_path, hand):
    clock = Clock()
    rec = EpisodeRecorder(hand, clock)
    assert "pick/robot/0000000" in rec.start(cfg(tmp_path))
    assert (tmp_path / "data/pick/robot/0000000").is_dir()  # reserved at start
    sent = feed_robot(rec, hand, clock)
    status = rec.status()
    assert status["recording"] and status["camera_frames"] == 31 and status["joint_states"] == 116
    saved = rec.stop()
    assert saved.path == tmp_path / "data/pick/robot/0000000" and saved.frames == 9 and saved.actions == 8
    assert staging_is_empty(tmp_path)

    ep = load_episode(saved.path)
    # the span where all three streams have data is 0.1 .. 0.95 s: frames at 0.1, 0.2, ... 0.9
    grid = np.round((0.1 + np.arange(9) / 10) * NS).astype(np.int64)
    assert ep.meta["num_frames"] == 9 and ep.meta["num_actions"] == 8 and ep.fps == 10.0
    frames, joints, proprio, actions = ep.frames(), ep.joints, ep.proprio, ep.actions
    assert len(frames) == len(joints) == len(proprio) == len(actions) + 1 == 9
    # each frame is the nearest camera frame in time (grey level 8k, through H.264)
    k_frames = [sent["frames"][min(sent["frames"], key=lambda t: (abs(t - g), t))] for g in grid]
    assert np.allclose(frames.reshape(9, -1).mean(axis=1), 8 * np.array(k_frames), atol=2)
    q_sent = [sent["joints"][min(sent["joints"], key=lambda t: (abs(t - g), t))] for g in grid]
    np.testing.assert_allclose(joints, np.stack(q_sent), atol=1e-6)
    # proprio = FK of the joints at the wrist pose; without hand targets, action t = proprio t+1
    fk = np.stack([hand.fk(q, base_pose=wrist_pose()).to_array() for q in joints.astype(np.float64)])
    np.testing.assert_allclose(proprio, fk, atol=1e-5)
    np.testing.assert_allclose(actions, proprio[1:], atol=1e-6)
    rmeta = ep.meta["recording"]
    assert rmeta["action_source"] == "next measured state (proprio t+1)"
    assert rmeta["topics"] == {
        "image": "/humanprompt/observation",
        "joints": "/joint_states",
        "wrist": "/humanprompt/wrist_pose",
        "action": None,
    }
    assert rmeta["wrist_frame_id"] == "world" and rmeta["start_s"] == pytest.approx(0.1)
    assert rmeta["received"]["camera_frames"] == 31 and rmeta["time"]["/joint_states"] == "header.stamp"
    assert ep.meta["joint_names"] == hand.joint_names and ep.meta["hand"] == "allegro_right" and ep.seed == 0
    assert rec.status()["episodes_saved"] == 1 and rec.status()["frames_saved"] == 9

    # a second take with hand targets: action t = the target nearest to frame t; the next free number
    rec.start(cfg(tmp_path))
    sent = feed_robot(rec, hand, clock, actions=True)
    ep = load_episode(rec.stop().path)
    assert ep.path.name == "0000001" and ep.meta["recording"]["action_source"] == "topic /humanprompt/hand_target"
    a_sent = [sent["actions"][min(sent["actions"], key=lambda t: (abs(t - g), t))] for g in grid[:-1]]
    np.testing.assert_allclose(ep.actions, np.stack(a_sent), atol=1e-6)
    assert [e.path.name for e in iter_episodes(tmp_path / "data")] == ["0000000", "0000001"]


def test_human_episode_without_hand_pose_says_how_to_extract_it(tmp_path):
    clock = Clock()
    rec = EpisodeRecorder(None, clock)  # a human episode needs no robot hand
    rec.start(cfg(tmp_path, embodiment="human", extract_hand_pose=False, fps=5.0))
    for k in range(20):  # 15 fps for 1.27 s; joint states are not recorded for a human
        clock.t = k / 15
        rec.add_frame(frame(k, 18)[:, :17], int(k / 15 * NS), 0)  # an odd width is cropped to even
        rec.add_joints(np.zeros(16), int(k / 15 * NS), 0)
    saved = rec.stop()
    ep = load_episode(saved.path)
    assert saved.path.parent.name == "human" and saved.frames == 7 and saved.actions == 0
    assert ep.embodiment == "human" and ep.actions is None and ep.fps == 5.0
    assert ep.frames().shape == (7, 18, 16, 3) and ep.meta["num_frames"] == 7 and ep.meta["image_size"] == [18, 16]
    pose = ep.meta["hand_pose"]
    assert pose["status"] == "pending" and pose["reason"] == "extract_hand_pose is false"
    assert pose["command"].startswith(f"humanprompt-hand extract {saved.path / 'video.mp4'} --out {saved.path} ")
    assert "pending" in saved.message() and pose["command"] in saved.message()
    assert ep.meta["recording"]["received"]["joint_states"] == 0


def test_human_episode_without_mediapipe_is_pending_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe → ImportError
    clock = Clock()
    rec = EpisodeRecorder(None, clock)
    rec.start(cfg(tmp_path, embodiment="human"))
    for k in range(8):
        clock.t = k / 10
        rec.add_frame(frame(k), int(k / 10 * NS), 0)
    ep = load_episode(rec.stop().path)
    assert ep.meta["hand_pose"]["status"] == "pending" and "pip install" in ep.meta["hand_pose"]["reason"]


def test_human_episode_with_mediapipe_gets_the_hand_pose(tmp_path):
    pytest.importorskip("mediapipe", reason="hand landmarks need the human extra: pip install -e '.[human]'")
    from PIL import Image

    photo = np.asarray(Image.open(Path(__file__).parent / "data/hands/test5.jpg").convert("RGB"))  # a right hand
    clock = Clock()
    rec = EpisodeRecorder(None, clock)
    rec.start(cfg(tmp_path, embodiment="human"))
    for k in range(6):
        clock.t = k / 10
        rec.add_frame(photo, int(k / 10 * NS), 0)
    saved = rec.stop()
    ep = load_episode(saved.path)
    assert saved.frames == 6 and saved.actions == 5 and "pending" not in saved.message()
    assert ep.keypoints.shape == (6, 21, 3) and ep.proprio.shape == (6, 24) and ep.actions.shape == (5, 24)
    assert ep.meta["hand_pose"]["frames_detected"] == 6 and "status" not in ep.meta["hand_pose"]
    assert ep.seed == 0 and ep.meta["source"] == "ROS topic /humanprompt/observation" and ep.task == "pick"
    assert ep.meta["recording"]["received"]["camera_frames"] == 6 and staging_is_empty(tmp_path)


def test_the_episode_is_written_aside_and_renamed_into_place(tmp_path, hand, monkeypatch):
    """While its files are written, the episode's place in the dataset is an empty directory (no episode to
    readers); the finished directory then replaces it in one rename."""
    import humanprompt_ros.recording as recording

    final = tmp_path / "data/pick/robot/0000000"
    seen = {}
    real = recording.write_episode

    def spy(directory, *a, **kw):
        seen["where"] = Path(directory)
        seen["final_then"] = sorted(p.name for p in final.iterdir())
        seen["episodes_then"] = list(iter_episodes(tmp_path / "data/pick"))
        return real(directory, *a, **kw)

    monkeypatch.setattr(recording, "write_episode", spy)
    clock = Clock()
    rec = EpisodeRecorder(hand, clock)
    rec.start(cfg(tmp_path))
    feed_robot(rec, hand, clock)
    assert rec.stop().path == final
    assert seen["where"].parent.parent == tmp_path / "data" / STAGING_DIR
    assert seen["final_then"] == [] and seen["episodes_then"] == []
    files = ["actions.npy", "joints.npy", "meta.json", "proprio.npy", "video.mp4"]
    assert sorted(p.name for p in final.iterdir()) == files


def test_a_failed_final_write_removes_the_partial_episode_and_recording_goes_on(tmp_path, hand, monkeypatch):
    """ENOSPC simulated on the episode's last file write (meta.json's rename into place), by monkeypatching it."""
    import humanprompt_ros.data as data

    real_replace = os.replace

    def full_disk(src, dst, *a, **kw):
        if str(dst).endswith(META_FILE):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst, *a, **kw)

    clock = Clock()
    rec = EpisodeRecorder(hand, clock)
    rec.start(cfg(tmp_path))
    feed_robot(rec, hand, clock)
    monkeypatch.setattr(data.os, "replace", full_disk)
    with pytest.raises(RecordingFailed, match="No space left on device.*the partial episode was removed"):
        rec.stop()
    monkeypatch.undo()
    assert not (tmp_path / "data/pick/robot/0000000").exists() and staging_is_empty(tmp_path)
    status = rec.status()
    assert status["episodes_failed"] == 1 and "No space left" in status["last_error"] and not status["recording"]
    rec.start(cfg(tmp_path))  # the recorder goes on, and the failed episode's number is free again
    feed_robot(rec, hand, clock)
    assert rec.stop().path.name == "0000000"
    assert [e.path.name for e in iter_episodes(tmp_path / "data")] == ["0000000"]


def test_a_failed_spool_write_ends_the_take_and_stop_reports_it(tmp_path, hand):
    """A write error while recording kills the take at once (its files removed) and stop reports it. Simulated by
    closing the spool's file descriptor under it (EBADF); a real full disk: test_node_recorder.py."""
    clock = Clock()
    rec = EpisodeRecorder(hand, clock)
    rec.start(cfg(tmp_path))
    rec.add_frame(frame(0), 0, 0)
    take = rec._take
    os.close(take.spool._file.fileno())  # the next write fails with an OSError, as on a full or failed disk
    with pytest.raises(RecordingFailed, match="failed while recording, at frame 1"):
        rec.add_frame(frame(1), 1, 1)
    rec.add_frame(frame(2), 2, 2)  # a dead take ignores the rest quietly
    assert not rec.recording and not (tmp_path / "data/pick/robot/0000000").exists() and staging_is_empty(tmp_path)
    with pytest.raises(RecordingFailed, match="failed while recording"):
        rec.stop()
    assert rec.status()["episodes_failed"] == 1
    with pytest.raises(RecordingFailed, match="not recording"):
        rec.stop()


def test_start_refusals_discard_and_short_or_incomplete_episodes(tmp_path, hand):
    clock = Clock()
    rec = EpisodeRecorder(hand, clock)
    with pytest.raises(ValueError, match="set a task name"):
        rec.start(dataclasses.replace(cfg(tmp_path), task=""))
    with pytest.raises(ValueError, match="needs the hand"):
        EpisodeRecorder(None).start(cfg(tmp_path))
    rec.start(cfg(tmp_path))
    with pytest.raises(ValueError, match="already recording pick/robot/0000000"):
        rec.start(cfg(tmp_path))
    assert rec.discard() == "discarded pick/robot/0000000"
    assert not (tmp_path / "data/pick/robot/0000000").exists() and staging_is_empty(tmp_path)
    with pytest.raises(ValueError, match="not recording"):
        rec.discard()
    # frames but no wrist pose: refused with the topic's name, nothing left behind
    rec.start(cfg(tmp_path))
    for k in range(10):
        rec.add_frame(frame(k), k * NS // 10, 0)
        rec.add_joints(hand.neutral(), k * NS // 10, 0)
    with pytest.raises(RecordingFailed, match="no wrist poses on /humanprompt/wrist_pose"):
        rec.stop()
    # too short for two frames at the episode's rate
    rec.start(cfg(tmp_path))
    for k in range(2):
        rec.add_frame(frame(k), k * NS // 100, 0)
        rec.add_joints(hand.neutral(), k * NS // 100, 0)
        rec.add_wrist(wrist_pose(), k * NS // 100, 0)
    with pytest.raises(RecordingFailed, match="less than two frames at 10 fps"):
        rec.stop()
    assert not any((tmp_path / "data/pick/robot").iterdir()) and staging_is_empty(tmp_path)
    assert rec.status()["episodes_failed"] == 2 and rec.status()["episodes_discarded"] == 1


def test_recording_pauses_at_max_duration(tmp_path, hand):
    clock = Clock()
    rec = EpisodeRecorder(hand, clock)
    rec.start(cfg(tmp_path, max_duration=0.525))
    sent = feed_robot(rec, hand, clock)
    status = rec.status()
    assert status["paused"] and status["camera_frames"] == 16  # frames up to 0.525 s only
    ep = load_episode(rec.stop().path)
    assert ep.meta["recording"]["received"]["camera_frames"] == 16 and len(sent["frames"]) == 31
    assert ep.meta["num_frames"] == 5  # 0.1 .. 0.5 s, the last frame's time


def test_samples_stamped_before_the_start_are_dropped_and_counted(tmp_path, hand):
    """Messages queued before ~/start (stamped before it, in the stamps' clock) are not the episode's: dropped and
    counted; unstamped ones (0: here the first frame) are kept; a stream with nothing after the start is refused,
    saying so."""
    clock = Clock()
    rec = EpisodeRecorder(hand, clock)
    rec.start(cfg(tmp_path), now_ns=int(0.51 * NS))
    feed_robot(rec, hand, clock)  # frames from 0 s, joints from 0.05 s, the wrist from 0.1 s
    assert rec.status()["stamped_before_start"] == 15 + 46 + 21 and rec.status()["camera_frames"] == 31 - 15
    ep = load_episode(rec.stop().path)
    rmeta = ep.meta["recording"]
    dropped = {"camera_frames": 15, "joint_states": 46, "wrist_poses": 21, "hand_targets": 0}
    assert rmeta["stamped_before_start"] == dropped
    assert rmeta["start_s"] == pytest.approx(0.52) and ep.meta["num_frames"] == 5  # the wrist's first, to 0.92 s
    rec.start(cfg(tmp_path), now_ns=2 * NS)  # everything stamped in the 10 s before the start
    feed_robot(rec, hand, clock)
    with pytest.raises(RecordingFailed, match=r"no joint states .*\(116 stamped before ~/start were dropped"):
        rec.stop()
    # stamps older than the backlog window are another clock's (a device's): kept, not dropped
    rec.start(cfg(tmp_path), now_ns=1000 * NS)
    feed_robot(rec, hand, clock)
    assert rec.status()["stamped_before_start"] == 0
    assert load_episode(rec.stop().path).meta["num_frames"] > 5


def test_a_slow_frame_write_never_holds_up_the_state_samples(tmp_path, hand):
    """While a frame's spool write blocks (a slow disk), state samples and the live counts go on; stop and discard
    wait for the write (the spool is closed after it)."""
    import threading
    import time

    rec = EpisodeRecorder(hand, Clock())
    rec.start(cfg(tmp_path))
    spool = rec._take.spool
    entered, release = threading.Event(), threading.Event()
    append = spool.append

    def blocked_append(f):
        entered.set()
        release.wait(10)
        append(f)

    spool.append = blocked_append
    writer = threading.Thread(target=rec.add_frame, args=(frame(0), 1, 1))
    writer.start()
    assert entered.wait(5)
    t0 = time.monotonic()
    for k in range(1, 4):
        rec.add_joints(hand.neutral(), k, k)
        rec.add_wrist(wrist_pose(), k, k)
    status = rec.status()
    assert time.monotonic() - t0 < 1 and status["joint_states"] == status["wrist_poses"] == 3
    assert status["camera_frames"] == 0  # counted once written
    discard = threading.Thread(target=rec.discard)
    discard.start()
    discard.join(0.2)
    assert discard.is_alive()  # waits for the frame write
    release.set()
    writer.join(5)
    discard.join(5)
    assert not writer.is_alive() and not discard.is_alive() and spool.count == 1
    assert rec.status()["episodes_discarded"] == 1 and staging_is_empty(tmp_path)


def test_frame_spool_round_trip_and_size_check(tmp_path):
    spool = FrameSpool(tmp_path / "f.u8")
    frames = [np.random.default_rng(k).integers(0, 255, (6, 4, 3), dtype=np.uint8) for k in range(5)]
    for f in frames:
        spool.append(f)
    with pytest.raises(ValueError, match="the episode's first was"):
        spool.append(np.zeros((4, 4, 3), np.uint8))
    spool.close()
    assert spool.count == 5 and (tmp_path / "f.u8").stat().st_size == 5 * 6 * 4 * 3
    np.testing.assert_array_equal(spool.frames(), np.stack(frames))
