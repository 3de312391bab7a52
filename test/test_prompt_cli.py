"""humanprompt-prompt against a real ROS peer that serves the prompt encoder's interface.

The peer (in this test process) is a node named ``prompt_encoder`` with a validated
``prompt_video`` parameter and the ``~/clear_prompt`` / ``~/record_prompt`` Trigger services,
i.e. the operator's interface; the CLI runs as a separate process over real DDS.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.ros import REPO_ROOT, require_rclpy

pytestmark = [pytest.mark.ros, require_rclpy(), pytest.mark.timeout(90)]


def cli(env, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "humanprompt_ros.cli.prompt", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def encoder(ros_domain_id):
    from rcl_interfaces.msg import SetParametersResult
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from humanprompt_ros.ros import topics
    from humanprompt_ros.ros.probe import RosPeer

    with RosPeer(ros_domain_id, name="prompt_encoder") as peer:
        node = peer.node
        state = {"prompt": "", "calls": []}
        pub = node.create_publisher(String, topics.PROMPT.name, topics.qos_profile(topics.PROMPT))

        def on_set(params):
            for p in params:
                if p.name != "prompt_video":
                    continue
                path = Path(p.value)
                if not path.is_file():
                    return SetParametersResult(successful=False, reason=f"prompt_video: no such file: {path}")
                if path.suffix != ".mp4":
                    return SetParametersResult(successful=False, reason=f"prompt_video: not a video: {path.name}")
                state["prompt"] = str(path)
                pub.publish(String(data=json.dumps({"id": path.stem, "path": str(path)})))
            return SetParametersResult(successful=True)

        node.declare_parameter("prompt_video", "")
        node.add_on_set_parameters_callback(on_set)

        def clear(_req, resp):
            state["calls"].append("clear")
            resp.success, resp.message = bool(state["prompt"]), ("cleared " + state["prompt"]) or ""
            if not state["prompt"]:
                resp.message = "no prompt to clear"
            state["prompt"] = ""
            return resp

        def record(_req, resp):
            state["calls"].append("record")
            resp.success, resp.message = False, "no frames on /humanprompt/observation"
            return resp

        node.create_service(Trigger, "~/clear_prompt", clear)
        node.create_service(Trigger, "~/record_prompt", record)
        yield state


def test_set_show_clear_record(tmp_path, ros_env, encoder, monkeypatch):
    video = tmp_path / "pour.mp4"
    video.write_bytes(b"\0")
    out = cli(ros_env, "--wait", "30", "set", str(video))
    assert out.returncode == 0, out.stderr
    assert f"prompt set: {video}" in out.stdout
    assert encoder["prompt"] == str(video)

    out = cli(ros_env, "--wait", "30", "show")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"id": "pour", "path": str(video)}

    # a bad prompt is refused with the encoder's reason; the previous one stays
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    out = cli(ros_env, "--wait", "30", "set", str(notes))
    assert out.returncode == 1
    assert "prompt refused: prompt_video: not a video: notes.txt" in out.stderr
    assert encoder["prompt"] == str(video)

    # relative paths are sent absolute (the encoder runs in another working directory)
    out = subprocess.run(
        [sys.executable, "-m", "humanprompt_ros.cli.prompt", "--wait", "30", "set", "missing.mp4"],
        env=ros_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and f"no such file: {tmp_path / 'missing.mp4'}" in out.stderr

    out = cli(ros_env, "--wait", "30", "clear")
    assert out.returncode == 0 and f"prompt cleared: cleared {video}" in out.stdout
    out = cli(ros_env, "--wait", "30", "record")
    assert out.returncode == 1 and "prompt recorded failed: no frames on /humanprompt/observation" in out.stderr
    assert encoder["calls"] == ["clear", "record"]


def test_no_prompt_encoder_is_a_clear_timeout(ros_env):
    out = cli(ros_env, "--wait", "1", "set", "/tmp/x.mp4")
    assert out.returncode == 3
    assert "no /prompt_encoder/set_parameters service after 1 s: is the prompt encoder running" in out.stderr
    assert f"ROS_DOMAIN_ID={ros_env['ROS_DOMAIN_ID']}" in out.stderr
    assert "Traceback" not in out.stderr
    out = cli(ros_env, "--wait", "1", "clear")
    assert out.returncode == 3 and "/prompt_encoder/clear_prompt" in out.stderr
