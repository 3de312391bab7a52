"""The README's main job (`humanprompt-demo`, run by scripts/demo.sh) works end to end."""

import json
import subprocess
import sys

import pytest

from ros_helpers import REPO_ROOT, make_ros_env, require_rclpy, reserve_domain_id

pytestmark = [pytest.mark.ros, require_rclpy()]


def test_demo_completes_a_task_from_a_human_prompt(tmp_path):
    with reserve_domain_id() as domain:
        env = make_ros_env(domain)
        env.setdefault("MUJOCO_GL", "osmesa")
        out = subprocess.run([sys.executable, "-m", "humanprompt_ros.cli.demo", "--domain-id", str(domain),
                              "--prompt-dir", str(tmp_path / "prompts"), "--timeout", "240"],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {**result, "task": "press_button", "policy": "replay", "success": True}
    assert "humanprompt-prompt set" in out.stdout
