"""MJCF scene construction: table, camera, lights, task objects, goal markers and one hand.

The scene is rebuilt for every episode (sizes and colours vary), from strings: compiling takes a
few tens of milliseconds. World frame: the table top is the plane z = 0, +x points away from the
hand's home (the hand enters from -x), +z up; the camera looks from -y.

Both hands hang from a free-floating root body welded to the mocap body ``wrist_target``
(``weld`` equality with zero offset): the wrist is position-controlled like a robot arm's flange,
yet has real velocities, so grasped objects move with it. Hand bodies are gravity-compensated.
Collision groups: hand geoms (contype 2, conaffinity 1) collide with objects and the table
(contype 1, conaffinity 3) but not with each other.
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import mujoco
import numpy as np

from humanprompt_ros.config.loader import load_config
from humanprompt_ros.paths import config_path
from humanprompt_ros.sim.tasks import TWIN_SCENES, GoalMark, ObjectInstance, TaskInstance

HAND_CONTYPE = 'contype="2" conaffinity="1"'
WORLD_CONTYPE = 'contype="1" conaffinity="3"'
COLLISION_GROUP = 3  # Allegro collision primitives: not rendered
TABLE_HALF_EXTENT = (0.42, 0.34)  # m: the table top's half sizes in x and y (its top at z = 0)


@dataclass
class CameraConfig:
    pos: tuple[float, float, float] = (0.04, -0.50, 0.56)
    lookat: tuple[float, float, float] = (0.0, 0.03, 0.05)
    fovy: float = 42.0


@dataclass
class SimConfig:
    """``config/sim.yaml``: physics, control, camera and rendering settings."""

    timestep: float = 0.002
    control_hz: float = 10.0
    image_size: int = 128  # the models' camera size (square)
    video_size: int = 384  # for videos people watch (render command)
    camera: CameraConfig = field(default_factory=CameraConfig)
    home_wrist: tuple[float, float, float] = (-0.28, 0.0, 0.22)  # wrist position at reset (palm down, fingers +x)
    max_wrist_step: float = 0.05  # m per control step (arm speed limit, 0.5 m/s at 10 Hz)
    max_wrist_rot_step: float = 0.5  # rad per control step
    wrist_bounds: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (-0.45, -0.4, 0.03),
        (0.45, 0.4, 0.45),
    )
    robot_kp: float = 3.0  # Allegro joint PD: position gain (N m / rad)
    robot_kv: float = 0.05  # and damping (N m s / rad)
    robot_force: float = 1.2  # torque limit (N m)
    shadows: bool = False  # software (OSMesa) shadows double the rendering time
    video_fps: float = 10.0
    video_crf: int = 12  # H.264 constant rate factor of dataset videos (0 lossless, 23 ffmpeg default)
    # own: each task draws its own layout; shared: a task and its twin draw one layout per seed (identical
    # first frames, so only the prompt says which of the two is asked; docs/benchmark.md, "Twin scenes")
    twin_scenes: str = "shared"

    def validate(self) -> None:
        if self.timestep <= 0 or self.timestep > 0.01:
            raise ValueError(f"timestep: must be in (0, 0.01] s, got {self.timestep}")
        if self.control_hz <= 0 or self.control_hz > 1.0 / self.timestep:
            raise ValueError(f"control_hz: must be in (0, 1/timestep], got {self.control_hz}")
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size: must be within 16..1024, got {self.image_size}")
        if not 16 <= self.video_size <= 2048:
            raise ValueError(f"video_size: must be within 16..2048, got {self.video_size}")
        if self.twin_scenes not in TWIN_SCENES:
            raise ValueError(f"twin_scenes: must be one of {', '.join(TWIN_SCENES)}, got {self.twin_scenes!r}")

    @property
    def substeps(self) -> int:
        return max(1, int(round(1.0 / (self.control_hz * self.timestep))))


def load_sim_config(path=None) -> SimConfig:
    path = path or config_path("sim.yaml")
    if not os.path.isfile(path):
        return SimConfig()
    return load_config(SimConfig, path)


def _fmt(v) -> str:
    return " ".join(f"{float(x):.5g}" for x in np.ravel(v))


def camera_xyaxes(pos, lookat) -> np.ndarray:
    f = np.asarray(lookat, float) - np.asarray(pos, float)
    f /= np.linalg.norm(f)
    x = np.cross(f, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(x, f)
    return np.concatenate([x, y])


def _pinhole(cfg: SimConfig, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """The benchmark camera as MuJoCo renders it into a ``size``² image: its position, its x (right), y (up) and
    z (backward: it looks along -z) axes in the world, and its focal length in pixels (vertical ``fovy``)."""
    cam = cfg.camera
    ax = camera_xyaxes(cam.pos, cam.lookat)
    x, y = ax[:3], ax[3:]
    return np.asarray(cam.pos, float), x, y, np.cross(x, y), 0.5 * size / np.tan(np.deg2rad(cam.fovy) / 2)


def project(cfg: SimConfig, xyz: np.ndarray, size: int) -> np.ndarray:
    """World points (..., 3) → pixel coordinates (..., 2) (u right, v down; pixel centres at k + 0.5) in the
    benchmark camera's ``size``² image."""
    pos, x, y, z, f = _pinhole(cfg, size)
    d = np.asarray(xyz, float) - pos
    depth = -(d @ z)
    return np.stack([0.5 * size + f * (d @ x) / depth, 0.5 * size - f * (d @ y) / depth], axis=-1)


