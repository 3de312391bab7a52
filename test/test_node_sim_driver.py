"""Sim driver node: the benchmark scene as a robot (images, /joint_states, wrist pose, joint
commands, wrist target, ~/reset with task and seed, task status)."""

from __future__ import annotations

import contextlib
import json
import os
import time

import numpy as np
import pytest

from helpers.ros import RosProcesses, make_ros_env, require_rclpy, reserve_domain_id
from humanprompt_ros.config.nodes import load_sim_driver_config
from humanprompt_ros.paths import config_path

os.environ.setdefault("MUJOCO_GL", "osmesa")


def test_shipped_config_loads():
    cfg = load_sim_driver_config(config_path("sim_driver.yaml"))
    assert cfg.task == "press_button" and cfg.camera_rate > 0


def test_resolve_task():
    from humanprompt_ros.sim.tasks import resolve_task

    assert resolve_task("push_box").name == "push_box.yaml"
    with pytest.raises(ValueError, match="unknown task 'pour'.*known: .*push_box"):
        resolve_task("pour")


def test_sim_robot_core_clock_rate_limit_and_done():
    from humanprompt_ros.sim.robot import SimRobot

    robot = SimRobot(extra_steps=2)
    robot.reset("press_button", 3)
    assert robot.status()["started"] is False
    base0 = robot.base_pose()
    for _ in range(10):
        robot.tick(0.01)
    assert robot.status()["step"] == 0  # no command yet: the episode has not started
    goal = base0.copy()
    goal[0, 3] += 0.2
    robot.command_base_pose(goal)
    for _ in range(10):  # 0.1 s = one control period: at most max_wrist_step (5 cm)
        robot.tick(0.01)
    moved = robot.base_pose()[0, 3] - base0[0, 3]
    assert 0.02 < moved <= robot.cfg.max_wrist_step + 0.005
    assert robot.status()["step"] == 1
    robot.command_joints(robot.joints() + 0.3)
    for _ in range(robot.horizon * 10 + 30):
        robot.tick(0.01)
    st = robot.status()
    assert st["done"] and st["step"] == robot.horizon + 2
    robot.close()


def test_lockstep_steps_exactly_as_the_benchmark_does():
    """SimRobot.step_once (the lockstep driver's step) = SimEnv.step_joints with the same commands."""
    from humanprompt_ros.sim import SimEnv, load_task
    from humanprompt_ros.sim.robot import SimRobot
    from humanprompt_ros.sim.scene import load_sim_config

    robot = SimRobot(extra_steps=0)
    robot.reset("press_button", 5)
    env = SimEnv(load_task(robot.task_file), "robot", config=load_sim_config(), render=False)
    env.reset(5)
    # the same state after a reset, actuator targets included (the first step interpolates from them)
    np.testing.assert_array_equal(robot.env.data.ctrl, env.data.ctrl)
    np.testing.assert_array_equal(robot.q_target, env.joint_targets())
    rng = np.random.default_rng(0)
    base = robot.base_pose()
    for _ in range(6):
        q = env.joints() + rng.normal(0, 0.2, len(robot.names))
        goal = base.copy()
        goal[:3, 3] += rng.normal(0, 0.03, 3)
        robot.command_joints(q)
        robot.command_base_pose(goal)
        robot.step_once()
        env.step_joints(np.clip(q, *env.hand.joint_limits), goal @ robot.base_T_wrist)
    np.testing.assert_array_equal(robot.env.data.qpos, env.data.qpos)  # the same physics, bit for bit
    assert robot.status()["step"] == 6 and not robot.status()["done"]
    for _ in range(robot.horizon):
        robot.step_once()
    assert robot.status()["done"] and robot.status()["step"] == robot.horizon  # extra_steps 0: the horizon
    env.close()
    robot.close()


