"""Policy node: no motion without a prompt, chunks executed step by step at the control rate,
targets stamped with the observation used, pause on a stale camera, clear, new prompt; the
checkpoint backend's startup errors; the ROS-free runner's atomic prompt swap; prompt tokens
encoded once by the prompt encoder (``LearnedPolicy.set_encoded``, ``/humanprompt/prompt_tokens``)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers.episodes import make_episode
from helpers.ros import REPO_ROOT, RosProcesses, require_rclpy, robot_feed
from humanprompt_ros.config.nodes import load_policy_config
from humanprompt_ros.paths import config_path


@pytest.fixture
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


def test_shipped_config_loads():
    cfg = load_policy_config(config_path("policy.yaml"))
    assert cfg.policy == "checkpoint" and cfg.checkpoint == "" and cfg.rate == 10.0 and cfg.chunk == 8
    from humanprompt_ros.paths import resolve_checkpoint, share_dir

    assert resolve_checkpoint(cfg.checkpoint) == share_dir() / "models" / "policy.safetensors"


def test_the_guidance_parameter_reaches_the_checkpoint_or_is_refused_with_the_reason(checkpoint):
    """guidance: 0 keeps the checkpoint's own scale; a scale for a head trained without a null condition is a
    start-up error that says why (the node refuses to start rather than ignore the setting)."""
    import dataclasses

    from humanprompt_ros.config.nodes import StartupError
    from humanprompt_ros.control.backend import build_backend

    cfg = dataclasses.replace(load_policy_config(config_path("policy.yaml")), checkpoint=str(checkpoint))
    assert cfg.guidance == 0.0
    assert build_backend(cfg, "allegro_right").model.head.cfg.guidance == 1.0
    with pytest.raises(StartupError, match="needs a head trained with global_dropout"):
        build_backend(dataclasses.replace(cfg, guidance=2.0), "allegro_right")


def test_set_encoded_installs_tokens_and_refuses_bad_ones(checkpoint, tmp_path):
    import torch

    from humanprompt_ros.policies.learned import LearnedPolicy
    from humanprompt_ros.video import write_video

    rng = np.random.default_rng(0)
    video = write_video(
        tmp_path / "p.mp4", [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(6)], fps=10
    )
    frame, proprio = np.zeros((32, 32, 3), np.uint8), np.zeros(24)
    encoder, policy = LearnedPolicy(checkpoint, execute=2), LearnedPolicy(checkpoint, execute=2)
    tokens, skill = encoder.encode(video)
    assert tokens.ndim == 3 and tokens.shape[0] == 1 and skill is None
    policy.set_encoded(tokens.numpy())  # as received over ROS: a float32 array
    encoder.set_prompt(video)
    np.testing.assert_allclose(policy.act(frame, proprio), encoder.act(frame, proprio), atol=1e-5)  # same as encoding
    policy.act(frame, proprio)
    assert policy.t == 4
    kept = policy.tokens.clone()
    _, s, d = tokens.shape
    for bad, why in [
        (
            tokens[0],
            rf"shape \({s}, {d}\) do not fit this checkpoint, which encodes a prompt as "
            rf"\(1, {s}, {d}\)",
        ),
        (torch.zeros(1, s + 1, d), "do not fit this checkpoint"),
        (torch.zeros(1, s, d + 1), "do not fit this checkpoint"),
        (torch.zeros(2, s, d), "do not fit this checkpoint"),
        (torch.full((1, s, d), float("nan")), "NaN or inf"),
        ("tokens", "not an array of numbers|do not fit"),
    ]:
        with pytest.raises(ValueError, match=why):
            policy.set_encoded(bad)
        assert torch.equal(policy.tokens, kept) and policy.t == 4  # the old prompt stays, not even reset
    policy.set_encoded(tokens)  # a tensor works too, and it resets the episode
    assert policy.t == 0


def test_checkpoint_identity_follows_the_file(checkpoint, tmp_path):
    import os
    import shutil

    from humanprompt_ros.models.checkpoint import checkpoint_identity

    ident = checkpoint_identity(checkpoint)
    assert ident == checkpoint_identity(str(checkpoint)) and len(ident) == 16
    copy = shutil.copy2(checkpoint, tmp_path / "same.safetensors")  # same content and mtime: the same checkpoint
    assert checkpoint_identity(copy) == ident
    os.utime(copy, ns=(0, 12345))  # rewritten (e.g. retrained over the same path): another one
    assert checkpoint_identity(copy) != ident


def test_runner_swaps_prompts_atomically(tmp_path):
    from humanprompt_ros.control.chunk_runner import PolicyRunner
    from humanprompt_ros.policies import make_policy

    a = make_episode(tmp_path / "a", steps=20)
    b = make_episode(tmp_path / "b", steps=20)
    runner = PolicyRunner(make_policy("replay", chunk=4))
    frame = lambda: (np.zeros((8, 8, 3), np.uint8), "stamp")  # noqa: E731
    proprio = lambda: np.zeros(24)  # noqa: E731
    assert runner.step(frame, proprio)[0] is None  # no prompt: no action
    g = runner.next_generation()
    assert runner.swap({"id": "a", "path": str(a)}, runner.prepare({"path": str(a)}), g)
    xs = [runner.step(frame, proprio)[0][0] for _ in range(6)]
    assert np.allclose(xs, np.arange(6) * 0.001)  # the chunk is executed step by step, act() again after 4
    g_old = runner.next_generation()
    g_new = runner.next_generation()
    assert not runner.swap({"id": "stale", "path": str(b)}, runner.prepare({"path": str(b)}), g_old)
    assert runner.swap({"id": "b", "path": str(b)}, runner.prepare({"path": str(b)}), g_new)
    assert runner.prompt_id == "b" and runner.step(frame, proprio)[0][0] == 0.0  # starts at its first action
    runner.clear()
    assert runner.step(frame, proprio)[0] is None


class _SlowReplay:
    """The replay backend, recording each act call's (thread name, frame stamp, proprio[0], t at the call).
    With ``gated``, an act() on the lookahead worker ("policy-next-chunk") takes as long as it takes the control
    thread to wait for it: it blocks until that thread joins the worker (see :func:`_open_on_join`), so the
    chunk is late by construction, whatever the machine's speed."""

    def __init__(self, chunk: int = 4, fail_at: int | None = None, gated: bool = False):
        from humanprompt_ros.policies import make_policy

        self.inner = make_policy("replay", chunk=chunk)
        self.fail_at, self.calls, self.gated = fail_at, [], gated
        self.gates: dict = {}  # worker thread -> Event (shared by the copies the runner makes)

    def __copy__(self):
        import copy

        other = type(self).__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.inner, other.calls = copy.copy(self.inner), []
        return other

    def set_prompt(self, prompt):
        self.inner.set_prompt(prompt)

    def reset(self):
        self.inner.reset()

    def act(self, frame, proprio):
        me = threading.current_thread()
        self.calls.append((me.name, frame, float(proprio[0]), self.inner.t))
        if self.fail_at is not None and len(self.calls) > self.fail_at:
            raise RuntimeError("inference failed")
        if self.gated and me.name == "policy-next-chunk":
            assert self.gates.setdefault(me, threading.Event()).wait(30), "nobody waited for the worker"
        return self.inner.act(frame, proprio)


