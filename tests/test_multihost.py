"""Training across hosts: learner_node and two sim_node workers on three network namespaces.

Hosts (tests/netns_util.py): `learner` (learner_node and this test's probe node, the action
client), `a` (/w0) and `b` (/w1), each with one veth cable to a switch; addresses 10.213.1.x exist
only inside those namespaces. Discovery is FastDDS's default multicast (ROS_AUTOMATIC_DISCOVERY_RANGE
SUBNET), transport UDPv4 only: processes on one machine could otherwise share memory past a cut
cable, which machines of a real lab cannot.

The rig and its checks are those of tests/test_faults_workers.py (same learner parameters:
worker_timeout 3 s, probe_period 0.3 s), with each worker on its own host. Faults:
- a worker host's cable pulled for (at least) CUT_S s mid-training and plugged back: per
  on_worker_failure (pause: wait for it; continue: its slot moves to the other host and back),
  the goal succeeds;
- the worker host's process SIGKILLed: the SIGKILL row of docs/FAULTS.md (pause), run as is;
- a switch that drops multicast: workers found through ROS_STATIC_PEERS or a discovery server.
Step accounting: the workers' own executed-step counters (sim_node's step info) are read before
and after each run by one audit step (tests `_executed`); every env step the learner counted is
executed once, and the only extra ones are the steps each stop executes without storing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import netns_util
import numpy as np
import pytest
from ros_util import BIN, NodeProcess, RosHarness, domain_id, wait_future, wait_until

rclpy = pytest.importorskip("rclpy")

import test_faults_workers as faults  # noqa: E402  (the rig and checks of the single-host fault tests)
from action_msgs.srv import CancelGoal  # noqa: E402

from drl_control.ros import names  # noqa: E402

DOMAIN = domain_id(57)
HOSTS = {"/w0": "a", "/w1": "b"}  # worker namespace -> host
CUT_S = 10.0  # how long a cable stays pulled (at least)
ACTIVE = ("connecting", "training", "paused", "recovering", "exporting")  # learner states of a running goal
# Every process of the module: any subnet (default discovery), no shared-memory transport.
NETWORK_ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "FASTDDS_BUILTIN_TRANSPORTS": "UDPv4",
               "ROS_DOMAIN_ID": str(DOMAIN)}


class Cluster(faults.Rig):
    """The fault tests' rig with each sim worker started on its own host."""

    def __init__(self, h: RosHarness, run_root: Path, net: netns_util.Network) -> None:
        self.net = net
        super().__init__(h, run_root)

    def start_sim(self, worker: str, seed: int):
        with self.net.inside(HOSTS[worker]):
            return super().start_sim(worker, seed)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    reason = netns_util.unavailable()
    if reason:
        pytest.skip(f"no network namespaces here: {reason}")
    netns_util.sweep_stale()
    net = netns_util.Network(["learner", *HOSTS.values()], tag="mh")
    try:
        # This test process is the learner host's action client: its probe node is made there.
        with pytest.MonkeyPatch.context() as mp, net.inside("learner"):
            for key, value in NETWORK_ENV.items():
                mp.setenv(key, value)
            h = RosHarness(DOMAIN, tmp_path_factory.mktemp("multihost_logs"))
            h.env.update(NETWORK_ENV)
            cluster = None
            try:
                cluster = Cluster(h, tmp_path_factory.mktemp("runs"), net)
                assert cluster.action.wait_for_server(timeout_sec=60), h.logs()
                yield cluster
            finally:
                if cluster is not None:
                    cluster.action.destroy()
                h.close()  # every node process, by pid
    finally:
        net.close()


@pytest.fixture(autouse=True)
def _leave_the_rig_idle(request):
    """After each test, also a failed one: every cable back in and no goal left running, so that
    the next test starts on a clean rig."""
    yield
    if "rig" not in request.fixturenames:
        return
    rig = request.getfixturevalue("rig")
    for host in HOSTS.values():
        rig.net.restore(host)
    if rig.status and rig.status[-1][1].state in ACTIVE:
        rig.h.call(CancelGoal, names.join("/", names.LEARNER_NODE, "train/_action/cancel_goal"),
                   CancelGoal.Request())  # an empty goal id cancels every goal
        wait_until(lambda: rig.status[-1][1].state not in ACTIVE, 120.0, what=f"the learner to stop\n{rig.h.logs()}")


@contextlib.contextmanager
def cable_pulled(rig: Cluster, host: str, seconds: float = CUT_S) -> Iterator[None]:
    """Cut `host`'s link for `seconds` or as long as the block runs, whichever is longer, then
    restore it, also when the block fails."""
    t_cut = time.monotonic()
    rig.net.cut(host)
    try:
        yield
        time.sleep(max(0.0, t_cut + seconds - time.monotonic()))
    finally:
        rig.net.restore(host)


