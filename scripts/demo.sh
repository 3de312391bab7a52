#!/usr/bin/env bash
# The README's first command: set up (idempotent), then run the main job on the embedded default:
# the simulated Allegro hand performs a benchmark task from a human demonstration set as the prompt
# through the ROS 2 parameter service (humanprompt-demo; see its --help for --task/--seed/--policy).
#
# The policy is `replay` (the prompt's own actions retargeted onto the robot) until the learned
# checkpoint ships in models/; then the default becomes the learned policy.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
set +u
# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
set -u
cd "$ROOT"
exec humanprompt-demo "$@"
