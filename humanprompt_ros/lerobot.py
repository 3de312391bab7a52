"""LeRobot datasets (codebase version v3.0) ↔ episodes of the dataset format (:mod:`humanprompt_ros.data`).

Written and read with ``pyarrow`` alone: the ``lerobot`` package pins ``torch<2.11`` and would replace this
stack's torch, so it is not a dependency (``benchmarks/validate_lerobot_export.py`` loads an export with
LeRobot's own ``LeRobotDataset`` in a separate environment). The command line is ``humanprompt-data
export-lerobot`` / ``import-lerobot`` (:mod:`humanprompt_ros.cli.data`); ``docs/ros.md`` has the reference.

**Export** (:func:`export_lerobot`) writes LeRobot's v3.0 layout::

    <out>/
      meta/info.json              codebase_version "v3.0", fps, features, path templates, totals, splits
      meta/stats.json             per feature: min, max, mean, std, count, q01 … q99 (images: per channel, in [0, 1])
      meta/tasks.parquet          the task strings (the pandas index, column "task") → task_index
      meta/episodes/chunk-000/file-000.parquet   a row per episode: length, tasks, where its rows and video
                                  are (data/…, videos/observation.image/…, dataset_from/to_index), stats/…
      data/chunk-000/file-000.parquet            a row per frame (files of up to 100 MB)
      videos/observation.image/chunk-000/file-000.mp4   an episode's video stream, copied (not re-encoded)
      meta/humanprompt_episodes.jsonl           sidecar: per episode its meta.json and path in the source tree
      meta/humanprompt_arrays/episode-000000.npz sidecar: its other arrays (joints, keypoints, state, …)
      README.md                   a dataset card naming the repo_id

Features: ``observation.image`` (video, H×W×3), ``observation.state`` (the 24-D proprio), ``action`` (the 24-D
unified action), ``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``. The task is the
episode's ``description`` (else its ``task``). Row t is frame t, proprio t and action t; an episode's last row
(its final state, which has no action of its own: T+1 frames, T actions) repeats action T−1, and import drops
it. Each episode's video is one file, its H.264 stream copied bit for bit, so frames survive a round trip
exactly; an episode at another rate than ``fps`` is resampled in time (the frame nearest each tick, as
:func:`humanprompt_ros.video.time_indices`; action k the command that reaches frame k+1's state) and
re-encoded, and its sidecar meta says so (``lerobot.resampled_from_fps``).

**Import** (:func:`import_lerobot`) writes one episode per LeRobot episode: with the sidecar, at its path in
the source tree with its meta.json and arrays unchanged; without (a dataset made elsewhere), at
``<task>/robot/<episode_index:07d>`` with a meta built from info.json and the task string. A video file that
holds only this episode is copied; a shared one (LeRobot's own exports concatenate episodes) is decoded over
the episode's span and encoded as every episode is.

Export and import are one module: they share the layout (path templates, feature names, the row alignment
and the sidecar), which must change on both sides at once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from humanprompt_ros.action import ACTION_DIM, FINGERS
from humanprompt_ros.data import META_FILE, VIDEO_FILE, Episode, iter_episodes, load_episode, write_episode
from humanprompt_ros.progress import progress as progress_bar
from humanprompt_ros.video import probe, read_frames, remux_video, time_indices, write_video

CODEBASE_VERSION = "v3.0"
VIDEO_KEY = "observation.image"
STATE_KEY = "observation.state"
ACTION_KEY = "action"
INDEX_KEYS = ("frame_index", "episode_index", "index", "task_index")
CHUNKS_SIZE = 1000  # files per chunk directory
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
SIDECAR_PATH = "meta/humanprompt_episodes.jsonl"
ARRAYS_PATH = "meta/humanprompt_arrays/episode-{episode_index:06d}.npz"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STATS_FRAMES = 100  # frames per episode sampled for the image statistics
UNIFIED_NAMES = [
    *(f"wrist_{a}" for a in "xyz"),
    *(f"wrist_rot6d_{i}" for i in range(6)),
    *(f"{f}_{a}" for f in FINGERS for a in "xyz"),
]
_OWN_ARRAYS = ("actions", "proprio")  # in the parquet rows; every other <name>.npy goes to the sidecar


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ValueError("LeRobot datasets need pyarrow: pip install pyarrow") from None
    return pa


# -- export ----------------------------------------------------------------------------------------------
def _episodes(source: str | Path | Sequence[str | Path]) -> list[tuple[Episode, Path]]:
    """The episodes to export with their path in the exported tree: under a dataset root, relative to it;
    a lone episode (or a list), ``<task>/<embodiment>/<seed:07d>``."""
    if isinstance(source, (str, Path)) and not (Path(source) / META_FILE).is_file():
        root = Path(source)
        found = [(ep, ep.path.relative_to(root)) for ep in iter_episodes(root)]
        if not found:
            raise ValueError(f"{root}: no episodes (directories with {META_FILE}) found")
        return found
    paths = [source] if isinstance(source, (str, Path)) else list(source)
    if not paths:
        raise ValueError("no episodes given")
    return [(ep, _layout(ep.meta, ep.seed)) for ep in map(load_episode, paths)]


def _layout(meta: dict[str, Any], number: Any) -> Path:
    """``<task>/<embodiment>/<number:07d>``, the ``humanprompt-sim generate`` layout."""
    n = int(number) if isinstance(number, (int, np.integer)) else 0
    return Path(_slug(str(meta.get("task") or "task"))) / _slug(str(meta.get("embodiment") or "robot")) / f"{n:07d}"


def _slug(text: str) -> str:
    """A path-safe name: lower case, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:80] or "task"


