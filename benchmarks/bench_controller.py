"""Deployed controller timing: policy inference, the whole control step, and over ROS 2 the command
period jitter at 100 Hz and the state-to-command latency.

    .venv/bin/python benchmarks/bench_controller.py [--artifact DIR] [--seconds 10]

Without --artifact a SAC Reach policy is trained for 1,500 steps and exported first (same network
size as a real run; only the weights' quality differs, which does not change timing).

- inference: DeployPolicy.act on one observation (normalization + MLP + rescale), in-process.
- control step: PolicyController.step (FK/Jacobian observation, inference, DLS action law,
  safety filter), in-process.
- command period: controller_node (its own process, rate_hz:=100) publishing position commands;
  inter-arrival times at a subscriber in this process; jitter = |period - 10 ms|.
- baseline: the same jitter measurement on an empty rclpy node with a 100 Hz timer, in the same
  run: the floor that Python rclpy + DDS + this machine's load give any node.
- state-to-command latency: this process plays the arm (joint_states at --state-hz, default 250 Hz as sim_node); every 150 ms it
  moves joint 1 by +-5 mrad and times the publication of that state until the first command that
  reflects it arrives. It includes waiting for the next 10 ms tick (uniform 0..10 ms) and two DDS hops.
Goals: inference p99 <= 1 ms, jitter p99 <= 2 ms. On a loaded machine the scheduler dominates the
jitter; `--rt 50` runs the controller (realtime_priority:=50), the baseline and the measuring side
under SCHED_FIFO, as a real-time driver would.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

BIN = Path(sys.executable).parent
RATE = 100.0


def make_artifact(workdir: Path) -> Path:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = workdir / "run"
    subprocess.run([str(BIN / "drl-control"), "train", "--algo", "sac", "--env", "DrlControl/IiwaReach-v0",
                    "--timesteps", "1500", "--seed", "0", "--out", str(run), "eval.episodes=2"],
                   check=True, env=env, capture_output=True)
    subprocess.run([str(BIN / "drl-control"), "export", str(run), str(workdir / "artifact")],
                   check=True, env=env, capture_output=True)
    return workdir / "artifact"


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values), q))


def in_process(artifact: Path, n: int) -> dict[str, list[float]]:
    import torch

    torch.set_num_threads(1)
    from drl_control.deploy.controller import PolicyController
    from drl_control.deploy.policy import DeployPolicy
    from drl_control.robot import iiwa14

    policy = DeployPolicy.load(artifact)
    ctrl = PolicyController(policy)
    ctrl.set_enabled(True)
    ctrl.set_goal([0.6, 0.1, 0.4])
    rng = np.random.default_rng(0)
    spec = iiwa14()
    obs = ctrl.obs.build(spec.home, np.zeros(7), ctrl.goal)
    for _ in range(200):
        policy.act(obs)
    inference, step = [], []
    for i in range(n):
        q = spec.home + rng.normal(0, 0.05, 7)
        obs = ctrl.obs.build(q, np.zeros(7), ctrl.goal)
        t0 = time.perf_counter()
        policy.act(obs)
        inference.append((time.perf_counter() - t0) * 1e3)
        ctrl.observe_joint_state(spec.joint_names, q, np.zeros(7), i * 0.01)
        t0 = time.perf_counter()
        ctrl.step(i * 0.01)
        step.append((time.perf_counter() - t0) * 1e3)
    return {"policy inference": inference, "control step (obs+policy+IK+safety)": step}


def over_ros(artifact: Path, seconds: float, domain: int, state_hz: float = 250.0, rt: int = 0) -> dict[str, list[float]]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from drl_control.robot import iiwa14
    from drl_control.ros import names
    from drl_control.ros.names import private
    from drl_control_interfaces.srv import SetGoal

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([str(BIN / "controller_node"), "--ros-args", "-p", f"artifact:={artifact}",
                             "-p", "autostart:=true", "-p", f"rate_hz:={RATE}", "-p", f"realtime_priority:={rt}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("bench_controller", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    arrivals: list[tuple[float, np.ndarray]] = []
    node.create_subscription(Float64MultiArray, "/" + names.FORWARD_POSITION_COMMANDS,
                             lambda m: arrivals.append((time.perf_counter(), np.asarray(m.data))), 100)
    pub = node.create_publisher(JointState, "/" + names.JOINT_STATES, 10)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    realtime(rt)
    try:
        client = node.create_client(SetGoal, private("/", names.CONTROLLER_NODE, names.SET_GOAL))
        if not client.wait_for_service(timeout_sec=30):
            raise RuntimeError("controller_node did not come up")
        request = SetGoal.Request()
        request.goal.x, request.goal.y, request.goal.z = 0.6, 0.1, 0.4
        future = client.call_async(request)
        while not future.done():
            time.sleep(0.01)
        spec = iiwa14()
        msg = JointState(name=list(spec.joint_names), velocity=[0.0] * 7)  # stamped at each send: unstamped are refused
        q = spec.home.copy()
        jumps: list[float] = []
        start = time.perf_counter()
        next_jump = start + 1.0
        sign = 1.0
        while time.perf_counter() - start < seconds + 1.0:
            now = time.perf_counter()
            if now >= next_jump:
                q[0] += sign * 0.005
                sign = -sign
                msg.position = q.tolist()
                wall = time.time()
                msg.header.stamp.sec, msg.header.stamp.nanosec = int(wall), int((wall % 1) * 1e9)
                pub.publish(msg)
                jumps.append(time.perf_counter())
                next_jump = now + 0.15
            else:
                msg.position = q.tolist()
                wall = time.time()
                msg.header.stamp.sec, msg.header.stamp.nanosec = int(wall), int((wall % 1) * 1e9)
                pub.publish(msg)
            time.sleep(1.0 / state_hz)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    times = np.array([t for t, _ in arrivals])
    measured = times > start + 1.0  # skip start-up
    periods = np.diff(times[measured]) * 1e3
    latency = []
    for t_jump in jumps:
        before = [c for t, c in arrivals if t < t_jump]
        after = [(t, c) for t, c in arrivals if t >= t_jump]
        if not before or not after:
            continue
        changed = next((t for t, c in after if not np.allclose(c, before[-1], atol=1e-12)), None)
        if changed is not None and changed - t_jump < 0.1:
            latency.append((changed - t_jump) * 1e3)
    return {
        "command period at 100 Hz": periods.tolist(),
        "command period jitter |T - 10 ms|": np.abs(periods - 1e3 / RATE).tolist(),
        "state-to-command latency": latency,
    }


def realtime(rt: int) -> None:
    """The measuring side gets the same priority as the measured node (a real driver runs RT)."""
    if rt > 0:
        from drl_control.ros.realtime import set_realtime_priority

        print(set_realtime_priority(rt))


BASELINE = """
import sys
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from std_msgs.msg import Float64MultiArray
rclpy.init()
node = rclpy.create_node("bench_baseline_tick")
pub = node.create_publisher(Float64MultiArray, "/bench_baseline/commands", 10)
node.create_timer(0.01, lambda: pub.publish(Float64MultiArray(data=[0.0] * 7)))
executor = SingleThreadedExecutor()
executor.add_node(node)
if int(sys.argv[1]) > 0:
    from drl_control.ros.realtime import set_realtime_priority
    set_realtime_priority(int(sys.argv[1]))
