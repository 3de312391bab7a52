"""``humanprompt-data``: rosbag2 bags and LeRobot datasets ↔ dataset episodes (no ROS install needed).

::

    humanprompt-data import-bag recording/ --task open_drawer --out data/real
    humanprompt-data export-bag data/sim/open_drawer/robot/0000000 --out bags/open_drawer_0
    humanprompt-data export-bag data/sim --out bags/ --storage sqlite3     # a dataset: one bag per episode
    humanprompt-data export-lerobot data/sim --out lerobot/sim --repo-id me/humanprompt_sim
    humanprompt-data import-lerobot lerobot/sim --out data/from_lerobot

The work is in :mod:`humanprompt_ros.rosbag` and :mod:`humanprompt_ros.lerobot`; this module parses
arguments, takes the default topic names from the stack's topic table and prints what it wrote. Exit code
2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from humanprompt_ros.ros import topics

DEFAULT_HAND = "config/hands/allegro_right.yaml"


def _topic_args(p: argparse.ArgumentParser, action_help: str) -> None:
    p.add_argument(
        "--image-topic",
        default=topics.OBSERVATION.name,
        help="sensor_msgs/Image (import: also CompressedImage) (default %(default)s)",
    )
    p.add_argument(
        "--joint-topic", default=topics.JOINT_STATES.name, help="sensor_msgs/JointState (default %(default)s)"
    )
    p.add_argument(
        "--wrist-topic",
        default=topics.WRIST_POSE.name,
        help="geometry_msgs/PoseStamped: the hand's base_link in the world (default %(default)s)",
    )
    p.add_argument("--action-topic", default=None, help=action_help)


def _hand(value: str | None):
    from humanprompt_ros.hand.hand import load_hand
    from humanprompt_ros.paths import resolve_hand_path

    return load_hand(resolve_hand_path(value)) if value else None


def cmd_import(args: argparse.Namespace) -> int:
    from humanprompt_ros.rosbag import import_bag

    out = import_bag(
        args.bag,
        args.out,
        _hand(args.hand),
        image_topic=args.image_topic,
        joint_topic=args.joint_topic,
        wrist_topic=args.wrist_topic,
        action_topic=args.action_topic or topics.HAND_TARGET.name,
        require_action=args.action_topic is not None,
        task=args.task,
        fps=args.fps,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(out)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from humanprompt_ros.data import META_FILE
    from humanprompt_ros.rosbag import export_dataset, export_episode

    kwargs = dict(
        image_topic=args.image_topic,
        joint_topic=args.joint_topic,
        wrist_topic=args.wrist_topic,
        action_topic=args.action_topic or topics.HAND_TARGET.name,
        hand=_hand(args.hand),
        storage=args.storage,
        progress=not args.quiet,
    )
    if (args.source / META_FILE).is_file():
        print(export_episode(args.source, args.out, **kwargs))
    else:
        for bag in export_dataset(args.source, args.out, **kwargs):
            print(bag)
    return 0


def cmd_export_lerobot(args: argparse.Namespace) -> int:
    from humanprompt_ros.lerobot import export_lerobot

    source = args.source[0] if len(args.source) == 1 else args.source
    print(export_lerobot(source, args.out, fps=args.fps, repo_id=args.repo_id, progress=not args.quiet))
    return 0


def cmd_import_lerobot(args: argparse.Namespace) -> int:
    from humanprompt_ros.lerobot import import_lerobot

    for episode in import_lerobot(args.source, args.out, progress=not args.quiet):
        print(episode)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="humanprompt-data", description=__doc__.split("\n")[0].strip("`: "))
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("import-bag", help="a rosbag2 recording (MCAP or sqlite3) → a robot episode")
    p.add_argument("bag", type=Path, help="bag directory (with metadata.yaml), or a .mcap / .db3 file")
    p.add_argument("--out", type=Path, required=True, help="dataset root: writes <out>/<task>/robot/<seed>/")
    p.add_argument("--task", default=None, help="task name (default: the one in the bag's episode metadata)")
    p.add_argument("--hand", default=DEFAULT_HAND, help="hand YAML (default %(default)s)")
    p.add_argument("--fps", type=float, default=10.0, help="resampling rate, frames per second (default 10)")
    p.add_argument("--seed", type=int, default=None, help="episode number (default: the bag's, else the next free)")
    _topic_args(
        p,
        f"unified actions: PoseArray hand target or 24-float Float64MultiArray (default {topics.HAND_TARGET.name} "
        "when the bag has it, else action t = the measured state t+1; a topic named here must be in the bag)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export-bag", help="an episode, or every episode under a dataset root → rosbag2 bag(s)")
    p.add_argument("source", type=Path, help="episode directory (with meta.json) or dataset root")
    p.add_argument("--out", type=Path, required=True, help="bag directory to create; for a dataset, a folder of bags")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="default %(default)s")
    p.add_argument("--hand", default=None, help="hand YAML of robot episodes (default: config/hands/<meta hand>.yaml)")
    _topic_args(p, f"unified actions as a PoseArray hand target (default {topics.HAND_TARGET.name})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("export-lerobot", help="a dataset root or episodes → a LeRobot dataset (v3.0)")
    p.add_argument("source", type=Path, nargs="+", help="dataset root, or one or more episode directories")
    p.add_argument("--out", type=Path, required=True, help="the LeRobot dataset directory to create (new or empty)")
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help="the dataset's frame rate, a whole number (default: the episodes'; episodes at another rate are "
        "resampled in time and re-encoded)",
    )
    p.add_argument("--repo-id", default=None, help="the dataset's Hub name for its card (default humanprompt/<out>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export_lerobot)

    p = sub.add_parser("import-lerobot", help="a LeRobot dataset (v3.0) → episodes under a dataset root")
    p.add_argument("source", type=Path, help="LeRobot dataset directory (with meta/info.json)")
    p.add_argument("--out", type=Path, required=True, help="dataset root to write the episodes under")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_import_lerobot)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"humanprompt-data {args.cmd}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
