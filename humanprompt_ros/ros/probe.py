"""An in-process ROS peer for tests, benchmarks and quick checks of a running graph.

::

    with RosPeer(domain_id=42) as peer:
        targets = peer.publisher(topics.HAND_TARGET)
        commands = peer.record(topics.JOINT_COMMANDS)
        peer.wait_for_subscription(targets, timeout=20)       # DDS discovery, no fixed sleeps
        targets.publish(msg)
        peer.wait_until(lambda: len(commands) > 0, timeout=5, what="a joint command")

The peer has its own rclpy ``Context`` (so it never touches the global one) and spins a
single-threaded executor on a background thread. Discovery stays on this host
(``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) unless ``localhost_only=False``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

from humanprompt_ros.ros import topics as _topics


class Recorder:
    """Messages received on one topic, with their monotonic receive times (thread safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.items: list[tuple[float, Any]] = []

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self.items.append((time.monotonic(), msg))

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)

    def snapshot(self) -> list[tuple[float, Any]]:
        with self._lock:
            return list(self.items)

    def messages(self) -> list[Any]:
        return [m for _, m in self.snapshot()]

    def last(self) -> tuple[float, Any] | None:
        with self._lock:
            return self.items[-1] if self.items else None

    def since(self, t: float) -> list[tuple[float, Any]]:
        return [(ts, m) for ts, m in self.snapshot() if ts >= t]

    def clear(self) -> None:
        with self._lock:
            self.items.clear()


class RosPeer:
    def __init__(self, domain_id: int | None = None, name: str = "humanprompt_probe", localhost_only: bool = True):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        if localhost_only:
            os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
            os.environ.pop("ROS_LOCALHOST_ONLY", None)
        self.context = Context()
        kwargs = {"context": self.context, "signal_handler_options": rclpy.signals.SignalHandlerOptions.NO}
        if domain_id is not None:
            kwargs["domain_id"] = int(domain_id)
        rclpy.init(**kwargs)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True, name=f"{name}-spin")
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - shutting down
            pass

    # -- endpoints -----------------------------------------------------------------------------------
    def publisher(self, topic: _topics.Topic | str, qos=None):
        t = _topics.by_name(topic) if isinstance(topic, str) else topic
        return self.node.create_publisher(_topics.msg_class(t), t.name, qos or _topics.qos_profile(t))

    def record(self, topic: _topics.Topic | str, qos=None, msg_type=None, name: str | None = None) -> Recorder:
        """Record a table topic, or any topic given ``msg_type`` and ``name``."""
        rec = Recorder()
        if msg_type is not None:
            self.node.create_subscription(msg_type, name or str(topic), rec, qos or 10)
        else:
            t = _topics.by_name(topic) if isinstance(topic, str) else topic
            self.node.create_subscription(_topics.msg_class(t), t.name, rec, qos or _topics.subscription_qos(t))
        return rec

    # -- waiting ---------------------------------------------------------------------------------------
    @staticmethod
    def wait_until(predicate: Callable[[], Any], timeout: float, what: str = "the condition", poll: float = 0.01):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")

    def wait_for_subscription(self, publisher, timeout: float, count: int = 1) -> None:
        self.wait_until(
            lambda: publisher.get_subscription_count() >= count,
            timeout,
            f"{count} subscriber(s) of {publisher.topic_name}",
        )

    def wait_for_publisher(self, topic: str, timeout: float, count: int = 1) -> None:
        self.wait_until(lambda: self.node.count_publishers(topic) >= count, timeout, f"a publisher of {topic}")

    def now_msg(self):
        return self.node.get_clock().now().to_msg()

    def close(self) -> None:
        try:
            self.context.try_shutdown()
        finally:
            self._thread.join(timeout=2)
            self.executor.shutdown(timeout_sec=1)
            self.node.destroy_node()

    def __enter__(self) -> "RosPeer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
