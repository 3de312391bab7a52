#!/usr/bin/env python3
"""Camera frame → joint command latency through real processes and real DDS (Fast DDS, localhost).

    python benchmarks/bench_ros_latency.py [--frames 1000] [--rate 30] [--json out.json]

What is in the loop (separate OS processes, a private ROS_DOMAIN_ID, localhost discovery):

1. the **camera node** (``humanprompt_ros.nodes.camera``) reading a generated 640×480 video file in
   a loop, center-cropping and resizing it to 96×96 rgb8, publishing ``/humanprompt/observation``
   at ``--rate`` Hz, stamped with the capture time;
2. a **stand-in policy** (this script with ``--stand-in-policy``): for every observation it
   publishes a ``/humanprompt/hand_target`` stamped with the frame's stamp. It does no inference
   — it only mimics the policy's I/O (a precomputed, reachable target sequence), so the learned
   policy's inference time is *not* in these figures (part B adds it);
3. the **command node** (``humanprompt_ros.nodes.command``): retargeting, safety, publishing
   ``/humanprompt/joint_commands`` (and the controller, wrist and marker topics);
4. this process: the (latched) active prompt message, a fake robot echoing the commands on ``/joint_states``, and the recorder.

Latency = command publish time − capture stamp of the frame the target was computed from, as
measured by the command node for every target-triggered command (its ``frame_to_command``
diagnostics over the last ``--frames`` samples), plus the delivery time of a command to a
subscriber (publish stamp → receipt here), reported separately. Rates are measured at the
recorder; CPU is each process's user+system time over the measurement window, in % of one core
(from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))


def stand_in_policy() -> int:
    """Observation → hand target stamped with the frame's stamp (no inference)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image

    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.paths import config_path
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import action_to_pose_array

    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    lo, hi = hand.joint_limits
    phases = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    targets = [action_to_pose_array(hand.fk(lo + (hi - lo) * (0.4 + 0.2 * np.sin(p))), "world") for p in phases]
    rclpy.init()
    node = rclpy.create_node("stand_in_policy")
    pub = node.create_publisher(type(targets[0]), topics.HAND_TARGET.name, topics.qos_profile(topics.HAND_TARGET))
    count = [0]

    def on_frame(msg: Image) -> None:
        out = targets[count[0] % len(targets)]
        out.header.stamp = msg.header.stamp
        pub.publish(out)
        count[0] += 1

    node.create_subscription(Image, topics.OBSERVATION.name, on_frame, topics.subscription_qos(topics.OBSERVATION))
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_video(path: Path, frames: int = 60) -> None:
    import imageio.v2 as iio

    yy, xx = np.mgrid[0:480, 0:640]
    with iio.get_writer(path, fps=30, codec="libx264", macro_block_size=1) as w:
        for i in range(frames):
            img = np.stack([(xx + 8 * i) % 256, (yy + 4 * i) % 256, np.full_like(xx, 7 * i % 256)], -1)
            w.append_data(img.astype(np.uint8))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--stand-in-policy", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stand_in_policy:
        return stand_in_policy()

    from helpers.ros import make_ros_env, reserve_domain_id
    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.paths import config_path
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import joint_state
    from humanprompt_ros.ros.probe import RosPeer

    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    with tempfile.TemporaryDirectory() as tmp, reserve_domain_id() as domain:
        video = Path(tmp) / "bench.mp4"
        make_video(video)
        env = make_ros_env(domain)
        py = sys.executable
        cmds = {
            "camera": [
                py,
                "-m",
                "humanprompt_ros.nodes.camera",
                "--ros-args",
                "-p",
                "source:=video",
                "-p",
                f"path:={video}",
                "-p",
                f"rate:={args.rate}",
            ],
            "stand_in_policy": [py, str(Path(__file__).resolve()), "--stand-in-policy"],
            "command": [
                py,
                "-m",
                "humanprompt_ros.nodes.command",
                "--ros-args",
                "-p",
                f"latency_window:={max(10, args.frames)}",
            ],
        }
        procs = {
            n: subprocess.Popen(c, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for n, c in cmds.items()
        }
        try:
            with RosPeer(domain, name="bench_recorder") as peer:
                rec = {
                    t.name: peer.record(t)
                    for t in (
                        topics.OBSERVATION,
                        topics.HAND_TARGET,
                        topics.JOINT_COMMANDS,
                        topics.CONTROLLER_COMMANDS,
                        topics.MARKERS,
                        topics.DIAGNOSTICS,
                    )
                }
                from std_msgs.msg import String

                peer.publisher(topics.PROMPT).publish(String(data=json.dumps({"id": "bench", "path": "none"})))
                js_pub = peer.publisher(topics.JOINT_STATES)
                q = [hand.neutral()]

                def robot_tick():  # a fake robot: /joint_states = the last command
                    last = rec[topics.JOINT_COMMANDS.name].last()
                    if last is not None:
                        q[0] = np.array(last[1].position)
                    js_pub.publish(joint_state(hand.joint_names, q[0], peer.now_msg()))

                peer.node.create_timer(0.01, robot_tick)

                def command_status():
                    for _, arr in reversed(rec[topics.DIAGNOSTICS.name].snapshot()):
                        for s in arr.status:
                            if s.name == "command":
                                return s.message, {kv.key: kv.value for kv in s.values}
                    return None, {}

                print("waiting for the graph (discovery, node startup) ...", flush=True)
                peer.wait_until(lambda: command_status()[0] == "commanding", 120, "the command node commanding")
                time.sleep(1.0)  # let the pipeline settle after warm-up
                _, status0 = command_status()
                t0 = time.monotonic()
                cpu0 = {n: cpu_seconds(p.pid) for n, p in procs.items()}
                cpu0["recorder (this process)"] = time.process_time()
                n0 = len(rec[topics.OBSERVATION.name])
                print(f"measuring {args.frames} frames at {args.rate:g} Hz ...", flush=True)
                peer.wait_until(
                    lambda: len(rec[topics.OBSERVATION.name]) - n0 >= args.frames,
                    args.frames / args.rate * 3 + 30,
                    f"{args.frames} frames",
                    poll=0.05,
                )
                t1 = time.monotonic()
                cpu1 = {n: cpu_seconds(p.pid) for n, p in procs.items()}
                cpu1["recorder (this process)"] = time.process_time()
                time.sleep(1.2 * 1.0)  # one more diagnostics period
                _, status = command_status()
                wall = t1 - t0

                def rate(name):
                    return len([1 for t, _ in rec[name].snapshot() if t0 <= t <= t1]) / wall

                def delivery_ms():
                    offset = time.time() - time.monotonic()  # monotonic receive times → wall clock
                    out = []
                    for t, m in rec[topics.JOINT_COMMANDS.name].snapshot():
                        if t0 <= t <= t1:
                            sent = m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec
                            out.append(t + offset - sent)
                    return np.array(out) * 1e3

                def obs_latency_ms():
                    offset = time.time() - time.monotonic()
                    vals = [
                        (t + offset) - (m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec)
                        for t, m in rec[topics.OBSERVATION.name].snapshot()
                        if t0 <= t <= t1
                    ]
                    return np.array(vals) * 1e3

                d, o = delivery_ms(), obs_latency_ms()
                obs_times = np.array([t for t, _ in rec[topics.OBSERVATION.name].snapshot() if t0 <= t <= t1])
                gaps = np.diff(obs_times) if len(obs_times) > 1 else np.zeros(1)
                result = {
                    "frames": args.frames,
                    "target_rate_hz": args.rate,
                    "wall_s": wall,
                    "frame_to_command_ms": {
                        "p50": float(status.get("frame_to_command_p50_ms", "nan")),
                        "p95": float(status.get("frame_to_command_p95_ms", "nan")),
                        "max": float(status.get("frame_to_command_max_ms", "nan")),
                        "samples": int(float(status.get("frame_to_command_samples", 0))),
                    },
                    "capture_to_observation_received_ms": {
                        "p50": float(np.percentile(o, 50)),
                        "p95": float(np.percentile(o, 95)),
                    },
                    "command_delivery_ms": {"p50": float(np.percentile(d, 50)), "p95": float(np.percentile(d, 95))},
                    "retarget_ms": {
                        "p50": float(status.get("retarget_p50_ms", "nan")),
                        "p95": float(status.get("retarget_p95_ms", "nan")),
                    },
                    "rates_hz": {name: rate(name) for name in rec},
                    "observation_gaps": {"max_ms": float(gaps.max() * 1e3), "over_150ms": int((gaps > 0.15).sum())},
                    "load_average_1min": os.getloadavg()[0],
                    "cpus": os.cpu_count(),
                    "cpu_percent_of_one_core": {n: 100 * (cpu1[n] - cpu0[n]) / wall for n in cpu0},
                    "command_node_during_measurement": {
                        k: int(status.get(k, 0)) - int(status0.get(k, 0))
                        for k in (
                            "targets_received",
                            "targets_accepted",
                            "targets_rejected_nonfinite",
                            "holds",
                            "commands_published",
                            "velocity_limited_steps",
                        )
                    },
                }
        finally:
            for p in procs.values():
                p.terminate()
            for _n, p in procs.items():
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()

    print(
        f"\ncamera frame → joint command, {args.frames} frames at {args.rate:g} Hz "
        f"(camera → stand-in policy → command node; no inference in the loop)"
    )
    f2c = result["frame_to_command_ms"]
    print(
        f"  frame → command published: p50 {f2c['p50']:.2f} ms  p95 {f2c['p95']:.2f} ms  max {f2c['max']:.2f} ms "
        f"({f2c['samples']} samples)"
    )
    print(
        f"  capture → observation received: p50 {result['capture_to_observation_received_ms']['p50']:.2f} ms  "
        f"p95 {result['capture_to_observation_received_ms']['p95']:.2f} ms"
    )
    print(
        f"  command delivery (publish → subscriber): p50 {result['command_delivery_ms']['p50']:.2f} ms  "
        f"p95 {result['command_delivery_ms']['p95']:.2f} ms"
    )
    print(
        f"  retarget (in the command node): p50 {result['retarget_ms']['p50']:.2f} ms  "
        f"p95 {result['retarget_ms']['p95']:.2f} ms"
    )
    print(
        f"  observation gaps at the recorder: max {result['observation_gaps']['max_ms']:.0f} ms, "
        f"{result['observation_gaps']['over_150ms']} over 150 ms (the command node's hold timeout)"
    )
    print(f"  machine: {result['cpus']} CPUs, load average {result['load_average_1min']:.1f} (1 min)")
    print("  rates (Hz): " + ", ".join(f"{k} {v:.1f}" for k, v in result["rates_hz"].items()))
    print("  CPU (% of one core): " + ", ".join(f"{k} {v:.0f}" for k, v in result["cpu_percent_of_one_core"].items()))
    print(
        f"  command node counters (approx. over the window, diagnostics are 1 Hz): "
        f"{result['command_node_during_measurement']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
