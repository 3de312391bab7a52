"""Training conveniences shared by both stages: the wall-clock step budget and the LR schedule."""

import time

import pytest

from humanprompt_ros.train.common import StepBudget, cosine_lr
from humanprompt_ros.config.train import TrainConfig


def test_a_time_budget_shrinks_the_step_count_and_the_schedule_follows():
    cfg = TrainConfig(steps=10_000, warmup_steps=2, time_budget_s=0.5)
    budget = StepBudget(cfg, start_step=0, probe=5)
    step = 0
    t0 = time.perf_counter()
    while step < cfg.steps:
        time.sleep(0.01)  # a 10 ms "step"
        step += 1
        budget.update(step)
    assert step == cfg.steps < 10_000  # stopped early, and the config says how far it went
    assert 10 <= step <= 60 and time.perf_counter() - t0 < 2.0
    assert cosine_lr(cfg.steps, cfg) == pytest.approx(0.1 * cfg.lr)  # the schedule ended where training did


def test_without_a_budget_the_steps_are_exact_and_torchrun_refuses_one():
    cfg = TrainConfig(steps=30)
    budget = StepBudget(cfg, 0, probe=5)
    for step in range(1, 31):
        budget.update(step)
    assert cfg.steps == 30
    with pytest.raises(ValueError, match="time_budget_s"):
        StepBudget(TrainConfig(time_budget_s=10), 0, world_size=2)


def test_slow_first_steps_do_not_shorten_the_run():
    cfg = TrainConfig(steps=10_000, warmup_steps=2, time_budget_s=0.6)
    budget = StepBudget(cfg, start_step=0, probe=5)
    step = 0
    while step < cfg.steps:
        time.sleep(0.05 if step < 5 else 0.005)  # e.g. caches filled on the first steps
        step += 1
        budget.update(step)
    assert step > 40  # ~0.35 s left at 5 ms/step after the slow start, not 0.35 / 0.05
