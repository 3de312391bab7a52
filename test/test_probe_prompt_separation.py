"""benchmarks/probe_prompt_separation.py: its linear classifier finds a linear separation that is there
and none that is not, and the probe runs end to end on generated shared-scene twin demos with a policy
checkpoint."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_scene_leakage import held_out_accuracy  # noqa: E402
from tiny_checkpoint import tiny_policy_checkpoint  # noqa: E402


def test_the_linear_probe_sees_a_separation_and_only_a_separation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 64))  # wide, like an embedding: a quadratic expansion would overfit
    separable = (x[:, :3].sum(1) > 0).astype(float)
    assert held_out_accuracy(x, separable, 200, quadratic=False, l2=1e-2) > 0.85
    noise = rng.integers(0, 2, 300).astype(float)
    assert abs(held_out_accuracy(x, noise, 200, quadratic=False, l2=1e-2) - 0.5) < 0.15


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_policy_checkpoint(tmp_path_factory)


def test_the_probe_runs_on_shared_twin_demos(tmp_path, checkpoint):
    data = tmp_path / "data"
    gen = subprocess.run([sys.executable, "-m", "humanprompt_ros.cli.sim", "generate", "--out", str(data),
                          "--tasks", "knock_over,pull_puck", "--embodiment", "human", "--episodes", "4",
                          "--seed", "0", "--workers", "1", "--twin-scenes", "shared", "--quiet"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert gen.returncode == 0, gen.stderr
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_prompt_separation.py"), "--policy",
                          str(checkpoint), "--data", str(data), "--train-seeds", "2"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # only the pair with demos is probed; the others are reported as skipped
    assert list(result) == ["knock_over / pull_puck"]
    assert set(result["knock_over / pull_puck"]) == {"prompt tokens", "pooled condition"}
    assert all(0.0 <= a <= 1.0 for a in result["knock_over / pull_puck"].values())
    assert "pick_place / push_box: skipped" in out.stdout
