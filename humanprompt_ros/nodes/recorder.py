"""Recorder node: demonstration episodes from the live topics, in the dataset format.

::

    humanprompt-record --ros-args -p root:=/data/real -p task:=open_drawer            # a robot recording
    humanprompt-record --ros-args -p embodiment:=human -p task:=open_drawer           # a human demonstration
    ros2 service call /recorder/start std_srvs/srv/Trigger     # ... demonstrate ...
    ros2 service call /recorder/stop std_srvs/srv/Trigger      # → <root>/<task>/<embodiment>/<number:07d>/

Parameters: :class:`humanprompt_ros.config.nodes.RecorderConfig` (defaults in ``config/recorder.yaml``);
``root``, ``task``, ``embodiment``, ``fps`` and the human-hand ones can be set between episodes and apply at
the next ``~/start``.

In
  ``image_topic`` (``/humanprompt/observation``, sensor_msgs/Image in any encoding of
  :mod:`humanprompt_ros.messages`); robot episodes also ``joint_topic`` (``/joint_states``, read by the hand's
  joint names), ``wrist_topic`` (``/humanprompt/wrist_pose``, PoseStamped: the hand's base link) and
  ``action_topic`` (``/humanprompt/hand_target``, the commanded unified action, when anything publishes it).
  Messages are timed by their header stamps (receive time for a stream whose stamps are all zero); those
  stamped before ``~/start`` (in the node's clock: messages queued before it) are dropped and counted
  (``stamped_before_start``).

  Threads: the camera and each state topic have a callback group of their own on a multi-threaded executor, so
  a slow frame (decoding, a disk write) never holds up the state messages; a state callback only converts its
  message to an array and stores it with the stamp. The state topics are subscribed best effort (matching
  best-effort and reliable publishers, as controllers publish them) with a history of :data:`STATE_DEPTH`
  messages, so a stall of the process shorter than that loses none; the hand targets keep their reliable QoS,
  with the same depth.
Out
  ``/diagnostics``: one status, ``recording <episode>`` or ``idle``, with the live counts (``camera_frames``,
  ``joint_states``, ``wrist_poses``, ``hand_targets``, ``stamped_before_start``, ``seconds``) and the session's
  totals (``episodes_saved``, ``episodes_failed``, ``episodes_discarded``, ``frames_saved``, ``last_episode``,
  ``last_error``); WARN while paused at ``max_duration``. While recording, the same counts are logged every
  ``log_period`` s.
Services (std_srvs/Trigger)
  ``~/start``: start an episode (refused with the reason while recording or without a task).
  ``~/stop``: end it and write it; ``success: false`` with the reason when it cannot be saved (too short, a
  topic without messages, a failed write such as a full disk): the partial episode is removed and the node
  records the next one as usual. Human episodes: the hand pose is extracted before the answer when mediapipe
  is installed, else the answer says it is pending and how to run it.
  ``~/discard``: end the episode without saving it.

How an episode is built and kept crash safe: :mod:`humanprompt_ros.recording`.

Kept as one module: one ROS 2 node class per file; the recording itself is ROS-free in
:mod:`humanprompt_ros.recording`.
"""

from __future__ import annotations

from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from humanprompt_ros.camera import BadFrame, as_rgb
from humanprompt_ros.config.nodes import RecorderConfig
from humanprompt_ros.nodes.runtime import load_node_hand, run_node
from humanprompt_ros.paths import config_path
from humanprompt_ros.recording import EpisodeRecorder, RecordingFailed
from humanprompt_ros.ros import topics
from humanprompt_ros.ros.conversions import joint_positions, matrix_from_pose, pose_array_to_action
from humanprompt_ros.ros.diagnostics import OK, WARN, NodeDiagnostics
from humanprompt_ros.ros.image import image_to_numpy
from humanprompt_ros.ros.params import declare_config, watch_config

COUNTS = ("camera_frames", "joint_states", "wrist_poses", "hand_targets")
#: History depth of the state and hand-target subscriptions: 200 messages, over 6 s of a 30 Hz stream and 2 s at
#: 100 Hz, for the executor to catch up after a stall (a joint state is well under 1 kB).
STATE_DEPTH = 200
#: Executor threads: the camera, the three state topics, the services and the status timer, each a callback group.
THREADS = 6