def _check(ep: Episode) -> tuple[int, np.ndarray, np.ndarray]:
    """(frame count, actions, proprio) of an exportable episode, else ``ValueError`` naming it and why."""
    where = ep.path
    if ep.video_path is None:
        raise ValueError(f"{where}: the episode has no {VIDEO_FILE}")
    actions, proprio = ep.actions, ep.proprio
    if actions is None or proprio is None:
        raise ValueError(f"{where}: the episode has no {'actions' if actions is None else 'proprio'}.npy")
    frames = ep.video_info.frames
    if actions.shape[1:] != (ACTION_DIM,) or proprio.shape[1:] != (ACTION_DIM,):
        raise ValueError(f"{where}: actions {actions.shape} and proprio {proprio.shape} must be (T, {ACTION_DIM})")
    if not len(proprio) == frames == len(actions) + 1:
        raise ValueError(
            f"{where}: {frames} video frames, {len(proprio)} proprio rows and {len(actions)} actions "
            "(the format has T+1 frames and proprio rows for T actions)"
        )
    return frames, actions, proprio


def _rate(episodes: list[Episode], fps: float | None) -> int:
    """The dataset's frame rate: ``fps``, else the episodes' common rate; LeRobot's is an integer."""
    if fps is None:
        rates = sorted({ep.fps for ep in episodes})
        if len(rates) > 1:
            raise ValueError(f"the episodes have different frame rates {rates}: choose one with --fps")
        fps = rates[0]
    if fps <= 0 or abs(fps - round(fps)) > 1e-6:
        raise ValueError(f"a LeRobot dataset's frame rate is a whole number of frames per second, not {fps:g}")
    return int(round(fps))


