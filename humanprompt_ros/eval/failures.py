"""How episodes failed: each failed episode's final task distances (``SuccessTracker.measures``, stored per
episode in eval files as ``final``) → one failure mode, counted per skill.

Modes, the first that applies:

* ``never reached``: no fingertip came within ``REACH_CM`` of the object's surface;
* ``untouched``: the hand came close, but the task quantity moved less than a tenth of what success needs;
* ``wrong way``: it moved the other way (the object away from the goal, the lever clockwise);
* ``short``: the right way, but not far enough (progress between 0.1 and 1);
* ``overshot``: the lever turned past the window that counts;
* ``wrong side`` / ``off the disc``: knock_over — fell, but away from the marked side / too far from the disc;
* ``not set down``: pick_place — over the goal, but still lifted or tipped;
* ``not held``: the quantity got there but success also needs it to hold (a press, a lift) or to stay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from humanprompt_ros.sim.success import SuccessTracker

REACH_CM = 3.0  # fingertip to the object's surface: a touch is ~1.2 cm (the pad radius)
MODES = (
    "never reached",
    "untouched",
    "wrong way",
    "short",
    "overshot",
    "wrong side",
    "off the disc",
    "not set down",
    "not held",
)
# the measures worth a median in a summary, per skill
KEY_MEASURES = {
    "push_to_goal": ("goal_cm", "hand_min_cm"),
    "pull_to_goal": ("goal_cm", "hand_min_cm"),
    "pick_place": ("goal_cm", "lift_cm", "hand_min_cm"),
    "pick_lift": ("lift_cm", "hand_min_cm"),
    "press_button": ("press", "hand_min_cm"),
    "open_drawer": ("opening_cm", "hand_min_cm"),
    "rotate": ("angle_deg", "hand_min_cm"),
    "knock_over": ("tilt_deg", "fall_dir_deg", "goal_cm", "hand_min_cm"),
}


def failure_mode(skill: str, final: dict[str, float]) -> str:
    """The failure mode (one of :data:`MODES`) of a failed episode of ``skill`` with final measures ``final``."""
    progress = final.get("progress", 0.0)
    if final.get("hand_min_cm", 0.0) > REACH_CM:  # whatever moved, the hand did not move it
        return "never reached"
    if abs(progress) < 0.1:
        return "untouched"
    if progress < 0:
        return "wrong way"
    if progress < 1:
        return "short"
    if skill == "rotate":
        return "overshot"
    if skill == "knock_over":
        if final.get("fall_dir_deg", 0.0) > SuccessTracker.KNOCK_CONE:
            return "wrong side"
        return "off the disc"
    if skill == "pick_place":
        return "not set down"
    return "not held"


def summarize_failures(episodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Episodes (``skill``, ``success``, ``final``) → {skill: {"episodes", "failed", "modes": {mode: count},
    "median_failed": {measure: median over the failed episodes}}}; episodes without ``final`` are counted
    as failed but given no mode."""
    out: dict[str, dict[str, Any]] = {}
    for e in episodes:
        row = out.setdefault(e["skill"], {"episodes": 0, "failed": 0, "modes": {}, "_finals": []})
        row["episodes"] += 1
        if e.get("success"):
            continue
        row["failed"] += 1
        final = e.get("final")
        if final:
            mode = failure_mode(e["skill"], final)
            row["modes"][mode] = row["modes"].get(mode, 0) + 1
            row["_finals"].append(final)
    for skill, row in out.items():
        finals = row.pop("_finals")
        row["modes"] = {m: row["modes"][m] for m in MODES if m in row["modes"]}
        row["median_failed"] = {
            k: round(float(np.median([f[k] for f in finals if k in f])), 2)
            for k in KEY_MEASURES.get(skill, ())
            if any(k in f for f in finals)
        }
    return dict(sorted(out.items()))


def failure_lines(summary: dict[str, dict[str, Any]]) -> list[str]:
    """:func:`summarize_failures` → one readable line per skill."""
    lines = []
    for skill, row in summary.items():
        modes = ", ".join(f"{m} {n}" for m, n in row["modes"].items()) or "–"
        medians = ", ".join(f"{k} {v:g}" for k, v in row["median_failed"].items())
        lines.append(
            f"  {skill}: {row['failed']} of {row['episodes']} failed — {modes}"
            + (f"; median {medians}" if medians else "")
        )
    return lines