def _executed(rig: Cluster) -> dict[str, list[int]]:
    """Each worker env's executed-step count as its sim_node reports it (in its step info), read
    by one audit step of every env from the learner host (that step is in the count)."""
    from drl_control.ros.vec_env import RosVecEnv

    venv = RosVecEnv(faults.WORKERS, context=rig.h.context, node_name="step_audit", timeout=15.0,
                     connect_timeout=30.0)
    try:
        venv.reset()
        venv.step(np.zeros((venv.num_envs, *venv.action_space.shape), dtype=np.float32))
        return {w: s["sim_counts"] for w, s in venv.stats().items()}
    finally:
        venv.close()


def _goal(rig: Cluster, run_dir: Path, timesteps: int, policy: str, past: int = 300):
    """Send a train goal and return (handle, feedback list) once feedback passed `past` steps."""
    from drl_control_interfaces.action import Train

    rig.set_policy(policy)
    feedback: list[tuple[float, int]] = []
    goal = Train.Goal(algorithm="sac", timesteps=timesteps, seed=5, run_dir=str(run_dir), overrides=faults.QUICK)
    handle = wait_future(rig.action.send_goal_async(
        goal, feedback_callback=lambda m: feedback.append((time.monotonic(), int(m.feedback.timesteps)))), 30)
    assert handle.accepted
    wait_until(lambda: feedback and feedback[-1][1] >= past, 90.0, what=f"training feedback\n{rig.h.logs()}")
    return handle, feedback


