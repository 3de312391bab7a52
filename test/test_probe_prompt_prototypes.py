"""benchmarks/probe_prompt_prototypes.py, probe_pdcp_embedding.py and probe_guidance.py run end to end on
generated shared-scene twin episodes with a policy trained on them, and refuse a policy they cannot
measure, saying why."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("twins")
    gen = subprocess.run([sys.executable, "-m", "humanprompt_ros.cli.sim", "generate", "--out", str(data),
                          "--tasks", "knock_over,pull_puck", "--all-robot", "--episodes", "2", "--seed", "0",
                          "--workers", "1", "--twin-scenes", "shared", "--quiet"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert gen.returncode == 0, gen.stderr
    return data


def train(root: Path, data: Path, **pdcp) -> Path:
    """The tiny policy trained on ``data`` (a few steps: the probe's mechanics, not its figures)."""
    from humanprompt_ros.config.stage2 import PDCPSwitch
    from humanprompt_ros.train.stage2_data import load_policy_episodes
    from tiny_checkpoint import make_tiny_policy_checkpoint

    return make_tiny_policy_checkpoint(root, load_policy_episodes(data, 32, show=False), data=str(data),
                                       pdcp=PDCPSwitch(**pdcp))


def probe(checkpoint: Path, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_prompt_prototypes.py"), "--policy",
                           str(checkpoint), "--heldout", str(data), "--train", str(data), "--prompts", "2"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_the_probe_names_a_skill_per_task_and_source(tmp_path, twins):
    out = probe(train(tmp_path, twins), twins)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) == {"knock_over", "pull_puck"}
    assert all(set(r) == {"held-out", "training"} and all(0.0 <= a <= 1.0 for a in r.values())
               for r in result.values())


def test_a_policy_without_pdcp_is_refused(tmp_path, twins):
    out = probe(train(tmp_path, twins, enabled=False), twins)
    assert out.returncode == 1 and "without PDCP" in out.stdout


def test_the_pdcp_embedding_probe_scores_constructed_embeddings():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from probe_pdcp_embedding import probe

    rng = np.random.default_rng(0)
    centres = {"a": np.eye(8)[0] * 5, "b": np.eye(8)[1] * 5, "c": np.eye(8)[2] * 5}

    def draw(labels, centre_of):
        return np.stack([centres[centre_of[y]] + rng.normal(0, 0.3, 8) for y in labels])

    labels = ["a", "b", "c"] * 10
    apart = probe(draw(labels, {y: y for y in "abc"}), labels, draw(labels, {y: y for y in "abc"}), labels,
                  twin_of={"a": "b", "b": "a"})
    assert apart["centroid"] == 1.0 and apart["linear"] >= 0.9 and apart["twin conf."] == 0.0 and apart["margin"] > 0.5
    # a and b drawn from one cluster: nothing tells them apart, so half of them land on their twin
    merged = {"a": "a", "b": "a", "c": "c"}
    together = probe(draw(labels, merged), labels, draw(labels, merged), labels, twin_of={"a": "b", "b": "a"})
    assert together["centroid"] < 0.9 and 0.2 < together["twin conf."] < 0.8 and together["margin"] < apart["margin"]


def test_demo_r2_reads_what_is_particular_to_a_demonstration():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from probe_pdcp_embedding import demo_r2

    rng = np.random.default_rng(0)
    labels = ["a", "b"] * 40
    skill_path = {"a": np.zeros(6), "b": np.ones(6)}
    own = rng.normal(0, 1, (80, 2))  # what differs between demonstrations of one skill
    paths = np.stack([skill_path[y] for y in labels]) + own @ rng.normal(0, 1, (2, 6))
    skill_only = np.stack([np.eye(4)[labels.index(y) % 2] for y in labels]) + rng.normal(0, 0.01, (80, 4))
    with_demo = np.hstack([skill_only, own + rng.normal(0, 0.05, own.shape)])
    tr, te = slice(0, 60), slice(60, 80)
    kept = demo_r2(with_demo[tr], paths[tr], labels[tr], with_demo[te], paths[te], labels[te])
    lost = demo_r2(skill_only[tr], paths[tr], labels[tr], skill_only[te], paths[te], labels[te])
    assert kept > 0.9 and lost < 0.1
    assert np.isnan(demo_r2(with_demo[tr], paths[tr], ["a"] * 60, with_demo[te], paths[te], labels[te]))


def test_the_pdcp_embedding_probe_compares_checkpoints(tmp_path, twins):
    ckpts = {"pdcp": train(tmp_path / "a", twins), "plain": train(tmp_path / "b", twins, enabled=False)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_pdcp_embedding.py"),
                          *(a for n, p in ckpts.items() for a in ("--checkpoint", f"{n}={p}")),
                          "--train", str(twins), "--heldout", str(twins), "--per-task", "2"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"pdcp z", "plain z", "pdcp tokens"} <= set(rows)
    assert 0.0 <= rows["pdcp z"]["own prototypes"] <= 1.0 and np.isnan(rows["plain z"]["own prototypes"])
    assert all(0.0 <= r[k] <= 1.0 for r in rows.values() for k in ("centroid", "linear", "twin conf."))
    assert all(r["demo R²"] <= 1.0 for r in rows.values())
    assert all(0.0 <= r["robot→human"] <= 1.0 for r in rows.values())  # twins has robot demos of its robot skills


def test_the_guidance_probe_measures_guided_heads_and_refuses_others(tmp_path, twins):
    from humanprompt_ros.train.stage2_data import load_policy_episodes
    from tiny_checkpoint import make_tiny_policy_checkpoint

    def run(*ckpts: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_guidance.py"),
                               *(a for i, p in enumerate(ckpts) for a in ("--checkpoint", f"m{i}={p}")),
                               "--heldout", str(twins), "--per-task", "2", "--noises", "2"],
                              capture_output=True, text=True, timeout=600, cwd=ROOT)

    episodes = load_policy_episodes(twins, 32, show=False)
    guided = make_tiny_policy_checkpoint(tmp_path / "g", episodes, data=str(twins),
                                         policy={"global_cond": True, "global_dropout": 0.5})
    out = run(guided, guided)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert rows["m0"] == rows["m1"]  # the same noise and prompts for every checkpoint
    assert rows["m0"]["Δv / v"] > 0 and rows["m0"]["Δc / c"] > 0 and 0.0 <= rows["m0"]["skill share"] <= 1.0
    plain = make_tiny_policy_checkpoint(tmp_path / "p", episodes, data=str(twins))
    out = run(plain)
    assert out.returncode == 1 and "no null condition" in out.stderr


