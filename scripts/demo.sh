#!/usr/bin/env bash
# The README's first command: set up (idempotent) and run the main job on the embedded default.
#
# Today the main job is the hand check on the shipped Allegro hand: FK, joint limits and a retargeting
# round trip. The simulated scene with the shipped checkpoint replaces it once the simulator (issue 4),
# the ROS 2 stack (issue 5) and the learned policy (issue 7) land.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
echo "[demo] main job: hand check of the shipped Allegro hand (the simulated scene + checkpoint is not built yet)"
humanprompt-hand check "$ROOT/config/hands/allegro_right.yaml" --samples 200
