"""rosbag2 bags ↔ episodes of the dataset format (:mod:`humanprompt_ros.data`), without ROS.

Uses the pure-Python ``rosbags`` library: no rclpy, no ``ros2 bag``; MCAP and sqlite3 storage both.
The command line is ``humanprompt-data import-bag`` / ``export-bag`` (:mod:`humanprompt_ros.cli.data`,
which fills in the stack's topic names from :mod:`humanprompt_ros.ros.topics`); ``docs/ros.md`` has
the reference.

**Import** (:func:`import_bag`): a robot recording → one robot episode.

* The bag must have the camera (``sensor_msgs/msg/Image`` in any encoding of
  :mod:`humanprompt_ros.messages`, or ``sensor_msgs/msg/CompressedImage`` JPEG/PNG), the joint states
  (``sensor_msgs/msg/JointState``, read by joint name) and the wrist pose
  (``geometry_msgs/msg/PoseStamped``: the pose of the hand YAML's ``base_link`` in the world/camera
  frame, what ``/humanprompt/wrist_pose`` carries in the stack; ``header.frame_id`` is recorded, not
  transformed).
* Time: a message's time is its ``header.stamp``, or the bag's receive time for a topic whose stamps
  are all zero. Frames are resampled at ``fps`` over the span where every needed topic has data
  (from the latest first message to the earliest last one); each frame takes, per topic, the
  **nearest message in time** (the earlier one on a tie). The largest offset per topic goes to
  ``meta.json`` (``bag.max_offset_ms``).
* proprio t = ``hand.fk(joints t, base_pose=wrist pose t)``, as the policy node computes it.
* action t: the unified action on ``action_topic`` nearest to frame t when the bag has it (the
  ``geometry_msgs/msg/PoseArray`` hand target of :mod:`humanprompt_ros.ros.conversions`, or a 24-float
  ``Float64MultiArray``/``Float32MultiArray``); otherwise the measured state at t+1 (proprio t+1),
  since a recording of the robot alone has no commands. ``meta.json`` ``bag.action_source`` says which.
* The episode goes to ``<out>/<task>/robot/<seed:07d>/`` (the ``humanprompt-sim generate`` layout):
  ``seed`` given, else the one in the bag's episode metadata, else the first free index.

**Export** (:func:`export_episode`, :func:`export_dataset`): an episode → a bag, one message of each
per step at the episode's fps (step t at t/fps s, ``header.stamp`` = bag time): the frames as rgb8
``Image`` (lossless: the decoded video frames), ``JointState`` (robot episodes, ``meta.joint_names``),
the wrist pose (robot: ``base_link`` from the measured wrist, ``hand.base_pose_for``; human: the
wrist frame itself), the action as the hand-target ``PoseArray`` (T messages, so ``ros2 bag play``
drives the command node) and ``/humanprompt/episode_meta`` (``std_msgs/msg/String``: the episode's
meta.json, once), which import reads back.

The resampling and the robot state (:func:`align`, :func:`robot_arrays`) are shared with the live recorder
(:mod:`humanprompt_ros.recording`), so a recorded episode and an imported bag are built the same way.

Import and export are one module: they share the message types, the episode-meta topic and the typestore.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from humanprompt_ros.action import HandAction, actions_from_array
from humanprompt_ros.data import META_FILE, Episode, iter_episodes, load_episode, write_episode
from humanprompt_ros.messages import (
    hand_target_poses,
    image_data,
    image_to_numpy,
    joint_positions,
    matrix_from_pose,
    pose_array_to_action,
    quaternion_from_matrix,
)
from humanprompt_ros.progress import progress as progress_bar

STORAGES = ("mcap", "sqlite3")
META_TOPIC = "/humanprompt/episode_meta"
BAG_SUFFIXES = (".mcap", ".db3")
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
JOINT_STATE = "sensor_msgs/msg/JointState"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POSE_ARRAY = "geometry_msgs/msg/PoseArray"
ARRAYS = ("std_msgs/msg/Float64MultiArray", "std_msgs/msg/Float32MultiArray")
STRING = "std_msgs/msg/String"
ALIGNMENT = "nearest message in time to each frame"  # meta.json's description of the resampling
# meta.json keys that describe the files, recomputed when an episode is written again
_DERIVED = ("fps", "num_actions", "num_frames", "image_size", "format_version", "action_layout", "state_layout")
# meta.json keys that describe the task of the bag's episode, dropped when it is imported as another task
_TASK_KEYS = ("skill", "description", "instance", "task_file", "final", "success", "seed")


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


# -- import ------------------------------------------------------------------------------------------------
def open_bag(path: str | Path):
    """An open ``rosbags`` reader of a rosbag2 bag (a directory with metadata.yaml, or a .mcap/.db3 file).

    Anything else, or a file that does not read as a bag, raises ``ValueError`` naming the path.
    """
    from rosbags.highlevel import AnyReader

    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: not found")
    if p.is_dir() and not (p / "metadata.yaml").is_file():
        raise ValueError(f"{p}: not a rosbag2 bag (a directory without metadata.yaml)")
    if p.is_file() and p.suffix not in BAG_SUFFIXES:
        raise ValueError(
            f"{p}: not a rosbag2 bag (expected a bag directory with metadata.yaml, or a {' or '.join(BAG_SUFFIXES)} file)"
        )
    reader = AnyReader([p], default_typestore=_typestore())
    try:
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds for a corrupt or foreign file
        raise ValueError(f"{p}: not a readable rosbag2 bag ({type(exc).__name__}: {exc})") from None
    return reader


def _topics_listing(reader) -> str:
    return ", ".join(f"{t} ({i.msgtype}, {i.msgcount} messages)" for t, i in sorted(reader.topics.items())) or "none"


def _check_topic(reader, bag: Path, topic: str, what: str, types: tuple[str, ...]) -> None:
    info = reader.topics.get(topic)
    if info is None:
        raise ValueError(f"{bag}: no topic {topic!r} ({what}); the bag has: {_topics_listing(reader)}")
    if info.msgtype not in types:
        raise ValueError(f"{bag}: topic {topic!r} ({what}) is {info.msgtype}, expected {' or '.join(types)}")
    if not info.msgcount:
        raise ValueError(f"{bag}: topic {topic!r} ({what}) has no messages")


def message_times(header_ns: list[int], receive_ns: list[int]) -> tuple[np.ndarray, str]:
    """A topic's message times: header stamps, or receive times when every stamp is zero."""
    if any(header_ns):
        return np.asarray(header_ns, np.int64), "header.stamp"
    return np.asarray(receive_ns, np.int64), "receive time"


