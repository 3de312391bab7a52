#!/usr/bin/env bash
# Run the test suite (what CI runs, and what the README tells you to run):
#
#   scripts/test.sh                      # the whole suite
#   scripts/test.sh -m ros               # only the DDS tests
#   scripts/test.sh -m "not ros"         # everything but them
#   scripts/test.sh test/test_image_conversion.py -x -q
#
# Runs scripts/setup.sh first (seconds when nothing changed), then ruff (lint + format check) and
# pytest. Exit code: pytest's, except that 5 (no tests collected, e.g. a -k that matches nothing)
# counts as success, with a note; non-zero when ruff finds a problem (fix with
# `ruff format . && ruff check --fix .`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh"

# venv's activate script is not written for `set -u`.
set +u
# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
set -u

export MUJOCO_GL=osmesa          # offscreen MuJoCo rendering without a display
export PYTHONDONTWRITEBYTECODE=1

set +e
ruff check --quiet . && ruff format --check .
lint=$?
python -m pytest "$@"
rc=$?
set -e

if [ "$rc" -eq 5 ]; then
  echo "[test] note: pytest collected no tests (exit code 5); treating that as success"
  rc=0
fi
if [ "$lint" -ne 0 ]; then
  echo "[test] ruff found problems (printed before the tests): fix with 'ruff format . && ruff check --fix .'"
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
