"""Load a ``humanprompt-data export-lerobot`` dataset with LeRobot's own ``LeRobotDataset`` and check it.

Run with a Python that has ``lerobot`` (not this package's environment: lerobot pins torch<2.11); this script
imports nothing of humanprompt_ros::

    python benchmarks/validate_lerobot_export.py LEROBOT_DIR [--repo-id NAME]

It loads the metadata (codebase version, fps, features, tasks) and every frame through
``LeRobotDataset.__getitem__`` (video decoded by LeRobot's backend at the row's timestamp), and compares each
item with the parquet rows read by pyarrow and with the episode's video decoded by imageio's ffmpeg
(frame by frame, exact H.264 decoding: differences come only from the YUV→RGB conversion of two decoders).
Prints one line per check and ``N passed, N failed``; exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

FRAME_TOLERANCE = 3  # max |Δ| in 0..255 between two decoders' RGB of the same H.264 frame


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--repo-id", default="humanprompt/validate")
    ap.add_argument("--backend", default=None, help="LeRobot video backend (default: LeRobot's choice)")
    args = ap.parse_args()

    import imageio.v2 as imageio
    import lerobot
    import pyarrow.parquet as pq
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    results: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        results.append((name, bool(ok), detail))
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")

    info = json.loads((args.root / "meta/info.json").read_text())
    ds = LeRobotDataset(args.repo_id, root=args.root, video_backend=args.backend)
    print(f"lerobot {getattr(lerobot, '__version__', '?')}, backend {ds.video_backend}, {args.root}")
    check("codebase_version", ds.meta.info["codebase_version"] == "v3.0", ds.meta.info["codebase_version"])
    check("fps", ds.fps == info["fps"], str(ds.fps))
    check("episodes", ds.num_episodes == info["total_episodes"], str(ds.num_episodes))
    check("frames", len(ds) == ds.num_frames == info["total_frames"], str(len(ds)))
    check("video keys", ds.meta.video_keys == ["observation.image"], str(ds.meta.video_keys))
    check("stats loaded", set(ds.meta.stats) >= {"observation.state", "action", "observation.image"})

    rows = pq.read_table(sorted((args.root / "data").glob("*/*.parquet"))[0]).to_pylist()
    for f in sorted((args.root / "data").glob("*/*.parquet"))[1:]:
        rows += pq.read_table(f).to_pylist()
    rows = {r["index"]: r for r in rows}
    videos: dict[int, np.ndarray] = {}
    worst_state = worst_frame = 0.0
    bad_tasks = 0
    for i in range(len(ds)):
        item = ds[i]
        row = rows[int(item["index"])]
        ep = int(item["episode_index"])
        worst_state = max(
            worst_state,
            float(np.abs(item["observation.state"].numpy() - np.asarray(row["observation.state"])).max()),
            float(np.abs(item["action"].numpy() - np.asarray(row["action"])).max()),
        )
        if ep not in videos:
            path = args.root / ds.meta.get_video_file_path(ep, "observation.image")
            videos[ep] = np.stack([np.asarray(f)[..., :3] for f in imageio.get_reader(path)])
        frame = (item["observation.image"].numpy().transpose(1, 2, 0) * 255).round()
        worst_frame = max(worst_frame, float(np.abs(frame - videos[ep][int(item["frame_index"])]).max()))
        expected = ds.meta.tasks.iloc[int(row["task_index"])].name
        bad_tasks += item["task"] != expected or not isinstance(item["task"], str)
    check("state and action = parquet rows", worst_state == 0.0, f"max |Δ| {worst_state}")
    check(
        "frames = the episode video's frames",
        worst_frame <= FRAME_TOLERANCE,
        f"max |Δ| {worst_frame:g} (tolerance {FRAME_TOLERANCE})",
    )
    check("task strings", bad_tasks == 0, f"{ds.meta.tasks.index.tolist()}")
    last = ds.num_episodes - 1
    sub = LeRobotDataset(args.repo_id, root=args.root, episodes=[last], video_backend=args.backend)
    length = ds.meta.episodes[last]["length"]
    first = sub[0]
    check(
        "one episode alone (episodes=[last])",
        len(sub) == length and int(first["episode_index"]) == last and int(first["frame_index"]) == 0,
        f"{len(sub)} frames",
    )
    passed = sum(ok for _, ok, _ in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
