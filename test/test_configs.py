"""Every shipped config file loads through its typed loader; none is left without one."""

from pathlib import Path
from typing import Callable

import pytest

from humanprompt_ros.config.loader import ConfigError, from_dict, load_config
from humanprompt_ros.hand.hand import HandConfig, RetargetingConfig, load_hand
from humanprompt_ros.paths import share_dir

CONFIG = share_dir() / "config"


def _loaders() -> dict[str, Callable[[Path], object]]:
    """Glob (relative to config/) → the loader that validates such a file."""
    from humanprompt_ros.config.nodes import (
        load_camera_config,
        load_command_config,
        load_policy_config,
        load_prompt_encoder_config,
        load_recorder_config,
        load_sim_driver_config,
    )
    from humanprompt_ros.config.stage1 import load_stage1_config
    from humanprompt_ros.config.stage2 import load_stage2_config
    from humanprompt_ros.hand.camera_geometry import load_intrinsics
    from humanprompt_ros.hand.video_pose import load_hand_video_config
    from humanprompt_ros.sim.benchmark import load_benchmark
    from humanprompt_ros.sim.human_hand import load_human_hand
    from humanprompt_ros.sim.scene import load_sim_config
    from humanprompt_ros.sim.tasks import load_task

    return {
        "hands/*.yaml": load_hand,
        "stage1.yaml": load_stage1_config,
        "stage2.yaml": load_stage2_config,
        "camera.yaml": load_camera_config,
        "command.yaml": load_command_config,
        "prompt_encoder.yaml": load_prompt_encoder_config,
        "policy.yaml": load_policy_config,
        "sim_driver.yaml": load_sim_driver_config,
        "recorder.yaml": load_recorder_config,
        "tasks/*.yaml": load_task,
        "sim.yaml": load_sim_config,
        "benchmark.yaml": load_benchmark,
        "sim_human_hand.yaml": load_human_hand,
        "hand_video.yaml": load_hand_video_config,
        "camera_intrinsics.yaml": load_intrinsics,
    }


def _shipped() -> list[Path]:
    return sorted(p for p in CONFIG.rglob("*.yaml"))


def test_every_shipped_config_has_a_loader_and_loads():
    loaders = _loaders()
    assert _shipped(), "no config files found"
    for path in _shipped():
        rel = path.relative_to(CONFIG)
        matches = [fn for pattern, fn in loaders.items() if rel.match(pattern)]
        assert matches, f"config/{rel} has no loader in test_configs.py: every shipped config must be validated"
        matches[0](path)


def test_config_errors_name_file_and_key(tmp_path):
    p = tmp_path / "h.yaml"
    p.write_text("name: x\nurdf: u\nbase_link: b\nfingertip_links: {index: t}\nretargeting: {ik_max_iters: many}\n")
    with pytest.raises(ConfigError) as err:
        load_config(HandConfig, p)
    assert str(p) in str(err.value) and "retargeting.ik_max_iters" in str(err.value)
    assert "expected an integer" in str(err.value)


def test_config_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(HandConfig, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(HandConfig, bad)
    bad.write_text("name: a\nurdf: u\nname: b\n")
    with pytest.raises(ConfigError, match=r"name: given twice \(lines 1 and 3\)") as err:
        load_config(HandConfig, bad)
    assert str(bad) in str(err.value)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(HandConfig, bad)


def test_overrides_use_dotted_keys(tmp_path):
    from humanprompt_ros.config.stage1 import Stage1Config

    cfg = load_config(Stage1Config, CONFIG / "stage1.yaml", ["train.steps=7", "model.width=64", "data=/x"])
    assert cfg.train.steps == 7 and cfg.model.width == 64 and cfg.data == "/x"
    with pytest.raises(ConfigError, match="train.stepz: unknown key"):
        load_config(Stage1Config, CONFIG / "stage1.yaml", ["train.stepz=7"])
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(Stage1Config, CONFIG / "stage1.yaml", ["train.steps"])


def test_types_are_checked_strictly():
    with pytest.raises(ConfigError, match="expected a number"):
        from_dict(RetargetingConfig, {"scaling": "big"})
    with pytest.raises(ConfigError, match="expected a number"):
        from_dict(RetargetingConfig, {"scaling": True})
    assert from_dict(RetargetingConfig, {"scaling": 2}).scaling == 2.0
    assert from_dict(RetargetingConfig, {"low_pass_alpha": None}).low_pass_alpha is None
    with pytest.raises(ConfigError, match="scaling: must be > 0"):
        from_dict(RetargetingConfig, {"scaling": -1.0})
