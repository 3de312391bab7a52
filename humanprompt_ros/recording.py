"""Recording episodes from live streams, ROS-free: the core of the recorder node (:mod:`humanprompt_ros.nodes.recorder`).

One episode at a time: :meth:`EpisodeRecorder.start` → ``add_frame`` / ``add_joints`` / ``add_wrist`` /
``add_action`` as messages arrive (any thread) → :meth:`~EpisodeRecorder.stop` (save) or
:meth:`~EpisodeRecorder.discard`. The episode is written in the dataset format (:mod:`humanprompt_ros.data`) to
``<root>/<task>/<embodiment>/<number:07d>/``, the first free number, reserved (an empty directory) at start.
Samples stamped up to :data:`BACKLOG_NS` before the start (given its time in the stamps' clock: messages queued
before it) are dropped and counted (``stamped_before_start``); older stamps are another clock's (a device's),
kept. A frame's spool write never holds up the state samples: ``add_joints`` /
``add_wrist`` / ``add_action`` only take a lock held for microseconds, frames are written under one of their own.

**Robot episodes** are built exactly as :func:`humanprompt_ros.rosbag.import_bag` builds one from a bag (the
same :func:`~humanprompt_ros.rosbag.align` and :func:`~humanprompt_ros.rosbag.robot_arrays`): frames every
``1/fps`` s over the span where the camera, the joint states and the wrist pose all have data, each taking
the nearest message in time per stream (header stamps, or receive times for a stream whose stamps are all
zero); proprio t = FK of the joints t at the wrist pose t; action t = the hand target nearest to frame t when
any arrived during the episode, else the measured state t+1. ``meta.json`` ``recording`` says which, with the
topics, clocks, largest offsets (``max_offset_ms``), the messages received and those stamped before the start.

**Human episodes**: the camera frames, resampled the same way, become the episode's video; then the hand pose
is extracted (:func:`humanprompt_ros.hand.video_pose.extract_episode`, what ``humanprompt-hand extract`` runs)
when mediapipe is installed. Without it (or when it finds no hand, or with ``extract_hand_pose: false``) the
episode keeps the video and a ``meta.json`` whose ``hand_pose`` says ``{"status": "pending", "reason": ...,
"command": "humanprompt-hand extract ..."}``: a video-only episode (no actions), which stage 2 skips.

**Crash safety.** Everything is written under ``<root>/.recording/<id>/`` (the same file system as the dataset)
and the finished episode directory is renamed into place in one ``os.rename``, so a crash or a full disk loses
at most the episode being recorded and the dataset never holds half an episode. Memory stays flat: frames are
appended to a raw spool file (``frames.u8``) as they arrive and read back through a memory map at ``stop``;
the states (joint positions, 4×4 wrist poses, 24-float actions: well under 1 kB per message) are held in
memory, for at most ``max_duration`` seconds per episode, after which recording pauses until ``stop``. A failed
write (``OSError``: ENOSPC, EIO, a read-only directory), while recording or at ``stop``, removes the partial
episode and its reserved directory, is counted, and is reported by ``stop`` (:class:`RecordingFailed`); the
recorder is then ready for the next ``start``. ``<root>/.recording/`` holds nothing else and can be deleted
whenever no recorder runs; after a crash, the episode's reserved number stays as an empty directory (no episode
to readers; the next recording takes the number after it).

Kept as one module: the take, its frame spool and the writing of robot and human episodes share their locks, one
staging layout and one cleanup path.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from humanprompt_ros.config.nodes import RecorderConfig, expand_dirs
from humanprompt_ros.data import FORMAT_VERSION, META_FILE, VIDEO_FILE, write_episode, write_meta, write_video
from humanprompt_ros.rosbag import ALIGNMENT, action_source, align, message_times, next_index, robot_arrays

#: How far before ``start`` a stamp counts as a backlog queued before it (dropped): a subscription's history
#: holds seconds, not minutes; stamps older than this come from another clock (a device's) and are kept.
BACKLOG_NS = 10_000_000_000

__all__ = ["STAGING_DIR", "SPOOL_FILE", "FrameSpool", "RecordingFailed", "Saved", "EpisodeRecorder"]

STAGING_DIR = ".recording"
SPOOL_FILE = "frames.u8"
STREAMS = ("image", "joints", "wrist", "action")  # what each add_* feeds
_WHAT = {"image": "camera frames", "joints": "joint states", "wrist": "wrist poses", "action": "hand targets"}


class RecordingFailed(RuntimeError):
    """An episode could not be saved (the message says why); its partial files are already removed."""


class FrameSpool:
    """Frames of one size appended to a raw uint8 file as they arrive; read back as a memory map."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self.shape: tuple[int, ...] | None = None
        self.count = 0

    def append(self, frame: np.ndarray) -> None:
        """Write one (H, W, 3) uint8 frame; ``ValueError`` for another size than the first, ``OSError`` on a
        failed write (the frame is then not counted)."""
        frame = np.ascontiguousarray(frame, np.uint8)
        if self.shape is None:
            self.shape = frame.shape
        elif frame.shape != self.shape:
            raise ValueError(f"a frame of shape {frame.shape}, the episode's first was {self.shape}")
        view = memoryview(frame).cast("B")
        while view:
            view = view[self._file.write(view) :]
        self.count += 1

    def close(self) -> None:
        """Close the file (unbuffered: everything counted is written; a failed close after a failed write is
        ignored, the take is removed anyway)."""
        with contextlib.suppress(OSError):
            self._file.close()

    def frames(self) -> np.ndarray:
        """(count, H, W, 3) read-only memory map of the frames written so far (after :meth:`close`)."""
        if not self.count:
            raise ValueError("no frames")
        return np.memmap(self.path, np.uint8, "r", shape=(self.count, *self.shape))


