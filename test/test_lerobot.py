"""LeRobot v3.0 export and import of episodes (humanprompt_ros.lerobot, ``humanprompt-data export-lerobot`` /
``import-lerobot``) on simulated robot and human episodes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed")
import pyarrow.parquet as pq  # noqa: E402

from humanprompt_ros.cli.data import main  # noqa: E402
from humanprompt_ros.data import iter_episodes, load_episode, read_video  # noqa: E402
from humanprompt_ros.lerobot import (  # noqa: E402
    ACTION_KEY,
    SIDECAR_PATH,
    STATE_KEY,
    VIDEO_KEY,
    resample,
)

TASK = "open_drawer"
REPO = Path(__file__).resolve().parents[1]
# A Python with lerobot installed (its own environment: lerobot pins torch<2.11), for the loader check.
LEROBOT_PYTHON = os.environ.get("HUMANPROMPT_LEROBOT_PYTHON", "/tmp/lrvenv/bin/python")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A dataset root with the open_drawer expert episode of a robot and of a human (seed 0: 46 frames, 128×128)."""
    from humanprompt_ros.sim.runner import expert_episode
    from humanprompt_ros.sim.tasks import load_task, resolve_task

    root = tmp_path_factory.mktemp("sim")
    task = load_task(resolve_task(TASK))
    for embodiment in ("robot", "human"):
        expert_episode(task, embodiment, 0).save(root / TASK / embodiment / "0000000")
    return root


