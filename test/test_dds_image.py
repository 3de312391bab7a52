"""sensor_msgs/Image over real Fast DDS between two separate OS processes.

A publisher process and a subscriber process (test/helpers/image_*.py, run with this test's
interpreter) exchange 96×96 frames of known content on a ROS_DOMAIN_ID reserved for this test,
with discovery restricted to localhost. QoS is the project's convention for images, sensor data
(best effort, keep last 5, volatile): the publisher keeps cycling through the frames until the
subscriber has seen each one, so discovery delay and best-effort drops only delay the test.
"""

from __future__ import annotations

import time

import pytest

from helpers.image_frames import ENCODINGS, HEIGHT, N_FRAMES, WIDTH, digest, expected
from helpers.ros import HELPERS_DIR, RosProcesses, require_rclpy

pytestmark = [pytest.mark.ros, require_rclpy(), pytest.mark.timeout(60)]

SUBSCRIBER_TIMEOUT_S = 15.0


def test_image_frames_cross_process(ros_env):
    assert ros_env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert ros_env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    assert 1 <= int(ros_env["ROS_DOMAIN_ID"]) <= 100

    t0 = time.monotonic()
    with RosProcesses(ros_env) as procs:
        sub = procs.start("subscriber", HELPERS_DIR / "image_subscriber.py", "--timeout", SUBSCRIBER_TIMEOUT_S)
        sub.wait_for_event("ready", timeout=15)
        pub = procs.start(
            "publisher", HELPERS_DIR / "image_publisher.py", "--rate", 50, "--max-seconds", 30, stdin=True
        )
        assert sub.pid != pub.pid

        sub_rc = sub.wait(timeout=SUBSCRIBER_TIMEOUT_S + 5)
        pub.close_stdin()  # the subscriber is done: tell the publisher to stop
        pub_rc = pub.wait(timeout=10)
        elapsed = time.monotonic() - t0

        result = sub.wait_for_event("result", timeout=1)
        pub_done = pub.wait_for_event("done", timeout=1)
        logs = procs.logs()

    print(
        f"DDS image test on domain {ros_env['ROS_DOMAIN_ID']}: {elapsed:.2f} s, subscriber {result}, publisher {pub_done}"
    )
    assert sub_rc == 0, f"subscriber exit code {sub_rc}\n{logs}"
    assert pub_rc == 0, f"publisher exit code {pub_rc}\n{logs}"
    assert result["errors"] == []
    # Every frame arrived, in its encoding, and decoded to exactly the known picture.
    assert sorted(map(int, result["frames"])) == list(range(N_FRAMES))
    for i in range(N_FRAMES):
        got = result["frames"][str(i)]
        want = expected(i)
        assert got["encoding"] == ENCODINGS[i]
        assert tuple(got["shape"]) == want.shape
        assert want.shape[:2] == (HEIGHT, WIDTH)
        assert got["digest"] == digest(want), f"frame {i} content differs"
        assert got["stamp"] != [0, 0], "the publisher stamps frames with its clock"
    assert result["received"] >= N_FRAMES
    assert pub_done["stopped"] and pub_done["published"] >= N_FRAMES
    assert pub_done["subscriber_matched_after_s"] is not None