def _open_on_join(runner, backend) -> None:
    """Make the worker the runner just started (if any) finish only once someone waits for it (join)."""
    th = runner._pending
    if th is None or "join" in vars(th):
        return
    join = th.join

    def join_opening(timeout=None):
        backend.gates.setdefault(th, threading.Event()).set()
        join(timeout)

    th.join = join_opening


def _runner_with(tmp_path, backend, lookahead, steps=40):
    from humanprompt_ros.control.chunk_runner import PolicyRunner

    ep = make_episode(tmp_path / "ep", steps=steps)
    runner = PolicyRunner(backend, warmup=False, lookahead=lookahead)
    g = runner.next_generation()
    policy = runner.prepare({"path": str(ep)})
    assert runner.swap({"id": "ep", "path": str(ep)}, policy, g)
    return runner, policy


def test_runner_computes_the_next_chunk_ahead_without_stalling(tmp_path):
    """lookahead: the next chunk is computed on a worker from the freshest frame and proprio while
    the current one runs, appended after it (no action skipped or repeated), and control never waits."""
    runner, policy = _runner_with(tmp_path, _SlowReplay(chunk=4), lookahead=2)
    clock = {"n": 0}

    def frame():
        return np.zeros((8, 8, 3), np.uint8), f"frame{clock['n']}"

    def proprio():
        return np.full(24, float(clock["n"]))

    xs, stamps = [], []
    for n in range(14):
        clock["n"] = n
        action, stamp, _ = runner.step(frame, proprio)
        xs.append(action[0])
        stamps.append(stamp)
        runner.wait_pending()  # the control period, longer than the inference: the next chunk is in time
    assert np.allclose(xs, np.arange(14) * 0.001), xs  # contiguous: each chunk follows the previous one
    runner.wait_pending()
    calls = policy.calls
    assert calls[0][0] == threading.current_thread().name  # nothing queued yet: computed here
    assert all(c[0] == "policy-next-chunk" for c in calls[1:])
    # requested after the 2nd action of each chunk (2 left), with the frame and proprio of that moment
    assert [c[2] for c in calls] == [0.0, 1.0, 5.0, 9.0, 13.0]
    assert [c[3] for c in calls] == [0, 4, 8, 12, 16]  # one act() per chunk, in order
    assert stamps[:4] == ["frame0"] * 4 and stamps[4:8] == ["frame1"] * 4 and stamps[8:12] == ["frame5"] * 4
    assert runner.counts["chunks_ahead"] == 4 and runner.counts["chunks_late"] == 0


