"""benchmarks/probe_scene_leakage.py: its classifier finds a leak that is there and none that is not, and
the probe runs end to end on the shipped twin tasks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from probe_scene_leakage import held_out_accuracy  # noqa: E402


def test_the_classifier_sees_a_leak_and_only_a_leak():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 3))
    leaky = (x[:, 0] * x[:, 1] > 0).astype(float)  # a quadratic rule: the probe's features include products
    assert held_out_accuracy(x, leaky, 400) > 0.9
    noise = rng.integers(0, 2, 600).astype(float)
    assert abs(held_out_accuracy(x, noise, 400) - 0.5) < 0.12


def test_the_probe_runs_on_the_twin_tasks():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_scene_leakage.py"), "--train", "80",
                          "--test", "40"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) == {"knock_over / pull_puck", "pick_place / push_box", "press_button / rotate_lever"}
    for accs in result.values():
        assert len(accs) == 4 and all(0.0 <= a <= 1.0 for a in accs.values())
    # the own layouts give the task away (docs/benchmark.md, "Twin scenes"): the lever and the button stand
    # where only one of the two tasks puts its target
    assert result["press_button / rotate_lever"]["positions"] > 0.9


def test_shared_twin_scenes_leave_only_chance():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_scene_leakage.py"), "--train", "80",
                          "--test", "40", "--twin-scenes", "shared"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for accs in json.loads(out.stdout.strip().splitlines()[-1]).values():
        assert all(a == 0.5 for a in accs.values()), accs  # the same scene for both tasks: nothing to tell apart