@contextlib.contextmanager
def sim_driver_graph(*params: str):
    """A sim driver process with ``-p`` params and a graph client recording its images, joint states and
    wrist pose: yields (node, client, images, joint_states, wrist_pose)."""
    from geometry_msgs.msg import PoseStamped

    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.graph_client import GraphClient

    args = [x for p in params for x in ("-p", p)]
    with reserve_domain_id() as domain, RosProcesses(make_ros_env(domain)) as procs:
        node = procs.start("sim_driver", "-m", "humanprompt_ros.nodes.sim_driver", "--ros-args", *args)
        c = GraphClient(domain)
        try:
            peer = c.peer
            wrist = peer.record(
                "/humanprompt/wrist_pose", msg_type=PoseStamped, qos=topics.subscription_qos(topics.JOINT_STATES)
            )
            yield node, c, peer.record(topics.SIM_IMAGE), peer.record(topics.JOINT_STATES), wrist
        finally:
            c.close()


@pytest.mark.ros
@require_rclpy()
def test_sim_driver_node_over_dds():
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState

    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import joint_state, matrix_from_pose, pose_from_matrix
    from humanprompt_ros.ros.image import image_to_numpy

    with sim_driver_graph("task:=push_box", "seed:=2") as (node, c, images, js, wrist):
        peer = c.peer
        peer.wait_until(
            lambda: len(images) >= 3 and len(js) >= 3 and len(wrist) and c.last_status(),
            90,
            "images, joint states, wrist pose and task status",
        )
        img = image_to_numpy(images.last()[1])
        assert img.shape == (128, 128, 3) and img.std() > 5 and images.last()[1].encoding == "rgb8"
        st = c.last_status()
        assert (st["task"], st["seed"], st["skill"], st["started"]) == ("push_box", 2, "push_to_goal", False)
        names = list(js.last()[1].name)
        assert len(names) == 16
        # a joint command moves the joint; a wrist target moves the wrist
        q0 = np.array(js.last()[1].position)
        cmd_pub = peer.publisher(topics.JOINT_COMMANDS)
        wrist_pub = peer.publisher(topics.WRIST_TARGET)
        peer.wait_for_subscription(cmd_pub, timeout=10)
        peer.wait_for_subscription(wrist_pub, timeout=10)
        q1 = q0.copy()
        q1[1] += 0.5
        cmd_pub.publish(joint_state(names, q1, peer.now_msg()))
        base = matrix_from_pose(wrist.last()[1].pose)
        goal = base.copy()
        goal[2, 3] -= 0.05
        wrist_pub.publish(PoseStamped(pose=pose_from_matrix(goal)))
        peer.wait_until(lambda: np.array(js.last()[1].position)[1] > q0[1] + 0.3, 10, "the joint to move")
        peer.wait_until(
            lambda: matrix_from_pose(wrist.last()[1].pose)[2, 3] < base[2, 3] - 0.04, 10, "the wrist to move"
        )
        peer.wait_until(lambda: c.last_status()["started"], 5, "the episode to start")
        bad = JointState(name=["nope"], position=[0.0])
        cmd_pub.publish(bad)  # rejected and counted, never fatal
        # reset with new task and seed; a bad task is refused by the parameter service
        res = c.set_params(c.sim_params, task="pour")[0]
        assert not res.successful and "unknown task 'pour'" in res.reason
        assert all(r.successful for r in c.set_params(c.sim_params, task="press_button", seed=7))
        resp = c.trigger(c.sim_reset, timeout=60)
        assert resp.success, resp.message
        st = json.loads(resp.message)
        assert (st["task"], st["seed"], st["step"], st["started"]) == ("press_button", 7, 0, False)
        peer.wait_until(lambda: c.last_status()["task"] == "press_button", 5, "the new task status")
        peer.wait_until(
            lambda: c.node_status("sim_driver").get("joint_commands_rejected") == "1",
            5,
            "diagnostics counting the rejected command",
        )
        assert node.returncode is None, node.log()


