"""HumanPrompt-Sim tasks: YAML declarations, per-episode sampling and success predicates.

A task file (``config/tasks/*.yaml``)::

    name: push_box                 # unique task name (defaults to the file stem in messages)
    skill: push_to_goal            # one of SKILLS
    description: push the box onto the green disc
    horizon: 60                    # control steps per episode (10 Hz)
    objects:                       # name -> object; the skill acts on goal.object
      box:
        kind: box                  # box | cylinder | ball | button | drawer | lever
        position: {low: [-0.02, -0.08], high: [0.06, 0.08]}   # xy on the table (m), uniform
        size: {low: [0.022, 0.022, 0.022], high: [0.028, 0.028, 0.03]}  # kind-specific, uniform
        yaw_deg: [-20, 20]
        colors: [[0.85, 0.15, 0.15], [0.15, 0.35, 0.85]]     # one is drawn per episode
        mass: 0.15
    goal:
      object: box
      region: {low: [0.10, -0.10], high: [0.16, 0.10]}       # goal centre (push/pull/place)
      radius: 0.045                # success radius (m)
      min_distance: 0.08           # goal at least this far from the object's start
      threshold: null              # skill-specific (see SKILL_THRESHOLDS)
      look: {color: [0.1, 0.75, 0.25], shape: disc}   # how the goal is marked on the table (disc | square)

Size vectors per kind (half sizes, metres): box ``[hx, hy, hz]``; cylinder ``[radius, half_height]``;
ball ``[radius]``; button ``[cap_radius, travel]``; drawer ``[half_width, travel]``;
lever ``[half_length]``.

:func:`load_task` validates everything and raises :class:`humanprompt_ros.config.ConfigError`
naming the file, the key and the problem (unknown skill, wrong object kind, unreachable goal,
missing or mistyped key).

Kept as one module: the task YAML schema, the scene sampler and the twin-scene rules
share the object ranges and the workspace, and a task author reads them together.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from humanprompt_ros.config.loader import ConfigError, load_config
from humanprompt_ros.paths import config_path
from humanprompt_ros.sim.experts import rotate_arc

KINDS = ("box", "cylinder", "ball", "button", "drawer", "lever")
SIZE_DIMS = {"box": 3, "cylinder": 2, "ball": 1, "button": 2, "drawer": 2, "lever": 1}

# skill -> object kinds its expert can handle
SKILLS: dict[str, tuple[str, ...]] = {
    "push_to_goal": ("box", "cylinder"),
    "pull_to_goal": ("cylinder", "box"),
    "press_button": ("button",),
    "open_drawer": ("drawer",),
    "knock_over": ("cylinder", "box"),
    "rotate": ("lever",),
    "pick_lift": ("ball", "cylinder", "box"),
    "pick_place": ("box", "cylinder"),
}
# skills whose goal is a region on the table
REGION_SKILLS = ("push_to_goal", "pull_to_goal", "pick_place")
# config/sim.yaml twin_scenes: own layouts per task, or one layout per seed shared with the twin task
TWIN_SCENES = ("own", "shared")
# skill -> (meaning, default, feasible range) of goal.threshold
SKILL_THRESHOLDS: dict[str, tuple[str, float, tuple[float, float]]] = {
    "press_button": ("fraction of the button travel", 0.7, (0.1, 1.0)),
    "open_drawer": ("opening in metres", 0.07, (0.01, 0.11)),
    "knock_over": ("tilt in degrees", 60.0, (20.0, 85.0)),
    "rotate": ("rotation in degrees (counter-clockwise)", 50.0, (10.0, 80.0)),
    "pick_lift": ("lift height in metres", 0.08, (0.02, 0.14)),
}
# the benchmark's version: 2 draws each twin's target from its own task's range, marks each goal its own
# way and keeps press_button's and rotate_lever's objects apart (docs/benchmark.md, "Versions")
BENCHMARK_VERSION = 2
# where the hands can work: xy bounds on the table (m)
WORKSPACE = np.array([[-0.16, -0.18], [0.22, 0.18]])


@dataclass
class Range:
    low: list[float]
    high: list[float]

    def validate(self) -> None:
        if len(self.low) != len(self.high):
            raise ValueError(f"high: {len(self.high)} values but low has {len(self.low)}")
        bad = [i for i, (a, b) in enumerate(zip(self.low, self.high)) if a > b]
        if bad:
            raise ValueError(f"low: low[{bad[0]}]={self.low[bad[0]]} is above high[{bad[0]}]={self.high[bad[0]]}")

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(np.asarray(self.low, float), np.asarray(self.high, float))


@dataclass
class ObjectConfig:
    kind: Literal["box", "cylinder", "ball", "button", "drawer", "lever"]
    position: Range
    size: Range
    colors: list[list[float]]
    yaw_deg: tuple[float, float] = (0.0, 0.0)
    mass: float = 0.1

    def validate(self) -> None:
        if len(self.position.low) != 2:
            raise ValueError(f"position: expected xy ranges (2 values), got {len(self.position.low)}")
        n = SIZE_DIMS[self.kind]
        if len(self.size.low) != n:
            raise ValueError(f"size: a {self.kind} takes {n} size values, got {len(self.size.low)}")
        if any(v <= 0 for v in self.size.low):
            raise ValueError("size: sizes must be > 0")
        if not self.colors or any(len(c) not in (3, 4) for c in self.colors):
            raise ValueError("colors: a non-empty list of [r, g, b] colours")
        if any(not 0 <= v <= 1 for c in self.colors for v in c):
            raise ValueError("colors: components must be in [0, 1]")
        if self.mass <= 0:
            raise ValueError(f"mass: must be > 0, got {self.mass}")


@dataclass
class GoalLook:
    """How a goal mark is drawn on the table: each task of a twin pair marks its goal its own way."""

    color: list[float] = field(default_factory=lambda: [0.1, 0.75, 0.25])
    shape: Literal["disc", "square"] = "disc"

    def validate(self) -> None:
        if len(self.color) != 3 or any(not 0 <= v <= 1 for v in self.color):
            raise ValueError(f"color: an [r, g, b] colour with components in [0, 1], got {self.color}")


@dataclass
class GoalConfig:
    object: str
    region: Range | None = None
    radius: float = 0.045
    min_distance: float = 0.08
    threshold: float | None = None
    look: GoalLook = field(default_factory=GoalLook)


@dataclass
class TaskConfig:
    skill: str
    horizon: int
    objects: dict[str, ObjectConfig]
    goal: GoalConfig
    name: str = ""
    description: str = ""

    def validate(self) -> None:
        if self.skill not in SKILLS:
            raise ValueError(f"skill: unknown skill {self.skill!r} (valid: {', '.join(SKILLS)})")
        if not 10 <= self.horizon <= 400:
            raise ValueError(f"horizon: must be within 10..400 control steps, got {self.horizon}")
        if not self.objects:
            raise ValueError("objects: a task needs at least one object")


@dataclass
class Task:
    """A validated task: its config plus where it came from."""

    config: TaskConfig
    path: str

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def skill(self) -> str:
        return self.config.skill

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def threshold(self) -> float | None:
        t = self.config.goal.threshold
        if t is None and self.skill in SKILL_THRESHOLDS:
            return SKILL_THRESHOLDS[self.skill][1]
        return t


def _object_radius(kind: str, size: np.ndarray) -> float:
    """Footprint radius on the table, for spacing objects apart."""
    if kind == "box":
        return float(np.hypot(size[0], size[1]))
    if kind in ("cylinder", "ball"):
        return float(size[0])
    if kind == "button":
        return float(size[0]) + 0.02
    if kind == "drawer":
        return 0.11
    return float(size[0])  # lever


def load_task(path: str | Path) -> Task:
    """Load and validate a task YAML; errors name the file, the key and the problem."""
    path = Path(path)
    cfg = load_config(TaskConfig, path)
    src = str(path)
    if not cfg.name:
        cfg.name = path.stem
    goal = cfg.goal
    if goal.object not in cfg.objects:
        raise ConfigError(src, "goal.object", f"no object named {goal.object!r} (objects: {', '.join(cfg.objects)})")
    kind = cfg.objects[goal.object].kind
    if kind not in SKILLS[cfg.skill]:
        raise ConfigError(
            src,
            f"objects.{goal.object}.kind",
            f"skill {cfg.skill!r} cannot act on a {kind} (valid kinds: {', '.join(SKILLS[cfg.skill])})",
        )
    lo_ws, hi_ws = WORKSPACE
    for name, obj in cfg.objects.items():
        lo, hi = np.asarray(obj.position.low), np.asarray(obj.position.high)
        if np.any(lo < lo_ws) or np.any(hi > hi_ws):
            raise ConfigError(
                src,
                f"objects.{name}.position",
                f"outside the hands' workspace x in [{lo_ws[0]}, {hi_ws[0]}], y in [{lo_ws[1]}, {hi_ws[1]}] m",
            )
    if cfg.skill in REGION_SKILLS:
        if goal.region is None:
            raise ConfigError(src, "goal.region", f"required key is missing: skill {cfg.skill!r} needs a goal region")
        if len(goal.region.low) != 2:
            raise ConfigError(src, "goal.region", "expected xy ranges (2 values)")
        lo, hi = np.asarray(goal.region.low), np.asarray(goal.region.high)
        if np.any(lo < lo_ws) or np.any(hi > hi_ws):
            raise ConfigError(
                src,
                "goal.region",
                f"unreachable goal: [{lo.tolist()}, {hi.tolist()}] leaves the workspace "
                f"x in [{lo_ws[0]}, {hi_ws[0]}], y in [{lo_ws[1]}, {hi_ws[1]}] m",
            )
        if not 0.01 <= goal.radius <= 0.15:
            raise ConfigError(src, "goal.radius", f"must be within 0.01..0.15 m, got {goal.radius}")
        # at least one object position / goal pair must satisfy min_distance
        olo, ohi = np.asarray(cfg.objects[goal.object].position.low), np.asarray(cfg.objects[goal.object].position.high)
        far = np.linalg.norm(np.maximum(np.abs(hi - olo), np.abs(ohi - lo)))
        if far < goal.min_distance:
            raise ConfigError(
                src,
                "goal.min_distance",
                f"unreachable goal: no goal in the region is {goal.min_distance} m from the object",
            )
    elif goal.region is not None:
        raise ConfigError(src, "goal.region", f"skill {cfg.skill!r} has no goal region (remove the key)")
    if cfg.skill in SKILL_THRESHOLDS:
        meaning, _, (tlo, thi) = SKILL_THRESHOLDS[cfg.skill]
        if goal.threshold is not None and not tlo <= goal.threshold <= thi:
            raise ConfigError(
                src,
                "goal.threshold",
                f"unreachable goal: {cfg.skill} threshold ({meaning}) must be within {tlo}..{thi}, "
                f"got {goal.threshold}",
            )
    elif goal.threshold is not None:
        raise ConfigError(src, "goal.threshold", f"skill {cfg.skill!r} takes no threshold (remove the key)")
    return Task(cfg, src)


def task_files(spec: str | None = None) -> list[Path]:
    """Task YAML files: ``spec`` is a file, a directory, a glob over paths, or a glob over task
    names in ``config/tasks`` (``push*``), or a comma-separated list of those; None = all shipped
    tasks."""
    tasks_dir = config_path("tasks")
    if spec is None or spec in ("all", "*"):
        return sorted(tasks_dir.glob("*.yaml"))
    if "," in spec:  # a comma-separated list of any of the forms below
        out: list[Path] = []
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            out += [f for f in task_files(part) if f not in out]
        return out
    p = Path(spec)
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted(p.glob("*.yaml"))
    import glob as _glob

    hits = sorted(Path(h) for h in _glob.glob(spec) if h.endswith((".yaml", ".yml")))
    if hits:
        return hits
    hits = [f for f in sorted(tasks_dir.glob("*.yaml")) if fnmatch.fnmatch(f.stem, spec)]
    if not hits:
        raise ValueError(f"no task matches {spec!r} (a YAML file, a directory, or a name glob over {tasks_dir})")
    return hits


def load_tasks(spec: str | None = None) -> list[Task]:
    return [load_task(f) for f in task_files(spec)]


# -- per-episode instances ----------------------------------------------------------------------
@dataclass
class ObjectInstance:
    name: str
    kind: str
    pos: np.ndarray  # (2,) xy
    yaw: float
    size: np.ndarray
    rgba: np.ndarray
    mass: float


@dataclass
class TaskInstance:
    """One sampled episode of a task: object placements, sizes, colours and the goal."""

    task: Task
    seed: int
    objects: list[ObjectInstance]
    goal_xy: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def object(self, name: str) -> ObjectInstance:
        return next(o for o in self.objects if o.name == name)

    @property
    def target(self) -> ObjectInstance:
        return self.object(self.task.config.goal.object)

    @property
    def marks(self) -> list[GoalMark]:
        """The goal marks drawn on the table: both twins' on a shared scene, else this task's (if it has one)."""
        if "marks" in self.extra:
            return self.extra["marks"]
        return [] if self.goal_xy is None else [goal_mark(self.task, self.goal_xy)]


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = 0.0 if float(ab @ ab) < 1e-12 else float(np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


Capsule = tuple[np.ndarray, np.ndarray, float]  # segment A–B on the table and a half width (m)


def work_corridor(
    skill: str, target: ObjectInstance, goal_xy: np.ndarray | None, threshold: float | None
) -> list[Capsule]:
    """The strips of table the expert's hand and the moved object sweep at low height, as capsules.
    Distractors are kept out of them, so they never block the demonstration."""
    p = target.pos
    ex = np.array([1.0, 0.0])
    if skill in REGION_SKILLS:
        u = (goal_xy - p) / max(1e-9, float(np.linalg.norm(goal_xy - p)))
        return [(p - u * 0.2, goal_xy + u * 0.05, 0.08)]
    if skill == "knock_over":
        u = (goal_xy - p) / max(1e-9, float(np.linalg.norm(goal_xy - p)))
        return [(p - u * 0.22, p + u * (2 * float(target.size[-1]) + 0.06), 0.09)]
    if skill == "open_drawer":
        return [(p, p - ex * 0.32, 0.15)]
    if skill == "rotate":
        return _rotate_corridor(target, threshold)
    if skill == "press_button":
        # the fingers come down onto the cap, fingertips toward +x; the palm passes above a lever (~7 cm)
        return [(p, p - ex * 0.06, 0.07)]
    return [(p, p, 0.12)]  # pick_lift: the hand comes from above


def _rotate_corridor(lever: ObjectInstance, threshold: float | None) -> list[Capsule]:
    """Where the rotate expert's fingers sweep: along the arc its contact point follows
    (:func:`~humanprompt_ros.sim.experts.rotate_arc`), each with the fingers behind the contact."""
    rc, phi0, sweep = rotate_arc(lever, threshold if threshold is not None else SKILL_THRESHOLDS["rotate"][1])
    out = []
    for phi in phi0 + sweep * np.linspace(0.0, 1.0, 9):
        e, t = np.array([np.cos(phi), np.sin(phi)]), np.array([-np.sin(phi), np.cos(phi)])
        c = lever.pos + rc * e - t * 0.03
        out.append((c, c - t * 0.06, 0.07))
    return out


def _draw_object(cfg: TaskConfig, name: str, rng: np.random.Generator, position: Range | None = None) -> ObjectInstance:
    """Object ``name`` of ``cfg``: size, yaw and colour drawn, and a position from ``position`` (default: its own
    range)."""
    oc = cfg.objects[name]
    size = oc.size.sample(rng)
    pos = (position or oc.position).sample(rng)
    yaw = np.deg2rad(rng.uniform(*oc.yaw_deg))
    rgb = np.asarray(oc.colors[int(rng.integers(len(oc.colors)))], float)
    return ObjectInstance(name, oc.kind, pos, float(yaw), size, np.append(rgb[:3], 1.0), oc.mass)


def _draw_goal(cfg: TaskConfig, target: ObjectInstance, rng: np.random.Generator) -> np.ndarray | None | bool:
    """The goal of ``cfg``'s skill for ``target``: a goal disc, knock_over's fall-side marker, None when the
    skill has none, or False when no goal far enough from the target was drawn (try again)."""
    if cfg.skill in REGION_SKILLS:
        for _ in range(100):
            g = cfg.goal.region.sample(rng)
            if np.linalg.norm(g - target.pos) >= cfg.goal.min_distance:
                return g
        return False
    if cfg.skill == "knock_over":
        # the bottle must fall to one side, drawn per episode and marked by a disc where it lands
        side = 1.0 if rng.random() < 0.5 else -1.0
        return target.pos + np.array([0.0, side * (2 * float(target.size[-1]) * 0.8)])
    return None


@dataclass
class GoalMark:
    """A goal drawn on the table: where, how large (radius or half side) and how it looks."""

    xy: np.ndarray
    radius: float
    look: GoalLook


def goal_mark(task: Task, goal_xy: np.ndarray) -> GoalMark:
    """The mark of ``task``'s goal: its success radius, or for knock_over a small fall-side marker."""
    radius = 0.03 if task.skill == "knock_over" else float(task.config.goal.radius)
    return GoalMark(np.asarray(goal_xy, float), radius, task.config.goal.look)


