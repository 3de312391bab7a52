#!/usr/bin/env python3
"""Retargeting and FK speed/accuracy: the project's fingertip IK next to a raw dex-retargeting call.

    python benchmarks/bench_retarget.py [--hand config/hands/allegro_right.yaml] [--samples 500]

Same inputs for both: random joint configurations within limits → fk → fingertip targets. Each
solver is warm-started from its previous solution (the sequential use both are built for). The
dex-retargeting call is timed alone (its optimizer's retarget on a precomputed reference), with
scaling 1.0 since the targets are the robot's own fingertips.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from humanprompt_ros.hand.hand import Hand, load_hand
from humanprompt_ros.hand.retargeting import _TIP_LANDMARK
from humanprompt_ros.paths import config_path


def stats(errors_m: list[float], times_s: list[float]) -> str:
    e, t = np.asarray(errors_m) * 1e3, np.asarray(times_s) * 1e3
    return (
        f"error median {np.median(e):7.4f} mm  p95 {np.percentile(e, 95):7.4f} mm  max {e.max():7.3f} mm | "
        f"{np.median(t):6.2f} ms/call median, {t.mean():6.2f} mean ({1e3 / t.mean():7.1f} calls/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hand", default=str(config_path("hands", "allegro_right.yaml")))
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    base = load_hand(args.hand)
    hand = Hand(
        dataclasses.replace(base.config, retargeting=dataclasses.replace(base.config.retargeting, scaling=1.0)),
        base.urdf_path.parent,
        args.hand,
    )
    rng = np.random.default_rng(args.seed)
    lo, hi = hand.joint_limits
    qs = rng.uniform(lo, hi, size=(args.samples, hand.num_joints))

    t0 = time.perf_counter()
    targets = [hand.fk(q) for q in qs]
    fk_s = (time.perf_counter() - t0) / len(qs)

    # The project's fingertip IK through the public API (warm start = previous solution).
    ik_err, ik_t = [], []
    for tgt in targets:
        t = time.perf_counter()
        q = hand.retarget(tgt)
        ik_t.append(time.perf_counter() - t)
        ik_err.extend(np.linalg.norm(hand.fk(q).fingertips - tgt.fingertips, axis=1)[hand.mask])

    # Raw dex-retargeting (vector optimizer) on the same targets.
    dex = hand.retargeter("vector")
    seq, bTw = dex._seq, hand.base_T_wrist
    idx = seq.optimizer.target_link_human_indices
    refs = []
    for tgt in targets:
        kp = np.zeros((21, 3))
        kp[0] = bTw[:3, 3]
        for f, p in zip(hand.fingers, tgt.fingertips[hand.mask] @ bTw[:3, :3].T + bTw[:3, 3]):
            kp[_TIP_LANDMARK[f]] = p
        refs.append(kp[idx[1]] - kp[idx[0]])
    dex_err, dex_t = [], []
    to_ours = dex._to_ours
    for tgt, ref in zip(targets, refs):
        t = time.perf_counter()
        q_full = seq.retarget(ref)
        dex_t.append(time.perf_counter() - t)
        q = np.clip(q_full[to_ours], lo, hi)
        dex_err.extend(np.linalg.norm(hand.fk(q).fingertips - tgt.fingertips, axis=1)[hand.mask])

    print(
        f"hand {hand.name}: {hand.num_joints} joints, {len(hand.fingers)} fingertips, {args.samples} samples, seed {args.seed}"
    )
    print(f"fk                      : {fk_s * 1e3:6.3f} ms/call ({1 / fk_s:8.0f} calls/s)")
    print(f"retarget fingertip_ik   : {stats(ik_err, ik_t)}")
    print(f"raw dex-retargeting vec : {stats(dex_err, dex_t)}")
    print(f"speed ratio (dex / ik, mean time per call): {np.mean(dex_t) / np.mean(ik_t):.2f}x")


if __name__ == "__main__":
    main()
