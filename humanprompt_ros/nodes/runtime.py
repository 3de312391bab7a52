"""What every node's ``main()`` shares: init, clear startup errors, spin, clean shutdown.

Exit codes: 0 after a clean shutdown (Ctrl-C, SIGTERM, ``rclpy.shutdown``), 2 when the node cannot
start because of its configuration or environment (a missing file or device, a bad parameter): the
reason is printed on one line, without a traceback, and ``humanprompt-bringup`` does not respawn a
node that exits with 2 (it would fail the same way again).
"""

from __future__ import annotations

import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

from humanprompt_ros.config.loader import ConfigError
from humanprompt_ros.config.nodes import StartupError
from humanprompt_ros.hand.hand import Hand, load_hand
from humanprompt_ros.paths import resolve_hand_path

EXIT_CONFIG_ERROR = 2


def load_node_hand(value: str) -> Hand:
    """The hand of a node's ``hand`` parameter (a YAML path, relative to the share directory), or
    ``StartupError`` naming the missing file."""
    path = resolve_hand_path(value)
    if not path.is_file():
        raise StartupError(f"hand: no such hand config: {path}")
    return load_hand(path)


def run_node(factory: Callable[[], object], name: str, args: list[str] | None = None, threads: int = 2) -> int:
    """Create the node with ``factory()`` and spin it on a multi-threaded executor until shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = factory()
        except (ConfigError, StartupError, FileNotFoundError, ValueError) as exc:
            print(f"[{name}] cannot start: {exc}", file=sys.stderr, flush=True)
            return EXIT_CONFIG_ERROR
        except (KeyboardInterrupt, ExternalShutdownException):
            return 0
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            executor.shutdown(timeout_sec=1.0)
        return 0
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()
