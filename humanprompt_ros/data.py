"""Demonstration episodes on disk (the HumanPrompt-Sim dataset format) and prompt loading.

An episode is a directory (format version 1; see ``docs/benchmark.md``)::

    <episode>/
      meta.json        task, skill, embodiment, success, seed, fps, image size, hand, mask, ...
      video.mp4        the camera video, T+1 frames (H.264, yuv420p, CRF 12): frame t is what the
                       camera saw when action t was chosen; the last frame is the final state
      actions.npy      (T, 24) float32 unified actions (humanprompt_ros.action layout), as commanded
      proprio.npy      (T+1, 24) float32 measured hand state in the unified space
      joints.npy       robot episodes: (T+1, n) float32 joint positions (meta.joint_names)
      keypoints.npy    human episodes: (T+1, 21, 3) float32 world keypoints, MediaPipe order
      state.npy        simulated episodes: (T+1, D) float32 privileged scene state (meta.state_layout)
      frames_<S>.npy   optional cache: the video resized to S×S for a model (Episode.frames_at)

A dataset is any directory tree of episodes (``humanprompt-sim generate`` writes
``<root>/<task>/<embodiment>/<seed>``). :func:`iter_episodes` walks it lazily, one episode at a
time, loading arrays only on access and frames only when asked, so datasets larger than memory
stream; several datasets read as one (:func:`dataset_roots`: a config's ``data``). A *prompt* is an
episode directory or a bare video file: :func:`load_prompt` validates it (without decoding it:
:func:`humanprompt_ros.video.probe`) and says why it is unusable; :meth:`Episode.prompt_clip` decodes
only the frames a model's clip keeps.

Kept as one module: the format's writer (:func:`write_episode`, :func:`write_meta`) and its readers live
together, so that they cannot drift apart.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np

from humanprompt_ros.video import (  # noqa: F401  (re-exported)
    VIDEO_SUFFIXES,
    ClipPlan,
    VideoInfo,
    iter_video,
    plan_clip,
    probe,
    read_clip,
    read_video,
    resize_frames,
    write_video,
)

FORMAT_VERSION = 1
VIDEO_FILE = "video.mp4"
META_FILE = "meta.json"
MIN_PROMPT_FRAMES = 4
ACTION_LAYOUT = (
    "wrist_pos[3] world, wrist_rot6d[6] (first two rotation columns), "
    "fingertips thumb,index,middle,ring,little [5x3] in the wrist frame; masked fingers are 0"
)


# -- episodes --------------------------------------------------------------------------------------------
@dataclass
class Episode:
    """One demonstration. Arrays load lazily from ``path``; frames only through :meth:`frames`."""

    path: Path | None
    meta: dict[str, Any]
    video_path: Path | None = None
    _arrays: dict[str, np.ndarray | None] = field(default_factory=dict, repr=False)
    _frames: np.ndarray | None = field(default=None, repr=False)
    _info: VideoInfo | None = field(default=None, repr=False)
    root: Path | None = None  # the dataset root it was found under (:func:`iter_episodes`)

    # metadata shortcuts
    task = property(lambda self: self.meta.get("task"))
    skill = property(lambda self: self.meta.get("skill"))
    embodiment = property(lambda self: self.meta.get("embodiment"))
    success = property(lambda self: self.meta.get("success"))
    seed = property(lambda self: self.meta.get("seed"))
    fps = property(lambda self: float(self.meta.get("fps", 10.0)))

    def _array(self, name: str) -> np.ndarray | None:
        if name not in self._arrays:
            f = self.path / f"{name}.npy" if self.path is not None else None
            self._arrays[name] = np.load(f, allow_pickle=False) if f is not None and f.is_file() else None
        return self._arrays[name]

    @property
    def actions(self) -> np.ndarray | None:
        """(T, 24) unified actions, or None (e.g. a bare video prompt)."""
        return self._array("actions")

    @property
    def proprio(self) -> np.ndarray | None:
        return self._array("proprio")

    @property
    def joints(self) -> np.ndarray | None:
        return self._array("joints")

    @property
    def keypoints(self) -> np.ndarray | None:
        return self._array("keypoints")

    @property
    def state(self) -> np.ndarray | None:
        """Simulated episodes: (T+1, D) privileged scene state (objects, goal; ``meta["state_layout"]``)."""
        return self._array("state")

    @property
    def mask(self) -> np.ndarray:
        return np.asarray(self.meta.get("mask", [True] * 5), bool)

    def frames(self) -> np.ndarray:
        """(T+1, H, W, 3) uint8, decoded on first call and cached."""
        if self._frames is None:
            if self.video_path is None:
                raise ValueError(f"episode {self.path}: no video")
            self._frames = read_video(self.video_path)
        return self._frames

    @property
    def video_info(self) -> VideoInfo:
        """The video's frame count, declared rate and size (:func:`~humanprompt_ros.video.probe`, cached)."""
        if self._info is None:
            if self.video_path is None:
                raise ValueError(f"episode {self.path}: no video")
            self._info = probe(self.video_path)
        return self._info

    def prompt_clip(self, num_frames: int, size: int, fps: float | None = None) -> tuple[np.ndarray, ClipPlan]:
        """The video as a model's prompt clip: (num_frames, size, size, 3) uint8 and how it was sampled.

        The video is read at its own rate (``meta["fps"]``: the episode's, or the container's for a bare
        video), resampled in time to ``fps`` (the rate the model was trained at; None: not resampled),
        then to ``num_frames`` over its whole length (:func:`~humanprompt_ros.video.plan_clip`). Only the
        frames kept are decoded, unless the frames are already in memory; the length is the episode's
        ``meta["num_frames"]`` when it has one, else the probed count.
        """
        source_fps = self.meta.get("fps")
        if self._frames is not None or self.video_path is None:
            frames = self.frames()
            plan = plan_clip(len(frames), num_frames, source_fps, fps)
            return resize_frames(frames[list(plan.indices)], size), plan
        known = self.meta.get("num_frames") if self._info is None else None  # an episode's: no probe needed
        length = known if isinstance(known, int) and known > 0 else self.video_info.frames
        return read_clip(self.video_path, num_frames, size, source_fps, fps, length)

    def frames_at(self, size: int) -> np.ndarray:
        """(T+1, size, size, 3) uint8: the frames resized for a model (:func:`resize_frames`).

        Cached next to the video as ``frames_<size>.npy`` (a derived file, safe to delete; rebuilt
        when the video is newer), because decoding every video again costs minutes per training run.
        An episode that has the cache but no video (a dataset packed for training elsewhere) uses it.
        """
        if self.video_path is None:
            cache = self.path / f"frames_{size}.npy" if self.path is not None else None
            if cache is not None and cache.is_file():
                return np.load(cache)
            raise ValueError(f"episode {self.path}: no video")
        cache = self.video_path.with_name(f"frames_{size}.npy")
        try:
            if cache.stat().st_mtime >= self.video_path.stat().st_mtime:
                return np.load(cache)
        except (OSError, ValueError):
            pass
        frames = resize_frames(self.frames(), size)
        try:
            tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, frames)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only dataset: no cache
        return frames

    def iter_frames(self) -> Iterator[np.ndarray]:
        if self._frames is not None:
            yield from self._frames
        elif self.video_path is not None:
            yield from iter_video(self.video_path)

    def require_actions(self, who: str = "this consumer") -> np.ndarray:
        a = self.actions
        if a is None:
            where = self.path or self.video_path
            raise ValueError(
                f"{who} needs the demonstration's unified actions, but the prompt {where} has none "
                f"(a bare video, or an episode without actions.npy)"
            )
        return a


