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

from humanprompt_ros.nodes.config_b import load_policy_config
from humanprompt_ros.paths import config_path
from ros_helpers import REPO_ROOT, RosProcesses, make_ros_env, require_rclpy, reserve_domain_id
from test_node_prompt_encoder import make_episode
from tiny_checkpoint import tiny_policy_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_policy_checkpoint(tmp_path_factory)


def test_shipped_config_loads():
    cfg = load_policy_config(config_path("policy.yaml"))
    assert cfg.policy == "checkpoint" and cfg.checkpoint == "" and cfg.rate == 10.0 and cfg.chunk == 8
    from humanprompt_ros.nodes.policy import resolve_checkpoint
    from humanprompt_ros.paths import share_dir

    assert resolve_checkpoint(cfg.checkpoint) == share_dir() / "models" / "policy.safetensors"


def test_set_encoded_installs_tokens_and_refuses_bad_ones(checkpoint, tmp_path):
    import torch

    from humanprompt_ros.stage2 import LearnedPolicy
    from humanprompt_ros.video import write_video

    rng = np.random.default_rng(0)
    video = write_video(tmp_path / "p.mp4", [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(6)],
                        fps=10)
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
    for bad, why in [(tokens[0], rf"shape \({s}, {d}\) do not fit this checkpoint, which encodes a prompt as "
                                  rf"\(1, {s}, {d}\)"),
                     (torch.zeros(1, s + 1, d), "do not fit this checkpoint"),
                     (torch.zeros(1, s, d + 1), "do not fit this checkpoint"),
                     (torch.zeros(2, s, d), "do not fit this checkpoint"),
                     (torch.full((1, s, d), float("nan")), "NaN or inf"),
                     ("tokens", "not an array of numbers|do not fit")]:
        with pytest.raises(ValueError, match=why):
            policy.set_encoded(bad)
        assert torch.equal(policy.tokens, kept) and policy.t == 4  # the old prompt stays, not even reset
    policy.set_encoded(tokens)  # a tensor works too, and it resets the episode
    assert policy.t == 0


def test_checkpoint_identity_follows_the_file(checkpoint, tmp_path):
    import os
    import shutil

    from humanprompt_ros.nodes.policy import checkpoint_identity

    ident = checkpoint_identity(checkpoint)
    assert ident == checkpoint_identity(str(checkpoint)) and len(ident) == 16
    copy = shutil.copy2(checkpoint, tmp_path / "same.safetensors")  # same content and mtime: the same checkpoint
    assert checkpoint_identity(copy) == ident
    os.utime(copy, ns=(0, 12345))  # rewritten (e.g. retrained over the same path): another one
    assert checkpoint_identity(copy) != ident


def test_runner_swaps_prompts_atomically(tmp_path):
    from humanprompt_ros.nodes.policy import PolicyRunner
    from humanprompt_ros.policy import make_policy

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


def _start(procs, *params):
    args = ["-m", "humanprompt_ros.nodes.policy", "--ros-args", "-p", "policy:=replay"]
    for p in params:
        args += ["-p", p]
    return procs.start("policy", *args)


@pytest.mark.ros
@require_rclpy()
def test_checkpoint_backend_startup_errors(tmp_path):
    garbage = tmp_path / "bad.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with reserve_domain_id() as domain:
        _checkpoint_errors(make_ros_env(domain), tmp_path, garbage)