@dataclass
class _Stream:
    header_ns: list[int] = field(default_factory=list)
    receive_ns: list[int] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)  # not for frames (spooled)

    def add(self, stamp_ns: int, receive_ns: int, value: np.ndarray | None = None) -> None:
        self.header_ns.append(int(stamp_ns))
        self.receive_ns.append(int(receive_ns))
        if value is not None:
            self.values.append(value)


@dataclass
class _Take:
    """The episode being recorded."""

    cfg: RecorderConfig
    root: Path
    work: Path  # <root>/.recording/<id>: the spool, and episode/ until it is renamed into place
    final: Path  # the reserved (empty) episode directory
    spool: FrameSpool
    started: float  # monotonic
    started_wall: str
    streams: dict[str, _Stream] = field(default_factory=lambda: {k: _Stream() for k in STREAMS})
    start_ns: int = 0  # samples stamped before it (in the stamps' clock) are dropped; 0: none
    early: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))  # dropped: stamped before
    wrist_frame_id: str = ""
    error: str = ""  # a failed write while recording: the take is dead, its files removed
    paused: bool = False  # max_duration reached

    @property
    def name(self) -> str:
        return str(self.final.relative_to(self.root))


@dataclass
class Saved:
    """What :meth:`EpisodeRecorder.stop` wrote."""

    path: Path
    frames: int
    actions: int
    seconds: float
    note: str = ""  # e.g. "hand pose pending: ..."

    def message(self) -> str:
        return f"saved {self.path}: {self.frames} frames, {self.actions} actions ({self.seconds:.1f} s)" + (
            f"; {self.note}" if self.note else ""
        )