def resample(n: int, fps: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """An episode of ``n`` frames at ``fps`` at ``rate``: (the frames kept, the action kept for each step).

    Frames: nearest in time (:func:`~humanprompt_ros.video.time_indices`). Action k: the source action that
    leads to kept frame k+1 (``keep[k+1] − 1``, not before ``keep[k]``): unified actions are absolute hand
    targets, so this is the command that reaches the next kept state."""
    keep = time_indices(n, fps, rate)
    acts = np.maximum(keep[:-1], keep[1:] - 1).clip(0, max(n - 2, 0))
    return keep, acts


def _stats(x: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """LeRobot's statistics of a feature's values ``x`` (N, ...): per dimension; images (N, H, W, 3) uint8
    per channel in [0, 1], shaped (3, 1, 1), subsampled to about 150 pixels a side as LeRobot does."""
    count = len(x)
    if image:
        step = max(1, min(x.shape[1:3]) // 150)
        flat = x[:, ::step, ::step].reshape(-1, 3).astype(np.float64) / 255.0
    else:
        flat = x.reshape(count, -1).astype(np.float64)
    out = {"min": flat.min(0), "max": flat.max(0), "mean": flat.mean(0), "std": flat.std(0)}
    out.update({f"q{round(q * 100):02d}": np.quantile(flat, q, axis=0) for q in QUANTILES})
    if image:
        out = {k: v.reshape(3, 1, 1) for k, v in out.items()}
    out["count"] = np.array([count])
    return out


def _aggregate(stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Statistics of several episodes' together: count-weighted means, variances and quantiles (quantiles
    are approximate, as LeRobot's own aggregation)."""
    counts = np.array([float(s["count"][0]) for s in stats])
    w = counts / counts.sum()
    mean = sum(wi * s["mean"] for wi, s in zip(w, stats))
    second = sum(wi * (s["std"] ** 2 + s["mean"] ** 2) for wi, s in zip(w, stats))
    out = {
        "min": np.min([s["min"] for s in stats], axis=0),
        "max": np.max([s["max"] for s in stats], axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(second - mean**2, 0.0)),
        "count": np.array([int(counts.sum())]),
    }
    for q in QUANTILES:
        key = f"q{round(q * 100):02d}"
        out[key] = sum(wi * s[key] for wi, s in zip(w, stats))
    return out


def _json_stats(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def _features(height: int, width: int, rate: int, codec: str, pix_fmt: str) -> dict[str, dict[str, Any]]:
    video_info = {
        "video.height": height,
        "video.width": width,
        "video.codec": codec,
        "video.pix_fmt": pix_fmt,
        "video.is_depth_map": False,
        "video.fps": rate,
        "video.channels": 3,
        "has_audio": False,
    }
    vector = {"dtype": "float32", "shape": [ACTION_DIM], "names": UNIFIED_NAMES}
    return {
        VIDEO_KEY: {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": video_info,
        },
        STATE_KEY: dict(vector),
        ACTION_KEY: dict(vector),
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        **{k: {"dtype": "int64", "shape": [1], "names": None} for k in INDEX_KEYS},
    }


def _stream_format(path: Path) -> tuple[str, str]:
    """(codec, pixel format) of a video file's first stream, as ffmpeg names them."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(path)
    try:
        meta = reader.get_meta_data()
    finally:
        reader.close()
    return str(meta.get("codec", "h264")), str(meta.get("pix_fmt", "yuv420p")).split("(")[0].strip()


def _chunk_file(n: int) -> dict[str, int]:
    return {"chunk_index": n // CHUNKS_SIZE, "file_index": n % CHUNKS_SIZE}


class _DataWriter:
    """Frame rows into ``data/chunk-*/file-*.parquet``, a new file when one reaches the size limit."""

    def __init__(self, out: Path, schema):
        import pyarrow.parquet as pq

        self._pq, self.out, self.schema = pq, out, schema
        self.file, self.rows, self.writer = 0, 0, None
        row_bytes = 2 * ACTION_DIM * 4 + 4 + 8 * len(INDEX_KEYS)
        self.max_rows = DATA_FILES_SIZE_IN_MB * 2**20 // row_bytes

    def write(self, table) -> dict[str, int]:
        """Write an episode's rows; returns its ``data/chunk_index`` and ``data/file_index``."""
        if self.writer is not None and self.rows + table.num_rows > self.max_rows:
            self.close()
            self.file += 1
        if self.writer is None:
            path = self.out / DATA_PATH.format(**_chunk_file(self.file))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer, self.rows = self._pq.ParquetWriter(path, self.schema, compression="snappy"), 0
        self.writer.write_table(table)
        self.rows += table.num_rows
        return {f"data/{k}": v for k, v in _chunk_file(self.file).items()}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _write_tasks(pa, out: Path, tasks: dict[str, int]) -> None:
    """meta/tasks.parquet: columns task_index and task, with the pandas metadata that makes ``task`` the index
    (LeRobot reads it with pandas and looks tasks up by ``tasks.iloc[i].name``)."""
    import pyarrow.parquet as pq

    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64"},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object"},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": list(tasks)})
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), out / TASKS_PATH)


def export_lerobot(
    source: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    fps: float | None = None,
    repo_id: str | None = None,
    progress: bool = False,
) -> Path:
    """A dataset root, an episode, or a list of episodes → a LeRobot v3.0 dataset at ``out`` (a directory
    that does not exist yet or is empty; see the module docstring). Returns ``out``."""
    pa = _pa()
    import pyarrow.parquet as pq

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: already exists and is not an empty directory")
    pairs = _episodes(source)
    checked = [_check(ep) for ep, _ in pairs]
    sizes = {(ep.video_info.height, ep.video_info.width) for ep, _ in pairs}
    if len(sizes) > 1:
        raise ValueError(f"the episodes' frames have different sizes {sorted(sizes)}: LeRobot has one per camera")
    (height, width), rate = sizes.pop(), _rate([ep for ep, _ in pairs], fps)
    codec, pix_fmt = _stream_format(pairs[0][0].video_path)
    repo_id = repo_id or f"humanprompt/{out.name}"
    vector = pa.list_(pa.float32(), ACTION_DIM)
    schema = pa.schema(
        [(STATE_KEY, vector), (ACTION_KEY, vector), ("timestamp", pa.float32())] + [(k, pa.int64()) for k in INDEX_KEYS]
    )

    out.mkdir(parents=True, exist_ok=True)
    (out / "meta").mkdir(exist_ok=True)
    tasks: dict[str, int] = {}
    episode_rows, sidecar, all_stats = [], [], []
    data, total = _DataWriter(out, schema), 0
    try:
        with progress_bar(total=len(pairs), desc="export episodes", enabled=progress) as bar:
            for i, ((ep, rel), (n, actions, proprio)) in enumerate(zip(pairs, checked)):
                meta, extra = dict(ep.meta), _extra_arrays(ep)
                video = out / VIDEO_PATH.format(video_key=VIDEO_KEY, **_chunk_file(i))
                if abs(ep.fps - rate) > 1e-9:
                    keep, acts = resample(n, ep.fps, rate)
                    write_video(video, read_frames(ep.video_path, keep), rate)
                    extra = {k: v[keep] if len(v) == n else v for k, v in extra.items()}
                    actions, proprio, n = actions[acts], proprio[keep], len(keep)
                    meta.update(fps=float(rate), num_frames=n, num_actions=n - 1)
                    meta["lerobot"] = {"resampled_from_fps": ep.fps}
                else:
                    remux_video(ep.video_path, video)
                task = str(meta.get("description") or meta.get("task") or "")
                task_index = tasks.setdefault(task, len(tasks))
                padded = np.concatenate([actions, actions[-1:] if len(actions) else np.zeros((1, ACTION_DIM))])
                columns = {
                    STATE_KEY: np.asarray(proprio, np.float32),
                    ACTION_KEY: padded.astype(np.float32),
                    "timestamp": (np.arange(n) / rate).astype(np.float32),
                    "frame_index": np.arange(n),
                    "episode_index": np.full(n, i),
                    "index": np.arange(total, total + n),
                    "task_index": np.full(n, task_index),
                }
                table = pa.table(
                    {
                        k: pa.FixedSizeListArray.from_arrays(v.reshape(-1), ACTION_DIM) if v.ndim == 2 else v
                        for k, v in columns.items()
                    },
                    schema=schema,
                )
                where = data.write(table)
                sampled = np.unique(np.linspace(0, n - 1, min(n, STATS_FRAMES)).round().astype(int))
                stats = {k: _stats(v) for k, v in columns.items()}
                stats[VIDEO_KEY] = _stats(read_frames(video, sampled), image=True)
                all_stats.append(stats)
                episode_rows.append(
                    {
                        "episode_index": i,
                        "tasks": [task],
                        "length": n,
                        **where,
                        "dataset_from_index": total,
                        "dataset_to_index": total + n,
                        **{f"videos/{VIDEO_KEY}/{k}": v for k, v in _chunk_file(i).items()},
                        f"videos/{VIDEO_KEY}/from_timestamp": 0.0,
                        f"videos/{VIDEO_KEY}/to_timestamp": n / rate,
                        "meta/episodes/chunk_index": 0,
                        "meta/episodes/file_index": 0,
                        **{f"stats/{k}/{s}": np.asarray(v).tolist() for k, d in stats.items() for s, v in d.items()},
                    }
                )
                if extra:
                    arrays = out / ARRAYS_PATH.format(episode_index=i)
                    arrays.parent.mkdir(parents=True, exist_ok=True)
                    np.savez_compressed(arrays, **extra)
                sidecar.append({"episode_index": i, "path": rel.as_posix(), "arrays": sorted(extra), "meta": meta})
                total += n
                bar.update()
    finally:
        data.close()

    episodes_file = out / EPISODES_DIR / (CHUNK_FILE.format(chunk_index=0, file_index=0) + ".parquet")
    episodes_file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), episodes_file)
    _write_tasks(pa, out, tasks)
    keys = all_stats[0].keys()
    (out / STATS_PATH).write_text(json.dumps(_json_stats({k: _aggregate([s[k] for s in all_stats]) for k in keys})))
    with open(out / SIDECAR_PATH, "w") as f:
        for record in sidecar:
            f.write(json.dumps(record) + "\n")
    hands = {str(ep.meta.get("hand")) for ep, _ in pairs if ep.embodiment == "robot" and ep.meta.get("hand")}
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": hands.pop() if len(hands) == 1 else None,
        "total_episodes": len(pairs),
        "total_frames": total,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": rate,
        "splits": {"train": f"0:{len(pairs)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": _features(height, width, rate, codec, pix_fmt),
    }
    (out / INFO_PATH).write_text(json.dumps(info, indent=4))
    (out / "README.md").write_text(_card(repo_id, info))
    return out


