"""Does the shipped model (models/policy.safetensors) still complete the demo's default episode?

    python benchmarks/bench_shipped_model.py                       # the README demo's episode, in lockstep
    python benchmarks/bench_shipped_model.py --checkpoint runs/s2/policy.safetensors --seed 1000003

Runs ``humanprompt-demo --lockstep`` (the whole ROS 2 graph, real processes over Fast DDS, on a private
ROS_DOMAIN_ID) with the checkpoint on the default task and held-out seed (humanprompt_ros.cli.demo's
``DEFAULT_TASK`` and ``DEFAULT_SEED``, a scene the shipped model was chosen to complete; the prompt comes
from another scene). In lockstep, physics waits for each command, so the outcome is that of the
``humanprompt-sim eval`` episode whatever the machine's load. The demo itself is tested in CI
(test/test_demo.py) with a tiny checkpoint; whether these weights succeed is checked here, because a
retrain may change it.

Prints the demo's output, then one JSON line: the demo's result plus ``seconds``. Exit code 0 when the
model completes the episode, 1 when it does not, 2 when the demo could not run (set-up error, timeout).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))


def main() -> int:
    from humanprompt_ros.cli.demo import DEFAULT_SEED, DEFAULT_TASK

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--checkpoint",
        type=Path,
        default=REPO / "models" / "policy.safetensors",
        help="policy checkpoint (default: the shipped models/policy.safetensors)",
    )
    ap.add_argument("--task", default=DEFAULT_TASK, help=f"benchmark task (default: {DEFAULT_TASK})")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"the scene's seed (default: {DEFAULT_SEED})")
    ap.add_argument("--timeout", type=float, default=400.0, help="seconds for the demo run")
    args = ap.parse_args()

    from helpers.ros import make_ros_env, reserve_domain_id

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-shipped-") as tmp, reserve_domain_id() as domain:
        cmd = [
            sys.executable,
            "-m",
            "humanprompt_ros.cli.demo",
            "--lockstep",
            "--checkpoint",
            str(args.checkpoint.resolve()),
            "--task",
            args.task,
            "--seed",
            str(args.seed),
            "--domain-id",
            str(domain),
            "--prompt-dir",
            str(Path(tmp) / "prompts"),
            "--timeout",
            str(args.timeout),
        ]
        print("running: " + " ".join(cmd), flush=True)
        try:
            out = subprocess.run(
                cmd, cwd=REPO, env=make_ros_env(domain), capture_output=True, text=True, timeout=args.timeout + 60
            )
        except subprocess.TimeoutExpired:
            print(f"error: the demo did not finish within {args.timeout + 60:.0f} s", file=sys.stderr)
            return 2
    print(out.stdout, end="")
    print(out.stderr, end="", file=sys.stderr)
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = None
    if out.returncode != 0 or not isinstance(result, dict) or "success" not in result:
        print(f"error: the demo failed (exit code {out.returncode})", file=sys.stderr)
        return 2
    print(json.dumps({**result, "seconds": round(time.monotonic() - t0, 1)}))
    if not result["success"]:
        print(f"FAIL: {args.checkpoint} did not complete {args.task} (seed {args.seed}) in lockstep", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
