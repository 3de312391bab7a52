"""The README's main job (`humanprompt-demo`, run by scripts/demo.sh) works end to end."""

import json
import subprocess
import sys

import pytest

from ros_helpers import REPO_ROOT, make_ros_env, require_rclpy, reserve_domain_id


def demo(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "humanprompt_ros.cli.demo", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_defaults_are_the_learned_policy_on_a_human_only_skill_from_another_scene():
    from humanprompt_ros.cli.demo import DEFAULT_SEED, DEFAULT_TASK, default_prompt_seed
    from humanprompt_ros.sim.benchmark import load_benchmark
    from humanprompt_ros.sim.tasks import load_task
    from humanprompt_ros.paths import config_path

    bench = load_benchmark()
    assert load_task(config_path("tasks", f"{DEFAULT_TASK}.yaml")).skill in bench.human_only_skills
    heldout = bench.seeds.heldout.seeds()
    from humanprompt_ros.eval.rollout import prompt_seed

    prompt = default_prompt_seed(DEFAULT_SEED, "checkpoint")
    assert DEFAULT_SEED in heldout and prompt not in bench.seeds.train.seeds() and prompt != DEFAULT_SEED
    assert prompt == prompt_seed(DEFAULT_SEED, "other")  # the scene humanprompt-sim eval prompts this episode with
    assert default_prompt_seed(DEFAULT_SEED, "replay") == DEFAULT_SEED  # replay needs the prompt's own scene


def test_a_missing_checkpoint_is_a_set_up_error_that_says_what_to_do(tmp_path):
    missing = tmp_path / "policy.safetensors"
    out = demo("--checkpoint", str(missing), "--prompt-dir", str(tmp_path / "prompts"), timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{missing}, which does not exist" in out.stderr
    assert "humanprompt-train stage2" in out.stderr and "--policy replay" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "prompts").exists()  # failed before any work


@pytest.mark.ros
@require_rclpy()
def test_demo_completes_a_task_from_a_human_prompt(tmp_path):
    with reserve_domain_id() as domain:
        env = make_ros_env(domain)
        env.setdefault("MUJOCO_GL", "osmesa")
        out = demo("--policy", "replay", "--domain-id", str(domain), "--prompt-dir", str(tmp_path / "prompts"),
                   "--timeout", "240", "--require-success", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {**result, "task": "knock_over", "policy": "replay", "success": True}
    assert result["prompt_seed"] == result["seed"] and result["checkpoint"] is None
    assert "humanprompt-prompt set" in out.stdout


@pytest.mark.ros
@require_rclpy()
def test_the_readme_default_runs_the_shipped_learned_policy(tmp_path):
    """scripts/demo.sh's job with its defaults: the shipped checkpoint, a human-only skill, a prompt from
    another scene, set through the parameter service. The outcome is reported (the policy may fail)."""
    shipped = REPO_ROOT / "models" / "policy.safetensors"
    with reserve_domain_id() as domain:
        env = make_ros_env(domain)
        env.setdefault("MUJOCO_GL", "osmesa")
        out = demo("--domain-id", str(domain), "--prompt-dir", str(tmp_path / "prompts"), "--timeout", "240", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["policy"] == "checkpoint" and result["task"] == "knock_over"
    assert result["checkpoint"] == str(shipped) and result["prompt_seed"] != result["seed"]
    assert isinstance(result["success"], bool) and result["steps"] > 0
    assert "outcome: " in out.stdout and "humanprompt-prompt set" in out.stdout


@pytest.mark.ros
@require_rclpy()
def test_in_lockstep_the_demo_repeats_the_sim_eval_episode(tmp_path):
    """--lockstep: physics waits for each command, so the demo's outcome is the sim eval's for the default
    episode, in which the shipped policy completes the human-only skill (why it is the default)."""
    with reserve_domain_id() as domain:
        env = make_ros_env(domain)
        env.setdefault("MUJOCO_GL", "osmesa")
        out = demo("--domain-id", str(domain), "--prompt-dir", str(tmp_path / "prompts"), "--timeout", "240",
                   "--lockstep", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {**result, "policy": "checkpoint", "task": "knock_over", "lockstep": True, "success": True}
