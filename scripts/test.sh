#!/usr/bin/env bash
# Run the test suite (what CI runs, and what the README tells you to run):
#
#   scripts/test.sh                      # the whole suite
#   scripts/test.sh -m ros               # only the DDS tests
#   scripts/test.sh -m "not ros"         # everything but them
#   scripts/test.sh test/test_image_conversion.py -x -q
#
# Sets up .venv/ with scripts/setup.sh first if it is missing. Exit code: pytest's, except that
# 5 (no tests collected, e.g. a -k that matches nothing) counts as success, with a note.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "[test] no .venv/: running scripts/setup.sh first"
  bash "$ROOT/scripts/setup.sh"
fi

# venv's activate script is not written for `set -u`.
set +u
# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
set -u

export MUJOCO_GL=osmesa          # offscreen MuJoCo rendering without a display
export PYTHONDONTWRITEBYTECODE=1

set +e
python -m pytest "$@"
rc=$?
set -e

if [ "$rc" -eq 5 ]; then
  echo "[test] note: pytest collected no tests (exit code 5); treating that as success"
  exit 0
fi
exit "$rc"