try:
    executor.spin()
except (KeyboardInterrupt, ExternalShutdownException):
    pass
"""


def baseline(seconds: float, domain: int, rt: int = 0) -> dict[str, list[float]]:
    """The floor under the controller: an empty rclpy node publishing 7 zeros from a 100 Hz timer."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float64MultiArray

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = subprocess.Popen([sys.executable, "-c", BASELINE, str(rt)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("bench_baseline_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    arrivals: list[float] = []
    node.create_subscription(Float64MultiArray, "/bench_baseline/commands",
                             lambda m: arrivals.append(time.perf_counter()), 100)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    realtime(rt)
    try:
        deadline = time.perf_counter() + 30
        while not arrivals and time.perf_counter() < deadline:
            time.sleep(0.01)
        time.sleep(seconds + 1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    times = np.array(arrivals)
    periods = np.diff(times[times > times[0] + 1.0]) * 1e3 if len(times) else np.zeros(0)
    return {"baseline: empty 100 Hz rclpy timer jitter": np.abs(periods - 1e3 / RATE).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--state-hz", type=float, default=250.0)
    parser.add_argument("--rt", type=int, default=0,
                        help="SCHED_FIFO priority for controller_node (realtime_priority), the baseline and the "
                             "measuring side; 0: normal scheduling")
    parser.add_argument("--domain", type=int, default=1 + (os.getpid() + 91) % 100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        artifact = args.artifact or make_artifact(Path(tmp))
        results = in_process(artifact, args.samples)
        results.update(over_ros(artifact, args.seconds, args.domain, args.state_hz, args.rt))
        results.update(baseline(args.seconds, args.domain, args.rt))
    load = os.getloadavg()[0]
    print(f"\nload average {load:.1f} on {os.cpu_count()} cores (jitter depends on it: compare with the baseline row); "
          f"{'SCHED_FIFO ' + str(args.rt) if args.rt else 'normal scheduling'}")
    print(f"{'metric (ms)':<44}{'n':>7}{'median':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for name, values in results.items():
        if not values:
            print(f"{name:<44}{0:>7}  (no samples)")
            continue
        print(f"{name:<44}{len(values):>7}{pct(values, 50):>9.3f}{pct(values, 90):>9.3f}"
              f"{pct(values, 99):>9.3f}{max(values):>9.3f}")
    inf99 = pct(results["policy inference"], 99)
    jit = results["command period jitter |T - 10 ms|"]
    jit99 = pct(jit, 99) if jit else float("nan")
    print(f"\ngoals: inference p99 {inf99:.3f} ms <= 1 ms: {'PASS' if inf99 <= 1 else 'FAIL'}; "
          f"jitter p99 {jit99:.3f} ms <= 2 ms: {'PASS' if jit99 <= 2 else 'FAIL'}")


if __name__ == "__main__":
    main()
