"""Training data from several datasets at once (a config's ``data``: a root, a glob or a list of them), checked
before any array is read: one frame rate, and the hand the policy is for.

Both stages' loaders (``stage1.load_clip_episodes``, ``stage2_data.load_policy_episodes``) read through
:func:`training_episodes`; :func:`humanprompt_ros.data.dataset_roots` says which directories a spec names.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Iterator, Sequence

from humanprompt_ros.data import DatasetSpec, Episode, iter_episodes


def training_episodes(
    spec: DatasetSpec,
    *,
    same_rate: bool = True,
    hand: str | None = None,
    side: str | None = None,
    **filters: Any,
) -> Iterator[Episode]:
    """:func:`iter_episodes` of ``spec`` (``filters`` as there), checked before any array is read.

    With ``same_rate``, every episode must have the same ``fps`` (a model learns per step: a clip stride or
    an action chunk means another duration at another rate). With ``hand`` (a robot hand's name), robot
    episodes must be of that hand (``meta["hand"]``, when recorded); with ``side`` (its ``right``/``left``),
    human episodes that record a ``handedness`` must be of that side (a left hand's actions mirror a right
    hand's). ``ValueError`` naming the roots, the episodes and the fix otherwise. The episodes are handed
    out once, each let go after use, so a large dataset still streams.
    """
    found = deque(iter_episodes(spec, **filters))
    problems = [p for p in (_rate_problem(found) if same_rate else None, _hand_problem(found, hand, side)) if p]
    if problems:
        raise ValueError(f"data {_spec_text(spec)}: " + "; ".join(problems))
    while found:
        yield found.popleft()


def _spec_text(spec: DatasetSpec) -> str:
    return str(spec) if isinstance(spec, (str, Path)) else ", ".join(str(s) for s in spec)


def _examples(episodes: Sequence[Episode], n: int = 3) -> str:
    names = ", ".join(str(e.path) for e in episodes[:n])
    return names + (f" and {len(episodes) - n} more" if len(episodes) > n else "")


def _rate_problem(episodes: Sequence[Episode]) -> str | None:
    by_rate: dict[float, list[Episode]] = {}
    for ep in episodes:
        by_rate.setdefault(ep.fps, []).append(ep)
    if len(by_rate) < 2:
        return None
    common = max(by_rate, key=lambda fps: len(by_rate[fps]))
    rates = "; ".join(
        f"{fps:g} fps: {len(eps)} episode(s) under {', '.join(sorted({str(e.root) for e in eps}))}"
        + ("" if fps == common else f" ({_examples(eps)})")
        for fps, eps in sorted(by_rate.items())
    )
    return (
        f"episodes at different frame rates ({rates}). Training needs one rate: record at it "
        f"(humanprompt-record --ros-args -p fps:={common:g}, humanprompt-data import-bag --fps {common:g}), or "
        f"resample a video before extracting its hand pose (ffmpeg -i in.mp4 -vf fps={common:g} out.mp4), or "
        "leave those roots out"
    )


def _hand_problem(episodes: Sequence[Episode], hand: str | None, side: str | None) -> str | None:
    out = []
    if hand is not None:
        other = [e for e in episodes if e.embodiment == "robot" and e.meta.get("hand") not in (None, hand)]
        if other:
            hands = ", ".join(sorted({str(e.meta.get("hand")) for e in other}))
            out.append(
                f"{len(other)} robot episode(s) of hand {hands}, not {hand!r}, the hand this policy is for "
                f"({_examples(other)}): leave them out, or train for that hand (hand: ...)"
            )
    if side is not None:
        other = [e for e in episodes if e.embodiment == "human" and e.meta.get("handedness") not in (None, side)]
        if other:
            sides = ", ".join(sorted({str(e.meta.get("handedness")) for e in other}))
            out.append(
                f"{len(other)} human episode(s) of a {sides} hand, the robot hand is a {side} one "
                f"({_examples(other)}): their actions are its mirror image; record the {side} hand, or leave them out"
            )
    return "; ".join(out) or None
