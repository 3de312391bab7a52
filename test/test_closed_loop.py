"""Acceptance of the ROS 2 stack in closed loop (issue 5), with real processes and real DDS.

One graph for the module: ``humanprompt-bringup sim:=true policy:=replay`` (sim driver, camera,
prompt encoder, policy, command), prompts in a temporary prompt directory
(``HUMANPROMPT_PROMPT_DIR``). Each test drives it from outside, like an operator:

* a human demonstration of the same task and seed, set through the parameter service from another
  process (``humanprompt-prompt set``), makes the simulated Allegro hand complete the task: one skill
  in real time, and two in a second graph run in lockstep (``lockstep:=true``), whose outcome does not
  depend on the machine's load (one seed each here; ``benchmarks/bench_closed_loop.py`` measures ≥ 10);
* bad prompts are refused with a reason, the old prompt stays, every node stays up;
* the camera stops (SIGSTOP) → the hand holds within 200 ms and diagnostics say so; it returns
  (SIGCONT) → control resumes;
* the policy process is killed → bringup restarts it, and no joint commands are sent meanwhile.

Synchronisation is on messages and service answers (DDS discovery can take seconds on a busy
machine), and a "nothing happened" check waits for a later message that would have come after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers.episodes import human_prompts
from helpers.ros import REPO_ROOT, RosProcesses, make_ros_env, require_rclpy, reserve_domain_id

pytestmark = [pytest.mark.ros, require_rclpy()]

TASKS = [("press_button", 1_000_000), ("knock_over", 1_000_000)]
MOTION = ("push_box", 1_000_000)  # a long episode for the camera and respawn tests (its outcome is not checked)
RUNNING = ("sim_driver", "camera", "prompt_encoder", "policy", "command")


@contextlib.contextmanager
def bringup_graph(root: Path, tasks: list[str], seed: int, *args: str):
    """``humanprompt-bringup sim:=true policy:=replay ARGS`` with human prompts of ``tasks`` at ``seed``
    in ``root``, ready; yields a namespace with env, bringup, client, prompts, root, procs."""
    from humanprompt_ros.ros.graph_client import GraphClient

    prompts = human_prompts(root, tasks, seed)
    with reserve_domain_id() as domain:
        env = make_ros_env(domain)
        env["HUMANPROMPT_PROMPT_DIR"] = str(root)
        with RosProcesses(env) as procs:
            bringup = procs.start("bringup", "-m", "humanprompt_ros.cli.bringup", "sim:=true", "policy:=replay", *args)
            client = GraphClient(domain)
            g = SimpleNamespace(env=env, bringup=bringup, client=client, prompts=prompts, root=root, procs=procs)
            try:
                client.wait_ready(timeout=120)
                yield g
            except Exception:
                print(bringup.log())
                raise
            finally:
                client.close()
                if bringup.returncode is None:
                    bringup.proc.send_signal(signal.SIGTERM)
                    bringup.wait(timeout=30)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    with bringup_graph(
        tmp_path_factory.mktemp("prompts"), [t for t, _ in TASKS + [MOTION]], TASKS[0][1], "respawn_delay:=1.5"
    ) as g:
        yield g


def pids(g) -> dict[str, int]:
    out = {}
    for line in g.bringup.stdout_lines:
        m = re.match(r"\[bringup\] (?:re)?started (\w+) \(pid (\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cli_set(g, path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "humanprompt_ros.cli.prompt", "--wait", "30", "set", str(path)],
        env=g.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_setter(g):
    def set_prompt(path):
        out = cli_set(g, path)
        return out.returncode == 0, out.stderr.strip() or out.stdout.strip()

    return set_prompt


def test_replay_prompt_completes_the_task_in_real_time(graph):
    """Real time (the robot's mode): the latched skill. Both skills, whatever the machine's load, are in
    the lockstep test below: knock_over's push is sensitive to the holds a loaded 2-core machine causes.

    A second episode is allowed when the first fails: once in CI (a shared 2-core machine, the hand held
    every 0.3–1 s for stale frames) the replay did not press within the 60-step episode, where it
    presses at step 12–13 here under load. The first failure is printed with the sim driver's and
    command node's diagnostics, so that a recurring one can be told from load."""
    task, seed = TASKS[0]
    failures = []
    for _ in range(2):
        r = graph.client.run_episode(
            task, seed, graph.prompts[(task, seed)], set_prompt=cli_setter(graph), timeout=90, stop_on_success=True
        )  # press_button's success is latched: final
        if r["success"]:
            break
        diag = {n: graph.client.node_status(n) for n in ("sim_driver", "command", "policy")}
        failures.append(f"{r}\ndiagnostics: {json.dumps(diag)}")
        print(f"real-time episode failed, trying once more:\n{failures[-1]}", file=sys.stderr)
    assert r["success"] and r["skill"] == "press_button", "\n".join(failures) + f"\n{graph.bringup.log()}"


def test_bad_prompts_are_refused_and_the_old_prompt_stays(graph):
    c, root = graph.client, graph.root
    good = graph.prompts[TASKS[0]]
    ok, reason = c.set_prompt(good)
    assert ok, reason
    c.peer.wait_until(
        lambda: c.prompt.last() and json.loads(c.prompt.last()[1].data).get("path") == good,
        10,
        "the good prompt on /humanprompt/prompt",
    )
    active = json.loads(c.prompt.last()[1].data)["id"]
    n_before = len(c.prompt)
    bad = root / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "notes.txt").write_text("not a video")
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "garbage.mp4").write_bytes(os.urandom(2048))
    no_actions = bad / "no_actions"
    shutil.copytree(good, no_actions, dirs_exist_ok=True)
    (no_actions / "actions.npy").unlink()
    import numpy as np

    from humanprompt_ros.data import write_video

    write_video(bad / "short.mp4", [np.zeros((16, 16, 3), np.uint8)] * 2, fps=10)
    write_video(bad / "bare.mp4", [np.zeros((16, 16, 3), np.uint8)] * 8, fps=10)
    cases = {
        str(root / "missing.mp4"): "not found",
        str(bad / "notes.txt"): "not a video file",
        str(bad / "empty.mp4"): "empty",
        str(bad / "garbage.mp4"): "not a readable video",
        str(bad / "short.mp4"): "too short",
        "/etc/hostname": "outside the configured prompt directories",
        str(no_actions): "needs the demonstration's unified actions",
        str(bad / "bare.mp4"): "needs the demonstration's unified actions",
    }
    for path, why in cases.items():
        ok, reason = c.set_prompt(path)
        assert not ok and why in reason, f"{path}: {ok} {reason!r}"
    out = cli_set(graph, bad / "notes.txt")  # the CLI from another process: exit 1 and the reason
    assert out.returncode == 1 and "not a video file" in out.stderr
    # a good prompt after them: what the refused ones might have published would come before its message
    barrier = graph.prompts[TASKS[1]]
    ok, reason = c.set_prompt(barrier)
    assert ok, reason
    c.peer.wait_until(
        lambda: json.loads(c.prompt.last()[1].data).get("path") == barrier,
        10,
        "the next good prompt on /humanprompt/prompt",
    )
    after = [json.loads(m.data) for _, m in c.prompt.snapshot()[n_before:]]
    assert [m.get("path") for m in after] == [barrier], f"prompt messages after {active}: {after}"
    for name, pid in pids(graph).items():
        assert alive(pid), f"{name} died\n{graph.bringup.log()}"