def write_episode(
    directory: str | Path,
    frames,
    actions: np.ndarray,
    meta: dict[str, Any],
    *,
    proprio: np.ndarray | None = None,
    joints: np.ndarray | None = None,
    keypoints: np.ndarray | None = None,
    state: np.ndarray | None = None,
    fps: float = 10.0,
    crf: int = 12,
) -> Path:
    """Write one episode directory (see the module docstring). Returns its path.

    Files are written under temporary names and meta.json last, so a half-written episode (a worker
    killed mid-write) is skipped by :func:`iter_episodes`.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    actions = np.asarray(actions, np.float32)
    if actions.ndim != 2 or actions.shape[1] != 24:
        raise ValueError(f"actions must be (T, 24), got {actions.shape}")
    frames = list(frames)
    if frames:
        write_video(d / VIDEO_FILE, frames, fps, crf)
    arrays = {"actions": actions, "proprio": proprio, "joints": joints, "keypoints": keypoints, "state": state}
    for name, arr in arrays.items():
        if arr is not None:
            np.save(d / f"{name}.npy", np.asarray(arr, np.float32))
    meta = dict(meta)
    meta.setdefault("format_version", FORMAT_VERSION)
    meta.setdefault("fps", fps)
    meta.setdefault("num_actions", int(len(actions)))
    meta.setdefault("num_frames", len(frames))
    if frames:
        meta.setdefault("image_size", [int(frames[0].shape[0]), int(frames[0].shape[1])])
    meta.setdefault("action_layout", ACTION_LAYOUT)
    write_meta(d, meta)
    return d


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    """``directory/meta.json``, written atomically (a reader sees the old file or the new one, never a part)."""
    tmp = directory / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(_jsonable(meta), indent=1))
    os.replace(tmp, directory / META_FILE)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def load_episode(path: str | Path) -> Episode:
    """Open an episode directory (arrays and frames load lazily). Raises ``ValueError`` if it is not one."""
    p = Path(path)
    meta_file = p / META_FILE
    if not p.is_dir():
        raise ValueError(f"{p}: not an episode directory (not found or not a directory)")
    if not meta_file.is_file():
        raise ValueError(f"{p}: not an episode directory (no {META_FILE})")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_file}: invalid JSON ({exc})") from None
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{meta_file}: episode format version {version!r}, this code reads version {FORMAT_VERSION}")
    video = p / VIDEO_FILE
    return Episode(p, meta, video if video.is_file() else None)


DatasetSpec = Union[str, Path, Sequence[Union[str, Path]]]  # a root, a glob (data/real/*), or a list of either


def dataset_roots(spec: DatasetSpec) -> list[Path]:
    """The dataset directories ``spec`` names, in order, each once.

    An entry is a directory (taken as written when it exists, even with glob characters in its name) or a
    glob, which must match at least one directory (its matches sorted; files it matches are ignored).
    ``ValueError`` naming the entry for a directory that does not exist, a glob that matches none, an
    empty spec, and a root inside another one (its episodes would be read twice).
    """
    entries = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not entries or any(not str(e).strip() for e in entries):
        raise ValueError(f"data {entries!r}: give a dataset directory, a glob, or a list of them (no empty entry)")
    roots: dict[Path, Path] = {}  # resolved -> as given
    for entry in entries:
        text = os.path.expanduser(str(entry).strip())
        if Path(text).is_dir():
            found = [Path(text)]
        elif any(c in text for c in "*?["):
            found = [Path(m) for m in sorted(glob.glob(text)) if Path(m).is_dir()]
            if not found:
                raise ValueError(f"{entry}: no dataset directory matches this pattern")
        else:
            raise ValueError(f"{entry}: dataset directory not found")
        for r in found:
            roots.setdefault(r.resolve(), r)
    for a, r in roots.items():
        outer = next((q for b, q in roots.items() if b in a.parents), None)
        if outer is not None:
            raise ValueError(f"{r}: inside the dataset {outer}, also given: its episodes would be read twice")
    return list(roots.values())


def iter_episodes(
    root: DatasetSpec,
    *,
    task: str | None = None,
    skill: str | None = None,
    embodiment: str | None = None,
    success: bool | None = None,
    where: Callable[[Episode], bool] | None = None,
) -> Iterator[Episode]:
    """Stream the episodes under ``root`` (any depth, sorted), filtered on their metadata.

    ``root``: one dataset directory or several (:func:`dataset_roots`), read one after the other; each
    episode's :attr:`Episode.root` says which it came from. Only meta.json is read per episode; arrays and
    frames load when accessed, so memory stays flat.
    """

    def walk(d: Path) -> Iterator[Path]:
        with os.scandir(d) as it:
            entries = sorted((e for e in it if e.is_dir()), key=lambda e: e.name)
        if (d / META_FILE).is_file():
            yield d
            return
        for e in entries:
            yield from walk(Path(e.path))

    for top in dataset_roots(root):
        for d in walk(top):
            try:
                ep = load_episode(d)
            except ValueError:
                continue
            ep.root = top
            m = ep.meta
            if task is not None and m.get("task") != task:
                continue
            if skill is not None and m.get("skill") != skill:
                continue
            if embodiment is not None and m.get("embodiment") != embodiment:
                continue
            if success is not None and bool(m.get("success")) != success:
                continue
            if where is not None and not where(ep):
                continue
            yield ep


@dataclass(frozen=True)
class PromptLimits:
    """Size and length limits a prompt video must stay within (0: no limit), checked before decoding."""

    max_duration_s: float = 0.0
    max_pixels: int = 0  # width × height of a frame
    max_file_mb: float = 0.0

    def check(self, where: str, info: VideoInfo) -> None:
        """``ValueError`` with the reason when ``info`` exceeds a limit."""
        mb = info.file_bytes / 1e6
        if self.max_file_mb and mb > self.max_file_mb:
            raise ValueError(f"prompt {where}: the file is {mb:.1f} MB, more than max_file_mb {self.max_file_mb:g}")
        pixels = info.width * info.height
        if self.max_pixels and pixels > self.max_pixels:
            raise ValueError(
                f"prompt {where}: frames of {info.width}x{info.height} = {pixels} pixels, more than max_pixels "
                f"{self.max_pixels}"
            )
        duration = info.duration_s
        if self.max_duration_s and duration is not None and duration > self.max_duration_s:
            raise ValueError(
                f"prompt {where}: {duration:.1f} s long ({info.frames} frames at {info.fps:g} fps), more than "
                f"max_duration_s {self.max_duration_s:g}"
            )


def load_prompt(path: str | Path, min_frames: int = MIN_PROMPT_FRAMES, limits: PromptLimits | None = None) -> Episode:
    """A prompt: an episode directory or a bare video file, validated.

    Raises ``ValueError`` with a readable reason: not found, not a video, unreadable, empty, too
    short, beyond ``limits``. The video is probed, not decoded (frame count, rate, size: a bare video's
    rate becomes ``meta["fps"]``); its frames decode on demand (:meth:`Episode.frames`,
    :meth:`Episode.prompt_clip`).
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"prompt {p}: not found")
    if p.is_dir():
        if (p / META_FILE).is_file():
            ep = load_episode(p)
        else:
            videos = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                raise ValueError(f"prompt {p}: a directory without {META_FILE} or a video file")
            ep = Episode(p, {"embodiment": None}, videos[0])
        if ep.video_path is None:
            raise ValueError(f"prompt {p}: the episode has no {VIDEO_FILE}")
    else:
        if p.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"prompt {p}: not a video file (expected one of {', '.join(VIDEO_SUFFIXES)})")
        if p.stat().st_size == 0:
            raise ValueError(f"prompt {p}: the file is empty")
        ep = Episode(None, {"embodiment": None, "source": str(p)}, p)
    try:
        info = ep.video_info
    except ValueError as exc:  # a bare video's path, already named, is not repeated
        raise ValueError(f"prompt {p}: {str(exc).removeprefix(f'{p}: ')}") from None
    except Exception as exc:
        raise ValueError(f"prompt {p}: not a readable video ({exc})") from None
    if ep.meta.get("fps") is None and info.fps:  # absent or null: the video's own rate
        ep.meta["fps"] = info.fps
    if limits is not None:
        limits.check(str(p), info)
    if info.frames == 0:
        raise ValueError(f"prompt {p}: the video has no frames")
    if info.frames < min_frames:
        raise ValueError(f"prompt {p}: too short ({info.frames} frames, a prompt needs at least {min_frames})")
    return ep
