"""Camera ingestion node: a V4L2 device, a video file, an image folder or an Image topic →
``/humanprompt/observation`` (sensor_msgs/Image, rgb8, at the model's size, sensor-data QoS).

::

    python -m humanprompt_ros.nodes.camera --ros-args -p source:=video -p path:=demo.mp4 -p rate:=30.0
    python -m humanprompt_ros.nodes.camera --ros-args -p source:=topic -p input_topic:=/camera/image_raw

Parameters: :class:`humanprompt_ros.nodes.config.CameraConfig` (defaults in ``config/camera.yaml``).

* ``device`` / ``video`` / ``folder`` are read on a capture thread of their own (never on the
  executor): a file source is paced at ``rate``; a device is read as fast as it delivers (so its
  driver queue never holds stale frames) and decimated to ``rate``.
* ``topic`` converts each input frame (any encoding of :mod:`humanprompt_ros.ros.image`; bgr8
  is swapped to rgb8), keeps its stamp, and drops frames beyond ``rate``.
* Frames are center-cropped to the output aspect ratio (``crop: center``) and resized.
* ``header.stamp`` is the capture time of the source frame (for a topic, the input's stamp), so
  ``now - stamp`` downstream is the latency since capture.
* A bad frame (unsupported encoding, corrupt image file, failed device read) is dropped and
  counted — never fatal. A missing device, file or empty folder is a clear error at startup
  (exit code 2).

Diagnostics (``/diagnostics``, status named ``camera``): achieved rate, target rate, latency
(publish time − source stamp) p50/p95/max, frames published, bad (dropped) frames, frames skipped
by the rate limit, age of the last frame, and a state string.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from ..nodes.config import CameraConfig
from ..nodes.runtime import StartupError, run_node

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class BadFrame(Exception):
    """A frame that cannot be used: dropped and counted."""


# -- pixels (ROS-free) -----------------------------------------------------------------------------
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
            frame = frame[:, x0:x0 + cw]
        elif w / h < target:  # too tall
            ch = max(1, round(w / target))
            y0 = (h - ch) // 2
            frame = frame[y0:y0 + ch]
    if frame.shape[:2] == (height, width):
        return np.ascontiguousarray(frame)
    from PIL import Image as PILImage

    return np.asarray(PILImage.fromarray(np.ascontiguousarray(frame)).resize((width, height), PILImage.BILINEAR))


# -- sources (ROS-free) ----------------------------------------------------------------------------
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
            raise StartupError(f"source 'device': cannot open {device} with V4L2 (busy, no permission, or not a camera)")
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


# -- the node --------------------------------------------------------------------------------------
def _make_node_class():
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.node import Node
    from rclpy.time import Time
    from sensor_msgs.msg import Image

    from ..paths import config_path
    from ..ros import topics
    from ..ros.diagnostics import ERROR, OK, WARN, LatencyStats, NodeDiagnostics, RateMeter
    from ..ros.image import image_to_numpy, numpy_to_image
    from ..ros.params import declare_config, watch_config

    class CameraNode(Node):
        def __init__(self):
            super().__init__("camera")
            self.cfg: CameraConfig = declare_config(self, CameraConfig, config_path("camera.yaml"), "camera")
            watch_config(self, CameraConfig, self._on_config)
            self.rate = RateMeter()
            self.latency = LatencyStats(300)
            self.published = 0
            self.bad = 0
            self.skipped = 0
            self.last_error = ""
            self.finished = False
            self.last_pub_mono: float | None = None
            self._stop = threading.Event()
            self._lock = threading.Lock()
            self.source = None
            self.pub = self.create_publisher(Image, topics.OBSERVATION.name, topics.qos_profile(topics.OBSERVATION))
            if self.cfg.source == "topic":
                self.source_desc = f"topic {self.cfg.input_topic}"
                self.sub = self.create_subscription(
                    Image, self.cfg.input_topic, self._on_image, topics.qos_profile(topics.SIM_IMAGE),
                    callback_group=MutuallyExclusiveCallbackGroup())
                self._thread = None
            else:
                self.source = open_source(self.cfg)  # StartupError on a missing device/file
                self.source_desc = self.source.description
                self._thread = threading.Thread(target=self._capture_loop, name="camera-capture", daemon=True)
            self.diag = NodeDiagnostics(self, self._diagnostics, self.cfg.diagnostics_period,
                                        hardware_id=self.source_desc, callback_group=MutuallyExclusiveCallbackGroup())
            if self._thread is not None:
                self._thread.start()
            self.get_logger().info(
                f"publishing {self.cfg.width}x{self.cfg.height} rgb8 on {topics.OBSERVATION.name} from "
                f"{self.source_desc} at " + (f"{self._target_rate():g} Hz" if self._target_rate() else "the source's rate"))

        def _on_config(self, cfg: CameraConfig) -> None:
            self.cfg = cfg

        def _target_rate(self) -> float:
            if self.cfg.rate > 0:
                return self.cfg.rate
            return float(getattr(self.source, "fps", 0.0) or 0.0)

        # -- output ------------------------------------------------------------------------------
        def _publish(self, rgb: np.ndarray, stamp_msg, frame_id: str) -> None:
            out = fit(as_rgb(rgb), self.cfg.width, self.cfg.height, self.cfg.crop)
            msg = numpy_to_image(out, "rgb8", frame_id=frame_id, stamp=stamp_msg)
            self.pub.publish(msg)
            now = self.get_clock().now()
            self.latency.add((now - Time.from_msg(stamp_msg)).nanoseconds * 1e-9)
            self.rate.tick()
            with self._lock:
                self.published += 1
                self.last_pub_mono = time.monotonic()

        def _count_bad(self, reason: str) -> None:
            with self._lock:
                self.bad += 1
                self.last_error = reason
            self.get_logger().warning(f"dropped a bad frame: {reason}", throttle_duration_sec=5.0)

        # -- topic source ------------------------------------------------------------------------
        def _on_image(self, msg: Image) -> None:
            rate = self.cfg.rate
            if rate > 0 and self.last_pub_mono is not None and time.monotonic() - self.last_pub_mono < 0.9 / rate:
                with self._lock:
                    self.skipped += 1
                return
            try:
                rgb = image_to_numpy(msg)
                stamp = msg.header.stamp
                if stamp.sec == 0 and stamp.nanosec == 0:
                    stamp = self.get_clock().now().to_msg()
                self._publish(rgb, stamp, msg.header.frame_id or self.cfg.frame_id)
            except (ValueError, BadFrame) as exc:
                self._count_bad(str(exc))

        # -- file / device sources (capture thread) ------------------------------------------------
        def _capture_loop(self) -> None:
            device = self.cfg.source == "device"
            next_t = time.monotonic()
            while not self._stop.is_set():
                rate = self._target_rate()
                period = 1.0 / rate if rate > 0 else 0.0
                stamp = self.get_clock().now().to_msg()
                try:
                    frame = self.source.read()
                except BadFrame as exc:
                    self._count_bad(str(exc))
                    frame = False
                except Exception as exc:  # noqa: BLE001 - never let the capture thread die silently
                    self._count_bad(f"{type(exc).__name__}: {exc}")
                    frame = False
                if frame is None:  # end of a file source
                    if self.cfg.loop:
                        try:
                            self.source.rewind()
                        except Exception as exc:  # noqa: BLE001
                            self.last_error = f"cannot restart the source: {exc}"
                            self.finished = True
                            return
                        continue
                    self.finished = True
                    self.get_logger().info(f"{self.source_desc} finished (loop: false)")
                    return
                if frame is not False:
                    if device and period and self.last_pub_mono is not None \
                            and time.monotonic() - self.last_pub_mono < 0.9 * period:
                        with self._lock:
                            self.skipped += 1
                        continue
                    try:
                        self._publish(frame, stamp, self.cfg.frame_id)
                    except BadFrame as exc:
                        self._count_bad(str(exc))
                elif device:
                    self._stop.wait(0.05)  # a failing device: do not spin
                if not device and period:
                    next_t += period
                    delay = next_t - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
                    elif delay < -period:
                        next_t = time.monotonic()  # fell behind: do not burst to catch up

        # -- diagnostics ---------------------------------------------------------------------------
        def _diagnostics(self):
            with self._lock:
                published, bad, skipped, last = self.published, self.bad, self.skipped, self.last_pub_mono
            rate = self.rate.rate()
            target = self._target_rate()
            age = None if last is None else time.monotonic() - last
            values = {"source": self.source_desc, "rate_hz": rate, "target_rate_hz": target,
                      "frames_published": published, "frames_dropped_bad": bad, "frames_skipped_rate": skipped,
                      "last_frame_age_s": -1.0 if age is None else age,
                      "output": f"{self.cfg.width}x{self.cfg.height} rgb8", "last_error": self.last_error}
            for k, v in self.latency.summary_ms().items():
                values[f"latency_{k}_ms" if k != "n" else "latency_samples"] = v
            if self.finished:
                return WARN, "source finished (loop: false)", values
            if age is None:
                return WARN, "waiting for the first frame", values
            if age > self.cfg.stale_after:
                return (ERROR if age > 5 * self.cfg.stale_after else WARN), f"no frames for {age:.2f} s", values
            if target > 0 and published > 2 * target and rate < 0.8 * target:
                return WARN, f"publishing at {rate:.1f} Hz, below the target {target:.1f} Hz", values
            return OK, f"publishing at {rate:.1f} Hz", values

        def close(self) -> None:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=2.0)
            if self.source is not None:
                self.source.close()

    return CameraNode


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: _make_node_class()(), "camera", args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
