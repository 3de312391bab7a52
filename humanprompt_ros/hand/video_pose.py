"""Hand pose from a real video: MediaPipe hand landmarks → metric keypoints in the camera frame → a human episode.

The steps of :func:`extract_episode` (``humanprompt-hand extract``; ``docs/hands.md``):

1. **Landmarks.** MediaPipe Hands (``mediapipe.solutions.hands``, the ``human`` extra, whose models ship in the
   wheel) gives each hand 21 image landmarks, 21 *world* landmarks (metres, origin near the hand's centre, at
   MediaPipe's average adult hand size) and a handedness label.
2. **Handedness.** MediaPipe labels hands as if the image were a mirrored selfie view, so in an ordinary video a
   right hand is labelled "Left". The frames MediaPipe sees here are always the un-mirrored view (with
   ``mirrored: true`` a selfie video is flipped back first, and the episode keeps the flipped frames), so the
   label is always swapped (:func:`true_handedness`). Of the hands of the wanted side, the one nearest the
   previous frame's wrist is kept (the most confident one until there is a previous wrist).
3. **Metric pose (PnP).** The world landmarks are a 3-D model of the hand and the image landmarks its
   projection: ``cv2.solvePnP`` (SQPnP, refined by Levenberg–Marquardt) with the camera intrinsics gives the
   pose that puts the model into the camera frame (OpenCV's: +x right, +y down, +z forward; metres). The depth
   follows from MediaPipe's hand size: a hand much smaller or larger than an adult's reads too far or too near.
4. **Gaps.** A frame without the hand (or where PnP failed) is interpolated linearly between the frames around
   it when its gap is at most ``max_gap`` frames. Longer gaps, and the frames before the first or after the last
   detection, hold the nearest pose and are marked invalid (``meta.valid`` false).
5. **Smoothing.** A One-Euro filter (or an EMA) over each run of valid frames, on the keypoints in metres.
6. **Episode.** ``keypoints.npy`` (T+1, 21, 3), ``proprio.npy`` t = the unified action of keypoints t
   (:func:`humanprompt_ros.hand.keypoints.keypoints_to_action`), ``actions.npy`` t = proprio t+1, the video,
   ``meta.json`` and a contact sheet (``sheet.png``) of frames with the landmarks drawn, for a person to check.

Intrinsics, PnP and projection live in :mod:`.camera_geometry` (a YAML with ``config/camera_intrinsics.yaml``'s
keys or a ROS ``camera_info`` YAML; without one, a pinhole camera with a ``default_hfov_deg`` (60°) horizontal
field of view at the video's size), gap filling and smoothing in :mod:`.tracks`. Settings:
``config/hand_video.yaml`` (:class:`HandVideoConfig`).

:func:`track_hand` does the steps in memory (what the replay policy replays); :func:`extract_episode` writes
its result as a human episode, with a contact sheet. Only :class:`MediaPipeHands` (and so those two) needs
mediapipe, imported on first use; everything else here and in those modules works without it.

Kept as one module: tracking a video, writing the episode and drawing its contact sheet share the detections,
the intrinsics and the frame layout, and a reader checking an extraction follows them together.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from humanprompt_ros.config.loader import load_config, to_dict
from humanprompt_ros.data import META_FILE, write_episode
from humanprompt_ros.hand.camera_geometry import (
    CAMERA_FRAME,
    CameraIntrinsics,
    hand_in_camera,
    load_intrinsics,
    project,
)
from humanprompt_ros.hand.keypoints import BONES, NUM_KEYPOINTS, PALM_POINTS, WRIST, keypoints_to_action
from humanprompt_ros.hand.tracks import SmoothingConfig, fill_gaps, smooth
from humanprompt_ros.paths import config_path
from humanprompt_ros.progress import progress as progress_bar
from humanprompt_ros.video import iter_video, probe

MEDIAPIPE_VERSION = "0.10.14"
INSTALL_HINT = f"pip install -e '.[human]' (mediapipe=={MEDIAPIPE_VERSION})"
SHEET_FILE = "sheet.png"
DEFAULT_FPS = 30.0  # a video that declares no frame rate
HANDEDNESS = ("right", "left")


@dataclass
class HandVideoConfig:
    """``config/hand_video.yaml``: how :func:`extract_episode` turns a video into a human episode."""

    mirrored: bool = False  # the video is a mirrored (selfie) view: flip it back first
    model_complexity: int = 1  # MediaPipe's landmark model: 0 (lite, faster) or 1 (full)
    max_num_hands: int = 2  # hands MediaPipe looks for per frame (the wanted side is picked among them)
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    max_gap: int = 5  # frames: longer gaps without the hand are not interpolated but marked invalid
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    default_hfov_deg: float = 60.0  # without intrinsics: a pinhole with this horizontal field of view
    sheet_frames: int = 12  # frames on the contact sheet

    def validate(self) -> None:
        if self.model_complexity not in (0, 1):
            raise ValueError(f"model_complexity: must be 0 or 1, got {self.model_complexity}")
        if self.max_num_hands < 1:
            raise ValueError(f"max_num_hands: must be >= 1, got {self.max_num_hands}")
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.max_gap < 0:
            raise ValueError(f"max_gap: must be >= 0 frames, got {self.max_gap}")
        if not 0 < self.default_hfov_deg < 180:
            raise ValueError(f"default_hfov_deg: must be in (0, 180), got {self.default_hfov_deg}")
        if self.sheet_frames < 1:
            raise ValueError(f"sheet_frames: must be >= 1, got {self.sheet_frames}")


def load_hand_video_config(path: str | Path | None = None, overrides: list[str] | None = None) -> HandVideoConfig:
    """``path`` (default ``config/hand_video.yaml``) with ``dotted.key=value`` overrides."""
    return load_config(HandVideoConfig, path or config_path("hand_video.yaml"), overrides)


# -- MediaPipe -------------------------------------------------------------------------------------------
class MediaPipeMissing(ImportError):
    """mediapipe (the ``human`` extra) is not installed; the message says how to install it."""


def require_mediapipe() -> Any:
    """The ``mediapipe`` module, or :class:`MediaPipeMissing` telling how to install it."""
    try:
        import mediapipe
    except ImportError as exc:
        raise MediaPipeMissing(
            f"hand pose from a video needs MediaPipe, which is not installed here ({exc}): {INSTALL_HINT}"
        ) from None
    return mediapipe


def true_handedness(label: str) -> str:
    """MediaPipe's handedness label, which assumes a mirrored (selfie) image → the hand's side ("right" or
    "left") in the un-mirrored image it was given."""
    try:
        return {"Left": "right", "Right": "left"}[label]
    except KeyError:
        raise ValueError(f"unknown MediaPipe handedness label {label!r}") from None


@dataclass
class HandDetection:
    """One hand MediaPipe found in a frame."""

    handedness: str  # "right" or "left": the hand's true side (:func:`true_handedness`)
    score: float  # MediaPipe's handedness confidence
    image_points: np.ndarray  # (21, 2) pixels
    world_points: np.ndarray  # (21, 3) metres, MediaPipe's hand-centred frame


class MediaPipeHands:
    """MediaPipe Hands on RGB uint8 frames: those of one video in order (tracking between frames), or unrelated
    images with ``static=True``. A context manager; ``detector(frame)`` → the hands found."""

    def __init__(self, cfg: HandVideoConfig | None = None, static: bool = False):
        mp = require_mediapipe()
        cfg = cfg or HandVideoConfig()
        self._hands = mp.solutions.hands.Hands(
            static_image_mode=static,
            max_num_hands=cfg.max_num_hands,
            model_complexity=cfg.model_complexity,
            min_detection_confidence=cfg.min_detection_confidence,
            min_tracking_confidence=cfg.min_tracking_confidence,
        )

    def __call__(self, frame: np.ndarray) -> list[HandDetection]:
        frame = np.ascontiguousarray(np.asarray(frame)[..., :3], dtype=np.uint8)
        h, w = frame.shape[:2]
        res = self._hands.process(frame)
        out = []
        for lm, wlm, cls in zip(
            res.multi_hand_landmarks or [], res.multi_hand_world_landmarks or [], res.multi_handedness or []
        ):
            best = cls.classification[0]
            image = np.array([[p.x * w, p.y * h] for p in lm.landmark])
            world = np.array([[p.x, p.y, p.z] for p in wlm.landmark])
            out.append(HandDetection(true_handedness(best.label), float(best.score), image, world))
        return out

    def close(self) -> None:
        self._hands.close()

    def __enter__(self) -> "MediaPipeHands":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def select_hand(
    detections: list[HandDetection], handedness: str, previous_wrist: np.ndarray | None = None
) -> HandDetection | None:
    """The detection of the ``handedness`` side: nearest ``previous_wrist`` (pixels) when given, else the most
    confident; None when there is none."""
    hands = [d for d in detections if d.handedness == handedness]
    if not hands:
        return None
    if previous_wrist is None:
        return max(hands, key=lambda d: d.score)
    return min(hands, key=lambda d: float(np.linalg.norm(d.image_points[WRIST] - previous_wrist)))


# -- the episode -----------------------------------------------------------------------------------------
@dataclass
class Extraction:
    """What :func:`extract_episode` wrote and how long it took."""

    path: Path
    frames: int
    detected: int
    interpolated: int
    invalid: int
    seconds: float
    sheet: Path | None

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def _frames(video: Path, mirrored: bool) -> Iterator[np.ndarray]:
    for frame in iter_video(video):
        yield np.ascontiguousarray(frame[:, ::-1]) if mirrored else frame


@dataclass
class HandTrack:
    """The hand pose of a whole video, in the camera frame: what :func:`extract_episode` writes as an episode."""

    frames: list[np.ndarray]  # the video's frames (H, W, 3) uint8, cropped to even sizes
    keypoints: np.ndarray  # (T, 21, 3) camera-frame keypoints, gaps filled and smoothed
    proprio: np.ndarray  # (T, 24) the unified hand state of each frame
    detected: np.ndarray  # (T,) bool: MediaPipe found the hand
    valid: np.ndarray  # (T,) bool: detected or interpolated over a short gap
    fps: float  # the video's rate (DEFAULT_FPS when it declares none)
    declared_fps: float | None
    intrinsics: CameraIntrinsics
    intrinsics_source: str
    pnp_errors: list[float]  # PnP RMS reprojection error per detected frame (pixels)
    seconds: float

    @property
    def actions(self) -> np.ndarray:
        """(T-1, 24) unified actions: the hand state of the next frame, as a human episode's."""
        return self.proprio[1:]