def nearest(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index into ``times`` (any order) of the message nearest to each grid time; the earlier one on a tie."""
    order = np.argsort(times, kind="stable")
    st = times[order]
    right = np.clip(np.searchsorted(st, grid, side="left"), 0, len(st) - 1)
    left = np.clip(right - 1, 0, len(st) - 1)
    pick = np.where(np.abs(grid - st[left]) <= np.abs(st[right] - grid), left, right)
    return order[pick]


def align(
    times: dict[str, np.ndarray], required: Sequence[str], fps: float, action: str | None = None, where: str = ""
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """Frame times every ``1/fps`` s over the span where every ``required`` stream has data, and per stream
    of ``times`` the nearest message to each frame (:func:`nearest`; the ``action`` stream: to each of the
    first T = frames - 1) and its largest offset in ms. ``ValueError`` (prefixed with ``where``) below two frames.

    Returns ``(grid_ns, pick, max_offset_ms)``; shared by :func:`import_bag` and :mod:`humanprompt_ros.recording`.
    """
    start = max(int(times[t].min()) for t in required)
    end = min(int(times[t].max()) for t in required)
    n = int(np.floor((end - start) * fps / 1e9 + 1e-6)) + 1 if end >= start else 0
    if n < 2:
        raise ValueError(
            f"{where}: the topics {', '.join(required)} overlap for {max(end - start, 0) / 1e9:.3f} s, "
            f"less than two frames at {fps:g} fps"
        )
    grid = start + np.round(np.arange(n) * 1e9 / fps).astype(np.int64)
    pick = {t: nearest(v, grid[: n - 1] if t == action else grid) for t, v in times.items()}
    offsets = {t: float(np.abs(times[t][p] - grid[: len(p)]).max()) / 1e6 for t, p in pick.items()}
    return grid, pick, offsets


def robot_arrays(
    hand, joints: np.ndarray, bases: Sequence[np.ndarray], actions: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(proprio, actions) of a robot episode: proprio t = ``hand.fk(joints t, base_pose=bases t)`` (what the
    policy node computes); actions t = ``actions`` (commanded) when given, else the measured state t+1."""
    proprio = np.stack([hand.fk(q, base_pose=b).to_array() for q, b in zip(joints, bases)])
    return proprio, (np.asarray(actions, np.float64) if actions is not None else proprio[1:].copy())


def action_source(action_topic: str | None) -> str:
    """``meta.json``'s ``action_source``: the action topic, or the next measured state."""
    return f"topic {action_topic}" if action_topic else "next measured state (proprio t+1)"


def next_index(directory: Path) -> int:
    """The first episode number not yet taken in ``directory`` (its numbered subdirectories)."""
    used = {int(d.name) for d in directory.glob("*") if d.is_dir() and re.fullmatch(r"\d+", d.name)}
    return next(i for i in range(len(used) + 1) if i not in used)


def _decode_frame(msg: Any, msgtype: str) -> np.ndarray:
    from humanprompt_ros.camera import as_rgb

    if msgtype == COMPRESSED_IMAGE:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(bytes(msg.data))) as img:
            return np.asarray(img.convert("RGB"))
    return as_rgb(image_to_numpy(msg, copy=True))


