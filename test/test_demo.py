"""The README's main job (`humanprompt-demo`, run by scripts/demo.sh) works end to end.

Whether the shipped model completes the default episode is a property of the weights, not of the code: a
retrain may change it. ``benchmarks/bench_shipped_model.py`` checks that; here the demo only has to run and
report its outcome, whichever it is.
"""

import json
import re
import subprocess
import sys

import pytest

from helpers.ros import REPO_ROOT, require_rclpy


def demo(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "humanprompt_ros.cli.demo", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def prompt_dir(tmp_path_factory):
    """One prompt directory for the module: the demo caches the human demonstrations it records there."""
    return tmp_path_factory.mktemp("demo") / "prompts"


def outcome(out: subprocess.CompletedProcess) -> dict:
    """The demo's JSON result (its last line), checked against its printed outcome line."""
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    printed = re.findall(r"\[demo\] 4/4 outcome: (SUCCESS|FAILURE)", out.stdout)
    assert printed == ["SUCCESS" if result["success"] else "FAILURE"], out.stdout[-2000:]
    return result


def test_defaults_are_the_learned_policy_on_a_human_only_skill_from_another_scene():
    from humanprompt_ros.cli.demo import DEFAULT_SEED, DEFAULT_TASK, default_prompt_seed
    from humanprompt_ros.paths import config_path
    from humanprompt_ros.sim.benchmark import load_benchmark
    from humanprompt_ros.sim.tasks import load_task

    bench = load_benchmark()
    assert load_task(config_path("tasks", f"{DEFAULT_TASK}.yaml")).skill in bench.human_only_skills
    heldout = bench.seeds.heldout.seeds()
    from humanprompt_ros.eval.rollout import prompt_seed

    prompt = default_prompt_seed(DEFAULT_SEED, "checkpoint")
    # a held-out scene: from the held-out split's start on (evaluations go past its first 50 seeds, e.g. the model
    # card's 200), never a training seed
    assert DEFAULT_SEED >= heldout[0] and DEFAULT_SEED not in bench.seeds.train.seeds()
    assert prompt not in bench.seeds.train.seeds() and prompt != DEFAULT_SEED
    assert prompt == prompt_seed(DEFAULT_SEED, "other")  # the scene humanprompt-sim eval prompts this episode with
    assert default_prompt_seed(DEFAULT_SEED, "replay") == DEFAULT_SEED  # replay needs the prompt's own scene


def test_a_missing_checkpoint_is_a_set_up_error_that_says_what_to_do(tmp_path):
    missing = tmp_path / "policy.safetensors"
    out = demo("--checkpoint", str(missing), "--prompt-dir", str(tmp_path / "prompts"), timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{missing}, which does not exist" in out.stderr
    assert "scripts/train_prompted_state.sh" in out.stderr and "--policy replay" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "prompts").exists()  # failed before any work


@pytest.mark.ros
@require_rclpy()
def test_demo_completes_a_task_from_a_human_prompt(prompt_dir, ros_env):
    """--policy replay: the same scene's human demonstration, replayed, completes the task (the simulator and the
    human expert make that so, not any trained weights)."""
    out = demo(
        "--policy",
        "replay",
        "--domain-id",
        ros_env["ROS_DOMAIN_ID"],
        "--prompt-dir",
        str(prompt_dir),
        "--timeout",
        "240",
        "--require-success",
        env=ros_env,
    )
    result = outcome(out)
    assert result == {**result, "task": "knock_over", "policy": "replay", "success": True}
    assert result["prompt_seed"] == result["seed"] and result["checkpoint"] is None
    assert "humanprompt-prompt set" in out.stdout


@pytest.mark.ros
@require_rclpy()
def test_the_readme_default_runs_the_shipped_learned_policy(prompt_dir, ros_env):
    """scripts/demo.sh's job with its defaults: the shipped checkpoint, a human-only skill, a prompt from
    another scene, set through the parameter service. The outcome is reported (the policy may fail)."""
    shipped = REPO_ROOT / "models" / "policy.safetensors"
    out = demo(
        "--domain-id", ros_env["ROS_DOMAIN_ID"], "--prompt-dir", str(prompt_dir), "--timeout", "240", env=ros_env
    )
    result = outcome(out)
    assert result["policy"] == "checkpoint" and result["task"] == "knock_over"
    assert result["checkpoint"] == str(shipped) and result["prompt_seed"] != result["seed"]
    assert isinstance(result["success"], bool) and result["steps"] > 0
    assert "humanprompt-prompt set" in out.stdout


@pytest.mark.ros
@require_rclpy()
def test_in_lockstep_the_demo_runs_a_checkpoint_to_the_end_of_the_episode(prompt_dir, ros_env, tiny_checkpoint):
    """--lockstep --checkpoint: physics waits for each command, so the episode runs to the task's horizon (or
    its success) whatever the machine's load. A tiny checkpoint (its actions mean nothing) keeps this about
    the demo, not about any weights; benchmarks/bench_shipped_model.py runs the shipped one."""
    from humanprompt_ros.cli.demo import DEFAULT_TASK
    from humanprompt_ros.paths import config_path
    from humanprompt_ros.sim.tasks import load_task

    out = demo(
        "--domain-id",
        ros_env["ROS_DOMAIN_ID"],
        "--prompt-dir",
        str(prompt_dir),
        "--timeout",
        "240",
        "--lockstep",
        "--checkpoint",
        str(tiny_checkpoint),
        env=ros_env,
    )
    result = outcome(out)
    assert result == {
        **result,
        "policy": "checkpoint",
        "task": DEFAULT_TASK,
        "lockstep": True,
        "checkpoint": str(tiny_checkpoint),
    }
    horizon = load_task(config_path("tasks", f"{DEFAULT_TASK}.yaml")).horizon
    assert result["steps"] == horizon or (result["success"] and 0 < result["steps"] <= horizon), result
