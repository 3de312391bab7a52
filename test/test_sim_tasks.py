"""Task YAML loading and validation (HumanPrompt-Sim)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from humanprompt_ros.config.loader import ConfigError
from humanprompt_ros.paths import config_path
from humanprompt_ros.sim.tasks import SKILLS, load_task, load_tasks, sample_instance, task_files

GOOD = textwrap.dedent("""\
    name: t
    skill: push_to_goal
    horizon: 50
    objects:
      box:
        kind: box
        position: {low: [-0.05, -0.1], high: [0.0, 0.1]}
        size: {low: [0.02, 0.02, 0.02], high: [0.025, 0.025, 0.025]}
        colors: [[1, 0, 0]]
    goal:
      object: box
      region: {low: [0.1, -0.1], high: [0.15, 0.1]}
    """)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "task.yaml"
    p.write_text(text)
    return p


def test_shipped_tasks_cover_eight_skills_and_five_kinds():
    tasks = load_tasks()
    assert len({t.skill for t in tasks}) >= 8
    kinds = {o.kind for t in tasks for o in t.config.objects.values()}
    assert {"box", "cylinder", "ball", "button", "drawer"} <= kinds
    assert all(t.skill in SKILLS for t in tasks)


def test_good_task_loads_and_samples_deterministically(tmp_path):
    task = load_task(write(tmp_path, GOOD))
    a, b, c = sample_instance(task, 3), sample_instance(task, 3), sample_instance(task, 4)
    assert np.allclose(a.target.pos, b.target.pos) and np.allclose(a.goal_xy, b.goal_xy)
    assert not np.allclose(a.target.pos, c.target.pos)
    assert np.linalg.norm(a.goal_xy - a.target.pos) >= task.config.goal.min_distance


@pytest.mark.parametrize(
    "old,new,key,problem",
    [
        ("skill: push_to_goal", "skill: juggle", "skill", "unknown skill 'juggle'"),
        (
            "region: {low: [0.1, -0.1], high: [0.15, 0.1]}",
            "region: {low: [0.1, -0.1], high: [0.9, 0.1]}",
            "goal.region",
            "unreachable goal",
        ),
        ("horizon: 50\n", "", "horizon", "required key is missing"),
        ("horizon: 50", "horizon: fifty", "horizon", "expected an integer"),
        ("kind: box", "kind: teapot", "objects.box.kind", "must be one of"),
        ("colors: [[1, 0, 0]]", "colors: red", "objects.box.colors", "expected a list"),
        ("skill: push_to_goal", "skill: press_button", "objects.box.kind", "cannot act on a box"),
        ("object: box", "object: ball", "goal.object", "no object named 'ball'"),
        ("name: t", "name: t\nspeed: 3", "speed", "unknown key"),
    ],
)
def test_bad_task_yaml_names_file_key_and_problem(tmp_path, old, new, key, problem):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_task(path)
    msg = str(info.value)
    assert str(path) in msg and key in msg and problem in msg, msg


def test_threshold_out_of_range_is_unreachable(tmp_path):
    text = textwrap.dedent("""\
        skill: pick_lift
        horizon: 40
        objects:
          ball: {kind: ball, position: {low: [0, 0], high: [0.05, 0.05]}, size: {low: [0.02], high: [0.025]},
                 colors: [[0, 1, 0]]}
        goal: {object: ball, threshold: 0.5}
        """)
    with pytest.raises(ConfigError, match=r"goal.threshold: unreachable goal"):
        load_task(write(tmp_path, text))


def test_task_selection_by_name_glob():
    names = [f.stem for f in task_files("pick*")]
    assert names == ["pick_lift", "pick_place"]
    with pytest.raises(ValueError, match="no task matches"):
        task_files("no_such_task*")


def test_benchmark_splits(tmp_path):
    from humanprompt_ros.sim.benchmark import load_benchmark

    bench = load_benchmark()
    assert set(bench.robot_skills).isdisjoint(bench.human_only_skills)
    assert set(bench.robot_skills) | set(bench.human_only_skills) == {t.skill for t in load_tasks()}
    assert 2 <= len(bench.human_only_skills) <= 3
    train, held = set(bench.seeds.train.seeds()), set(bench.seeds.heldout.seeds())
    assert train and held and train.isdisjoint(held)
    bad = tmp_path / "benchmark.yaml"
    bad.write_text(
        "robot_skills: [push_to_goal]\nhuman_only_skills: [juggle]\n"
        "seeds: {train: {start: 0, count: 5}, heldout: {start: 100, count: 5}}\n"
    )
    with pytest.raises(ConfigError, match="human_only_skills: unknown skill 'juggle'"):
        load_benchmark(str(bad))


def test_twin_scenes_pair_each_human_only_skill_with_a_robot_skill():
    """Only the prompt tells twins apart: same object kinds, sizes and colours in both scenes."""
    from humanprompt_ros.sim.benchmark import load_benchmark
    from humanprompt_ros.sim.tasks import load_tasks, twin_pairs, twin_tasks

    twins = twin_tasks()
    assert twins == {
        "push_box": "pick_place",
        "pick_place": "push_box",
        "pull_puck": "knock_over",
        "knock_over": "pull_puck",
        "rotate_lever": "press_button",
        "press_button": "rotate_lever",
    }
    assert twin_pairs() == [("knock_over", "pull_puck"), ("pick_place", "push_box"), ("press_button", "rotate_lever")]
    bench = load_benchmark()
    tasks = {t.name: t for t in load_tasks()}
    for a, b in twins.items():
        assert {tasks[a].skill, tasks[b].skill} & set(bench.human_only_skills)
        assert {tasks[a].skill, tasks[b].skill} & set(bench.robot_skills)
        look = lambda t: sorted(
            (o.kind, tuple(map(tuple, o.colors)), tuple(o.size.low), tuple(o.size.high))  # noqa: E731
            for o in t.config.objects.values()
        )
        for (kind, colors, low, high), (kind2, colors2, low2, high2) in zip(look(tasks[a]), look(tasks[b])):
            assert (kind, colors) == (kind2, colors2), (a, b)
            # size ranges overlap (push_box's box may be 2 mm taller than pick_place's)
            assert all(max(lo, lo2) < min(hi, hi2) + 1e-9 for lo, hi, lo2, hi2 in zip(low, high, low2, high2)), (a, b)


def test_shared_twin_scenes_are_one_scene_for_both_twins():
    """twin_scenes: shared draws one layout per seed for a task and its twin: identical first frames (so only
    the prompt says which is asked), each task keeping its own goal, and both experts succeed in it; the
    own layouts (the default until 2026-12-02) differ between twins and are what they always were."""
    import dataclasses

    from humanprompt_ros.sim.env import SimEnv
    from humanprompt_ros.sim.runner import expert_episode
    from humanprompt_ros.sim.scene import load_sim_config
    from humanprompt_ros.sim.tasks import load_task, sample_instance, twin_tasks

    shared = dataclasses.replace(load_sim_config(), twin_scenes="shared")
    tasks = {n: load_task(config_path("tasks", f"{n}.yaml")) for n in twin_tasks()}
    for a, b in (("knock_over", "pull_puck"), ("pick_place", "push_box"), ("press_button", "rotate_lever")):
        frames = {}
        for name in (a, b):
            env = SimEnv(tasks[name], "robot", config=shared, image_size=64)
            try:
                frames[name] = env.reset(1_000_003).frame
                assert env.twin.name == ({a, b} - {name}).pop()
                assert env.instance.target.name == tasks[name].config.goal.object
                assert len(env.instance.marks) == sum(
                    t.config.goal.region is not None or t.skill == "knock_over" for t in (tasks[a], tasks[b])
                )
            finally:
                env.close()
        assert np.array_equal(frames[a], frames[b]), (a, b)
        ia, ib = sample_instance(tasks[a], 5, twin=tasks[b]), sample_instance(tasks[b], 5, twin=tasks[a])
        assert [o.pos.tolist() for o in ia.objects] == [o.pos.tolist() for o in ib.objects]
        own_a, own_b = sample_instance(tasks[a], 5), sample_instance(tasks[b], 5)
        assert [o.pos.tolist() for o in own_a.objects] != [o.pos.tolist() for o in own_b.objects]
        for name in (a, b):
            env = SimEnv(tasks[name], "robot", render=False, config=shared)
            try:
                assert all(expert_episode(tasks[name], "robot", seed, render=False, env=env).success for seed in (0, 1))
            finally:
                env.close()
    # the default layouts did not move (seed 0 of knock_over as generated since 2026-11-27)
    bottle = sample_instance(tasks["knock_over"], 0).target
    assert np.allclose(bottle.pos, [-0.02545, -0.02056], atol=1e-5)


def test_benchmark_v2_shared_scenes_draw_targets_from_their_own_ranges_and_mark_goals_apart():
    """Version 2 of the benchmark: in a shared twin scene each task's target comes from its own task's
    range (v1 drew pull_puck's puck and rotate_lever's lever from the twin's distractor range, the whole
    table), the two tasks of a pair mark their goals differently (v1: two green discs), and press_button's
    button and rotate_lever's lever stay clear of each other's expert."""
    from humanprompt_ros.sim.tasks import BENCHMARK_VERSION, twin_pairs, work_corridor

    assert BENCHMARK_VERSION == 2
    tasks = {t.name: t for t in load_tasks()}
    for a, b in twin_pairs():
        looks = {(tuple(tasks[n].config.goal.look.color), tasks[n].config.goal.look.shape) for n in (a, b)}
        has_goal = [n for n in (a, b) if tasks[n].config.goal.region is not None or tasks[n].skill == "knock_over"]
        assert len(has_goal) < 2 or len(looks) == 2, (a, b)
        for seed in range(40):
            inst = sample_instance(tasks[a], seed, twin=tasks[b])
            for name in (a, b):
                cfg = tasks[name].config
                pos = inst.object(cfg.goal.object).pos
                rng = cfg.objects[cfg.goal.object].position
                assert np.all(pos >= np.asarray(rng.low) - 1e-9) and np.all(pos <= np.asarray(rng.high) + 1e-9), (
                    name,
                    seed,
                )
            marks = {tuple(m.look.color) + (m.look.shape,) for m in inst.marks}
            assert len(marks) == len(inst.marks)  # each goal in the scene looks its own
    # the lever and the button: each out of the other's expert's corridor in every shared scene
    for seed in range(40):
        inst = sample_instance(tasks["rotate_lever"], seed, twin=tasks["press_button"])
        lever, button = inst.object("lever"), inst.object("button")
        for capsules, o in (
            (work_corridor("rotate", lever, None, tasks["rotate_lever"].threshold), button),
            (work_corridor("press_button", button, None, None), lever),
        ):
            ab = [(np.asarray(p), np.asarray(q), w) for p, q, w in capsules]
            assert all(
                min(np.linalg.norm(o.pos - (p + t * (q - p))) for t in np.linspace(0, 1, 21)) > w for p, q, w in ab
            )


def test_a_shared_scene_judges_the_twin_task_too():
    """On a shared twin scene the env also tracks the twin's predicate: the pull expert's actions played in
    the knock-over episode of the same seed do the twin's task (twin_success) and not the asked one; the
    asked task's own expert does not do the twin's. Own layouts have no twin to judge (None)."""
    import dataclasses

    from humanprompt_ros.sim.env import SimEnv
    from humanprompt_ros.sim.runner import expert_episode
    from humanprompt_ros.sim.scene import load_sim_config
    from humanprompt_ros.sim.tasks import load_task

    shared = dataclasses.replace(load_sim_config(), twin_scenes="shared")
    knock, pull = (load_task(config_path("tasks", f"{n}.yaml")) for n in ("knock_over", "pull_puck"))
    env, other = SimEnv(knock, "robot", render=False, config=shared), SimEnv(pull, "robot", render=False, config=shared)
    own = SimEnv(knock, "robot", render=False, config=dataclasses.replace(load_sim_config(), twin_scenes="own"))
    try:
        seed = 2
        rec = expert_episode(knock, "robot", seed, env=env)
        assert rec.success and env.twin_success is False
        pulled = expert_episode(pull, "robot", seed, env=other)
        assert pulled.success and other.twin_success is False
        env.reset(seed)
        for a in pulled.actions:
            env.step(a)
        assert env.twin_success is True and env.success is False
        own.reset(seed)
        assert own.twin_success is None
    finally:
        for e in (env, other, own):
            e.close()


def test_twin_scenes_setting_is_validated(tmp_path):
    from humanprompt_ros.sim.scene import load_sim_config

    bad = tmp_path / "sim.yaml"
    bad.write_text(config_path("sim.yaml").read_text().replace("twin_scenes: shared", "twin_scenes: mixed"))
    with pytest.raises(Exception, match="twin_scenes"):
        load_sim_config(bad)