def test_link_cut_pause_waits_for_the_host_and_finishes(rig):
    run_dir, total = rig.run_root / "cut_pause", 1200  # inside the learner's run_root (the only place it writes)
    before = _executed(rig)
    handle, feedback = _goal(rig, run_dir, total, "pause")
    # The cable stays out until the pause is seen (at least CUT_S): on a loaded machine the
    # timeout (3 s) and the checkpoint before the pause have outlasted CUT_S.
    with cable_pulled(rig, "b"):
        wait_until(lambda: rig.status and rig.status[-1][1].state == "paused", 60.0,
                   what=f"'paused'\n{rig.h.logs()}")
        assert rig.alive_view() == [True, False]
        assert "sim worker /w1 lost" in rig.learner.log()
        stalled = feedback[-1][1]
        time.sleep(1.0)
        assert feedback[-1][1] == stalled  # no stepping while paused
    wait_until(lambda: rig.alive_view() == [True, True] and rig.status[-1][1].state == "training", 40.0,
               what=f"host b to rejoin\n{rig.h.logs()}")
    result = faults._check_result(rig, handle, run_dir, total)
    assert feedback[-1][1] == total and max(s for _, s in feedback) > stalled
    assert "1 rejoined" in result.message and "2 in-flight episodes truncated" in result.message
    # Every counted step executed once: each env served one slot, total / 2 stored steps. The one
    # stop executed a step on /w0 that was never stored; /w1's step in flight at the cut may or
    # may not have reached it before the cable went (its answer never came back).
    after = _executed(rig)
    done = {w: after[w][0] - before[w][0] - 1 for w in faults.WORKERS}
    assert done["/w0"] == total // 2 + 1, done
    assert done["/w1"] in (total // 2, total // 2 + 1), done


def test_link_cut_continue_moves_the_slot_across_hosts_and_back(rig):
    # Long enough that host a rejoins before training ends: on an idle machine host b alone made
    # ~2,000 steps while the cable was out, and the rejoin came ~2 s (~700 steps) after it was back.
    run_dir, total = rig.run_root / "cut_continue", 6000
    rejoins = rig.learner.log().count("rejoining")  # the learner (and its log) serve every test here
    before = _executed(rig)
    handle, feedback = _goal(rig, run_dir, total, "continue")
    with cable_pulled(rig, "a"):
        wait_until(lambda: rig.alive_view() == [False, True], 3.0 + 5.0, what=f"/w0 shown dead\n{rig.h.logs()}")
        assert "sim worker /w0 lost" in rig.learner.log()
        at_loss = feedback[-1][1]
        # Training goes on over host b alone, whose worker now serves both env slots. (The cable
        # stays out until that is seen: on a loaded machine the rebuild alone can outlast CUT_S.)
        wait_until(lambda: feedback[-1][1] >= at_loss + 100, 90.0, what=f"progress without /w0\n{rig.h.logs()}")
        assert "num_envs 1 -> 2" in rig.sims["/w1"].log()
    wait_until(lambda: rig.learner.log().count("rejoining") > rejoins, 40.0, what=f"host a to rejoin\n{rig.h.logs()}")
    assert feedback[-1][1] < total, "training ended before host a rejoined: the test needs more steps"
    result = faults._check_result(rig, handle, run_dir, total)
    assert feedback[-1][1] == total
    assert "num_envs 2 -> 1" in rig.sims["/w1"].log()
    assert "1 rejoined" in result.message and "4 in-flight episodes truncated" in result.message
    # /w1's own env served a slot in every step (total / 2 stored) and executed one unstored step
    # at each of the two stops (the loss, the rejoin); the slot it lent was closed with its count.
    after = _executed(rig)
    assert after["/w1"][0] - before["/w1"][0] - 1 == total // 2 + 2, (before, after)


def test_killed_worker_host_behaves_like_the_sigkill_row(rig):
    """docs/FAULTS.md, 'sim worker SIGKILLed mid-training, on_worker_failure:=pause': the same
    test, with the killed worker (and its restart) on host b and the learner on another host."""
    faults.test_pause_waits_for_the_killed_worker_and_finishes(rig)


# --- discovery without multicast ----------------------------------------------------------------


@pytest.fixture(scope="module")
def unicast_net():
    """Hosts `learner` and `a` on a switch that drops multicast; checked both ways with a datagram."""
    reason = netns_util.unavailable()
    if reason:
        pytest.skip(f"no network namespaces here: {reason}")
    net = netns_util.Network(["learner", "a"], tag="uc", subnet=2)
    try:
        assert net.multicast_reaches("a", "learner"), "multicast does not cross the test switch even before"
        net.no_multicast()
        assert not net.multicast_reaches("a", "learner") and not net.multicast_reaches("learner", "a")
        yield net
    finally:
        net.close()


# The learner host's client, a process of its own: made in this test process after the rig's
# participants, it found no worker either way (seen here). Likely causes: FastDDS reads
# ROS_DISCOVERY_SERVER once per process, and a static peer address is tried on the ports of the
# first few participant ids only, which count up per process.
UNICAST_CLIENT = """
import json
import numpy as np
from drl_control.ros.vec_env import RosVecEnv
venv = RosVecEnv(["/u0"], timeout=15.0, connect_timeout=60.0)
venv.reset()
for _ in range(5):
    venv.step(np.zeros((venv.num_envs, *venv.action_space.shape), dtype=np.float32))
print(json.dumps(venv.stats()["/u0"]))
venv.close()
"""


@pytest.mark.parametrize("how", ["ROS_STATIC_PEERS", "ROS_DISCOVERY_SERVER"])
def test_workers_are_found_without_multicast(unicast_net, how, tmp_path):
    """docs/SCALE.md's two ways for networks without multicast: a static peer list in every
    process, or a FastDDS discovery server (`fastdds discovery`, shipped by the ros-fastdds wheel)
    on the learner's host. A RosVecEnv on the learner host finds the worker on host a and steps it."""
    learner, worker = unicast_net.addresses["learner"], unicast_net.addresses["a"]
    if how == "ROS_STATIC_PEERS":
        extra = {how: f"{learner};{worker}"}
    else:
        fastdds = BIN / "fastdds"
        if not fastdds.is_file():
            pytest.skip(f"no FastDDS discovery tool at {fastdds} (the ros-fastdds wheel ships it)")
        extra = {how: f"{learner}:11811"}
    env = dict(os.environ, **NETWORK_ENV, **extra, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    with unicast_net.inside("learner"):
        server = None
        if how == "ROS_DISCOVERY_SERVER":
            with open(tmp_path / "server.log", "w") as log:  # its own group: the tool runs a child server
                server = subprocess.Popen([str(BIN / "fastdds"), "discovery", "-l", learner, "-p", "11811"], env=env,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        with unicast_net.inside("a"):
            sim = NodeProcess("drl_control.ros.sim_node", DOMAIN, ["-r", "__ns:=/u0", "-p", "num_envs:=2"],
                              log=tmp_path / "sim.log", env=env)
        try:
            client = subprocess.run([sys.executable, "-c", UNICAST_CLIENT], env=env, capture_output=True, text=True,
                                    timeout=120)
            assert client.returncode == 0, f"{client.stderr[-3000:]}\n--- sim_node\n{sim.log()[-2000:]}"
            stats = json.loads(client.stdout.strip().splitlines()[-1])
            assert stats["env_steps_executed"] == stats["env_steps_sent"] == 10 and not stats["gaps"], stats
        finally:
            sim.stop()
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(10)