def track_hand(
    video: str | Path,
    *,
    handedness: str = "right",
    intrinsics: CameraIntrinsics | str | Path | None = None,
    config: HandVideoConfig | None = None,
    progress: bool = False,
) -> HandTrack:
    """The hand pose of every frame of a video (the steps: the module docstring), in memory.

    ``intrinsics``: :class:`CameraIntrinsics`, a YAML path (:func:`load_intrinsics`) or None for the default.
    Raises :class:`MediaPipeMissing` without mediapipe, ``ValueError`` for a bad video or intrinsics, or a video
    in which the hand is never found.
    """
    cfg = config or load_hand_video_config()
    if handedness not in HANDEDNESS:
        raise ValueError(f"handedness must be one of {HANDEDNESS}, got {handedness!r}")
    video = Path(video)
    if not video.is_file():
        raise ValueError(f"{video}: video not found")
    source = "given"
    if intrinsics is not None and not isinstance(intrinsics, CameraIntrinsics):
        source, intrinsics = str(Path(intrinsics).resolve()), load_intrinsics(intrinsics)
    elif intrinsics is None:
        source = f"default: {cfg.default_hfov_deg:g} degree horizontal field of view, principal point at the centre"
    info = probe(video)
    declared_fps, count = info.fps, info.frames
    fps = declared_fps or DEFAULT_FPS
    t0 = time.perf_counter()
    frames: list[np.ndarray] = []
    raw = []  # (21, 3) camera-frame keypoints or None, per frame
    errors: list[float] = []
    intr: CameraIntrinsics | None = None
    previous = None
    with (
        MediaPipeHands(cfg) as detector,
        progress_bar(total=count, desc="hand pose", unit="frame", enabled=progress) as bar,
    ):
        for frame in _frames(video, cfg.mirrored):
            h, w = frame.shape[:2]
            if intr is None:
                intr = (
                    intrinsics.for_size(w, h)
                    if intrinsics is not None
                    else CameraIntrinsics.from_fov(w, h, cfg.default_hfov_deg)
                )
            elif (w, h) != (intr.width, intr.height):
                raise ValueError(f"{video}: frame {len(frames)} is {w}x{h}, the first was {intr.width}x{intr.height}")
            det = select_hand(detector(frame), handedness, previous)
            kp = None
            if det is not None:
                previous = det.image_points[WRIST]
                try:
                    kp, err = hand_in_camera(det.image_points, det.world_points, intr)
                    errors.append(err)
                except ValueError:
                    kp = None
            raw.append(kp)
            frames.append(frame[: h - h % 2, : w - w % 2])  # H.264 wants even sizes; the principal point stays
            bar.update()
    if len(frames) < 2:
        raise ValueError(f"{video}: {len(frames)} frame(s); an episode needs at least 2")
    detected = np.array([k is not None for k in raw])
    if not detected.any():
        raise ValueError(
            f"{video}: no {handedness} hand found in {len(frames)} frames (is it the other hand? --hand; "
            f"a selfie view? mirrored: true)"
        )
    stacked = np.stack([k if k is not None else np.full((NUM_KEYPOINTS, 3), np.nan) for k in raw])
    filled, valid = fill_gaps(stacked, cfg.max_gap)
    keypoints = smooth(filled, valid, fps, cfg.smoothing)
    proprio = np.stack([keypoints_to_action(k).to_array() for k in keypoints])
    return HandTrack(
        frames, keypoints, proprio, detected, valid, fps, declared_fps, intr, source, errors, time.perf_counter() - t0
    )


