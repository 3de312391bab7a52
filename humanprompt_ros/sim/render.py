"""Pictures of the simulator for people to look at: the experts side by side (``humanprompt-sim render``) and
contact sheets of evaluated episodes (``humanprompt-sim eval --save-dir``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from humanprompt_ros.data import load_episode
from humanprompt_ros.eval.failures import failure_mode
from humanprompt_ros.sim.env import SimEnv
from humanprompt_ros.sim.runner import expert_episode
from humanprompt_ros.sim.tasks import Task

HUMAN_COLOR, ROBOT_COLOR = (230, 170, 140), (40, 40, 45)


def label(frame: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """``frame`` (H, W, 3) with a bar of ``color`` along its top edge."""
    out = frame.copy()
    out[: max(3, frame.shape[0] // 60)] = color
    return out


def expert_side_by_side(task: Task, seed: int, size: int) -> tuple[list[np.ndarray], dict[str, bool]]:
    """The experts' episodes of ``task`` at ``seed``, the human hand's left of the robot's, each ``size``² (made
    even, as video codecs want) → (frames (size, 2·size + gap, 3) uint8, {embodiment: success})."""
    size += size % 2
    videos, success = {}, {}
    for emb in ("human", "robot"):
        env = SimEnv(task, emb, render=True, image_size=size)
        try:
            rec = expert_episode(task, emb, seed, env=env)
        finally:
            env.close()
        videos[emb], success[emb] = rec.frames, bool(rec.success)
    gap = np.full((size, max(2, size // 64), 3), 255, np.uint8)
    frames = []
    for t in range(max(len(v) for v in videos.values())):
        h = videos["human"][min(t, len(videos["human"]) - 1)]
        r = videos["robot"][min(t, len(videos["robot"]) - 1)]
        frames.append(np.concatenate([label(h, HUMAN_COLOR), gap, label(r, ROBOT_COLOR)], axis=1))
    if frames[0].shape[1] % 2:
        frames = [np.pad(f, ((0, 0), (0, 1), (0, 0)), constant_values=255) for f in frames]
    return frames, success


SUCCESS_COLOR, FAILURE_COLOR = (40, 160, 60), (200, 40, 40)


def contact_sheet(episode_dirs: list[Path], out: Path, columns: int = 8, size: int = 96) -> Path:
    """One row per saved episode: its seed, outcome and (on failure) failure mode, then ``columns`` frames
    evenly spaced over the episode, framed green (success) or red (failure); written as a PNG."""
    label_w, pad = 150, 3
    rows = []
    for d in episode_dirs:
        ep = load_episode(d)
        frames = ep.frames()
        idx = np.linspace(0, len(frames) - 1, columns).round().astype(int)
        ok = bool(ep.meta.get("success"))
        color = SUCCESS_COLOR if ok else FAILURE_COLOR
        row = Image.new("RGB", (label_w + columns * (size + pad), size + 2 * pad), (255, 255, 255))
        for k, t in enumerate(idx):
            tile = Image.fromarray(frames[t]).resize((size - 2 * pad, size - 2 * pad))
            framed = Image.new("RGB", (size, size), color)
            framed.paste(tile, (pad, pad))
            row.paste(framed, (label_w + k * (size + pad), pad))
        final = ep.meta.get("final") or {}
        why = "success" if ok else failure_mode(str(ep.meta.get("skill")), final) if final else "failure"
        text = [f"{ep.meta.get('task')} {ep.meta.get('seed')}", why]
        text += [f"{k} {v:g}" for k, v in final.items() if k in ("goal_cm", "progress", "hand_min_cm")]
        ImageDraw.Draw(row).multiline_text((4, 4), "\n".join(text), fill=color if not ok else (0, 0, 0))
        rows.append(row)
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), (255, 255, 255))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def episode_sheets(save_dir: Path, columns: int = 8) -> list[Path]:
    """A contact sheet ``sheet.png`` in every ``<policy>/<task>/<embodiment>/`` folder of an eval ``--save-dir``
    (its episodes in seed order); the sheets' paths."""
    out = []
    for folder in sorted({p.parent.parent for p in Path(save_dir).glob("*/*/*/*/meta.json")}):
        episodes = sorted(p.parent for p in folder.glob("*/meta.json"))
        out.append(contact_sheet(episodes, folder / "sheet.png", columns))
    return out
