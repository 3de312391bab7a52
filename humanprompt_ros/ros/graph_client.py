"""Drive a running humanprompt_ros graph from another process, as an operator would: the sim
driver's task/seed/reset, the prompt encoder's parameter and services, the task status and the
nodes' diagnostics. Used by ``humanprompt-demo``, the closed-loop benchmark and its tests.
"""

from __future__ import annotations

import collections
import json
import time

from humanprompt_ros.ros.probe import Recorder


class BoundedRecorder(Recorder):
    """A :class:`Recorder` that keeps only the last ``keep`` messages (for runs of hours)."""

    def __init__(self, keep: int):
        super().__init__()
        self.items = collections.deque(maxlen=keep)


class GraphClient:
    """Drives a running graph from outside: the sim driver's task/seed/reset, the prompt encoder's
    parameter and services, the task status (all through a :class:`RosPeer`).

    ``keep``: keep only the last ``keep`` messages of each recorded topic (default: all; a soak of
    hours would otherwise hold every joint command and diagnostics array in memory)."""

    def __init__(self, domain_id: int, keep: int | None = None):
        from rcl_interfaces.srv import SetParameters
        from std_srvs.srv import Trigger

        from humanprompt_ros.ros import topics
        from humanprompt_ros.ros.probe import RosPeer

        self.peer = RosPeer(domain_id, name="closed_loop_client")
        n = self.peer.node

        def record(topic):
            if keep is None:
                return self.peer.record(topic)
            rec = BoundedRecorder(keep)
            n.create_subscription(topics.msg_class(topic), topic.name, rec, topics.subscription_qos(topic))
            return rec

        self.status = record(topics.TASK_STATUS)
        self.diag = record(topics.DIAGNOSTICS)
        self.commands = record(topics.JOINT_COMMANDS)
        self.prompt = record(topics.PROMPT)
        self.targets = record(topics.HAND_TARGET)
        self.sim_params = n.create_client(SetParameters, "/sim_driver/set_parameters")
        self.sim_reset = n.create_client(Trigger, "/sim_driver/reset")
        self.enc_params = n.create_client(SetParameters, "/prompt_encoder/set_parameters")
        self.enc_clear = n.create_client(Trigger, "/prompt_encoder/clear_prompt")
        self.enc_record = n.create_client(Trigger, "/prompt_encoder/record_prompt")
        self.policy_reset = n.create_client(Trigger, "/policy/reset")

    def close(self) -> None:
        self.peer.close()

    # -- calls ----------------------------------------------------------------------------------------
    def call(self, client, request, timeout: float = 30.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available after {timeout:.0f} s")
        fut = client.call_async(request)
        self.peer.wait_until(fut.done, timeout, f"an answer from {client.srv_name}")
        if fut.exception() is not None:
            raise fut.exception()
        return fut.result()

    def trigger(self, client, timeout: float = 30.0):
        from std_srvs.srv import Trigger

        return self.call(client, Trigger.Request(), timeout)

    def set_params(self, client, timeout: float = 60.0, **values):
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        req = SetParameters.Request()
        for k, v in values.items():
            if isinstance(v, bool):
                pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
            elif isinstance(v, int):
                pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
            else:
                pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(v))
            req.parameters.append(Parameter(name=k, value=pv))
        return self.call(client, req, timeout).results

    def set_prompt(self, path: str, timeout: float = 60.0):
        """(successful, reason) of setting ``prompt_video`` through the parameter service."""
        r = self.set_params(self.enc_params, timeout, prompt_video=str(path))[0]
        return r.successful, r.reason

    def last_status(self) -> dict | None:
        last = self.status.last()
        return json.loads(last[1].data) if last else None

    def wait_ready(self, timeout: float = 90.0) -> None:
        for c in (self.sim_params, self.sim_reset, self.enc_params, self.enc_clear):
            if not c.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {c.srv_name} not available after {timeout:.0f} s")
        self.peer.wait_until(lambda: self.last_status() is not None, timeout, "/humanprompt/task_status")
        self.peer.wait_until(
            lambda: self.peer.node.count_publishers("/humanprompt/observation") > 0, timeout, "the camera node"
        )
        self.peer.wait_until(
            lambda: self.peer.node.count_subscribers("/humanprompt/observation") >= 3,
            timeout,
            "the policy, command and prompt encoder nodes",
        )

    # -- episodes -------------------------------------------------------------------------------------
    def quiet(self, seconds: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no hand target or joint command has arrived for ``seconds`` (after a prompt clear:
        what the previous episode's graph still had in flight has landed)."""

        def still() -> bool:
            last = [r.last() for r in (self.targets, self.commands)]
            return all(x is None or time.monotonic() - x[0] > seconds for x in last)

        self.peer.wait_until(still, timeout, f"{seconds:g} s without hand targets or joint commands", poll=0.05)

    def reset_sim(self, task: str, seed: int) -> dict:
        """Clear the prompt, let the graph fall quiet, then reset the sim to (task, seed): no command of
        the previous episode can land in the new one."""
        self.trigger(self.enc_clear)
        self.quiet()
        res = self.set_params(self.sim_params, task=task, seed=int(seed))
        if not all(r.successful for r in res):
            raise RuntimeError(f"sim_driver refused task={task} seed={seed}: {[r.reason for r in res]}")
        resp = self.trigger(self.sim_reset, timeout=60.0)
        if not resp.success:
            raise RuntimeError(f"sim reset failed: {resp.message}")
        return json.loads(resp.message)

    def run_episode(
        self, task: str, seed: int, prompt: str, set_prompt=None, timeout: float = 60.0, stop_on_success: bool = False
    ) -> dict:
        """Reset the sim to (task, seed), set ``prompt`` and wait for the outcome."""
        self.reset_sim(task, seed)
        t0 = time.monotonic()
        ok, reason = (set_prompt or self.set_prompt)(prompt)
        if not ok:
            raise RuntimeError(f"prompt {prompt} refused: {reason}")

        def finished():
            s = self.last_status()
            if s is None or s.get("task") != task or s.get("seed") != seed or not s.get("started"):
                return None
            if s.get("done") or (stop_on_success and s.get("success")):
                return s
            return None

        s = self.peer.wait_until(finished, timeout, f"the end of the {task} seed {seed} episode", poll=0.05)
        return {
            "task": task,
            "skill": s.get("skill"),
            "seed": seed,
            "success": bool(s["success"]),
            "steps": s["step"],
            "seconds": round(time.monotonic() - t0, 2),
        }

    def node_status(self, name: str) -> dict:
        """The latest diagnostics values of node ``name``."""
        for _, arr in reversed(self.diag.snapshot()):
            for st in arr.status:
                if st.name == name:
                    return {"message": st.message, **{kv.key: kv.value for kv in st.values}}
        return {}