def unproject(cfg: SimConfig, uv: np.ndarray, height: np.ndarray | float, size: int) -> np.ndarray:
    """Pixel coordinates (..., 2) in the ``size``² image → the world points (..., 3) they show at ``height``
    above the table (the inverse of :func:`project` on the plane z = height)."""
    pos, x, y, z, f = _pinhole(cfg, size)
    uv = np.asarray(uv, float)
    ray = ((uv[..., :1] - 0.5 * size) / f) * x - ((uv[..., 1:] - 0.5 * size) / f) * y - z  # (..., 3)
    t = (np.asarray(height, float)[..., None] - pos[2]) / ray[..., 2:]
    return pos + t * ray


# -- the Allegro hand as MJCF ---------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def allegro_mjcf(
    urdf_path: str, kp: float, kv: float, force: float, joint_names: tuple[str, ...]
) -> tuple[str, str, str]:
    """(asset XML, body XML with root ``palm_link``, actuator XML) of the URDF hand.

    MuJoCo compiles the URDF (meshes from its package's ``meshes/`` folder); the result is re-read as
    MJCF and adjusted: free root, gravity compensation, light joint damping/friction (the URDF's
    values are for the real gearboxes), position actuators, collision primitives hidden.
    """
    urdf_path = os.path.abspath(urdf_path)
    meshdir = os.path.join(os.path.dirname(os.path.dirname(urdf_path)), "meshes")
    text = open(urdf_path).read()
    head = text.index(">", text.index("<robot")) + 1
    text = (
        text[:head] + f'<mujoco><compiler meshdir="{meshdir}" balanceinertia="true" '
        f'discardvisual="false" strippath="true"/></mujoco>' + text[head:]
    )
    model = mujoco.MjModel.from_xml_string(text)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="humanprompt-allegro-") as tmp:
        out = os.path.join(tmp, "hand.xml")
        mujoco.mj_saveLastXML(out, model)
        root = ET.parse(out).getroot()
    assets = root.find("asset")
    for mesh in assets.findall("mesh"):
        mesh.set("file", os.path.join(meshdir, mesh.get("file")))
        mesh.set("name", "allegro_" + mesh.get("name"))
    world = root.find("worldbody")
    palm = ET.Element("body", {"name": "palm_link", "gravcomp": "1"})
    ET.SubElement(palm, "freejoint", {"name": "robot_root"})
    for child in list(world):
        palm.append(child)
    for body in palm.iter("body"):
        body.set("gravcomp", "1")
    for j in palm.iter("joint"):
        for k in ("actuatorfrcrange", "frictionloss", "damping"):
            j.attrib.pop(k, None)
        j.set("damping", "0.02")
        j.set("armature", "0.002")
    for g in palm.iter("geom"):
        if g.get("type") == "mesh":
            g.set("mesh", "allegro_" + g.get("mesh"))
            tip = "tip" in g.get("mesh")
            g.set("rgba", "0.93 0.93 0.93 1" if tip else "0.16 0.16 0.18 1")
            g.set("contype", "0")
            g.set("conaffinity", "0")
        else:
            g.set("group", str(COLLISION_GROUP))
            g.set("contype", "2")
            g.set("conaffinity", "1")
            g.set("rgba", "0.3 0.3 0.3 1")
            if g.get("type") is None or g.get("type") == "sphere":  # fingertip spheres: grippy pads
                g.set("friction", "1.5 0.02 0.001")
    acts = "\n".join(
        f'<position name="a_{n}" joint="{n}" kp="{kp}" kv="{kv}" forcerange="{-force} {force}"/>' for n in joint_names
    )
    return ("".join(ET.tostring(a, encoding="unicode") for a in assets), ET.tostring(palm, encoding="unicode"), acts)


