"""Policy node: observation + prompt + ``/joint_states`` → ``/humanprompt/hand_target``.

::

    python -m humanprompt_ros.nodes.policy --ros-args -p policy:=replay
    python -m humanprompt_ros.nodes.policy --ros-args -p policy:=checkpoint -p checkpoint:=models/pour.safetensors

Parameters: :class:`humanprompt_ros.config.nodes.PolicyConfig` (defaults in ``config/policy.yaml``).

Backends (the Policy protocol of :mod:`humanprompt_ros.policies`, built with ``make_policy``):
``replay`` (the prompt episode's unified actions, open loop: retarget-the-human-demo, runs on a
real hand today), ``scripted`` (the benchmark's expert for the prompt's task and seed, computed
from the simulator's privileged initial state; tests only) and ``checkpoint`` (the learned policy,
``humanprompt_ros.policies.learned``; a missing or mismatched checkpoint stops the node at startup with the
reason, exit code 2).

In: ``/humanprompt/observation`` (the latest frame is kept; frames never used are counted as
dropped; a frame that cannot be read — unsupported encoding, data that does not match its size, an
empty image — is dropped and counted ``frames_bad``, and does not count as a fresh frame),
``/humanprompt/prompt`` (latched JSON from the prompt encoder), ``/joint_states`` and
the measured base-link pose ``wrist_pose_topic`` (``/humanprompt/wrist_pose``: the sim driver
publishes it; on a real robot the arm driver should; until one arrives the last
``/humanprompt/wrist_target`` is used).

Proprio (what ``act`` receives) is the unified hand state computed here: ``hand.fk(q,
base_pose)`` of the measured joints at the measured base-link pose — the same vector the
benchmark's ``SimEnv`` gives its policies.

Out: ``/humanprompt/hand_target`` (PoseArray, :mod:`humanprompt_ros.ros.conversions`) at
``rate`` Hz, stamped with the stamp of the observation its chunk was computed from; ``/diagnostics``.

How it runs
-----------
* **No motion without a prompt**: nothing is published until a prompt with a non-empty id is
  active; ``{"id": ""}`` (clear) stops publishing at once.
* **New prompt**: a worker thread builds a copy of the backend, calls ``set_prompt`` (slow for the
  learned policy: the prompt video is encoded there) and one warm-up ``act`` (then ``reset``),
  while control continues with the old prompt; the new one is swapped in atomically between two
  control steps, and its chunk starts from its first action.
* **Prompt tokens** (``policy:=checkpoint``): the prompt encoder node, given the same checkpoint,
  encodes the prompt when it is set and publishes the tokens latched on
  ``/humanprompt/prompt_tokens`` with the prompt's id and the checkpoint's identity
  (:func:`checkpoint_identity`: a hash of the safetensors header, the file size and mtime). The
  worker installs tokens whose prompt id and checkpoint identity match (``set_encoded``) instead
  of encoding the video again; it waits for them at most ``prompt_tokens_timeout`` s when the prompt
  message says they come from this checkpoint, and otherwise (another checkpoint, an encoder
  without one, a late or malformed message) encodes the prompt itself. Control never waits on it.
* **Control loop** (a thread of its own, never the executor's): every ``1/rate`` s one action of
  the current chunk is published. When ``lookahead`` actions are left, ``act(latest frame,
  proprio)`` is called for the next chunk on a worker thread while the current one keeps running
  (the learned policy
  blends overlapping chunks itself), so the hand does not pause for inference; the new chunk
  follows the current one, as the protocol's contract says. A chunk that is not ready when the
  current one runs out is waited for (counted ``chunks_late``: raise ``lookahead``).
  ``lookahead: 0`` computes the next chunk only when the current one is used up, on the control
  thread (the hand pauses for the inference time).
* **Lockstep** (``lockstep: true``, with the sim driver's lockstep mode): one control step per new
  camera frame stamp instead of one per ``1/rate`` s, and no stale-camera pause; a frame that produced
  no target (no prompt yet) is tried again; each target carries its step's frame stamp. A frame the
  simulator sends again with a stamp already acted on (it resends a step whose command never came,
  e.g. one a holding command node swallowed) is not acted on twice: the same target is published
  again (counted ``frames_repeated``), so a lost target or command cannot stall the graph. The action
  waits for the state stamped exactly like its frame; a frame older than the newest one (late, from
  an earlier step or episode) is dropped (counted ``frames_out_of_order``).
* **Stale camera**: while the newest frame is older than ``max_observation_age`` the node pauses:
  no targets, and the chunk does not advance (the hand holds; it resumes where it stopped). A frame's
  age counts from its ``header.stamp`` (``frame_age_from: stamp``), so frames delivered late (a camera
  resumed after a freeze, a congested link) are stale, and a frame stamped before the newest one is
  dropped (``frames_out_of_order``); ``frame_age_from: arrival`` counts from arrival instead, for a
  camera whose clock is not this machine's.
* ``~/reset`` (std_srvs/Trigger): start the active prompt's episode again (``policy.reset()``).

Kept as one module: one ROS 2 node class per file; the chunk runner, the backend and
the policies it adapts are ROS-free in :mod:`humanprompt_ros.control` and :mod:`humanprompt_ros.policies`.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import Trigger

from humanprompt_ros.action import HandAction
from humanprompt_ros.camera import BadFrame, as_rgb
from humanprompt_ros.config.nodes import PolicyConfig
from humanprompt_ros.control.backend import build_backend
from humanprompt_ros.control.chunk_runner import PolicyRunner
from humanprompt_ros.models.checkpoint import checkpoint_identity
from humanprompt_ros.nodes.runtime import load_node_hand, run_node
from humanprompt_ros.paths import config_path, resolve_checkpoint
from humanprompt_ros.ros import topics
from humanprompt_ros.ros.conversions import action_to_pose_array, joint_positions, matrix_from_pose, msg_to_tokens
from humanprompt_ros.ros.diagnostics import ERROR, OK, WARN, LatencyStats, NodeDiagnostics, RateMeter
from humanprompt_ros.ros.image import captured_monotonic, image_to_numpy
from humanprompt_ros.ros.params import declare_config, watch_config


class PolicyNode(Node):
    def __init__(self):
        super().__init__("policy")
        self.cfg: PolicyConfig = declare_config(self, PolicyConfig, config_path("policy.yaml"), "policy")
        watch_config(self, PolicyConfig, self._on_config)
        self.hand = load_node_hand(self.cfg.hand)
        self.hand.fk(self.hand.neutral())  # warm-up of the kinematics
        t0 = time.perf_counter()
        self.checkpoint_id = ""  # identity of the loaded checkpoint ("" : none, never matches)
        if self.cfg.policy == "checkpoint":
            path = resolve_checkpoint(self.cfg.checkpoint)
            before = checkpoint_identity(path) if path.is_file() else ""
        self.runner = PolicyRunner(
            build_backend(self.cfg, self.hand.name), self.cfg.warmup, lookahead=self.cfg.lookahead
        )
        if self.cfg.policy == "checkpoint" and hasattr(self.runner.template, "set_encoded"):
            after = checkpoint_identity(path)
            self.checkpoint_id = before if before == after else ""  # replaced while loading: trust no tokens
        self.load_s = time.perf_counter() - t0
        self._tokens_cv = threading.Condition()
        self._tokens: dict[str, tuple] = {}  # prompt id → (tokens, skill) from the prompt encoder
        self._lock = threading.Lock()
        self.frame: np.ndarray | None = None
        self.frame_stamp = None
        self.frame_mono: float | None = None
        self.frame_recv_ns = 0  # ROS time the latest frame arrived (latency budget: frame_wait)
        self.frame_take_ns = 0  # ROS time the latest frame was taken for act() (latency budget: target_after_act)
        self.frame_used = True
        self.frame_seq = 0  # frames received (lockstep acts once per frame)
        self.q_stamp_ns = self.base_stamp_ns = -1  # stamps of the latest joint state and wrist pose
        self.q: np.ndarray | None = None
        self.base_pose: np.ndarray | None = None
        self.base_from = "none"
        self.counts = dict(
            frames_received=0,
            frames_used=0,
            frames_dropped_stale=0,
            frames_bad=0,
            frames_repeated=0,
            frames_out_of_order=0,
            targets_published=0,
            chunks=0,
            prompts=0,
            prompt_failures=0,
            pauses=0,
            act_failures=0,
            joint_states_invalid=0,
            prompts_from_tokens=0,
            prompts_encoded_here=0,
            tokens_received=0,
            tokens_ignored=0,
        )
        self.state = "waiting for a prompt"
        self.paused = False
        self.last_problem = ""
        self.inference = LatencyStats(500)
        self.frame_latency = LatencyStats(500)
        self.frame_receive = LatencyStats(2000)  # capture stamp → this node has the frame
        self.frame_wait = LatencyStats(500)  # frame received → taken for a chunk's act()
        self.target_after_act = LatencyStats(500)  # frame taken → its chunk's first target published, less act()
        self.target_rate = RateMeter()
        self.preparing = ""
        self.pub = topics.publisher(self, topics.HAND_TARGET)
        inputs = MutuallyExclusiveCallbackGroup()
        topics.subscribe(self, topics.OBSERVATION, self._on_observation, inputs)
        topics.subscribe(self, topics.JOINT_STATES, self._on_joint_states, inputs)
        self.create_subscription(
            PoseStamped,
            self.cfg.wrist_pose_topic,
            self._on_wrist_pose,
            topics.subscription_qos(topics.JOINT_STATES),
            callback_group=inputs,
        )
        topics.subscribe(self, topics.WRIST_TARGET, self._on_wrist_target, inputs)
        topics.subscribe(self, topics.PROMPT, self._on_prompt, MutuallyExclusiveCallbackGroup())
        if self.checkpoint_id:
            topics.subscribe(self, topics.PROMPT_TOKENS, self._on_tokens, MutuallyExclusiveCallbackGroup())
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=MutuallyExclusiveCallbackGroup())
        self.diag = NodeDiagnostics(
            self,
            self._diagnostics,
            self.cfg.diagnostics_period,
            hardware_id=f"{self.cfg.policy} / {self.hand.name}",
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self._stop = threading.Event()
        self._frame_event = threading.Event()  # lockstep: a camera frame arrived
        self._thread = threading.Thread(target=self._control_loop, name="policy-control", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"ready: backend {self.cfg.policy} (loaded in {self.load_s:.2f} s), hand {self.hand.name!r}, "
            f"{self.cfg.rate:g} Hz; waiting for a prompt on {topics.PROMPT.name}"
        )

    def _on_config(self, cfg: PolicyConfig) -> None:
        self.cfg = cfg
        self.runner.lookahead = cfg.lookahead

    def _problem(self, key: str, msg: str) -> None:
        with self._lock:
            self.counts[key] += 1
            self.last_problem = msg
        self.get_logger().warning(msg, throttle_duration_sec=2.0)

    # -- inputs ---------------------------------------------------------------------------------
    def _on_observation(self, msg: Image) -> None:
        try:
            frame = as_rgb(image_to_numpy(msg))  # mono8 too: every backend takes H×W×3
            if frame.size == 0:
                raise BadFrame(f"empty {msg.encoding} image ({msg.width}x{msg.height})")
        except (ValueError, BadFrame) as exc:
            self._problem("frames_bad", f"dropped an observation: {exc}")
            return
        recv_ns, stamp_ns = self.get_clock().now().nanoseconds, Time.from_msg(msg.header.stamp).nanoseconds
        mono = time.monotonic()
        if stamp_ns > 0:
            self.frame_receive.add((recv_ns - stamp_ns) * 1e-9)
        with self._lock:
            self.counts["frames_received"] += 1
            if (
                (self.cfg.lockstep or self.cfg.frame_age_from == "stamp")
                and self.frame_stamp is not None
                and stamp_ns < Time.from_msg(self.frame_stamp).nanoseconds
            ):
                self.counts["frames_out_of_order"] += 1  # a late frame of an earlier step, episode or moment
                return
            if not self.frame_used:
                self.counts["frames_dropped_stale"] += 1  # replaced before any act() saw it
            self.frame, self.frame_stamp, self.frame_mono, self.frame_used = (
                frame,
                msg.header.stamp,
                captured_monotonic(stamp_ns, recv_ns, mono) if self.cfg.frame_age_from == "stamp" else mono,
                False,
            )
            self.frame_recv_ns = recv_ns
            self.frame_seq += 1
        self._frame_event.set()

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            q = joint_positions(msg, self.hand.joint_names)
        except ValueError as exc:
            self._problem("joint_states_invalid", f"ignored /joint_states: {exc}")
            return
        with self._lock:
            self.q = q
            self.q_stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds

    def _on_wrist_pose(self, msg: PoseStamped) -> None:
        try:
            pose = matrix_from_pose(msg.pose, "wrist pose")
        except ValueError:
            return
        with self._lock:
            self.base_pose, self.base_from = pose, "measured"
            self.base_stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds

    def _on_wrist_target(self, msg: PoseStamped) -> None:
        with self._lock:
            if self.base_from == "measured":
                return
        try:
            pose = matrix_from_pose(msg.pose, "wrist target")
        except ValueError:
            return
        with self._lock:
            self.base_pose, self.base_from = pose, "commanded"

    def _on_tokens(self, msg: Float32MultiArray) -> None:
        """Prompt tokens from the prompt encoder: kept when they come from this node's checkpoint."""
        try:
            meta, tokens = msg_to_tokens(msg)
        except ValueError as exc:
            self._problem("tokens_ignored", f"ignored {topics.PROMPT_TOKENS.name}: {exc}")
            return
        if tokens is None:
            return  # the prompt was cleared
        if meta["checkpoint"] != self.checkpoint_id:
            self._problem(
                "tokens_ignored",
                f"ignored the prompt encoder's tokens for {meta['prompt_id']!r}: "
                "encoded with another checkpoint (this node encodes that prompt "
                "itself)",
            )
            return
        with self._lock:
            self.counts["tokens_received"] += 1
        with self._tokens_cv:
            self._tokens = {**dict(list(self._tokens.items())[-3:]), meta["prompt_id"]: (tokens, meta["skill"])}
            self._tokens_cv.notify_all()

    def _wait_tokens(self, prompt: dict) -> tuple | None:
        """(tokens, skill) of ``prompt`` from the prompt encoder, waiting up to ``prompt_tokens_timeout``
        when the prompt message says this checkpoint encoded it (worker thread only)."""
        if not self.checkpoint_id:
            return None
        pid = str(prompt.get("id"))
        coming = prompt.get("checkpoint") == self.checkpoint_id
        deadline = time.monotonic() + (self.cfg.prompt_tokens_timeout if coming else 0.0)
        with self._tokens_cv:
            while pid not in self._tokens:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._tokens_cv.wait(left)
            return self._tokens[pid]

    def _on_prompt(self, msg: String) -> None:
        try:
            data = json.loads(msg.data) if msg.data else {}
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self._problem("prompt_failures", f"unreadable prompt message ({exc}): treated as no prompt")
            data = {}
        pid = str(data.get("id") or "")
        if not pid:
            if self.runner.active:
                self.get_logger().info("prompt cleared: stopping")
            self.runner.clear()
            self.preparing = ""
            return
        if pid == self.runner.prompt_id:
            return
        if not data.get("path"):
            self._problem("prompt_failures", f"prompt {pid!r} has no path: ignored")
            return
        generation = self.runner.next_generation()
        self.preparing = pid
        threading.Thread(target=self._prepare, args=(data, generation), name="policy-set-prompt", daemon=True).start()

    def _prepare(self, prompt: dict, generation: int) -> None:
        t0 = time.perf_counter()
        encoded, how = self._wait_tokens(prompt), "set_prompt"
        policy = None
        if encoded is not None:
            try:
                policy = self.runner.prepare(prompt, self._proprio(), encoded)
                how = "tokens from the prompt encoder"
            except Exception as exc:  # noqa: BLE001 - unusable tokens: encode the prompt here instead
                self._problem(
                    "tokens_ignored",
                    f"prompt {prompt.get('id')!r}: the prompt encoder's tokens are "
                    f"unusable ({exc}); encoding the prompt here",
                )
        try:
            if policy is None:
                policy = self.runner.prepare(prompt, self._proprio())
        except Exception as exc:  # noqa: BLE001 - the backend's reason, reported; the old prompt stays
            self._problem(
                "prompt_failures", f"prompt {prompt.get('id')!r} not usable by the {self.cfg.policy} policy: {exc}"
            )
            if self.preparing == prompt.get("id"):
                self.preparing = ""
            return
        if self.runner.swap(prompt, policy, generation):
            with self._lock:
                self.counts["prompts"] += 1
                if self.checkpoint_id:
                    self.counts["prompts_encoded_here" if how == "set_prompt" else "prompts_from_tokens"] += 1
            self.preparing = ""
            self.get_logger().info(
                f"prompt {prompt.get('id')!r} active ({prompt.get('task') or 'video'}; "
                f"{how} + warm-up {time.perf_counter() - t0:.2f} s)"
            )

    def _on_reset(self, _req, resp):
        resp.success = self.runner.reset()
        resp.message = "policy reset: the prompt's episode starts again" if resp.success else "no active prompt"
        return resp

    # -- control ----------------------------------------------------------------------------------
    def _proprio(self) -> np.ndarray:
        with self._lock:
            q, base = self.q, self.base_pose
        if q is None:
            return np.zeros(24)
        return self.hand.fk(q, base_pose=base).to_array()

    def _latest_frame(self):
        now_ns = self.get_clock().now().nanoseconds
        with self._lock:
            self.frame_used = True
            self.counts["frames_used"] += 1
            if self.frame_recv_ns:
                self.frame_wait.add((now_ns - self.frame_recv_ns) * 1e-9)
            self.frame_take_ns = now_ns
            return self.frame, self.frame_stamp

    def _hold_reason(self) -> str | None:
        if not self.runner.active:
            return f"waiting for a prompt ({self.preparing!r} being prepared)" if self.preparing else "no active prompt"
        with self._lock:
            mono, q = self.frame_mono, self.q
        if self.cfg.require_joint_states and q is None:
            return "waiting for /joint_states"
        if mono is None:
            return f"waiting for camera frames on {topics.OBSERVATION.name}"
        age = time.monotonic() - mono
        if age > self.cfg.max_observation_age and not self.cfg.lockstep:
            return f"paused: observation stale {age:.2f} s"
        return None

    def _lockstep_loop(self) -> None:
        """One action per new frame (a lockstep simulator steps once per command, then sends a frame).
        The simulator stamps a step's joint state, wrist pose and frame alike: the action waits until the
        state of the frame's step has arrived (DDS does not order topics). A frame that produced no action
        (no prompt yet, waiting for joint states) is tried again; its target carries the frame's stamp,
        so the simulator can tell a repeated step's target from the next step's."""
        done_seq, done_ns, done_msg = 0, -1, None
        while not self._stop.is_set():
            self._frame_event.wait(0.02)
            self._frame_event.clear()
            with self._lock:
                seq = self.frame_seq
                frame_ns = Time.from_msg(self.frame_stamp).nanoseconds if self.frame_stamp is not None else 0
                # the state of exactly this frame's step: a newer state means this frame is stale
                # (its step's successor is on its way), an older one that the state is
                state_ready = self.q_stamp_ns == frame_ns and (
                    self.base_from != "measured" or self.base_stamp_ns == frame_ns
                )
                frame_stamp = self.frame_stamp
            if seq == done_seq or not state_ready:
                continue
            if frame_ns == done_ns:
                # the simulator sent this step again, so its command never reached it: the same
                # target again (no new action: the chunk does not advance)
                done_seq = seq
                self.pub.publish(done_msg)
                with self._lock:
                    self.counts["frames_repeated"] += 1
                continue
            try:
                msg = self._control_step(step_stamp=frame_stamp)
                if msg is not None:  # a step that published nothing (a hold) keeps the last step's target
                    done_seq, done_ns, done_msg = seq, frame_ns, msg
            except Exception as exc:  # noqa: BLE001 - a failing act(): hold, report, keep the node up
                self._problem("act_failures", f"policy step failed: {type(exc).__name__}: {exc}")
                self._stop.wait(0.1)

    def _control_loop(self) -> None:
        if self.cfg.lockstep:
            return self._lockstep_loop()
        period = 1.0 / self.cfg.rate
        next_t = time.monotonic()
        while not self._stop.is_set():
            next_t += period
            try:
                self._control_step()
            except Exception as exc:  # noqa: BLE001 - a failing act(): hold, report, keep the node up
                self._problem("act_failures", f"policy step failed: {type(exc).__name__}: {exc}")
            delay = next_t - time.monotonic()
            if delay < -period:
                next_t = time.monotonic()  # fell behind (slow inference): do not burst
            elif delay > 0:
                self._stop.wait(delay)

    def _control_step(self, step_stamp=None) -> PoseArray | None:
        """One control period; the hand target published, or None. ``step_stamp`` (lockstep): the
        target carries the stamp of the frame of this step, not that of the frame its chunk came from."""
        reason = self._hold_reason()
        if reason is not None:
            if not self.paused:
                self.paused = True
                with self._lock:
                    self.counts["pauses"] += 1
                if self.runner.active:
                    self.get_logger().warning(reason)
                self.state = reason
                self.diag.publish_now()
            self.state = reason
            return None
        action, stamp, dt = self.runner.step(self._latest_frame, self._proprio)
        if dt is not None:
            self.inference.add(dt)
            with self._lock:
                self.counts["chunks"] += 1
        if action is None:
            return None
        if self.paused:
            self.paused = False
            self.state = "running"
            self.get_logger().info(f"running: prompt {self.runner.prompt_id!r}")
            self.diag.publish_now()
        target_stamp = step_stamp or stamp or self.get_clock().now().to_msg()
        msg = action_to_pose_array(HandAction.from_array(action, self.hand.mask), self.cfg.frame_id, target_stamp)
        self.pub.publish(msg)
        if dt is not None and stamp is not None:  # a fresh chunk: camera frame → hand target latency
            now_ns = self.get_clock().now().nanoseconds
            self.frame_latency.add((now_ns - Time.from_msg(stamp).nanoseconds) * 1e-9)
            if self.frame_take_ns:
                self.target_after_act.add((now_ns - self.frame_take_ns) * 1e-9 - dt)
        self.target_rate.tick()
        with self._lock:
            self.counts["targets_published"] += 1
        return msg

    # -- diagnostics ------------------------------------------------------------------------------
    def _diagnostics(self):
        with self._lock:
            values = {
                "state": self.state,
                "backend": self.cfg.policy,
                "prompt": self.runner.prompt_id,
                "preparing": self.preparing,
                **self.counts,
                "last_problem": self.last_problem,
                "wrist_pose_source": self.base_from,
                "observation_age_s": -1.0 if self.frame_mono is None else time.monotonic() - self.frame_mono,
            }
        values.update(self.runner.counts)
        values["lookahead"] = self.runner.lookahead
        values["target_rate_hz"] = self.target_rate.rate()
        values["backend_load_s"] = self.load_s
        values["checkpoint_identity"] = self.checkpoint_id
        for k, v in self.inference.summary_ms().items():
            values[f"inference_{k}_ms" if k != "n" else "inference_samples"] = v
        for k, v in self.frame_latency.summary_ms().items():
            if k != "n":
                values[f"frame_to_target_{k}_ms"] = v
        for name, stats in (
            ("frame_receive", self.frame_receive),
            ("frame_wait", self.frame_wait),
            ("target_after_act", self.target_after_act),
        ):
            for k, v in stats.summary_ms().items():
                if k != "n":
                    values[f"{name}_{k}_ms"] = v
        if not self._thread.is_alive():
            return ERROR, "control thread stopped", values
        if self.paused and self.runner.active:
            return WARN, self.state, values
        return OK, self.state, values

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: PolicyNode(), "policy", args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
