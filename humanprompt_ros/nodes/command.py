"""Retarget / command node: hand targets → safe joint commands for the hand (the last line of safety).

::

    python -m humanprompt_ros.nodes.command --ros-args -p hand:=config/hands/allegro_right.yaml

In: ``/humanprompt/hand_target`` (PoseArray, see :mod:`humanprompt_ros.ros.conversions`),
``/joint_states``, ``/humanprompt/observation`` (only its arrival times are used).
Out: ``/humanprompt/joint_commands`` (JointState), ``/humanprompt/hand_controller/commands``
(Float64MultiArray for a ros2_control forward position controller), optionally
``/humanprompt/joint_trajectory``, ``/humanprompt/wrist_target`` (PoseStamped: where the arm should
put the hand's base link), ``/humanprompt/markers`` (the targets and the hand from FK, no tf2
needed), ``/robot_description`` (latched URDF), ``/diagnostics``.

Parameters: :class:`humanprompt_ros.config.nodes.CommandConfig` (defaults in ``config/command.yaml``).

How a command is made
---------------------
Each valid target is retargeted (``Hand.retarget``, warm-started from the previous solution, or
the measured joint state the first time) into a *goal*, clamped into the URDF limits shrunk by
``joint_limit_margin``. A step toward the goal is published at once (low latency) and then every
``1/rate`` s: each joint moves at most ``max_joint_velocity * dt`` (``dt`` = time since the last
step, at most ``2/rate``), starting from the last command (or the measured joint state before the
first command), and the result is clamped again.

Safety (each case counted in the diagnostics, whose message states the current reason)
---------------------------------------------------------------------------------------
* **No motion before the first valid target**, and (``require_joint_states``) before the first
  ``/joint_states``: the velocity limit needs to know where the hand is.
* **No motion without a prompt** (``require_prompt``): the active prompt on ``/humanprompt/prompt``
  (latched JSON) must have a non-empty ``id``; clearing the prompt holds the hand at once, whatever
  the policy still sends.
* **Watchdog / hold**: when the last valid target is older than ``target_timeout``, (with
  ``require_observation``) the last camera frame older than ``observation_timeout`` (by its capture
  stamp with ``frame_age_from: stamp``: frames delivered late do not count as fresh), or (with
  ``require_joint_states``) the last ``/joint_states`` older than ``joint_states_timeout`` (a driver
  restart: motion resumes only from the new driver's joint states), the node *holds*. ``hold_mode:
  silent`` (default) publishes no command at all, so position controllers keep the last safe
  command and nothing moves; ``hold_mode: republish`` keeps sending the last
  safe position at the command rate (for drivers that go limp without a command stream). The
  diagnostics message becomes e.g. ``holding: observation stale 0.31 s`` and is published at
  once. When fresh input returns, commands resume from the last command, velocity limited.
* **NaN/inf** anywhere in a target (or a malformed target: wrong pose count, non-unit wrist
  quaternion) is rejected and counted; it never refreshes the watchdog. So is a target in another
  frame than ``frame_id`` (the world frame; an empty ``header.frame_id`` is taken as it): this node
  transforms no frames, and a wrist pose read in the wrong frame would send the arm elsewhere.
* ``lockstep`` (evaluation with the sim driver's lockstep mode only): one command per target, the
  clamped goal itself (the simulator steps one control period per command, as the benchmark does),
  stamped like the target (the step's frame stamp: the simulator drops a command for a step it has
  already taken), no stream and no timeouts. A target that comes while the node holds (no prompt
  yet, no joint states yet) is not commanded; the simulator sends that step again and the policy its
  target again.
* A ros2_control forward position controller silently drops a command whose length differs from
  its joint count: ``controller_joints`` (default: the hand's joints) must name exactly the hand's
  joints, which is checked at startup with an error that says so.

Kept as one module: one ROS 2 node class per file; its safety rules and kinematics
are ROS-free in :mod:`humanprompt_ros.control.safety` and :mod:`humanprompt_ros.hand`.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from builtin_interfaces.msg import Duration
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Point, PoseArray, PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import ColorRGBA, Float64MultiArray, MultiArrayDimension, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from humanprompt_ros.config.nodes import CommandConfig, StartupError
from humanprompt_ros.control.safety import safe_limits, velocity_step
from humanprompt_ros.hand.kinematics import hand_segments
from humanprompt_ros.nodes.runtime import load_node_hand, run_node
from humanprompt_ros.paths import config_path
from humanprompt_ros.ros import topics
from humanprompt_ros.ros.conversions import joint_positions, joint_state, pose_array_to_action, pose_from_matrix
from humanprompt_ros.ros.diagnostics import OK, WARN, LatencyStats, NodeDiagnostics, RateMeter
from humanprompt_ros.ros.image import captured_monotonic, serialized_stamp_ns
from humanprompt_ros.ros.params import declare_config, watch_config


def finite_pose_array(msg: PoseArray) -> bool:
    vals = [
        v
        for p in msg.poses
        for v in (
            p.position.x,
            p.position.y,
            p.position.z,
            p.orientation.x,
            p.orientation.y,
            p.orientation.z,
            p.orientation.w,
        )
    ]
    return bool(np.all(np.isfinite(vals))) if vals else True


try:  # no tf2_msgs wheel on PyPI: /tf only on ROS 2 installs
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = TransformStamped = None

finger_colors = [(1.0, 0.3, 0.3), (0.3, 1.0, 0.3), (0.3, 0.5, 1.0), (1.0, 0.9, 0.2), (0.9, 0.4, 1.0)]


class CommandNode(Node):
    def __init__(self):
        super().__init__("command")
        self.cfg: CommandConfig = declare_config(self, CommandConfig, config_path("command.yaml"), "command")
        watch_config(self, CommandConfig, self._on_config)
        self.hand = load_node_hand(self.cfg.hand)
        self.method = self.cfg.retargeting or None
        if self.method:
            self.hand.retargeter(self.method)  # unknown method → ValueError at startup
        self.names = self.hand.joint_names
        self.lower, self.upper = safe_limits(*self.hand.joint_limits, self.cfg.joint_limit_margin)
        ctrl = list(self.cfg.controller_joints) or list(self.names)
        unknown = [j for j in ctrl if j not in self.names]
        if unknown:
            raise StartupError(
                f"controller_joints: {', '.join(unknown)} not joints of hand {self.hand.name!r} "
                f"(its joints: {', '.join(self.names)})"
            )
        if len(ctrl) != len(self.names) or len(set(ctrl)) != len(ctrl):
            raise StartupError(
                f"controller_joints lists {len(ctrl)} joints ({len(set(ctrl))} distinct) but hand "
                f"{self.hand.name!r} has {len(self.names)}: a ros2_control forward position controller silently "
                "drops a command of the wrong length, so every hand joint must be listed exactly once"
            )
        self.ctrl_joints = ctrl
        self.ctrl_index = np.array([self.names.index(j) for j in ctrl])
        self.draw_frames, self.draw_segments = hand_segments(self.hand.kin)
        # warm-up: build the retargeter and run it once before reporting ready
        self.hand.retarget(self.hand.fk(self.hand.neutral()), self.hand.neutral(), self.method)
        self.hand.reset()

        self._lock = threading.RLock()  # state below
        self._hand_lock = threading.Lock()  # pinocchio data is not thread safe
        self.q_meas: np.ndarray | None = None
        self.js_mono: float | None = None  # monotonic time the latest /joint_states arrived
        self.goal: np.ndarray | None = None
        self.q_cmd: np.ndarray | None = None
        self.action = None
        self.target_frame = self.cfg.frame_id
        self.target_mono: float | None = None
        self.target_stamp = None
        self.obs_mono: float | None = None
        self.prompt_id = ""
        self.last_step_ns: int | None = None  # the stamp (ROS time) of the last motion step
        self.holding = True
        self.state = "waiting for the first hand target"
        self.counts = dict(
            targets_received=0,
            targets_accepted=0,
            targets_rejected_nonfinite=0,
            targets_rejected_invalid=0,
            targets_rejected_frame=0,
            retarget_failures=0,
            prompts_invalid=0,
            commands_published=0,
            resyncs=0,
            commands_clamped=0,
            velocity_limited_steps=0,
            holds=0,
            joint_states_invalid=0,
        )
        self.cmd_rate = RateMeter()
        self.target_rate = RateMeter()
        self.obs_rate = RateMeter()
        self.latency = LatencyStats(self.cfg.latency_window)
        self.retarget_time = LatencyStats(self.cfg.latency_window)
        # latency budget: only the first target computed from each new frame (the fresh chunk's first action)
        self.fresh_receive = LatencyStats(self.cfg.latency_window)  # frame stamp → this node has the target
        self.fresh_latency = LatencyStats(self.cfg.latency_window)  # frame stamp → its first command
        self.fresh_handling = LatencyStats(self.cfg.latency_window)  # that target received → its command published
        self._last_target_ns = 0
        self.last_problem = ""
        self.last_command_stamp = 0.0  # header stamp of the last command, s (0: none yet)

        self.pub_js = topics.publisher(self, topics.JOINT_COMMANDS)
        self.pub_ctrl = (
            topics.publisher(self, topics.CONTROLLER_COMMANDS) if self.cfg.publish_controller_commands else None
        )
        self.pub_traj = topics.publisher(self, topics.JOINT_TRAJECTORY) if self.cfg.publish_trajectory else None
        self.pub_wrist = topics.publisher(self, topics.WRIST_TARGET) if self.cfg.publish_wrist_target else None
        self.pub_markers = topics.publisher(self, topics.MARKERS) if self.cfg.publish_markers else None
        if self.cfg.publish_robot_description:
            self.pub_desc = topics.publisher(self, topics.ROBOT_DESCRIPTION)
            self.pub_desc.publish(String(data=self.hand.urdf.xml))

        self.tf_links = sorted(link for link in self.hand.urdf.links if self.hand.kin.model.existFrame(link))
        self.pub_tf = None
        if self.cfg.publish_tf and TFMessage is not None and self.cfg.publish_markers:
            self.pub_tf = topics.publisher(self, topics.TF)
        inputs = MutuallyExclusiveCallbackGroup()
        topics.subscribe(self, topics.HAND_TARGET, self._on_target, inputs)
        topics.subscribe(self, topics.JOINT_STATES, self._on_joint_states, inputs)
        topics.subscribe(self, topics.PROMPT, self._on_prompt, inputs)
        topics.subscribe(self, topics.OBSERVATION, self._on_observation, inputs, raw=True)
        self.create_timer(1.0 / self.cfg.rate, self._on_timer, callback_group=MutuallyExclusiveCallbackGroup())
        slow = MutuallyExclusiveCallbackGroup()
        if self.pub_markers is not None:
            self.create_timer(1.0 / self.cfg.marker_rate, self._publish_markers, callback_group=slow)
        self.diag = NodeDiagnostics(
            self, self._diagnostics, self.cfg.diagnostics_period, hardware_id=self.hand.name, callback_group=slow
        )
        self.get_logger().info(
            f"hand {self.hand.name!r} ({len(self.names)} joints), {self.cfg.rate:g} Hz, limits margin "
            f"{self.cfg.joint_limit_margin:g}, max velocity {self.cfg.max_joint_velocity:g}/s, timeouts target "
            f"{self.cfg.target_timeout:g} s / observation {self.cfg.observation_timeout:g} s "
            f"({'required' if self.cfg.require_observation else 'not watched'}), hold mode {self.cfg.hold_mode}"
        )

    def _on_config(self, cfg: CommandConfig) -> None:
        with self._lock:
            self.cfg = cfg
            self.lower, self.upper = safe_limits(*self.hand.joint_limits, cfg.joint_limit_margin)

    def _count(self, key: str, problem: str | None = None) -> None:
        with self._lock:
            self.counts[key] += 1
            if problem:
                self.last_problem = problem
        if problem:
            self.get_logger().warning(problem, throttle_duration_sec=2.0)

    # -- inputs ------------------------------------------------------------------------------
    def _on_observation(self, raw: bytes) -> None:
        self.obs_rate.tick()
        now = time.monotonic()
        if self.cfg.frame_age_from == "stamp":
            now = captured_monotonic(serialized_stamp_ns(raw), self.get_clock().now().nanoseconds, now)
        with self._lock:  # a frame older than the latest one (delivered out of order) makes nothing fresher
            self.obs_mono = now if self.obs_mono is None else max(self.obs_mono, now)

    def _on_prompt(self, msg: String) -> None:
        try:
            data = json.loads(msg.data) if msg.data else {}
            prompt_id = str(data.get("id") or "") if isinstance(data, dict) else ""
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self._count("prompts_invalid", f"ignored an unreadable prompt message ({exc}): treated as no prompt")
            prompt_id = ""
        with self._lock:
            changed = prompt_id != self.prompt_id
            self.prompt_id = prompt_id
            if changed:
                self.get_logger().info(f"prompt: {prompt_id!r}" if prompt_id else "prompt cleared")
                if prompt_id:  # a new task starts from the measured joints, not from the last command,
                    self.q_cmd = None  # and its retargeting is warm-started from them, not from the last goal
                    self.goal = None
                    self.target_mono = None
                self._step(from_target=False)  # a cleared prompt holds at once

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            q = joint_positions(msg, self.names)
        except ValueError as exc:
            self._count("joint_states_invalid", f"ignored /joint_states: {exc}")
            return
        with self._lock:
            self.q_meas = q
            self.js_mono = time.monotonic()

    def _on_target(self, msg: PoseArray) -> None:
        received = time.monotonic()
        received_ns = self.get_clock().now().nanoseconds
        self._count("targets_received")
        self.target_rate.tick(received)
        if not finite_pose_array(msg):
            self._count("targets_rejected_nonfinite", "rejected a hand target containing NaN or inf")
            return
        frame = msg.header.frame_id
        if frame and frame != self.cfg.frame_id:
            self._count(
                "targets_rejected_frame",
                f"rejected a hand target in frame {frame!r}: targets must be in {self.cfg.frame_id!r} "
                "(frame_id; this node transforms no frames)",
            )
            return
        try:
            action = pose_array_to_action(msg)
        except ValueError as exc:
            self._count("targets_rejected_invalid", f"rejected a hand target: {exc}")
            return
        stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
        fresh, self._last_target_ns = stamp_ns > 0 and stamp_ns != self._last_target_ns, stamp_ns
        with self._lock:
            q_init = self.goal if self.goal is not None else self.q_meas
        t0 = time.perf_counter()
        try:
            with self._hand_lock:
                goal = self.hand.retarget(action, q_init, self.method)
        except ValueError as exc:
            self._count("retarget_failures", f"retargeting failed: {exc}")
            return
        self.retarget_time.add(time.perf_counter() - t0)
        clamped = np.clip(goal, self.lower, self.upper)
        with self._lock:
            if np.any(clamped != goal):
                self.counts["commands_clamped"] += 1
            self.counts["targets_accepted"] += 1
            self.goal = clamped
            self.action = action
            self.target_frame = self.cfg.frame_id
            self.target_mono = received
            self.target_stamp = msg.header.stamp
            published = self._step(from_target=True)
        if published and fresh:
            done_ns = self.get_clock().now().nanoseconds
            self.fresh_receive.add((received_ns - stamp_ns) * 1e-9)
            self.fresh_handling.add((done_ns - received_ns) * 1e-9)
            self.fresh_latency.add((done_ns - stamp_ns) * 1e-9)
        if published and self.pub_wrist is not None:
            out = PoseStamped()
            out.header.stamp = msg.header.stamp
            out.header.frame_id = self.target_frame
            out.pose = pose_from_matrix(self.hand.base_pose_for(action))
            self.pub_wrist.publish(out)

    # -- the control step --------------------------------------------------------------------
    def _hold_reason(self, now: float) -> str | None:
        cfg = self.cfg
        if cfg.require_prompt and not self.prompt_id:
            return f"no active prompt on {topics.PROMPT.name}"
        if self.target_mono is None:
            return "waiting for the first hand target"
        if cfg.require_joint_states and self.q_meas is None and self.q_cmd is None:
            return "waiting for /joint_states"
        if cfg.lockstep:
            return None  # time stands still between a lockstep simulator's steps: no ages to watch
        if cfg.require_observation:
            if self.obs_mono is None:
                return f"waiting for camera frames on {topics.OBSERVATION.name}"
            age = now - self.obs_mono
            if age > cfg.observation_timeout:
                return f"observation stale {age:.2f} s"
        age = now - self.target_mono
        if age > cfg.target_timeout:
            return f"target stale {age:.2f} s"
        if cfg.require_joint_states and self.js_mono is not None and now - self.js_mono > cfg.joint_states_timeout:
            return f"joint states stale {now - self.js_mono:.2f} s"
        return None

    def _on_timer(self) -> None:
        if self.cfg.lockstep:
            return  # one command per target, sent from _on_target
        with self._lock:
            self._step(from_target=False)

    def _step(self, from_target: bool) -> bool:
        """One command step (holds self._lock). Returns True when a motion command was published."""
        now = time.monotonic()
        # the command's stamp is this moment, the one its dt is measured from (not when it is published): one
        # clock read for both, so consecutive stamps bound every step (max_joint_velocity * their difference)
        # even when the thread is preempted here (a separate monotonic dt made stamps 10 ms off under load)
        stamp_time = self.get_clock().now()
        stamp_now = stamp_time.to_msg()
        reason = self._hold_reason(now)
        if reason is not None:
            if not self.holding:
                self.counts["holds"] += 1
                self.get_logger().warning(f"holding: {reason}")
                self.holding = True
                self.state = f"holding: {reason}"
                self.diag.publish_now()
            self.state = f"holding: {reason}" if self.q_cmd is not None else reason
            if self.cfg.hold_mode == "republish" and self.q_cmd is not None:
                self._publish(self.q_cmd, 0.0)
            self.last_step_ns = None
            return False
        if self.holding:
            self.holding = False
            self.state = "commanding"
            self.get_logger().info("commanding: fresh target and camera frames")
            self.diag.publish_now()
            self._resync()
        if self.q_cmd is None:
            start = self.q_meas if self.q_meas is not None else self.goal
            self.q_cmd = np.clip(start, self.lower, self.upper)
        period = 1.0 / self.cfg.rate
        if self.last_step_ns is None:
            dt = period
        else:  # a clock stepped back moves nothing; one stepped forward at most two periods' worth
            dt = min(max((stamp_time.nanoseconds - self.last_step_ns) * 1e-9, 0.0), 2.0 * period)
        if self.cfg.lockstep:  # the simulator moves one control period per command, as the benchmark
            q, limited = self.goal, False
        else:
            q, limited = velocity_step(self.q_cmd, self.goal, self.cfg.max_joint_velocity, dt)
        q = np.clip(q, self.lower, self.upper)
        if limited:
            self.counts["velocity_limited_steps"] += 1
        self.q_cmd = q
        self.last_step_ns = stamp_time.nanoseconds
        self._publish(q, dt, self.target_stamp if self.cfg.lockstep and from_target else stamp_now)
        if from_target and self.target_stamp is not None:
            stamp = Time.from_msg(self.target_stamp)
            if stamp.nanoseconds > 0:
                self.latency.add((self.get_clock().now() - stamp).nanoseconds * 1e-9)
        return True

    def _resync(self) -> None:
        """Resuming after a hold: when the hand is far from the last command (it was moved, or its driver restarted
        with the hand elsewhere), step from where it is, so the velocity limit holds against the robot itself."""
        threshold = self.cfg.resync_threshold
        if self.cfg.lockstep or threshold <= 0 or self.q_meas is None or self.q_cmd is None:
            return
        gap = float(np.abs(self.q_meas - self.q_cmd).max())
        if gap > threshold:
            self.counts["resyncs"] += 1
            self.get_logger().warning(f"resuming from the measured joints: {gap:.2f} from the last command")
            self.q_cmd = np.clip(self.q_meas, self.lower, self.upper)

    def _publish(self, q: np.ndarray, dt: float, stamp=None) -> None:
        stamp = stamp or self.get_clock().now().to_msg()
        self.pub_js.publish(joint_state(self.names, q, stamp))
        if self.pub_ctrl is not None:
            data = q[self.ctrl_index]
            if len(data) != len(self.ctrl_joints):  # cannot happen after the startup check; say so if it does
                self.get_logger().error(f"controller command has {len(data)} values for {len(self.ctrl_joints)} joints")
            else:
                msg = Float64MultiArray()
                msg.layout.dim = [MultiArrayDimension(label="joints", size=len(data), stride=len(data))]
                msg.data = data.tolist()
                self.pub_ctrl.publish(msg)
        if self.pub_traj is not None:
            traj = JointTrajectory()
            traj.header.stamp = TimeMsg()  # zero: start now
            traj.joint_names = list(self.names)
            horizon = max(dt, 1.0 / self.cfg.rate)
            traj.points = [
                JointTrajectoryPoint(
                    positions=q.tolist(), time_from_start=Duration(sec=int(horizon), nanosec=int((horizon % 1) * 1e9))
                )
            ]
            self.pub_traj.publish(traj)
        self.counts["commands_published"] += 1
        self.last_command_stamp = stamp.sec + 1e-9 * stamp.nanosec
        self.cmd_rate.tick()

    # -- rviz ----------------------------------------------------------------------------------
    def _publish_markers(self) -> None:
        with self._lock:
            q = self.q_cmd if self.q_cmd is not None else self.q_meas
            action, frame, holding = self.action, self.target_frame, self.holding
        stamp = self.get_clock().now().to_msg()
        world_T_wrist = action.wrist_pose if action is not None else self.hand.base_T_wrist
        markers = MarkerArray()
        if action is not None:
            tips = action.fingertips_world()
            m = Marker(ns="targets", id=0, type=Marker.SPHERE_LIST, action=Marker.ADD)
            m.header.frame_id, m.header.stamp = frame, stamp
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = 0.015
            m.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=0.8)
            for i, ok in enumerate(action.mask):
                if ok:
                    m.points.append(Point(x=float(tips[i, 0]), y=float(tips[i, 1]), z=float(tips[i, 2])))
                    r, g, b = finger_colors[i]
                    m.colors.append(ColorRGBA(r=r, g=g, b=b, a=0.9))
            markers.markers.append(m)
        if q is not None:
            with self._hand_lock:
                poses = self.hand.kin.frame_poses(q, self.draw_frames)
            pts = [world_T_wrist[:3, :3] @ poses[n][:3, 3] + world_T_wrist[:3, 3] for n in self.draw_frames]
            color = ColorRGBA(r=1.0, g=0.6, b=0.1, a=1.0) if holding else ColorRGBA(r=0.2, g=0.8, b=1.0, a=1.0)
            joints = Marker(ns="hand_joints", id=1, type=Marker.SPHERE_LIST, action=Marker.ADD)
            links = Marker(ns="hand_links", id=2, type=Marker.LINE_LIST, action=Marker.ADD)
            for m in (joints, links):
                m.header.frame_id, m.header.stamp = frame, stamp
                m.pose.orientation.w = 1.0
                m.color = color
            joints.scale.x = joints.scale.y = joints.scale.z = 0.01
            links.scale.x = 0.005
            joints.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in pts]
            for a, b in self.draw_segments:
                links.points.append(joints.points[a])
                links.points.append(joints.points[b])
            markers.markers += [joints, links]
        if markers.markers:
            self.pub_markers.publish(markers)
        if self.pub_tf is not None and q is not None:
            try:
                self._publish_tf(q, world_T_wrist, frame, stamp)
            except Exception as exc:  # noqa: BLE001 - visualisation must never stop the command node
                self.get_logger().error(f"/tf publishing failed, disabled: {exc}")
                self.pub_tf = None

    def _publish_tf(self, q, world_T_wrist, frame, stamp) -> None:
        """world → every hand link (a flat tree: enough for rviz's RobotModel)."""
        with self._hand_lock:
            poses = self.hand.kin.frame_poses(q, self.tf_links)
        msg = TFMessage()
        for link in self.tf_links:
            pose = pose_from_matrix(world_T_wrist @ poses[link])
            t = TransformStamped()
            t.header.stamp, t.header.frame_id, t.child_frame_id = stamp, frame, link
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
                pose.position.x,
                pose.position.y,
                pose.position.z,
            )
            t.transform.rotation = pose.orientation
            msg.transforms.append(t)
        self.pub_tf.publish(msg)

    # -- diagnostics -----------------------------------------------------------------------------
    def _diagnostics(self):
        now = time.monotonic()
        with self._lock:
            values = {
                "state": self.state,
                "prompt": self.prompt_id,
                **self.counts,
                "last_command_stamp": f"{self.last_command_stamp:.6f}",
            }
            target_age = None if self.target_mono is None else now - self.target_mono
            obs_age = None if self.obs_mono is None else now - self.obs_mono
            holding, state, problem = self.holding, self.state, self.last_problem
        values.update(
            {
                "command_rate_hz": self.cmd_rate.rate(),
                "target_rate_hz": self.target_rate.rate(),
                "observation_rate_hz": self.obs_rate.rate(),
                "target_age_s": -1.0 if target_age is None else target_age,
                "observation_age_s": -1.0 if obs_age is None else obs_age,
                "hold_mode": self.cfg.hold_mode,
                "last_problem": problem,
                "joints": len(self.names),
                "controller_joints": len(self.ctrl_joints),
            }
        )
        for k, v in self.latency.summary_ms().items():
            values[f"frame_to_command_{k}_ms" if k != "n" else "frame_to_command_samples"] = v
        for k, v in self.retarget_time.summary_ms().items():
            if k != "n":
                values[f"retarget_{k}_ms"] = v
        for name, stats in (
            ("fresh_target_receive", self.fresh_receive),
            ("fresh_target_handling", self.fresh_handling),
        ):
            for k, v in stats.summary_ms().items():
                if k != "n":
                    values[f"{name}_{k}_ms"] = v
        for k, v in self.fresh_latency.summary_ms().items():
            values[f"fresh_frame_to_command_{k}_ms" if k != "n" else "fresh_frame_to_command_samples"] = v
        if holding:
            return WARN, state, values
        return OK, state, values


def main(args: list[str] | None = None) -> int:
    # One thread: retargeting takes 1-3 ms, well inside the 10 ms step, and rclpy's multi-threaded
    # executor measured ~60 % more CPU and a higher latency tail here (benchmarks/bench_ros_latency.py).
    return run_node(lambda: CommandNode(), "command", args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