def _action(msg: Any, msgtype: str, topic: str) -> np.ndarray:
    if msgtype == POSE_ARRAY:
        return pose_array_to_action(msg).to_array()
    data = np.asarray(msg.data, np.float64)
    if data.shape != (24,):
        raise ValueError(f"{topic}: a unified action is 24 floats, got {data.size}")
    return data


def import_bag(
    bag: str | Path,
    out_root: str | Path,
    hand,
    *,
    image_topic: str,
    joint_topic: str,
    wrist_topic: str,
    action_topic: str | None = None,
    require_action: bool = False,
    task: str | None = None,
    fps: float = 10.0,
    seed: int | None = None,
    progress: bool = False,
) -> Path:
    """Import a robot recording as one episode (see the module docstring); returns its directory.

    ``hand`` is a :class:`humanprompt_ros.hand.hand.Hand`. The actions come from ``action_topic`` when the
    bag has it (``require_action``: refuse a bag without it), else from the next measured state.
    """
    bag, out_root = Path(bag), Path(out_root)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    reader = open_bag(bag)
    try:
        _check_topic(reader, bag, image_topic, "camera images", (IMAGE, COMPRESSED_IMAGE))
        _check_topic(reader, bag, joint_topic, "joint states", (JOINT_STATE,))
        _check_topic(reader, bag, wrist_topic, "wrist pose", (POSE_STAMPED,))
        if action_topic and (require_action or action_topic in reader.topics):
            _check_topic(reader, bag, action_topic, "unified actions", (POSE_ARRAY, *ARRAYS))
        else:
            action_topic = None
        required = (image_topic, joint_topic, wrist_topic)
        wanted = [*required, *([action_topic] if action_topic else [])]
        msgs, times, clocks, bag_meta, frame_id = _read_states(reader, bag, wanted, image_topic, progress)

        # the resampling grid over the span where every needed topic has data
        grid, pick, offsets = align({t: times[t] for t in wanted}, required, fps, action_topic, str(bag))
        n = len(grid)
        frames = _read_frames(reader, image_topic, pick[image_topic], progress)
        action_type = reader.topics[action_topic].msgtype if action_topic else ""
    finally:
        reader.close()

    # proprio = FK of the joints at the wrist pose (as the policy node does); actions: topic or next state
    joints, bases = np.zeros((n, hand.num_joints)), np.zeros((n, 4, 4))
    for k in range(n):
        js, pose = msgs[joint_topic][pick[joint_topic][k]], msgs[wrist_topic][pick[wrist_topic][k]]
        try:
            joints[k] = joint_positions(js, hand.joint_names)
            bases[k] = matrix_from_pose(pose.pose, f"{wrist_topic} pose")
        except ValueError as exc:
            raise ValueError(f"{bag}: frame {k} ({grid[k] / 1e9:.3f} s): {exc}") from None
    commanded = None
    if action_topic:
        commanded = np.stack([_action(msgs[action_topic][i], action_type, action_topic) for i in pick[action_topic]])
    proprio, actions = robot_arrays(hand, joints, bases, commanded)

    task = task or bag_meta.get("task")
    if not task:
        raise ValueError(f"{bag}: no task name: give one (--task); the bag carries no {META_TOPIC}")
    same = task == bag_meta.get("task")  # otherwise the bag's description of its task does not apply
    meta = {k: v for k, v in bag_meta.items() if k not in _DERIVED and (same or k not in _TASK_KEYS)}
    meta.update(
        task=task,
        embodiment="robot",
        hand=hand.name,
        mask=hand.mask.tolist(),
        joint_names=hand.joint_names,
        bag={
            "path": str(bag.resolve()),
            "topics": {"image": image_topic, "joints": joint_topic, "wrist": wrist_topic, "action": action_topic},
            "wrist_frame_id": frame_id,
            "time": clocks,
            "alignment": ALIGNMENT,
            "max_offset_ms": {t: round(v, 3) for t, v in offsets.items()},
            "start_s": int(grid[0]) / 1e9,
            "action_source": action_source(action_topic),
        },
    )
    out = out_root / task / "robot"
    if seed is None:
        seed = bag_meta.get("seed") if same else None
    if seed is None:
        seed = next_index(out)
    meta["seed"] = int(seed)
    out = out / f"{int(seed):07d}"
    if (out / META_FILE).exists():
        raise ValueError(f"{out}: an episode is already there (choose another --seed or --out)")
    return write_episode(out, frames, actions, meta, proprio=proprio, joints=joints, fps=fps)