def test_runner_waits_for_a_late_chunk_and_lookahead_zero_computes_when_used_up(tmp_path):
    backend = _SlowReplay(chunk=3, gated=True)
    runner, policy = _runner_with(tmp_path, backend, lookahead=1)
    frame = lambda: (np.zeros((8, 8, 3), np.uint8), "s")  # noqa: E731
    proprio = lambda: np.zeros(24)  # noqa: E731
    xs = []
    for _ in range(7):  # the worker finishes only when the control thread waits for it: always late
        xs.append(runner.step(frame, proprio)[0][0])
        _open_on_join(runner, backend)
    assert np.allclose(xs, np.arange(7) * 0.001)
    # chunk 1 at once; chunks 2 and 3 requested with 1 action left, waited for once the queue ran dry
    assert runner.counts["chunks_late"] == 2 and runner.counts["chunks_ahead"] == 2
    assert [c[0] for c in policy.calls] == [threading.current_thread().name] + ["policy-next-chunk"] * 2
    runner0, policy0 = _runner_with(tmp_path / "0", _SlowReplay(chunk=3), lookahead=0)
    xs = [runner0.step(frame, proprio)[0][0] for _ in range(7)]
    assert np.allclose(xs, np.arange(7) * 0.001)
    assert all(c[0] == threading.current_thread().name for c in policy0.calls)  # the old behaviour
    assert [c[3] for c in policy0.calls] == [0, 3, 6]


def test_runner_drops_a_chunk_computed_for_a_cleared_reset_or_replaced_prompt(tmp_path):
    from humanprompt_ros.control.chunk_runner import PolicyRunner

    frame = lambda: (np.zeros((8, 8, 3), np.uint8), "s")  # noqa: E731
    proprio = lambda: np.zeros(24)  # noqa: E731
    backend = _SlowReplay(chunk=4, gated=True)  # each worker runs until someone waits for it
    runner, policy = _runner_with(tmp_path, backend, lookahead=3)
    runner.step(frame, proprio)  # first chunk; the next one is being computed on the worker
    _open_on_join(runner, backend)
    assert runner.computing
    assert runner.reset()  # waits for the worker, then starts the episode again
    assert not runner.computing and not runner.queue
    b = make_episode(tmp_path / "b", steps=20)
    policy_b = runner.prepare({"path": str(b)})
    assert runner.step(frame, proprio)[0][0] == 0.0 and policy.inner.t == 4  # not 12: reset after the worker
    _open_on_join(runner, backend)
    old_worker = runner._pending
    assert runner.computing
    g = runner.next_generation()
    runner.swap({"id": "b", "path": str(b)}, policy_b, g)  # while the old prompt's next chunk is computed
    assert runner.step(frame, proprio)[0][0] == 0.0  # the new prompt starts at its first action
    old_worker.join()
    runner.wait_pending()
    assert runner.counts["chunks_dropped"] == 1  # the old prompt's chunk, finished after the swap
    assert runner.counts["chunks_late"] == 0  # the new prompt never waited for the old prompt's worker
    runner.clear()
    assert runner.step(frame, proprio)[0] is None
    assert isinstance(runner, PolicyRunner)


class _AligningReplay(_SlowReplay):
    """A backend whose act() takes lag= (the observation is lag actions before the chunk)."""

    def act(self, frame, proprio, lag=0):
        self.calls.append(("lag", lag))
        return self.inner.act(frame, proprio)


