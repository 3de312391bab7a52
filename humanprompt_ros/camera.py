"""Camera frame sources, ROS-free: video files, image folders and V4L2 devices, and fitting a frame to the
size the graph publishes. The camera node is their thin adapter."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from humanprompt_ros.config.nodes import CameraConfig, StartupError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class BadFrame(Exception):
    """A frame that cannot be used: dropped and counted."""


def as_rgb(frame: np.ndarray) -> np.ndarray:
    """uint8 H×W, H×W×1, H×W×3 or H×W×4 → H×W×3 RGB; anything else raises :class:`BadFrame`."""
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        raise BadFrame(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
        arr = arr.reshape(arr.shape[0], arr.shape[1])
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return arr[:, :, :3]
    raise BadFrame(f"expected an H×W×3 image, got shape {arr.shape}")


def fit(frame: np.ndarray, width: int, height: int, crop: str = "center") -> np.ndarray:
    """Center-crop (``crop='center'``) to the aspect ratio of width×height, then resize (bilinear, antialiased)."""
    h, w = frame.shape[:2]
    if h == 0 or w == 0:
        raise BadFrame(f"empty frame {frame.shape}")
    if crop == "center":
        target = width / height
        if w / h > target:  # too wide
            cw = max(1, round(h * target))
            x0 = (w - cw) // 2
            frame = frame[:, x0 : x0 + cw]
        elif w / h < target:  # too tall
            ch = max(1, round(w / target))
            y0 = (h - ch) // 2
            frame = frame[y0 : y0 + ch]
    if frame.shape[:2] == (height, width):
        return np.ascontiguousarray(frame)
    from PIL import Image as PILImage

    return np.asarray(PILImage.fromarray(np.ascontiguousarray(frame)).resize((width, height), PILImage.BILINEAR))


class VideoSource:
    """A video file read with imageio's ffmpeg plugin."""

    def __init__(self, path: str):
        p = Path(path).expanduser()
        if not p.is_file():
            raise StartupError(f"source 'video': no such file: {p}")
        self.path = p
        self._reader = self._open()
        fps = self._reader.get_meta_data().get("fps")
        self.fps = float(fps) if fps else None
        self.description = f"video {p}"

    def _open(self):
        import imageio.v2 as iio

        try:
            return iio.get_reader(str(self.path), format="ffmpeg")
        except Exception as exc:  # noqa: BLE001 - imageio raises many kinds
            raise StartupError(f"source 'video': cannot read {self.path} as a video: {exc}") from None

    def read(self) -> np.ndarray | None:
        try:
            return self._reader.get_next_data()
        except IndexError:
            return None  # end of the file
        except StopIteration:
            return None
        except Exception as exc:  # noqa: BLE001 - a corrupt packet
            raise BadFrame(f"video decode error: {exc}") from None

    def rewind(self) -> None:
        self._reader.close()
        self._reader = self._open()

    def close(self) -> None:
        self._reader.close()


class FolderSource:
    """Image files of a folder, in name order (PIL)."""

    fps = None

    def __init__(self, path: str):
        p = Path(path).expanduser()
        if not p.is_dir():
            raise StartupError(f"source 'folder': no such directory: {p}")
        self.files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise StartupError(f"source 'folder': {p} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self.index = 0
        self.description = f"folder {p} ({len(self.files)} images)"

    def read(self) -> np.ndarray | None:
        if self.index >= len(self.files):
            return None
        f = self.files[self.index]
        self.index += 1
        from PIL import Image as PILImage

        try:
            with PILImage.open(f) as im:
                return np.asarray(im.convert("RGB"))
        except Exception as exc:  # noqa: BLE001 - corrupt or unreadable file
            raise BadFrame(f"cannot read image {f.name}: {exc}") from None

    def rewind(self) -> None:
        self.index = 0

    def close(self) -> None:
        pass


class DeviceSource:
    """A V4L2 camera through OpenCV (``opencv-python-headless``)."""

    def __init__(self, path: str, width: int, height: int):
        try:
            import cv2
        except ImportError:
            raise StartupError("source 'device' needs OpenCV: pip install opencv-python-headless") from None
        self._cv2 = cv2
        device: int | str = int(path) if path.isdigit() else path
        if isinstance(device, str) and not os.path.exists(device):
            raise StartupError(f"source 'device': no such device: {device} (ls /dev/video*)")
        self._cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not self._cap.isOpened():
            raise StartupError(
                f"source 'device': cannot open {device} with V4L2 (busy, no permission, or not a camera)"
            )
        if width:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        self.description = f"device {device}"

    def read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise BadFrame("device read failed")
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)

    def rewind(self) -> None:
        pass

    def close(self) -> None:
        self._cap.release()


def open_source(cfg: CameraConfig):
    if cfg.source == "video":
        return VideoSource(cfg.path)
    if cfg.source == "folder":
        return FolderSource(cfg.path)
    if cfg.source == "device":
        return DeviceSource(cfg.path, cfg.device_width, cfg.device_height)
    raise ValueError(f"source {cfg.source!r} has no reader")