def extract_episode(
    video: str | Path,
    out: str | Path,
    *,
    task: str = "human_video",
    handedness: str = "right",
    intrinsics: CameraIntrinsics | str | Path | None = None,
    config: HandVideoConfig | None = None,
    sheet: bool = True,
    progress: bool = False,
    overwrite: bool = False,
) -> Extraction:
    """A video of a human hand → a human episode in directory ``out`` (:func:`track_hand`, then written).

    Raises what :func:`track_hand` raises, and ``ValueError`` when ``out`` already holds an episode. The frames
    are held in memory (the episode's video is re-encoded from them).
    """
    cfg = config or load_hand_video_config()
    video, out = Path(video), Path(out)
    if (out / META_FILE).exists() and not overwrite:
        raise ValueError(f"{out}: an episode is already there (choose another output directory)")
    track = track_hand(video, handedness=handedness, intrinsics=intrinsics, config=cfg, progress=progress)
    frames, detected, valid, intr, errors = (
        track.frames,
        track.detected,
        track.valid,
        track.intrinsics,
        track.pnp_errors,
    )
    h, w = frames[0].shape[:2]
    meta = {
        "task": task,
        "skill": None,
        "embodiment": "human",
        "hand": "human",
        "handedness": handedness,
        "mask": [True] * 5,
        "success": True,  # a recorded demonstration is taken to show the task done
        "seed": 0,
        "fps": track.fps,
        "source": str(video.resolve()),  # as data.load_prompt names a bare video's
        "source_video": {"fps": track.declared_fps, "size": [int(h), int(w)], "mirrored": cfg.mirrored},  # H, W
        "camera": {"intrinsics": to_dict(intr), "intrinsics_source": track.intrinsics_source, "frame": CAMERA_FRAME},
        "valid": valid.tolist(),
        "detected": detected.tolist(),
        "hand_pose": {
            "method": f"MediaPipe Hands {MEDIAPIPE_VERSION} landmarks, cv2.solvePnP (SQPnP + LM) on the world landmarks",
            "config": to_dict(cfg),
            "frames_detected": int(detected.sum()),
            "frames_interpolated": int((valid & ~detected).sum()),
            "frames_invalid": int((~valid).sum()),
            "pnp_rms_px": {"median": float(np.median(errors)), "max": float(np.max(errors))},
            "seconds": round(track.seconds, 3),
        },
    }
    path = write_episode(
        out, frames, track.actions, meta, proprio=track.proprio, keypoints=track.keypoints, fps=track.fps
    )
    sheet_path = None
    if sheet:
        status = ["detected" if d else "interpolated" if v else "no hand" for d, v in zip(detected, valid)]
        title = f"{video.name}: {handedness} hand, {int(detected.sum())}/{len(frames)} frames detected"
        sheet_path = contact_sheet(
            frames, project(track.keypoints, intr), status, path / SHEET_FILE, cfg.sheet_frames, title
        )
    return Extraction(
        path,
        len(frames),
        int(detected.sum()),
        int((valid & ~detected).sum()),
        int((~valid).sum()),
        track.seconds,
        sheet_path,
    )