def test_runner_tells_an_aligning_backend_how_far_ahead_it_plans(tmp_path):
    runner, policy = _runner_with(tmp_path, _AligningReplay(chunk=4), lookahead=3)
    frame = lambda: (np.zeros((8, 8, 3), np.uint8), "s")  # noqa: E731
    proprio = lambda: np.zeros(24)  # noqa: E731
    for _ in range(2):
        runner.step(frame, proprio)
        runner.wait_pending()
    # first chunk at once; the next requested as the first of the 3 last actions starts: its plan's step 0
    # is that action, so the chunk after the 3 begins at plan step 4
    assert policy.calls == [("lag", 0), ("lag", 4)]


def test_runner_reports_a_worker_failure_on_the_next_step(tmp_path):
    runner, _ = _runner_with(tmp_path, _SlowReplay(chunk=4, fail_at=1), lookahead=2)
    frame = lambda: (np.zeros((8, 8, 3), np.uint8), "s")  # noqa: E731
    proprio = lambda: np.zeros(24)  # noqa: E731
    runner.step(frame, proprio)
    runner.step(frame, proprio)  # 2 left: the worker's act() fails
    runner.wait_pending()
    with pytest.raises(RuntimeError, match="inference failed"):
        runner.step(frame, proprio)
    assert runner.step(frame, proprio)[0][0] == pytest.approx(0.002)  # reported once; the queued actions go on


def _start(procs, *params):
    args = ["-m", "humanprompt_ros.nodes.policy", "--ros-args", "-p", "policy:=replay"]
    for p in params:
        args += ["-p", p]
    return procs.start("policy", *args)


def policy_statuses(diag, since: float = 0.0) -> list[dict]:
    """The policy node's diagnostics received after ``since`` (monotonic), as dicts."""
    return [
        {"_message": st.message, **{kv.key: kv.value for kv in st.values}}
        for _, arr in diag.since(since)
        for st in arr.status
        if st.name == "policy"
    ]


def wait_policy_status(peer, diag, predicate, timeout: float, what: str, since: float = 0.0) -> dict:
    return peer.wait_until(lambda: next((d for d in policy_statuses(diag, since) if predicate(d)), None), timeout, what)


def _policy_rig(procs, peer, *params):
    """A replay policy node with ``params`` and the peer's side of it: (node, hand-target recorder, and
    publishers of observations, joint states and prompts)."""
    from humanprompt_ros.ros import topics

    node = _start(procs, *params)
    return (
        node,
        peer.record(topics.HAND_TARGET),
        peer.publisher(topics.OBSERVATION),
        peer.publisher(topics.JOINT_STATES),
        peer.publisher(topics.PROMPT),
    )


@pytest.mark.ros
@require_rclpy()
def test_checkpoint_backend_startup_errors(tmp_path, ros_env):
    garbage = tmp_path / "bad.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    _checkpoint_errors(ros_env, tmp_path, garbage)


def _checkpoint_errors(env, tmp_path, garbage):
    for ckpt, why in ((tmp_path / "missing.safetensors", "no such checkpoint file"), (garbage, "checkpoint")):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "humanprompt_ros.nodes.policy",
                "--ros-args",
                "-p",
                "policy:=checkpoint",
                "-p",
                f"checkpoint:={ckpt}",
            ],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 2, out.stderr
        assert "[policy] cannot start:" in out.stderr and why in out.stderr and str(ckpt) in out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.ros
