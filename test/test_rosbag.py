"""rosbag2 import/export of episodes (humanprompt_ros.rosbag, ``humanprompt-data``) on a simulated robot episode."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags is not installed")

from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402

from humanprompt_ros.cli.data import main  # noqa: E402
from humanprompt_ros.data import load_episode  # noqa: E402
from humanprompt_ros.rosbag import _typestore, nearest  # noqa: E402

TASK = "open_drawer"
TOL = 1e-5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset root holding one simulated robot expert episode (open_drawer, seed 0: 45 steps, 128×128)."""
    from humanprompt_ros.sim.runner import expert_episode
    from humanprompt_ros.sim.tasks import load_task, resolve_task

    root = tmp_path_factory.mktemp("sim")
    expert_episode(load_task(resolve_task(TASK)), "robot", 0).save(root / TASK / "robot" / "0000000")
    return root


@pytest.fixture(scope="module")
def mcap_bag(dataset, tmp_path_factory) -> Path:
    bag = tmp_path_factory.mktemp("bags") / "ep"
    assert cli("export-bag", dataset / TASK / "robot" / "0000000", "--out", bag) == (0, f"{bag}\n", "")
    return bag


def cli(*args) -> tuple[int, str, str]:
    """Run ``humanprompt-data`` in this process: (exit code, stdout, stderr)."""
    import contextlib

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args] + ["--quiet"])
    return rc, out.getvalue(), err.getvalue()


def read_bag(bag: Path) -> dict[str, list[tuple[int, object]]]:
    """Every message of a bag by topic: [(bag time ns, message)]."""
    out: dict[str, list] = {}
    with AnyReader([bag], default_typestore=_typestore()) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return out


def copy_bag(src: Path, dst: Path, drop: tuple[str, ...] = (), compress: str = "") -> Path:
    """``src`` rewritten as a sqlite3 bag without the topics ``drop``; ``compress`` names an image topic whose
    rgb8 images become PNG ``CompressedImage``s."""
    from PIL import Image

    ts = _typestore()
    with (
        AnyReader([src], default_typestore=ts) as reader,
        Writer(dst, version=9, storage_plugin=StoragePlugin.SQLITE3) as w,
    ):
        conns = {}
        for c in reader.connections:
            if c.topic not in drop:
                msgtype = "sensor_msgs/msg/CompressedImage" if c.topic == compress else c.msgtype
                conns[c.topic] = w.add_connection(c.topic, msgtype, typestore=ts)
        for c, t, raw in reader.messages():
            if c.topic in drop:
                continue
            msg = reader.deserialize(raw, c.msgtype)
            if c.topic == compress:
                png = io.BytesIO()
                Image.fromarray(msg.data.reshape(msg.height, msg.width, 3)).save(png, format="PNG")
                msg = ts.types["sensor_msgs/msg/CompressedImage"](
                    msg.header, "png", np.frombuffer(png.getvalue(), np.uint8)
                )
            w.write(conns[c.topic], t, ts.serialize_cdr(msg, conns[c.topic].msgtype))
    return dst


def test_export_writes_the_episode_losslessly(dataset, mcap_bag):
    src = load_episode(dataset / TASK / "robot" / "0000000")
    frames, steps = src.frames(), len(src.proprio)
    msgs = read_bag(mcap_bag)
    assert (mcap_bag / "metadata.yaml").is_file() and list(mcap_bag.glob("*.mcap"))
    assert {t: len(m) for t, m in msgs.items()} == {
        "/humanprompt/episode_meta": 1,
        "/humanprompt/observation": steps,
        "/joint_states": steps,
        "/humanprompt/wrist_pose": steps,
        "/humanprompt/hand_target": steps - 1,
    }
    images = msgs["/humanprompt/observation"]
    assert [t for t, _ in images] == [round(i * 1e9 / src.fps) for i in range(steps)]  # at the episode's fps
    for i, (t, img) in enumerate(images):
        assert img.encoding == "rgb8" and img.header.stamp.sec * 10**9 + img.header.stamp.nanosec == t
        assert np.array_equal(img.data.reshape(img.height, img.width, 3), frames[i])  # rgb8: lossless
    js = msgs["/joint_states"][3][1]
    assert js.name == src.meta["joint_names"] and np.allclose(js.position, src.joints[3], atol=0)
    assert json.loads(msgs["/humanprompt/episode_meta"][0][1].data)["task"] == TASK
    assert msgs["/humanprompt/wrist_pose"][0][1].header.frame_id == "world"


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_export_import(dataset, mcap_bag, tmp_path, storage):
    """MCAP as exported, and the dataset root exported to sqlite3: the imported episode equals the source."""
    bag = mcap_bag
    if storage == "sqlite3":
        rc, out, err = cli("export-bag", dataset, "--out", tmp_path / "bags", "--storage", "sqlite3")
        bag = tmp_path / "bags" / TASK / "robot" / "0000000"  # a dataset root: one bag per episode, same tree
        assert (rc, out, err) == (0, f"{bag}\n", "") and list(bag.glob("*.db3"))
    rc, out, err = cli("import-bag", bag, "--out", tmp_path / "imported")
    assert rc == 0, err
    ep_dir = tmp_path / "imported" / TASK / "robot" / "0000000"
    assert out == f"{ep_dir}\n"
    src, ep = load_episode(dataset / TASK / "robot" / "0000000"), load_episode(ep_dir)
    for name in ("actions", "proprio", "joints"):
        a, b = getattr(src, name), getattr(ep, name)
        assert a.shape == b.shape and np.abs(a - b).max() < TOL, name
    for key in ("task", "fps", "hand", "seed", "success", "joint_names", "mask", "skill"):
        assert ep.meta[key] == src.meta[key], key
    assert ep.meta["bag"]["action_source"] == "topic /humanprompt/hand_target"
    assert ep.meta["bag"]["max_offset_ms"] == dict.fromkeys(ep.meta["bag"]["time"], 0.0)
    a, b = src.frames().astype(int), ep.frames().astype(int)  # the video is re-encoded: lossy
    assert a.shape == b.shape and np.abs(a - b).mean() < 2.0