# -- objects ----------------------------------------------------------------------------------------
def object_xml(o: ObjectInstance) -> tuple[str, list[str]]:
    """(body XML, contact excludes) of one task object at its sampled pose."""
    rgba = _fmt(o.rgba)
    x, y = o.pos
    q = f"{np.cos(o.yaw / 2):.6f} 0 0 {np.sin(o.yaw / 2):.6f}"
    s = o.size
    n = o.name
    fr = 'friction="0.5 0.01 0.001" condim="4"'
    if o.kind == "box":
        return (
            f'<body name="{n}" pos="{x:.5f} {y:.5f} {s[2]:.5f}" quat="{q}"><freejoint name="{n}_free"/>'
            f'<geom name="{n}_geom" type="box" size="{_fmt(s)}" rgba="{rgba}" mass="{o.mass}" {fr} {WORLD_CONTYPE}/>'
            f"</body>",
            [],
        )
    if o.kind == "cylinder":
        return (
            f'<body name="{n}" pos="{x:.5f} {y:.5f} {s[1]:.5f}" quat="{q}"><freejoint name="{n}_free"/>'
            f'<geom name="{n}_geom" type="cylinder" size="{s[0]:.5f} {s[1]:.5f}" rgba="{rgba}" mass="{o.mass}" '
            f"{fr} {WORLD_CONTYPE}/></body>",
            [],
        )
    if o.kind == "ball":
        return (
            f'<body name="{n}" pos="{x:.5f} {y:.5f} {s[0]:.5f}"><freejoint name="{n}_free"/>'
            f'<geom name="{n}_geom" type="sphere" size="{s[0]:.5f}" rgba="{rgba}" mass="{o.mass}" '
            f'friction="0.5 0.02 0.002" condim="6" {WORLD_CONTYPE}/></body>',
            [],
        )
    if o.kind == "button":
        r, travel = s
        base_h = 0.012
        cap_h = 0.006 + travel  # cap half height
        return (
            f'<body name="{n}_base" pos="{x:.5f} {y:.5f} 0" quat="{q}">'
            f'<geom name="{n}_basegeom" type="box" size="{r + 0.018:.5f} {r + 0.018:.5f} {base_h:.5f}" pos="0 0 {base_h:.5f}" '
            f'rgba="0.35 0.35 0.38 1" {WORLD_CONTYPE}/>'
            f'<body name="{n}" pos="0 0 {2 * base_h:.5f}">'
            f'<joint name="{n}_press" type="slide" axis="0 0 1" range="{-travel:.5f} 0" stiffness="40" '
            f'springref="0" damping="1.5"/>'
            f'<geom name="{n}_geom" type="cylinder" size="{r:.5f} {cap_h:.5f}" pos="0 0 {cap_h - travel:.5f}" '
            f'rgba="{rgba}" mass="0.02" {WORLD_CONTYPE}/></body></body>',
            [(f"{n}_base", n)],
        )
    if o.kind == "drawer":
        hw, travel = s  # half width (y), travel (x, toward -x)
        depth, height = 0.07, 0.045  # half sizes of the cabinet
        wall = 0.006
        cab = [f'<body name="{n}_cabinet" pos="{x:.5f} {y:.5f} 0" quat="{q}">']
        # a shell: back, two sides, top, bottom (open toward -x)
        cab.append(
            f'<geom type="box" size="{wall} {hw + wall:.5f} {height:.5f}" pos="{depth - wall:.5f} 0 {height:.5f}" rgba="0.55 0.42 0.3 1" {WORLD_CONTYPE}/>'
        )
        for sgn in (1, -1):
            cab.append(
                f'<geom type="box" size="{depth:.5f} {wall} {height:.5f}" pos="0 {sgn * (hw + wall):.5f} {height:.5f}" rgba="0.55 0.42 0.3 1" {WORLD_CONTYPE}/>'
            )
        cab.append(
            f'<geom type="box" size="{depth:.5f} {hw + 2 * wall:.5f} {wall}" pos="0 0 {2 * height + wall:.5f}" rgba="0.55 0.42 0.3 1" {WORLD_CONTYPE}/>'
        )
        dh = height - 0.004
        cab.append(
            f'<body name="{n}" pos="{-0.002:.4f} 0 {height:.5f}">'
            f'<joint name="{n}_slide" type="slide" axis="-1 0 0" range="0 {travel:.5f}" damping="3" frictionloss="0.05"/>'
            f'<geom name="{n}_geom" type="box" size="{depth - 0.004:.5f} {hw - 0.002:.5f} {dh:.5f}" rgba="{rgba}" mass="0.3" {WORLD_CONTYPE}/>'
            f'<geom name="{n}_front" type="box" size="0.006 {hw + wall:.5f} {height:.5f}" pos="{-depth - 0.004:.5f} 0 0" rgba="{rgba}" mass="0.05" {WORLD_CONTYPE}/>'
            f'<geom name="{n}_knob" type="cylinder" size="0.011 0.02" pos="{-depth + 0.018:.5f} 0 {height + 0.02 + wall:.5f}" rgba="0.85 0.85 0.88 1" mass="0.01" {WORLD_CONTYPE}/>'
            f"</body></body>"
        )
        return "".join(cab), [(f"{n}_cabinet", n)]
    if o.kind == "lever":
        hl = s[0]
        h = 0.05
        return (
            f'<body name="{n}_post" pos="{x:.5f} {y:.5f} 0">'
            f'<geom type="cylinder" size="0.012 {h / 2:.5f}" pos="0 0 {h / 2:.5f}" rgba="0.35 0.35 0.38 1" {WORLD_CONTYPE}/>'
            f'<body name="{n}" pos="0 0 {h + 0.012:.5f}" quat="{q}">'
            f'<joint name="{n}_hinge" type="hinge" axis="0 0 1" damping="0.3" frictionloss="0.08"/>'
            f'<geom name="{n}_geom" type="box" size="{hl:.5f} 0.012 0.012" rgba="{rgba}" mass="0.08" {WORLD_CONTYPE}/>'
            f'<geom type="cylinder" size="0.016 0.014" rgba="0.25 0.25 0.28 1" mass="0.01" {WORLD_CONTYPE}/>'
            f"</body></body>",
            [(f"{n}_post", n)],
        )
    raise ValueError(f"unknown object kind {o.kind!r}")


