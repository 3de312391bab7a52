#!/usr/bin/env bash
# Turn a fresh Debian/Python 3.11 machine into a working humanprompt_ros install.
#
#   scripts/setup.sh            # apt packages + .venv/ + ROS 2 Kilted wheels + the project (editable)
#   HUMANPROMPT_EXTRAS=dev,human scripts/setup.sh   # choose the project's extras
#
# Idempotent: every step checks before it installs, so a re-run takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
EXTRAS="${HUMANPROMPT_EXTRAS:-dev,camera}"
STAMP="$VENV/.humanprompt-setup.stamp"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# --- 1. Debian packages -------------------------------------------------------
# libosmesa6: MuJoCo offscreen rendering without a display (MUJOCO_GL=osmesa).
# ffmpeg: video encode/decode for prompts and datasets.
# colcon: the ROS 2 build tool, to build this package the way a ROS 2 install does.
APT_PKGS=(libosmesa6 libgl1 ffmpeg colcon python3-setuptools python3-colcon-ros python3-colcon-python-setup-py
          python3-colcon-package-information python3-colcon-recursive-crawl python3-colcon-parallel-executor)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. Virtual environment ---------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
# Some machines' pip.conf names local wheel folders that may be absent; hide that one harmless warning.
pip_install() { "${PIP[@]}" "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

# A stamp keyed on the files that define the install makes a re-run fast.
want_stamp="$(cat "$ROOT/scripts/setup.sh" "$ROOT/scripts/requirements-ros.txt" "$ROOT/scripts/requirements-learning.txt" "$ROOT/setup.py" | sha256sum | cut -c1-16)-$EXTRAS"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ]; then
  log "already set up ($VENV); nothing to do"
  exit 0
fi

pip_install --upgrade pip setuptools wheel
# torch first and pinned: an unpinned 'torch' (pulled in by dex-retargeting or diffusers) would fetch a CUDA build.
"$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || { log "installing torch==2.13.0 (CPU)"; pip_install torch==2.13.0; }

log "installing ROS 2 Kilted wheels"
pip_install -r "$ROOT/scripts/requirements-ros.txt"

log "installing humanprompt_ros[$EXTRAS] (editable)"
pip_install torch==2.13.0 -e "$ROOT[$EXTRAS]"

# An editable install does not copy data_files: register the package in the venv's ament index and
# link share/humanprompt_ros/* to the checkout (like colcon --symlink-install), so edits are live.
mkdir -p "$VENV/share/ament_index/resource_index/packages" "$VENV/share/humanprompt_ros"
touch "$VENV/share/ament_index/resource_index/packages/humanprompt_ros"
for d in launch config models rviz package.xml; do ln -sfn "$ROOT/$d" "$VENV/share/humanprompt_ros/$d"; done

# ROS 2 from wheels: the ament index is the venv prefix. Written into activate so every shell gets it.
if ! grep -q AMENT_PREFIX_PATH "$VENV/bin/activate"; then
  cat >>"$VENV/bin/activate" <<'ACT'

# humanprompt_ros: ROS 2 from wheels finds share/<pkg> through the venv prefix.
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export MUJOCO_GL="${MUJOCO_GL:-osmesa}"
ACT
fi

log "checking the install"
AMENT_PREFIX_PATH="$VENV" "$VENV/bin/python" - <<'CHK'
import rclpy, sensor_msgs.msg, pinocchio, humanprompt_ros
from ament_index_python.packages import get_package_share_directory
print("  rclpy ok, pinocchio", pinocchio.__version__, "share:", get_package_share_directory("humanprompt_ros"))
CHK
echo "$want_stamp" >"$STAMP"
log "done. Activate with: source .venv/bin/activate"
