"""Sim driver node: the HumanPrompt-Sim benchmark scene as a robot.

::

    python -m humanprompt_ros.nodes.sim_driver --ros-args -p task:=push_box -p seed:=3

The simulated Allegro hand and the task's objects (:class:`humanprompt_ros.sim.SimEnv`) behave
like a real robot on the graph:

Out
  ``/humanprompt/sim/image_raw`` (sensor_msgs/Image, rgb8, ``image_size``², the models' size; the
  camera node relays it to ``/humanprompt/observation``) at ``camera_rate``; ``/joint_states``
  (the 16 measured hand joints) and ``/humanprompt/wrist_pose`` (PoseStamped: the measured pose of
  the hand's base link in the world, what an arm driver would publish) at ``joint_state_rate``;
  ``/humanprompt/task_status`` (latched String JSON ``{task, skill, seed, step, horizon, started,
  success, done, ...}``) at ``status_rate`` and at once on a change; ``/diagnostics``.
In
  ``/humanprompt/joint_commands`` (JointState, by joint name): position targets of the hand's PD
  actuators; ``/humanprompt/wrist_target`` (PoseStamped: where the arm should put the hand's base
  link): the mocap wrist follows it, clamped to the workspace and rate-limited like the benchmark's
  arm (``max_wrist_step`` / ``max_wrist_rot_step`` per control period of ``config/sim.yaml``).
Services
  ``~/reset`` (std_srvs/Trigger): rebuild the scene for the ``task`` and ``seed`` parameters
  (settable; they apply at the next reset) with the hand at home.

Physics runs in real time on a thread of its own, in ticks of ``1/tick_rate`` s (each tick applies
the latest joint command and wrist target, then steps MuJoCo); the camera renders on another
thread (the scene is copied under the lock, the pixels rendered outside it, so a 30 ms software
render never stalls physics). Without commands the hand holds its last targets, like a position
controlled robot.

**Lockstep** (``lockstep: true``, ``humanprompt-bringup sim:=true lockstep:=true``, for evaluation):
physics stands still until the command for the current step has arrived (a new joint command and,
while anything publishes wrist targets, the wrist target the command node sends after it, however
late: only after ``lockstep_timeout`` s do the joints step alone, counted ``lockstep_wrist_missing``),
then advances exactly one control period the way ``humanprompt-sim eval`` does
(``SimEnv.step_joints``), publishes the new state and renders one frame on the same thread, all with
one stamp. The policy and command nodes run their lockstep modes too (one action per frame stamp, one
command per target), so the graph reproduces the benchmark's synchronous loop through real processes
and DDS, whatever the machine's speed or load. When no command comes for ``lockstep_timeout`` s the
step's frame is published again with its stamp (counted ``lockstep_resends``): a frame that was
dropped gets through, one that was not is not acted on twice (the policy sends that step's target
again, and the command node a command with the step's stamp). A joint command or wrist target stamped
before the current step (a step already taken, or the previous episode's, still in flight) is
dropped (counted ``commands_stale``), so a repeated command never takes the next step's place.

Episode clock: an episode *starts* with the first joint command or wrist target after a reset
(the graph may wait for a prompt first); ``step`` counts control periods (``1/control_hz``) since
then, the benchmark's success predicates are evaluated every period (:class:`SimEnv`'s tracker),
and the episode is ``done`` after ``horizon + extra_steps`` periods, when ``success`` is frozen.
The robot stays live after that (commands still move it) until the next reset.

Kept as one module: one ROS 2 node class per file (threads for physics, camera and
lockstep); the simulated robot it adapts is ROS-free in :mod:`humanprompt_ros.sim.robot`.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from humanprompt_ros.config.nodes import SimDriverConfig, StartupError
from humanprompt_ros.nodes.runtime import run_node
from humanprompt_ros.paths import config_path
from humanprompt_ros.ros import topics
from humanprompt_ros.ros.conversions import joint_positions, joint_state, matrix_from_pose, pose_from_matrix
from humanprompt_ros.ros.diagnostics import ERROR, OK, WARN, LatencyStats, NodeDiagnostics, RateMeter
from humanprompt_ros.ros.image import numpy_to_image
from humanprompt_ros.ros.params import declare_config, watch_config
from humanprompt_ros.sim.robot import SimCamera, SimRobot
from humanprompt_ros.sim.tasks import resolve_task


class SimDriverNode(Node):
    def __init__(self):
        super().__init__("sim_driver")
        self.cfg: SimDriverConfig = declare_config(self, SimDriverConfig, config_path("sim_driver.yaml"), "sim_driver")
        try:
            resolve_task(self.cfg.task)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        self.add_on_set_parameters_callback(self._check_task)
        watch_config(self, SimDriverConfig, self._on_config)
        self.robot = SimRobot(self.cfg.image_size, self.cfg.extra_steps)
        self.robot.reset(self.cfg.task, self.cfg.seed)  # builds the scene (~1 s) before reporting ready
        self._lock = threading.Lock()  # the robot (physics thread vs callbacks)
        self._stop = threading.Event()
        self._reset_request: tuple[str, int] | None = None
        self._reset_done = threading.Event()
        self._reset_error = ""
        self._command_event = threading.Event()  # lockstep: a command arrived
        self._new_joints = self._new_wrist = False
        self._episode_stamp = None  # the current episode's first step (set by a reset)
        self._step_ns = 0  # lockstep: the current step's stamp (commands stamped before it are stale)
        self.counts = dict(
            joint_commands=0,
            joint_commands_rejected=0,
            wrist_targets=0,
            wrist_targets_rejected=0,
            images=0,
            resets=0,
            tick_overruns=0,
            lockstep_resends=0,
            lockstep_wrist_missing=0,
            commands_stale=0,
        )
        self.image_rate = RateMeter()
        self.tick_rate_meter = RateMeter()
        self.render_ms = LatencyStats(200)
        self.lag_s = 0.0
        self.last_problem = ""
        self.pub_image = topics.publisher(self, topics.SIM_IMAGE)
        self.pub_js = topics.publisher(self, topics.JOINT_STATES)
        self.pub_wrist = topics.publisher(self, topics.WRIST_POSE)
        self.pub_status = topics.publisher(self, topics.TASK_STATUS)
        inputs = MutuallyExclusiveCallbackGroup()
        topics.subscribe(self, topics.JOINT_COMMANDS, self._on_joint_command, inputs)
        topics.subscribe(self, topics.WRIST_TARGET, self._on_wrist_target, inputs)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=MutuallyExclusiveCallbackGroup())
        slow = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0 / self.cfg.status_rate, self._publish_status, callback_group=slow)
        self.diag = NodeDiagnostics(
            self, self._diagnostics, self.cfg.diagnostics_period, hardware_id="humanprompt-sim", callback_group=slow
        )
        self._publish_status()
        self._thread = threading.Thread(target=self._loop, name="sim-physics", daemon=True)
        # lockstep renders on the physics thread, one frame per step
        self._camera = (
            None if self.cfg.lockstep else threading.Thread(target=self._camera_loop, name="sim-camera", daemon=True)
        )
        self._thread.start()
        if self._camera is not None:
            self._camera.start()
        mode = (
            "lockstep: one control period per command, a frame per step"
            if self.cfg.lockstep
            else f"{self.cfg.camera_rate:g} Hz images, physics {self.cfg.tick_rate:g} ticks/s in real time"
        )
        self.get_logger().info(
            f"task {self.robot.task_name!r} seed {self.robot.seed}: {self.robot.image_size}px "
            f"images on {topics.SIM_IMAGE.name}, {mode}"
        )

    # -- parameters ----------------------------------------------------------------------------
    def _check_task(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "task":
                try:
                    resolve_task(str(p.value))
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _on_config(self, cfg: SimDriverConfig) -> None:
        self.cfg = cfg
        self.robot.extra_steps = cfg.extra_steps

    # -- inputs ---------------------------------------------------------------------------------
    def _problem(self, key: str, msg: str) -> None:
        self.counts[key] += 1
        self.last_problem = msg
        self.get_logger().warning(msg, throttle_duration_sec=2.0)

    def _stale(self, stamp) -> bool:
        """Lockstep: a command stamped before the current step (for a step already taken, sent again,
        or the previous episode's, still in flight) is dropped, so it cannot take this step's place.
        Unstamped commands (zero) are taken."""
        ns = Time.from_msg(stamp).nanoseconds
        with self._lock:
            stale = self.cfg.lockstep and 0 < ns < self._step_ns
        if stale:
            self.counts["commands_stale"] += 1
        return stale

    def _on_joint_command(self, msg: JointState) -> None:
        if self._stale(msg.header.stamp):
            return
        try:
            q = joint_positions(msg, self.robot.names)
            if not np.all(np.isfinite(q)):
                raise ValueError("NaN or inf")
        except ValueError as exc:
            self._problem("joint_commands_rejected", f"rejected a joint command: {exc}")
            return
        with self._lock:
            self.robot.command_joints(q)
            self._new_joints = True
        self.counts["joint_commands"] += 1
        self._command_event.set()

    def _on_wrist_target(self, msg: PoseStamped) -> None:
        if self._stale(msg.header.stamp):
            return
        try:
            pose = matrix_from_pose(msg.pose, "wrist target")
            if not np.all(np.isfinite(pose)):
                raise ValueError("NaN or inf")
        except ValueError as exc:
            self._problem("wrist_targets_rejected", f"rejected a wrist target: {exc}")
            return
        with self._lock:
            self.robot.command_base_pose(pose)
            self._new_wrist = True
        self.counts["wrist_targets"] += 1
        self._command_event.set()

    def _on_reset(self, _req, resp):
        task = str(self.get_parameter("task").value)
        seed = int(self.get_parameter("seed").value)
        self._reset_done.clear()
        self._reset_request = (task, seed)
        if not self._reset_done.wait(30.0):
            resp.success, resp.message = False, "reset timed out (the physics thread is not running)"
            return resp
        if self._reset_error:
            resp.success, resp.message = False, self._reset_error
        else:
            resp.success, resp.message = True, json.dumps(self.robot.status())
        return resp

    # -- outputs --------------------------------------------------------------------------------
    def _publish_status(self) -> None:
        with self._lock:
            status = self.robot.status()
        self.pub_status.publish(String(data=json.dumps(status)))

    def _publish_state(self, stamp=None) -> None:
        stamp = stamp or self.get_clock().now().to_msg()
        with self._lock:
            q, base = self.robot.joints(), self.robot.base_pose()
        self.pub_js.publish(joint_state(self.robot.names, q, stamp))
        out = PoseStamped()
        out.header.stamp, out.header.frame_id = stamp, self.cfg.frame_id
        out.pose = pose_from_matrix(base)
        self.pub_wrist.publish(out)

    def _camera_loop(self) -> None:
        """The camera, on a thread of its own: the scene is copied under the lock (fast), the
        pixels are rendered outside it, so physics keeps real time while a frame renders."""
        camera = SimCamera(self.robot.image_size)
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                self._publish_frame(camera)
                next_t += 1.0 / self.cfg.camera_rate
                delay = next_t - time.monotonic()
                if delay < -0.5:
                    next_t = time.monotonic()
                elif delay > 0:
                    self._stop.wait(delay)
        except Exception as exc:  # noqa: BLE001
            if self.context.ok() and not self._stop.is_set():
                self.get_logger().error(f"camera thread stopped: {type(exc).__name__}: {exc}")
                raise
        finally:
            camera.close()

    def _publish_frame(self, camera: "SimCamera", stamp=None) -> None:
        with self._lock:
            t0 = time.perf_counter()
            stamp = stamp or self.get_clock().now().to_msg()  # the moment the scene is copied
            camera.update(self.robot.env)
        frame = camera.render()
        self.pub_image.publish(numpy_to_image(frame, "rgb8", frame_id="sim_camera", stamp=stamp))
        self.render_ms.add(time.perf_counter() - t0)
        self.image_rate.tick()
        self.counts["images"] += 1

    # -- the real-time loop ---------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._run_lockstep() if self.cfg.lockstep else self._run_loop()
        except Exception as exc:  # noqa: BLE001
            if self.context.ok() and not self._stop.is_set():
                self.get_logger().error(f"physics thread stopped: {type(exc).__name__}: {exc}")
                raise

    def _run_loop(self) -> None:
        dt = 1.0 / self.cfg.tick_rate
        start = time.monotonic()
        ticks = 0
        next_state = start
        while not self._stop.is_set():
            if self._reset_if_requested():
                start, ticks = time.monotonic(), 0
                next_state = start
            now = time.monotonic()
            due = start + (ticks + 1) * dt
            if now < due:
                if now >= next_state:
                    next_state = max(next_state + 1.0 / self.cfg.joint_state_rate, now)
                    self._publish_state()
                    continue
                self._stop.wait(min(due, next_state) - now)
                continue
            if now - due > 0.5:  # fell far behind (a stall): do not burst, just skip ahead
                self.counts["tick_overruns"] += 1
                start, ticks = now - ticks * dt, ticks
                due = now
            self.lag_s = now - due
            with self._lock:
                changed = self.robot.tick(dt)
            ticks += 1
            self.tick_rate_meter.tick()
            if changed:
                self._publish_status()

    def _reset_if_requested(self) -> bool:
        req, self._reset_request = self._reset_request, None
        if req is None:
            return False
        try:
            with self._lock:
                self.robot.reset(*req)
                self._new_joints = self._new_wrist = False
                # the episode's first step: lockstep publishes it with this stamp and drops commands
                # stamped before it (the previous episode's, still in flight)
                self._episode_stamp = self.get_clock().now().to_msg()
                self._step_ns = Time.from_msg(self._episode_stamp).nanoseconds
            self._reset_error = ""
            self.counts["resets"] += 1
            self.get_logger().info(f"reset: task {req[0]!r} seed {req[1]}")
        except Exception as exc:  # noqa: BLE001 - report it to the caller, keep running
            self._reset_error = f"reset failed: {exc}"
        self._reset_done.set()
        self._publish_status()
        return True

    def _run_lockstep(self) -> None:
        """Physics waits for each step's command: a new joint command and a new wrist target; then one
        control period, then state and a frame (one stamp for both)."""
        camera = SimCamera(self.robot.image_size)

        def new_step():
            """(holds the lock) the stamp of a new step: commands stamped before it are stale from now on."""
            stamp = self.get_clock().now().to_msg()
            self._step_ns = Time.from_msg(stamp).nanoseconds
            return stamp

        def publish_step(stamp):
            # one stamp for a step's state and frame: the policy pairs them, and acts once per stamp
            self._publish_state(stamp)
            self._publish_frame(camera, stamp)
            return time.monotonic(), stamp

        joints_at = None  # when this step's joint command arrived
        try:
            with self._lock:
                stamp = new_step()
            published, stamp = publish_step(stamp)
            while not self._stop.is_set():
                if self._reset_if_requested():
                    self._command_event.clear()
                    joints_at = None
                    published, stamp = publish_step(self._episode_stamp)
                    continue
                self._command_event.wait(0.02)
                self._command_event.clear()
                with self._lock:
                    # the command node sends a step's joint command and then its wrist target: wait for
                    # both (DDS does not order topics), however long the graph takes under load. A graph
                    # with no wrist-target publisher steps with the joints alone at once; one whose wrist
                    # target is late by more than lockstep_timeout steps without it (and counts it).
                    if self._new_joints and joints_at is None:
                        joints_at = time.monotonic()
                    ready = self._new_joints and self._new_wrist
                    if self._new_joints and not self._new_wrist:  # only then ask the graph (not every poll)
                        grace = self.cfg.lockstep_timeout if self.count_publishers(topics.WRIST_TARGET.name) else 0.0
                        ready = time.monotonic() - joints_at > grace
                        if ready and grace:
                            self.counts["lockstep_wrist_missing"] += 1
                    if ready:
                        self._new_joints = self._new_wrist = False
                        joints_at = None
                        changed = self.robot.step_once()
                        stamp = new_step()  # under the lock: a late command for the old step is stale
                if ready:
                    self.tick_rate_meter.tick()
                    published, stamp = publish_step(stamp)
                    if changed:
                        self._publish_status()
                elif joints_at is None and time.monotonic() - published > self.cfg.lockstep_timeout:
                    # a dropped frame, or a target or command lost on the way: publish the same step
                    # again, with its stamp (the policy acts once per stamp and sends that step's
                    # target again, so a frame that did arrive is not acted on twice)
                    self.counts["lockstep_resends"] += 1
                    published, stamp = publish_step(stamp)
        finally:
            camera.close()

    # -- diagnostics ----------------------------------------------------------------------------
    def _diagnostics(self):
        with self._lock:
            status = self.robot.status()
        values = {
            **status,
            **self.counts,
            "image_rate_hz": self.image_rate.rate(),
            "tick_rate_hz": self.tick_rate_meter.rate(),
            "lag_s": self.lag_s,
            "image_subscribers": self.pub_image.get_subscription_count(),
            "last_problem": self.last_problem,
        }
        for k, v in self.render_ms.summary_ms().items():
            if k != "n":
                values[f"render_{k}_ms"] = v
        if not self._thread.is_alive() or (self._camera is not None and not self._camera.is_alive()):
            return ERROR, "physics or camera thread stopped", values
        values["lockstep"] = self.cfg.lockstep
        rate = values["tick_rate_hz"]
        if not self.cfg.lockstep and self.counts["images"] > 30 and rate < 0.8 * self.cfg.tick_rate:
            return WARN, f"physics slower than real time ({rate:.0f} of {self.cfg.tick_rate:g} ticks/s)", values
        state = "done" if status["done"] else ("running" if status["started"] else "waiting for commands")
        return (
            OK,
            (
                f"{status['task']} seed {status['seed']}: {state}, step {status['step']}/{status['horizon']}, "
                f"success {str(status['success']).lower()}"
            ),
            values,
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        if self._camera is not None:
            self._camera.join(timeout=2.0)
        self.robot.close()


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: SimDriverNode(), "sim_driver", args, threads=3)


if __name__ == "__main__":
    raise SystemExit(main())