@require_rclpy()
def test_policy_node_over_dds(tmp_path, ros_env, peer):
    from std_msgs.msg import String

    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import joint_state, pose_array_to_action
    from humanprompt_ros.ros.image import numpy_to_image

    ep = make_episode(tmp_path / "ep", steps=60)
    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    diag = peer.record(topics.DIAGNOSTICS)
    with RosProcesses(ros_env) as procs:
        node, targets, obs_pub, js_pub, prompt_pub = _policy_rig(
            procs, peer, "chunk:=4", "rate:=20.0", "diagnostics_period:=0.2"
        )
        sent_stamps = []
        feeding = threading.Event()
        feeding.set()
        stop = threading.Event()

        def feed():
            frame = np.zeros((8, 8, 3), np.uint8)
            while not stop.wait(1 / 30):
                stamp = peer.now_msg()
                js_pub.publish(joint_state(hand.joint_names, hand.neutral(), stamp))
                if feeding.is_set():
                    obs_pub.publish(numpy_to_image(frame, "rgb8", stamp=stamp))
                    sent_stamps.append((stamp.sec, stamp.nanosec))

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            peer.wait_for_subscription(obs_pub, timeout=60)
            peer.wait_for_subscription(prompt_pub, timeout=10)
            # no prompt: no motion, by the node's own count, once it has had frames
            status = wait_policy_status(peer, diag, lambda d: int(d["frames_received"]) > 0, 30, "frames received")
            assert status["_message"] == "no active prompt" and status["targets_published"] == "0", status
            assert len(targets) == 0
            prompt_pub.publish(String(data=json.dumps({"id": "ep@1", "path": str(ep)})))
            peer.wait_until(lambda: len(targets) >= 12, 20, "12 hand targets")
            msgs = targets.snapshot()
            xs = [pose_array_to_action(m).wrist_pos[0] for _, m in msgs]
            assert np.allclose(np.diff(xs[:12]), 0.001), xs[:12]  # step by step, no skipped action
            assert xs[0] == pytest.approx(0.0)
            a = pose_array_to_action(msgs[0][1])
            assert a.mask.tolist() == [True, True, True, True, False]  # the Allegro hand has no little finger
            assert all((m.header.stamp.sec, m.header.stamp.nanosec) in sent_stamps for _, m in msgs)
            # camera stops: targets stop (the chunk does not advance); it returns: continue where it stopped.
            # Judged by the node's own count of targets: the same in two of its diagnostics while paused
            feeding.clear()
            t_stop = time.monotonic()
            time.sleep(0.1)  # the feeder's current iteration ends: no frame is sent after this
            n_sent = len(sent_stamps)
            # paused with every frame sent already received: a frame still in flight (a loaded machine delays
            # delivery) would make the camera fresh again and rightly resume the chunk; after 3 s, any pause
            paused = wait_policy_status(
                peer,
                diag,
                lambda d: (
                    d["_message"].startswith("paused: observation stale")
                    and (int(d["frames_received"]) >= n_sent or time.monotonic() > t_stop + 3.0)
                ),
                10,
                "the policy paused on a stale camera, every frame sent received",
                since=t_stop,
            )
            t_paused = time.monotonic()
            later = wait_policy_status(peer, diag, lambda d: True, 10, "later diagnostics", since=t_paused)
            assert later["_message"].startswith("paused") and later["targets_published"] == paused["targets_published"]
            n_before = int(paused["targets_published"])
            peer.wait_until(lambda: len(targets) == n_before, 10, "every target published before the pause")
            x_last = pose_array_to_action(targets.last()[1]).wrist_pos[0]
            feeding.set()
            peer.wait_until(lambda: len(targets) > n_before + 2, 10, "targets after the camera returned")
            x_next = pose_array_to_action(targets.snapshot()[n_before][1]).wrist_pos[0]
            assert x_next == pytest.approx(x_last + 0.001)
            # clear: stop at once; a new prompt starts at its first action
            prompt_pub.publish(String(data=json.dumps({"id": ""})))
            # timed from the node's own word that it cleared, not from the publish: on a loaded machine the
            # clear itself can take a while to arrive; a target already on the wire may still land just after
            t_clear = node.wait_for_log("prompt cleared: stopping", 10)
            cleared = wait_policy_status(
                peer,
                diag,
                lambda d: d["_message"] == "no active prompt",
                10,
                "diagnostics: no active prompt",
                since=t_clear,
            )
            later = wait_policy_status(peer, diag, lambda d: True, 10, "later diagnostics", since=time.monotonic())
            assert later["targets_published"] == cleared["targets_published"], node.log()
            prompt_pub.publish(String(data=json.dumps({"id": "ep@2", "path": str(ep)})))
            t_new = time.monotonic()
            peer.wait_until(lambda: targets.since(t_new), 10, "targets for the new prompt")
            assert pose_array_to_action(targets.since(t_new)[0][1]).wrist_pos[0] == pytest.approx(0.0)
            assert node.returncode is None, node.log()
        finally:
            stop.set()
            feeder.join()


