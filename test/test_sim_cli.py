"""The humanprompt-sim command line: eval JSON contract, generate, render."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from humanprompt_ros.data import iter_episodes, read_video
from humanprompt_ros.eval.stats import mcnemar_exact


def run(*args, timeout=300, env=None):
    return subprocess.run(
        [sys.executable, "-m", "humanprompt_ros.cli.sim", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_eval_json_last_line_contract(tmp_path):
    out = run(
        "eval",
        "--policy",
        "scripted",
        "--tasks",
        "press_button",
        "--episodes",
        "2",
        "--seed",
        "7",
        "--workers",
        "1",
        "--json",
        "--out",
        str(tmp_path / "eval.json"),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) == {"skills", "mean", "unseen_mean"}  # press_button is a human-only skill
    # shared twin scenes (the default): each skill also says how often the twin's task was done instead
    assert result["skills"] == {"press_button": {"success": 1.0, "episodes": 2, "twin_only": 0.0}}
    assert result["mean"] == 1.0
    saved = json.loads((tmp_path / "eval.json").read_text())  # the file adds every episode's outcome
    finals = [e.pop("final") for e in saved["episodes"]]  # and where its task ended
    assert saved["episodes"] == [
        {"task": "press_button", "seed": 7, "success": True, "twin_success": False},
        {"task": "press_button", "seed": 8, "success": True, "twin_success": False},
    ]
    assert all(f["progress"] >= 1 and f["press"] >= 0.7 and f["hand_min_cm"] < 5 for f in finals), finals


def test_eval_several_policies_one_table_and_splits():
    out = run(
        "eval",
        "--policy",
        "expert=scripted",
        "--policy",
        "noop",
        "--tasks",
        "press_button,rotate_lever",
        "--episodes",
        "1",
        "--seed",
        "7",
        "--workers",
        "1",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result["policies"]) == {"expert", "noop"} and result["split"] == "all"
    assert result["policies"]["expert"]["skills"] == {
        "press_button": {"success": 1.0, "episodes": 1, "twin_only": 0.0},
        "rotate": {"success": 1.0, "episodes": 1, "twin_only": 0.0},
    }
    assert result["policies"]["expert"]["seen_mean"] == 1.0 and result["policies"]["noop"]["unseen_mean"] == 0.0
    unseen = run(
        "eval",
        "--policy",
        "scripted",
        "--tasks",
        "press_button,rotate_lever",
        "--split",
        "unseen",
        "--episodes",
        "1",
        "--workers",
        "1",
        "--json",
    )
    assert set(json.loads(unseen.stdout.strip().splitlines()[-1])["skills"]) == {"press_button"}
    table = run(
        "eval",
        "--policy",
        "scripted",
        "--tasks",
        "rotate_lever",
        "--split",
        "seen",
        "--episodes",
        "1",
        "--workers",
        "1",
    )
    assert "| policy | rotate | seen_mean | mean |" in table.stdout and "| scripted | 1.00 |" in table.stdout
    none = run("eval", "--policy", "scripted", "--tasks", "rotate_lever", "--split", "unseen", "--episodes", "1")
    assert none.returncode == 2 and "no task matches" in none.stderr
    twice = run("eval", "--policy", "a=noop", "--policy", "a=random", "--episodes", "1")
    assert twice.returncode == 2 and "given twice" in twice.stderr


def test_eval_replay_and_bad_arguments():
    out = run(
        "eval",
        "--policy",
        "replay",
        "--prompt-seed",
        "same",
        "--tasks",
        "open_drawer",
        "--episodes",
        "1",
        "--workers",
        "1",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["skills"]["open_drawer"]["episodes"] == 1
    bad = run("eval", "--policy", "nope", "--tasks", "open_drawer", "--episodes", "1", "--workers", "1")
    assert bad.returncode == 2 and "unknown policy 'nope'" in bad.stderr


def test_eval_with_a_mismatched_prompt():
    """--prompt-task: the prompt shows another task, success is judged on the episode's own. Replaying a
    demonstration of the same scene succeeds; replaying one of another task does not."""
    base = (
        "eval",
        "--policy",
        "replay",
        "--prompt-seed",
        "same",
        "--tasks",
        "press_button",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--json",
    )
    own, other = run(*base), run(*base, "--policy", "scripted", "--prompt-task", "rotate_lever")
    assert own.returncode == 0 and other.returncode == 0, own.stderr + other.stderr
    assert json.loads(own.stdout.strip().splitlines()[-1])["skills"]["press_button"]["success"] == 1.0
    result = json.loads(other.stdout.strip().splitlines()[-1])
    assert result["prompt_task"] == "rotate_lever"
    # in a shared scene the twin's demonstration, replayed, does the twin's task instead
    assert result["policies"]["replay"]["skills"]["press_button"] == {"success": 0.0, "episodes": 2, "twin_only": 1.0}
    assert result["policies"]["scripted"]["skills"]["press_button"]["success"] == 1.0  # it ignores the prompt
    many = run("eval", "--policy", "replay", "--tasks", "press_button", "--episodes", "1", "--prompt-task", "p*")
    assert many.returncode == 2 and "name exactly one" in many.stderr


def test_runs_without_an_activated_environment():
    """The venv's commands called by path, with nothing exported (no MUJOCO_GL, DISPLAY or
    AMENT_PREFIX_PATH): rendering falls back to OSMesa and the hand's URDF still resolves."""
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "AMENT_PREFIX_PATH")}
    out = run(
        "eval",
        "--policy",
        "replay",
        "--prompt-seed",
        "same",
        "--tasks",
        "open_drawer",
        "--episodes",
        "1",
        "--workers",
        "1",
        "--json",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["skills"]["open_drawer"]["success"] == 1.0


def test_generate_writes_a_dataset(tmp_path):
    out = run(
        "generate",
        "--out",
        str(tmp_path),
        "--tasks",
        "knock_over",
        "--episodes",
        "1",
        "--workers",
        "1",
        "--quiet",
        "--all-robot",
    )
    assert out.returncode == 0, out.stderr
    eps = list(iter_episodes(tmp_path))
    assert sorted(e.embodiment for e in eps) == ["human", "robot"]
    for e in eps:
        assert e.success and e.skill == "knock_over"
        frames = e.frames()
        assert frames.shape[0] == e.meta["num_actions"] + 1 and frames.shape[1:] == (128, 128, 3)
        assert (e.joints if e.embodiment == "robot" else e.keypoints) is not None
    summary = json.loads((tmp_path / "generate_summary.json").read_text())
    assert summary["episodes"] == 2


def test_generate_refuses_to_mix_own_and_shared_twin_layouts(tmp_path):
    """An existing episode is kept only when it has the run's layouts; otherwise the run stops and says how
    to regenerate, keeping the episode as it was."""
    args = (
        "generate",
        "--out",
        str(tmp_path),
        "--tasks",
        "knock_over",
        "--embodiment",
        "human",
        "--episodes",
        "1",
        "--workers",
        "1",
        "--quiet",
    )
    assert run(*args, "--twin-scenes", "own").returncode == 0
    meta = next(tmp_path.glob("knock_over/human/*/meta.json"))
    before = meta.read_text()
    mixed = run(*args, "--twin-scenes", "shared")
    assert mixed.returncode != 0 and "own twin layouts, this run generates shared" in mixed.stderr
    assert "--overwrite" in mixed.stderr and meta.read_text() == before
    assert run(*args, "--twin-scenes", "own").returncode == 0  # the same layouts: kept, skipped
    assert run(*args, "--twin-scenes", "shared", "--overwrite").returncode == 0
    assert "twin" in json.loads(meta.read_text())["instance"]
    # an episode of the benchmark's version 1 (no "benchmark" in its meta) is not mixed with version 2 ones
    m = json.loads(meta.read_text())
    assert m["benchmark"] == 2
    del m["benchmark"]
    meta.write_text(json.dumps(m))
    mixed = run(*args, "--twin-scenes", "shared")
    assert mixed.returncode != 0 and "benchmark's version 1, this run generates version 2" in mixed.stderr


def test_generate_respects_human_only_skills(tmp_path):
    out = run(
        "generate",
        "--out",
        str(tmp_path),
        "--tasks",
        "knock_over",
        "--embodiment",
        "robot",
        "--episodes",
        "1",
        "--workers",
        "1",
        "--quiet",
    )
    assert out.returncode == 1 and "nothing to generate" in out.stderr  # knock_over is human-only


def test_generate_past_the_split_needs_a_seed(tmp_path):
    many = run("generate", "--out", str(tmp_path), "--tasks", "knock_over", "--episodes", "41", "--quiet")
    assert many.returncode == 2 and "the train split has 40 seeds" in many.stderr and "--seed" in many.stderr
    assert not any(tmp_path.iterdir())  # nothing half-written
    out = run(
        "generate",
        "--out",
        str(tmp_path),
        "--tasks",
        "knock_over",
        "--embodiment",
        "human",
        "--seed",
        "500",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--quiet",
    )
    assert out.returncode == 0, out.stderr
    assert sorted(e.seed for e in iter_episodes(tmp_path)) == [500, 501]


def test_render_writes_side_by_side_video(tmp_path):
    path = tmp_path / "side.mp4"
    out = run("render", "--task", "press_button", "--seed", "1", "--out", str(path), "--size", "96")
    assert out.returncode == 0, out.stderr
    video = read_video(path)
    assert video.shape[1] == 96 and video.shape[2] > 2 * 96 and len(video) > 10
    left, right = video[-1, :, :96].astype(float), video[-1, :, -96:].astype(float)
    assert np.abs(left - right).mean() > 3  # two different hands


def test_table_merges_eval_files_and_refuses_overlaps(tmp_path):
    """humanprompt-sim table: several ``eval --out`` files (more seeds, more policies) → one table of counts;
    an episode given twice, or files evaluated differently, are refused with the file named."""

    def evaluate(name, *args):
        out = run(
            "eval",
            "--tasks",
            "press_button,rotate_lever",
            "--episodes",
            "1",
            "--workers",
            "1",
            "--out",
            str(tmp_path / name),
            *args,
        )
        assert out.returncode == 0, out.stderr
        return str(tmp_path / name)

    a = evaluate("a.json", "--policy", "expert=scripted", "--policy", "noop", "--seed", "7")
    b = evaluate("b.json", "--policy", "expert=scripted", "--policy", "noop", "--seed", "8")
    c = evaluate("c.json", "--policy", "scripted", "--seed", "7")
    assert json.loads(open(c).read())["embodiment"] == "robot"  # a single-policy file keeps its settings too
    out = run("table", a, b, f"expert2={c}")
    assert out.returncode == 0, out.stderr
    assert "| policy | press_button | rotate | seen | human-only | all |" in out.stdout
    assert (
        "| expert | 2/2 | 2/2 | 2/2 = 1.00 (0.34–1.00) | 2/2 = 1.00 (0.34–1.00) | 4/4 = 1.00 (0.51–1.00) |"
        in out.stdout
    )
    assert "| noop | 0/2 | 0/2 | 0/2 = 0.00 (0.00–0.66) |" in out.stdout
    assert "| expert2 | 1/1 | 1/1 |" in out.stdout and "do not cover the same episodes" in out.stdout
    js = json.loads(run("table", a, b, "--json").stdout.strip().splitlines()[-1])
    assert js["policies"]["expert"]["skills"]["rotate"] == {"success": 1.0, "episodes": 2}
    assert js["episodes"] == {"expert": 4, "noop": 4}

    twice = run("table", a, a)
    assert twice.returncode == 2 and "also in" in twice.stderr and "overlapping seed ranges" in twice.stderr
    human = evaluate("h.json", "--policy", "scripted", "--seed", "9", "--embodiment", "human")
    mixed = run("table", c, human)
    assert mixed.returncode == 2 and "embodiment 'human'" in mixed.stderr and c in mixed.stderr
    shared_js = json.loads(open(c).read())
    assert shared_js["twin_scenes"] == "shared"  # the default
    # on shared scenes each skill also says how often the twin's task was done instead (the expert: never)
    assert {k: v["twin_only"] for k, v in shared_js["skills"].items()} == {"press_button": 0.0, "rotate": 0.0}
    assert all(e["twin_success"] is False for e in shared_js["episodes"])
    own = evaluate("o.json", "--policy", "scripted", "--seed", "9", "--twin-scenes", "own")
    assert "twin_only" not in json.loads(open(own).read())["skills"]["rotate"]  # own layouts: no twin to judge
    mixed = run("table", c, own)
    assert mixed.returncode == 2 and "twin_scenes 'own'" in mixed.stderr
    # a file from before the benchmark's version 2 (no "benchmark" key) is version 1: it does not merge
    assert shared_js["benchmark"] == 2
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps({k: v for k, v in shared_js.items() if k != "benchmark"}))
    mixed = run("table", own, str(v1))
    assert mixed.returncode == 2 and "benchmark 1" in mixed.stderr and "version 2" in mixed.stderr
    # --policy-args (e.g. a guidance scale) is part of how a file was evaluated: a guided file does not merge
    saved_b = json.loads(open(b).read())
    assert saved_b["policy_args"] == {}
    (tmp_path / "g.json").write_text(json.dumps(dict(saved_b, policy_args={"guidance": 3.0})))
    mixed = run("table", a, str(tmp_path / "g.json"))
    assert mixed.returncode == 2 and "policy_args {'guidance': 3.0}" in mixed.stderr
    (tmp_path / "line.json").write_text(json.dumps({"skills": {}, "mean": 0.0}))
    bare = run("table", str(tmp_path / "line.json"))
    assert bare.returncode == 2 and "no per-episode outcomes" in bare.stderr
    missing = run("table", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    named = run("table", f"x={a}")
    assert named.returncode == 2 and "single-policy file" in named.stderr

    # compare: the same episodes under two policies, paired (the expert did all 4, noop none: 4 vs 0, p = 2/16)
    cmp = json.loads(run("compare", "expert", "noop", a, b, "--json").stdout.strip().splitlines()[-1])
    assert cmp["a"] == "expert" and cmp["b"] == "noop"
    assert cmp["groups"]["all"] == {
        "episodes": 4,
        "successes_a": 4,
        "successes_b": 0,
        "only_a": 4,
        "only_b": 0,
        "p": 0.125,
    }
    assert cmp["groups"]["rotate"]["episodes"] == 2 and set(cmp["groups"]) >= {"seen", "human-only"}
    shown = run("compare", "noop", "expert", a, b)
    assert shown.returncode == 0 and "| all | 4 | 0 | 4 | 0 | 4 | 0.125 |" in shown.stdout
    unknown = run("compare", "expert", "oracle", a)
    assert unknown.returncode == 2 and "no policy 'oracle'" in unknown.stderr and "expert, noop" in unknown.stderr


def test_mcnemar_exact_p():
    """The exact two-sided McNemar p: a binomial test of the discordant pairs at 1/2."""
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(10, 0) == mcnemar_exact(0, 10) == 2 / 1024
    assert abs(mcnemar_exact(2, 8) - 2 * (1 + 10 + 45) / 1024) < 1e-12
    assert abs(mcnemar_exact(40, 24) - 0.05994) < 1e-4  # scipy.stats.binomtest(24, 64).pvalue = 0.05994