def _clear_of(o: ObjectInstance, task: Task, target: ObjectInstance, goal_xy: np.ndarray | None) -> bool:
    """``o`` neither blocks ``task``'s expert (out of its work corridor) nor covers its goal disc."""
    r = _object_radius(o.kind, o.size)
    if any(
        _segment_distance(o.pos, a, b) < width + r
        for a, b, width in work_corridor(task.skill, target, goal_xy, task.threshold)
    ):
        return False
    return goal_xy is None or np.linalg.norm(o.pos - goal_xy) >= task.config.goal.radius + r + 0.03


def _apart(o: ObjectInstance, objects: list[ObjectInstance]) -> bool:
    r = _object_radius(o.kind, o.size)
    return all(np.linalg.norm(q.pos - o.pos) >= _object_radius(q.kind, q.size) + r + 0.04 for q in objects)


def sample_instance(task: Task, seed: int, twin: Task | None = None) -> TaskInstance:
    """Draw object positions, sizes, colours and the goal from the task's ranges (deterministic).

    The goal object comes first, then its goal, then the other objects (distractors), which are
    kept apart from each other and out of the expert's work corridor (:func:`work_corridor`).
    With ``twin`` (the task whose scenes hold the same objects, :func:`twin_tasks`) the layout is
    shared instead (:func:`_sample_shared`): the same scene for both tasks at ``seed``.
    """
    if twin is not None:
        return _sample_shared(task, twin, seed)
    rng = np.random.default_rng([seed, 7919])
    cfg = task.config
    others = [n for n in cfg.objects if n != cfg.goal.object]
    for _attempt in range(200):
        target = _draw_object(cfg, cfg.goal.object, rng)
        goal_xy = _draw_goal(cfg, target, rng)
        if goal_xy is False:
            continue
        objects = [target]
        for name in others:
            for _ in range(60):
                o = _draw_object(cfg, name, rng)
                if _clear_of(o, task, target, goal_xy) and _apart(o, objects):
                    objects.append(o)
                    break
            else:
                break
        if len(objects) == len(cfg.objects):
            return TaskInstance(task, seed, objects, goal_xy)
    raise ValueError(
        f"{task.path}: could not place the objects and goal without overlap (seed {seed}): "
        "widen objects.*.position or goal.region"
    )


