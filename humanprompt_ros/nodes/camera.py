"""Camera ingestion node: a V4L2 device, a video file, an image folder or an Image topic →
``/humanprompt/observation`` (sensor_msgs/Image, rgb8, at the model's size, sensor-data QoS).

::

    python -m humanprompt_ros.nodes.camera --ros-args -p source:=video -p path:=demo.mp4 -p rate:=30.0
    python -m humanprompt_ros.nodes.camera --ros-args -p source:=topic -p input_topic:=/camera/image_raw

Parameters: :class:`humanprompt_ros.config.nodes.CameraConfig` (defaults in ``config/camera.yaml``).

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

import threading
import time

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image

from humanprompt_ros.camera import BadFrame, as_rgb, fit, open_source
from humanprompt_ros.config.nodes import CameraConfig
from humanprompt_ros.nodes.runtime import run_node
from humanprompt_ros.paths import config_path
from humanprompt_ros.ros import topics
from humanprompt_ros.ros.diagnostics import ERROR, OK, WARN, LatencyStats, NodeDiagnostics, RateMeter
from humanprompt_ros.ros.image import image_to_numpy, numpy_to_image
from humanprompt_ros.ros.params import declare_config, watch_config


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
        self.pub = topics.publisher(self, topics.OBSERVATION)
        if self.cfg.source == "topic":
            self.source_desc = f"topic {self.cfg.input_topic}"
            self.sub = self.create_subscription(
                Image,
                self.cfg.input_topic,
                self._on_image,
                topics.qos_profile(topics.SIM_IMAGE),
                callback_group=MutuallyExclusiveCallbackGroup(),
            )
            self._thread = None
        else:
            self.source = open_source(self.cfg)  # StartupError on a missing device/file
            self.source_desc = self.source.description
            self._thread = threading.Thread(target=self._capture_loop, name="camera-capture", daemon=True)
        self.diag = NodeDiagnostics(
            self,
            self._diagnostics,
            self.cfg.diagnostics_period,
            hardware_id=self.source_desc,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        if self._thread is not None:
            self._thread.start()
        self.get_logger().info(
            f"publishing {self.cfg.width}x{self.cfg.height} rgb8 on {topics.OBSERVATION.name} from "
            f"{self.source_desc} at " + (f"{self._target_rate():g} Hz" if self._target_rate() else "the source's rate")
        )

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
                if (
                    device
                    and period
                    and self.last_pub_mono is not None
                    and time.monotonic() - self.last_pub_mono < 0.9 * period
                ):
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
        values = {
            "source": self.source_desc,
            "rate_hz": rate,
            "target_rate_hz": target,
            "frames_published": published,
            "frames_dropped_bad": bad,
            "frames_skipped_rate": skipped,
            "last_frame_age_s": -1.0 if age is None else age,
            "output": f"{self.cfg.width}x{self.cfg.height} rgb8",
            "last_error": self.last_error,
        }
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


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: CameraNode(), "camera", args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
