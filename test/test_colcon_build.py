"""The package builds with the real `colcon build` and installs where ROS 2 tools look.

colcon runs with the system's python (Debian's /usr/bin/python3 and its setuptools), exactly as
on a ROS 2 machine, into a temporary build/install/log base: the checkout gets no build/,
install/ or log/.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "humanprompt_ros"
COLCON = shutil.which("colcon")

pytestmark = pytest.mark.skipif(
    COLCON is None,
    reason="colcon is not on PATH (scripts/setup.sh installs Debian's colcon and python3-colcon-ros)",
)


def _colcon_env() -> dict[str, str]:
    """The caller's environment without this test's virtual environment.

    colcon must build with the system python, as on a ROS 2 machine; the venv prefix is also not
    a colcon/ament prefix (no local_setup.*), so it is dropped from the prefix paths.
    """
    env = dict(os.environ)
    venv = env.pop("VIRTUAL_ENV", None)
    drop = {p for p in (venv, sys.prefix) if p}
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(key, None)

    def keep(entry: str) -> bool:
        return bool(entry) and not any(entry == d or entry.startswith(d.rstrip("/") + "/") for d in drop)

    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if keep(p)) or "/usr/bin:/bin"
    for key in ("AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH", "CMAKE_PREFIX_PATH"):
        kept = [p for p in env.get(key, "").split(os.pathsep) if keep(p)]
        if kept:
            env[key] = os.pathsep.join(kept)
        else:
            env.pop(key, None)
    return env


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    """Run `colcon build` once for this module; the install prefix of the package."""
    base = tmp_path_factory.mktemp("colcon")
    before = {d: (REPO_ROOT / d).exists() for d in ("build", "install", "log")}
    argv = [
        COLCON,
        "--log-base",
        str(base / "log"),
        "build",
        "--base-paths",
        str(REPO_ROOT),
        "--packages-select",
        PACKAGE,
        "--build-base",
        str(base / "build"),
        "--install-base",
        str(base / "install"),
        "--event-handlers",
        "console_direct+",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(
        argv, cwd=str(base), env=_colcon_env(), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    elapsed = time.monotonic() - t0
    out = f"$ {' '.join(argv)}\n--- stdout:\n{proc.stdout[-6000:]}\n--- stderr:\n{proc.stderr[-6000:]}"
    assert proc.returncode == 0, f"colcon build failed (exit {proc.returncode}) in {elapsed:.1f} s\n{out}"
    assert f"Finished <<< {PACKAGE}" in proc.stdout, out
    after = {d: (REPO_ROOT / d).exists() for d in ("build", "install", "log")}
    assert after == before, f"colcon wrote into the checkout: {after} (before: {before})"
    print(f"colcon build: {elapsed:.1f} s")
    prefix = base / "install" / PACKAGE  # colcon's default isolated layout
    assert prefix.is_dir(), f"no {prefix}\n{out}"
    return prefix


def test_installs_package_manifest_and_ament_index_marker(colcon_install):
    share = colcon_install / "share" / PACKAGE
    assert (share / "package.xml").read_bytes() == (REPO_ROOT / "package.xml").read_bytes()
    marker = colcon_install / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    assert marker.is_file(), "the ament index marker makes get_package_share_directory() find the package"


def test_installs_launch_config_and_data_trees(colcon_install):
    share = colcon_install / "share" / PACKAGE
    assert (share / "config" / "hands" / "allegro_right.yaml").is_file()
    launch_files = sorted(p.name for p in (REPO_ROOT / "launch").glob("*.launch.py"))
    assert launch_files, "launch/ has no *.launch.py"
    for name in launch_files:
        assert (share / "launch" / name).is_file(), f"launch/{name} not installed"
    # every file of the data folders is mirrored under share/<package>/ (setup.py's data_files)
    for folder in ("launch", "config", "models", "rviz"):
        for src in (REPO_ROOT / folder).rglob("*"):
            if src.is_file() and not src.name.startswith(".") and "__pycache__" not in src.parts:
                rel = src.relative_to(REPO_ROOT)
                assert (share / rel).is_file(), f"{rel} is not installed under share/{PACKAGE}/"


def test_installs_console_scripts_where_ros2_run_looks(colcon_install):
    libexec = colcon_install / "lib" / PACKAGE  # setup.cfg: install_scripts=$base/lib/<package>
    hand = libexec / "humanprompt-hand"
    assert hand.is_file() and os.access(hand, os.X_OK), f"{hand} missing or not executable"
    first_line = hand.read_text().splitlines()[0]
    assert first_line.startswith("#!") and "python" in first_line, first_line
    # every console script that setup.py declares is installed there, not in bin/
    egg_info = next((colcon_install.parent.parent / "build" / PACKAGE).glob("*.egg-info"))
    entry_points = configparser.ConfigParser()
    entry_points.read(egg_info / "entry_points.txt")
    scripts = list(entry_points["console_scripts"]) if entry_points.has_section("console_scripts") else []
    assert "humanprompt-hand" in scripts
    for name in scripts:
        assert (libexec / name).is_file(), f"console script {name} not installed in lib/{PACKAGE}"
        assert not (colcon_install / "bin" / name).exists(), f"{name} also in bin/: setup.cfg not honoured"


def test_installs_the_python_package(colcon_install):
    site = colcon_install / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    candidates = (
        [site]
        + list((colcon_install / "lib").glob("python3*/site-packages"))
        + list((colcon_install / "local" / "lib").glob("python3*/dist-packages"))
    )
    found = [c / PACKAGE / "__init__.py" for c in candidates if (c / PACKAGE / "__init__.py").is_file()]
    assert found, f"{PACKAGE}/__init__.py not installed under {colcon_install / 'lib'}"
    pkg = found[0].parent
    assert (pkg / "ros" / "image.py").is_file()
    assert not (pkg.parent / "test").exists(), "tests must not be installed as a package"
