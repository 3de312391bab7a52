"""Prompt encoder node: the ``prompt_video`` parameter, ``~/clear_prompt``, ``~/record_prompt`` →
``/humanprompt/prompt`` (latched).

::

    python -m humanprompt_ros.nodes.prompt_encoder --ros-args -p prompt_dirs:="['/data/demos']"
    ros2 param set /prompt_encoder prompt_video /data/demos/push_box/human/0000003     # or humanprompt-prompt set
    ros2 service call /prompt_encoder/clear_prompt std_srvs/srv/Trigger
    ros2 service call /prompt_encoder/record_prompt std_srvs/srv/Trigger

Parameters: :class:`humanprompt_ros.config.nodes.PromptEncoderConfig` (``config/prompt_encoder.yaml``).

Setting ``prompt_video`` (the standard parameter service) runs, *before the set-parameters call
answers*:

1. the path check: it must lie inside one of ``prompt_dirs`` (after resolving symlinks and ``..``);
2. :func:`humanprompt_ros.data.load_prompt`: exists, a video or an episode directory, not empty,
   readable, at least ``min_frames`` frames, within ``max_file_mb``, ``max_pixels`` and
   ``max_duration_s`` (probed, not decoded);
3. the backend's own requirements and encoding, on a backend instance of this node
   (:func:`humanprompt_ros.policies.make_policy`): ``replay`` takes the episode's unified actions
   (refused: a bare video, or an episode without ``actions.npy``, unless ``camera_pose`` is set: then
   the video's hand pose is extracted, as the policy node will); ``scripted`` needs the episode's
   task and seed; ``checkpoint`` with a ``checkpoint`` parameter encodes the video with that
   checkpoint's prompt encoder (without one, the video is validated here and encoded by the
   policy node's worker): the video is resampled in time to the rate the checkpoint was trained at,
   only the frames of the model's clip are decoded, and the prompt's distance from the checkpoint's
   skill prototypes is measured; with ``strict`` an out-of-distribution prompt is refused
   (:mod:`humanprompt_ros.policies.prompt_fit`).

A failure answers ``successful: false`` with the reason, and the previous prompt stays active (the
parameter keeps its old value). Success publishes the prompt on ``/humanprompt/prompt`` (reliable,
transient local, depth 1) as JSON::

    {"id": "push_box-3-h7@2", "path": "/abs/path", "task": "push_box", "skill": "push_to_goal",
     "embodiment": "human", "seed": 3, "frames": 51, "fps": 10.0, "duration_s": 5.1, "size": [128, 128],
     "actions": 50, "backend": "replay", "encode_s": 0.12, "set_at": 1732700000.1}

(``docs/ros.md`` lists the fields a checkpoint adds: how the video was resampled, its distance.)

``id`` is new on every successful set (setting the same file again restarts the task). An empty
``prompt_video`` or ``~/clear_prompt`` publishes ``{"id": ""}``: no prompt, the robot stops.

With ``policy:=checkpoint`` and a ``checkpoint``, the tokens the checkpoint's prompt encoder computed
are published *before* the prompt message, latched on ``/humanprompt/prompt_tokens``
(``std_msgs/Float32MultiArray``, :func:`humanprompt_ros.ros.conversions.tokens_to_msg`) with the
prompt id and the checkpoint's identity (:func:`humanprompt_ros.nodes.policy.checkpoint_identity`),
which the prompt message also carries as ``"checkpoint"``; a policy node with the same checkpoint
installs them instead of encoding the video again. A clear publishes the "no prompt" tokens message.

``~/record_prompt`` records ``record_seconds`` of ``/humanprompt/observation`` into an mp4 in
``record_dir`` (default: the first prompt directory) and sets it as the prompt. A bare video has
no actions, so with ``replay`` the answer is ``success: false`` saying so, and the recording is
kept (its path is in the message) for a backend that takes videos.

Encoding runs in this process, never in the policy's control loop.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from humanprompt_ros.config.loader import ConfigError, from_dict
from humanprompt_ros.config.nodes import PromptEncoderConfig, check_ranges
from humanprompt_ros.control.prompt import PromptError, PromptValidator
from humanprompt_ros.data import write_video
from humanprompt_ros.nodes.runtime import run_node
from humanprompt_ros.paths import config_path
from humanprompt_ros.ros import topics
from humanprompt_ros.ros.conversions import tokens_to_msg
from humanprompt_ros.ros.diagnostics import OK, WARN, NodeDiagnostics
from humanprompt_ros.ros.image import image_to_numpy
from humanprompt_ros.ros.params import current_values, declare_config

# prompt message fields also shown in /diagnostics: how the video was read, and its distance from training
PROMPT_READING = (
    "fps",
    "frames",
    "duration_s",
    "prompt_fps",
    "frames_used",
    "ood_distance",
    "ood_skill",
    "ood_threshold",
    "ood",
)


class PromptEncoderNode(Node):
    def __init__(self):
        super().__init__("prompt_encoder")
        self.cfg: PromptEncoderConfig = declare_config(
            self, PromptEncoderConfig, config_path("prompt_encoder.yaml"), "prompt_encoder"
        )
        self.core = PromptValidator(self.cfg)
        self._lock = threading.Lock()
        self.active: dict[str, Any] = {"id": ""}
        self.counts = dict(prompts_set=0, prompts_refused=0, clears=0, recordings=0)
        self.last_refusal = ""
        self._recording: list | None = None
        self._rec_stamps: list[float] = []
        self.pub = topics.publisher(self, topics.PROMPT)
        self.tokens_pub = topics.publisher(self, topics.PROMPT_TOKENS)
        topics.subscribe(self, topics.OBSERVATION, self._on_observation, MutuallyExclusiveCallbackGroup())
        services = ReentrantCallbackGroup()
        self.create_service(Trigger, "~/clear_prompt", self._on_clear, callback_group=services)
        self.create_service(Trigger, "~/record_prompt", self._on_record, callback_group=services)
        self.diag = NodeDiagnostics(
            self,
            self._diagnostics,
            self.cfg.diagnostics_period,
            hardware_id=self.cfg.policy,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        initial = self.cfg.prompt_video
        if initial:
            try:
                self._activate(self.core.validate(initial))
            except PromptError as exc:
                self.get_logger().error(f"initial prompt refused: {exc}; starting without a prompt")
                self.set_parameters([Parameter("prompt_video", value="")])
                self._publish({"id": ""})
        else:
            self._resume()
        self.add_on_set_parameters_callback(self._on_set)
        dirs = ", ".join(str(d) for d in self.core.dirs) or "any directory"
        self.get_logger().info(f"ready: backend {self.cfg.policy}, prompts from {dirs}")

    # -- the prompt ------------------------------------------------------------------------------
    def _publish(self, info: dict[str, Any]) -> None:
        with self._lock:
            self.active = info
        pid = str(info.get("id") or "")
        enc = self.core.encoded
        if enc is not None and enc[0] == pid:  # the tokens first: they are there when the prompt arrives
            self.tokens_pub.publish(tokens_to_msg(enc[1], pid, self.core.checkpoint_id, enc[2]))
        elif not pid and self.core.checkpoint_id:
            self.tokens_pub.publish(tokens_to_msg(None, "", ""))
        self.pub.publish(String(data=json.dumps(info)))
        self.core.remember(info)
        self.diag.publish_now()

    def _resume(self) -> None:
        """After a restart: re-apply the prompt kept in ``resume_file`` (same id), else start without one."""
        try:
            info = self.core.resume()
        except PromptError as exc:
            self.get_logger().error(f"the prompt kept in {self.cfg.resume_file} is not usable now: {exc}")
            info = None
        if info is None:
            self._publish({"id": ""})
            return
        self.set_parameters([Parameter("prompt_video", value=info["path"])])
        self._activate(info)
        self.get_logger().info(f"re-applied prompt {info['id']!r}, kept in {self.cfg.resume_file} before a restart")

    def _activate(self, info: dict[str, Any]) -> None:
        self._publish(info)
        self.counts["prompts_set"] += 1
        ood = ""
        if "ood_distance" in info:
            ood = f", distance {info['ood_distance']} from {info['ood_skill']} (threshold {info.get('ood_threshold')})"
        self.get_logger().info(
            f"prompt {info['id']!r} active: {info['path']} ({info.get('frames')} frames at {info.get('fps')} fps, "
            f"{info.get('frames_used', info.get('frames'))} used, encoded in {info.get('encode_s')} s{ood})"
        )
        if info.get("ood"):
            self.get_logger().warning(f"prompt {info['id']!r} is out of distribution{ood}")

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        """Validate every change (the dataclass) and validate + encode a new prompt, before answering."""
        values = current_values(self, PromptEncoderConfig)
        for p in params:
            if p.name in values:
                values[p.name] = p.value
        where = f"ROS parameters of {self.get_fully_qualified_name()}"
        try:
            check_ranges(PromptEncoderConfig, values, where)
            new = from_dict(PromptEncoderConfig, values, source=where)
        except (ConfigError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        problem = self.core.strict_problem(new)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        prompt = [p for p in params if p.name == "prompt_video"]
        old, self.core.cfg = self.core.cfg, new  # a prompt set in the same call meets the new limits
        if prompt:
            value = str(prompt[-1].value or "")
            if not value:
                self._clear("prompt_video set to ''")
            else:
                try:
                    info = self.core.validate(value)
                except Exception as exc:  # noqa: BLE001 - never take the node down for a bad file
                    self.core.cfg = old
                    self.counts["prompts_refused"] += 1
                    known = isinstance(exc, PromptError)
                    self.last_refusal = str(exc) if known else f"prompt {value}: {type(exc).__name__}: {exc}"
                    if known:
                        self.get_logger().warning(f"prompt refused: {exc} (the previous prompt stays active)")
                    return SetParametersResult(successful=False, reason=self.last_refusal)
                self._activate(info)
        self.cfg = new
        return SetParametersResult(successful=True)

    def _clear(self, why: str) -> None:
        self._publish({"id": ""})
        self.counts["clears"] += 1
        self.get_logger().info(f"prompt cleared ({why})")

    def _on_clear(self, _req, resp):
        result = self.set_parameters([Parameter("prompt_video", value="")])[0]
        resp.success = bool(result.successful)
        resp.message = "prompt cleared: the robot stops" if result.successful else result.reason
        return resp

    # -- recording -------------------------------------------------------------------------------
    def _on_observation(self, msg: Image) -> None:
        rec = self._recording
        if rec is None:
            return
        try:
            rec.append(image_to_numpy(msg).copy())
            self._rec_stamps.append(time.monotonic())
        except ValueError:
            pass

    def _on_record(self, _req, resp):
        if self._recording is not None:
            resp.success, resp.message = False, "a recording is already running"
            return resp
        try:
            out_dir = self.core.record_dir()
            out_dir.mkdir(parents=True, exist_ok=True)
        except (PromptError, OSError) as exc:
            resp.success, resp.message = False, f"cannot record: {exc}"
            return resp
        seconds = float(self.cfg.record_seconds)
        self.get_logger().info(f"recording {seconds:g} s from {topics.OBSERVATION.name}")
        self._rec_stamps = []
        self._recording = []
        time.sleep(seconds)
        frames, stamps = self._recording, self._rec_stamps
        self._recording = None
        if len(frames) < 2:
            resp.success = False
            resp.message = (
                f"recorded {len(frames)} frame(s) in {seconds:g} s: no camera frames on "
                f"{topics.OBSERVATION.name}? The previous prompt stays active"
            )
            return resp
        fps = (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-3)
        h, w = frames[0].shape[:2]
        frames = [f[: h - h % 2, : w - w % 2] for f in frames if f.shape == frames[0].shape]
        path = out_dir / time.strftime("recording-%Y%m%d-%H%M%S.mp4")
        try:
            write_video(path, frames, fps=round(fps, 3))
        except Exception as exc:  # noqa: BLE001
            resp.success, resp.message = False, f"cannot write {path}: {exc}"
            return resp
        self.counts["recordings"] += 1
        result = self.set_parameters([Parameter("prompt_video", value=str(path))])[0]
        if result.successful:
            resp.success, resp.message = (
                True,
                f"recorded {len(frames)} frames ({fps:.1f} fps) to {path}; now the prompt",
            )
        else:
            resp.success = False
            resp.message = (
                f"recorded {len(frames)} frames to {path} (kept), but it cannot be the prompt: "
                f"{result.reason}. The previous prompt stays active"
            )
        return resp

    # -- diagnostics ------------------------------------------------------------------------------
    def _diagnostics(self):
        with self._lock:
            active = dict(self.active)
        values = {
            "prompt": active.get("id", ""),
            "path": active.get("path", ""),
            "backend": self.cfg.policy,
            **self.counts,
            "last_refusal": self.last_refusal,
            "prompt_dirs": ", ".join(str(d) for d in self.core.dirs),
            "checkpoint_identity": self.core.checkpoint_id,
            "recording": self._recording is not None,
            **{k: active.get(k, "") for k in PROMPT_READING},
            "ood_calibration": self.core.calibration_note,
            "strict": self.cfg.strict,
        }
        if self._recording is not None:
            return OK, f"recording ({len(self._recording)} frames)", values
        if not active.get("id"):
            return WARN, "no prompt (the robot holds)", values
        if active.get("ood"):
            return (
                WARN,
                f"prompt {active['id']} out of distribution ({active['ood_distance']} > {active['ood_threshold']})",
                values,
            )
        return OK, f"prompt {active['id']}", values


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: PromptEncoderNode(), "prompt_encoder", args, threads=3)


if __name__ == "__main__":
    raise SystemExit(main())