@pytest.mark.ros
@require_rclpy()
def test_lockstep_waits_for_the_wrist_target_and_resends_a_step_with_its_stamp():
    """Lockstep under any load: a joint command alone does not step while a wrist-target publisher exists
    (the step waits for its wrist target, however late); with no command the step's frame is sent again
    with the same stamp, so a policy acting once per stamp never acts twice on one step; a command
    stamped before the current step (an answer to a resend that crossed the first command) is dropped."""
    from geometry_msgs.msg import PoseStamped
    from std_msgs.msg import Header

    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import joint_state

    def ns(stamp) -> int:
        return stamp.sec * 1_000_000_000 + stamp.nanosec

    def stamp_ns(msg) -> int:
        return ns(msg.header.stamp)

    with sim_driver_graph("task:=press_button", "seed:=1", "lockstep:=true", "lockstep_timeout:=1.0") as (
        node,
        c,
        images,
        js,
        wrist,
    ):
        peer = c.peer
        cmd_pub = peer.publisher(topics.JOINT_COMMANDS)
        wrist_pub = peer.publisher(topics.WRIST_TARGET)
        peer.wait_for_subscription(cmd_pub, timeout=60)
        peer.wait_for_subscription(wrist_pub, timeout=60)
        peer.wait_until(
            lambda: len(images) >= 2 and len(js) >= 1 and len(wrist) >= 1, 60, "the first step and one resend"
        )
        stamps = {stamp_ns(m) for _, m in images.since(0)}
        assert len(stamps) == 1, "a resend carries the step's own stamp"
        first = stamps.pop()
        # the joint command alone: no step while the wrist target is pending (< lockstep_timeout): the step's
        # stamp (the node's clock as it steps) comes after the wrist target was sent, not after the command
        names, q = list(js.last()[1].name), np.array(js.last()[1].position)
        cmd_sent = peer.now_msg()
        cmd_pub.publish(joint_state(names, q, cmd_sent))
        time.sleep(0.3)  # the wrist target comes later than the command (nothing is asserted about the wait)
        # its wrist target arrives: one step, one new stamp for state and frame alike
        wrist_sent = peer.now_msg()
        wrist_pub.publish(PoseStamped(pose=wrist.last()[1].pose))  # hold the base where it is
        peer.wait_until(lambda: any(stamp_ns(m) != first for _, m in images.since(0)), 10, "the step")
        new = {stamp_ns(m) for _, m in images.since(0)} - {first}
        assert len(new) == 1 and new <= {stamp_ns(m) for _, m in js.since(0)}
        if ns(wrist_sent) - ns(cmd_sent) < 0.9e9:  # else lockstep_timeout (1 s) may rightly have stepped without it
            assert min(new) >= ns(wrist_sent), "stepped on the joint command alone, before its wrist target"
        assert c.last_status() is None or c.last_status()["step"] <= 1
        # the old step's command again (a policy answering a resend that crossed its command): stale, no step
        (step_ns,) = new
        old_stamp = images.since(0)[0][1].header.stamp
        t_sent = time.monotonic()
        cmd_pub.publish(joint_state(names, q, old_stamp))
        wrist_pub.publish(PoseStamped(header=Header(stamp=old_stamp), pose=wrist.last()[1].pose))
        peer.wait_until(
            lambda: c.node_status("sim_driver").get("commands_stale") == "2",
            10,
            "diagnostics counting the two stale commands",
        )
        assert {stamp_ns(m) for _, m in images.since(t_sent)} <= {step_ns}  # at most its resend
        # the current step's command, stamped like its frame (as the command node sends it): one step
        step_stamp = next(m.header.stamp for _, m in images.since(0) if stamp_ns(m) == step_ns)
        t_sent = time.monotonic()
        cmd_pub.publish(joint_state(names, q, step_stamp))
        wrist_pub.publish(PoseStamped(header=Header(stamp=step_stamp), pose=wrist.last()[1].pose))
        peer.wait_until(
            lambda: any(stamp_ns(m) not in (first, step_ns) for _, m in images.since(t_sent)),
            10,
            "the step commanded with its own stamp",
        )
        peer.wait_until(
            lambda: c.node_status("sim_driver").get("lockstep_resends") not in (None, "0"),
            10,
            "diagnostics counting the resends",
        )
        assert c.node_status("sim_driver").get("lockstep_wrist_missing") == "0"
        assert node.returncode is None, node.log()
