"""`humanprompt-hand check`: the newcomer's first check, run as the installed console script."""

import subprocess
import sys
from pathlib import Path

from humanprompt_ros.paths import config_path


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "humanprompt-hand"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "humanprompt_ros.cli.hand"]


def test_check_prints_joints_limits_fingertips_and_round_trip():
    out = subprocess.run(
        [*_cli(), "check", str(config_path("hands", "allegro_right.yaml")), "--samples", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "16 actuated joints" in text
    assert "joint_12.0               [+0.263, +1.396]" in text
    assert "thumb   link_15.0_tip" in text and "little  (masked" in text
    assert "round trip" in text and text.rstrip().endswith("OK")


def test_check_reports_a_bad_config_clearly(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nurdf: nowhere.urdf\nbase_link: b\nfingertip_links: {index: t}\n")
    out = subprocess.run([*_cli(), "check", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "urdf: URDF not found" in out.stderr and "Traceback" not in out.stderr


def test_list_shows_shipped_hands():
    out = subprocess.run([*_cli(), "list"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "allegro_right.yaml" in out.stdout
