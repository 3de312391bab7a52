"""Prompt encoder node: validation before the parameter answer, latched prompt, clear, record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers.episodes import FRAME, make_episode
from helpers.ros import RosProcesses, require_rclpy
from humanprompt_ros.config.nodes import PromptEncoderConfig, expand_dirs, load_prompt_encoder_config
from humanprompt_ros.data import write_video
from humanprompt_ros.paths import config_path


def bad_prompts(root: Path) -> dict[str, str]:
    bad = root / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "notes.txt").write_text("hello")
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "garbage.mp4").write_bytes(os.urandom(1024))
    write_video(bad / "short.mp4", [FRAME] * 2, fps=10)
    write_video(bad / "bare.mp4", [FRAME] * 6, fps=10)
    make_episode(bad / "no_actions", actions=False)
    write_video(bad / "one.mp4", [FRAME], fps=10)
    whole = write_video(bad / "whole.mp4", [FRAME] * 6, fps=10).read_bytes()
    (bad / "truncated.mp4").write_bytes(whole[: len(whole) // 2])  # cut before its index (moov, at the end)
    no_frames(bad / "no_frames.mp4")
    write_video(bad / "long.mp4", [FRAME] * 121, fps=1)  # 121 s: beyond max_duration_s 120
    write_video(bad / "dci_4k.mp4", [np.zeros((2160, 4096, 3), np.uint8)] * 4, fps=10)  # beyond max_pixels (4K UHD)
    meta = json.loads((make_episode(bad / "bad_fps") / "meta.json").read_text())
    (bad / "bad_fps" / "meta.json").write_text(json.dumps({**meta, "fps": "ten"}))
    (bad / "no_meta").mkdir(exist_ok=True)
    return {
        str(root / "missing"): "not found",
        str(bad / "notes.txt"): "not a video file",
        str(bad / "empty.mp4"): "the file is empty",
        str(bad / "garbage.mp4"): "not a readable video",
        str(bad / "short.mp4"): "too short",
        "/etc/hostname": "outside the configured prompt directories",
        str(bad / "no_actions"): "needs the demonstration's unified actions",
        str(bad / "bare.mp4"): "needs the demonstration's unified actions",
        str(bad / "one.mp4"): "too short (1 frames, a prompt needs at least 4)",
        str(bad / "truncated.mp4"): "truncated.mp4: not a readable video (",
        str(bad / "no_frames.mp4"): "no video stream",
        str(bad / "long.mp4"): "121.0 s long (121 frames at 1 fps), more than max_duration_s 120",
        str(bad / "dci_4k.mp4"): "frames of 4096x2160 = 8847360 pixels, more than max_pixels 8294400",
        str(bad / "bad_fps"): "meta.json fps 'ten' is not a frame rate",
        str(bad / "no_meta"): "a directory without meta.json or a video file",
    }


def no_frames(path: Path) -> Path:
    """An mp4 with no video frames (ffmpeg asked for 0 frames writes a container without a stream)."""
    import subprocess

    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "color=s=16x16:d=1"]
    subprocess.run([*cmd, "-frames:v", "0", "-c:v", "libx264", str(path)], check=True, timeout=60)
    return path


def test_shipped_config_loads_and_dirs_expand(monkeypatch, tmp_path):
    cfg = load_prompt_encoder_config(config_path("prompt_encoder.yaml"))
    assert cfg.policy == "checkpoint" and "$HUMANPROMPT_PROMPT_DIR" in cfg.prompt_dirs
    monkeypatch.delenv("HUMANPROMPT_PROMPT_DIR", raising=False)
    assert all("$" not in str(d) for d in expand_dirs(cfg.prompt_dirs))
    monkeypatch.setenv("HUMANPROMPT_PROMPT_DIR", str(tmp_path))
    assert expand_dirs(cfg.prompt_dirs)[0] == tmp_path


def test_validator_reasons_without_ros(tmp_path):
    from humanprompt_ros.control.prompt import PromptError, PromptValidator

    v = PromptValidator(PromptEncoderConfig(prompt_dirs=[str(tmp_path)], policy="replay"))
    good = make_episode(tmp_path / "good")
    info = v.validate(str(good))
    assert info["task"] == "press_button" and info["actions"] == 6 and info["frames"] == 7 and info["id"]
    assert v.validate(str(good))["id"] != info["id"]  # every set is a new id (restarts the task)
    for path, why in bad_prompts(tmp_path).items():
        with pytest.raises(PromptError) as err:
            v.validate(path)
        reason = str(err.value)
        assert why in reason, (path, reason)
        assert "\n" not in reason and len(reason) < 400, reason  # one line: no ffmpeg banner
        assert reason.count(path) == 1, reason  # the path named once
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(PromptError, match="outside the configured prompt directories"):
        v.validate(str(tmp_path / "link" / "hostname"))
    # a backend that takes bare videos (the learned one, encoded by the policy node) accepts one
    vv = PromptValidator(PromptEncoderConfig(prompt_dirs=[str(tmp_path)], policy="checkpoint"))
    assert vv.validate(str(tmp_path / "bad" / "bare.mp4"))["frames"] == 6
    assert vv.encoded is None and "checkpoint" not in vv.validate(str(good))  # no checkpoint here: nothing encoded


def test_validator_encodes_with_the_checkpoint_and_keeps_the_tokens(tmp_path, tiny_checkpoint):
    from humanprompt_ros.config.nodes import StartupError
    from humanprompt_ros.control.prompt import PromptError, PromptValidator
    from humanprompt_ros.models.checkpoint import checkpoint_identity

    ckpt = tiny_checkpoint
    v = PromptValidator(PromptEncoderConfig(prompt_dirs=[str(tmp_path)], policy="checkpoint", checkpoint=str(ckpt)))
    assert v.checkpoint_id == checkpoint_identity(ckpt) and len(v.checkpoint_id) == 16
    video = write_video(tmp_path / "prompt.mp4", [FRAME] * 6, fps=10)
    info = v.validate(str(video))
    assert info["checkpoint"] == v.checkpoint_id
    pid, tokens, skill = v.encoded
    assert pid == info["id"] and tokens.dtype == np.float32 and tokens.ndim == 3 and tokens.shape[0] == 1
    assert skill is None
    bad_prompts(tmp_path)
    with pytest.raises(PromptError, match="too short"):
        v.validate(str(tmp_path / "bad" / "short.mp4"))
    assert v.encoded[0] == pid  # a refused prompt leaves the active one's tokens
    with pytest.raises(StartupError, match="no such checkpoint file"):
        PromptValidator(PromptEncoderConfig(policy="checkpoint", checkpoint=str(tmp_path / "missing.safetensors")))


@pytest.mark.ros
@require_rclpy()
def test_set_clear_record_over_dds(tmp_path, ros_domain_id, ros_env):
    from humanprompt_ros.ros.graph_client import GraphClient

    good = make_episode(tmp_path / "good")
    cases = bad_prompts(tmp_path)
    with RosProcesses(ros_env) as procs:
        node = procs.start(
            "prompt_encoder",
            "-m",
            "humanprompt_ros.nodes.prompt_encoder",
            "--ros-args",
            "-p",
            "policy:=replay",
            "-p",
            f"prompt_dirs:=['{tmp_path}']",
            "-p",
            "record_seconds:=1.0",
        )
        c = GraphClient(ros_domain_id)
        try:
            assert c.enc_params.wait_for_service(timeout_sec=60), node.log()
            c.peer.wait_until(lambda: c.prompt.last(), 20, "the latched (empty) prompt")
            assert json.loads(c.prompt.last()[1].data) == {"id": ""}
            ok, reason = c.set_prompt(str(good))
            assert ok, reason
            c.peer.wait_until(lambda: json.loads(c.prompt.last()[1].data).get("id"), 10, "the prompt")
            msg = json.loads(c.prompt.last()[1].data)
            assert msg["path"] == str(good) and msg["backend"] == "replay" and msg["actions"] == 6
            # a late subscriber gets it too (transient local)
            late = c.peer.record("/humanprompt/prompt")
            c.peer.wait_until(lambda: len(late), 10, "the latched prompt for a late subscriber")
            assert json.loads(late.last()[1].data)["id"] == msg["id"]
            for path, why in cases.items():
                ok, reason = c.set_prompt(path)
                assert not ok and why in reason, (path, reason)
            from rcl_interfaces.srv import GetParameters

            get = c.peer.node.create_client(GetParameters, "/prompt_encoder/get_parameters")
            value = c.call(get, GetParameters.Request(names=["prompt_video"])).values[0].string_value
            assert value == str(good)  # the refused values were never applied
            assert json.loads(c.prompt.last()[1].data)["id"] == msg["id"]
            # record: 1 s of observations into the prompt dir; replay cannot use a bare video
            from humanprompt_ros.ros.image import numpy_to_image

            pub = c.peer.publisher("/humanprompt/observation")
            c.peer.wait_for_subscription(pub, timeout=10)
            import threading

            stop = threading.Event()

            def feed():
                while not stop.wait(0.05):
                    pub.publish(numpy_to_image(FRAME, "rgb8", stamp=c.peer.now_msg()))

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            try:
                resp = c.trigger(c.enc_record, timeout=30)
            finally:
                stop.set()
                feeder.join()
            assert not resp.success and "needs the demonstration's unified actions" in resp.message, resp.message
            recorded = list(tmp_path.glob("recording-*.mp4"))
            assert len(recorded) == 1 and str(recorded[0]) in resp.message
            assert json.loads(c.prompt.last()[1].data)["id"] == msg["id"]
            # clear
            resp = c.trigger(c.enc_clear)
            assert resp.success
            c.peer.wait_until(lambda: json.loads(c.prompt.last()[1].data) == {"id": ""}, 10, "the cleared prompt")
            assert node.returncode is None
        finally:
            c.close()


def test_a_kept_prompt_is_resumed_under_its_id_unless_it_changed(tmp_path):
    """``resume_file``: the validator keeps the active prompt; a new validator (a restarted node) re-applies it
    under the same id, a changed file under a new one, a cleared one not at all; a moved file is refused."""
    import os

    from humanprompt_ros.control.prompt import PromptError, PromptValidator

    kept = tmp_path / "launch" / "prompt.json"
    cfg = PromptEncoderConfig(prompt_dirs=[str(tmp_path)], policy="replay", resume_file=str(kept))
    good = make_episode(tmp_path / "good")
    first = PromptValidator(cfg)
    assert first.resume() is None  # nothing kept yet
    info = first.validate(str(good))
    first.remember(info)
    again = PromptValidator(cfg).resume()
    assert again["id"] == info["id"] and again["path"] == str(good) and again["actions"] == 6
    st = (good / "meta.json").stat()
    os.utime(good / "meta.json", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the episode changed since
    os.utime(good, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = PromptValidator(cfg).resume()
    assert changed["path"] == str(good) and changed["id"] != info["id"]
    first.remember({"id": ""})  # a clear
    assert PromptValidator(cfg).resume() is None
    first.remember(info)
    good.rename(tmp_path / "moved")
    with pytest.raises(PromptError):
        PromptValidator(cfg).resume()
    kept.write_text("not json")
    with pytest.raises(PromptError, match="not a kept prompt"):
        PromptValidator(cfg).resume()
    assert PromptValidator(PromptEncoderConfig(prompt_dirs=[str(tmp_path)], policy="replay")).resume() is None


@pytest.mark.ros
@require_rclpy()
def test_a_restarted_encoder_re_applies_the_prompt_under_the_same_id(tmp_path, ros_domain_id, ros_env):
    """Real DDS: SIGKILL the prompt encoder with a prompt set; the restarted node (same parameters, as bringup
    respawns it) publishes the same prompt under the same id, so a policy node carries on; after a clear, a
    restart starts without a prompt."""
    from rcl_interfaces.srv import GetParameters

    from humanprompt_ros.ros.graph_client import GraphClient

    good = make_episode(tmp_path / "good")
    args = ["-m", "humanprompt_ros.nodes.prompt_encoder", "--ros-args", "-p", "policy:=replay"]
    args += ["-p", f"prompt_dirs:=['{tmp_path}']", "-p", f"resume_file:={tmp_path / 'launch' / 'prompt.json'}"]
    with RosProcesses(ros_env) as procs:
        node = procs.start("prompt_encoder", *args)
        c = GraphClient(ros_domain_id)
        try:
            assert c.enc_params.wait_for_service(timeout_sec=60), node.log()
            ok, reason = c.set_prompt(str(good))
            assert ok, reason
            c.peer.wait_until(lambda: json.loads(c.prompt.last()[1].data).get("id"), 10, "the prompt")
            before = json.loads(c.prompt.last()[1].data)
            node.kill()
            late = c.peer.record("/humanprompt/prompt")
            node = procs.start("prompt_encoder", *args)
            c.peer.wait_until(lambda: len(late) and json.loads(late.last()[1].data).get("id"), 60, node.log())
            after = json.loads(late.last()[1].data)
            assert after["id"] == before["id"] and after["path"] == str(good), (before, after)
            get = c.peer.node.create_client(GetParameters, "/prompt_encoder/get_parameters")
            assert get.wait_for_service(timeout_sec=30)
            assert c.call(get, GetParameters.Request(names=["prompt_video"])).values[0].string_value == str(good)
            assert c.trigger(c.enc_clear).success
            node.kill()
            cleared = c.peer.record("/humanprompt/prompt")
            node = procs.start("prompt_encoder", *args)
            c.peer.wait_until(lambda: len(cleared), 60, node.log())
            assert json.loads(cleared.last()[1].data) == {"id": ""}
        finally:
            c.close()
