"""Faults (issue 42, item 2), the part that fits CI: a flood of malformed and NaN hand targets from another
process, interleaved with valid ones, never produces a non-finite, out-of-limit or too-fast joint command, and is
counted in the command node's diagnostics. The whole graph under every fault (node kills, a frozen camera,
out-of-order ``/joint_states``, a full recording disk): ``benchmarks/bench_faults.py``, docs/ros.md "Faults".

Only generous bounds: the flood is judged by what the command node sends and counts, not by how fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.ros import RosProcesses, make_ros_env, require_rclpy, reserve_domain_id

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_faults  # noqa: E402

pytestmark = [pytest.mark.ros, require_rclpy(), pytest.mark.timeout(120)]

VMAX = 2.0  # config/command.yaml max_joint_velocity


def test_hold_and_resume_from_command_stamps():
    stamps = list(np.arange(0.0, 1.0, 0.01)) + list(np.arange(3.0, 4.0, 0.01))
    h = bench_faults.hold_and_resume(stamps, t_fault=0.9, probe=1.0)
    assert h["held"] and h["hold_s"] == pytest.approx(0.09, abs=1e-6) and h["resume_s"] == pytest.approx(2.1)
    assert h["gap_s"] == pytest.approx(2.01, abs=1e-6)
    stream = list(np.arange(0.0, 4.0, 0.01))  # no gap at the probe: the hand did not hold
    assert not bench_faults.hold_and_resume(stream, t_fault=1.0)["held"]
    assert bench_faults.max_gap(stamps, 0.5, 1.5) == pytest.approx(2.01, abs=1e-6)


def test_a_flood_of_malformed_and_nan_targets_is_rejected_counted_and_never_commanded():
    from soak import CommandChecker
    from std_msgs.msg import String

    from humanprompt_ros.control.safety import safe_limits
    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.paths import config_path
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import action_to_pose_array, joint_state
    from humanprompt_ros.ros.image import numpy_to_image
    from humanprompt_ros.ros.probe import RosPeer

    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    lower, upper = safe_limits(*hand.joint_limits, 0.02)
    lo, hi = hand.joint_limits
    goals = [hand.fk(lo + (hi - lo) * f) for f in (0.3, 0.7)]  # two targets far apart: commands keep moving
    checker = CommandChecker(names=list(hand.joint_names), lower=lower, upper=upper, max_velocity=VMAX, jitter=0.001)
    lock = threading.Lock()
    with reserve_domain_id() as domain:
        env = make_ros_env(domain)
        with RosProcesses(env) as procs, RosPeer(domain) as peer:
            node = procs.start(
                "command", "-m", "humanprompt_ros.nodes.command", "--ros-args", "-p", "diagnostics_period:=0.2"
            )
            diag = peer.record(topics.DIAGNOSTICS)

            def on_command(m):
                with lock:
                    checker.check(m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec, list(m.name), m.position)

            peer.node.create_subscription(
                topics.msg_class(topics.JOINT_COMMANDS),
                topics.JOINT_COMMANDS.name,
                on_command,
                topics.subscription_qos(topics.JOINT_COMMANDS),
            )
            obs, tgt, js = (peer.publisher(t) for t in (topics.OBSERVATION, topics.HAND_TARGET, topics.JOINT_STATES))
            prompt = peer.publisher(topics.PROMPT)
            stop = threading.Event()

            def feed():  # the camera, the robot (at the neutral pose) and the policy (valid targets), 30 Hz
                k = 0
                while not stop.wait(1 / 30):
                    stamp = peer.now_msg()
                    obs.publish(numpy_to_image(np.zeros((8, 8, 3), np.uint8), stamp=stamp))
                    js.publish(joint_state(hand.joint_names, hand.neutral(), stamp))
                    tgt.publish(action_to_pose_array(goals[(k // 30) % 2], "world", stamp))
                    k += 1

            feeder = threading.Thread(target=feed, daemon=True)
            try:
                peer.wait_for_subscription(tgt, timeout=60)
                peer.wait_for_subscription(prompt, timeout=10)
                prompt.publish(String(data=json.dumps({"id": "flood", "path": "/x"})))
                feeder.start()

                def status(since: float = 0.0):
                    for _, arr in reversed(diag.since(since)):
                        for s in arr.status:
                            if s.name == "command":
                                return {"message": s.message, **{kv.key: kv.value for kv in s.values}}
                    return {}

                peer.wait_until(lambda: status().get("message") == "commanding", 30, "the command node commanding")
                before = status()
                flood = subprocess.Popen(
                    [sys.executable, bench_faults.__file__, "--worker", "flood_hand_target", "--domain", str(domain)]
                    + ["--fault-s", "2", "--flood-rate", "200", "--subscribers", "1"],
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                try:
                    assert '"ready"' in flood.stdout.readline()
                    flood.stdin.write("go\n")
                    flood.stdin.flush()
                    done = json.loads(flood.stdout.readline())
                    assert flood.wait(timeout=30) == 0
                finally:
                    if flood.poll() is None:
                        flood.kill()
                assert done["sent"] >= 100
                t_end = time.monotonic()
                after = peer.wait_until(
                    lambda: (
                        (st := status(t_end)).get("message") == "commanding"
                        and int(st["targets_received"]) > int(before["targets_received"]) + 100
                        and st
                    ),
                    30,
                    "the command node commanding after the flood, having counted it",
                )
            finally:
                stop.set()
                if feeder.is_alive():
                    feeder.join(timeout=2)
            rejected = {
                k: int(after[k]) - int(before[k]) for k in ("targets_rejected_nonfinite", "targets_rejected_invalid")
            }
            assert min(rejected.values()) >= 20, (rejected, node.log())
            # the valid targets still went through: accepted ones went on counting and commands kept moving
            assert int(after["targets_accepted"]) > int(before["targets_accepted"])
            with lock:
                assert checker.checked > 100
                assert checker.total == 0, (checker.counts, checker.violations[:5])
            assert node.returncode is None, node.log()
