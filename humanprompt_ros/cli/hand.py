"""``humanprompt-hand``: check that a hand is set up (joints, limits, fingertips, round trip)."""

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
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
