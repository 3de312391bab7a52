"""sensor_msgs/Image <-> numpy conversion (humanprompt_ros.ros.image)."""

from __future__ import annotations

import array

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 message wheels) is not installed")

from sensor_msgs.msg import Image  # noqa: E402

from humanprompt_ros.ros.image import (  # noqa: E402
    SUPPORTED_ENCODINGS,
    cv_bridge_available,
    image_to_numpy,
    numpy_to_image,
)

COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")
SIZES = [(61, 97), (1, 1), (480, 640), (3, 5)]  # (height, width): odd sizes on purpose


def rgb_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def raw_message(pixels: np.ndarray, encoding: str, pad: int = 0) -> Image:
    """An Image built by hand (independently of numpy_to_image), rows padded with `pad` bytes."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    padded = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1) if pad else rows
    msg = Image()
    msg.height, msg.width, msg.encoding = h, w, encoding
    msg.step = rows.shape[1] + pad
    msg.data = array.array("B", padded.tobytes())
    return msg


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("encoding", COLOR_ENCODINGS)
def test_color_round_trip(encoding, h, w):
    rgb = rgb_image(h, w)
    msg = numpy_to_image(rgb, encoding, frame_id="cam")
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian) == (h, w, encoding, 0)
    channels = 4 if encoding.endswith("a8") else 3
    assert msg.step == w * channels and len(msg.data) == h * w * channels
    assert msg.header.frame_id == "cam"
    back = image_to_numpy(msg)
    assert back.dtype == np.uint8 and back.shape == (h, w, 3)
    np.testing.assert_array_equal(back, rgb)


@pytest.mark.parametrize("h,w", SIZES)
def test_mono_round_trip(h, w):
    gray = rgb_image(h, w)[..., 0].copy()
    msg = numpy_to_image(gray, "mono8")
    assert msg.step == w and len(msg.data) == h * w
    back = image_to_numpy(msg)
    assert back.shape == (h, w)
    np.testing.assert_array_equal(back, gray)
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(gray[..., None], "mono8")), gray)


def test_wire_layout_is_what_the_encoding_says():
    """Bytes on the wire follow the encoding (not just a self-consistent round trip)."""
    px = np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)  # 1×2 RGB
    assert bytes(numpy_to_image(px, "rgb8").data) == bytes([10, 20, 30, 40, 50, 60])
    assert bytes(numpy_to_image(px, "bgr8").data) == bytes([30, 20, 10, 60, 50, 40])
    assert bytes(numpy_to_image(px, "rgba8").data) == bytes([10, 20, 30, 255, 40, 50, 60, 255])
    assert bytes(numpy_to_image(px, "bgra8").data) == bytes([30, 20, 10, 255, 60, 50, 40, 255])
    rgba = np.array([[[1, 2, 3, 4]]], np.uint8)
    assert bytes(numpy_to_image(rgba, "rgba8").data) == bytes([1, 2, 3, 4])
    assert bytes(numpy_to_image(rgba, "bgra8").data) == bytes([3, 2, 1, 4])
    # and reading hand-built messages
    np.testing.assert_array_equal(image_to_numpy(raw_message(px[..., ::-1], "bgr8")), px)
    bgra = np.concatenate([px[..., ::-1], np.full((1, 2, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(image_to_numpy(raw_message(bgra, "bgra8")), px)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("pad", [1, 3, 64])
def test_padded_step(encoding, pad):
    h, w = 61, 97
    rgb = rgb_image(h, w, seed=pad)
    if encoding == "mono8":
        wire, expected = rgb[..., 0].copy(), rgb[..., 0]
    elif encoding == "rgb8":
        wire, expected = rgb, rgb
    elif encoding == "bgr8":
        wire, expected = rgb[..., ::-1].copy(), rgb
    else:
        alpha = np.full((h, w, 1), 128, np.uint8)
        color = rgb if encoding == "rgba8" else rgb[..., ::-1]
        wire, expected = np.concatenate([color, alpha], axis=2), rgb
    msg = raw_message(wire, encoding, pad=pad)
    out = image_to_numpy(msg)
    np.testing.assert_array_equal(out, expected)
    assert out.flags.c_contiguous


def test_unpadded_rgb8_is_a_read_only_view_and_copy_true_owns():
    rgb = rgb_image(61, 97)
    msg = numpy_to_image(rgb)
    view = image_to_numpy(msg)
    assert not view.flags.writeable and view.flags.c_contiguous
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    with pytest.raises(ValueError):
        view[0, 0, 0] = 1
    owned = image_to_numpy(msg, copy=True)
    assert owned.flags.writeable and owned.flags.owndata and owned.flags.c_contiguous
    owned[0, 0, 0] ^= 0xFF  # writing into the copy leaves the message alone
    np.testing.assert_array_equal(image_to_numpy(msg), rgb)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_default_result_is_read_only_for_every_encoding(encoding):
    src = rgb_image(5, 7)[..., 0] if encoding == "mono8" else rgb_image(5, 7)
    out = image_to_numpy(numpy_to_image(src, encoding))
    assert not out.flags.writeable and out.flags.c_contiguous
    owned = image_to_numpy(numpy_to_image(src, encoding), copy=True)
    assert owned.flags.writeable and owned.flags.owndata


def test_numpy_to_image_does_not_alias_the_input():
    rgb = rgb_image(4, 6)
    msg = numpy_to_image(rgb)
    rgb[:] = 0
    assert bytes(msg.data) != bytes(rgb.tobytes())


def test_non_contiguous_input():
    big = rgb_image(120, 200)
    crop = big[10:71:2, 5:102:3]  # strided both ways
    for enc in COLOR_ENCODINGS:
        np.testing.assert_array_equal(image_to_numpy(numpy_to_image(crop, enc)), crop)


def test_stamp_and_header():
    from builtin_interfaces.msg import Time

    msg = numpy_to_image(rgb_image(2, 2), stamp=Time(sec=12, nanosec=34), frame_id="camera_optical")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 34)
    assert msg.header.frame_id == "camera_optical"
    rclpy_time = pytest.importorskip("rclpy.time")
    msg = numpy_to_image(rgb_image(2, 2), stamp=rclpy_time.Time(seconds=5, nanoseconds=6))
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (5, 6)
    assert numpy_to_image(rgb_image(2, 2)).header.stamp.sec == 0
    with pytest.raises(TypeError, match="stamp"):
        numpy_to_image(rgb_image(2, 2), stamp=1.5)


@pytest.mark.parametrize("encoding", ["16UC1", "yuv422", "bayer_rggb8", "RGB8", "", "rgb16", "32FC1"])
def test_unsupported_encoding_is_a_clear_error(encoding):
    msg = raw_message(rgb_image(2, 3), encoding)
    with pytest.raises(ValueError) as err:
        image_to_numpy(msg)
    assert repr(encoding) in str(err.value)
    for supported in SUPPORTED_ENCODINGS:
        assert supported in str(err.value)
    with pytest.raises(ValueError, match="unsupported image encoding"):
        numpy_to_image(rgb_image(2, 3), encoding)


def test_wrong_data_length():
    msg = numpy_to_image(rgb_image(61, 97))
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match=r"data has 17750 bytes, expected height\*step = 61\*291 = 17751"):
        image_to_numpy(msg)
    msg = numpy_to_image(rgb_image(61, 97))
    msg.data.extend([0] * 5)
    with pytest.raises(ValueError, match="data has 17756 bytes"):
        image_to_numpy(msg)
    msg = numpy_to_image(rgb_image(61, 97))
    msg.height = 60
    with pytest.raises(ValueError, match="expected height"):
        image_to_numpy(msg)


def test_step_too_small():
    msg = numpy_to_image(rgb_image(61, 97))
    msg.step = 97 * 3 - 1
    with pytest.raises(ValueError, match=r"step 290 is smaller than width\*channels = 97\*3 = 291"):
        image_to_numpy(msg)
    msg = numpy_to_image(rgb_image(4, 4), "rgba8")
    msg.encoding = "rgba8"
    msg.step = 12  # rgb-sized rows for a 4-channel encoding
    with pytest.raises(ValueError, match="smaller than width"):
        image_to_numpy(msg)


@pytest.mark.parametrize(
    "array_,encoding,match",
    [
        (np.zeros((4, 4), np.uint8), "rgb8", r"rgb8 needs an H×W×3"),
        (np.zeros((4, 4, 4), np.uint8), "bgr8", r"bgr8 needs an H×W×3"),
        (np.zeros((4, 4, 3), np.uint8), "mono8", r"mono8 needs an H×W"),
        (np.zeros((4, 4, 2), np.uint8), "rgba8", r"rgba8 needs an H×W×3 RGB or H×W×4"),
        (np.zeros((4, 4, 3), np.float32), "rgb8", r"dtype uint8, got float32"),
        (np.zeros((4, 4, 3), np.uint16), "rgb8", r"dtype uint8, got uint16"),
        (np.zeros(12, np.uint8), "rgb8", r"got shape \(12,\)"),
    ],
)
def test_numpy_to_image_rejects_bad_arrays(array_, encoding, match):
    with pytest.raises(ValueError, match=match):
        numpy_to_image(array_, encoding)


def test_empty_image():
    msg = numpy_to_image(np.zeros((0, 5, 3), np.uint8))
    assert (msg.height, msg.width, len(msg.data)) == (0, 5, 0)
    assert image_to_numpy(msg).shape == (0, 5, 3)


def test_message_survives_serialization():
    """What a subscriber gets after the bytes went through rclpy's CDR serializer."""
    from rclpy.serialization import deserialize_message, serialize_message

    for enc in SUPPORTED_ENCODINGS:
        src = rgb_image(61, 97)[..., 0].copy() if enc == "mono8" else rgb_image(61, 97)
        msg = deserialize_message(serialize_message(numpy_to_image(src, enc)), Image)
        np.testing.assert_array_equal(image_to_numpy(msg), src)