def _checkpoint_errors(env, tmp_path, garbage):
    for ckpt, why in ((tmp_path / "missing.safetensors", "no such checkpoint file"), (garbage, "checkpoint")):
        out = subprocess.run([sys.executable, "-m", "humanprompt_ros.nodes.policy", "--ros-args", "-p",
                              "policy:=checkpoint", "-p", f"checkpoint:={ckpt}"], env=env, cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        assert "[policy] cannot start:" in out.stderr and why in out.stderr and str(ckpt) in out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.ros
@require_rclpy()
def test_policy_node_over_dds(tmp_path):
    from std_msgs.msg import String

    from humanprompt_ros.hand import load_hand
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import joint_state, pose_array_to_action
    from humanprompt_ros.ros.image import numpy_to_image
    from humanprompt_ros.ros.probe import RosPeer

    ep = make_episode(tmp_path / "ep", steps=60)
    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    with reserve_domain_id() as domain, RosProcesses(make_ros_env(domain)) as procs, RosPeer(domain) as peer:
        node = _start(procs, "chunk:=4", "rate:=20.0")
        targets = peer.record(topics.HAND_TARGET)
        obs_pub = peer.publisher(topics.OBSERVATION)
        js_pub = peer.publisher(topics.JOINT_STATES)
        prompt_pub = peer.publisher(topics.PROMPT)
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
            time.sleep(1.0)
            assert len(targets) == 0  # no prompt: no motion
            prompt_pub.publish(String(data=json.dumps({"id": "ep@1", "path": str(ep)})))
            peer.wait_until(lambda: len(targets) >= 12, 20, "12 hand targets")
            msgs = targets.snapshot()
            xs = [pose_array_to_action(m).wrist_pos[0] for _, m in msgs]
            assert np.allclose(np.diff(xs[:12]), 0.001), xs[:12]  # step by step, no skipped action
            assert xs[0] == pytest.approx(0.0)
            a = pose_array_to_action(msgs[0][1])
            assert a.mask.tolist() == [True, True, True, True, False]  # the Allegro hand has no little finger
            assert all((m.header.stamp.sec, m.header.stamp.nanosec) in sent_stamps for _, m in msgs)
            times = [t for t, _ in msgs[2:12]]
            assert 15 < (len(times) - 1) / (times[-1] - times[0]) < 25  # the control rate (20 Hz here)
            # camera stops: targets stop (the chunk does not advance); it returns: continue where it stopped
            feeding.clear()
            t_stop = time.monotonic()
            time.sleep(0.8)
            late = [t for t, _ in targets.since(t_stop + 0.25 + 0.1)]
            assert not late, f"{len(late)} targets with a stale camera"
            n_before = len(targets)
            x_last = pose_array_to_action(targets.last()[1]).wrist_pos[0]
            feeding.set()
            peer.wait_until(lambda: len(targets) > n_before + 2, 10, "targets after the camera returned")
            x_next = pose_array_to_action(targets.snapshot()[n_before][1]).wrist_pos[0]
            assert x_next == pytest.approx(x_last + 0.001)
            # clear: stop at once; a new prompt starts at its first action
            prompt_pub.publish(String(data=json.dumps({"id": ""})))
            t_clear = time.monotonic()
            time.sleep(0.5)
            assert not targets.since(t_clear + 0.1)
            prompt_pub.publish(String(data=json.dumps({"id": "ep@2", "path": str(ep)})))
            t_new = time.monotonic()
            peer.wait_until(lambda: targets.since(t_new), 10, "targets for the new prompt")
            assert pose_array_to_action(targets.since(t_new)[0][1]).wrist_pos[0] == pytest.approx(0.0)
            assert node.returncode is None, node.log()
        finally:
            stop.set()
            feeder.join()


def test_scripted_backend_plans_the_prompts_task_and_seed(tmp_path):
    from humanprompt_ros.nodes.policy import ScriptedFromPrompt

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
def test_prompt_tokens_from_the_prompt_encoder_over_dds(checkpoint, tmp_path):
    """policy:=checkpoint end to end: the prompt encoder encodes the prompt once and publishes the tokens;
    the policy node installs them (no second encoding) and drives the hand; tokens from another checkpoint
    or unusable ones make it encode the prompt itself."""
    from std_msgs.msg import String

    from humanprompt_ros.hand import load_hand
    from humanprompt_ros.nodes.policy import checkpoint_identity
    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.conversions import joint_state, msg_to_tokens, tokens_to_msg
    from humanprompt_ros.ros.graph_client import GraphClient
    from humanprompt_ros.ros.image import numpy_to_image
    from humanprompt_ros.video import write_video

    rng = np.random.default_rng(1)
    video = write_video(tmp_path / "prompt.mp4", [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                                                  for _ in range(6)], fps=10)
    ident = checkpoint_identity(checkpoint)
    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    ckpt = ["-p", "policy:=checkpoint", "-p", f"checkpoint:={checkpoint}", "-p", "diagnostics_period:=0.2"]
    with reserve_domain_id() as domain, RosProcesses(make_ros_env(domain)) as procs:
        enc = procs.start("prompt_encoder", "-m", "humanprompt_ros.nodes.prompt_encoder", "--ros-args", *ckpt,
                          "-p", f"prompt_dirs:=['{tmp_path}']")
        pol = procs.start("policy", "-m", "humanprompt_ros.nodes.policy", "--ros-args", *ckpt, "-p", "rate:=20.0")
        c = GraphClient(domain)
        peer = c.peer
        tokens = peer.record(topics.PROMPT_TOKENS)
        obs_pub, js_pub = peer.publisher(topics.OBSERVATION), peer.publisher(topics.JOINT_STATES)
        stop = threading.Event()

        def feed():
            while not stop.wait(1 / 20):
                stamp = peer.now_msg()
                js_pub.publish(joint_state(hand.joint_names, hand.neutral(), stamp))
                obs_pub.publish(numpy_to_image(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "rgb8", stamp=stamp))

        def policy_count(key):
            return int(c.node_status("policy").get(key, -1))

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            assert c.enc_params.wait_for_service(timeout_sec=60), enc.log()
            peer.wait_for_subscription(obs_pub, timeout=60)  # the policy node is up (its checkpoint loaded)
            ok, reason = c.set_prompt(str(video))
            assert ok, reason
            peer.wait_until(lambda: c.prompt.last() and json.loads(c.prompt.last()[1].data).get("id"), 10, "the prompt")
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
            prompt_pub.publish(String(data=json.dumps({"id": "other@1", "path": str(video), "checkpoint": "0" * 16})))
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
            stop.set()
            feeder.join()
            c.close()
