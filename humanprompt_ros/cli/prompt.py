"""humanprompt-prompt: set, clear or record the prompt of a running graph (no ``ros2`` CLI needed).

::

    humanprompt-prompt set /data/demos/pour.mp4      # = ros2 param set /prompt_encoder prompt_video /data/demos/pour.mp4
    humanprompt-prompt clear                         # = ros2 service call /prompt_encoder/clear_prompt std_srvs/srv/Trigger
    humanprompt-prompt record                        # = ros2 service call /prompt_encoder/record_prompt std_srvs/srv/Trigger
    humanprompt-prompt show                          # print the active prompt (/humanprompt/prompt, latched)
    humanprompt-prompt calibrate data/heldout --checkpoint models/policy.safetensors   # no ROS: see below

A plain client of the prompt encoder's standard services: ``set`` calls
``/prompt_encoder/set_parameters`` (rcl_interfaces/srv/SetParameters) with the string parameter
``prompt_video`` (the path made absolute, since the encoder runs elsewhere); ``clear`` and
``record`` call the ``std_srvs/srv/Trigger`` services. The result and its reason are printed.

Exit codes: 0 success; 1 the encoder refused (e.g. a bad prompt: the previous one stays active);
3 no answer: the service is not there (the encoder is not running, or runs on another
ROS_DOMAIN_ID) or the call timed out.

``calibrate`` runs without ROS: it encodes held-out prompts (episode directories, dataset roots, videos) of
the skills the checkpoint was trained on, measures each one's distance from the checkpoint's PDCP skill
prototypes, and writes ``<checkpoint stem>.prompt_ood.json`` beside the checkpoint (threshold: the
``--quantile`` of the distances), which the prompt encoder reads at start
(:mod:`humanprompt_ros.policies.prompt_fit`). Exit code 2 when it cannot calibrate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_REFUSED, EXIT_ERROR, EXIT_NO_ANSWER = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="humanprompt-prompt",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--node", default="/prompt_encoder", help="the prompt encoder node (default: /prompt_encoder)")
    ap.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the service to appear (default 5)")
    ap.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the answer (encoding or recording may take a while; default 120)",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("set", help="set the prompt: a demonstration episode (directory or file) or a video")
    s.add_argument("path", help="prompt path; relative paths are made absolute here")
    sub.add_parser("clear", help="clear the prompt (the policy stops)")
    sub.add_parser("record", help="record a demonstration from the camera and make it the prompt")
    sub.add_parser("show", help="print the active prompt")
    c = sub.add_parser("calibrate", help="calibrate the out-of-distribution threshold on held-out prompts (no ROS)")
    c.add_argument("data", nargs="+", help="held-out prompts: episode directories, dataset roots or video files")
    c.add_argument("--checkpoint", default="", help="policy checkpoint (default: models/policy.safetensors)")
    c.add_argument("--embodiment", default=None, help="only episodes of this embodiment (e.g. human)")
    c.add_argument("--limit", type=int, default=0, help="at most this many prompts (0: all)")
    c.add_argument("--quantile", type=float, default=0.99, help="threshold = this quantile of the distances")
    c.add_argument("--out", default="", help="output JSON (default: <checkpoint stem>.prompt_ood.json beside it)")
    return ap


def _held_out(paths: list[str], embodiment: str | None):
    """The prompts under ``paths``: episodes of dataset roots (filtered by embodiment), episodes, videos."""
    from humanprompt_ros.data import META_FILE, VIDEO_SUFFIXES, iter_episodes, load_prompt

    for p in map(Path, paths):
        bare = p.is_dir() and any(f.suffix.lower() in VIDEO_SUFFIXES for f in p.iterdir())
        if p.is_dir() and not (p / META_FILE).is_file() and not bare:
            yield from iter_episodes(p, embodiment=embodiment)
        else:
            yield load_prompt(p)


def calibrate_command(args: argparse.Namespace) -> int:
    """``humanprompt-prompt calibrate``: see the module docstring."""
    from humanprompt_ros.paths import resolve_checkpoint
    from humanprompt_ros.policies.learned import LearnedPolicy
    from humanprompt_ros.policies.prompt_fit import calibrate, calibration_path, has_prototypes

    path = resolve_checkpoint(args.checkpoint)
    try:
        policy = LearnedPolicy(path)
        if not has_prototypes(policy.model):
            raise ValueError(f"{path}: not trained with PDCP skill prototypes on prompts: nothing to calibrate")
        distances, skipped = [], 0
        for ep in _held_out(args.data, args.embodiment):
            if ep.skill is not None and ep.skill not in policy.model.cfg.skills:
                skipped += 1  # a skill it never saw is out of distribution by definition
                continue
            report: dict = {}
            policy.encode(ep, report)
            distances.append(report["ood_distance"])
            if args.limit and len(distances) >= args.limit:
                break
        cal = calibrate(distances, path, args.quantile, policy.prompt_fps, args.data)
    except (OSError, ValueError) as exc:
        print(f"humanprompt-prompt calibrate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    out = cal.save(args.out or calibration_path(path))
    print(
        f"{cal.prompts} prompts ({skipped} of untrained skills skipped): distance mean {cal.mean:.4f}, max "
        f"{cal.max:.4f}; threshold (quantile {cal.quantile:g}) {cal.threshold:.4f} → {out}"
    )
    return EXIT_OK


def _domain_hint() -> str:
    return f"ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0 (unset)')}"


class Client:
    def __init__(self, node_name: str):
        import rclpy

        rclpy.init()
        self.node = rclpy.create_node("humanprompt_prompt_cli")
        self.target = node_name.rstrip("/") if node_name.startswith("/") else "/" + node_name.rstrip("/")

    def call(self, srv_type, name: str, request, wait: float, timeout: float):
        """The response, or raise TimeoutError with a readable reason."""
        import rclpy

        client = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=wait):
            raise TimeoutError(
                f"no {name} service after {wait:g} s: is the prompt encoder running (humanprompt-bringup ...)? "
                f"This shell has {_domain_hint()}."
            )
        future = client.call_async(request)
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        if not future.done():
            raise TimeoutError(f"{name} did not answer within {timeout:g} s")
        if future.exception() is not None:
            raise TimeoutError(f"{name} failed: {future.exception()}")
        return future.result()

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.try_shutdown()


def set_prompt(client: Client, path: str, wait: float, timeout: float) -> int:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    value = str(Path(path).expanduser().absolute())
    req = SetParameters.Request()
    req.parameters = [
        Parameter(name="prompt_video", value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
    ]
    resp = client.call(SetParameters, f"{client.target}/set_parameters", req, wait, timeout)
    result = resp.results[0] if resp.results else None
    if result is not None and result.successful:
        print(f"prompt set: {value}")
        return EXIT_OK
    reason = (result.reason if result is not None else "") or "no reason given"
    print(f"prompt refused: {reason} (the previous prompt stays active)", file=sys.stderr)
    return EXIT_REFUSED


def trigger(client: Client, service: str, verb: str, wait: float, timeout: float) -> int:
    from std_srvs.srv import Trigger

    resp = client.call(Trigger, f"{client.target}/{service}", Trigger.Request(), wait, timeout)
    if resp.success:
        print(f"{verb}: {resp.message}" if resp.message else verb)
        return EXIT_OK
    print(f"{verb} failed: {resp.message or 'no reason given'}", file=sys.stderr)
    return EXIT_REFUSED


def show(client: Client, wait: float) -> int:
    import rclpy
    from std_msgs.msg import String

    from humanprompt_ros.ros import topics

    got = []
    client.node.create_subscription(String, topics.PROMPT.name, got.append, topics.qos_profile(topics.PROMPT))
    deadline = time.monotonic() + wait
    while not got and time.monotonic() < deadline:
        rclpy.spin_once(client.node, timeout_sec=0.1)
    if not got:
        print(
            f"no prompt received on {topics.PROMPT.name} within {wait:g} s (none set, or the prompt encoder is not "
            f"running; {_domain_hint()})",
            file=sys.stderr,
        )
        return EXIT_NO_ANSWER
    print(got[-1].data)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "calibrate":
        return calibrate_command(args)
    client = Client(args.node)
    try:
        if args.command == "set":
            return set_prompt(client, args.path, args.wait, args.timeout)
        if args.command == "clear":
            return trigger(client, "clear_prompt", "prompt cleared", args.wait, args.timeout)
        if args.command == "record":
            return trigger(client, "record_prompt", "prompt recorded", args.wait, args.timeout)
        return show(client, args.wait)
    except TimeoutError as exc:
        print(f"humanprompt-prompt: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":
    raise SystemExit(main())
