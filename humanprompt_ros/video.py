"""Video files and clips: read, write, and resample to a model's clip length and frame size.

Resampling (what happens to a prompt shorter or longer than the model's clip, or of another size):

* **time**: ``num_frames`` indices spread uniformly over the whole video, first and last frame
  included (``round(linspace(0, T-1, num_frames))``): a short video repeats frames, a long one
  skips frames. The prompt always covers the whole demonstration.
* **space**: a centred square crop of the shorter side, then area-averaging (downscale) or bilinear
  (upscale) resize to ``size × size``.

A prompt video is first resampled in time to the rate a model was trained at (:func:`time_indices`: the
source frame nearest to each tick of the target rate), then to the clip length as above
(:func:`plan_clip`). :func:`read_clip` decodes only the frames the clip keeps (ffmpeg's ``select`` filter
skips the others) and resizes each one right after decoding, so a long HD video costs one decoding pass
and a few frames of memory; :func:`probe` reads the frame count, rate and size without decoding.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v")


def write_video(path: str | Path, frames, fps: float, crf: int = 12) -> Path:
    """Write uint8 (H, W, 3) frames as H.264 mp4 (yuv420p: even sizes; or a gif when ``path`` ends in
    .gif); returns ``path``."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = list(frames)
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, [np.asarray(f, np.uint8) for f in frames], duration=1000.0 / fps, loop=0)
        return path
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"{path}: H.264 needs even frame sizes, got {w}x{h}")
    writer = imageio.get_writer(
        path,
        fps=fps,
        codec="libx264",
        quality=None,
        macro_block_size=1,
        pixelformat="yuv420p",
        ffmpeg_log_level="error",
        ffmpeg_params=["-crf", str(crf), "-preset", "fast"],
    )
    try:
        for f in frames:
            writer.append_data(np.asarray(f, np.uint8))
    finally:
        writer.close()
    return path