def goal_mark_xml(name: str, mark: GoalMark) -> str:
    """A flat visual site (no collision) on the table top: a disc of the mark's radius, or a square of the
    same area."""
    rgba = f"{mark.look.color[0]:.3f} {mark.look.color[1]:.3f} {mark.look.color[2]:.3f} 0.55"
    x, y = mark.xy
    if mark.look.shape == "square":
        h = mark.radius * np.sqrt(np.pi) / 2
        return (
            f'<site name="{name}" type="box" pos="{x:.5f} {y:.5f} 0.0008" size="{h:.4f} {h:.4f} 0.0008" rgba="{rgba}"/>'
        )
    return f'<site name="{name}" type="cylinder" pos="{x:.5f} {y:.5f} 0.0008" size="{mark.radius:.4f} 0.0008" rgba="{rgba}"/>'


def build_scene(
    instance: TaskInstance,
    cfg: SimConfig,
    hand_assets: str,
    hand_body: str,
    hand_actuators: str,
    root_body: str,
    max_size: int,
) -> str:
    cam = cfg.camera
    xy = camera_xyaxes(cam.pos, cam.lookat)
    objects, excludes = [], []
    for o in instance.objects:
        body, exc = object_xml(o)
        objects.append(body)
        excludes += exc
    # a shared twin scene shows both tasks' goal marks, each in its own look (which is asked: the prompt's to say)
    goal = "".join(goal_mark_xml(f"goal{i}", m) for i, m in enumerate(instance.marks))
    exc_xml = "".join(f'<exclude body1="{a}" body2="{b}"/>' for a, b in excludes)
    hx, hy, hz = cfg.home_wrist
    return f"""<mujoco model="humanprompt_sim">
  <compiler angle="radian" autolimits="true" balanceinertia="true"/>
  <option timestep="{cfg.timestep}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <headlight ambient="0.32 0.32 0.32" diffuse="0.45 0.45 0.45" specular="0.05 0.05 0.05"/>
    <global offwidth="{max_size}" offheight="{max_size}"/>
    <quality shadowsize="1024"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.78 0.82 0.88" rgb2="0.45 0.5 0.58" width="64" height="64"/>
    <texture name="floor" type="2d" builtin="checker" rgb1="0.42 0.44 0.47" rgb2="0.36 0.38 0.41" width="64" height="64"/>
    <material name="floor" texture="floor" texrepeat="8 8"/>
    <texture name="table" type="2d" builtin="flat" rgb1="0.86 0.84 0.78" width="16" height="16"/>
    <material name="table" texture="table" specular="0.1"/>
    {hand_assets}
  </asset>
  <worldbody>
    <light name="key" directional="true" pos="0.3 -0.6 1.2" dir="-0.25 0.5 -1" diffuse="0.55 0.55 0.55" castshadow="{"true" if cfg.shadows else "false"}"/>
    <light name="fill" directional="true" pos="-0.5 0.3 1.0" dir="0.4 -0.2 -1" diffuse="0.2 0.2 0.2" castshadow="false"/>
    <camera name="main" pos="{_fmt(cam.pos)}" xyaxes="{_fmt(xy)}" fovy="{cam.fovy}"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" material="floor" contype="0" conaffinity="0"/>
    <geom name="table" type="box" pos="0 0 -0.02" size="{_fmt(TABLE_HALF_EXTENT)} 0.02" material="table" {WORLD_CONTYPE} friction="0.5 0.005 0.0001"/>
    <geom name="table_leg" type="box" pos="0 0 -0.39" size="0.38 0.3 0.35" rgba="0.4 0.33 0.26 1" contype="0" conaffinity="0"/>
    {goal}
    {"".join(objects)}
    <body name="wrist_target" mocap="true" pos="{hx} {hy} {hz}"/>
    {hand_body}
  </worldbody>
  <contact>{exc_xml}</contact>
  <equality>
    <weld name="wrist_weld" body1="wrist_target" body2="{root_body}" relpose="0 0 0 1 0 0 0" solref="0.01 1"/>
  </equality>
  <actuator>
    {hand_actuators}
  </actuator>
</mujoco>"""