@pytest.mark.ros
@require_rclpy()
def test_bad_frames_are_dropped_counted_and_never_taken_as_fresh(tmp_path, ros_env, peer):
    """Frames the policy node cannot read (an unsupported encoding, data that does not match the image's size,
    an empty image) are dropped and counted ``frames_bad``, and never refresh the camera: with only those the
    node pauses as on a stale camera, and the chunk does not advance. A mono8 frame of another size is used.
    Frames delivered long after their capture stamp are stale too."""
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import joint_state
    from humanprompt_ros.ros.image import numpy_to_image

    def yuv422(stamp):
        msg = Image(height=4, width=4, encoding="yuv422", step=8)
        msg.data.frombytes(bytes(32))
        msg.header.stamp = stamp
        return msg

    def short_data(stamp):
        msg = numpy_to_image(np.zeros((8, 8, 3), np.uint8), "rgb8", stamp=stamp)
        msg.height = 9  # the data holds 8 rows
        return msg

    def empty(stamp):
        return numpy_to_image(np.zeros((0, 0, 3), np.uint8), "rgb8", stamp=stamp)

    def good(stamp):
        return numpy_to_image(np.zeros((8, 8, 3), np.uint8), "rgb8", stamp=stamp)

    def mono(stamp):
        return numpy_to_image(np.zeros((48, 64), np.uint8), "mono8", stamp=stamp)

    def late(stamp):  # good pixels delivered 0.6 s after their capture (a camera resumed after a freeze)
        ns = stamp.sec * 1_000_000_000 + stamp.nanosec - 600_000_000
        return good(type(stamp)(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000))

    ep = make_episode(tmp_path / "ep", steps=200)
    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    diag = peer.record(topics.DIAGNOSTICS)
    with RosProcesses(ros_env) as procs:
        node, targets, obs_pub, js_pub, prompt_pub = _policy_rig(
            procs, peer, "chunk:=4", "rate:=20.0", "diagnostics_period:=0.2"
        )
        make = [good]
        stop = threading.Event()

        def feed():
            while not stop.wait(1 / 30):
                stamp = peer.now_msg()
                js_pub.publish(joint_state(hand.joint_names, hand.neutral(), stamp))
                obs_pub.publish(make[0](stamp))

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            peer.wait_for_subscription(obs_pub, timeout=60)
            peer.wait_for_subscription(prompt_pub, timeout=10)
            prompt_pub.publish(String(data=json.dumps({"id": "ep@1", "path": str(ep)})))
            peer.wait_until(lambda: len(targets) >= 4, 20, f"hand targets from good frames\n{node.log()}")
            bad_before = 0
            for kind, why in (
                (yuv422, "unsupported image encoding 'yuv422'"),
                (short_data, "data has 192 bytes"),
                (empty, "empty rgb8 image (0x0)"),
            ):
                make[0] = kind
                t0 = time.monotonic()
                status = wait_policy_status(
                    peer,
                    diag,
                    lambda d, why=why: why in d["last_problem"] and d["_message"].startswith("paused: observation"),
                    10,
                    f"{kind.__name__} frames dropped and the node paused",
                    since=t0,
                )
                assert int(status["frames_bad"]) > bad_before, status
                bad_before = int(status["frames_bad"])
                later = wait_policy_status(
                    peer,
                    diag,
                    lambda d, s=status: (
                        d["_message"].startswith("paused") and int(d["frames_bad"]) > int(s["frames_bad"])
                    ),
                    10,
                    "later diagnostics, still paused",
                    since=time.monotonic(),
                )
                assert later["targets_published"] == status["targets_published"], later  # the chunk holds
            n = len(targets)
            make[0] = mono  # mono8, 64x48: converted to RGB and used; control resumes
            t0 = time.monotonic()
            peer.wait_until(lambda: len(targets) > n + 2, 10, f"targets from mono8 frames\n{node.log()}")
            running = wait_policy_status(peer, diag, lambda d: d["_message"] == "running", 10, "running", since=t0)
            later = wait_policy_status(peer, diag, lambda d: True, 10, "later diagnostics", since=time.monotonic())
            assert later["frames_bad"] == running["frames_bad"] and later["act_failures"] == "0", later  # all used
            # readable frames that arrive 0.6 s after their stamp are stale (max_observation_age 0.25 s): paused
            make[0] = late
            t_late = time.monotonic()
            status = wait_policy_status(
                peer,
                diag,
                lambda d: d["_message"].startswith("paused: observation stale"),
                10,
                "the node paused on frames delivered late",
                since=time.monotonic(),
            )
            later = wait_policy_status(  # 1 s on: late frames stamped after the last good one are in order
                peer,
                diag,
                lambda d, s=status: int(d["frames_received"]) > int(s["frames_received"]),
                10,
                "later diagnostics with more late frames received",
                since=max(time.monotonic(), t_late + 1.0),
            )
            assert later["_message"].startswith("paused: observation stale"), later
            assert later["targets_published"] == status["targets_published"], later
            assert later["frames_bad"] == status["frames_bad"], later  # late is not bad: readable, just old
            # the first 0.6 s of late frames were stamped before the last mono one: dropped as out of order
            assert int(later["frames_out_of_order"]) > int(running["frames_out_of_order"]), later
            assert node.returncode is None, node.log()
        finally:
            stop.set()
            feeder.join()


