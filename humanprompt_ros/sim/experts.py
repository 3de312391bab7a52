"""Scripted experts: one script per skill, in the unified action space, for both embodiments.

An expert reads the privileged initial state of the episode (object poses and sizes, the goal)
and plans keyframes: a wrist pose (palm down, yawed about the world z axis) and five fingertip
targets in the wrist frame. Actions between keyframes are interpolated (wrist position linearly,
yaw linearly, fingertips linearly) at most ``SPEED`` metres per control step. The plan depends only
on the seed's initial state, so it is deterministic and identical for the human and the robot hand:
the robot executes it through retargeting, the human hand through its own IK. Both hands put their
fingertip pads where the action says, so contacts happen at the same places.

Finger poses are fingertip positions (thumb..little, metres, wrist frame) inside the workspace of
both hands (the human hand is sized like the Allegro hand, ``config/sim_human_hand.yaml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from humanprompt_ros.action import HandAction

# -- finger poses (wrist frame) ---------------------------------------------------------------------
OPEN = np.array(
    [[0.11, 0.10, -0.03], [0.20, 0.045, -0.03], [0.205, 0.0, -0.03], [0.20, -0.045, -0.03], [0.18, -0.08, -0.03]]
)
# fingers bent down into a vertical "paddle"; pushes with the finger fronts, pulls with the pads
PADDLE = np.array(
    [[0.07, 0.06, -0.06], [0.15, 0.04, -0.10], [0.15, 0.0, -0.10], [0.15, -0.04, -0.10], [0.14, -0.07, -0.09]]
)
PADDLE_ANCHOR = np.array([0.15, 0.0, -0.10])  # the point that is placed at the contact
GRASP_CENTER = np.array([0.11, 0.012, -0.10])
LITTLE_TUCKED = np.array([0.11, -0.06, -0.06])
TIP_RADIUS = 0.012  # fingertip pad radius of both hands (Allegro tip spheres; human distal capsules ~0.010)

SPEED = 0.035  # m per control step for free motion
CONTACT_SPEED = 0.018  # m per control step while pushing/pulling


def pinch(half_width: float, closed: bool) -> np.ndarray:
    """Thumb behind, index/middle/ring in front of an object of half width ``half_width`` (along
    the wrist x axis) centred at GRASP_CENTER. ``closed`` squeezes 12 mm into the object."""
    gap = -0.012 if closed else 0.028
    cx, cy, cz = GRASP_CENTER
    back = cx - half_width - TIP_RADIUS - gap
    front = cx + half_width + TIP_RADIUS + gap
    return np.array(
        [[back, cy + 0.02, cz], [front, cy + 0.035, cz], [front, cy, cz], [front, cy - 0.035, cz], LITTLE_TUCKED]
    )


def _rz(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class Key:
    """A keyframe: the wrist-frame point ``anchor`` is placed at world point ``at``; hand yaw;
    fingertips; ``speed`` caps the approach (m/step); ``min_steps``/``hold`` shape the timing."""

    at: np.ndarray
    yaw: float
    tips: np.ndarray
    anchor: np.ndarray
    speed: float = SPEED
    min_steps: int = 2
    hold: int = 0

    def wrist(self) -> tuple[np.ndarray, np.ndarray]:
        rot = _rz(self.yaw)
        return np.asarray(self.at, float) - rot @ self.anchor, rot


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def interpolate(start: HandAction, keys: list[Key], horizon: int, mask: np.ndarray) -> np.ndarray:
    """Keyframes → (horizon, 24) actions (the last keyframe is held to the end)."""
    out = []
    pos = start.wrist_pos.copy()
    yaw = math.atan2(start.wrist_rot[1, 0], start.wrist_rot[0, 0])
    tips = start.fingertips.copy()
    for key in keys:
        p1, _ = key.wrist()
        y1 = yaw + _wrap(key.yaw - yaw)
        dist = max(np.linalg.norm(p1 - pos), 0.1 * abs(y1 - yaw), 0.5 * np.max(np.linalg.norm(key.tips - tips, axis=1)))
        n = max(key.min_steps, int(math.ceil(dist / key.speed)))
        for k in range(1, n + 1):
            s = k / n
            a = HandAction((1 - s) * pos + s * p1, _rz((1 - s) * yaw + s * y1), (1 - s) * tips + s * key.tips, mask)
            out.append(a.to_array())
        for _ in range(key.hold):
            out.append(out[-1].copy())
        pos, yaw, tips = p1, y1, key.tips.copy()
    if not out:
        out.append(start.to_array())
    while len(out) < horizon:
        out.append(out[-1].copy())
    return np.stack(out[:horizon])


def _support(o, u: np.ndarray) -> float:
    """Half extent of the object's footprint along the unit xy direction u."""
    if o.kind == "box":
        c, s = math.cos(o.yaw), math.sin(o.yaw)
        local = np.array([c * u[0] + s * u[1], -s * u[0] + c * u[1]])
        return float(abs(local[0]) * o.size[0] + abs(local[1]) * o.size[1])
    return float(o.size[0])


