"""HandAction ↔ PoseArray, JointState helpers, quaternions (humanprompt_ros.ros.conversions); the node
helpers that need no graph (safety math, pixels, diagnostics statistics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.ros import require_rclpy

pytestmark = [require_rclpy()]


@pytest.fixture(scope="module")
def hand():
    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.paths import config_path

    return load_hand(config_path("hands", "allegro_right.yaml"))


def random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    from humanprompt_ros.ros.conversions import matrix_from_quaternion

    return matrix_from_quaternion(q)


def test_quaternion_round_trip():
    from humanprompt_ros.ros.conversions import matrix_from_quaternion, quaternion_from_matrix

    rng = np.random.default_rng(0)
    for _ in range(200):
        r = random_rotation(rng)
        assert np.allclose(matrix_from_quaternion(quaternion_from_matrix(r)), r, atol=1e-12)
    for r in (np.eye(3), np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])):
        assert np.allclose(matrix_from_quaternion(quaternion_from_matrix(r)), r)


def test_action_pose_array_round_trip_with_mask(hand):
    from humanprompt_ros.action import HandAction
    from humanprompt_ros.ros.conversions import action_to_pose_array, pose_array_to_action

    rng = np.random.default_rng(1)
    action = hand.fk(hand.neutral()).with_wrist(
        np.block([[random_rotation(rng), rng.normal(size=(3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]])
    )
    msg = action_to_pose_array(action, frame_id="cam")
    assert len(msg.poses) == 6 and msg.header.frame_id == "cam"
    little = msg.poses[5]
    assert (little.orientation.x, little.orientation.y, little.orientation.z, little.orientation.w) == (0, 0, 0, 0)
    assert (little.position.x, little.position.y, little.position.z) == (0, 0, 0)
    assert msg.poses[1].orientation.w == 1.0
    back = pose_array_to_action(msg)
    assert np.allclose(back.to_array(), action.to_array(), atol=1e-9)
    assert back.mask.tolist() == [True, True, True, True, False]
    full = HandAction(np.zeros(3), np.eye(3), rng.normal(size=(5, 3)))
    assert pose_array_to_action(action_to_pose_array(full)).mask.all()


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda m: setattr(m.poses[0].position, "x", math.nan), "wrist pose contains NaN"),
        (lambda m: setattr(m.poses[3].position, "z", math.inf), "middle fingertip contains NaN or inf"),
        (lambda m: setattr(m.poses[0].orientation, "w", 3.0), "not a unit quaternion"),
        (lambda m: m.poses.pop(), "a hand target has 6 poses"),
    ],
)
def test_invalid_pose_arrays_raise(hand, break_it, message):
    from humanprompt_ros.ros.conversions import action_to_pose_array, pose_array_to_action

    msg = action_to_pose_array(hand.fk(hand.neutral()))
    break_it(msg)
    with pytest.raises(ValueError, match=message):
        pose_array_to_action(msg)


def test_joint_state_helpers(hand):
    from humanprompt_ros.ros.conversions import joint_positions, joint_state

    names = hand.joint_names
    q = np.linspace(0, 1, len(names))
    msg = joint_state(names[::-1], q[::-1])
    assert np.allclose(joint_positions(msg, names), q)  # by name, whatever the order
    msg.name = msg.name[1:]
    with pytest.raises(ValueError, match="names but"):
        joint_positions(msg, names)
    msg = joint_state(names[1:], q[1:])
    with pytest.raises(ValueError, match=f"lacks joint\\(s\\) {names[0]}"):
        joint_positions(msg, names)
    msg = joint_state(names, np.where(np.arange(len(q)) == 2, np.nan, q))
    with pytest.raises(ValueError, match=f"NaN or inf positions for {names[2]}"):
        joint_positions(msg, names)


def test_safety_math():
    from humanprompt_ros.control.safety import safe_limits, velocity_step

    lo, hi = safe_limits(np.array([-1.0, 0.0]), np.array([1.0, 0.01]), 0.02)
    assert np.allclose(lo, [-0.98, 0.005]) and np.allclose(hi, [0.98, 0.005])
    q, limited = velocity_step(np.zeros(2), np.array([1.0, -0.001]), 2.0, 0.01)
    assert limited and np.allclose(q, [0.02, -0.001])
    q, limited = velocity_step(np.zeros(2), np.array([0.01, 0.0]), 2.0, 0.01)
    assert not limited and np.allclose(q, [0.01, 0.0])


def test_hand_drawing_segments(hand):
    from humanprompt_ros.hand.kinematics import hand_segments

    names, segments = hand_segments(hand.kin)
    assert names[0] == "humanprompt_wrist" and len(names) == len(set(names))
    assert len(segments) == len(names) - 1  # a tree: every frame but the root has one parent
    assert {n for n in names if n.endswith("_tip")} == set(hand.fingertip_links)


def test_camera_pixels():
    from humanprompt_ros.camera import BadFrame, as_rgb, fit

    img = np.zeros((480, 640, 3), np.uint8)
    img[:, :80] = 255  # a white band that the center crop removes
    out = fit(img, 96, 96, "center")
    assert out.shape == (96, 96, 3) and out.max() == 0
    assert fit(img, 96, 96, "none")[:, :6].min() > 200
    assert as_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert as_rgb(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(BadFrame):
        as_rgb(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(BadFrame):
        as_rgb(np.zeros((4, 5, 3), np.float32))


def test_diagnostics_statistics():
    from humanprompt_ros.ros.diagnostics import LatencyStats, RateMeter, make_status, status_level

    t = [0.0]
    meter = RateMeter(window_s=2.0, clock=lambda: t[0])
    for i in range(21):
        t[0] = i * 0.05
        meter.tick()
    assert meter.rate() == pytest.approx(20.0)
    t[0] = 10.0
    assert meter.rate() == 0.0
    stats = LatencyStats(window=100)
    assert stats.summary_ms() == {}
    for i in range(200):
        stats.add(i / 1000)
    s = stats.summary_ms()
    assert s["n"] == 100 and s["max"] == pytest.approx(199) and s["p50"] == pytest.approx(149.5)
    st = make_status("camera", 1, "slow", {"rate_hz": 29.51234567, "ok": True, "n": 3})
    assert status_level(st) == 1 and [kv.value for kv in st.values] == ["29.5123", "true", "3"]


def test_topic_table():
    from humanprompt_ros.ros import topics

    assert len({t.name for t in topics.TOPICS}) == len(topics.TOPICS)
    for t in topics.TOPICS:
        if t.name != "/tf":  # tf2_msgs has no PyPI wheel
            topics.msg_class(t)
        topics.qos_profile(t)
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    assert topics.qos_profile(topics.OBSERVATION).reliability == ReliabilityPolicy.BEST_EFFORT
    assert topics.qos_profile(topics.PROMPT).durability == DurabilityPolicy.TRANSIENT_LOCAL
    tokens_qos = topics.qos_profile(topics.PROMPT_TOKENS)  # latched like the prompt it encodes
    assert (tokens_qos.durability, tokens_qos.reliability, tokens_qos.depth) == (
        DurabilityPolicy.TRANSIENT_LOCAL,
        ReliabilityPolicy.RELIABLE,
        1,
    )
    assert topics.PROMPT_TOKENS.type == "std_msgs/msg/Float32MultiArray"
    assert topics.qos_profile(topics.MARKERS).reliability == ReliabilityPolicy.RELIABLE
    assert topics.subscription_qos(topics.JOINT_STATES).reliability == ReliabilityPolicy.BEST_EFFORT
    with pytest.raises(KeyError, match="not a humanprompt_ros topic"):
        topics.by_name("/nope")


def test_prompt_tokens_message_round_trip_and_checks():
    from rclpy.serialization import deserialize_message, serialize_message
    from std_msgs.msg import Float32MultiArray

    from humanprompt_ros.ros.conversions import msg_to_tokens, tokens_to_msg

    tokens = np.random.default_rng(0).normal(size=(1, 8, 32)).astype(np.float32)
    msg = tokens_to_msg(tokens, "press_button-1-ab@2", "0123456789abcdef", 3)
    assert [(d.size, d.stride) for d in msg.layout.dim] == [(1, 256), (8, 256), (32, 32)]
    assert [d.label for d in msg.layout.dim[1:]] == ["tokens", "channels"]
    meta, back = msg_to_tokens(deserialize_message(serialize_message(msg), Float32MultiArray))  # as sent over DDS
    assert meta == {"prompt_id": "press_button-1-ab@2", "checkpoint": "0123456789abcdef", "skill": 3}
    np.testing.assert_array_equal(back, tokens)
    meta, none = msg_to_tokens(tokens_to_msg(None, "", ""))  # a cleared prompt
    assert meta["prompt_id"] == "" and none is None
    with pytest.raises(ValueError, match="must be"):
        tokens_to_msg(tokens[0], "x@1", "c")
    short = tokens_to_msg(tokens, "x@1", "c")
    short.data = short.data[:-1]
    with pytest.raises(ValueError, match="does not match 255 values"):
        msg_to_tokens(short)
    foreign = Float32MultiArray()  # someone else's array on the topic
    with pytest.raises(ValueError, match="without layout dimensions"):
        msg_to_tokens(foreign)
    foreign = tokens_to_msg(tokens, "x@1", "c")
    foreign.layout.dim[0].label = "batch"
    with pytest.raises(ValueError, match="not the JSON meta"):
        msg_to_tokens(foreign)
