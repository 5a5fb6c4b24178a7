"""sim_node env mode against hostile peers: several clients stepping one worker at once, run-time
parameter changes, absurd sizes at start, and the worker's imports (no torch).

Real processes on a private domain; each client is its own rclpy context (its own DDS participant),
as separate processes on the domain would be.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from ros_util import BIN, RosClient, domain_id, ros_env, sim_node, wait_future, wait_until

rclpy = pytest.importorskip("rclpy")

from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter

from drl_control.ros import names
from drl_control_interfaces.srv import EnvReset, EnvSpec, EnvStep

DOMAIN = domain_id(37)
NS = "/hostile"
CLIENTS = 3
IN_FLIGHT = 6  # per client: 18 requests queued at once, more than a KEEP_LAST(10) history holds
REQUESTS = 60  # per client
FLOOD = 50  # requests the flooding client keeps in flight (5 x the default request history)


@pytest.fixture(scope="module")
def worker():
    proc = sim_node(DOMAIN, NS, num_envs=1, max_num_envs=4)
    client = RosClient(DOMAIN, "test_hostile_probe")
    try:
        yield client, proc
    finally:
        client.close()
        assert proc.stop() == 0, proc.log()


def _answered_once(step, request, tries: int = 6, each_s: float = 5.0) -> None:
    """wait_for_service says the server reads our requests, not that it has matched our response
    reader yet: a response sent before that is lost (a DDS discovery race, seen on CI's first
    request). One answered call proves both directions before the flood is counted."""
    for _ in range(tries):
        answered = threading.Event()
        step.call_async(request).add_done_callback(lambda _f, e=answered: e.set())
        if answered.wait(each_s):
            return
    raise AssertionError(f"no answer to a first step request in {tries} tries")


def _flood(domain: int, tag: int, answers: list, failures: list, start: threading.Barrier) -> None:
    """One client: REQUESTS step requests, IN_FLIGHT of them outstanding at any time, once every
    client has had an answer (so no warm-up step falls among the counted ones)."""
    client = RosClient(domain, f"hostile_client_{tag}")
    try:
        step = client.node.create_client(EnvStep, names.sim_service(NS, names.STEP))
        assert step.wait_for_service(timeout_sec=30.0)
        request = EnvStep.Request(action_dim=3, actions=[0.0, 0.0, 0.0])
        slots = threading.Semaphore(IN_FLIGHT)
        got: list = []
        _answered_once(step, request)
        start.wait(60.0)
        futures = []
        for _ in range(REQUESTS):
            slots.acquire()
            future = step.call_async(request)
            future.add_done_callback(lambda f: (got.append(f.result()), slots.release()))
            futures.append(future)
        done = [wait_future(f, 60.0, what="a step response") for f in futures]
        answers.append(done)
    except Exception as exc:  # noqa: BLE001 - reported by the test thread
        failures.append(f"client {tag}: {type(exc).__name__}: {exc}")
    finally:
        client.close()


def test_concurrent_clients_all_answered(worker):
    """Three clients with 6 requests in flight each: every request gets its answer (with KEEP_LAST
    10 some were silently dropped and their clients waited forever)."""
    probe, proc = worker
    reset = wait_future_call(probe, EnvReset, names.RESET, EnvReset.Request(seeds=[0]))
    assert reset.success, reset.message
    answers: list = []
    failures: list = []
    start = threading.Barrier(CLIENTS)
    threads = [threading.Thread(target=_flood, args=(DOMAIN, i, answers, failures, start)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120.0)
    assert not failures, "\n".join(failures) + "\n" + proc.log()[-3000:]
    assert len(answers) == CLIENTS
    for responses in answers:
        assert len(responses) == REQUESTS and all(r.success for r in responses), [r.message for r in responses]
    counts = sorted(int(_step_count(r)) for responses in answers for r in responses)
    # the one env executed every request once, in turn: its counts are 1..N without gap or repeat
    assert counts == list(range(counts[0], counts[0] + CLIENTS * REQUESTS))
    assert proc.alive()


def test_a_flooding_client_delays_others_but_drops_none_of_theirs(worker):
    """One client keeps FLOOD requests in flight (it never waits); another steps as a RosVecEnv does
    (one request, a 30 s timeout) meanwhile: every one of its requests is answered, in turn, and
    the worker is up and answering after the flood."""
    probe, proc = worker
    assert wait_future_call(probe, EnvReset, names.RESET, EnvReset.Request(seeds=[1])).success
    flooder = RosClient(DOMAIN, "hostile_flooder")
    stop = threading.Event()
    try:
        step = flooder.node.create_client(EnvStep, names.sim_service(NS, names.STEP))
        assert step.wait_for_service(timeout_sec=30.0)
        request = EnvStep.Request(action_dim=3, actions=[0.0, 0.0, 0.0])
        slots = threading.Semaphore(FLOOD)

        def flood() -> None:
            while not stop.is_set():
                if slots.acquire(timeout=0.5):
                    step.call_async(request).add_done_callback(lambda _f: slots.release())

        thread = threading.Thread(target=flood, daemon=True)
        thread.start()
        answers = []
        client = probe.node.create_client(EnvStep, names.sim_service(NS, names.STEP))
        try:
            _answered_once(client, request)  # a new client: its first answer may race discovery
            for _ in range(10):
                answers.append(wait_future(client.call_async(request), 30.0, what="a step answer during the flood"))
        finally:
            stop.set()
            probe.on_executor(probe.node.destroy_client, client)
        thread.join(5.0)
        assert len(answers) == 10 and all(r.success for r in answers)
        counts = [_step_count(r) for r in answers]
        assert counts == sorted(counts) and len(set(counts)) == 10  # in turn, each executed once
    finally:
        flooder.close()
    assert proc.alive(), proc.log()[-3000:]
    after = wait_future_call(probe, EnvStep, names.STEP, request)
    assert after.success


def _step_count(response) -> int:
    import json

    return json.loads(response.infos_json)[0][names.STEP_COUNT]


def wait_future_call(probe: RosClient, srv_type, service: str, request):
    return probe.call(srv_type, names.sim_service(NS, service), request, timeout=30.0)


def _set(probe: RosClient, **params: object):
    request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in params.items()])
    response = probe.call(SetParameters, names.join(NS, names.SIM_NODE, "set_parameters"), request, timeout=30.0)
    return response.results


@pytest.mark.parametrize("name, value", [
    ("num_envs", 5), ("num_envs", 0), ("num_envs", 256), ("num_envs", "2"), ("max_num_envs", 64),
    ("env_id", "DrlControl/IiwaPush-v0"), ("seed", 3), ("publish_rate", 1e6), ("trail_length", 10**9),
    ("mode", "robot"), ("use_sim_time", True),
])
def test_sizes_and_fixed_parameters_refused(worker, name, value):
    probe, proc = worker
    (result,) = _set(probe, **{name: value})
    assert not result.successful and result.reason, (name, value)
    spec = wait_future_call(probe, EnvSpec, names.SPEC, EnvSpec.Request())
    assert spec.num_envs == 1 and spec.env_id == "DrlControl/IiwaReach-v0"
    assert proc.alive()


def test_num_envs_within_bound_taken(worker):
    probe, _proc = worker
    (result,) = _set(probe, num_envs=4)
    assert result.successful, result.reason
    wait_until(lambda: wait_future_call(probe, EnvSpec, names.SPEC, EnvSpec.Request()).num_envs == 4, 10.0,
               what="num_envs 4 in ~/spec")
    (result,) = _set(probe, num_envs=1)
    assert result.successful, result.reason
    assert wait_future_call(probe, EnvSpec, names.SPEC, EnvSpec.Request()).num_envs == 1


@pytest.mark.parametrize("args", [
    ["-p", "num_envs:=65", "-p", "max_num_envs:=64"], ["-p", "max_num_envs:=1000"], ["-p", "num_envs:=0"],
    ["-p", "publish_rate:=-1.0"], ["-p", "mode:=both"],
])
def test_absurd_sizes_at_start_exit_2(args, tmp_path):
    proc = subprocess.run([str(BIN / "sim_node"), "--ros-args", *args], env=ros_env(DOMAIN), capture_output=True,
                          text=True, timeout=60.0)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("sim_node: error:")]
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr)


def test_env_worker_does_not_import_torch():
    code = ("import sys\n"
            "from drl_control.ros import sim_node\n"
            "from drl_control.ros.sim_env_worker import make_envs\n"
            "env = make_envs('DrlControl/IiwaPickAndPlace-v0', 1)[0]\n"
            "env.reset(seed=0); env.step(env.action_space.sample())\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'stable_baselines3'))\n"
            "print(loaded)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120.0,
                         env=ros_env(DOMAIN))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout[:2000]


def test_worker_answers_after_floods(worker):
    probe, proc = worker
    response = wait_future_call(probe, EnvStep, names.STEP, EnvStep.Request(action_dim=3, actions=[0.1, 0.0, 0.0]))
    assert response.success and np.all(np.isfinite(np.asarray(response.rewards)))
    assert proc.alive()
