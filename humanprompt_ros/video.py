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

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")


def read_video(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video file → (frames (T, H, W, 3) uint8 RGB, fps). Raises ``ValueError`` if unreadable."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"video not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"video file is empty: {path}")
    try:
        frames = []
        for i, frame in enumerate(iio.imiter(path)):
            if max_frames is not None and i >= max_frames:
                break
            frames.append(_to_rgb(np.asarray(frame)))
        try:
            meta = iio.immeta(path)
        except Exception:  # metadata is optional
            meta = {}
    except Exception as exc:  # imageio raises many types for undecodable input
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot decode {path} as a video ({reason})") from None
    if not frames:
        raise ValueError(f"video has no frames: {path}")
    fps = float(meta.get("fps") or (1000.0 / meta["duration"] if meta.get("duration") else 10.0))
    return np.stack(frames), fps


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    if frame.shape[-1] == 4:
        frame = frame[..., :3]
    return frame.astype(np.uint8, copy=False)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write (T, H, W, 3) uint8 frames as .mp4 (H.264, high quality) or .gif, by suffix."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames, dtype=np.uint8)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, frames, duration=1000.0 / fps, loop=0)
    else:
        iio.imwrite(path, frames, fps=fps, codec="libx264", quality=None, pixelformat="yuv444p",
                    output_params=["-crf", "15"], macro_block_size=1)
    return path


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
    frames = frames[:, top:top + side, left:left + side]
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
