"""Policies: what turns (camera frame, proprioception) into an action chunk, given a prompt.

:mod:`.base` is the contract and the registry (``make_policy``); :mod:`.baselines` the policies that
learn nothing (replay, noop, random, the scripted expert); :mod:`.learned` the trained checkpoint.
Importing this package registers them all.
"""

from humanprompt_ros.policies.base import Policy, as_prompt, available_policies, make_policy, register_policy
from humanprompt_ros.policies.baselines import (
    NoOpPolicy,
    OpenLoopPlan,
    RandomPolicy,
    ReplayPolicy,
    ScriptedFromPrompt,
    ScriptedPolicy,
)
from humanprompt_ros.policies.learned import LearnedPolicy

__all__ = [
    "LearnedPolicy",
    "NoOpPolicy",
    "OpenLoopPlan",
    "Policy",
    "RandomPolicy",
    "ReplayPolicy",
    "ScriptedFromPrompt",
    "ScriptedPolicy",
    "as_prompt",
    "available_policies",
    "make_policy",
    "register_policy",
]