def _extra_arrays(ep: Episode) -> dict[str, np.ndarray]:
    """The episode's arrays other than actions and proprio (joints, keypoints, state, …; not the
    ``frames_<S>.npy`` caches): they travel in the sidecar."""
    if ep.path is None:
        return {}
    names = sorted(f.stem for f in ep.path.glob("*.npy") if not f.stem.startswith("frames_"))
    return {n: np.load(ep.path / f"{n}.npy", allow_pickle=False) for n in names if n not in _OWN_ARRAYS}


def _card(repo_id: str, info: dict[str, Any]) -> str:
    return (
        "---\nlicense: apache-2.0\ntask_categories:\n- robotics\ntags:\n- LeRobot\n- humanprompt\n"
        "configs:\n- config_name: default\n  data_files: data/*/*.parquet\n---\n\n"
        f"# {repo_id}\n\nExported by `humanprompt-data export-lerobot` (LeRobot dataset v3.0): "
        f"{info['total_episodes']} episodes, {info['total_frames']} frames at {info['fps']} fps. "
        "`meta/humanprompt_episodes.jsonl` and `meta/humanprompt_arrays/` keep what LeRobot has no field for "
        "(each episode's meta.json, joints, keypoints, scene state).\n\n"
        f"```python\nfrom lerobot.datasets.lerobot_dataset import LeRobotDataset\n"
        f'ds = LeRobotDataset("{repo_id}", root="<this directory>")\n```\n'
    )


