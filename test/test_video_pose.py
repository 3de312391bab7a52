"""Hand pose from a real video (humanprompt_ros/hand/video_pose.py, ``humanprompt-hand extract``).

Gap filling, smoothing, PnP, intrinsics and the CLI's refusals run everywhere; the tests that run MediaPipe on the
photographs in test/data/hands/ (README.md there: their source and licence) skip without the ``human`` extra.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from humanprompt_ros.config.loader import ConfigError
from humanprompt_ros.hand.camera_geometry import CameraIntrinsics, hand_in_camera, load_intrinsics, project, solve_pnp
from humanprompt_ros.hand.tracks import OneEuroFilter, SmoothingConfig, fill_gaps, smooth
from humanprompt_ros.hand.video_pose import (
    HandDetection,
    MediaPipeMissing,
    load_hand_video_config,
    require_mediapipe,
    select_hand,
    true_handedness,
)
from humanprompt_ros.paths import config_path

PHOTOS = Path(__file__).resolve().parent / "data" / "hands"
# mediapipe 0.10.14 calls a protobuf API that protobuf 4.25 deprecates; harmless
pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


# -- gaps and smoothing -------------------------------------------------------------------------------------
def test_short_gaps_are_interpolated_longer_ones_and_the_ends_held_and_marked():
    v = np.arange(12, dtype=float)[:, None] * [1.0, 10.0]
    v[[0, 4, 7, 8, 9, 11]] = np.nan  # start, a 1-frame gap, a 3-frame gap, the end
    filled, valid = fill_gaps(v, max_gap=2)
    assert valid.tolist() == [False, True, True, True, True, True, True, False, False, False, True, False]
    np.testing.assert_allclose(filled[4], [4.0, 40.0])  # linear between frames 3 and 5
    np.testing.assert_allclose(filled[0], filled[1])  # held from the first value
    np.testing.assert_allclose(filled[7:10], np.repeat(filled[6:7], 3, axis=0))  # held, not interpolated
    np.testing.assert_allclose(filled[11], filled[10])
    two = np.array([0.0, np.nan, np.nan, 3.0])
    np.testing.assert_allclose(fill_gaps(two, max_gap=2)[0], [0, 1, 2, 3])
    assert fill_gaps(two, max_gap=1)[1].tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="no frame has a value"):
        fill_gaps(np.full((3, 21, 3), np.nan), max_gap=5)


def test_one_euro_smooths_a_still_hand_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    fps, n = 30.0, 90
    still = 0.5 + 0.003 * rng.standard_normal((n, 3))
    valid = np.ones(n, bool)
    cfg = SmoothingConfig()
    out = smooth(still, valid, fps, cfg)
    assert out[30:].std(axis=0).max() < 0.4 * still[30:].std(axis=0).min()
    ramp = np.linspace(0, 1.0, n)[:, None] * [1.0, 0.0, 0.0]  # 1 m in 3 s: the cutoff opens, the lag stays small
    lag = np.abs(smooth(ramp, valid, fps, cfg) - ramp)[30:, 0].max()
    slow = np.abs(smooth(ramp, valid, fps, SmoothingConfig(beta=0.0)) - ramp)[30:, 0].max()
    assert lag < 0.02 and lag < slow / 3
    f = OneEuroFilter()
    np.testing.assert_allclose(f(np.ones(3), 0.1), 1.0)  # the first value passes through


def test_smoothing_restarts_after_invalid_frames_and_other_methods():
    v = np.array([0.0, 0.0, 0.0, 9.0, 1.0, 1.0])[:, None]
    valid = np.array([True, True, True, False, True, True])
    out = smooth(v, valid, 10.0, SmoothingConfig())
    assert out[3, 0] == 9.0 and out[4, 0] == 1.0  # invalid frames untouched; a new run starts fresh
    np.testing.assert_allclose(smooth(v, valid, 10.0, SmoothingConfig(method="none")), v)
    ema = smooth(np.array([[0.0], [1.0], [1.0]]), np.ones(3, bool), 10.0, SmoothingConfig(method="ema", alpha=0.5))
    np.testing.assert_allclose(ema[:, 0], [0.0, 0.5, 0.75])


# -- PnP and intrinsics -------------------------------------------------------------------------------------
def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    return cv2.Rodrigues(np.asarray(axis, float) / np.linalg.norm(axis) * angle)[0]


def test_pnp_recovers_a_known_hand_pose():
    pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    model = rng.uniform(-0.06, 0.06, (21, 3)) * [1.0, 1.0, 0.3]  # hand-sized, flattish, centred
    pose = np.eye(4)
    pose[:3, :3] = _rotation([0.3, -1.0, 0.4], 0.7)
    pose[:3, 3] = [0.08, -0.05, 0.6]
    intr = CameraIntrinsics(640, 480, 600.0, 610.0, 322.0, 236.0, [0.05, -0.1, 0.001, 0.0, 0.0])
    camera = model @ pose[:3, :3].T + pose[:3, 3]
    pixels = project(camera, intr)
    found, err = solve_pnp(pixels, model, intr)
    np.testing.assert_allclose(found, pose, atol=1e-6)
    assert err < 1e-6
    noisy = pixels + rng.normal(0, 0.5, pixels.shape)
    kp, err = hand_in_camera(noisy, model, intr)
    assert np.abs(kp - camera).max() < 0.01 and 0.2 < err < 1.0  # half-pixel noise: millimetres at 0.6 m


def test_intrinsics_from_yaml_default_and_rescaled(tmp_path):
    shipped = load_intrinsics(config_path("camera_intrinsics.yaml"))
    default = CameraIntrinsics.from_fov(640, 480, 60.0)
    np.testing.assert_allclose(shipped.matrix, default.matrix, atol=1e-3)  # the example is the default
    assert default.fx == pytest.approx(320 / np.tan(np.radians(30)))
    half = shipped.for_size(320, 240)
    assert (half.fx, half.cx, half.cy) == pytest.approx((shipped.fx / 2, 160.0, 120.0))
    assert shipped.for_size(640, 480) is shipped
    with pytest.raises(ValueError, match="another aspect ratio"):
        shipped.for_size(640, 360)
    ros = tmp_path / "ost.yaml"  # what ROS camera_calibration writes
    ros.write_text(
        "image_width: 1280\nimage_height: 720\ncamera_name: usb_cam\n"
        "camera_matrix: {rows: 3, cols: 3, data: [900.5, 0, 641.2, 0, 901.5, 359.8, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\ndistortion_coefficients: {rows: 1, cols: 5, data: [0.1, -0.2, 0, 0, 0.05]}\n"
        "rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}\n"
    )
    got = load_intrinsics(ros)
    assert (got.width, got.height, got.fx, got.fy, got.cx, got.cy) == (1280, 720, 900.5, 901.5, 641.2, 359.8)
    assert got.distortion == [0.1, -0.2, 0.0, 0.0, 0.05]


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("width: 640\nheight: 480\nfy: 500\ncx: 320\ncy: 240\n", "fx", "required key is missing"),
        ("width: 640\nheight: 480\nfx: -5\nfy: 500\ncx: 320\ncy: 240\n", "fx", "must be > 0"),
        ("width: 640\nheight: 480\nfx: 500\nfy: 500\ncx: 900\ncy: 240\n", "cx", "outside the image"),
        (
            "width: 640\nheight: 480\nfx: 500\nfy: 500\ncx: 320\ncy: 240\ndistortion: [0, 0, 0]\n",
            "distortion",
            "4, 5, 8",
        ),
        ("width: 640\nheight: 480\nfx: fast\nfy: 500\ncx: 320\ncy: 240\n", "fx", "expected a number"),
        ("width: 640\nheight: 480\nf: 500\nfy: 500\ncx: 320\ncy: 240\n", "f", "unknown key"),
        ("image_width: 640\nimage_height: 480\ncamera_matrix: {data: [1, 2, 3]}\n", "camera_matrix.data", "9 numbers"),
        ("camera_matrix: {data: [500, 0, 320, 0, 500, 240, 0, 0, 1]}\n", "image_width", "required key is missing"),
    ],
    ids=[
        "no fx",
        "negative fx",
        "cx outside",
        "3 coefficients",
        "fx a word",
        "unknown key",
        "ros 3x1 K",
        "ros no size",
    ],
)
def test_bad_intrinsics_name_the_file_and_key(tmp_path, text, key, problem):
    f = tmp_path / "intrinsics.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=problem) as info:
        load_intrinsics(f)
    assert info.value.key == key and str(f) in str(info.value)
    with pytest.raises(ConfigError, match="file not found"):
        load_intrinsics(tmp_path / "missing.yaml")


def test_extraction_settings_and_their_errors():
    cfg = load_hand_video_config(overrides=["max_gap=2", "smoothing.method=ema"])
    assert cfg.max_gap == 2 and cfg.smoothing.method == "ema"
    with pytest.raises(ConfigError, match="smoothing.method: must be one of"):
        load_hand_video_config(overrides=["smoothing.method=kalman"])
    with pytest.raises(ConfigError, match="max_gap: must be >= 0"):
        load_hand_video_config(overrides=["max_gap=-1"])


# -- handedness and the missing extra -----------------------------------------------------------------------
def test_mediapipe_handedness_is_mirrored_and_the_nearest_hand_is_kept():
    assert true_handedness("Left") == "right" and true_handedness("Right") == "left"

    def hand(side: str, score: float, wrist_x: float) -> HandDetection:
        image = np.zeros((21, 2))
        image[0] = [wrist_x, 100.0]
        return HandDetection(side, score, image, np.zeros((21, 3)))

    hands = [hand("right", 0.6, 100.0), hand("right", 0.9, 400.0), hand("left", 0.99, 250.0)]
    assert select_hand(hands, "right").score == 0.9  # the most confident at the start
    assert select_hand(hands, "right", previous_wrist=np.array([120.0, 90.0])).score == 0.6  # then the nearest
    assert select_hand(hands[:2], "left") is None


def test_without_mediapipe_the_error_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe → ImportError
    with pytest.raises(MediaPipeMissing, match=r"pip install -e '\.\[human\]'"):
        require_mediapipe()
    from humanprompt_ros.cli.hand import main
    from humanprompt_ros.video import write_video

    clip = write_video(tmp_path / "clip.mp4", [np.zeros((32, 32, 3), np.uint8)] * 3, 10)
    assert main(["extract", str(clip), "--out", str(tmp_path / "ep"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs MediaPipe" in err and ".[human]" in err and "Traceback" not in err


def test_extract_refuses_a_missing_video_and_bad_intrinsics_before_any_work(tmp_path, capsys):
    from humanprompt_ros.cli.hand import main

    assert main(["extract", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "ep"), "--quiet"]) == 2
    assert "video not found" in capsys.readouterr().err
    bad = tmp_path / "k.yaml"
    bad.write_text("width: 640\n")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    assert main(["extract", str(clip), "--out", str(tmp_path / "ep"), "--intrinsics", str(bad), "--quiet"]) == 2
    assert "height: required key is missing" in capsys.readouterr().err


# -- with MediaPipe -----------------------------------------------------------------------------------------
def _photo(name: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(PHOTOS / name).convert("RGB"))


@pytest.fixture(scope="module")
def photo_hands():
    """{photo: its detections} by MediaPipe on each photograph (static images)."""
    pytest.importorskip("mediapipe", reason="hand landmarks need the human extra: pip install -e '.[human]'")
    from humanprompt_ros.hand.video_pose import MediaPipeHands

    with MediaPipeHands(static=True) as detector:
        return {name: detector(_photo(name)) for name in ("test1.jpg", "test5.jpg")}


def test_mediapipe_finds_hands_and_their_side_in_the_photos(photo_hands):
    # test1: two right hands; test5: a woman's right hand on the image's left, her left hand on its right
    assert sorted(d.handedness for d in photo_hands["test1.jpg"]) == ["right", "right"]
    sides = {d.handedness: d for d in photo_hands["test5.jpg"]}
    assert set(sides) == {"right", "left"}
    assert sides["right"].image_points[0, 0] < sides["left"].image_points[0, 0]
    for name, hands in photo_hands.items():
        h, w = _photo(name).shape[:2]
        for d in hands:
            assert d.image_points.shape == (21, 2) and d.world_points.shape == (21, 3)
            assert (d.image_points >= 0).all() and (d.image_points <= [w, h]).all()
            palm = np.linalg.norm(d.world_points[9] - d.world_points[0])  # wrist to middle knuckle, metres
            assert 0.05 < palm < 0.15


def test_photo_landmarks_become_actions_the_allegro_hand_can_take(photo_hands):
    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.hand.keypoints import keypoints_to_action

    hand = load_hand(config_path("hands", "allegro_right.yaml"))
    lo, hi = hand.joint_limits
    for name, hands in photo_hands.items():
        h, w = _photo(name).shape[:2]
        intr = CameraIntrinsics.from_fov(w, h)
        for d in (d for d in hands if d.handedness == "right"):
            kp, err = hand_in_camera(d.image_points, d.world_points, intr)
            assert err < 10.0, f"{name}: PnP reprojection error {err:.1f} px"
            assert 0.2 < kp[0, 2] < 2.0  # the wrist's depth, metres
            action = keypoints_to_action(kp)
            q = hand.retarget(action)
            assert q.shape == (hand.num_joints,) and np.isfinite(q).all()
            assert (q >= lo - 1e-9).all() and (q <= hi + 1e-9).all()


def test_a_video_extracts_into_an_episode_with_its_gaps_filled_and_marked(tmp_path):
    pytest.importorskip("mediapipe", reason="hand landmarks need the human extra: pip install -e '.[human]'")
    from humanprompt_ros.data import load_episode
    from humanprompt_ros.hand.video_pose import extract_episode
    from humanprompt_ros.video import write_video

    photo = _photo("test5.jpg")
    blank = np.full_like(photo, 128)
    clip = write_video(tmp_path / "clip.mp4", [photo] * 3 + [blank] + [photo] * 3 + [blank] * 3 + [photo] * 2, 15)
    cfg = load_hand_video_config(overrides=["max_gap=2", "sheet_frames=6"])
    result = extract_episode(clip, tmp_path / "ep", task="wave", config=cfg)
    assert (result.frames, result.detected, result.interpolated, result.invalid) == (12, 8, 1, 3)
    ep = load_episode(result.path)
    valid, detected = np.array(ep.meta["valid"]), np.array(ep.meta["detected"])
    assert detected.tolist() == [True] * 3 + [False] + [True] * 3 + [False] * 3 + [True] * 2
    assert valid.tolist() == [True] * 7 + [False] * 3 + [True] * 2  # the 1-frame gap filled, the 3-frame one not
    assert ep.keypoints.shape == (12, 21, 3) and ep.proprio.shape == (12, 24) and ep.actions.shape == (11, 24)
    assert np.isfinite(ep.keypoints).all()
    np.testing.assert_allclose(ep.actions, ep.proprio[1:], atol=1e-6)
    assert np.abs(ep.keypoints[3] - ep.keypoints[2]).max() < 0.01  # a still hand: the gap is filled in place
    assert 0.2 < ep.keypoints[0, 0, 2] < 2.0
    assert ep.embodiment == "human" and ep.task == "wave" and ep.fps == 15.0
    assert ep.meta["handedness"] == "right" and ep.meta["source"] == str(clip.resolve())
    assert ep.meta["camera"]["intrinsics"]["width"] == photo.shape[1]
    assert ep.frames().shape == (12, *photo.shape)
    assert (result.path / "sheet.png").is_file() and result.sheet == result.path / "sheet.png"
    assert json.loads((result.path / "meta.json").read_text())["hand_pose"]["frames_interpolated"] == 1


def test_cli_extracts_a_mirrored_selfie_video(tmp_path, capsys):
    pytest.importorskip("mediapipe", reason="hand landmarks need the human extra: pip install -e '.[human]'")
    from humanprompt_ros.cli.hand import main
    from humanprompt_ros.data import load_episode
    from humanprompt_ros.video import write_video

    mirrored = np.ascontiguousarray(_photo("test5.jpg")[:, ::-1])  # a selfie view: her right hand on the right
    clip = write_video(tmp_path / "selfie.mp4", [mirrored] * 4, 10)
    out = tmp_path / "ep"
    assert main(["extract", str(clip), "--out", str(out), "--mirrored", "--no-sheet", "--quiet"]) == 0
    assert "4 frames, the right hand detected in 4" in capsys.readouterr().out
    ep = load_episode(out)
    assert ep.meta["source_video"]["mirrored"] is True and not (out / "sheet.png").exists()
    # flipped back: the right hand's wrist is on the image's left again, as in the photo
    assert ep.keypoints[0, 0, 0] < 0
    assert main(["extract", str(clip), "--out", str(out), "--quiet"]) == 2  # an episode is already there
    assert "already there" in capsys.readouterr().err
