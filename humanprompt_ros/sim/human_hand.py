"""The simulated human hand: a small kinematic model of a right hand in the MediaPipe layout.

The hand is described in its own wrist frame (the unified convention of
:mod:`humanprompt_ros.action`: +x toward the middle-finger knuckles, +y toward the thumb/index side,
+z out of the back of the hand). The model is deliberately simple so that the same numbers drive
the numpy kinematics used by the experts and the MuJoCo bodies built by :func:`mjcf`:

* The palm is rigid. The wrist (landmark 0) is the origin and the four finger MCPs (5, 9, 13, 17)
  lie in the wrist's xy-plane, placed so that :func:`humanprompt_ros.hand.keypoints.wrist_frame` of the
  21 keypoints returns exactly this frame.
* Each long finger has 4 joints: abduction (about +z at the MCP), MCP, PIP and DIP flexion (about
  the finger's +y; positive curls toward the palm, -z). The DIP follows the PIP (``dip_coupling``).
* The thumb has 4 joints: palmar abduction at the CMC (about -x), CMC flexion, MCP and IP flexion
  (about the thumb's -z; the IP follows the MCP, ``ip_coupling``).

Keypoint 4/8/12/16/20 (a fingertip) is the centre of the rounded end of the last phalanx, like the
Allegro's ``link_*_tip`` frames, so that the same fingertip target puts both hands' finger pads at
the same place.

``fk(angles)`` → (21, 3) keypoints; ``ik(fingertips)`` → angles, in closed form per finger (the
out-of-plane joint puts the finger's flexion plane through the target, then the planar chain with
its coupled last joint is solved from a distance table), about 0.1 ms per hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from humanprompt_ros.action import FINGERS, HandAction
from humanprompt_ros.config.loader import load_config
from humanprompt_ros.paths import config_path

FINGER_JOINTS = ("abd", "mcp", "pip", "dip")
THUMB_JOINTS = ("cmc_abd", "cmc", "mcp", "ip")


@dataclass
class HumanHandConfig:
    """``config/sim_human_hand.yaml``: proportions of the simulated human hand (metres, degrees)."""

    name: str = "human_sim"
    scale: float = 1.3  # multiplies every length below (1.0 ~ an adult hand)
    # Finger MCPs in the wrist frame (x, y), index..little, at scale 1.
    mcp_xy: list[list[float]] = field(
        default_factory=lambda: [[0.085, 0.028], [0.088, 0.009], [0.084, -0.010], [0.076, -0.027]]
    )
    splay_deg: list[float] = field(default_factory=lambda: [6.0, 0.0, -6.0, -12.0])
    # Phalanx lengths (proximal, middle, distal), index..little, at scale 1.
    phalanges: list[list[float]] = field(
        default_factory=lambda: [
            [0.040, 0.025, 0.020],
            [0.045, 0.028, 0.021],
            [0.042, 0.027, 0.020],
            [0.033, 0.020, 0.018],
        ]
    )
    thumb_cmc: list[float] = field(default_factory=lambda: [0.028, 0.024, -0.014])
    thumb_dir_deg: float = 70.0  # thumb metacarpal direction in the palm plane, from +x toward +y
    thumb_bones: list[float] = field(default_factory=lambda: [0.044, 0.032, 0.028])  # metacarpal, proximal, distal
    finger_radius: list[float] = field(default_factory=lambda: [0.0095, 0.0085, 0.0078])  # per phalanx
    palm_half_thickness: float = 0.012
    dip_coupling: float = 0.75
    ip_coupling: float = 0.8
    skin_rgba: list[float] = field(default_factory=lambda: [0.94, 0.72, 0.58, 1.0])
    kp: float = 4.0  # position-actuator gain (N m / rad) of the finger joints
    damping: float = 0.08

    def validate(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale: must be > 0, got {self.scale}")
        if len(self.mcp_xy) != 4 or any(len(p) != 2 for p in self.mcp_xy):
            raise ValueError("mcp_xy: expected 4 (x, y) pairs, index..little")
        if len(self.phalanges) != 4 or any(len(p) != 3 for p in self.phalanges):
            raise ValueError("phalanges: expected 4 triples, index..little")
        if len(self.splay_deg) != 4:
            raise ValueError("splay_deg: expected 4 angles, index..little")


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


# Joint limits (radians): fingers abd, mcp, pip, dip; thumb cmc_abd, cmc, mcp, ip.
FINGER_LIMITS = np.array([[-0.35, 0.35], [-0.35, 1.65], [0.0, 1.9], [0.0, 1.6]])
THUMB_LIMITS = np.array([[-0.3, 1.7], [-1.0, 1.4], [-0.3, 1.3], [-0.3, 1.3]])


class HumanHand:
    """Kinematics of the simulated human hand (see the module docstring). 20 joints, 21 keypoints."""

    mask = np.ones(len(FINGERS), dtype=bool)

    def __init__(self, config: HumanHandConfig | None = None):
        self.config = c = config or HumanHandConfig()
        s = c.scale
        self.name = c.name
        self.mcp = np.array([[x * s, y * s, 0.0] for x, y in c.mcp_xy])
        self.splay = np.deg2rad(np.asarray(c.splay_deg, float))
        self.lengths = np.asarray(c.phalanges, float) * s
        self.thumb_cmc = np.asarray(c.thumb_cmc, float) * s
        self.thumb_dir = np.deg2rad(c.thumb_dir_deg)
        self.thumb_lengths = np.asarray(c.thumb_bones, float) * s
        self.radius = np.asarray(c.finger_radius, float) * s
        self.joint_names = [f"thumb_{j}" for j in THUMB_JOINTS] + [
            f"{f}_{j}" for f in FINGERS[1:] for j in FINGER_JOINTS
        ]
        self.lower = np.concatenate([THUMB_LIMITS[:, 0]] + [FINGER_LIMITS[:, 0]] * 4)
        self.upper = np.concatenate([THUMB_LIMITS[:, 1]] + [FINGER_LIMITS[:, 1]] * 4)
        self._last = self.rest()

    @property
    def num_joints(self) -> int:
        return 20

    def rest(self) -> np.ndarray:
        """A relaxed open hand, (20,)."""
        q = np.zeros(20)
        q[0:4] = [0.3, 0.5, 0.1, 0.08]
        for i in range(4):
            q[4 + 4 * i : 8 + 4 * i] = [0.0, 0.15, 0.2, 0.15]
        return q

    # -- forward kinematics ----------------------------------------------------------------------
    def _finger_chain(self, i: int, a: float, f1: float, f2: float, f3: float) -> np.ndarray:
        """Long finger i (0=index..3=little): MCP, PIP, DIP, tip (4, 3)."""
        r = _rz(self.splay[i] + a) @ _ry(f1)
        l1, l2, l3 = self.lengths[i]
        p0 = self.mcp[i]
        p1 = p0 + r @ [l1, 0, 0]
        r = r @ _ry(f2)
        p2 = p1 + r @ [l2, 0, 0]
        r = r @ _ry(f3)
        p3 = p2 + r @ [l3, 0, 0]
        return np.stack([p0, p1, p2, p3])

    def _thumb_chain(self, t0: float, t1: float, t2: float, t3: float) -> np.ndarray:
        """Thumb: CMC, MCP, IP, tip (4, 3)."""
        r = _rx(-t0) @ _rz(self.thumb_dir) @ _rz(-t1)
        lm, lp, ld = self.thumb_lengths
        p0 = self.thumb_cmc
        p1 = p0 + r @ [lm, 0, 0]
        r = r @ _rz(-t2)
        p2 = p1 + r @ [lp, 0, 0]
        r = r @ _rz(-t3)
        p3 = p2 + r @ [ld, 0, 0]
        return np.stack([p0, p1, p2, p3])

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Joint angles (20,) → 21 keypoints (21, 3) in the wrist frame, MediaPipe order."""
        q = np.asarray(q, float)
        kp = np.zeros((21, 3))
        kp[1:5] = self._thumb_chain(*q[0:4])
        for i in range(4):
            kp[5 + 4 * i : 9 + 4 * i] = self._finger_chain(i, *q[4 + 4 * i : 8 + 4 * i])
        return kp

    def keypoints_world(self, q: np.ndarray, wrist_pose: np.ndarray) -> np.ndarray:
        return self.fk(q) @ wrist_pose[:3, :3].T + wrist_pose[:3, 3]

    def fingertips(self, q: np.ndarray) -> np.ndarray:
        """(5, 3) fingertips in the wrist frame."""
        return self.fk(q)[[4, 8, 12, 16, 20]]

    def action(self, q: np.ndarray, wrist_pose: np.ndarray) -> HandAction:
        return HandAction(wrist_pose[:3, 3], wrist_pose[:3, :3], self.fingertips(q), self.mask.copy())

    # -- inverse kinematics ----------------------------------------------------------------------
    def _tables(self) -> None:
        """Per chain, the base-to-tip distance as a function of the middle flexion (monotone part)."""
        self._tab = []
        for f in range(5):
            if f == 0:
                lengths, c, (lo, hi) = self.thumb_lengths, self.config.ip_coupling, THUMB_LIMITS[2]
            else:
                lengths, c, (lo, hi) = self.lengths[f - 1], self.config.dip_coupling, FINGER_LIMITS[2]
            t = np.linspace(lo, hi, 400)
            w = lengths[0] + lengths[1] * np.exp(1j * t) + lengths[2] * np.exp(1j * (1 + c) * t)
            d = np.abs(w)
            # keep the part where the distance falls as the finger curls (from the straightest pose)
            k0 = int(np.argmax(d))
            k1 = k0 + int(np.argmin(d[k0:]))
            self._tab.append((d[k0 : k1 + 1][::-1], t[k0 : k1 + 1][::-1], w[k0 : k1 + 1][::-1]))

    def _solve_planar(self, f: int, u: float, v: float) -> tuple[float, float]:
        """Planar chain of finger f: target (u, v) in the flexion plane → (base flexion, middle
        flexion), where flexion rotates +u toward +v."""
        d_tab, t_tab, w_tab = self._tab[f]
        dist = np.hypot(u, v)
        f2 = float(np.interp(dist, d_tab, t_tab))
        w = complex(np.interp(dist, d_tab, w_tab.real), np.interp(dist, d_tab, w_tab.imag))
        f1 = float(np.angle(complex(u, v)) - np.angle(w))
        return f1, f2

    def ik(
        self, fingertips: np.ndarray, mask: np.ndarray | None = None, q_init: np.ndarray | None = None
    ) -> np.ndarray:
        """Fingertip targets (5, 3) in the wrist frame → joint angles (20,) within limits.

        Closed form per finger: the out-of-plane joint (abduction; thumb: palmar abduction) puts
        the finger's flexion plane through the target, then the planar 3-link chain (last joint
        coupled) is solved from a distance table. Unreachable targets give the nearest pose within
        the limits (clamped). Masked fingers (``mask`` False) keep a relaxed pose.
        """
        if not hasattr(self, "_tab"):
            self._tables()
        tips = np.asarray(fingertips, float).reshape(5, 3)
        if not np.all(np.isfinite(tips)):
            raise ValueError("human hand IK: fingertip targets contain NaN or inf")
        mask = np.ones(5, bool) if mask is None else np.asarray(mask, bool)
        q = self.rest()
        # Thumb: plane through the CMC with normal n(t0) = (0, sin t0, cos t0).
        if mask[0]:
            d = tips[0] - self.thumb_cmc
            t0 = float(np.arctan2(-d[2], d[1]))
            if t0 < THUMB_LIMITS[0, 0] - 0.5:
                t0 += np.pi
            t0 = float(np.clip(t0, *THUMB_LIMITS[0]))
            ex = np.array([1.0, 0.0, 0.0])
            ey = np.array([0.0, np.cos(t0), -np.sin(t0)])
            # in-plane angle phi = psi - t1 - ...; flexion rotates toward -phi: use (u, -v)
            a1, t2 = self._solve_planar(0, float(d @ ex), -float(d @ ey))
            t1 = self.thumb_dir + a1
            t1 = float(np.clip(t1, *THUMB_LIMITS[1]))
            t2 = float(np.clip(t2, *THUMB_LIMITS[2]))
            q[0:4] = [t0, t1, t2, self.config.ip_coupling * t2]
        for i in range(4):
            if not mask[i + 1]:
                continue
            d = tips[i + 1] - self.mcp[i]
            a = float(np.arctan2(d[1], d[0])) - self.splay[i]
            a = (a + np.pi) % (2 * np.pi) - np.pi
            sign = 1.0
            if abs(a) > np.pi / 2:  # the tip is behind the knuckle: the finger curls past vertical
                a = (a + 2 * np.pi) % (2 * np.pi) - np.pi
                sign = -1.0
            a = float(np.clip(a, *FINGER_LIMITS[0]))
            heading = self.splay[i] + a
            rho = sign * float(np.hypot(d[0], d[1]))
            rho = float(d[0] * np.cos(heading) + d[1] * np.sin(heading))
            f1, f2 = self._solve_planar(i + 1, rho, -float(d[2]))
            f1 = float(np.clip(f1, *FINGER_LIMITS[1]))
            f2 = float(np.clip(f2, *FINGER_LIMITS[2]))
            q[4 + 4 * i : 8 + 4 * i] = [a, f1, f2, self.config.dip_coupling * f2]
        self._last = q.copy()
        return q

    def reset(self) -> None:
        self._last = self.rest()

    # -- MuJoCo ----------------------------------------------------------------------------------
    def mjcf(self, prefix: str = "h_") -> tuple[str, str]:
        """(worldbody XML of the hand's bodies, actuator XML). The root body ``{prefix}wrist`` has a
        free joint (welded to a mocap body by the scene) and sits at the wrist frame."""
        c = self.config
        rgba = " ".join(f"{v:g}" for v in c.skin_rgba)
        s = c.scale
        r = self.radius
        body = [f'<body name="{prefix}wrist" gravcomp="1">', '<freejoint name="h_root"/>']
        # Palm: a flat box from the wrist to the knuckles plus a capsule across the knuckle line.
        px = 0.5 * self.mcp[:, 0].mean()
        body.append(
            f'<geom name="{prefix}palm" type="box" size="{px + 0.004:.4f} {0.034 * s:.4f} '
            f'{c.palm_half_thickness * s:.4f}" pos="{px:.4f} 0 0" rgba="{rgba}" density="600"/>'
        )
        body.append(
            f'<geom name="{prefix}knuckles" type="capsule" fromto="{self.mcp[0][0]:.4f} {self.mcp[0][1]:.4f} 0 '
            f'{self.mcp[3][0]:.4f} {self.mcp[3][1]:.4f} 0" size="{r[0] * 1.15:.4f}" rgba="{rgba}" density="600"/>'
        )
        body.append(
            f'<geom name="{prefix}heel" type="capsule" fromto="0.0 {0.022 * s:.4f} 0 0.0 {-0.022 * s:.4f} 0" '
            f'size="{0.016 * s:.4f}" rgba="{rgba}" density="600"/>'
        )
        body.append(f'<site name="{prefix}kp0" pos="0 0 0" size="0.003" group="3"/>')
        actuators = []

        def act(joint: str) -> None:
            actuators.append(
                f'<position name="{prefix}{joint}" joint="{prefix}{joint}" kp="{c.kp}" kv="0.1" forcerange="-6 6"/>'
            )

        # Thumb.
        lm, lp, ld = self.thumb_lengths
        tc = self.thumb_cmc
        thumb_names = [f"thumb_{j}" for j in THUMB_JOINTS]
        tl = THUMB_LIMITS
        body += [
            f'<body name="{prefix}thumb0" pos="{tc[0]:.4f} {tc[1]:.4f} {tc[2]:.4f}">',
            '<inertial pos="0 0 0" mass="0.005" diaginertia="1e-6 1e-6 1e-6"/>',
            f'<joint name="{prefix}{thumb_names[0]}" axis="-1 0 0" range="{tl[0, 0]} {tl[0, 1]}" damping="{c.damping}"/>',
            f'<body name="{prefix}thumb1" euler="0 0 {self.thumb_dir:.6f}">',
            f'<joint name="{prefix}{thumb_names[1]}" axis="0 0 -1" range="{tl[1, 0]} {tl[1, 1]}" damping="{c.damping}"/>',
            f'<geom type="capsule" fromto="0 0 0 {lm:.4f} 0 0" size="{r[0] * 1.15:.4f}" rgba="{rgba}" density="900"/>',
            f'<site name="{prefix}kp1" pos="0 0 0" size="0.003" group="3"/>',
            f'<body name="{prefix}thumb2" pos="{lm:.4f} 0 0">',
            f'<joint name="{prefix}{thumb_names[2]}" axis="0 0 -1" range="{tl[2, 0]} {tl[2, 1]}" damping="{c.damping}"/>',
            f'<geom type="capsule" fromto="0 0 0 {lp:.4f} 0 0" size="{r[1] * 1.1:.4f}" rgba="{rgba}" density="900"/>',
            f'<site name="{prefix}kp2" pos="0 0 0" size="0.003" group="3"/>',
            f'<body name="{prefix}thumb3" pos="{lp:.4f} 0 0">',
            f'<joint name="{prefix}{thumb_names[3]}" axis="0 0 -1" range="{tl[3, 0]} {tl[3, 1]}" damping="{c.damping}"/>',
            f'<geom type="capsule" fromto="0 0 0 {ld:.4f} 0 0" size="{r[2] * 1.1:.4f}" rgba="{rgba}" density="900" '
            f'friction="1.5 0.02 0.001"/>',
            f'<site name="{prefix}kp3" pos="0 0 0" size="0.003" group="3"/>',
            f'<site name="{prefix}kp4" pos="{ld:.4f} 0 0" size="0.003" group="3"/>',
            "</body></body></body></body>",
        ]
        for n in thumb_names:
            act(n)
        fl = FINGER_LIMITS
        for i, fname in enumerate(FINGERS[1:]):
            m = self.mcp[i]
            l1, l2, l3 = self.lengths[i]
            k = 5 + 4 * i
            names = [f"{fname}_{j}" for j in FINGER_JOINTS]
            body += [
                f'<body name="{prefix}{fname}1" pos="{m[0]:.4f} {m[1]:.4f} 0" euler="0 0 {self.splay[i]:.6f}">',
                f'<joint name="{prefix}{names[0]}" axis="0 0 1" range="{fl[0, 0]} {fl[0, 1]}" damping="{c.damping}"/>',
                f'<joint name="{prefix}{names[1]}" axis="0 1 0" range="{fl[1, 0]} {fl[1, 1]}" damping="{c.damping}"/>',
                f'<geom type="capsule" fromto="0 0 0 {l1:.4f} 0 0" size="{r[0]:.4f}" rgba="{rgba}" density="900"/>',
                f'<site name="{prefix}kp{k}" pos="0 0 0" size="0.003" group="3"/>',
                f'<body name="{prefix}{fname}2" pos="{l1:.4f} 0 0">',
                f'<joint name="{prefix}{names[2]}" axis="0 1 0" range="{fl[2, 0]} {fl[2, 1]}" damping="{c.damping}"/>',
                f'<geom type="capsule" fromto="0 0 0 {l2:.4f} 0 0" size="{r[1]:.4f}" rgba="{rgba}" density="900"/>',
                f'<site name="{prefix}kp{k + 1}" pos="0 0 0" size="0.003" group="3"/>',
                f'<body name="{prefix}{fname}3" pos="{l2:.4f} 0 0">',
                f'<joint name="{prefix}{names[3]}" axis="0 1 0" range="{fl[3, 0]} {fl[3, 1]}" damping="{c.damping}"/>',
                f'<geom type="capsule" fromto="0 0 0 {l3:.4f} 0 0" size="{r[2]:.4f}" rgba="{rgba}" density="900" '
                f'friction="1.5 0.02 0.001"/>',
                f'<site name="{prefix}kp{k + 2}" pos="0 0 0" size="0.003" group="3"/>',
                f'<site name="{prefix}kp{k + 3}" pos="{l3:.4f} 0 0" size="0.003" group="3"/>',
                "</body></body></body>",
            ]
            for n in names:
                act(n)
        body.append("</body>")
        return "\n".join(body), "\n".join(actuators)


def load_human_hand(path: str | Path | None = None) -> HumanHand:
    """The simulated human hand from ``config/sim_human_hand.yaml`` (or defaults if absent)."""
    path = Path(path) if path is not None else config_path("sim_human_hand.yaml")
    if not path.is_file():
        return HumanHand()
    return HumanHand(load_config(HumanHandConfig, path))
