"""The known frames of the DDS image test, shared by the publisher, subscriber and test.

Frame i is a deterministic 96×96 picture whose every pixel depends on i, so a subscriber can
check the whole content of any frame it receives, not only a checksum. Frames go out in the
encoding of ENCODINGS[i]; decoded with humanprompt_ros.ros.image.image_to_numpy they must equal
expected(i) (RGB H×W×3, or H×W for mono8).
"""

from __future__ import annotations

import hashlib

import numpy as np

HEIGHT, WIDTH = 96, 96
#: encoding of each frame: mostly the project's rgb8, plus a converted and a mono frame
ENCODINGS = ("rgb8", "rgb8", "rgb8", "rgb8", "bgr8", "mono8")
N_FRAMES = len(ENCODINGS)
TOPIC = "/humanprompt_test/image"


def expected(i: int) -> np.ndarray:
    """What a subscriber must decode from frame i."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = (i * 37 + y * 3 + x * 5) % 256
    if ENCODINGS[i] == "mono8":
        return base.astype(np.uint8)
    c = np.arange(3)
    return ((base[..., None] + c * 85) % 256).astype(np.uint8)


def frame_id(i: int) -> str:
    return f"test_frame_{i}"


def index_of(frame_id_: str) -> int:
    prefix = "test_frame_"
    if not frame_id_.startswith(prefix):
        raise ValueError(f"unexpected frame_id {frame_id_!r}")
    return int(frame_id_[len(prefix) :])


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]
