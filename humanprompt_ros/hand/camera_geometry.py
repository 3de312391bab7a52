"""Camera geometry for hand pose from video: pinhole intrinsics (YAML or a field-of-view default), PnP and projection.

Intrinsics (:class:`CameraIntrinsics`) come from a YAML with ``config/camera_intrinsics.yaml``'s keys or a ROS
``camera_info`` YAML (what ``camera_calibration`` writes), and are scaled to a video of another resolution with
the same aspect ratio; :meth:`CameraIntrinsics.from_fov` is the default without a calibration. The camera frame
is OpenCV's: +x right, +y down, +z forward along the optical axis, metres. OpenCV (``cv2``) is imported on use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from humanprompt_ros.config.loader import ConfigError, from_dict, read_yaml
from humanprompt_ros.hand.keypoints import NUM_KEYPOINTS

CAMERA_FRAME = "OpenCV camera frame: +x right, +y down, +z forward (optical axis), metres"


@dataclass
class CameraIntrinsics:
    """A pinhole camera with OpenCV distortion (``config/camera_intrinsics.yaml``): pixels, for width × height."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: list[float] = field(default_factory=lambda: [0.0] * 5)  # OpenCV order: k1 k2 p1 p2 [k3 ...]

    def validate(self) -> None:
        for name in ("width", "height", "fx", "fy"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if not 0 <= self.cx <= self.width:
            raise ValueError(f"cx: {self.cx} lies outside the image (0 to width {self.width})")
        if not 0 <= self.cy <= self.height:
            raise ValueError(f"cy: {self.cy} lies outside the image (0 to height {self.height})")
        if len(self.distortion) not in (4, 5, 8, 12, 14):
            raise ValueError(
                f"distortion: OpenCV takes 4, 5, 8, 12 or 14 coefficients (k1 k2 p1 p2 [k3 ...]), got {len(self.distortion)}"
            )
        if not all(math.isfinite(v) for v in (self.fx, self.fy, self.cx, self.cy, *self.distortion)):
            raise ValueError("distortion: NaN or inf in the intrinsics")

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float = 60.0) -> "CameraIntrinsics":
        """The documented default: square pixels, the principal point at the image centre, no distortion."""
        f = width / 2 / math.tan(math.radians(hfov_deg) / 2)
        return cls(int(width), int(height), f, f, width / 2, height / 2)

    def for_size(self, width: int, height: int) -> "CameraIntrinsics":
        """These intrinsics for a video of ``width`` × ``height``: scaled when only the resolution differs.

        Raises ``ValueError`` when the aspect ratio differs (a cropped video needs its own calibration).
        """
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        if abs(sx - sy) > 0.01 * max(sx, sy):
            raise ValueError(
                f"the intrinsics are for {self.width}x{self.height} images but the video is {width}x{height}, "
                f"another aspect ratio (a crop?): calibrate the camera at the video's size"
            )
        return CameraIntrinsics(
            width, height, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, list(self.distortion)
        )


def load_intrinsics(path: str | Path) -> CameraIntrinsics:
    """Camera intrinsics from a YAML: ``config/camera_intrinsics.yaml``'s keys (width, height, fx, fy, cx, cy,
    distortion), or a ROS ``camera_info`` YAML (image_width, image_height, camera_matrix, distortion_coefficients).

    Errors (``ConfigError``, a ``ValueError``) name the file and the key.
    """
    source = str(path)
    data = read_yaml(path)
    if "camera_matrix" in data:
        data = _from_camera_info(data, source)
    return from_dict(CameraIntrinsics, data, source=source)


def _from_camera_info(data: dict[str, Any], source: str) -> dict[str, Any]:
    """A ROS camera_info YAML (``camera_calibration``'s ``ost.yaml``) → this module's keys."""

    def numbers(key: str, size: int | None) -> list[float]:
        node = data.get(key)
        values = node.get("data") if isinstance(node, dict) else None
        ok = isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not ok or (size is not None and len(values) != size):
            want = f"{size} numbers" if size else "a list of numbers"
            raise ConfigError(source, f"{key}.data", f"expected {want}, got {values!r}")
        return [float(v) for v in values]

    for key in ("image_width", "image_height"):
        if key not in data:
            raise ConfigError(source, key, "required key is missing (a ROS camera_info YAML has it)")
    k = numbers("camera_matrix", 9)
    dist = numbers("distortion_coefficients", None) if "distortion_coefficients" in data else []
    return {
        "width": data["image_width"],
        "height": data["image_height"],
        "fx": k[0],
        "fy": k[4],
        "cx": k[2],
        "cy": k[5],
        "distortion": dist or [0.0] * 5,
    }


# -- PnP -------------------------------------------------------------------------------------------------
def solve_pnp(
    image_points: np.ndarray, model_points: np.ndarray, intrinsics: CameraIntrinsics
) -> tuple[np.ndarray, float]:
    """The pose of a rigid point set from its projection: (4, 4) camera ← model, and the RMS reprojection error
    in pixels. SQPnP (a global solver) refined by Levenberg–Marquardt. Raises ``ValueError`` when it fails."""
    import cv2

    obj = np.ascontiguousarray(model_points, np.float64).reshape(-1, 3)
    img = np.ascontiguousarray(image_points, np.float64).reshape(-1, 2)
    if len(obj) != len(img) or len(obj) < 4:
        raise ValueError(f"PnP needs at least 4 matching points, got {len(obj)} model and {len(img)} image points")
    if not (np.isfinite(obj).all() and np.isfinite(img).all()):
        raise ValueError("PnP: NaN or inf among the points")
    k, dist = intrinsics.matrix, np.asarray(intrinsics.distortion, np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, dist, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise ValueError("PnP found no pose")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, k, dist, rvec, tvec)
    proj = cv2.projectPoints(obj, rvec, tvec, k, dist)[0].reshape(-1, 2)
    pose = np.eye(4)
    pose[:3, :3] = cv2.Rodrigues(rvec)[0]
    pose[:3, 3] = tvec.reshape(3)
    return pose, float(np.sqrt(np.mean(np.sum((proj - img) ** 2, axis=1))))


def hand_in_camera(
    image_points: np.ndarray, world_points: np.ndarray, intrinsics: CameraIntrinsics
) -> tuple[np.ndarray, float]:
    """21 image landmarks (pixels) + 21 world landmarks (metres) → (21, 3) keypoints in the camera frame and the
    RMS reprojection error (pixels). Raises ``ValueError`` when PnP fails or puts the hand behind the camera."""
    world = np.asarray(world_points, np.float64).reshape(NUM_KEYPOINTS, 3)
    pose, err = solve_pnp(image_points, world, intrinsics)
    kp = world @ pose[:3, :3].T + pose[:3, 3]
    if np.any(kp[:, 2] <= 0):
        raise ValueError("PnP put the hand behind the camera")
    return kp, err


def project(points: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """(..., 3) points in the camera frame → (..., 2) pixels (with the distortion)."""
    import cv2

    pts = np.asarray(points, np.float64)
    flat = pts.reshape(-1, 3)
    zero = np.zeros(3)
    px = cv2.projectPoints(flat, zero, zero, intrinsics.matrix, np.asarray(intrinsics.distortion, np.float64))[0]
    return px.reshape(*pts.shape[:-1], 2)