def test_skill_share_is_one_for_skill_only_directions_and_small_for_noise():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from probe_guidance import skill_share

    rng = np.random.default_rng(0)
    skills = ["a", "b"] * 50
    per_skill = {"a": rng.normal(size=8), "b": rng.normal(size=8)}
    assert skill_share(np.stack([per_skill[s] for s in skills]), skills) == pytest.approx(1.0)
    assert skill_share(rng.normal(size=(100, 8)), skills) < 0.1


def test_cross_embodiment_counts_robot_prompts_named_by_the_human_centroids():
    from probe_pdcp_embedding import cross_embodiment

    rng = np.random.default_rng(0)
    centre = {"a": np.array([3.0, 0, 0, 0]), "b": np.array([0, 3.0, 0, 0]), "c": np.array([0, 0, 3.0, 0])}
    y = ["a", "b", "c"] * 10
    human = np.stack([centre[k] for k in y]) + rng.normal(0, 0.3, (30, 4))
    aligned = np.stack([centre[k] for k in y[:9]]) + rng.normal(0, 0.3, (9, 4))
    swapped = np.stack([centre[{"a": "b", "b": "c", "c": "a"}[k]] for k in y[:9]]) + rng.normal(0, 0.3, (9, 4))
    assert cross_embodiment(human, y, aligned, y[:9]) == 1.0
    assert cross_embodiment(human, y, swapped, y[:9]) == 0.0
    assert np.isnan(cross_embodiment(human, y, np.zeros((0, 4)), []))