def _overlap(ranges: list[Range]) -> Range | None:
    """The overlap of xy ranges (None for fewer than two; the first when they do not overlap)."""
    if len(ranges) < 2:
        return None
    low, high = np.max([r.low for r in ranges], axis=0), np.min([r.high for r in ranges], axis=0)
    return Range(low.tolist(), high.tolist()) if np.all(low <= high) else ranges[0]


def _sample_shared(task: Task, twin: Task, seed: int) -> TaskInstance:
    """One layout for ``task`` and ``twin`` at ``seed``, identical for both, so a first frame cannot tell
    them apart. Each object is drawn from the range of the task whose target it is (the pair's first task
    by name when it is both tasks' target, or neither's), targets first; then both goals (both marks
    shown, each in its task's look); kept only when every object is clear of both experts' work corridors
    and goal marks, except its own. The instance's goal is ``task``'s; ``extra["marks"]`` holds both
    :class:`GoalMark`."""
    pair = sorted((task, twin), key=lambda t: t.name)  # the same draws whichever of the two asks
    rng = np.random.default_rng([seed, 7919, 2])
    names = list(dict.fromkeys([t.config.goal.object for t in pair] + [n for t in pair for n in t.config.objects]))
    owner = {
        n: next((t for t in pair if t.config.goal.object == n), None) or next(t for t in pair if n in t.config.objects)
        for n in names
    }
    # an object both tasks act on stands where both would draw it: in the overlap of their two ranges
    position = {n: _overlap([t.config.objects[n].position for t in pair if t.config.goal.object == n]) for n in names}
    for _attempt in range(2000):
        objects: list[ObjectInstance] = []
        for name in names:
            o = _draw_object(owner[name].config, name, rng, position[name])
            if not _apart(o, objects):
                break
            objects.append(o)
        else:
            by_name = {o.name: o for o in objects}
            goals = {t.name: _draw_goal(t.config, by_name[t.config.goal.object], rng) for t in pair}
            if any(g is False for g in goals.values()):
                continue
            if all(
                _clear_of(o, t, by_name[t.config.goal.object], goals[t.name])
                for t in pair
                for o in objects
                if o.name != t.config.goal.object
            ):
                marks = [goal_mark(t, goals[t.name]) for t in pair if goals[t.name] is not None]
                return TaskInstance(task, seed, objects, goals[task.name], extra={"marks": marks})
    raise ValueError(
        f"{task.name} / {twin.name}: could not draw a scene both can be done in (seed {seed}): "
        "widen the targets' objects.*.position"
    )