def _read_states(reader, bag: Path, wanted: list[str], image_topic: str, progress: bool):
    """Pass 1 over the bag: every needed message but the pixels. Returns (messages, times, clocks,
    the bag's episode meta, the wrist pose's frame id); an image topic keeps only its times."""
    header: dict[str, list[int]] = {t: [] for t in wanted}
    receive: dict[str, list[int]] = {t: [] for t in wanted}
    msgs: dict[str, list[Any]] = {t: [] for t in wanted}
    bag_meta: dict[str, Any] = {}
    frame_id = ""
    conns = [c for c in reader.connections if c.topic in wanted or c.topic == META_TOPIC]
    with progress_bar(total=sum(c.msgcount for c in conns), desc=f"read {bag.name}", enabled=progress) as bar:
        for conn, t_ns, raw in reader.messages(connections=conns):
            bar.update()
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == META_TOPIC:
                bag_meta = json.loads(msg.data)
                continue
            h = getattr(msg, "header", None)
            header[conn.topic].append(h.stamp.sec * 1_000_000_000 + h.stamp.nanosec if h is not None else 0)
            receive[conn.topic].append(t_ns)
            if conn.msgtype == POSE_STAMPED and not frame_id:
                frame_id = msg.header.frame_id
            msgs[conn.topic].append(None if conn.topic == image_topic else msg)
    times, clocks = {}, {}
    for t in wanted:
        times[t], clocks[t] = message_times(header[t], receive[t])
    return msgs, times, clocks, bag_meta, frame_id


def _read_frames(reader, topic: str, pick: np.ndarray, progress: bool) -> list[np.ndarray]:
    """Pass 2: decode only the image messages the grid uses (memory stays at one episode's frames)."""
    need = {int(i) for i in pick}
    decoded: dict[int, np.ndarray] = {}
    conns = [c for c in reader.connections if c.topic == topic]
    with progress_bar(total=len(need), desc="decode frames", enabled=progress) as bar:
        for i, (conn, _, raw) in enumerate(reader.messages(connections=conns)):
            if i in need:
                decoded[i] = _decode_frame(reader.deserialize(raw, conn.msgtype), conn.msgtype)
                bar.update()
    return [decoded[int(i)] for i in pick]


# -- export ------------------------------------------------------------------------------------------------
class _Msgs:
    """Builders of the ``rosbags`` messages an export writes."""

    def __init__(self, ts):
        self.ts = ts
        self.T = ts.types

    def header(self, ns: int, frame_id: str = ""):
        stamp = self.T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        return self.T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def pose(self, row: np.ndarray):
        point = self.T["geometry_msgs/msg/Point"](*(float(v) for v in row[:3]))
        quat = self.T["geometry_msgs/msg/Quaternion"](*(float(v) for v in row[3:7]))
        return self.T["geometry_msgs/msg/Pose"](position=point, orientation=quat)

    def image(self, frame: np.ndarray, ns: int, frame_id: str):
        data = image_data(frame, "rgb8")
        h, w = data.shape[:2]
        return self.T[IMAGE](self.header(ns, frame_id), h, w, "rgb8", 0, w * 3, data.reshape(-1))

    def joint_state(self, names: list[str], q: np.ndarray, ns: int):
        empty = np.zeros(0)
        return self.T[JOINT_STATE](self.header(ns), list(names), np.asarray(q, np.float64), empty, empty)

    def pose_stamped(self, pose: np.ndarray, ns: int, frame_id: str):
        row = np.concatenate([pose[:3, 3], quaternion_from_matrix(pose[:3, :3])])
        return self.T[POSE_STAMPED](self.header(ns, frame_id), self.pose(row))

    def hand_target(self, action: HandAction, ns: int, frame_id: str):
        return self.T[POSE_ARRAY](self.header(ns, frame_id), [self.pose(r) for r in hand_target_poses(action)])

    def string(self, text: str):
        return self.T[STRING](text)


