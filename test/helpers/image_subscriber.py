"""Receive the known test frames over DDS and check every pixel of every frame received.

Subscribes with sensor-data QoS (matching the publisher) and decodes with
humanprompt_ros.ros.image.image_to_numpy. Done when each of the N_FRAMES frames has arrived at
least once. Prints {"event": "ready"} once subscribed and, last, one {"event": "result", ...} line
with what it received (a digest of each decoded frame), so the test can check it independently.
Exit codes: 0 all frames seen and all correct; 1 a frame was wrong; 3 timed out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import rclpy
from image_frames import ENCODINGS, N_FRAMES, TOPIC, digest, expected, index_of
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from humanprompt_ros.ros.image import image_to_numpy


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=15.0)
    args = ap.parse_args()

    rclpy.init()
    node = Node("humanprompt_test_image_subscriber")
    wanted = [expected(i) for i in range(N_FRAMES)]
    seen: dict[int, dict] = {}
    errors: list[str] = []
    received = 0
    t0 = time.monotonic()
    first_at = None

    def on_image(msg: Image) -> None:
        nonlocal received, first_at
        received += 1
        if first_at is None:
            first_at = time.monotonic() - t0
        try:
            i = index_of(msg.header.frame_id)
            if msg.encoding != ENCODINGS[i]:
                raise ValueError(f"frame {i}: encoding {msg.encoding!r}, expected {ENCODINGS[i]!r}")
            pixels = image_to_numpy(msg)
            if pixels.shape != wanted[i].shape or not np.array_equal(pixels, wanted[i]):
                bad = int(np.count_nonzero(pixels != wanted[i])) if pixels.shape == wanted[i].shape else -1
                raise ValueError(f"frame {i}: content differs ({bad} values wrong, shape {pixels.shape})")
        except ValueError as exc:
            errors.append(str(exc))
            return
        seen.setdefault(
            i,
            {
                "encoding": msg.encoding,
                "shape": list(pixels.shape),
                "digest": digest(pixels),
                "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
            },
        )

    node.create_subscription(Image, TOPIC, on_image, qos_profile_sensor_data)
    print(json.dumps({"event": "ready", "pid": os.getpid()}), flush=True)

    deadline = t0 + args.timeout
    try:
        while len(seen) < N_FRAMES and not errors and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()

    print(
        json.dumps(
            {
                "event": "result",
                "frames": {str(i): v for i, v in sorted(seen.items())},
                "received": received,
                "first_message_after_s": first_at,
                "all_seen_after_s": time.monotonic() - t0 if len(seen) == N_FRAMES else None,
                "errors": errors,
            }
        ),
        flush=True,
    )
    if errors:
        return 1
    return 0 if len(seen) == N_FRAMES else 3


if __name__ == "__main__":
    sys.exit(main())
