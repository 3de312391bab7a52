"""Test-wide settings and the fixtures several test files share (helpers: test/helpers/, importable as
``helpers`` through ``pythonpath`` in pytest.ini)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import torch

from helpers.ros import make_ros_env, reserve_domain_id

# Small models at batch 1 gain nothing from several threads, and on a busy machine OpenMP threads that
# wait on each other make them 10-50x slower. One thread keeps the suite's timing predictable.
torch.set_num_threads(1)


@pytest.fixture
def ros_domain_id() -> Iterator[int]:
    """A ROS_DOMAIN_ID reserved for this test (helpers.ros.reserve_domain_id)."""
    with reserve_domain_id() as domain:
        yield domain


@pytest.fixture
def ros_env(ros_domain_id: int) -> dict[str, str]:
    """Environment variables for DDS child processes of this test (its own domain, localhost)."""
    return make_ros_env(ros_domain_id)


@pytest.fixture
def peer(ros_domain_id: int):
    """An in-test ROS peer (humanprompt_ros.ros.probe.RosPeer) on this test's domain."""
    from humanprompt_ros.ros.probe import RosPeer

    with RosPeer(ros_domain_id) as p:
        yield p


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The tiny policy checkpoint of this pytest process (helpers.tiny_checkpoint), trained on first use."""
    from helpers.tiny_checkpoint import make_tiny_policy_checkpoint

    return make_tiny_policy_checkpoint(tmp_path_factory.mktemp("tiny_checkpoint"))