def through_codec(frames, fps: float, crf: int = 12) -> np.ndarray:
    """uint8 (T, H, W, 3) frames → the same frames after an H.264 encode and decode at ``crf``: what a
    model sees of a prompt handed over as a video file (the dataset's videos, a ROS prompt directory)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="humanprompt-codec-") as tmp:
        return read_video(write_video(Path(tmp) / "clip.mp4", frames, fps, crf))


def read_video(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Decode a video into uint8 (T, H, W, 3). Raises ``ValueError`` when it cannot be read."""
    frames = list(iter_video(path, max_frames))
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def _declared_fps(meta: dict) -> float | None:
    """The frame rate in an imageio reader's metadata (ffmpeg: ``fps``; a gif: ``duration`` ms per frame)."""
    fps = meta.get("fps")
    if fps is None and meta.get("plugin") != "ffmpeg" and isinstance(meta.get("duration"), (int, float)):
        fps = 1000.0 / meta["duration"] if meta["duration"] > 0 else None
    return float(fps) if isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0 else None


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` reads of a video file without decoding it."""

    frames: int  # exact frame count
    fps: float | None  # the declared frame rate (None: unknown)
    width: int
    height: int
    file_bytes: int

    @property
    def duration_s(self) -> float | None:
        """frames / fps (None when the rate is unknown)."""
        return self.frames / self.fps if self.fps else None


def probe(path: str | Path) -> VideoInfo:
    """Frame count (exact), rate and size of a video file, without decoding its frames (ffmpeg counts the
    stream's packets; other formats, e.g. gif, ask their reader). ``ValueError`` naming the file when it
    cannot be read as a video."""
    path = Path(path)
    reader = _open_video(path)
    try:
        meta = reader.get_meta_data()
        if meta.get("plugin") == "ffmpeg":
            width, height = (int(v) for v in meta["size"])
            count = _count_packets(path)
        else:
            height, width = np.asarray(reader.get_data(0)).shape[:2]
            count = reader.get_length()
        if count is None or not np.isfinite(count):
            count = sum(1 for _ in reader)
    except ValueError:
        raise
    except Exception as exc:  # imageio raises many kinds
        raise ValueError(f"{path}: not a readable video ({short_reason(exc)})") from None
    finally:
        reader.close()
    return VideoInfo(int(count), _declared_fps(meta), int(width), int(height), path.stat().st_size)


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def remux_video(src: str | Path, dst: str | Path) -> Path:
    """Copy the first video stream of ``src`` into a new mp4 ``dst`` without re-encoding (bit-exact frames,
    same timestamps; no audio). ``ValueError`` naming the file when ffmpeg cannot."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = [_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(src)]
    cmd += ["-map", "0:v:0", "-c", "copy", "-an", "-movflags", "+faststart", str(dst)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ValueError(f"{src}: cannot copy the video stream ({exc})") from None
    if proc.returncode != 0:
        dst.unlink(missing_ok=True)
        raise ValueError(f"{src}: cannot copy the video stream ({proc.stderr.decode(errors='ignore').strip()})")
    return dst


def _count_packets(path: Path) -> int | None:
    """The first video stream's frame count by stream copy (demuxing only, no decoding), or None."""
    cmd = [_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=120).stderr.decode(errors="ignore")
    except (OSError, subprocess.SubprocessError):
        return None
    counts = re.findall(r"frame=\s*(\d+)", out)
    return int(counts[-1]) if counts else None


def _open_video(path: str | Path):
    """An imageio reader of ``path``; ``ValueError`` naming the file when it cannot be opened as a video."""
    import imageio.v2 as imageio

    try:
        return imageio.get_reader(Path(path))
    except Exception as exc:  # imageio raises many kinds
        raise ValueError(f"{Path(path)}: not a readable video ({short_reason(exc)})") from None


_FFMPEG_LOG = re.compile(r"^\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*")  # "[in#0 @ 0x55be61f0b000] " before ffmpeg's messages


def short_reason(exc: Exception) -> str:
    """An imageio/ffmpeg error in one line: its first line and ffmpeg's first two log messages, without the
    banner and build configuration ffmpeg prints (kilobytes an operator cannot use), or "no video stream"
    when ffmpeg opened the container and found none."""
    head, _, stderr = str(exc).partition("=== stderr ===")
    first = next((line.strip() for line in head.splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if not stderr:
        return text
    if "Input #0" in stderr and not re.search(r"Stream #\d+:\d+.*: Video:", stderr):
        return f"{text}; no video stream"  # the container opened, but holds no video (or its index is cut)
    said: list[str] = []
    for line in stderr.splitlines():
        if _FFMPEG_LOG.match(line):
            msg = _FFMPEG_LOG.sub("", line).strip()
            if msg and msg not in said:
                said.append(msg)
    return "; ".join([text, *said[:2]])


def iter_video(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    path = Path(path)
    reader = _open_video(path)
    try:
        for i, frame in enumerate(reader):
            if max_frames is not None and i >= max_frames:
                break
            frame = np.asarray(frame)
            if frame.ndim == 2:
                frame = np.repeat(frame[..., None], 3, axis=2)
            yield frame[..., :3].astype(np.uint8, copy=False)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: not a readable video ({short_reason(exc)})") from None
    finally:
        reader.close()


def resample_indices(length: int, num_frames: int) -> np.ndarray:
    """``num_frames`` indices spread uniformly over ``length`` frames (see the module docstring)."""
    if length < 1:
        raise ValueError("cannot resample an empty clip")
    return np.round(np.linspace(0, length - 1, num_frames)).astype(int)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 → (T, size, size, 3): centred square crop, then resize."""
    import torch
    import torch.nn.functional as F

    frames = np.asarray(frames)
    t, h, w, _ = frames.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    frames = frames[:, top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(frames)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    mode = "area" if side > size else "bilinear"
    y = F.interpolate(x, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def resample_clip(frames: np.ndarray, num_frames: int, size: int) -> np.ndarray:
    """Any (T, H, W, 3) clip → (num_frames, size, size, 3) uint8 (see the module docstring)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {frames.shape}")
    return resize_frames(frames[resample_indices(len(frames), num_frames)], size)


def time_indices(length: int, fps: float | None, target_fps: float | None) -> np.ndarray:
    """The frames of a ``length``-frame video at ``fps`` that the same span shows at ``target_fps``: for each
    tick k/target_fps within the video ((length−1)/fps s), the source frame nearest in time (the earlier on
    a tie). Without either rate: every frame."""
    if length < 1:
        raise ValueError("cannot resample an empty clip")
    if not fps or not target_fps:
        return np.arange(length)
    ticks = int(np.floor((length - 1) * target_fps / fps + 1e-9)) + 1
    return np.minimum(np.ceil(np.arange(ticks) * fps / target_fps - 0.5 - 1e-9).astype(int), length - 1).clip(0)


@dataclass(frozen=True)
class ClipPlan:
    """How a prompt video becomes a model's clip (:func:`plan_clip`)."""

    source_frames: int
    source_fps: float | None
    fps: float | None  # the rate the video was resampled to (None: not resampled in time)
    frames_used: int  # frames at ``fps`` spanning the whole video
    indices: tuple[int, ...]  # the source frames the clip is made of, in order

    @property
    def duration_s(self) -> float | None:
        return self.source_frames / self.source_fps if self.source_fps else None


def plan_clip(length: int, num_frames: int, fps: float | None = None, target_fps: float | None = None) -> ClipPlan:
    """A ``length``-frame video at ``fps`` → which frames make a ``num_frames`` clip: resampled in time to
    ``target_fps`` (:func:`time_indices`), then to ``num_frames`` (:func:`resample_indices`)."""
    at_rate = time_indices(length, fps, target_fps)
    keep = at_rate[resample_indices(len(at_rate), num_frames)]
    resampled = bool(fps and target_fps)
    return ClipPlan(length, fps, target_fps if resampled else None, len(at_rate), tuple(int(i) for i in keep))


def read_frames(path: str | Path, indices: Iterable[int], size: int | None = None) -> np.ndarray:
    """Decode only the frames at ``indices`` (any order, repeats allowed) → (len(indices), H, W, 3) uint8, or
    with ``size`` each frame cropped and resized to ``size × size`` (:func:`resize_frames`) right after
    decoding. ffmpeg formats skip the other frames in ffmpeg (``select`` filter); others, or where that
    fails, are iterated. ``ValueError`` when the video is unreadable or has fewer frames than an index asks."""
    path, indices = Path(path), [int(i) for i in indices]
    wanted = sorted(set(indices))
    if not wanted:
        raise ValueError(f"{path}: no frames asked for")
    kept = None
    if path.suffix.lower() != ".gif":
        try:
            kept = _select_ffmpeg(path, wanted, size)
        except (OSError, RuntimeError):
            kept = None  # an ffmpeg without the options used: decode frame by frame below
    if kept is None:
        kept, wanted_set = {}, set(wanted)
        for i, frame in enumerate(iter_video(path)):
            if i in wanted_set:
                kept[i] = frame if size is None else resize_frames(frame[None], size)[0]
            if i >= wanted[-1]:
                break
    if len(kept) < len(wanted):
        raise ValueError(f"{path}: has only {len(kept)} of the {len(wanted)} frames asked for (up to {wanted[-1]})")
    return np.stack([kept[i] for i in indices])


def _select_ffmpeg(path: Path, wanted: list[int], size: int | None) -> dict[int, np.ndarray]:
    """{index: frame} for the sorted ``wanted`` indices, decoded by ffmpeg, which drops the others."""
    import imageio_ffmpeg

    expr = "+".join(f"eq(n\\,{i})" for i in wanted)
    gen = imageio_ffmpeg.read_frames(
        str(path), output_params=["-vf", f"select={expr}", "-fps_mode", "passthrough", "-an"]
    )
    try:
        w, h = gen.__next__()["size"]
        kept = {}
        for i, raw in zip(wanted, gen):
            frame = np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy()  # writable, for torch
            kept[i] = frame if size is None else resize_frames(frame[None], size)[0]
        return kept
    finally:
        gen.close()


def read_clip(
    path: str | Path,
    num_frames: int,
    size: int,
    fps: float | None = None,
    target_fps: float | None = None,
    length: int | None = None,
) -> tuple[np.ndarray, ClipPlan]:
    """A prompt video file → its (num_frames, size, size, 3) uint8 clip and the :class:`ClipPlan`, decoding
    only the frames kept (:func:`read_frames`). ``length``: the frame count when known (default
    :func:`probe`'s); a video that turns out shorter is decoded whole (each frame resized) and planned again."""
    length = probe(path).frames if length is None else length
    plan = plan_clip(length, num_frames, fps, target_fps)
    try:
        return read_frames(path, plan.indices, size), plan
    except ValueError:
        frames = [resize_frames(f[None], size)[0] for f in iter_video(path)]
        if not frames:
            raise
        plan = plan_clip(len(frames), num_frames, fps, target_fps)
        return np.stack([frames[i] for i in plan.indices]), plan
