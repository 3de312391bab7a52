"""URDF handling for hands: path resolution, the hand subtree of a larger robot, mimic joints.

A hand is the subtree of a URDF below ``base_link``. :func:`extract_hand` cuts that subtree out as a
standalone URDF (``base_link`` becomes the root; every joint outside the subtree is dropped), adds a
fixed frame for the unified wrist, and reports which joints are actuated and which mimic another.
Mimic relations can be overridden or dropped per joint (the hand YAML's ``mimic`` section), so a vendor
URDF with broken mimic tags works without editing it; the standalone URDF carries the effective tags.
"""

from __future__ import annotations

import difflib
import os
import site
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

MOVING_JOINT_TYPES = ("revolute", "continuous", "prismatic")
UNSUPPORTED_JOINT_TYPES = ("floating", "planar")
WRIST_FRAME = "humanprompt_wrist"


def package_search_prefixes() -> list[Path]:
    """Install prefixes searched for ``share/<package>``: the ament index, then cmeel wheels."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    for sp in [*site.getsitepackages(), site.getusersitepackages()]:
        prefixes.append(Path(sp) / "cmeel.prefix")  # example-robot-data and other cmeel wheels
    return prefixes


def resolve_package_uri(uri: str) -> Path:
    """``package://NAME/rest`` → an existing path, via the ament index then cmeel install prefixes."""
    name, _, rest = uri[len("package://") :].partition("/")
    tried = []
    try:  # the ament index proper, where ROS 2 is installed
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidate = Path(get_package_share_directory(name)) / rest
            if candidate.exists():
                return candidate
            tried.append(str(candidate))
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset (a venv not activated)
            pass
    except ImportError:
        pass
    for prefix in package_search_prefixes():
        candidate = prefix / "share" / name / rest
        if candidate.exists():
            return candidate
        tried.append(str(candidate))
    raise ValueError(f"cannot resolve {uri!r}: package {name!r} not found (tried {', '.join(tried[:4])} ...)")


def resolve_path(value: str, relative_to: Path | None = None) -> Path:
    """Resolve an absolute path, a path relative to ``relative_to`` or a ``package://`` URI."""
    if value.startswith("package://"):
        return resolve_package_uri(value)
    if value.startswith("file://"):
        value = value[len("file://") :]
    path = Path(os.path.expanduser(value))
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    return path


@dataclass
class Mimic:
    """Joint ``name`` follows ``q[source] * multiplier + offset``."""

    name: str
    source: str
    multiplier: float
    offset: float


class MimicOverrideError(ValueError):
    """An entry of the hand YAML's ``mimic`` section does not fit the URDF; ``key`` is its YAML key."""

    def __init__(self, joint: str, problem: str, field: str = ""):
        self.key = f"mimic.{joint}" + (f".{field}" if field else "")
        self.problem = problem
        super().__init__(f"{self.key}: {problem}")


@dataclass
class HandURDF:
    """A hand cut out of a URDF: standalone XML plus its joint structure."""

    xml: str
    urdf_path: Path
    base_link: str
    actuated_joints: list[str]  # in URDF document order
    mimics: list[Mimic]
    limits: dict[str, tuple[float, float]]  # per moving joint (actuated and mimic)
    links: set[str]


def _fmt(values) -> str:
    return " ".join(f"{float(v):.10g}" for v in values)


