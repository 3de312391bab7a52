"""``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` without ``diagnostic_updater``.

There is no ``diagnostic_updater`` wheel, so nodes publish the array themselves through
:class:`NodeDiagnostics`: one ``DiagnosticStatus`` per node, named after the node, about once a
second, whose key/values come from a callback the node provides. :class:`RateMeter` and
:class:`LatencyStats` are the small statistics nodes report (achieved rates, latency percentiles).

Levels follow ``diagnostic_msgs``: OK, WARN, ERROR, STALE (bytes 0..3).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from humanprompt_ros.ros.topics import DIAGNOSTICS, qos_profile

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE)
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


class RateMeter:
    """Achieved event rate over a sliding time window (thread safe)."""

    def __init__(self, window_s: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, t: float | None = None) -> None:
        with self._lock:
            self._times.append(self._clock() if t is None else t)
            self.count += 1

    def rate(self) -> float:
        """Events per second over the window (0 with fewer than two events in it)."""
        now = self._clock()
        with self._lock:
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (len(self._times) - 1) / span if span > 0 else 0.0


class LatencyStats:
    """The last ``window`` latency samples (seconds), with percentiles in milliseconds (thread safe)."""

    def __init__(self, window: int = 1000):
        self._samples: collections.deque[float] = collections.deque(maxlen=window)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(float(seconds))
            self.count += 1

    def summary_ms(self) -> dict[str, float]:
        """{p50, p95, max, n} in milliseconds over the window ({} when empty)."""
        with self._lock:
            data = np.array(self._samples)
        if not len(data):
            return {}
        data *= 1e3
        return {
            "p50": float(np.percentile(data, 50)),
            "p95": float(np.percentile(data, 95)),
            "max": float(data.max()),
            "n": float(len(data)),
        }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def make_status(name: str, level: int, message: str, values: dict[str, Any], hardware_id: str = "") -> DiagnosticStatus:
    """One ``DiagnosticStatus``; values are formatted as strings (floats with 6 significant digits)."""
    status = DiagnosticStatus()
    status.level = bytes([level]) if isinstance(level, int) else level
    status.name = name
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    return status


def status_level(status: DiagnosticStatus) -> int:
    """The level of a status as an int (rclpy maps ``byte`` fields to ``bytes``)."""
    level = status.level
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


class NodeDiagnostics:
    """Publishes one status for ``node`` on ``/diagnostics`` every ``period`` seconds.

    ``update()`` returns ``(level, message, values)``; it runs on the node's executor (a timer), so
    it must be quick: read counters, do not compute. :meth:`publish_now` forces an extra update
    (e.g. on a state change, so that a hold is reported within milliseconds, not a second).
    """

    def __init__(
        self,
        node,
        update: Callable[[], tuple[int, str, dict[str, Any]]],
        period: float = 1.0,
        hardware_id: str = "",
        callback_group=None,
    ):
        self._node = node
        self._update = update
        self.name = node.get_name()
        self.hardware_id = hardware_id
        self._pub = node.create_publisher(DiagnosticArray, DIAGNOSTICS.name, qos_profile(DIAGNOSTICS))
        self._timer = node.create_timer(period, self.publish_now, callback_group=callback_group)
        self._lock = threading.Lock()

    def publish_now(self) -> None:
        with self._lock:
            try:
                level, message, values = self._update()
            except Exception as exc:  # noqa: BLE001 - diagnostics must never take a node down
                level, message, values = ERROR, f"diagnostics update failed: {exc}", {}
            msg = DiagnosticArray()
            msg.header.stamp = self._node.get_clock().now().to_msg()
            msg.status = [make_status(self.name, level, message, values, self.hardware_id)]
            self._pub.publish(msg)