def command_holds(c, holds_before: int):
    """The command node's diagnostics once it holds on stale frames in a hold that began after it had held
    ``holds_before`` times (an older hold's status, e.g. from a slow frame under load, does not count)."""
    st = c.node_status("command")
    stale = st.get("message", "").startswith("holding: observation stale")
    return st if stale and int(st.get("holds", 0)) > holds_before else None


def stamp_s(msg) -> float:
    return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec


def command_holds_since(c, t: float) -> bool:
    """Whether diagnostics received after ``t`` (monotonic) say the command node holds on stale frames."""
    return any(
        st.name == "command" and st.message.startswith("holding: observation stale")
        for _, arr in c.diag.since(t)
        for st in arr.status
    )


def test_camera_stop_holds_the_hand_and_resume_continues(graph):
    c = graph.client
    c.reset_sim(*MOTION)
    ok, reason = c.set_prompt(graph.prompts[MOTION])
    assert ok, reason
    c.peer.wait_until(lambda: len(c.commands.since(time.monotonic() - 0.2)) > 5, 20, "joint commands")
    camera = pids(graph)["camera"]
    obs = c.peer.record("/humanprompt/observation")
    c.peer.wait_until(lambda: len(obs) > 2, 10, "observations")
    status = c.peer.wait_until(
        lambda: (st := c.node_status("command")).get("message") == "commanding" and st,
        10,
        "the command node's diagnostics: commanding",
    )
    os.kill(camera, signal.SIGSTOP)
    try:
        holds_before = int(status["holds"])
        c.peer.wait_until(lambda: command_holds(c, holds_before), 5, "the command node's diagnostics: holding")
        t_holding = time.monotonic()
        # judged by the messages' own stamps (the camera's capture time, the command node's publish time), so
        # that delivery delays on a loaded machine cannot matter
        last_obs = stamp_s(obs.last()[1])
        last_cmd = c.commands.last()
        assert stamp_s(last_cmd[1]) - last_obs < 0.2 + 0.05, (
            f"commands went on {stamp_s(last_cmd[1]) - last_obs:.3f} s after the last frame"
        )
        # the command node's next diagnostics, still holding: no command may have come in between
        c.peer.wait_until(lambda: command_holds_since(c, t_holding), 10, "later diagnostics: still holding")
        assert c.commands.last() is last_cmd, "commands while the camera is stopped"
        # the policy pauses too; its diagnostics (1 Hz) say so at their next publication
        c.peer.wait_until(
            lambda: "stale" in c.node_status("policy").get("message", ""), 5, "the policy's diagnostics: stale"
        )
    finally:
        os.kill(camera, signal.SIGCONT)
    t_cont = time.monotonic()
    c.peer.wait_until(lambda: c.commands.since(t_cont), 10, "joint commands after the camera returned")