def twin_tasks(files: list[Path] | None = None) -> dict[str, str]:
    """task name → its twin: the other task whose scenes hold the same kinds of objects (docs/benchmark.md).

    Only pairs count: a task whose object kinds match none or several others has no twin.
    """
    tasks = [load_task(f) for f in (files if files is not None else task_files(None))]
    kinds = {t.name: tuple(sorted(o.kind for o in t.config.objects.values())) for t in tasks}
    twins = {}
    for name, k in kinds.items():
        same = [n for n, k2 in kinds.items() if k2 == k and n != name]
        if len(same) == 1:
            twins[name] = same[0]
    return twins


def twin_pairs(files: list[Path] | None = None) -> list[tuple[str, str]]:
    """Each twin pair once, as (first, second) by name, sorted: :func:`twin_tasks` without the mirror."""
    return sorted({tuple(sorted(p)) for p in twin_tasks(files).items()})


def resolve_task(value: str) -> Path:
    """A task name (``config/tasks/<name>.yaml``) or a task YAML path → the YAML file (ValueError if none)."""
    p = Path(value).expanduser()
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ValueError(f"task: no such task file: {p}")
        return p
    f = config_path("tasks", f"{value}.yaml")
    if not f.is_file():
        names = sorted(x.stem for x in config_path("tasks").glob("*.yaml"))
        raise ValueError(f"task: unknown task {value!r} (known: {', '.join(names)})")
    return f