def test_cv_bridge_available_only_when_a_bridge_imports_and_round_trips(monkeypatch):
    """True only for a bridge that imports and converts both ways correctly; False without cv_bridge, or for
    one that raises (PyPI's 1.13 on NumPy 2) or returns the wrong pixels (on OpenCV 5)."""
    import importlib.util

    from humanprompt_ros.ros import image as image_module

    class Bridge:
        def __init__(self, swap=False, fail=False):
            self.swap, self.fail = swap, fail

        def cv2_to_imgmsg(self, arr, encoding):
            if self.fail:
                raise AttributeError("'numpy.ndarray' object has no attribute 'tostring'")
            return raw_message(arr, encoding)

        def imgmsg_to_cv2(self, msg, desired_encoding):
            out = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
            return out[..., ::-1] if self.swap else out

    def missing():
        raise ImportError("No module named 'cv_bridge'")

    cv_bridge_available.cache_clear()
    try:
        if importlib.util.find_spec("cv_bridge") is None:
            assert cv_bridge_available() is False  # the real answer here: nothing to import
            cv_bridge_available.cache_clear()
        for bridge, usable in (
            (missing, False),
            (lambda: Bridge(), True),
            (lambda: Bridge(swap=True), False),
            (lambda: Bridge(fail=True), False),
        ):
            monkeypatch.setattr(image_module, "_bridge", bridge)
            assert cv_bridge_available() is usable
            cv_bridge_available.cache_clear()
    finally:
        monkeypatch.undo()
        cv_bridge_available.cache_clear()