def _height(o) -> float:
    """Object full height on the table."""
    return {
        "box": 2 * o.size[2] if o.kind == "box" else 0,
        "cylinder": 2 * o.size[1] if o.kind == "cylinder" else 0,
        "ball": 2 * o.size[0],
    }.get(o.kind, 0.0)


def _xyz(xy, z) -> np.ndarray:
    return np.array([xy[0], xy[1], z], float)


# -- skills -------------------------------------------------------------------------------------------
def plan_push(inst) -> list[Key]:
    o, g = inst.target, inst.goal_xy
    u = (g - o.pos) / np.linalg.norm(g - o.pos)
    yaw = math.atan2(u[1], u[0])
    s = _support(o, u)
    zc = float(np.clip(0.3 * _height(o), 0.014, 0.02))  # low contact: the object slides, not tumbles
    c0 = o.pos - u * (s + TIP_RADIUS + 0.025)
    c1 = g - u * (s + TIP_RADIUS) + u * 0.004
    return [
        Key(_xyz(c0, zc + 0.09), yaw, PADDLE, PADDLE_ANCHOR),
        Key(_xyz(c0, zc), yaw, PADDLE, PADDLE_ANCHOR),
        Key(_xyz(c1, zc), yaw, PADDLE, PADDLE_ANCHOR, speed=CONTACT_SPEED, hold=1),
        Key(_xyz(c1 - u * 0.01, zc + 0.08), yaw, PADDLE, PADDLE_ANCHOR),
    ]


def plan_pull(inst) -> list[Key]:
    o, g = inst.target, inst.goal_xy
    u = (g - o.pos) / np.linalg.norm(g - o.pos)  # pull direction
    yaw = math.atan2(-u[1], -u[0])  # fingers point away from the pull, pads face it
    s = _support(o, -u)
    zc = float(np.clip(0.5 * _height(o), 0.015, 0.03))
    c0 = o.pos - u * (s + TIP_RADIUS + 0.012)
    c1 = g - u * (s + TIP_RADIUS) - u * 0.004
    c2 = c1 - u * 0.03
    return [
        Key(_xyz(c0, zc + 0.09), yaw, PADDLE, PADDLE_ANCHOR),
        Key(_xyz(c0, zc), yaw, PADDLE, PADDLE_ANCHOR),
        Key(_xyz(c1, zc), yaw, PADDLE, PADDLE_ANCHOR, speed=CONTACT_SPEED, hold=1),
        Key(_xyz(c2, zc + 0.08), yaw, PADDLE, PADDLE_ANCHOR),
    ]


def plan_press(inst) -> list[Key]:
    o = inst.target
    r, travel = o.size
    top = 0.036 + travel  # cap top at rest (see scene.object_xml)
    press = top - travel + TIP_RADIUS - 0.008
    anchor = PADDLE[2]  # the middle fingertip
    return [
        Key(_xyz(o.pos, top + 0.07), 0.0, PADDLE, anchor),
        Key(_xyz(o.pos, top + TIP_RADIUS + 0.01), 0.0, PADDLE, anchor),
        Key(_xyz(o.pos, press), 0.0, PADDLE, anchor, speed=0.01, hold=3),
        Key(_xyz(o.pos, top + 0.08), 0.0, PADDLE, anchor),
    ]


def plan_drawer(inst) -> list[Key]:
    o = inst.target
    depth, height, wall = 0.07, 0.045, 0.006
    c, s = math.cos(o.yaw), math.sin(o.yaw)
    out = np.array([-c, -s])  # opening direction
    knob = o.pos + out * (depth - 0.018 + 0.002)
    kz = 2 * height + wall + 0.02
    pull = inst.task.threshold + 0.035
    c0 = knob - out * (0.011 + TIP_RADIUS + 0.008)
    c1 = c0 + out * (pull + 0.008)
    yaw = math.atan2(-out[1], -out[0])
    return [
        Key(_xyz(c0, kz + 0.07), yaw, PADDLE, PADDLE_ANCHOR),
        Key(_xyz(c0, kz), yaw, PADDLE, PADDLE_ANCHOR),
        Key(_xyz(c1, kz), yaw, PADDLE, PADDLE_ANCHOR, speed=CONTACT_SPEED, hold=1),
        Key(_xyz(c1 - out * 0.0, kz + 0.07), yaw, PADDLE, PADDLE_ANCHOR),
    ]


def plan_knock(inst) -> list[Key]:
    o = inst.target
    u = (inst.goal_xy - o.pos) / np.linalg.norm(inst.goal_xy - o.pos)  # fall toward the disc
    yaw = math.atan2(u[1], u[0])
    zc = 0.75 * _height(o)
    s = _support(o, u)
    c0 = o.pos - u * (s + TIP_RADIUS + 0.02)
    c1 = o.pos + u * 0.07
    return [
        Key(_xyz(c0, _height(o) + 0.07), yaw, PADDLE, PADDLE_ANCHOR),  # well above the top
        Key(_xyz(c0, zc), yaw, PADDLE, PADDLE_ANCHOR),
        Key(_xyz(c1, zc), yaw, PADDLE, PADDLE_ANCHOR, speed=CONTACT_SPEED),
        Key(_xyz(c1 - u * 0.08, zc + 0.08), yaw, PADDLE, PADDLE_ANCHOR),
    ]


