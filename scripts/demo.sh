#!/usr/bin/env bash
# The README's first command: set up (idempotent), then run the main job on the embedded default:
# the simulated Allegro hand performs a human-only skill with the shipped learned policy
# (models/policy.safetensors), from a human demonstration recorded in another scene and set as the
# prompt through the ROS 2 parameter service (humanprompt-demo; see its --help for
# --task/--seed/--prompt-seed/--policy). Exit code 0: the task was completed; 1: it was not.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
set +u
# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
set -u
cd "$ROOT"
exec humanprompt-demo "$@"