class EpisodeRecorder:
    """One episode at a time from timestamped samples (see the module docstring); thread safe.

    ``hand`` (:class:`humanprompt_ros.hand.hand.Hand`) is needed for robot episodes (joint names, FK).
    """

    def __init__(self, hand=None, clock: Callable[[], float] = time.monotonic):
        self.hand = hand
        self._clock = clock
        # _lock guards the take and its streams and is only ever held for microseconds; _frames serializes the
        # spool (a frame's disk write, and its close at stop / discard), so a slow write never delays the state
        # samples. Order: _frames before _lock.
        self._lock = threading.Lock()
        self._frames = threading.Lock()
        self._take: _Take | None = None
        self.totals = dict(episodes_saved=0, episodes_failed=0, episodes_discarded=0, frames_saved=0)
        self.last_episode = ""
        self.last_error = ""

    # -- control -----------------------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        with self._lock:
            return self._take is not None and not self._take.error

    def start(self, cfg: RecorderConfig, now_ns: int = 0) -> str:
        """Start an episode with the settings of ``cfg``; returns a message. ``ValueError`` when it cannot start
        (already recording, no task, no hand), ``OSError`` when its directories cannot be made. ``now_ns``: the
        time of the start in the clock of the samples' stamps (the node's ROS clock); samples stamped earlier
        (queued before the start) are dropped and counted, unstamped ones (0) are kept; 0 drops none."""
        if not cfg.task.strip() or "/" in cfg.task or cfg.task.startswith("."):
            raise ValueError(f"task: set a task name first (a directory name), got {cfg.task!r}")
        if cfg.embodiment == "robot" and self.hand is None:
            raise ValueError("a robot episode needs the hand (joint names and FK)")
        roots = expand_dirs([cfg.root])
        if not roots:
            raise ValueError(f"root: {cfg.root!r} names no directory (an unset variable?)")
        root = roots[0]
        with self._lock:
            if self._take is not None and not self._take.error:
                raise ValueError(f"already recording {self._take.name}: call stop or discard first")
            self._take = None  # a failed take not yet reported by stop: superseded
            parent = root / cfg.task / cfg.embodiment
            parent.mkdir(parents=True, exist_ok=True)
            final = _reserve(parent)
            work = root / STAGING_DIR / f"{cfg.task}-{cfg.embodiment}-{final.name}-{os.getpid()}-{time.time_ns()}"
            try:
                work.mkdir(parents=True)
                spool = FrameSpool(work / SPOOL_FILE)
            except OSError:
                _remove(work, final)
                raise
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            self._take = _Take(cfg, root, work, final, spool, self._clock(), now, start_ns=int(now_ns))
            return f"recording {self._take.name} ({cfg.embodiment}, {cfg.fps:g} fps) into {root}"

    def stop(self) -> Saved:
        """End the episode and write it; :class:`RecordingFailed` (its files removed) when it cannot be saved."""
        with self._frames, self._lock:  # no frame write in flight: the spool can be closed
            take, self._take = self._take, None
        if take is None:
            raise RecordingFailed("not recording: call start first")
        if take.error:
            raise RecordingFailed(take.error)  # counted when it failed
        try:
            take.spool.close()
            saved = self._save(take)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, no partial episode stays
            _remove(take.work, take.final)
            self.totals["episodes_failed"] += 1
            kind = "" if isinstance(exc, (OSError, ValueError)) else f"{type(exc).__name__}: "
            self.last_error = f"episode {take.name} not saved: {kind}{exc}; the partial episode was removed"
            raise RecordingFailed(self.last_error) from exc
        shutil.rmtree(take.work, ignore_errors=True)
        self.totals["episodes_saved"] += 1
        self.totals["frames_saved"] += saved.frames
        self.last_episode = str(saved.path)
        return saved

    def discard(self) -> str:
        """End the episode without saving it; returns a message (``ValueError`` when not recording)."""
        with self._frames, self._lock:
            take, self._take = self._take, None
            if take is None:
                raise ValueError("not recording")
            take.spool.close()
        _remove(take.work, take.final)
        self.totals["episodes_discarded"] += 1
        return f"discarded {take.name}"

    # -- samples (any thread; ignored while not recording) ----------------------------------------------------
    def _live(self, kind: str, stamp_ns: int) -> _Take | None:
        """The take a sample of ``kind`` stamped ``stamp_ns`` goes to, or None (under ``_lock``)."""
        take = self._take
        if take is None or take.error or take.paused:
            return None
        if kind != "image" and take.cfg.embodiment == "human":
            return None
        if self._clock() - take.started > take.cfg.max_duration:
            take.paused = True
            return None
        if stamp_ns and take.start_ns - BACKLOG_NS <= stamp_ns < take.start_ns:  # queued before the start
            take.early[kind] += 1
            return None
        return take

    def add_frame(self, frame: np.ndarray, stamp_ns: int, receive_ns: int) -> None:
        """An (H, W, 3) uint8 camera frame (cropped to even sizes for H.264). ``ValueError`` for a frame of another
        size (dropped); :class:`RecordingFailed` once when the spool write fails (the episode is then dead and
        its files removed: :meth:`stop` reports it). The write holds ``_frames``, not the state samples' lock."""
        with self._frames:
            with self._lock:
                take = self._live("image", stamp_ns)
            if take is None:
                return
            h, w = frame.shape[:2]
            try:
                take.spool.append(frame[: h - h % 2, : w - w % 2])
            except OSError as exc:
                take.spool.close()
                _remove(take.work, take.final)
                with self._lock:
                    self.totals["episodes_failed"] += 1
                    take.error = self.last_error = (
                        f"episode {take.name} failed while recording, at frame {take.spool.count}: {exc}; "
                        "the partial episode was removed"
                    )
                raise RecordingFailed(take.error) from exc
            with self._lock:
                take.streams["image"].add(stamp_ns, receive_ns)

    def add_joints(self, q: np.ndarray, stamp_ns: int, receive_ns: int) -> None:
        """Joint positions in the hand's joint order."""
        with self._lock:
            if take := self._live("joints", stamp_ns):
                take.streams["joints"].add(stamp_ns, receive_ns, np.asarray(q, np.float64))

    def add_wrist(self, pose: np.ndarray, stamp_ns: int, receive_ns: int, frame_id: str = "") -> None:
        """The (4, 4) pose of the hand's base link."""
        with self._lock:
            if take := self._live("wrist", stamp_ns):
                take.streams["wrist"].add(stamp_ns, receive_ns, np.asarray(pose, np.float64))
                take.wrist_frame_id = take.wrist_frame_id or frame_id

    def add_action(self, action: np.ndarray, stamp_ns: int, receive_ns: int) -> None:
        """A commanded unified action (24 floats)."""
        with self._lock:
            if take := self._live("action", stamp_ns):
                take.streams["action"].add(stamp_ns, receive_ns, np.asarray(action, np.float64))

    # -- live counts -------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The episode's live counts and the session's totals (for logs and diagnostics)."""
        with self._lock:
            take = self._take
            out: dict[str, Any] = {"recording": take is not None and not take.error}
            if take is not None and not take.error:
                out.update(
                    episode=take.name,
                    embodiment=take.cfg.embodiment,
                    seconds=self._clock() - take.started,
                    paused=take.paused,
                    **{_WHAT[k].replace(" ", "_"): len(s.header_ns) for k, s in take.streams.items()},
                    stamped_before_start=sum(take.early.values()),
                )
        out.update(self.totals, last_episode=self.last_episode, last_error=self.last_error)
        return out

    # -- writing -----------------------------------------------------------------------------------------------
    def _save(self, take: _Take) -> Saved:
        cfg, streams = take.cfg, take.streams
        topics = {"image": cfg.image_topic}
        if cfg.embodiment == "robot":
            topics.update(joints=cfg.joint_topic, wrist=cfg.wrist_topic)
            if streams["action"].header_ns:
                topics["action"] = cfg.action_topic
        for key, topic in topics.items():
            if not streams[key].header_ns:
                early = take.early[key]
                raise ValueError(
                    f"no {_WHAT[key]} on {topic} during the episode"
                    + (
                        f" ({early} stamped before ~/start were dropped: are its stamps in the recorder's clock?)"
                        if early
                        else ""
                    )
                )
        times, clocks = {}, {}
        for key, topic in topics.items():
            times[topic], clocks[topic] = message_times(streams[key].header_ns, streams[key].receive_ns)
        required = [t for k, t in topics.items() if k != "action"]
        grid, pick, offsets = align(times, required, cfg.fps, topics.get("action"), f"episode {take.name}")
        spooled = take.spool.frames()
        frames = [spooled[i] for i in pick[cfg.image_topic]]  # views: pages are read as the video is encoded
        recording = {
            "topics": {k: topics.get(k) for k in (STREAMS if cfg.embodiment == "robot" else ("image",))},
            "time": clocks,
            "alignment": ALIGNMENT,
            "max_offset_ms": {t: round(v, 3) for t, v in offsets.items()},
            "start_s": int(grid[0]) / 1e9,
            "started": take.started_wall,
            "duration_s": round(self._clock() - take.started, 3),
            "received": {_WHAT[k].replace(" ", "_"): len(s.header_ns) for k, s in streams.items()},
            "stamped_before_start": {_WHAT[k].replace(" ", "_"): n for k, n in take.early.items()},
        }
        meta: dict[str, Any] = {
            "task": cfg.task,
            "skill": None,
            "embodiment": cfg.embodiment,
            "success": True,  # a recorded demonstration is taken to show the task done; discard a failed take
            "seed": int(take.final.name),
            "source": f"ROS topic {cfg.image_topic}",
        }
        episode = take.work / "episode"
        seconds = (len(grid) - 1) / cfg.fps
        if cfg.embodiment == "robot":
            hand = self.hand
            joints = np.stack(streams["joints"].values)[pick[cfg.joint_topic]]
            bases = np.stack(streams["wrist"].values)[pick[cfg.wrist_topic]]
            commanded = np.stack(streams["action"].values)[pick[cfg.action_topic]] if "action" in topics else None
            proprio, actions = robot_arrays(hand, joints, bases, commanded)
            recording.update(wrist_frame_id=take.wrist_frame_id, action_source=action_source(topics.get("action")))
            meta.update(hand=hand.name, mask=hand.mask.tolist(), joint_names=hand.joint_names, recording=recording)
            write_episode(episode, frames, actions, meta, proprio=proprio, joints=joints, fps=cfg.fps)
            saved = Saved(take.final, len(frames), len(actions), seconds)
        else:
            saved = self._save_human(take, episode, frames, meta, recording, seconds)
        os.rename(episode, take.final)  # replaces the reserved empty directory: the episode appears whole
        return saved

    def _save_human(
        self, take: _Take, episode: Path, frames: list[np.ndarray], meta: dict, recording: dict, seconds: float
    ) -> Saved:
        """The video, then the hand pose (or a pending meta saying how to extract it later)."""
        cfg = take.cfg
        video = write_video(episode / VIDEO_FILE, frames, cfg.fps)
        reason = "extract_hand_pose is false"
        if cfg.extract_hand_pose:
            from humanprompt_ros.hand.video_pose import MediaPipeMissing, extract_episode

            try:  # reads the whole video, then writes the episode (video included) into the same directory
                result = extract_episode(
                    video,
                    episode,
                    task=cfg.task,
                    handedness=cfg.handedness,
                    intrinsics=cfg.intrinsics or None,
                    overwrite=True,
                )
            except MediaPipeMissing as exc:
                reason = str(exc)
            except ValueError as exc:  # no hand found, bad intrinsics; named by where the video will be
                reason = f"hand pose extraction failed: {str(exc).replace(str(video), str(take.final / VIDEO_FILE))}"
            else:
                _update_meta(episode, {k: meta[k] for k in ("seed", "source")}, recording=recording)
                return Saved(take.final, result.frames, result.frames - 1, seconds)
        command = (
            f"humanprompt-hand extract {take.final / VIDEO_FILE} --out {take.final} --task {cfg.task} "
            f"--hand {cfg.handedness} --force" + (f" --intrinsics {cfg.intrinsics}" if cfg.intrinsics else "")
        )
        meta.update(
            hand="human",
            handedness=cfg.handedness,
            mask=[True] * 5,
            format_version=FORMAT_VERSION,
            fps=cfg.fps,
            num_frames=len(frames),
            num_actions=0,
            image_size=[int(frames[0].shape[0]), int(frames[0].shape[1])],
            hand_pose={"status": "pending", "reason": reason, "command": command},
            recording=recording,
        )
        _update_meta(episode, meta)
        return Saved(take.final, len(frames), 0, seconds, f"hand pose pending ({reason}); run: {command}")


def _reserve(parent: Path) -> Path:
    """Create and return the first free numbered episode directory under ``parent`` (empty, exclusive)."""
    index = next_index(parent)
    while True:
        final = parent / f"{index:07d}"
        try:
            final.mkdir()
            return final
        except FileExistsError:  # taken meanwhile (another recorder), or a file of that name: the next one
            index += 1


def _remove(work: Path, final: Path) -> None:
    """Remove a take's staging directory and its reserved (still empty) episode directory."""
    shutil.rmtree(work, ignore_errors=True)
    try:
        final.rmdir()
    except OSError:
        pass  # already gone, or not empty (then it is not ours to delete)


def _update_meta(directory: Path, values: dict[str, Any], **more: Any) -> None:
    """Merge ``values`` into ``directory/meta.json`` (created when missing), atomically."""
    path = directory / META_FILE
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.update(values, **more)
    write_meta(directory, meta)
