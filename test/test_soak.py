"""The soak benchmark's pure logic (benchmarks/soak.py): memory growth, the joint command checker, the gate;
and the latency budget's table (benchmarks/bench_latency_budget.py). No ROS, no processes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_latency_budget  # noqa: E402
import soak  # noqa: E402


def test_memory_growth_compares_the_end_with_the_window_right_after_warm_up():
    times = np.arange(0, 100, 1.0)  # a 100 s run: warm-up 0-20, baseline 20-30, end 90-100
    rss = np.where(times < 20, 50.0, 100.0)  # warm-up ignored
    rss[times >= 90] = 104.0
    g = soak.memory_growth(list(times), list(rss), 100.0)
    assert g["base"] == 100.0 and g["end"] == 104.0 and g["growth"] == pytest.approx(0.04)
    # a dead process (None) is skipped; a window without samples gives no figure
    vals = [None if t >= 90 else 100.0 for t in times]
    assert soak.memory_growth(list(times), vals, 100.0)["growth"] is None


def checker(**kw):
    names = ["a", "b"]
    return soak.CommandChecker(names, np.array([-1.0, -1.0]), np.array([1.0, 1.0]), max_velocity=2.0, **kw)


def test_checker_flags_limits_and_steps_faster_than_the_cap():
    c = checker(jitter=0.0)
    c.check(0.00, ["a", "b"], [0.0, 0.0])
    c.check(0.01, ["a", "b"], [0.02, 0.0])  # 2 rad/s exactly: fine
    assert c.total == 0 and c.max_step_ratio == pytest.approx(1.0)
    c.check(0.02, ["a", "b"], [0.05, 0.0])  # 3 rad/s
    assert c.counts["velocity"] == 1
    c.check(0.03, ["a", "b"], [0.05, 1.2])  # beyond the upper limit, and a jump
    assert c.counts["limit"] == 1 and c.counts["velocity"] == 2
    c.check(0.04, ["b", "a"], [0.0, 0.0])  # wrong joint order
    assert c.counts["malformed"] == 1 and len(c.violations) == c.total == 4


def test_checker_allows_stamp_jitter_and_judges_windows():
    c = checker(jitter=0.005)
    c.check(0.000, ["a", "b"], [0.0, 0.0])
    c.check(0.006, ["a", "b"], [0.02, 0.0])  # 0.02 rad in a 6 ms stamp gap: within 2·(6+5) ms
    assert c.total == 0
    c = checker(jitter=0.005)
    for k in range(30):
        c.check(0.01 * k, ["a", "b"], [0.015 * k, 0.0])  # 1.5 rad/s: fine
    assert c.total == 0
    # steadily 1.25x the cap: each 10 ms step is within the jitter slack, a 0.1 s window is not
    c = checker(jitter=0.005)
    for k in range(30):
        c.check(0.01 * k, ["a", "b"], [0.025 * k, 0.0])
    assert c.counts["velocity"] == 0 and c.counts["velocity_window"] > 0


def test_the_first_command_of_a_new_prompt_is_judged_against_the_measured_joints():
    c = checker()
    c.check(0.00, ["a", "b"], [0.5, 0.5])
    c.check(0.01, ["a", "b"], [0.5, 0.5])
    c.new_prompt(0.015)  # the command node restarts from the measured joints (after a reset: anywhere)
    c.measured(0.015, np.array([0.3, 0.5]))
    c.check(0.02, ["a", "b"], [0.5, 0.5])  # still in flight from before the prompt: a continuation
    c.check(0.06, ["a", "b"], [0.31, 0.5])  # 0.19 rad from the last command in 40 ms, 0.01 from the hand
    assert c.total == 0 and c.segment_starts == 1
    c.check(0.07, ["a", "b"], [0.33, 0.5])  # then velocity limited again, from there
    assert c.total == 0
    c.new_prompt(0.5)
    c.measured(0.5, np.array([0.33, 0.5]))
    c.check(0.51, ["a", "b"], [-0.8, 0.5])  # far from the last command and from the hand
    assert c.counts["segment_start"] == 1
    # without a new prompt the same jump is judged against the last command
    c = checker()
    c.measured(0.0, np.array([0.0, 0.0]))
    c.check(0.0, ["a", "b"], [0.9, 0.0])
    c.check(0.2, ["a", "b"], [0.0, 0.0])  # 0.9 rad in 0.2 s at 2 rad/s: too fast
    assert c.counts["velocity"] == 1 and c.segment_starts == 0
    # a new prompt is forgotten after arm_s
    c = checker(arm_s=1.0)
    c.measured(0.0, np.array([0.0, 0.0]))
    c.check(0.0, ["a", "b"], [0.9, 0.0])
    c.new_prompt(0.0)
    c.check(2.0, ["a", "b"], [0.9, 0.0])
    c.check(2.01, ["a", "b"], [0.0, 0.0])
    assert c.counts["velocity"] == 1 and c.segment_starts == 0


def summary(**kw):
    s = {
        "memory": {"policy": {"growth": 0.01}, "camera": {"growth": None}},
        "deaths": 0,
        "death_events": [],
        "commands": {"violations": 0, "counts": {}},
        "prompts": {"lost": 0},
        "bad_prompts": {"accepted": 0},
    }
    s.update(kw)
    return s


def test_targets_missed_is_the_gate():
    assert soak.targets_missed(summary()) == []
    assert len(soak.targets_missed(summary(memory={"policy": {"growth": 0.05}}))) == 1
    assert len(soak.targets_missed(summary(deaths=1, prompts={"lost": 2}, bad_prompts={"accepted": 1}))) == 3
    assert len(soak.targets_missed(summary(commands={"violations": 3, "counts": {"limit": 3}}))) == 1


def test_bad_prompts_are_made_inside_the_prompt_directory(tmp_path):
    bad = soak.make_bad_prompts(tmp_path)
    assert set(bad) == set(soak.BAD_KINDS)
    for path, _ in bad.values():
        assert Path(path).resolve().is_relative_to(tmp_path.resolve())
    assert not Path(bad["missing_path"][0]).exists()
    assert Path(bad["truncated_mp4"][0]).stat().st_size > 0
    assert not (Path(bad["dir_without_meta"][0]) / "meta.json").exists()


def test_latency_budget_rows():
    nodes = {
        "sim_driver": {"render_p50_ms": "20", "render_p95_ms": "60"},
        "camera": {"latency_p50_ms": "25", "latency_p95_ms": "70"},
        "policy": {
            "frame_receive_p50_ms": "27",
            "frame_receive_p95_ms": "90",
            "frame_wait_p50_ms": "30",
            "frame_wait_p95_ms": "60",
            "inference_p50_ms": "130",
            "inference_p95_ms": "300",
            "target_after_act_p50_ms": "2",
            "target_after_act_p95_ms": "8",
            "frame_to_target_p50_ms": "200",
            "frame_to_target_p95_ms": "450",
        },
        "command": {
            "fresh_target_receive_p50_ms": "203",
            "fresh_target_receive_p95_ms": "460",
            "fresh_target_handling_p50_ms": "2",
            "fresh_target_handling_p95_ms": "9",
            "retarget_p50_ms": "0.5",
            "retarget_p95_ms": "5",
            "fresh_frame_to_command_p50_ms": "206",
            "fresh_frame_to_command_p95_ms": "470",
        },
    }
    rows = {r["stage"]: r for r in bench_latency_budget.budget_rows(nodes)}
    hop = rows["observation published → policy has it"]
    assert hop["derived"] and (hop["p50"], hop["p95"]) == (2.0, None) and hop["cum_p50"] == 27.0
    assert rows["inference: act(), one chunk"]["p50"] == 130.0 and not rows["inference: act(), one chunk"]["derived"]
    assert rows["target published → command node has it"]["p50"] == 3.0
    end = rows["end to end: capture → first command of the chunk"]
    assert (end["p50"], end["p95"]) == (206.0, 470.0)
    table = bench_latency_budget.format_table(list(rows.values()))
    assert "≈2.0" in table and "| 206.0 | 470.0 |" in table
    # a node without figures: blanks, no error
    assert bench_latency_budget.budget_rows({})[0]["p50"] is None