def rotate_arc(lever, threshold: float) -> tuple[float, float, float]:
    """Where the rotate expert pushes a lever: (radius of the contact from the hinge, its start angle, the angle
    it turns, rad). It pushes the end of the bar whose counter-clockwise tangent points away from the hand's
    home (+x), threshold + 22° round (the middle of the success window)."""
    phi0 = lever.yaw if math.sin(lever.yaw) < 0 else lever.yaw + math.pi
    return float(lever.size[0]) - 0.035, phi0, math.radians(threshold + 22.0)


def plan_rotate(inst) -> list[Key]:
    o = inst.target
    zc = 0.05 + 0.012
    rc, phi0, target = rotate_arc(o, inst.task.threshold)
    off = 0.012 + TIP_RADIUS + 0.006

    def at(phi: float, extra: float = 0.0) -> tuple[np.ndarray, float]:
        e = np.array([math.cos(phi), math.sin(phi)])
        t = np.array([-math.sin(phi), math.cos(phi)])
        return o.pos + rc * e - t * (off + extra), math.atan2(t[1], t[0])

    p, yaw = at(phi0, 0.02)
    keys = [Key(_xyz(p, zc + 0.07), yaw, PADDLE, PADDLE_ANCHOR), Key(_xyz(p, zc), yaw, PADDLE, PADDLE_ANCHOR)]
    n = 8
    for k in range(1, n + 1):
        p, yaw = at(phi0 + target * k / n)
        keys.append(Key(_xyz(p, zc), yaw, PADDLE, PADDLE_ANCHOR, speed=CONTACT_SPEED, min_steps=1))
    p, yaw = at(phi0 + target, 0.04)
    keys.append(Key(_xyz(p, zc + 0.07), yaw, PADDLE, PADDLE_ANCHOR))
    return keys


def _grasp_geometry(o) -> tuple[float, float, float]:
    """(hand yaw, half width along the pinch axis, grasp height) for an upright object."""
    if o.kind == "box":
        yaw = _wrap(o.yaw)
        yaw = (yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4  # nearest face-aligned yaw
        # half width along the hand's x axis: the box axis closest to it
        k = int(round(_wrap(yaw - o.yaw) / (math.pi / 2))) % 2
        hw = float(o.size[0] if k == 0 else o.size[1])
        h = 2 * o.size[2]
    else:
        yaw, hw, h = 0.0, float(o.size[0]), _height(o)
    z = float(np.clip(0.5 * h, 0.016, h - 0.012))
    return yaw, hw, z


def _pick(inst, lift: float) -> tuple[list[Key], float, float]:
    o = inst.target
    yaw, hw, z = _grasp_geometry(o)
    p = o.pos
    opened, closed = pinch(hw, False), pinch(hw, True)
    keys = [
        Key(_xyz(p, z + 0.09), yaw, opened, GRASP_CENTER),
        Key(_xyz(p, z), yaw, opened, GRASP_CENTER),
        Key(_xyz(p, z), yaw, closed, GRASP_CENTER, min_steps=4, hold=2),
        Key(_xyz(p, z + lift), yaw, closed, GRASP_CENTER, speed=0.02),
    ]
    return keys, yaw, z


def plan_lift(inst) -> list[Key]:
    keys, _, _ = _pick(inst, inst.task.threshold + 0.04)
    return keys


def plan_place(inst) -> list[Key]:
    o, g = inst.target, inst.goal_xy
    keys, yaw, z = _pick(inst, 0.07)
    _, hw, _ = _grasp_geometry(o)
    opened, closed = pinch(hw, False), pinch(hw, True)
    # let go upward: fingers that open only forward scoop a set-down cube up in the human hand's curled fingers
    release = opened.copy()
    release[:4, 2] += 0.03
    keys += [
        Key(_xyz(g, z + 0.07), yaw, closed, GRASP_CENTER, speed=0.025),
        Key(_xyz(g, z + 0.004), yaw, closed, GRASP_CENTER, speed=0.015, hold=1),
        Key(_xyz(g, z + 0.004), yaw, release, GRASP_CENTER, min_steps=3),
        Key(_xyz(g, z + 0.10), yaw, release, GRASP_CENTER),
    ]
    return keys


PLANNERS = {
    "push_to_goal": plan_push,
    "pull_to_goal": plan_pull,
    "press_button": plan_press,
    "open_drawer": plan_drawer,
    "knock_over": plan_knock,
    "rotate": plan_rotate,
    "pick_lift": plan_lift,
    "pick_place": plan_place,
}


def expert_actions(instance, start: HandAction, horizon: int, mask: np.ndarray | None = None) -> np.ndarray:
    """The expert's whole episode (horizon, 24) for a sampled task instance, from the start pose."""
    mask = np.ones(5, bool) if mask is None else mask
    keys = PLANNERS[instance.task.skill](instance)
    return interpolate(start, keys, horizon, mask)