def extract_hand(
    urdf_path: Path,
    base_link: str,
    required_links: list[str],
    wrist_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0),
    wrist_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0),
    mimic_overrides: dict[str, Mimic | None] | None = None,
) -> HandURDF:
    """Cut the subtree under ``base_link`` out of the URDF at ``urdf_path``.

    Adds a fixed link ``humanprompt_wrist`` at ``wrist_xyz``/``wrist_rpy`` relative to ``base_link``.
    ``mimic_overrides`` maps a joint to the relation that replaces its URDF mimic tag (or adds one), or
    to ``None`` to drop its tag (the joint becomes actuated); they are applied before validation.
    Raises ``ValueError`` naming the problem: unreadable URDF, missing links, a floating/planar joint
    inside the hand, a mimic joint whose source lies outside the hand (with the YAML lines that fix it);
    :class:`MimicOverrideError` for an override that does not fit the URDF.
    """
    try:
        root = ET.parse(urdf_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"cannot read URDF {urdf_path}: {exc}") from None
    if root.tag != "robot":
        raise ValueError(f"{urdf_path} is not a URDF (root element <{root.tag}>, expected <robot>)")
    links = {el.get("name"): el for el in root.findall("link")}
    if base_link not in links:
        raise ValueError(f"base_link {base_link!r} is not a link of {urdf_path}")
    joints = root.findall("joint")
    children: dict[str, list[ET.Element]] = {}
    for j in joints:
        parent = j.find("parent")
        if parent is None or j.find("child") is None:
            raise ValueError(f"{urdf_path}: joint {j.get('name')!r} lacks <parent> or <child>")
        children.setdefault(parent.get("link"), []).append(j)

    sub_links, sub_joints, stack = {base_link}, [], [base_link]
    while stack:
        for j in children.get(stack.pop(), []):
            child = j.find("child").get("link")
            sub_joints.append(j)
            sub_links.add(child)
            stack.append(child)
    missing = [name for name in required_links if name not in sub_links]
    if missing:
        where = "not links of the URDF" if not all(m in links for m in missing) else f"not below {base_link!r}"
        raise ValueError(f"links {missing} are {where} ({urdf_path})")

    sub_joint_names = {j.get("name") for j in sub_joints}
    doc_order = [j for j in joints if j.get("name") in sub_joint_names]
    moving = [j.get("name") for j in doc_order if j.get("type") in MOVING_JOINT_TYPES]
    overrides = mimic_overrides or {}
    _check_overrides(overrides, moving, {j.get("name") for j in joints}, base_link, urdf_path)
    actuated, mimics, limits = [], [], {}
    for j in doc_order:
        name, jtype = j.get("name"), j.get("type")
        if jtype in UNSUPPORTED_JOINT_TYPES:
            raise ValueError(f"{urdf_path}: joint {name!r} of type {jtype} inside the hand is not supported")
        if jtype not in MOVING_JOINT_TYPES:
            continue
        lim = j.find("limit")
        if jtype == "continuous" or lim is None:
            lo, hi = -np.pi, np.pi
        else:
            lo, hi = float(lim.get("lower", 0.0)), float(lim.get("upper", 0.0))
        limits[name] = (lo, hi)
        tag = j.find("mimic")
        if name in overrides:  # the hand YAML replaces, adds or drops the tag, here and in the XML
            relation = overrides[name]
            if relation is None and tag is None:
                raise MimicOverrideError(
                    name, f"{name!r} has no mimic tag in the URDF, so there is nothing to drop; remove this entry"
                )
            if tag is not None:
                j.remove(tag)
            if relation is not None:
                attrs = {
                    "joint": relation.source,
                    "multiplier": _fmt([relation.multiplier]),
                    "offset": _fmt([relation.offset]),
                }
                ET.SubElement(j, "mimic", attrs)
        elif tag is not None:
            relation = Mimic(name, tag.get("joint"), float(tag.get("multiplier", 1.0)), float(tag.get("offset", 0.0)))
        else:
            relation = None
        if relation is None:
            actuated.append(name)
        else:
            mimics.append(relation)
    broken = [m for m in mimics if m.source not in limits]
    if broken:
        problems = "; ".join(
            f"mimic joint {m.name!r} follows {m.source!r}, which is not a moving joint below {base_link!r}"
            for m in broken
        )
        raise ValueError(f"{urdf_path}: {problems}. {mimic_fix_hint(broken, moving)}")

    robot = ET.Element("robot", {"name": root.get("name", "hand")})
    for name in sorted(sub_links):
        robot.append(links[name])
    for j in doc_order:
        robot.append(j)
    robot.append(ET.Element("link", {"name": WRIST_FRAME}))
    wj = ET.SubElement(robot, "joint", {"name": f"{WRIST_FRAME}_joint", "type": "fixed"})
    ET.SubElement(wj, "parent", {"link": base_link})
    ET.SubElement(wj, "child", {"link": WRIST_FRAME})
    ET.SubElement(wj, "origin", {"xyz": _fmt(wrist_xyz), "rpy": _fmt(wrist_rpy)})
    return HandURDF(
        xml=ET.tostring(robot, encoding="unicode"),
        urdf_path=urdf_path,
        base_link=base_link,
        actuated_joints=actuated,
        mimics=mimics,
        limits=limits,
        links=sub_links | {WRIST_FRAME},
    )


def _check_overrides(
    overrides: dict[str, Mimic | None], moving: list[str], all_joints: set[str], base_link: str, urdf_path: Path
) -> None:
    """Refuse overrides naming a joint, or a joint to follow, that is not a moving joint of the hand."""

    def problem(joint: str) -> str:
        if joint in all_joints:
            return f"{joint!r} is not a moving joint below {base_link!r}"
        return f"{joint!r} is not a joint of {urdf_path.name}"

    valid = f"the hand's moving joints: {', '.join(moving)}"
    for name, o in overrides.items():
        if name not in moving:
            raise MimicOverrideError(name, f"{problem(name)}; remove this entry or fix the joint's name ({valid})")
        if o is not None and o.source == name:
            raise MimicOverrideError(
                name, f"{name!r} cannot follow itself; name the joint it follows ({valid})", "joint"
            )
        if o is not None and o.source not in moving:
            raise MimicOverrideError(name, f"{problem(o.source)}; name the joint {name!r} follows ({valid})", "joint")


def mimic_fix_hint(broken: list[Mimic], moving: list[str]) -> str:
    """The hand YAML lines that fix ``broken`` mimic relations without editing the URDF."""
    follow, drop = {}, {}
    for m in broken:
        guess = difflib.get_close_matches(str(m.source), [j for j in moving if j != m.name], n=1, cutoff=0.5)
        source = guess[0] if guess else "<the joint it follows>"
        follow[m.name] = {"joint": source, "multiplier": m.multiplier, "offset": m.offset}
        drop[m.name] = None
    # Block style at the top, flow style for each relation: "  a_2: {joint: a_1, ...}" and "  a_2: null".
    dump = lambda section, flow: yaml.safe_dump({"mimic": section}, default_flow_style=flow, sort_keys=False)
    return (
        "Fix it in the hand YAML, without editing the URDF (merge into its mimic: section if it has one). "
        "To make the joint follow the right joint (the name is a guess: check it), add\n\n"
        f"{dump(follow, None)}\n"
        "or, to drop the relation so that the joint becomes actuated (it then appears in joint_names), add\n\n"
        f"{dump(drop, False)}"
    )
