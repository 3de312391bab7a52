"""Publish the known test frames (helpers/image_frames.py) over DDS until told to stop.

Stop signal: end of stdin (the test closes the pipe once the subscriber is done). The publisher
cycles through the frames at --rate Hz with sensor-data QoS (best effort, keep last 5, volatile:
the project's convention for images). Because it keeps publishing, discovery delay and best-effort
drops cannot lose a frame for good: the subscriber gets every frame on some later cycle.

Prints JSON lines: {"event": "ready"} once the publisher exists, {"event": "done", ...} at the end.
Exit codes: 0 stopped by the test; 2 --max-seconds passed without a stop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import rclpy
from image_frames import ENCODINGS, N_FRAMES, TOPIC, expected, frame_id
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from humanprompt_ros.ros.image import numpy_to_image


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--max-seconds", type=float, default=30.0)
    args = ap.parse_args()

    stop = threading.Event()

    def watch_stdin() -> None:
        for _ in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    rclpy.init()
    node = Node("humanprompt_test_image_publisher")
    pub = node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    frames = [expected(i) for i in range(N_FRAMES)]
    print(json.dumps({"event": "ready", "pid": os.getpid()}), flush=True)

    published, first_match = 0, None
    t0 = time.monotonic()
    deadline = t0 + args.max_seconds
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            i = published % N_FRAMES
            msg = numpy_to_image(frames[i], ENCODINGS[i], frame_id=frame_id(i), stamp=node.get_clock().now())
            pub.publish(msg)
            published += 1
            if first_match is None and pub.get_subscription_count() > 0:
                first_match = time.monotonic() - t0
            stop.wait(1.0 / args.rate)
        matched = pub.get_subscription_count()
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(
        json.dumps(
            {
                "event": "done",
                "published": published,
                "stopped": stop.is_set(),
                "subscriber_matched_after_s": first_match,
                "subscriptions_at_end": matched,
            }
        ),
        flush=True,
    )
    return 0 if stop.is_set() else 2


if __name__ == "__main__":
    sys.exit(main())