@pytest.fixture(scope="module")
def exported(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "ds"
    assert cli("export-lerobot", dataset, "--out", out, "--repo-id", "me/sim") == (0, f"{out}\n", "")
    return out


def cli(*args) -> tuple[int, str, str]:
    """Run ``humanprompt-data`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args] + ["--quiet"])
    return rc, out.getvalue(), err.getvalue()


def episode_files(root: Path) -> dict[str, bytes]:
    """Every file of every episode under ``root`` but the videos: relative path → content."""
    return {
        str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file() and f.suffix != ".mp4"
    }


def test_round_trip_keeps_every_frame_array_and_meta_field(dataset, exported, tmp_path):
    back = tmp_path / "back"
    rc, out, err = cli("import-lerobot", exported, "--out", back)
    assert (rc, err) == (0, "")
    assert sorted(out.split()) == sorted(str(back / TASK / e / "0000000") for e in ("robot", "human"))
    # meta.json and every array file byte for byte, the same tree
    assert episode_files(back) == episode_files(dataset)
    for src in iter_episodes(dataset):
        dst = load_episode(back / src.path.relative_to(dataset))
        assert dst.meta == src.meta
        for name in ("actions", "proprio", "joints", "keypoints", "state"):
            a, b = src._array(name), dst._array(name)
            assert (a is None and b is None) or np.array_equal(a, b), name
        # the H.264 stream is copied, never re-encoded: the decoded frames are identical
        np.testing.assert_array_equal(dst.frames(), src.frames())
        assert len(dst.frames()) == len(src.proprio) == len(src.actions) + 1
    assert load_episode(back / TASK / "robot" / "0000000").joints is not None
    assert load_episode(back / TASK / "human" / "0000000").keypoints is not None


def test_export_writes_lerobot_v3_layout(dataset, exported):
    info = json.loads((exported / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 92, 1)
    assert info["splits"] == {"train": "0:2"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    assert features[VIDEO_KEY]["dtype"] == "video" and features[VIDEO_KEY]["shape"] == [128, 128, 3]
    assert features[VIDEO_KEY]["info"]["video.codec"] == "h264"
    for key in (STATE_KEY, ACTION_KEY):
        assert features[key]["dtype"] == "float32" and features[key]["shape"] == [24]
        assert len(features[key]["names"]) == 24
    assert {"timestamp", "frame_index", "episode_index", "index", "task_index"} <= set(features)

    data = pq.read_table(exported / "data/chunk-000/file-000.parquet")
    for key in (STATE_KEY, ACTION_KEY):
        kind = data.schema.field(key).type
        assert pa.types.is_fixed_size_list(kind) and kind.list_size == 24 and kind.value_type == pa.float32()
    assert data.num_rows == 92
    np.testing.assert_array_equal(data.column("index").to_numpy(), np.arange(92))
    episodes = pq.read_table(exported / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in episodes] == [0, 1]
    assert [e["tasks"] for e in episodes] == [["open the drawer"]] * 2
    assert [(e["dataset_from_index"], e["dataset_to_index"], e["length"]) for e in episodes] == [
        (0, 46, 46),
        (46, 92, 46),
    ]
    assert [e[f"videos/{VIDEO_KEY}/file_index"] for e in episodes] == [0, 1]
    assert episodes[0][f"videos/{VIDEO_KEY}/to_timestamp"] == pytest.approx(4.6)
    for i in range(len(episodes)):
        assert (exported / f"videos/{VIDEO_KEY}/chunk-000/file-{i:03d}.mp4").is_file()
    tasks = pq.read_table(exported / "meta/tasks.parquet")
    assert tasks.to_pylist() == [{"task_index": 0, "task": "open the drawer"}]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]

    # row t = frame t, proprio t, action t; the last row (the final state) repeats the last action
    sidecar = [json.loads(line) for line in (exported / SIDECAR_PATH).read_text().splitlines()]
    for e, record in zip(episodes, sidecar):
        src = load_episode(dataset / record["path"])
        rows = data.slice(e["dataset_from_index"], e["length"])
        state = np.stack(rows.column(STATE_KEY).to_pylist())
        action = np.stack(rows.column(ACTION_KEY).to_pylist())
        np.testing.assert_array_equal(state, src.proprio)
        np.testing.assert_array_equal(action[:-1], src.actions)
        np.testing.assert_array_equal(action[-1], src.actions[-1])
        np.testing.assert_allclose(rows.column("timestamp").to_numpy(), np.arange(46) / 10, atol=1e-6)
        assert record["meta"] == src.meta
        assert record["arrays"] == sorted(n for n in ("joints", "keypoints", "state") if src._array(n) is not None)

    stats = json.loads((exported / "meta/stats.json").read_text())
    assert {"min", "max", "mean", "std", "count", "q01", "q50", "q99"} <= set(stats[STATE_KEY])
    assert np.asarray(stats[VIDEO_KEY]["mean"]).shape == (3, 1, 1)
    assert stats[STATE_KEY]["count"] == [92]
    all_state = np.stack(data.column(STATE_KEY).to_pylist())
    np.testing.assert_allclose(stats[STATE_KEY]["mean"], all_state.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats[STATE_KEY]["std"], all_state.std(0), atol=1e-5)
    assert "me/sim" in (exported / "README.md").read_text()


def test_import_without_sidecar_builds_meta(dataset, exported, tmp_path):
    """A LeRobot dataset made elsewhere has no sidecar: episodes go to <task>/robot/<episode_index>."""
    foreign = tmp_path / "foreign"
    shutil.copytree(exported, foreign)
    (foreign / SIDECAR_PATH).unlink()
    shutil.rmtree(foreign / "meta/humanprompt_arrays")
    assert cli("import-lerobot", foreign, "--out", tmp_path / "back")[0] == 0
    eps = list(iter_episodes(tmp_path / "back"))
    assert [ep.path.relative_to(tmp_path / "back").as_posix() for ep in eps] == [
        "open_the_drawer/robot/0000000",
        "open_the_drawer/robot/0000001",
    ]
    src = load_episode(dataset / TASK / "human" / "0000000")  # episode 0 (sorted: human before robot)
    assert eps[0].meta["description"] == "open the drawer" and eps[0].meta["fps"] == 10.0
    np.testing.assert_array_equal(eps[0].actions, src.actions)
    np.testing.assert_array_equal(eps[0].proprio, src.proprio)
    np.testing.assert_array_equal(eps[0].frames(), src.frames())


def test_export_resamples_episodes_at_another_rate(dataset, tmp_path):
    out = tmp_path / "lr5"
    episode = dataset / TASK / "robot" / "0000000"
    assert cli("export-lerobot", episode, "--out", out, "--fps", "5")[0] == 0
    assert json.loads((out / "meta/info.json").read_text())["fps"] == 5
    assert cli("import-lerobot", out, "--out", tmp_path / "back")[0] == 0
    (back,) = iter_episodes(tmp_path / "back")
    src = load_episode(episode)
    assert back.meta["lerobot"] == {"resampled_from_fps": 10.0} and back.fps == 5.0
    np.testing.assert_array_equal(back.proprio, src.proprio[::2])
    np.testing.assert_array_equal(back.actions, src.actions[1::2])  # the command that reaches each kept state
    np.testing.assert_array_equal(back.joints, src.joints[::2])
    assert len(read_video(back.video_path)) == 23


def test_resample_indices():
    keep, acts = resample(46, 10, 5)
    np.testing.assert_array_equal(keep, np.arange(0, 46, 2))
    np.testing.assert_array_equal(acts, np.arange(1, 45, 2))
    keep, acts = resample(3, 10, 20)  # upsampling repeats frames and actions
    np.testing.assert_array_equal(keep, [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(acts, [0, 0, 1, 1])


def test_bad_input_is_refused(dataset, exported, tmp_path):
    rc, _, err = cli("import-lerobot", dataset, "--out", tmp_path / "x")
    assert rc == 2 and "not a LeRobot dataset (no meta/info.json)" in err

    old = tmp_path / "old"
    shutil.copytree(exported, old)
    info = json.loads((old / "meta/info.json").read_text())
    (old / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    rc, _, err = cli("import-lerobot", old, "--out", tmp_path / "x")
    assert rc == 2 and "codebase_version 'v2.1'" in err and "v3.0" in err

    features = {k: v for k, v in info["features"].items() if k != ACTION_KEY}
    (old / "meta/info.json").write_text(json.dumps({**info, "features": features}))
    rc, _, err = cli("import-lerobot", old, "--out", tmp_path / "x")
    assert rc == 2 and "missing features action" in err

    rc, _, err = cli("export-lerobot", dataset, "--out", exported)
    assert rc == 2 and "already exists" in err
    rc, _, err = cli("export-lerobot", tmp_path / "x", "--out", tmp_path / "y")
    assert rc == 2 and "not found" in err
    rc, _, err = cli("export-lerobot", dataset, "--out", tmp_path / "y", "--fps", "7.5")
    assert rc == 2 and "whole number" in err

    # importing twice into the same root would overwrite episodes
    assert cli("import-lerobot", exported, "--out", tmp_path / "twice")[0] == 0
    rc, _, err = cli("import-lerobot", exported, "--out", tmp_path / "twice")
    assert rc == 2 and "an episode is already there" in err


def _lerobot_python() -> str | None:
    if not Path(LEROBOT_PYTHON).is_file():
        return None
    probe = subprocess.run([LEROBOT_PYTHON, "-c", "import lerobot.datasets.lerobot_dataset"], capture_output=True)
    return LEROBOT_PYTHON if probe.returncode == 0 else None


def test_lerobot_loads_the_export(exported):
    """LeRobot's own LeRobotDataset loads the export (benchmarks/validate_lerobot_export.py), in a Python that
    has lerobot (HUMANPROMPT_LEROBOT_PYTHON; not this environment: lerobot pins torch<2.11)."""
    python = _lerobot_python()
    if python is None:
        pytest.skip(f"no Python with lerobot at {LEROBOT_PYTHON} (set HUMANPROMPT_LEROBOT_PYTHON; see docs/ros.md)")
    script = REPO / "benchmarks" / "validate_lerobot_export.py"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([python, str(script), str(exported)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failed" in proc.stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
