"""Rollouts over sim workers on other hosts vs the same workers on the learner's host, in one run.

    sudo .venv/bin/python benchmarks/bench_multihost.py [--envs-per-worker 8] [--seconds 24] [--rounds 4]

Hosts are network namespaces on one virtual switch (tests/netns_util.py; root needed): the
client (a RosVecEnv stepping random actions, as learner_node's would) on host `learner`, one
sim_node of --envs-per-worker envs on each of hosts h0..h3, and four more sim_nodes on the
learner's host itself. Configurations, measured in interleaved rounds (bench_ros.interleaved):
  one host, SHM   1 / 2 / 4 local workers, FastDDS's default transports (shared memory)
  one host, UDP   the same workers, client on UDPv4 only (loopback)
  hosts, UDP      1 / 2 / 4 workers on 1 / 2 / 4 other hosts (veth + bridge), UDPv4
All of it shares this machine's cores: the ratios measure what the network path costs and how
the client scales with workers, not what more machines would add (they would add cores).
Also printed: the client's and the workers' CPU per step round, an EnvStep request / response
in bytes (CDR, as on the wire), bytes through a host's switch port per env step and while idle
(discovery, liveliness).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SUBNET"  # before bench_ros (it defaults to LOCALHOST)
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
import bench_ros  # noqa: E402  (sets the ROS domain and OMP threads before rclpy loads)
import netns_util  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

HOSTS = [f"h{i}" for i in range(4)]
COUNTS = (1, 2, 4)
TRANSPORT = "FASTDDS_BUILTIN_TRANSPORTS"


def _transport(value: str | None) -> None:
    """FastDDS reads this when a participant (a process, a RosVecEnv's context) is made."""
    if value is None:
        os.environ.pop(TRANSPORT, None)
    else:
        os.environ[TRANSPORT] = value


def _cpu(pids: list[int]) -> float:
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def step_message_sizes(worker: str, envs: int) -> tuple[int, int]:
    """One real EnvStep request and response of `worker`, serialized (CDR bytes on the wire)."""
    from rclpy.serialization import serialize_message
    from ros_util import RosClient

    from drl_control.ros import names
    from drl_control_interfaces.srv import EnvReset, EnvStep

    client = RosClient(bench_ros.DOMAIN, "bench_sizes")
    try:
        client.call(EnvReset, names.sim_service(worker, names.RESET), EnvReset.Request(), timeout=60)
        request = EnvStep.Request(actions=np.zeros(envs * 3, dtype=np.float32), action_dim=3)
        response = client.call(EnvStep, names.sim_service(worker, names.STEP), request, timeout=60)
        return len(serialize_message(request)), len(serialize_message(response))
    finally:
        client.close()


def wakeup_cost(workers: int, direct: bool = False, wakeups: int = 300) -> float:
    """CPU ms per wake-up of a RosVecEnv's client side holding the clients of `workers` workers (3
    each; nobody answers). direct=False: its executor, which rebuilds its wait set from every
    entity at each wake-up (a step round wakes it about once per answering worker); direct=True:
    the AnswerWait its step answers now come through (its wait set holds the step clients with a
    request out, one each here)."""
    import rclpy
    from rclpy.parameter import Parameter

    from drl_control.ros import names
    from drl_control.ros.answer_wait import AnswerWait
    from drl_control.ros.vec_env import _Executor  # RosVecEnv's own executor, measured alone
    from drl_control_interfaces.srv import EnvReset, EnvSpec, EnvStep

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_wakeup", context=context, start_parameter_services=False,
                             parameter_overrides=[Parameter("start_type_description_service", value=False)])
    executor = _Executor(context)
    try:
        steps = []
        for i in range(workers):
            for srv, name in ((EnvSpec, names.SPEC), (EnvReset, names.RESET), (EnvStep, names.STEP)):
                client = node.create_client(srv, names.sim_service(f"/idle{i}", name))
            steps.append(client)
        executor.add_node(node)
        wake = executor.spin_for
        if direct:
            answers = AnswerWait(context, steps)
            for i in range(workers):
                answers.send(i, EnvStep.Request(action_dim=3))
            wake = answers.spin
        for _ in range(20):
            wake(0.0)
        t0 = time.process_time()
        for _ in range(wakeups):
            wake(0.0)
        return (time.process_time() - t0) / wakeups * 1e3
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs-per-worker", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=24.0, help="measurement time per configuration, all rounds")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the configurations")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds of idle traffic measured per host port")
    args = ap.parse_args()
    reason = netns_util.unavailable()
    if reason:
        print(f"bench_multihost: cannot make network namespaces: {reason}", file=sys.stderr)
        return 2
    from drl_control.ros.vec_env import RosVecEnv

    k = args.envs_per_worker
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; ROS_DOMAIN_ID="
          f"{bench_ros.DOMAIN}; {k} envs per worker", flush=True)
    netns_util.sweep_stale()
    net = netns_util.Network(["learner", *HOSTS], tag="bench")
    runners, venvs = [], {}
    try:
        with net.inside("learner"):
            _transport(None)
            runners.append(bench_ros.start(bench_ros.sims(4, k, "local")))
            local = [f"/local{i}" for i in range(4)]
            _transport("UDPv4")
            for host in HOSTS:
                with net.inside(host):
                    runners.append(bench_ros.start(bench_ros.sims(1, k, f"{host}_")))
            remote = [f"/{h}_0" for h in HOSTS]
            for transport, label, workers in ((None, "one host, SHM", local), ("UDPv4", "one host, UDP", local),
                                              ("UDPv4", "hosts, UDP", remote)):
                _transport(transport)
                for n in COUNTS:
                    venvs[(label, n)] = RosVecEnv(workers[:n], node_name=f"bench_{len(venvs)}", connect_timeout=120)
            request_bytes, response_bytes = step_message_sizes(remote[0], k)
            fps = bench_ros.interleaved(venvs, args.seconds, args.rounds)
            cpu = {}  # (label, n) -> (client ms, sum of workers ms) per step round, one more pass
            sim_pids = {w: proc.pid for r in runners for node, proc in r.procs for w in [node.namespace]}
            for key, venv in venvs.items():
                pids = [sim_pids[w] for w in venv.worker_names]
                me, sims = _cpu([os.getpid()]), _cpu(pids)
                t0 = time.perf_counter()
                rate = bench_ros._rollout(venv, args.seconds / len(venvs))
                rounds = rate * (time.perf_counter() - t0) / venv.num_envs
                cpu[key] = ((_cpu([os.getpid()]) - me) / rounds * 1e3, (_cpu(pids) - sims) / rounds * 1e3)
            # Traffic through host h0's cable: idle (discovery, liveliness), then per step round of
            # its worker with the idle rate taken off (4 hosts stepping).
            before = net.port_bytes("h0")
            time.sleep(args.idle)
            idle = (net.port_bytes("h0") - before) / args.idle
            before, t0 = net.port_bytes("h0"), time.perf_counter()
            rate = bench_ros._rollout(venvs[("hosts, UDP", 4)], 4.0)
            elapsed = time.perf_counter() - t0
            per_step = (net.port_bytes("h0") - before - idle * elapsed) / (rate * elapsed / (4 * k))
            participants = len(sim_pids) + len(venvs)  # one per sim_node, one per RosVecEnv
    finally:
        for venv in venvs.values():
            venv.close()
        for runner in runners:
            runner.stop()
        net.close()

    rows = []
    for (label, n), value in fps.items():
        base = fps[(label, 1)]
        same = fps[("one host, SHM", n)]
        client, sims = cpu[(label, n)]
        rows.append((f"{label}: {n} worker(s) x {k} envs", value, f"{value / base:.2f}", f"{value / same:.2f}",
                     f"{client:.2f}", f"{sims:.2f}"))
    head = ("configuration", "env steps/s", "x 1 worker", "x one host SHM", "client ms/round", "workers ms/round")
    width = max(len(r[0]) for r in rows)
    print(f"\n{head[0]:<{width}}  " + "  ".join(f"{h:>{len(h)}}" for h in head[1:]))
    for row in rows:
        print(f"{row[0]:<{width}}  {row[1]:>{len(head[1])}.0f}  " +
              "  ".join(f"{c:>{len(h)}}" for c, h in zip(row[2:], head[2:])))
    for direct, what in ((False, "client executor"), (True, "client AnswerWait (step answers)")):
        print(f"\n{what}, CPU per wake-up with the clients of N workers: " +
              ", ".join(f"N={n}: {wakeup_cost(n, direct):.3f} ms" for n in (1, 10, 100)))
    print(f"EnvStep for {k} envs: request {request_bytes} B, response {response_bytes} B (CDR)")
    print(f"host h0's cable: idle {idle:.0f} B/s ({participants} DDS participants in the domain); 4 hosts "
          f"stepping: {per_step:.0f} B per step round of its worker beyond idle ({per_step / k:.0f} B per env step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