class RecorderNode(Node):
    def __init__(self):
        super().__init__("recorder")
        self.cfg: RecorderConfig = declare_config(self, RecorderConfig, config_path("recorder.yaml"), "recorder")
        watch_config(self, RecorderConfig, self._on_config)
        self.hand = load_node_hand(self.cfg.hand)
        self.hand.fk(self.hand.neutral())  # warm-up of the kinematics
        self.core = EpisodeRecorder(self.hand)
        self.dropped = dict(frames_bad=0, joint_states_invalid=0, wrist_poses_invalid=0, hand_targets_invalid=0)
        cfg = self.cfg
        # one callback group per input: a frame being decoded or written never delays a state message
        topics.subscribe(
            self, topics.OBSERVATION, self._on_image, MutuallyExclusiveCallbackGroup(), name=cfg.image_topic
        )
        self._subscribe_state(topics.JOINT_STATES, self._on_joints, cfg.joint_topic)
        self._subscribe_state(topics.WRIST_POSE, self._on_wrist, cfg.wrist_topic)
        if cfg.action_topic:
            self._subscribe_state(topics.HAND_TARGET, self._on_action, cfg.action_topic)
        services = MutuallyExclusiveCallbackGroup()  # stop writes the episode: never beside another call
        self.create_service(Trigger, "~/start", self._on_start, callback_group=services)
        self.create_service(Trigger, "~/stop", self._on_stop, callback_group=services)
        self.create_service(Trigger, "~/discard", self._on_discard, callback_group=services)
        status = MutuallyExclusiveCallbackGroup()
        self.diag = NodeDiagnostics(self, self._diagnostics, cfg.diagnostics_period, "recorder", status)
        self.create_timer(cfg.log_period, self._log_counts, callback_group=status)
        self.get_logger().info(
            f"ready: ~/start and ~/stop record {cfg.embodiment} episodes of task {cfg.task or '(set task first)'!r} "
            f"at {cfg.fps:g} fps into {cfg.root}; camera {cfg.image_topic}"
        )

    def _on_config(self, cfg: RecorderConfig) -> None:
        self.cfg = cfg  # applies at the next ~/start

    # -- inputs ------------------------------------------------------------------------------------------------
    def _subscribe_state(self, topic: topics.Topic, callback, name: str):
        """A state (or hand-target) subscription: the table's QoS (best effort for state) with a deep history, in
        a callback group of its own."""
        qos = topics.subscription_qos(topic)
        qos.depth = STATE_DEPTH
        return self.create_subscription(
            topics.msg_class(topic), name, callback, qos, callback_group=MutuallyExclusiveCallbackGroup()
        )

    def _times(self, msg) -> tuple[int, int]:
        return Time.from_msg(msg.header.stamp).nanoseconds, self.get_clock().now().nanoseconds

    def _drop(self, key: str, why: str) -> None:
        self.dropped[key] += 1
        self.get_logger().warning(why, throttle_duration_sec=2.0)

    def _on_image(self, msg: Image) -> None:
        if not self.core.recording:
            return
        try:
            self.core.add_frame(as_rgb(image_to_numpy(msg)), *self._times(msg))
        except (ValueError, BadFrame) as exc:
            self._drop("frames_bad", f"dropped a camera frame: {exc}")
        except RecordingFailed as exc:  # a failed write: the episode is gone, ~/stop reports it
            self.get_logger().error(str(exc))
            self.diag.publish_now()

    def _on_joints(self, msg: JointState) -> None:
        if not self.core.recording:
            return
        try:
            q = joint_positions(msg, self.hand.joint_names)
        except ValueError as exc:
            return self._drop("joint_states_invalid", f"ignored {self.cfg.joint_topic}: {exc}")
        self.core.add_joints(q, *self._times(msg))

    def _on_wrist(self, msg: PoseStamped) -> None:
        if not self.core.recording:
            return
        try:
            pose = matrix_from_pose(msg.pose, "wrist pose")
        except ValueError as exc:
            return self._drop("wrist_poses_invalid", f"ignored {self.cfg.wrist_topic}: {exc}")
        self.core.add_wrist(pose, *self._times(msg), msg.header.frame_id)

    def _on_action(self, msg: PoseArray) -> None:
        if not self.core.recording:
            return
        try:
            action = pose_array_to_action(msg).to_array()
        except ValueError as exc:
            return self._drop("hand_targets_invalid", f"ignored {self.cfg.action_topic}: {exc}")
        self.core.add_action(action, *self._times(msg))

    # -- services ----------------------------------------------------------------------------------------------
    def _answer(self, resp, success: bool, message: str):
        resp.success, resp.message = success, message
        if success:
            self.get_logger().info(message)
        else:
            self.get_logger().error(message)
        self.diag.publish_now()
        return resp

    def _on_start(self, _req, resp):
        try:
            message = self.core.start(self.cfg, self.get_clock().now().nanoseconds)
        except (ValueError, OSError) as exc:
            return self._answer(resp, False, f"cannot start: {exc}")
        return self._answer(resp, True, message)

    def _on_stop(self, _req, resp):
        try:
            saved = self.core.stop()
        except RecordingFailed as exc:
            return self._answer(resp, False, str(exc))
        return self._answer(resp, True, saved.message())

    def _on_discard(self, _req, resp):
        try:
            message = self.core.discard()
        except ValueError as exc:
            return self._answer(resp, False, str(exc))
        return self._answer(resp, True, message)

    # -- live counts -------------------------------------------------------------------------------------------
    def _log_counts(self) -> None:
        s = self.core.status()
        if s["recording"]:
            counts = ", ".join(f"{s[k]} {k.replace('_', ' ')}" for k in COUNTS)
            pause = f"; PAUSED at max_duration {self.cfg.max_duration:g} s: ~/stop saves it" if s["paused"] else ""
            self.get_logger().info(
                f"recording {s['episode']}: {s['seconds']:.1f} s, {counts}{pause} "
                f"({s['episodes_saved']} episodes saved this session)"
            )

    def _diagnostics(self):
        s = self.core.status()
        values = {**s, **self.dropped}
        if not s["recording"]:
            return OK, "idle", values
        if s["paused"]:
            return WARN, f"paused at max_duration: {s['episode']}", values
        return OK, f"recording {s['episode']}", values


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: RecorderNode(), "recorder", args, threads=THREADS)


if __name__ == "__main__":
    raise SystemExit(main())
