"""Human keypoints → unified action: a stable, right-handed wrist frame, invariance to rigid motion."""

import numpy as np
import pytest

from helpers.geometry import random_rotation, right_hand_keypoints
from humanprompt_ros.hand.keypoints import TIPS, keypoints_in_wrist_frame, keypoints_to_action, wrist_frame


def test_canonical_hand_gives_the_documented_axes():
    pose = wrist_frame(right_hand_keypoints())
    rot = pose[:3, :3]
    assert rot[:, 0] @ [1, 0, 0] > 0.99  # x toward the fingers
    assert rot[:, 1] @ [0, 1, 0] > 0.99  # y toward the thumb side
    assert rot[:, 2] @ [0, 0, 1] > 0.99  # z out of the back of the (palm-down) right hand


def test_wrist_frame_is_orthonormal_and_right_handed_under_noise():
    rng = np.random.default_rng(0)
    base = right_hand_keypoints()
    for _ in range(200):
        kp = base @ random_rotation(rng).T + rng.normal(size=3) + rng.normal(scale=0.003, size=base.shape)
        rot = wrist_frame(kp)[:3, :3]
        np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-10)
        assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-10)


def test_rigid_motion_moves_the_wrist_and_keeps_fingertips_in_the_wrist_frame():
    rng = np.random.default_rng(1)
    kp = right_hand_keypoints() + rng.normal(scale=0.002, size=(21, 3))
    a = keypoints_to_action(kp)
    for _ in range(20):
        rot, t = random_rotation(rng), rng.normal(size=3)
        b = keypoints_to_action(kp @ rot.T + t)
        np.testing.assert_allclose(b.fingertips, a.fingertips, atol=1e-9)
        np.testing.assert_allclose(b.wrist_pos, rot @ a.wrist_pos + t, atol=1e-9)
        np.testing.assert_allclose(b.wrist_rot, rot @ a.wrist_rot, atol=1e-9)
    np.testing.assert_allclose(a.fingertips_world(), kp[list(TIPS)], atol=1e-12)


def _naive_frame(kp: np.ndarray) -> np.ndarray:
    """The textbook three-point frame (wrist, index MCP, little MCP), for comparison."""
    x = kp[9] - kp[0]
    z = np.cross(x, kp[5] - kp[17])
    x, z = x / np.linalg.norm(x), z / np.linalg.norm(z)
    return np.stack([x, np.cross(z, x), z], axis=1)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


def test_noise_moves_the_fitted_frame_less_than_a_three_point_frame():
    """3 mm keypoint noise: the palm fit tilts the frame by a few degrees, less than 3-point frames."""
    rng = np.random.default_rng(2)
    base = right_hand_keypoints()
    ref, ref_naive = wrist_frame(base)[:3, :3], _naive_frame(base)
    fitted, naive = [], []
    for _ in range(300):
        kp = base + rng.normal(scale=0.003, size=base.shape)
        fitted.append(_angle_deg(ref, wrist_frame(kp)[:3, :3]))
        naive.append(_angle_deg(ref_naive, _naive_frame(kp)))
    assert np.median(fitted) < 5.0
    assert np.median(fitted) < np.median(naive)


def test_all_keypoints_in_wrist_frame():
    kp = right_hand_keypoints()
    local = keypoints_in_wrist_frame(kp)
    np.testing.assert_allclose(local[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(local[list(TIPS)], keypoints_to_action(kp).fingertips, atol=1e-12)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((20, 3)), r"shape \(21, 3\)"),
        (np.zeros((21, 2)), r"shape \(21, 3\)"),
        (np.zeros((21, 3)), "degenerate"),
    ],
)
def test_bad_keypoints_are_value_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        keypoints_to_action(bad)


def test_nan_keypoints_name_the_landmark():
    kp = right_hand_keypoints()
    kp[8, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf at landmarks \[8\]"):
        keypoints_to_action(kp)
