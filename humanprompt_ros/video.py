"""Video files and clips: read, write, and resample to a model's clip length and frame size.

Resampling (what happens to a prompt shorter or longer than the model's clip, or of another size):

* **time**: ``num_frames`` indices spread uniformly over the whole video, first and last frame
  included (``round(linspace(0, T-1, num_frames))``): a short video repeats frames, a long one
  skips frames. The prompt always covers the whole demonstration.
* **space**: a centred square crop of the shorter side, then area-averaging (downscale) or bilinear
  (upscale) resize to ``size × size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

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


def probe_video(path: str | Path) -> tuple[float | None, int | None]:
    """(frame rate, approximate frame count) a video file declares, each None when it does not say.

    The count is the container's (or duration × fps), without decoding: good for a progress bar, not exact.
    Raises ``ValueError`` when the file cannot be opened as a video.
    """
    reader = _open_video(path)
    try:
        meta = reader.get_meta_data()
    finally:
        reader.close()
    fps = meta.get("fps")
    fps = float(fps) if isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0 else None
    count = meta.get("nframes")
    if not isinstance(count, (int, float)) or not np.isfinite(count):
        duration = meta.get("duration")
        count = duration * fps if fps and isinstance(duration, (int, float)) and np.isfinite(duration) else None
    return fps, (int(round(count)) if count else None)


def _open_video(path: str | Path):
    """An imageio reader of ``path``; ``ValueError`` naming the file when it cannot be opened as a video."""
    import imageio.v2 as imageio

    try:
        return imageio.get_reader(Path(path))
    except Exception as exc:  # imageio raises many kinds
        raise ValueError(f"{Path(path)}: not a readable video ({type(exc).__name__}: {exc})") from None


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
        raise ValueError(f"{path}: not a readable video ({type(exc).__name__}: {exc})") from None
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