def test_killing_the_policy_respawns_it_and_no_commands_meanwhile(graph):
    c = graph.client
    c.reset_sim(*MOTION)
    ok, reason = c.set_prompt(graph.prompts[MOTION])
    assert ok, reason
    c.peer.wait_until(lambda: c.commands.since(time.monotonic() - 0.2), 20, "joint commands")
    old = pids(graph)["policy"]
    n_lines = len(graph.bringup.stdout_lines)
    os.kill(old, signal.SIGKILL)
    t_kill = time.monotonic()
    kill_stamp = c.peer.node.get_clock().now().nanoseconds * 1e-9  # the clock the nodes stamp with

    def restarted():
        return any(re.match(r"\[bringup\] restarted policy", line) for line in graph.bringup.stdout_lines[n_lines:])

    c.peer.wait_until(restarted, 20, "bringup restarting the policy", poll=0.02)
    t_restart = time.monotonic()
    assert t_restart - t_kill > 1.0
    # by the commands' publish stamps: a command sent just before the kill may arrive late on a loaded machine
    gap = [t for t, m in c.commands.since(t_kill) if t < t_restart and stamp_s(m) > kill_stamp + 0.25]
    assert not gap, f"{len(gap)} joint commands while the policy was down"
    assert pids(graph)["policy"] != old
    c.peer.wait_until(lambda: c.commands.since(t_restart), 60, "joint commands from the restarted policy")
    for name, pid in pids(graph).items():
        assert alive(pid), f"{name} is not running\n{graph.bringup.log()}"


def test_lockstep_graph_completes_two_skills_as_the_benchmark_does(tmp_path):
    """bringup lockstep:=true: the sim steps once per command and each episode ends at the task's horizon,
    whatever the machine's speed; replaying the same scene's human demo (prompt set through the parameter
    service from another process) completes both skills, as ``humanprompt-sim eval --policy replay
    --prompt-seed same`` does."""
    with bringup_graph(tmp_path, [t for t, _ in TASKS], TASKS[0][1], "lockstep:=true") as g:
        results = [
            g.client.run_episode(task, seed, g.prompts[(task, seed)], set_prompt=cli_setter(g), timeout=120)
            for task, seed in TASKS
        ]
        status = g.client.node_status("sim_driver")
        assert all(r["success"] for r in results), f"{results}\n{g.bringup.log()}"
    assert [r["steps"] for r in results] == [40, 40] and status.get("lockstep") == "true"  # the horizons, exactly
    assert {r["skill"] for r in results} == {"press_button", "knock_over"}