@pytest.mark.ros
@require_rclpy()
def test_lockstep_policy_node_acts_once_per_frame_stamp(tmp_path, ros_env, peer):
    """lockstep: one action per new frame stamp, in order, each with the state of its own step and stamped
    like its frame; the same step sent again (a lockstep simulator's resend, same stamp: its command never
    came) gets the same target again, never the chunk's next action; a late frame of an earlier step is
    never acted on, whatever the timing."""
    from std_msgs.msg import String

    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.ros.conversions import joint_state, pose_array_to_action
    from humanprompt_ros.ros.image import numpy_to_image

    def ns(stamp) -> int:
        return stamp.sec * 1_000_000_000 + stamp.nanosec

    def by_stamp() -> dict[int, list[float]]:
        """targets so far: the stamp → the wrist x of each target with it (in arrival order)."""
        out: dict[int, list[float]] = {}
        for _, m in targets.snapshot():
            out.setdefault(ns(m.header.stamp), []).append(float(pose_array_to_action(m).wrist_pos[0]))
        return out

    ep = make_episode(tmp_path / "ep", steps=60)
    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    frame = np.zeros((8, 8, 3), np.uint8)
    with RosProcesses(ros_env) as procs:
        node, targets, obs_pub, js_pub, prompt_pub = _policy_rig(procs, peer, "chunk:=4", "lockstep:=true")
        for pub in (obs_pub, js_pub, prompt_pub):
            peer.wait_for_subscription(pub, timeout=60)
        prompt_pub.publish(String(data=json.dumps({"id": "ep@1", "path": str(ep)})))

        def send(stamp) -> None:
            js_pub.publish(joint_state(hand.joint_names, hand.neutral(), stamp))
            obs_pub.publish(numpy_to_image(frame, "rgb8", stamp=stamp))

        def step(stamp) -> None:
            """Send a step until its target arrives, as the lockstep sim resends (images are best effort)."""
            deadline = time.monotonic() + 30
            while ns(stamp) not in by_stamp() and time.monotonic() < deadline:
                send(stamp)
                time.sleep(0.2)
            assert ns(stamp) in by_stamp(), node.log()

        stamp = peer.now_msg()
        step(stamp)  # the first step, acted on once the prompt is ready
        for _ in range(3):  # the same step again: its target again, not the next action
            send(stamp)
            time.sleep(0.2)
        peer.wait_until(lambda: len(by_stamp()[ns(stamp)]) >= 2, 10, "the first step's target sent again")
        assert list(by_stamp()) == [ns(stamp)] and len(set(by_stamp()[ns(stamp)])) == 1
        for _ in range(5):  # each new step: the chunk's next action
            step(peer.now_msg())
        # a late frame of an earlier step: dropped; a frame whose step's state is not the newest: waits
        n = len(targets)
        obs_pub.publish(numpy_to_image(frame, "rgb8", stamp=stamp))
        between = peer.now_msg()
        time.sleep(0.01)
        newest = peer.now_msg()
        js_pub.publish(joint_state(hand.joint_names, hand.neutral(), newest))
        obs_pub.publish(numpy_to_image(frame, "rgb8", stamp=between))
        step(newest)  # the newest step's own frame
        # neither is acted on (nor answered again): targets come in order, and after them only the newest step's
        assert {ns(m.header.stamp) for _, m in targets.snapshot()[n:]} == {ns(newest)}
        steps = by_stamp()
        assert all(len(set(xs)) == 1 for xs in steps.values()), steps  # a repeat is the same target
        xs = [v[0] for v in steps.values()]
        assert len(xs) == 7 and np.allclose(np.diff(xs), 0.001), xs  # one action per step, in order
        assert node.returncode is None, node.log()