@pytest.mark.skipif(
    not cv_bridge_available(),
    reason="cv_bridge is not usable here (cv_bridge_available() is False): not installed, or PyPI's "
    "cv-bridge 1.13, ROS 1 code that breaks on NumPy 2 (ndarray.tostring) and OpenCV 5 (channel flags)",
)
@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_matches_cv_bridge(encoding, monkeypatch):
    from cv_bridge import CvBridge

    from humanprompt_ros.ros import image as image_module

    monkeypatch.setattr(image_module, "PREFER_CV_BRIDGE", False)  # "ours" below is the project's own conversion
    bridge = CvBridge()
    rgb = rgb_image(61, 97)
    if encoding == "mono8":
        native = rgb[..., 0].copy()  # what cv_bridge holds: the message's channel order
        expected = native
    elif encoding in ("rgb8", "bgr8"):
        native = rgb if encoding == "rgb8" else rgb[..., ::-1].copy()
        expected = rgb
    else:
        alpha = np.full((61, 97, 1), 255, np.uint8)
        native = np.concatenate([rgb if encoding == "rgba8" else rgb[..., ::-1], alpha], axis=2)
        expected = rgb
    theirs = bridge.cv2_to_imgmsg(native, encoding=encoding)
    ours = numpy_to_image(expected, encoding)
    assert (theirs.height, theirs.width, theirs.step, theirs.encoding) == (
        ours.height,
        ours.width,
        ours.step,
        ours.encoding,
    )
    assert bytes(theirs.data) == bytes(ours.data)
    np.testing.assert_array_equal(image_to_numpy(theirs), expected)
    np.testing.assert_array_equal(np.asarray(bridge.imgmsg_to_cv2(ours, desired_encoding="passthrough")), native)


def test_the_stamp_is_read_from_a_serialized_frame_without_deserializing_it():
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message

    from humanprompt_ros.ros.image import serialized_stamp_ns

    msg = numpy_to_image(rgb_image(6, 4), stamp=Time(sec=1_796_000_123, nanosec=456_789_012))
    assert serialized_stamp_ns(serialize_message(msg)) == 1_796_000_123_456_789_012
    assert serialized_stamp_ns(serialize_message(numpy_to_image(rgb_image(6, 4)))) == 0  # unstamped
    assert serialized_stamp_ns(b"") == 0 and serialized_stamp_ns(b"\x07\x07" + bytes(20)) == 0  # not CDR


def test_a_frame_is_as_old_as_its_stamp_unless_the_stamp_is_zero_or_ahead():
    from humanprompt_ros.ros.image import captured_monotonic

    now_ns, now = 50_000_000_000, 1000.0
    assert captured_monotonic(now_ns - 400_000_000, now_ns, now) == pytest.approx(999.6)  # delivered 0.4 s late
    assert captured_monotonic(0, now_ns, now) == now  # no stamp: its arrival
    assert captured_monotonic(now_ns + 2_000_000_000, now_ns, now) == now  # a clock ahead of ours: its arrival
