"""Seeing failures: where each episode's task ended (final task distances), failure modes per skill, and
contact sheets of saved rollouts."""

from __future__ import annotations

import json
import subprocess
import sys

import mujoco
import numpy as np
import pytest
from PIL import Image

from humanprompt_ros.eval.failures import MODES, failure_mode, summarize_failures
from humanprompt_ros.policies import make_policy
from humanprompt_ros.sim.env import SimEnv
from humanprompt_ros.sim.runner import expert_episode, run_episode
from humanprompt_ros.sim.tasks import load_task, resolve_task


@pytest.mark.parametrize(
    "skill, final, mode",
    [
        ("push_to_goal", {"progress": 0.0, "hand_min_cm": 12.0}, "never reached"),
        ("push_to_goal", {"progress": 0.5, "hand_min_cm": 12.0}, "never reached"),  # moved by something else
        ("push_to_goal", {"progress": 0.05, "hand_min_cm": 2.0}, "untouched"),
        ("push_to_goal", {"progress": -0.4, "hand_min_cm": 2.0}, "wrong way"),
        ("open_drawer", {"progress": 0.6, "hand_min_cm": 2.0}, "short"),
        ("rotate", {"progress": 1.8, "hand_min_cm": 2.0}, "overshot"),
        ("knock_over", {"progress": 1.2, "fall_dir_deg": 120.0, "hand_min_cm": 2.0}, "wrong side"),
        ("knock_over", {"progress": 1.2, "fall_dir_deg": 10.0, "hand_min_cm": 2.0}, "off the disc"),
        ("pick_place", {"progress": 1.0, "hand_min_cm": 1.0}, "not set down"),
        ("press_button", {"progress": 1.1, "hand_min_cm": 1.0}, "not held"),
    ],
)
def test_failure_modes(skill, final, mode):
    assert failure_mode(skill, final) == mode
    assert mode in MODES


def test_summary_counts_modes_and_medians_of_failed_episodes():
    eps = [
        {"skill": "open_drawer", "success": True, "final": {"progress": 1.2, "opening_cm": 8.0, "hand_min_cm": 1}},
        {"skill": "open_drawer", "success": False, "final": {"progress": 0.5, "opening_cm": 3.0, "hand_min_cm": 1}},
        {"skill": "open_drawer", "success": False, "final": {"progress": 0.0, "opening_cm": 0.0, "hand_min_cm": 9}},
        {"skill": "open_drawer", "success": False},  # an older eval file: no final measures
    ]
    s = summarize_failures(eps)["open_drawer"]
    assert s["episodes"] == 4 and s["failed"] == 3
    assert s["modes"] == {"never reached": 1, "short": 1}
    assert s["median_failed"] == {"opening_cm": 1.5, "hand_min_cm": 5.0}


@pytest.mark.parametrize(
    "task", ["push_box", "open_drawer", "rotate_lever", "knock_over", "pick_place", "press_button", "pick_lift"]
)
def test_the_expert_ends_with_the_task_done_and_a_still_hand_with_nothing(task):
    t = load_task(resolve_task(task))
    env = SimEnv(t, "robot", render=False)
    try:
        done = expert_episode(t, "robot", 3, env=env)
        idle = run_episode(env, make_policy("noop"), 3, record_frames=False)
    finally:
        env.close()
    assert done.success and done.measures["progress"] >= 1, done.measures
    assert done.measures["hand_min_cm"] < 5
    assert not idle.success and abs(idle.measures["progress"]) < 0.05, idle.measures
    assert idle.measures["hand_min_cm"] > done.measures["hand_min_cm"]
    assert failure_mode(t.skill, idle.measures) == "never reached"


def test_eval_records_finals_prints_failure_modes_and_writes_contact_sheets(tmp_path):
    def sim(*args):
        out = subprocess.run(
            [sys.executable, "-m", "humanprompt_ros.cli.sim", *args], capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    printed = sim(
        "eval",
        "--policy",
        "noop",
        "--policy",
        "scripted",
        "--tasks",
        "open_drawer",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "eval.json"),
        "--save-dir",
        str(tmp_path / "rollouts"),
    )
    assert "how noop's failures ended:" in printed and "open_drawer: 2 of 2 failed — never reached 2" in printed
    assert "how scripted's failures ended" not in printed  # the expert did not fail
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert all("final" in e for rows in saved["episodes"].values() for e in rows)
    sheet = tmp_path / "rollouts" / "noop" / "open_drawer" / "robot" / "sheet.png"
    assert sheet.is_file() and f"contact sheet: {sheet}" in printed
    img = np.asarray(Image.open(sheet))
    assert img.shape[0] > 2 * 90 and img.shape[1] > 8 * 90  # two episodes × eight frames
    assert (img[..., 0] > 150).any() and (img[..., 1] < 80).any()  # red frames: failures
    quiet = sim(
        "eval",
        "--policy",
        "noop",
        "--tasks",
        "open_drawer",
        "--episodes",
        "1",
        "--workers",
        "1",
        "--json",
        "--save-dir",
        str(tmp_path / "again"),
    )
    assert json.loads(quiet.strip().splitlines()[-1])["skills"]["open_drawer"]["episodes"] == 1  # still the last line
    summary = json.loads(sim("failures", str(tmp_path / "eval.json"), "--json"))
    assert summary["noop"]["open_drawer"]["modes"] == {"never reached": 2}
    assert summary["scripted"]["open_drawer"]["failed"] == 0


def test_hand_distance_uses_each_geom_kinds_true_extents():
    """A cylinder's box is (r, r, half-height), a sphere's (r, r, r): mujoco's geom_type entries are numpy ints,
    which a dict keyed by mjtGeom never matches, so this is checked against a real model."""
    from humanprompt_ros.sim.success import SuccessTracker

    m = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><geom type="cylinder" size="0.02 0.05"/><geom type="sphere" size="0.03"/>'
        '<geom type="box" size="0.01 0.02 0.03"/></worldbody></mujoco>'
    )
    halves = [SuccessTracker._half_extents(m.geom_type[g], m.geom_size[g]) for g in range(3)]
    np.testing.assert_allclose(halves, [[0.02, 0.02, 0.05], [0.03, 0.03, 0.03], [0.01, 0.02, 0.03]])
