"""Hands as data: load_hand, pinocchio FK, retargeting (fingertip IK and dex-retargeting), bad input."""

import dataclasses
import glob
import os
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from helpers.geometry import right_hand_keypoints
from humanprompt_ros.hand.hand import Hand, load_hand
from humanprompt_ros.hand.keypoints import keypoints_to_action
from humanprompt_ros.paths import config_path

ALLEGRO = config_path("hands", "allegro_right.yaml")


@pytest.fixture(scope="module")
def allegro() -> Hand:
    return load_hand(ALLEGRO)


def fingertip_errors_mm(hand: Hand, samples: int, seed: int, method: str | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = hand.joint_limits
    errors = []
    for _ in range(samples):
        target = hand.fk(rng.uniform(lo, hi))
        q = hand.retarget(target, method=method)
        assert np.all(q >= lo - 1e-12) and np.all(q <= hi + 1e-12)
        errors.extend(np.linalg.norm(hand.fk(q).fingertips - target.fingertips, axis=1)[hand.mask])
    return np.asarray(errors) * 1e3


def test_allegro_description(allegro):
    assert allegro.num_joints == 16
    assert allegro.joint_names[0] == "joint_0.0" and allegro.joint_names[-1] == "joint_15.0"
    lo, hi = allegro.joint_limits
    assert lo.shape == hi.shape == (16,) and np.all(lo < hi)
    assert list(allegro.mask) == [True, True, True, True, False]  # no little finger


def test_allegro_wrist_frame_follows_the_convention(allegro):
    """Flexing the fingers moves the fingertips toward the palm (-z); fingers point along +x."""
    lo, hi = allegro.joint_limits
    q_open = np.clip(np.zeros(16), lo, hi)
    q_flex = q_open.copy()
    q_flex[[1, 2, 3, 5, 6, 7, 9, 10, 11]] = 1.2
    open_tips, flex_tips = allegro.fk(q_open).fingertips, allegro.fk(q_flex).fingertips
    assert np.all(open_tips[1:4, 0] > 0.12)  # index, middle, ring along +x
    assert open_tips[1, 1] > 0 > open_tips[3, 1]  # index on +y, ring on -y
    assert np.all(flex_tips[1:4, 2] < open_tips[1:4, 2] - 0.03)  # curl toward the palm side (-z)


def test_round_trip_is_near_exact(allegro):
    """≥500 random configurations: fk → retarget → fk, median < 1 mm, p95 < 5 mm."""
    err = fingertip_errors_mm(allegro, 500, seed=0)
    assert np.median(err) < 1.0
    assert np.percentile(err, 95) < 5.0


def test_retarget_clamps_to_limits_and_warm_starts(allegro):
    far = allegro.fk(allegro.neutral())
    far.fingertips[1] += [0.5, 0.0, 0.0]  # index fingertip 50 cm away: unreachable
    q = allegro.retarget(far)
    lo, hi = allegro.joint_limits
    assert np.all(q >= lo) and np.all(q <= hi) and np.all(np.isfinite(q))
    target = allegro.fk(allegro.neutral() + 0.05)
    q1 = allegro.retarget(target, q_init=allegro.neutral())
    allegro.reset()
    np.testing.assert_allclose(allegro.fk(q1).fingertips, target.fingertips, atol=1e-4)


def test_fk_base_pose_and_base_pose_for_agree(allegro):
    rng = np.random.default_rng(3)
    base = np.eye(4)
    base[:3, 3] = rng.normal(size=3)
    a = allegro.fk(allegro.neutral(), base_pose=base)
    np.testing.assert_allclose(allegro.base_pose_for(a), base, atol=1e-12)
    np.testing.assert_allclose(a.fingertips, allegro.fk(allegro.neutral()).fingertips)


def test_nan_targets_are_rejected_never_nan_joints(allegro):
    a = allegro.fk(allegro.neutral())
    arr = a.to_array()
    arr[12] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        allegro.retarget(arr)
    a.fingertips[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        allegro.retarget(a)
    with pytest.raises(ValueError, match="NaN or inf"):
        allegro.fk(np.full(16, np.nan))
    with pytest.raises(ValueError, match="16 joint positions"):
        allegro.fk(np.zeros(3))


def test_masked_fingers_are_ignored(allegro):
    target = allegro.fk(allegro.neutral() + 0.1)
    target.mask[:] = [False, True, False, False, False]  # only the index finger
    q = allegro.retarget(target, q_init=allegro.neutral())
    tips = allegro.fk(q).fingertips
    assert np.linalg.norm(tips[1] - target.fingertips[1]) < 1e-4


def test_retarget_batch_follows_a_trajectory(allegro):
    lo, hi = allegro.joint_limits
    qs = np.linspace(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), 10)
    actions = allegro.fk_batch(qs)
    assert actions.shape == (10, 24)
    out = allegro.retarget_batch(actions, mask=allegro.mask)
    err = np.linalg.norm(allegro.fk_batch(out)[:, 9:21] - actions[:, 9:21], axis=1)
    assert np.max(err) < 1e-3


def test_dex_retargeting_vector_on_robot_targets(allegro):
    hand = Hand(
        dataclasses.replace(allegro.config, retargeting=dataclasses.replace(allegro.config.retargeting, scaling=1.0)),
        ALLEGRO.parent,
    )
    before = set(glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"), "dex_retargeting-*")))
    err = fingertip_errors_mm(hand, 30, seed=1, method="vector")
    after = set(glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"), "dex_retargeting-*")))
    assert after == before, "building the dex-retargeting optimizer must not leave temp dirs behind"
    assert np.median(err) < 20.0  # an approximate optimizer: the benchmark reports it beside the IK


@pytest.mark.parametrize("method", ["vector", "dexpilot", "position"])
def test_human_keypoints_retarget_onto_allegro(allegro, method):
    human = keypoints_to_action(right_hand_keypoints())
    q = allegro.retarget(human, q_init=allegro.neutral(), method=method)
    lo, hi = allegro.joint_limits
    assert q.shape == (16,) and np.all(np.isfinite(q)) and np.all(q >= lo) and np.all(q <= hi)


def test_dex_retargeting_needs_every_finger(allegro):
    a = allegro.fk(allegro.neutral())
    a.mask[0] = False
    with pytest.raises(ValueError, match="masked: \\['thumb'\\]"):
        allegro.retarget(a, method="vector")


# -- another hand, described by YAML only: part of an arm, with a mimic and a continuous joint ---------
ARM_URDF = """
<robot name="arm_with_gripper">
  <link name="world"/>
  <link name="upper"/><link name="fore"/><link name="palm"/>
  <joint name="shoulder" type="revolute"><parent link="world"/><child link="upper"/>
    <axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="elbow" type="revolute"><parent link="upper"/><child link="fore"/>
    <origin xyz="0.3 0 0"/><axis xyz="0 1 0"/><limit lower="-2" upper="2" effort="1" velocity="1"/></joint>
  <joint name="wrist_fixed" type="fixed"><parent link="fore"/><child link="palm"/><origin xyz="0.25 0 0"/></joint>
  {fingers}
</robot>
"""


def _finger(name: str, y: float, mimic: bool, continuous: bool, mimic_source: str = "") -> str:
    """Three joints {name}_0..2; with ``mimic``, {name}_2 follows ``mimic_source`` (default {name}_1)."""
    jtype = "continuous" if continuous else "revolute"
    limit = "" if continuous else '<limit lower="-0.2" upper="1.5" effort="1" velocity="1"/>'
    source = mimic_source or f"{name}_1"
    mimic_el = f'<mimic joint="{source}" multiplier="0.8" offset="0.05"/>' if mimic else ""
    return textwrap.dedent(f"""
      <link name="{name}_l1"/><link name="{name}_l2"/><link name="{name}_tip"/>
      <joint name="{name}_0" type="revolute"><parent link="palm"/><child link="{name}_l1"/>
        <origin xyz="0.08 {y} 0"/><axis xyz="0 0 1"/><limit lower="-0.4" upper="0.4" effort="1" velocity="1"/></joint>
      <joint name="{name}_1" type="{jtype}"><parent link="{name}_l1"/><child link="{name}_l2"/>
        <origin xyz="0.04 0 0"/><axis xyz="0 1 0"/>{limit}</joint>
      <joint name="{name}_2" type="revolute"><parent link="{name}_l2"/><child link="{name}_tip"/>
        <origin xyz="0.035 0 0"/><axis xyz="0 1 0"/><limit lower="-0.2" upper="1.5" effort="1" velocity="1"/>{mimic_el}</joint>
      <link name="{name}_end"/>
      <joint name="{name}_end_fixed" type="fixed"><parent link="{name}_tip"/><child link="{name}_end"/><origin xyz="0.03 0 0"/></joint>
    """)


def _gripper(tmp_path: Path, mimic_source: str = "", extra_yaml: str = "") -> Path:
    """The three-finger gripper on an arm (URDF + hand YAML in ``tmp_path``); a_2 mimics ``mimic_source``."""
    fingers = (
        _finger("a", 0.03, mimic=True, continuous=False, mimic_source=mimic_source)
        + _finger("b", 0.0, False, False)
        + _finger("c", -0.03, False, continuous=True)
    )
    (tmp_path / "urdf").mkdir(exist_ok=True)
    (tmp_path / "urdf" / "arm.urdf").write_text(ARM_URDF.format(fingers=fingers))
    cfg = tmp_path / "gripper.yaml"
    cfg.write_text(
        textwrap.dedent("""
        name: three_finger
        urdf: urdf/arm.urdf          # relative to this file
        base_link: palm
        fingertip_links: {thumb: a_end, index: b_end, middle: c_end}
        retargeting: {type: fingertip_ik}
    """)
        + textwrap.dedent(extra_yaml)
    )
    return cfg


@pytest.fixture
def gripper_yaml(tmp_path: Path) -> Path:
    return _gripper(tmp_path)


def test_a_new_hand_needs_only_yaml(gripper_yaml):
    hand = load_hand(gripper_yaml)
    # arm joints are not part of the hand; the mimic joint a_2 follows a_1 and is not actuated
    assert hand.joint_names == ["a_0", "a_1", "b_0", "b_1", "b_2", "c_0", "c_1", "c_2"]
    assert list(hand.mask) == [True, True, True, False, False]
    q = np.zeros(8)
    q[hand.joint_names.index("a_1")] = 0.5
    tips = hand.fk(q).fingertips
    # finger a: link 0.04 along x, then rotate by a_1=0.5 about y; a_2 = 0.8*0.5 + 0.05 = 0.45 more.
    a1, a2 = 0.5, 0.45
    expected_a = (
        np.array([0.08 + 0.04, 0.03, 0.0])
        + 0.035 * np.array([np.cos(a1), 0, -np.sin(a1)])
        + 0.03 * np.array([np.cos(a1 + a2), 0, -np.sin(a1 + a2)])
    )
    np.testing.assert_allclose(tips[0], expected_a, atol=1e-9)
    np.testing.assert_allclose(tips[1], [0.08 + 0.04 + 0.035 + 0.03, 0.0, 0.0], atol=1e-9)
    err = fingertip_errors_mm(hand, 100, seed=4)
    assert np.median(err) < 1.0 and np.percentile(err, 95) < 5.0


def _finger_a_tip(a1: float, a2: float) -> np.ndarray:
    """Fingertip of finger a (wrist frame = palm) for a_0 = 0 and the given a_1, a_2."""
    return (
        np.array([0.08 + 0.04, 0.03, 0.0])
        + 0.035 * np.array([np.cos(a1), 0, -np.sin(a1)])
        + 0.03 * np.array([np.cos(a1 + a2), 0, -np.sin(a1 + a2)])
    )


# -- a vendor URDF with a broken mimic tag, fixed from the hand YAML ------------------------------------
BROKEN = "a_1_joint"  # the vendor's mimic tag names a joint that is called a_1


def test_a_broken_mimic_tag_is_refused_with_the_yaml_fix(tmp_path):
    cfg = _gripper(tmp_path, mimic_source=BROKEN)
    with pytest.raises(ValueError) as info:
        load_hand(cfg)
    msg = str(info.value)
    assert "gripper.yaml" in msg and "arm.urdf" in msg
    assert f"mimic joint 'a_2' follows '{BROKEN}', which is not a moving joint below 'palm'" in msg
    assert "mimic:\n  a_2: {joint: a_1, multiplier: 0.8, offset: 0.05}\n" in msg
    assert "mimic:\n  a_2: null\n" in msg
    # The lines the message shows are exact: pasted into the YAML, each fix loads.
    follow_fix = msg.split("add\n\n")[1].split("\n\n")[0]
    drop_fix = msg.split("add\n\n")[2]
    assert load_hand(_gripper(tmp_path, BROKEN, follow_fix)).joint_names == [
        "a_0",
        "a_1",
        "b_0",
        "b_1",
        "b_2",
        "c_0",
        "c_1",
        "c_2",
    ]
    assert "a_2" in load_hand(_gripper(tmp_path, BROKEN, drop_fix)).joint_names


@pytest.mark.parametrize("source", [BROKEN, "a_1"], ids=["broken_tag", "healthy_tag"])
def test_a_yaml_mimic_override_drives_the_kinematics(tmp_path, source):
    """The override replaces the URDF's tag (broken or not): FK follows a_2 = 0.5 * a_1 + 0.1."""
    hand = load_hand(_gripper(tmp_path, source, "mimic:\n  a_2: {joint: a_1, multiplier: 0.5, offset: 0.1}\n"))
    assert hand.joint_names == ["a_0", "a_1", "b_0", "b_1", "b_2", "c_0", "c_1", "c_2"]
    q = np.zeros(8)
    q[hand.joint_names.index("a_1")] = 0.6
    np.testing.assert_allclose(hand.fk(q).fingertips[0], _finger_a_tip(0.6, 0.5 * 0.6 + 0.1), atol=1e-9)
    # The standalone URDF (robot_description, dex-retargeting) carries the effective tag.
    tags = ET.fromstring(hand.urdf.xml).findall("joint/mimic")
    assert [(t.get("joint"), float(t.get("multiplier")), float(t.get("offset"))) for t in tags] == [("a_1", 0.5, 0.1)]
    err = fingertip_errors_mm(hand, 50, seed=6)
    assert np.median(err) < 1.0 and np.percentile(err, 95) < 5.0


def test_a_yaml_mimic_override_can_add_a_relation(tmp_path):
    hand = load_hand(_gripper(tmp_path, extra_yaml="mimic:\n  b_2: {joint: b_1}\n"))
    assert hand.joint_names == ["a_0", "a_1", "b_0", "b_1", "c_0", "c_1", "c_2"]
    q = np.zeros(7)
    q[hand.joint_names.index("b_1")] = 0.4  # b_2 = 1.0 * b_1 + 0.0: finger b bends twice as much at its tip
    tip = hand.fk(q).fingertips[1]
    expected = (
        np.array([0.12, 0.0, 0.0])
        + 0.035 * np.array([np.cos(0.4), 0, -np.sin(0.4)])
        + 0.03 * np.array([np.cos(0.8), 0, -np.sin(0.8)])
    )
    np.testing.assert_allclose(tip, expected, atol=1e-9)


def test_dropping_a_mimic_makes_the_joint_actuated(tmp_path):
    hand = load_hand(_gripper(tmp_path, BROKEN, "mimic:\n  a_2: null\n"))
    assert hand.joint_names == ["a_0", "a_1", "a_2", "b_0", "b_1", "b_2", "c_0", "c_1", "c_2"]
    lo, hi = hand.joint_limits
    assert (lo[2], hi[2]) == (-0.2, 1.5)  # the URDF's own limits for a_2
    q = np.zeros(9)
    q[1], q[2] = 0.3, 0.9  # a_1 and a_2 now move independently
    np.testing.assert_allclose(hand.fk(q).fingertips[0], _finger_a_tip(0.3, 0.9), atol=1e-9)
    assert ET.fromstring(hand.urdf.xml).findall("joint/mimic") == []


@pytest.mark.parametrize(
    "mimic, match",
    [
        ("nope: null", r"gripper\.yaml: mimic\.nope: 'nope' is not a joint of arm\.urdf; remove this entry"),
        ("elbow: {joint: a_1}", r"gripper\.yaml: mimic\.elbow: 'elbow' is not a moving joint below 'palm'"),
        ("a_2: {joint: a_9}", r"gripper\.yaml: mimic\.a_2\.joint: 'a_9' is not a joint of arm\.urdf; name the joint"),
        ("a_2: {joint: shoulder}", r"gripper\.yaml: mimic\.a_2\.joint: 'shoulder' is not a moving joint below 'palm'"),
        ("a_2: {joint: a_end_fixed}", r"gripper\.yaml: mimic\.a_2\.joint: 'a_end_fixed' is not a moving joint"),
        ("a_2: {joint: a_2}", r"gripper\.yaml: mimic\.a_2\.joint: 'a_2' cannot follow itself"),
        ("b_1: null", r"gripper\.yaml: mimic\.b_1: 'b_1' has no mimic tag in the URDF.*remove this entry"),
        ("a_2: {joint: a_1, multipler: 2}", r"gripper\.yaml: mimic\.a_2\.multipler: unknown key"),
        ("a_2: {multiplier: 2}", r"gripper\.yaml: mimic\.a_2\.joint: required key is missing"),
        ("a_2: a_1", r"gripper\.yaml: mimic\.a_2: expected MimicOverride or NoneType"),
    ],
    ids=[
        "joint_not_in_urdf",
        "joint_outside_hand",
        "source_not_in_urdf",
        "source_outside_hand",
        "source_fixed",
        "follows_itself",
        "drop_without_tag",
        "typo_key",
        "source_missing",
        "not_a_mapping",
    ],
)
def test_bad_mimic_overrides_are_refused_naming_file_and_joint(tmp_path, mimic, match):
    with pytest.raises(ValueError, match=match):
        load_hand(_gripper(tmp_path, BROKEN, f"mimic:\n  {mimic}\n"))


def test_a_mimic_cycle_made_by_an_override_names_the_hand_file(tmp_path):
    with pytest.raises(ValueError, match=r"gripper\.yaml.*mimic joints form a cycle"):
        load_hand(_gripper(tmp_path, extra_yaml="mimic:\n  a_1: {joint: a_2}\n"))


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "hand.yaml"
    p.write_text(textwrap.dedent(body))
    return p


ALLEGRO_URDF = "package://example-robot-data/robots/allegro_hand_description/urdf/allegro_right_hand.urdf"


@pytest.mark.parametrize(
    "body, match",
    [
        (
            f"name: x\nurdf: {ALLEGRO_URDF}\nbase_link: palm_link\nfingertip_links: {{index: no_such_link}}\n",
            r"links \['no_such_link'\] are not links of the URDF",
        ),
        (
            f"name: x\nurdf: {ALLEGRO_URDF}\nbase_link: nope\nfingertip_links: {{index: link_3.0_tip}}\n",
            r"base_link 'nope' is not a link",
        ),
        (
            "name: x\nurdf: /does/not/exist.urdf\nbase_link: palm_link\nfingertip_links: {index: a}\n",
            r"hand\.yaml: urdf: URDF not found",
        ),
        (
            "name: x\nurdf: package://no_such_package/x.urdf\nbase_link: p\nfingertip_links: {index: a}\n",
            r"package 'no_such_package' not found",
        ),
        (
            f"name: x\nurdf: {ALLEGRO_URDF}\nbase_link: palm_link\nfingertip_links: {{index: link_3.0_tip}}\n"
            "retargeting: {type: magic}\n",
            r"hand\.yaml: retargeting\.type: unknown retargeting type 'magic'",
        ),
        (
            f"name: x\nurdf: {ALLEGRO_URDF}\nbase_link: palm_link\nfingertip_links: {{pinky: link_3.0_tip}}\n",
            r"fingertip_links: unknown finger 'pinky'",
        ),
        (f"name: x\nurdf: {ALLEGRO_URDF}\nbase_link: palm_link\n", r"fingertip_links: required key is missing"),
        (
            f"name: x\nurdf: {ALLEGRO_URDF}\nbase_link: palm_link\nfingertip_links: {{index: link_3.0_tip}}\n"
            "wrist_offset: {xyz: [0, 0]}\n",
            r"wrist_offset\.xyz: expected 3 values",
        ),
        (
            f"name: x\nurdf: {ALLEGRO_URDF}\nbase_link: palm_link\nfingertip_links: {{index: link_3.0_tip}}\ncolour: red\n",
            r"colour: unknown key",
        ),
    ],
)
def test_bad_hand_configs_are_value_errors(tmp_path, body, match):
    with pytest.raises(ValueError, match=match):
        load_hand(_write(tmp_path, body))


def test_urdf_that_is_not_urdf(tmp_path):
    (tmp_path / "bad.urdf").write_text("<robot><link name='a'")
    p = _write(tmp_path, "name: x\nurdf: bad.urdf\nbase_link: a\nfingertip_links: {index: a}\n")
    with pytest.raises(ValueError, match="cannot read URDF"):
        load_hand(p)


def test_every_shipped_hand_loads_and_round_trips():
    hands = sorted(config_path("hands").glob("*.yaml"))
    assert hands
    for path in hands:
        hand = load_hand(path)
        err = fingertip_errors_mm(hand, 50, seed=5)
        assert np.median(err) < 1.0, path
