"""humanprompt-prompt: set, clear or record the prompt of a running graph (no ``ros2`` CLI needed).

::

    humanprompt-prompt set /data/demos/pour.mp4      # = ros2 param set /prompt_encoder prompt_video /data/demos/pour.mp4
    humanprompt-prompt clear                         # = ros2 service call /prompt_encoder/clear_prompt std_srvs/srv/Trigger
    humanprompt-prompt record                        # = ros2 service call /prompt_encoder/record_prompt std_srvs/srv/Trigger
    humanprompt-prompt show                          # print the active prompt (/humanprompt/prompt, latched)

A plain client of the prompt encoder's standard services: ``set`` calls
``/prompt_encoder/set_parameters`` (rcl_interfaces/srv/SetParameters) with the string parameter
``prompt_video`` (the path made absolute, since the encoder runs elsewhere); ``clear`` and
``record`` call the ``std_srvs/srv/Trigger`` services. The result and its reason are printed.

Exit codes: 0 success; 1 the encoder refused (e.g. a bad prompt: the previous one stays active);
3 no answer: the service is not there (the encoder is not running, or runs on another
ROS_DOMAIN_ID) or the call timed out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_REFUSED, EXIT_NO_ANSWER = 0, 1, 3


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
    return ap


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