def test_import_resamples_and_falls_back_to_the_next_state(dataset, mcap_bag, tmp_path):
    """No action topic: action t = the measured state t+1; 5 fps from a 10 fps bag takes every other step;
    PNG CompressedImage frames decode."""
    bag = copy_bag(mcap_bag, tmp_path / "bag", drop=("/humanprompt/hand_target",), compress="/humanprompt/observation")
    rc, out, err = cli("import-bag", bag, "--out", tmp_path / "out", "--task", "drawer_real", "--fps", "5")
    assert rc == 0, err
    src, ep = load_episode(dataset / TASK / "robot" / "0000000"), load_episode(out.strip())
    assert Path(out.strip()) == tmp_path / "out" / "drawer_real" / "robot" / "0000000"  # first free index
    assert ep.meta["task"] == "drawer_real" and ep.fps == 5.0 and "skill" not in ep.meta
    assert ep.meta["bag"]["action_source"].startswith("next measured state")
    assert np.abs(ep.proprio - src.proprio[::2]).max() < TOL
    assert np.abs(ep.joints - src.joints[::2]).max() < TOL
    assert np.array_equal(ep.actions, ep.proprio[1:])
    assert np.abs(ep.frames().astype(int) - src.frames()[::2].astype(int)).mean() < 2.0
    # a named action topic must be there
    rc, _, err = cli(
        "import-bag", bag, "--out", tmp_path / "out", "--task", "x", "--action-topic", "/humanprompt/hand_target"
    )
    assert rc == 2 and "no topic '/humanprompt/hand_target' (unified actions)" in err


def test_refuses_what_is_not_a_usable_bag(mcap_bag, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a bag\n")
    rc, out, err = cli("import-bag", text, "--out", tmp_path / "out", "--task", TASK)
    assert (rc, out) == (2, "") and f"{text}: not a rosbag2 bag" in err
    fake = tmp_path / "fake.mcap"
    fake.write_text("not a bag either\n")
    rc, _, err = cli("import-bag", fake, "--out", tmp_path / "out", "--task", TASK)
    assert rc == 2 and f"{fake}: not a readable rosbag2 bag" in err

    bag = copy_bag(mcap_bag, tmp_path / "no_joints", drop=("/joint_states",))
    rc, _, err = cli("import-bag", bag, "--out", tmp_path / "out")
    assert rc == 2, err
    assert f"{bag}: no topic '/joint_states' (joint states); the bag has: " in err
    assert "/humanprompt/observation (sensor_msgs/msg/Image, 46 messages)" in err
    assert "/humanprompt/wrist_pose (geometry_msgs/msg/PoseStamped, 46 messages)" in err
    assert not (tmp_path / "out").exists()


def test_nearest_message_in_time():
    times = np.array([300, 100, 200, 500])  # any order: indices into it come back
    grid = np.array([0, 149, 150, 151, 260, 400, 900])
    assert nearest(times, grid).tolist() == [1, 1, 1, 2, 0, 0, 3]  # 150 and 400: a tie takes the earlier one


def test_export_refuses_an_existing_bag(dataset, mcap_bag):
    rc, _, err = cli("export-bag", dataset / TASK / "robot" / "0000000", "--out", mcap_bag)
    assert rc == 2 and f"{mcap_bag}: already exists, not overwriting" in err