def export_episode(
    episode: Episode | str | Path,
    bag: str | Path,
    *,
    image_topic: str,
    joint_topic: str,
    wrist_topic: str,
    action_topic: str,
    hand=None,
    storage: str = "mcap",
    frame_id: str = "world",
    progress: bool = False,
) -> Path:
    """Write one episode as a rosbag2 bag directory ``bag`` (see the module docstring); returns it.

    ``hand`` (a :class:`~humanprompt_ros.hand.hand.Hand`; robot episodes only) defaults to the one
    named in ``meta.json`` (``config/hands/<hand>.yaml``). ``bag`` must not exist yet.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    ep = episode if isinstance(episode, Episode) else load_episode(episode)
    if storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r} (valid: {', '.join(STORAGES)})")
    bag = Path(bag)
    if bag.exists():
        raise ValueError(f"{bag}: already exists, not overwriting")
    where = ep.path or ep.video_path
    actions, proprio, joints = ep.actions, ep.proprio, ep.joints
    if actions is None or proprio is None:
        raise ValueError(f"episode {where}: an export needs actions.npy and proprio.npy")
    steps = len(proprio)
    if len(actions) != steps - 1:
        raise ValueError(f"episode {where}: {len(actions)} actions for {steps} states (expected T and T+1)")
    if joints is not None:
        hand = hand or _episode_hand(ep)
        names = list(ep.meta.get("joint_names") or hand.joint_names)
        if joints.shape != (steps, len(names)):
            raise ValueError(f"episode {where}: joints.npy is {joints.shape}, expected ({steps}, {len(names)})")
        bases = [hand.base_pose_for(HandAction.from_array(p)) for p in proprio]
    else:  # a human hand: its base is the wrist frame
        bases = [HandAction.from_array(p).wrist_pose for p in proprio]
    targets = actions_from_array(actions, ep.mask)

    ts = _typestore()
    m = _Msgs(ts)
    period = 1e9 / ep.fps
    bag.parent.mkdir(parents=True, exist_ok=True)
    writer = Writer(bag, version=Writer.VERSION_LATEST, storage_plugin=getattr(StoragePlugin, storage.upper()))
    try:
        with writer:
            add = lambda topic, msgtype: writer.add_connection(topic, msgtype, typestore=ts)
            c_meta, c_image, c_wrist, c_action = (
                add(META_TOPIC, STRING),
                add(image_topic, IMAGE),
                add(wrist_topic, POSE_STAMPED),
                add(action_topic, POSE_ARRAY),
            )
            c_joints = add(joint_topic, JOINT_STATE) if joints is not None else None
            put = lambda conn, ns, msg: writer.write(conn, ns, ts.serialize_cdr(msg, conn.msgtype))
            put(c_meta, 0, m.string(json.dumps(ep.meta, default=lambda o: o.tolist())))
            with progress_bar(total=steps, desc=f"export {ep.task or where}", enabled=progress) as bar:
                for t, frame in enumerate(_frames(ep, steps)):
                    ns = int(round(t * period))
                    put(c_image, ns, m.image(frame, ns, frame_id))
                    if c_joints is not None:
                        put(c_joints, ns, m.joint_state(names, joints[t], ns))
                    put(c_wrist, ns, m.pose_stamped(bases[t], ns, frame_id))
                    if t < steps - 1:
                        put(c_action, ns, m.hand_target(targets[t], ns, frame_id))
                    bar.update()
    except BaseException:
        shutil.rmtree(bag, ignore_errors=True)  # no half-written bag
        raise
    return bag


def _frames(ep: Episode, steps: int) -> Iterator[np.ndarray]:
    count = 0
    for frame in ep.iter_frames():
        if count == steps:
            break
        count += 1
        yield frame
    if count != steps:
        raise ValueError(f"episode {ep.path}: the video has {count} frames for {steps} states")


def _episode_hand(ep: Episode):
    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.paths import config_path

    name = ep.meta.get("hand")
    path = config_path("hands", f"{name}.yaml")
    if not name or not path.is_file():
        raise ValueError(f"episode {ep.path}: no hand YAML for its hand {name!r} ({path}); give one (--hand)")
    return load_hand(path)


def export_dataset(root: str | Path, out: str | Path, *, progress: bool = False, **kwargs: Any) -> list[Path]:
    """Export every episode under ``root`` to ``out/<episode path relative to root>`` (one bag each)."""
    root, out = Path(root), Path(out)
    episodes = list(iter_episodes(root))
    if not episodes:
        raise ValueError(f"{root}: no episodes")
    bags = []
    with progress_bar(total=len(episodes), desc="episodes", enabled=progress) as bar:
        for ep in episodes:
            bags.append(export_episode(ep, out / ep.path.relative_to(root), **kwargs))
            bar.update()
    return bags
