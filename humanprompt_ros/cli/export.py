"""``humanprompt-train export``: a checkpoint copied for shipping — half precision, inference settings changed,
a state policy's perception bundled in (:mod:`humanprompt_ros.models.bundle`), or the stage 1 inside a policy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--dtype",
        choices=["float16", "bfloat16", "float32"],
        default=None,
        help="how the copy stores its tensors (default float16)",
    )
    p.add_argument(
        "--stage1",
        action="store_true",
        help="write only the policy's embedded stage-1 video model, as a stage-1 checkpoint "
        "(a stage1: for stage-2 runs that share the shipped model's stage 1)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=N",
        help="change how the checkpoint runs: policy.execute (actions per chunk), policy.execute_by_skill "
        "(SKILL:N,...: actions per chunk for those skills), policy.inference_steps or policy.guidance "
        "(classifier-free guidance scale; needs a head trained with global_dropout)",
    )
    p.add_argument(
        "--estimator",
        type=Path,
        help="bundle this state estimator (a condition: state policy then runs from camera frames)",
    )
    p.add_argument(
        "--prompt-embedding",
        type=Path,
        help="bundle this prompt embedding (a policy that takes a skill then reads it off the prompt video)",
    )


def cmd_export(args: argparse.Namespace) -> int:
    from humanprompt_ros.models.checkpoint import convert_checkpoint

    if args.stage1:
        if args.set or args.dtype or args.estimator or args.prompt_embedding:  # they would be ignored
            print(
                "error: --stage1 writes the embedded stage 1 as it is stored; drop --set/--dtype/--estimator/"
                "--prompt-embedding",
                file=sys.stderr,
            )
            return 2
        from humanprompt_ros.models.policy_model import extract_stage1

        out = extract_stage1(args.checkpoint, args.out)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): the stage-1 video model inside {args.checkpoint}")
        return 0
    from humanprompt_ros.models.checkpoint import INFERENCE_KEYS

    inference = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        kind = INFERENCE_KEYS.get(key, int)  # an unknown key is refused below, naming the keys it may be
        try:
            if not sep:
                raise ValueError(item)
            inference[key] = kind(value)
        except ValueError:
            expected = {int: "INTEGER", float: "NUMBER"}.get(kind, "SKILL:N,SKILL:N")
            print(
                f"error: --set {item}: expected KEY={expected}, e.g. policy.execute=16, policy.guidance=3 or "
                "policy.execute_by_skill=rotate:8,pick_lift:8",
                file=sys.stderr,
            )
            return 2
    # a bad checkpoint, part or setting raises ValueError: humanprompt-train's main prints it (exit code 2)
    dtype = args.dtype or "float16"
    src = args.checkpoint
    if args.estimator or args.prompt_embedding:
        from humanprompt_ros.models.bundle import bundle_policy

        src = bundle_policy(args.checkpoint, args.out, args.estimator, args.prompt_embedding)
    out = convert_checkpoint(src, args.out, dtype, inference)
    if inference:  # the changed settings must still describe a model that loads
        from humanprompt_ros.models.checkpoint import CheckpointError
        from humanprompt_ros.models.policy_model import load_policy_model

        try:
            load_policy_model(out)
        except CheckpointError as exc:
            out.unlink()
            raise ValueError(str(exc).replace(str(out), str(args.checkpoint) + " with " + " ".join(args.set))) from None
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, tensors as {dtype}; "
        f"was {args.checkpoint.stat().st_size / 1e6:.1f} MB)"
    )
    return 0
