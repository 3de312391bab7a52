"""Training conveniences shared by both stages: the wall-clock step budget and the LR schedule."""

import types

import pytest

from humanprompt_ros.config.train import TrainConfig
from humanprompt_ros.train import common as training
from humanprompt_ros.train.common import StepBudget, cosine_lr


@pytest.fixture
def clock(monkeypatch):
    """A fake clock for StepBudget: ``clock.advance(s)`` is a step taking ``s`` seconds, exactly."""
    fake = types.SimpleNamespace(now=100.0)  # steps of 1/2**k s below: the arithmetic is exact
    fake.advance = lambda s: setattr(fake, "now", fake.now + s)
    monkeypatch.setattr(training, "time", types.SimpleNamespace(perf_counter=lambda: fake.now))
    return fake


def test_a_time_budget_shrinks_the_step_count_and_the_schedule_follows(clock):
    cfg = TrainConfig(steps=10_000, warmup_steps=2, time_budget_s=0.5)
    budget = StepBudget(cfg, start_step=0, probe=5)
    step = 0
    while step < cfg.steps:
        clock.advance(1 / 64)  # a 15.6 ms step
        step += 1
        budget.update(step)
    assert step == cfg.steps == 32  # 0.5 s of 1/64 s steps: stopped early, and the config says how far it went
    assert cosine_lr(cfg.steps, cfg) == pytest.approx(0.1 * cfg.lr)  # the schedule ended where training did


def test_without_a_budget_the_steps_are_exact_and_torchrun_refuses_one(clock):
    cfg = TrainConfig(steps=30)
    budget = StepBudget(cfg, 0, probe=5)
    for step in range(1, 31):
        clock.advance(1.0)
        budget.update(step)
    assert cfg.steps == 30
    with pytest.raises(ValueError, match="time_budget_s"):
        StepBudget(TrainConfig(time_budget_s=10), 0, world_size=2)


def test_slow_first_steps_do_not_shorten_the_run(clock):
    cfg = TrainConfig(steps=10_000, warmup_steps=2, time_budget_s=1.0)
    budget = StepBudget(cfg, start_step=0, probe=5)
    step = 0
    while step < cfg.steps:
        clock.advance(1 / 16 if step < 5 else 1 / 256)  # e.g. caches filled on the first steps
        step += 1
        budget.update(step)
    # 5/16 s for the first 5 steps, then 11/16 s left at 1/256 s a step: 176 more, not 11 at the first speed
    assert step == 5 + 176