def test_scripted_backend_plans_the_prompts_task_and_seed(tmp_path):
    from humanprompt_ros.policies import ScriptedFromPrompt

    ep = make_episode(tmp_path / "ep")  # meta: press_button, seed 5
    policy = ScriptedFromPrompt(chunk=3)
    policy.set_prompt(str(ep))
    assert policy.plan.shape == (40, 24)  # the task's horizon
    assert policy.act(np.zeros((8, 8, 3), np.uint8), np.zeros(24)).shape == (3, 24)
    bare = tmp_path / "bare"
    make_episode(bare)
    meta = json.loads((bare / "meta.json").read_text())
    del meta["task"]
    (bare / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="needs a benchmark episode"):
        policy.set_prompt(str(bare))


@pytest.mark.ros
@require_rclpy()
@pytest.mark.timeout(120)
def test_prompt_tokens_from_the_prompt_encoder_over_dds(checkpoint, tmp_path, ros_domain_id, ros_env):
    """policy:=checkpoint end to end: the prompt encoder encodes the prompt once and publishes the tokens;
    the policy node installs them (no second encoding) and drives the hand; tokens from another checkpoint
    or unusable ones make it encode the prompt itself."""
    from std_msgs.msg import String

    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.models.checkpoint import checkpoint_identity
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import msg_to_tokens, tokens_to_msg
    from humanprompt_ros.ros.graph_client import GraphClient
    from humanprompt_ros.video import write_video

    rng = np.random.default_rng(1)
    video = write_video(
        tmp_path / "prompt.mp4", [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(6)], fps=10
    )
    ident = checkpoint_identity(checkpoint)
    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    frames = rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8)
    with RosProcesses(ros_env) as procs:
        enc, pol = procs.start_checkpoint_pair(checkpoint, tmp_path)
        c = GraphClient(ros_domain_id)
        peer = c.peer
        tokens = peer.record(topics.PROMPT_TOKENS)

        def policy_count(key):
            return int(c.node_status("policy").get(key, -1))

        try:
            with robot_feed(peer, hand, frames) as obs_pub:
                assert c.enc_params.wait_for_service(timeout_sec=60), enc.log()
                peer.wait_for_subscription(obs_pub, timeout=60)  # the policy node is up (its checkpoint loaded)
                ok, reason = c.set_prompt(str(video))
                assert ok, reason
                peer.wait_until(
                    lambda: c.prompt.last() and json.loads(c.prompt.last()[1].data).get("id"), 10, "the prompt"
                )
                prompt = json.loads(c.prompt.last()[1].data)
                assert prompt["backend"] == "checkpoint" and prompt["checkpoint"] == ident
                peer.wait_until(lambda: tokens.last(), 10, "the prompt tokens")
                meta, arr = msg_to_tokens(tokens.last()[1])
                assert meta == {"prompt_id": prompt["id"], "checkpoint": ident, "skill": None}
                assert arr.ndim == 3 and arr.shape[0] == 1 and np.all(np.isfinite(arr))
                peer.wait_until(lambda: len(c.targets) >= 5, 30, f"hand targets\n{pol.log()}")
                peer.wait_until(lambda: policy_count("prompts_from_tokens") == 1, 10, f"tokens used\n{pol.log()}")
                assert policy_count("prompts_encoded_here") == 0
                assert any("tokens from the prompt encoder" in line for line in pol.stdout_lines + [pol.stderr_text])
                # a prompt announced as encoded by another checkpoint: no waiting, encoded here
                prompt_pub, tokens_pub = peer.publisher(topics.PROMPT), peer.publisher(topics.PROMPT_TOKENS)
                peer.wait_for_subscription(prompt_pub, timeout=10)
                peer.wait_for_subscription(tokens_pub, timeout=10)
                prompt_pub.publish(
                    String(data=json.dumps({"id": "other@1", "path": str(video), "checkpoint": "0" * 16}))
                )
                peer.wait_until(lambda: policy_count("prompts_encoded_here") == 1, 10, f"encoded here\n{pol.log()}")
                # tokens that claim this checkpoint but do not fit it: refused by set_encoded, encoded here instead
                tokens_pub.publish(tokens_to_msg(np.zeros((1, 3, 5), np.float32), "bad@1", ident))
                prompt_pub.publish(String(data=json.dumps({"id": "bad@1", "path": str(video), "checkpoint": ident})))
                peer.wait_until(lambda: policy_count("prompts_encoded_here") == 2, 10, f"fallback\n{pol.log()}")
                assert policy_count("tokens_ignored") >= 1 and policy_count("prompt_failures") == 0
                t_last = time.monotonic()
                peer.wait_until(lambda: c.targets.since(t_last), 10, "targets for the last prompt")
                assert pol.returncode is None and enc.returncode is None
        finally:
            c.close()
