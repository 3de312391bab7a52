"""The unified action space: flat layout, 6D rotations, masks, frames."""

import numpy as np
import pytest

from helpers.geometry import random_rotation
from humanprompt_ros.action import (
    ACTION_DIM,
    FINGERS,
    HandAction,
    actions_from_array,
    actions_to_array,
    matrix_from_rot6d,
    pose_from_xyz_rpy,
    rot6d_from_matrix,
    transform_actions,
)


def test_rot6d_round_trip_is_exact_for_rotations():
    rng = np.random.default_rng(0)
    for _ in range(100):
        rot = random_rotation(rng)
        np.testing.assert_allclose(matrix_from_rot6d(rot6d_from_matrix(rot)), rot, atol=1e-12)


def test_rot6d_orthonormalises_noisy_input():
    rng = np.random.default_rng(1)
    r6 = rot6d_from_matrix(random_rotation(rng)) + rng.normal(scale=0.1, size=6)
    rot = matrix_from_rot6d(r6)
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)


def test_rot6d_degenerate_is_an_error():
    with pytest.raises(ValueError, match="parallel"):
        matrix_from_rot6d(np.array([1.0, 0, 0, 2.0, 0, 0]))
    with pytest.raises(ValueError, match="zero length"):
        matrix_from_rot6d(np.zeros(6))


def test_flat_layout_matches_the_spec():
    rng = np.random.default_rng(2)
    rot = random_rotation(rng)
    tips = rng.normal(size=(5, 3))
    a = HandAction([1.0, 2.0, 3.0], rot, tips, mask=[True, True, True, True, False])
    arr = a.to_array()
    assert arr.shape == (ACTION_DIM,) == (24,)
    np.testing.assert_array_equal(arr[:3], [1, 2, 3])
    np.testing.assert_allclose(arr[3:6], rot[:, 0])  # first column
    np.testing.assert_allclose(arr[6:9], rot[:, 1])  # second column
    np.testing.assert_allclose(arr[9:12], tips[0])  # thumb
    np.testing.assert_array_equal(arr[21:24], 0.0)  # masked little finger is written as zeros
    b = HandAction.from_array(arr, a.mask)
    np.testing.assert_allclose(b.to_array(), arr, atol=1e-12)
    assert list(b.mask) == [True, True, True, True, False]


def test_from_array_rejects_bad_input():
    with pytest.raises(ValueError, match="24 floats"):
        HandAction.from_array(np.zeros(23))
    bad = HandAction(np.zeros(3), np.eye(3), np.zeros((5, 3))).to_array()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        HandAction.from_array(bad)


def test_world_fingertips_and_wrist_change():
    rng = np.random.default_rng(3)
    a = HandAction(rng.normal(size=3), random_rotation(rng), rng.normal(size=(5, 3)))
    world = a.fingertips_world()
    np.testing.assert_allclose((world - a.wrist_pos) @ a.wrist_rot, a.fingertips, atol=1e-12)
    pose = np.eye(4)
    pose[:3, 3] = [0.5, 0, 0]
    moved = a.with_wrist(pose)
    np.testing.assert_allclose(moved.fingertips, a.fingertips)
    np.testing.assert_allclose(moved.fingertips_world(), a.fingertips + [0.5, 0, 0])


def test_sequence_conversions():
    acts = [HandAction(np.full(3, t), np.eye(3), np.full((5, 3), t)) for t in range(4)]
    arr = actions_to_array(acts)
    assert arr.shape == (4, 24)
    back = actions_from_array(arr)
    assert len(back) == 4 and np.allclose(back[3].wrist_pos, 3)
    assert FINGERS == ("thumb", "index", "middle", "ring", "little")


def _random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    return actions_to_array(
        [HandAction(rng.normal(0, 0.3, 3), random_rotation(rng), rng.normal(0, 0.05, (5, 3))) for _ in range(n)]
    )


def test_transform_actions_round_trips_with_the_inverse():
    rng = np.random.default_rng(3)
    actions = _random_actions(rng, 7)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = random_rotation(rng), rng.normal(0, 1.0, 3)
    moved = transform_actions(actions, pose)
    assert moved.shape == actions.shape
    np.testing.assert_allclose(transform_actions(moved, np.linalg.inv(pose)), actions, atol=1e-12)
    np.testing.assert_array_equal(moved[:, 9:], actions[:, 9:])  # fingertips stay in the wrist frame
    # the world fingertips are the camera-frame ones carried by the pose
    for a, m in zip(actions_from_array(actions), actions_from_array(moved)):
        np.testing.assert_allclose(m.fingertips_world(), a.fingertips_world() @ pose[:3, :3].T + pose[:3, 3])
    np.testing.assert_allclose(transform_actions(actions[0], pose), moved[0])  # one (24,) action


def test_transform_actions_with_a_known_rotation():
    # a camera 0.6 m above the world origin looking straight down (OpenCV: +z forward = world -z), its +x the
    # world's +x: roll pi about x
    pose = pose_from_xyz_rpy([0.0, 0.0, 0.6, np.pi, 0.0, 0.0])
    np.testing.assert_allclose(pose[:3, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    action = HandAction([0.1, 0.2, 0.5], np.eye(3), np.full((5, 3), 0.03)).to_array()
    out = HandAction.from_array(transform_actions(action[None], pose)[0])
    np.testing.assert_allclose(out.wrist_pos, [0.1, -0.2, 0.1], atol=1e-12)  # 0.5 m in front: 0.1 m above
    np.testing.assert_allclose(out.wrist_rot, np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(out.fingertips, np.full((5, 3), 0.03))
    # yaw pi/2: world x ← frame y; URDF order R = Rz(yaw) Ry(pitch) Rx(roll)
    yaw = pose_from_xyz_rpy([1.0, 2.0, 3.0, 0.0, 0.0, np.pi / 2])
    np.testing.assert_allclose(yaw[:3, :3] @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    rp = pose_from_xyz_rpy([0, 0, 0, 0.3, 0.2, 0.1])[:3, :3]
    rx = pose_from_xyz_rpy([0, 0, 0, 0.3, 0, 0])[:3, :3]
    ry = pose_from_xyz_rpy([0, 0, 0, 0, 0.2, 0])[:3, :3]
    rz = pose_from_xyz_rpy([0, 0, 0, 0, 0, 0.1])[:3, :3]
    np.testing.assert_allclose(rp, rz @ ry @ rx, atol=1e-12)


def test_transform_actions_rejects_bad_input():
    with pytest.raises(ValueError, match="6 numbers"):
        pose_from_xyz_rpy([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        pose_from_xyz_rpy([0.0, 0.0, 0.0, 0.0, np.nan, 0.0])
    action = HandAction(np.zeros(3), np.eye(3), np.zeros((5, 3))).to_array()[None]
    with pytest.raises(ValueError, match="proper rotation"):
        transform_actions(action, np.diag([1.0, 1.0, -1.0, 1.0]))  # a reflection
    with pytest.raises(ValueError, match="shape"):
        transform_actions(np.zeros((2, 23)), np.eye(4))
