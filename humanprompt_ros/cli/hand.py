"""``humanprompt-hand``: check that a hand is set up (joints, limits, fingertips, round trip), and extract a human
episode from a real video of a hand (MediaPipe landmarks → metric keypoints → unified actions)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from humanprompt_ros.action import FINGERS
from humanprompt_ros.paths import share_dir


def round_trip(hand, samples: int, seed: int, method: str | None = None) -> dict[str, float]:
    """Random q within limits → fk → retarget → fk; fingertip errors (mm) over unmasked fingers."""
    rng = np.random.default_rng(seed)
    lo, hi = hand.joint_limits
    errors, times = [], []
    for _ in range(samples):
        target = hand.fk(rng.uniform(lo, hi))
        t0 = time.perf_counter()
        q = hand.retarget(target, method=method)
        times.append(time.perf_counter() - t0)
        err = np.linalg.norm(hand.fk(q).fingertips - target.fingertips, axis=1)[hand.mask]
        errors.extend(err.tolist())
    e = np.asarray(errors) * 1e3
    t = np.asarray(times) * 1e3
    return {
        "median_mm": float(np.median(e)),
        "p95_mm": float(np.percentile(e, 95)),
        "max_mm": float(e.max()),
        "ms_median": float(np.median(t)),
        "ms_mean": float(t.mean()),
    }


def cmd_check(args: argparse.Namespace) -> int:
    from humanprompt_ros.hand.hand import load_hand

    try:
        hand = load_hand(args.config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lo, hi = hand.joint_limits
    print(f"hand {hand.name}: {hand.urdf_path}")
    print(
        f"  base_link {hand.config.base_link}, {hand.num_joints} actuated joints"
        + (f", {len(hand.urdf.mimics)} mimic" if hand.urdf.mimics else "")
    )
    for name, a, b in zip(hand.joint_names, lo, hi):
        print(f"    {name:<24} [{a:+.3f}, {b:+.3f}]")
    for finger in FINGERS:
        link = hand.config.fingertip_links.get(finger)
        print(f"  {finger:<7} {link if link else '(masked: the hand has no such finger)'}")
    stats = round_trip(hand, args.samples, args.seed)
    print(
        f"  round trip fk → retarget ({hand.config.retargeting.type}) → fk over {args.samples} random "
        f"configurations: fingertip error median {stats['median_mm']:.4f} mm, p95 {stats['p95_mm']:.4f} mm, "
        f"max {stats['max_mm']:.4f} mm; {stats['ms_median']:.2f} ms per call (median)"
    )
    ok = stats["median_mm"] < 1.0 and stats["p95_mm"] < 5.0
    print(
        "  OK" if ok else "  WARNING: round trip error above 1 mm median / 5 mm p95: check fingertip_links and limits"
    )
    return 0 if ok else 1


def cmd_list(_: argparse.Namespace) -> int:
    for path in sorted((share_dir() / "config" / "hands").glob("*.yaml")):
        print(path)
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from humanprompt_ros.hand.video_pose import MediaPipeMissing, extract_episode, load_hand_video_config

    overrides = list(args.set)
    if args.max_gap is not None:
        overrides.append(f"max_gap={args.max_gap}")
    if args.smoothing is not None:
        overrides.append(f"smoothing.method={args.smoothing}")
    if args.mirrored:
        overrides.append("mirrored=true")
    try:
        cfg = load_hand_video_config(args.config, overrides)
        result = extract_episode(
            args.video,
            args.out,
            task=args.task,
            handedness=args.hand,
            intrinsics=args.intrinsics,
            config=cfg,
            sheet=not args.no_sheet,
            progress=not args.quiet,
            overwrite=args.force,
        )
    except (MediaPipeMissing, ValueError) as exc:  # no mediapipe; a bad video, config, intrinsics or output
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"episode {result.path}: {result.frames} frames, the {args.hand} hand detected in {result.detected}, "
        f"interpolated in {result.interpolated}, missing (marked invalid) in {result.invalid}; "
        f"{result.seconds:.1f} s ({result.frames_per_second:.1f} frames/s)"
    )
    if result.sheet is not None:
        print(f"contact sheet (check the landmarks): {result.sheet}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="humanprompt-hand", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="print joints, limits, fingertip links and a round-trip error")
    p.add_argument("config", type=Path, help="hand YAML, e.g. config/hands/allegro_right.yaml")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("list", help="list the shipped hand configs")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser(
        "extract",
        help="a video of a human hand → a human episode (MediaPipe landmarks, PnP, unified actions; needs .[human])",
        description="Extract the hand pose from a real video into a human episode: MediaPipe hand landmarks, the "
        "metric pose in the camera frame by PnP, smoothing, short gaps interpolated, unified actions, and a contact "
        "sheet (sheet.png) to check the landmarks. docs/hands.md, 'Hand pose from a real video'.",
    )
    p.add_argument("video", type=Path, help="the video file")
    p.add_argument("--out", type=Path, required=True, help="the episode directory to write")
    p.add_argument("--task", default="human_video", help="the episode's task name (default: human_video)")
    p.add_argument("--hand", choices=("right", "left"), default="right", help="which hand to follow (default: right)")
    p.add_argument(
        "--intrinsics",
        type=Path,
        default=None,
        help="camera intrinsics YAML (config/camera_intrinsics.yaml's keys or a ROS camera_info YAML); "
        "default: a 60 degree horizontal field of view at the video's size",
    )
    p.add_argument("--config", type=Path, default=None, help="extraction settings (default: config/hand_video.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--max-gap", type=int, default=None, help="longest gap (frames) without the hand to interpolate")
    p.add_argument("--smoothing", choices=("one_euro", "ema", "none"), default=None, help="temporal filter")
    p.add_argument("--mirrored", action="store_true", help="the video is a mirrored selfie view")
    p.add_argument("--no-sheet", action="store_true", help="do not draw the contact sheet")
    p.add_argument("--force", action="store_true", help="overwrite an episode already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_extract)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
