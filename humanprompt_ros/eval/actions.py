"""Open-loop evaluation of a stage-2 policy: its action chunks against held-out expert demonstrations,
prompted by a human demonstration of the same task and of another one."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from humanprompt_ros.action import FINGERTIPS, WRIST_POS, action_dim_mask
from humanprompt_ros.models.policy_model import PromptPolicyModel
from humanprompt_ros.progress import progress
from humanprompt_ros.train.stage2_data import PolicyEpisode, chunk


def heldout_samples(
    heldout: Sequence[PolicyEpisode], times: int = 4, twins: dict[str, str] | None = None
) -> list[tuple[PolicyEpisode, PolicyEpisode, PolicyEpisode, np.ndarray]]:
    """The open-loop evaluation samples of held-out episodes: for every robot demonstration whose task has
    human ones, (robot episode, a human demo of the same task, one of another task, the ``times`` evenly
    spaced steps evaluated). The other task is the task's twin from ``twins`` (same objects, another
    skill; on shared twin scenes the same first frame) when it has human demos, else the next task in
    name order. Prompts rotate through each task's human demos, so the selection is fixed for a given set
    of episodes."""
    robot = [e for e in heldout if e.embodiment == "robot"]
    human: dict[str, list[PolicyEpisode]] = {}
    for e in heldout:
        if e.embodiment == "human":
            human.setdefault(e.task, []).append(e)
    tasks = sorted(human)
    if not robot or len(tasks) < 2:
        raise ValueError(
            "open-loop evaluation needs held-out robot episodes and human episodes of >= 2 tasks "
            "(humanprompt-sim generate --split heldout --all-robot)"
        )
    out = []
    for i, ep in enumerate(e for e in robot if e.task in human):
        other_task = (twins or {}).get(ep.task)
        if other_task not in human:
            other_task = tasks[(tasks.index(ep.task) + 1) % len(tasks)]
        out.append(
            (
                ep,
                human[ep.task][i % len(human[ep.task])],
                human[other_task][i % len(human[other_task])],
                np.linspace(0, len(ep.actions) - 1, times).round().astype(int),
            )
        )
    return out


@torch.no_grad()
def evaluate_actions(
    model: PromptPolicyModel,
    heldout: Sequence[PolicyEpisode],
    times: int = 4,
    seed: int = 0,
    groups: dict[str, Sequence[str]] | None = None,
    show: bool = True,
    twins: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Open-loop action error on held-out robot demonstrations, prompted by a held-out human demo of
    the same task and of another task (its twin from ``twins`` when it has one, else the next one in
    name order), with the same sampling noise.

    Per robot episode, ``times`` evenly spaced steps t: the policy's chunk from (frame t, proprio t)
    against the expert's actions t … t+H−1; errors are the mean wrist-position and fingertip distance
    (cm, fingers of the robot hand). A policy that reads its prompt is closer with the same-task prompt,
    also on skills with no robot training data. ``*_hold`` is the error of a hand that holds its current
    pose for the whole chunk: a policy that has learned where to move beats it. Returns {"skills": {skill:
    {wrist_same, wrist_other, tips_same, tips_other, wrist_hold, tips_hold, same_better, samples}}, and
    the same means over each of ``groups`` (e.g. the benchmark's seen and unseen skills)};
    ``same_better`` is the share of samples whose wrist error is smaller with the same-task prompt.
    """
    samples = heldout_samples(heldout, times, twins)
    tokens: dict[int, torch.Tensor] = {}

    def prompt_tokens(ep: PolicyEpisode) -> torch.Tensor:
        if id(ep) not in tokens:
            tokens[id(ep)] = model.encode_prompt(ep.frames)
        return tokens[id(ep)]

    h = model.cfg.policy.horizon

    def errors(pred: np.ndarray, truth: np.ndarray, tips: np.ndarray) -> tuple[float, float]:
        """(H, 24) chunk vs the truth → (wrist, fingertip) distance in cm; ``tips``: the hand's fingers."""
        return (
            100 * np.linalg.norm(pred[:, WRIST_POS] - truth[:, WRIST_POS], axis=-1).mean(),
            100
            * np.linalg.norm((pred[:, FINGERTIPS] - truth[:, FINGERTIPS]).reshape(h, 5, 3), axis=-1)[:, tips].mean(),
        )

    rows: dict[str, dict[str, list[float]]] = {}
    for i, (ep, same, other, steps) in enumerate(progress(samples, desc="action error", enabled=show)):
        skills = {
            name: torch.tensor([model.cfg.skills.index(e.skill)]) if e.skill in model.cfg.skills else None
            for name, e in (("same", same), ("other", other))
        }  # the oracle's token: the prompt's skill
        if model.cfg.condition == "skill_oracle" and None in skills.values():
            continue
        tips = action_dim_mask(ep.mask)[9:].reshape(5, 3).all(1)
        r = rows.setdefault(
            ep.skill,
            {k: [] for k in ("wrist_same", "wrist_other", "tips_same", "tips_other", "wrist_hold", "tips_hold")},
        )
        for t in steps:
            truth = chunk(ep.actions, int(t), h)
            preds = {"hold": np.broadcast_to(ep.proprio[t], truth.shape)}  # the baseline that does not move
            for name, prompt in (("same", same), ("other", other)):
                gen = torch.Generator().manual_seed(seed + 1000 * i + int(t))
                cond = model.condition_on_frame(prompt_tokens(prompt), ep.frames[t], skills[name])
                preds[name] = model.sample_actions(cond, torch.from_numpy(ep.proprio[t])[None], gen)[0].numpy()
            for name, pred in preds.items():
                wrist, tip = errors(pred, truth, tips)
                r[f"wrist_{name}"].append(wrist)
                r[f"tips_{name}"].append(tip)

    def summary(vals: dict[str, list[float]]) -> dict[str, float]:
        out = {k: round(float(np.mean(v)), 3) for k, v in vals.items()}
        diff = np.array(vals["wrist_other"]) - np.array(vals["wrist_same"])
        out["same_better"] = round(float(np.mean(diff > 0)), 3)  # share of samples
        out["samples"] = len(diff)
        return out

    result: dict[str, Any] = {"skills": {k: summary(v) for k, v in sorted(rows.items())}}
    for name, members in (groups or {}).items():
        vals = [rows[k] for k in members if k in rows]
        if vals:
            result[name] = summary({key: [x for v in vals for x in v[key]] for key in vals[0]})
    return result