# -- import ----------------------------------------------------------------------------------------------
def read_info(root: str | Path) -> tuple[dict[str, Any], str]:
    """A LeRobot v3.0 dataset's ``meta/info.json`` and its camera's video key, checked: ``ValueError`` when
    ``root`` is not a LeRobot dataset, is of another codebase version, or lacks a feature this needs (24-D
    ``observation.state`` and ``action``, one video)."""
    root = Path(root)
    info_file = root / INFO_PATH
    if not root.is_dir():
        raise ValueError(f"{root}: not found or not a directory")
    if not info_file.is_file():
        raise ValueError(f"{root}: not a LeRobot dataset (no {INFO_PATH})")
    try:
        info = json.loads(info_file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{info_file}: invalid JSON ({exc})") from None
    version = info.get("codebase_version") if isinstance(info, dict) else None
    if version != CODEBASE_VERSION:
        raise ValueError(
            f"{info_file}: LeRobot dataset codebase_version {version!r}; this reads {CODEBASE_VERSION!r} "
            "(convert an older dataset with LeRobot's lerobot.datasets.v30.convert_dataset_v21_to_v30)"
        )
    features = info.get("features") or {}
    videos = [k for k, f in features.items() if f.get("dtype") == "video"]
    video_key = VIDEO_KEY if VIDEO_KEY in videos else (videos[0] if len(videos) == 1 else None)
    missing = [k for k in (STATE_KEY, ACTION_KEY, "timestamp", *INDEX_KEYS) if k not in features]
    if video_key is None:
        missing.append(f"{VIDEO_KEY} (a video feature; found {videos or 'none'})")
    if missing:
        raise ValueError(f"{info_file}: missing features {', '.join(missing)} (it has {', '.join(sorted(features))})")
    for key in (STATE_KEY, ACTION_KEY):
        if list(features[key].get("shape", [])) != [ACTION_DIM]:
            raise ValueError(
                f"{info_file}: {key} has shape {features[key].get('shape')}, not [{ACTION_DIM}] "
                "(the unified hand action space, humanprompt_ros.action)"
            )
    for key in ("fps", "data_path", "video_path"):
        if not info.get(key):
            raise ValueError(f"{info_file}: no {key}")
    return info, video_key


def _read_table(files: list[Path]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def _vectors(column) -> np.ndarray:
    """A fixed- or variable-size list column of floats → (rows, dim) float32."""
    column = column.combine_chunks()
    return np.asarray(column.flatten(), np.float32).reshape(len(column), -1)


def _task_strings(root: Path) -> list[str]:
    """Task strings by task_index, from meta/tasks.parquet (the string column: pandas' index)."""
    table = _read_table([root / TASKS_PATH]) if (root / TASKS_PATH).is_file() else None
    if table is None:
        return []
    names = [n for n in table.column_names if n != "task_index"]
    order = np.argsort(table.column("task_index").to_numpy())
    return [str(table.column(names[0])[int(i)]) for i in order] if names else []


def _episode_rows(root: Path) -> list[dict[str, Any]]:
    files = sorted((root / EPISODES_DIR).glob("*/*.parquet"))
    if not files:
        raise ValueError(f"{root}: not a LeRobot v3.0 dataset (no {EPISODES_DIR}/chunk-*/file-*.parquet)")
    table = _read_table(files)
    keep = [c for c in table.column_names if not c.startswith("stats/")]
    return sorted(table.select(keep).to_pylist(), key=lambda r: r["episode_index"])


def _safe(rel: Any) -> Path | None:
    """A sidecar's relative episode path, or None when it would leave the output root."""
    if not isinstance(rel, str) or not rel:
        return None
    p = Path(rel)
    return None if p.is_absolute() or ".." in p.parts else p


def import_lerobot(source: str | Path, out: str | Path, *, progress: bool = False) -> list[Path]:
    """A LeRobot v3.0 dataset → episodes under the dataset root ``out`` (see the module docstring).
    Returns the episode directories written. ``ValueError`` on a dataset this cannot read."""
    _pa()
    import pyarrow.compute as pc

    source, out = Path(source), Path(out)
    info, video_key = read_info(source)
    rate = float(info["fps"])
    episodes, tasks = _episode_rows(source), _task_strings(source)
    sidecar: dict[int, dict[str, Any]] = {}
    if (source / SIDECAR_PATH).is_file():
        for line in (source / SIDECAR_PATH).read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                sidecar[int(record["episode_index"])] = record
    written: list[Path] = []
    data_file, data = None, None
    with progress_bar(total=len(episodes), desc="import episodes", enabled=progress) as bar:
        for row in episodes:
            i = int(row["episode_index"])
            f = source / info["data_path"].format(
                chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
            )
            if f != data_file:
                if not f.is_file():
                    raise ValueError(f"{source}: episode {i}'s data file {f.relative_to(source)} is missing")
                data_file, data = f, _read_table([f])
            rows = data.filter(pc.equal(data.column("episode_index"), i))
            rows = rows.take(pc.sort_indices(rows, sort_keys=[("frame_index", "ascending")]))
            n = rows.num_rows
            if n == 0:
                raise ValueError(f"{data_file}: no rows of episode {i}")
            proprio, actions = _vectors(rows.column(STATE_KEY)), _vectors(rows.column(ACTION_KEY))[:-1]
            record = sidecar.get(i)
            if record is not None:
                meta, rel = record["meta"], _safe(record.get("path"))
            else:
                task_index = int(rows.column("task_index")[0].as_py())
                text = tasks[task_index] if task_index < len(tasks) else (row.get("tasks") or [""])[0]
                meta = _foreign_meta(info, video_key, text, source, i, n)
                rel = None
            d = out / (rel or _layout(meta, meta.get("seed", i)))
            if (d / META_FILE).exists():
                raise ValueError(f"{d}: an episode is already there (import into another --out)")
            d.mkdir(parents=True, exist_ok=True)
            _import_video(source, info, video_key, row, n, rate, d / VIDEO_FILE)
            if record is not None and record.get("arrays"):
                with np.load(source / ARRAYS_PATH.format(episode_index=i), allow_pickle=False) as arrays:
                    for name in record["arrays"]:
                        np.save(d / f"{name}.npy", arrays[name])
            written.append(write_episode(d, [], actions, meta, proprio=proprio, fps=rate))
            bar.update()
    return written


def _import_video(source: Path, info: dict, key: str, row: dict, n: int, rate: float, dst: Path) -> None:
    """The episode's video to ``dst``: the stream copied when the file holds just this episode, else its
    ``n`` frames from ``from_timestamp`` on decoded and encoded at ``rate``."""
    path = source / info["video_path"].format(
        video_key=key, chunk_index=row[f"videos/{key}/chunk_index"], file_index=row[f"videos/{key}/file_index"]
    )
    if not path.is_file():
        raise ValueError(f"{source}: episode {row['episode_index']}'s video {path.relative_to(source)} is missing")
    start = int(round(float(row.get(f"videos/{key}/from_timestamp") or 0.0) * rate))
    if start == 0 and probe(path).frames == n:
        remux_video(path, dst)
    else:
        write_video(dst, read_frames(path, range(start, start + n)), rate)


def _foreign_meta(info: dict, key: str, task: str, source: Path, i: int, n: int) -> dict[str, Any]:
    """meta.json for an episode of a LeRobot dataset made elsewhere (no sidecar)."""
    shape = list(info["features"][key].get("shape", []))
    names = info["features"][key].get("names") or []
    if "height" in names and "width" in names:
        h, w = shape[names.index("height")], shape[names.index("width")]
    else:  # (C, H, W) or (H, W, C)
        h, w = shape[1:3] if shape and shape[0] in (1, 3, 4) else shape[:2]
    return {
        "task": _slug(task),
        "description": task,
        "embodiment": "robot",
        "seed": i,
        "fps": float(info["fps"]),
        "num_frames": n,
        "num_actions": n - 1,
        "image_size": [int(h), int(w)],
        "lerobot": {"source": str(source), "episode_index": i, "robot_type": info.get("robot_type")},
    }
