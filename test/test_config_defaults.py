"""One source of defaults: every value in a shipped YAML under config/ equals its dataclass's default, so code
that builds a config without a file behaves like the shipped one, and help strings cannot name stale values."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from humanprompt_ros.config.loader import read_yaml
from humanprompt_ros.config.nodes import (
    CameraConfig,
    CommandConfig,
    PolicyConfig,
    PromptEncoderConfig,
    RecorderConfig,
    SimDriverConfig,
    node_section,
)
from humanprompt_ros.config.stage1 import Stage1Config
from humanprompt_ros.config.stage2 import Stage2Config
from humanprompt_ros.hand.camera_geometry import CameraIntrinsics
from humanprompt_ros.hand.video_pose import HandVideoConfig
from humanprompt_ros.sim.human_hand import HumanHandConfig
from humanprompt_ros.sim.scene import SimConfig

CONFIG = Path(__file__).resolve().parent.parent / "config"

FILES = [
    ("stage1.yaml", Stage1Config, None),
    ("stage2.yaml", Stage2Config, None),
    ("sim.yaml", SimConfig, None),
    ("sim_human_hand.yaml", HumanHandConfig, None),
    ("camera.yaml", CameraConfig, "camera"),
    ("command.yaml", CommandConfig, "command"),
    ("policy.yaml", PolicyConfig, "policy"),
    ("prompt_encoder.yaml", PromptEncoderConfig, "prompt_encoder"),
    ("sim_driver.yaml", SimDriverConfig, "sim_driver"),
    ("recorder.yaml", RecorderConfig, "recorder"),
    ("hand_video.yaml", HandVideoConfig, None),
    ("camera_intrinsics.yaml", CameraIntrinsics, None),
]


def plain(value):
    """Tuples → lists and ints → floats where a YAML and a dataclass may differ only in spelling."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)


def drift(cls: type, data: dict, prefix: str = "") -> list[str]:
    """Keys of ``data`` whose value differs from ``cls``'s default (recursing into nested dataclasses)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        key, value = f"{prefix}{f.name}", data[f.name]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue  # required: the YAML must give it, there is no default to drift from
        if dataclasses.is_dataclass(hints[f.name]) and isinstance(value, dict):
            out += drift(hints[f.name], value, key + ".")
        elif plain(dataclasses.asdict(default) if dataclasses.is_dataclass(default) else default) != plain(value):
            out.append(f"{key}: YAML {value!r}, dataclass default {default!r}")
    return out


@pytest.mark.parametrize("name, cls, node", FILES, ids=[f[0] for f in FILES])
def test_dataclass_defaults_are_the_shipped_yaml(name, cls, node):
    data = read_yaml(CONFIG / name)
    if node is not None:
        data, _ = node_section(data, node, name)
    problems = drift(cls, data)
    assert not problems, f"config/{name} and {cls.__name__} disagree:\n" + "\n".join(problems)


@dataclasses.dataclass
class Inner:
    x: float = 1.0


@dataclasses.dataclass
class Outer:
    name: str
    inner: Inner = dataclasses.field(default_factory=Inner)
    sizes: tuple[int, ...] = (1, 2)


def test_drift_is_detected():
    assert drift(Outer, {"name": "any", "inner": {"x": 1}, "sizes": [1, 2]}) == []
    assert drift(Outer, {"inner": {"x": 2.0}, "sizes": [1, 3]}) == [
        "inner.x: YAML 2.0, dataclass default 1.0",
        "sizes: YAML [1, 3], dataclass default (1, 2)",
    ]