# -- drawing ---------------------------------------------------------------------------------------------
FINGER_COLORS = ((230, 60, 60), (245, 150, 30), (235, 215, 40), (50, 175, 80), (60, 120, 235))  # thumb..little
PALM_COLOR = (250, 250, 250)
STATUS_COLORS = {"detected": (40, 160, 60), "interpolated": (245, 150, 30), "no hand": (200, 40, 40)}


def draw_landmarks(frame: np.ndarray, points: np.ndarray, width: int = 2) -> np.ndarray:
    """``frame`` (H, W, 3) with the 21 landmarks (pixels, (21, 2)) drawn as a coloured skeleton."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.ascontiguousarray(frame, np.uint8))
    draw = ImageDraw.Draw(image)
    pts = [tuple(map(float, p)) for p in np.asarray(points).reshape(NUM_KEYPOINTS, 2)]
    for a, b in BONES:
        color = PALM_COLOR if a in PALM_POINTS and b in PALM_POINTS else FINGER_COLORS[(b - 1) // 4]
        draw.line([pts[a], pts[b]], fill=color, width=width)
    r = width + 1
    for i, (x, y) in enumerate(pts):
        color = PALM_COLOR if i in PALM_POINTS else FINGER_COLORS[(i - 1) // 4]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=color, outline=(0, 0, 0))
    return np.asarray(image)


def contact_sheet(
    frames: list[np.ndarray],
    points: np.ndarray,
    status: list[str],
    out: Path,
    count: int = 12,
    title: str = "",
    columns: int = 6,
    tile_width: int = 240,
) -> Path:
    """A PNG grid of ``count`` frames evenly spaced over the video, each with its landmarks ((T, 21, 2) pixels)
    drawn unless its ``status`` is "no hand", framed in the status colour (green detected, orange interpolated,
    red no hand) and labelled with its index and status."""
    from PIL import Image, ImageDraw

    pad, label_h, title_h = 4, 14, 18 if title else 0
    idx = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    columns = min(columns, len(idx))
    rows = math.ceil(len(idx) / columns)
    h, w = frames[0].shape[:2]
    tile_h = max(1, round(tile_width * h / w))
    cell_w, cell_h = tile_width + 2 * pad, tile_h + 2 * pad + label_h
    sheet = Image.new("RGB", (columns * cell_w, title_h + rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 3), title, fill=(0, 0, 0))
    for k, t in enumerate(idx):
        tile = np.asarray(Image.fromarray(frames[t]).resize((tile_width - 2, tile_h - 2), Image.BILINEAR))
        if status[t] != "no hand":
            tile = draw_landmarks(tile, np.asarray(points[t]) * [(tile_width - 2) / w, (tile_h - 2) / h])
        x, y = (k % columns) * cell_w, title_h + (k // columns) * cell_h
        color = STATUS_COLORS.get(status[t], (0, 0, 0))
        sheet.paste(Image.new("RGB", (cell_w - 2, tile_h + 2 * pad), color), (x + 1, y))
        sheet.paste(Image.fromarray(tile), (x + pad + 1, y + pad + 1))
        draw.text((x + pad, y + tile_h + 2 * pad), f"frame {t}: {status[t]}", fill=color)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
