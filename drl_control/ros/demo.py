"""The main job, end to end over ROS 2: train with sim workers, export, deploy, drive to goals.

1. `train` stack: two sim_node workers + learner_node; a Train action goal (SAC + HER on
   IiwaReach) with feedback printed as it comes.
2. The learner exports the deploy artifact.
3. `deploy` stack: sim_node in robot mode (the ros2_control contract of a real arm) and
   controller_node with the artifact; the demo enables it and sends goals on `goal`.
4. Summary: success rate, final distances, times, and the paths of a learning curve PNG, an
   end-effector trajectory plot and a GIF of the policy.

The demo is a client like any user's: it only talks to the nodes through their topics,
services and actions.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PointStamped
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

from drl_control.errors import EXIT_INTERRUPTED, UserError
from drl_control.learn.progress import SUCCESS_LABEL
from drl_control.paths import new_output_dir
from drl_control.robot import kinematics
from drl_control.ros import names
from drl_control.ros.spin import ThreadSafeActionClient
from drl_control.ros.stack import StackRunner, load_stack
from drl_control.sim.tasks import REACH_GOAL_HIGH, REACH_GOAL_LOW
from drl_control_interfaces.action import Train

ENV_ID = "DrlControl/IiwaReach-v0"


@dataclass
class DemoConfig:
    out_dir: Path
    timesteps: int = 4000
    workers: int = 2
    goals: int = 20
    seed: int = 0
    goal_timeout_s: float = 4.0
    settle_s: float = 0.4
    overrides: list[str] = field(default_factory=lambda: ["algorithm.gradient_steps=2"])


class DemoClient:
    """One rclpy node spun in a background thread; the demo's eyes and hands on the ROS graph."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("drl_control_demo", context=self.context)
        # One thread: a MultiThreadedExecutor's idle threads spin (holding the GIL) on a
        # subscription whose callback is running, which starved this client under 250 Hz joint_states.
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.joints: dict[str, float] = {}
        self.joint_stamp = 0.0
        self.node.create_subscription(JointState, "/" + names.JOINT_STATES, self._on_joints, 10)

    def _on_joints(self, msg: JointState) -> None:
        self.joints = dict(zip(msg.name, msg.position))
        self.joint_stamp = time.monotonic()

    def wait(self, future: Any, timeout: float) -> Any:
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise TimeoutError("no answer from the ROS graph in time")
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        # The spin thread ends with the executor: joined here, so no thread is left inside rclpy's
        # C++ code at exit (one Push demo run of three printed "terminate called without an active
        # exception" at exit before this join; the cause was not proven)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _train(client: DemoClient, cfg: DemoConfig) -> Any:
    action = ThreadSafeActionClient(client.node, Train, names.private("/", names.LEARNER_NODE, names.TRAIN))
    if not action.wait_for_server(timeout_sec=60.0):
        raise RuntimeError("learner_node's train action did not come up (see nodes.log)")
    goal = Train.Goal(algorithm="sac", env_id=ENV_ID, overrides=cfg.overrides, timesteps=cfg.timesteps,
                      seed=cfg.seed, run_dir="")  # a new run: an earlier demo's is kept
    last = [0.0]

    def feedback(msg: Any) -> None:
        fb = msg.feedback
        if time.monotonic() - last[0] > 2.0:
            last[0] = time.monotonic()
            rate = "n/a" if np.isnan(fb.success_rate) else f"{fb.success_rate:.0%}"
            left = (cfg.timesteps - fb.timesteps) / fb.env_steps_per_second if fb.env_steps_per_second > 0 else 0
            print(f"  training: {fb.timesteps:>6}/{cfg.timesteps} steps, {SUCCESS_LABEL} {rate}, "
                  f"{fb.env_steps_per_second:.0f} env steps/s, ~{left:.0f} s left", flush=True)

    handle = client.wait(action.send_goal_async(goal, feedback_callback=feedback), 30.0)
    if not handle.accepted:
        raise RuntimeError("learner_node rejected the training goal")
    result = client.wait(handle.get_result_async(), 3600.0).result
    if not result.success:
        raise RuntimeError(f"training failed: {result.message}")
    return result


def _sample_goals(cfg: DemoConfig) -> np.ndarray:
    rng = np.random.default_rng(cfg.seed + 12345)
    return rng.uniform(REACH_GOAL_LOW, REACH_GOAL_HIGH, size=(cfg.goals, 3))


def _drive(client: DemoClient, cfg: DemoConfig, goals: np.ndarray, joint_names: list[str]) -> dict[str, Any]:
    """Send each goal, watch the flange through joint_states (numpy FK), record the path."""
    enable = client.node.create_client(SetBool, names.private("/", names.CONTROLLER_NODE, names.ENABLE))
    if not enable.wait_for_service(timeout_sec=60.0):
        raise RuntimeError("controller_node's enable service did not come up (see nodes.log)")
    deadline = time.monotonic() + 30.0
    while not client.joints and time.monotonic() < deadline:
        time.sleep(0.05)
    if not client.joints:
        raise RuntimeError("no joint_states from the robot-mode sim")
    reply = client.wait(enable.call_async(SetBool.Request(data=True)), 10.0)
    while not reply.success and time.monotonic() < deadline + 15.0:  # refused until it sees the sim subscribe
        time.sleep(0.2)
        reply = client.wait(enable.call_async(SetBool.Request(data=True)), 10.0)
    if not reply.success:
        raise RuntimeError(f"controller refused to enable: {reply.message}")
    goal_pub = client.node.create_publisher(PointStamped, "/" + names.GOAL, 10)

    def flange() -> np.ndarray:
        q = np.array([client.joints[n] for n in joint_names])
        return kinematics.forward(q)[:3, 3]

    path, records = [], []
    for i, goal in enumerate(goals):
        msg = PointStamped()
        msg.header.frame_id = names.BASE_FRAME
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in goal)
        goal_pub.publish(msg)
        start = time.monotonic()
        reached_at = None
        within_since = None
        while time.monotonic() - start < cfg.goal_timeout_s:
            pos = flange()
            path.append((i, *pos))
            distance = float(np.linalg.norm(pos - goal))
            if distance < 0.05:
                reached_at = reached_at or time.monotonic() - start
                within_since = within_since or time.monotonic()
                if time.monotonic() - within_since > cfg.settle_s:
                    break
            else:
                within_since = None
            time.sleep(0.02)
        final = float(np.linalg.norm(flange() - goal))
        records.append({"goal": goal.tolist(), "final_distance": final, "success": final < 0.05,
                        "time_to_reach_s": reached_at})
        print(f"  goal {i + 1:>2}/{len(goals)}: final distance {final * 100:5.1f} cm"
              + (f", reached in {reached_at:.2f} s" if reached_at is not None else ", not reached"), flush=True)
    client.wait(enable.call_async(SetBool.Request(data=False)), 10.0)
    return {"goals": records, "path": path}


def _plot_trajectory(path: list, goals: np.ndarray, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.array(path)
    fig = plt.figure(figsize=(11, 5))
    views = [(fig.add_subplot(1, 2, 1), (1, 2), "x [m]", "y [m]", "top view"),
             (fig.add_subplot(1, 2, 2), (1, 3), "x [m]", "z [m]", "side view")]
    cmap = plt.get_cmap("viridis", len(goals))
    for ax, (a, b), xl, yl, title in views:
        for i in range(len(goals)):
            seg = data[data[:, 0] == i]
            ax.plot(seg[:, a], seg[:, b], color=cmap(i), lw=1.2)
        ax.scatter(goals[:, a - 1], goals[:, b - 1], marker="*", s=90, c=range(len(goals)), cmap=cmap,
                   edgecolors="k", zorder=3, label="goals")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(title)
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
    views[0][0].legend(loc="best")
    fig.suptitle("End-effector (flange) path under controller_node, sim_node robot mode")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _policy_gif(artifact_dir: str, out: Path, seed: int, episodes: int = 3) -> Path:
    """The deployed policy (artifact, no SB3) rolled out in the simulator, rendered off-screen."""
    import gymnasium as gym

    from drl_control.deploy.policy import DeployPolicy
    from drl_control.sim.media import EpisodeRecorder

    policy = DeployPolicy.load(artifact_dir)
    env = gym.make(policy.env_id)
    recorder = EpisodeRecorder(env)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + 777 + episode)
        recorder.new_episode()
        for _ in range(30):
            obs, _, _, _, info = env.step(policy.act(obs))
            recorder.capture(info)
    path = recorder.save(out)
    env.close()
    return path


def start_stack(stack: str, args: dict[str, str], log: Any) -> StackRunner:
    runner = StackRunner(load_stack(stack).resolve(args), out=log, grace=10.0)
    runner.start()
    return runner


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    out = cfg.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    from drl_control.record.writer import check_writable

    recording = check_writable(out / "deployment.mcap")  # controller_node records the deployment
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    log = open(out / "nodes.log", "w")  # noqa: SIM115 - closed below; the nodes' output goes here
    times: dict[str, float] = {}
    client = DemoClient()
    try:
        workers = "[" + ", ".join(f"/sim{i}" for i in range(cfg.workers)) + "]"
        print(f"[1/3] training SAC+HER on {ENV_ID} over ROS 2 with {cfg.workers} sim workers "
              f"({cfg.timesteps} env steps)", flush=True)
        t0 = time.monotonic()
        runner = start_stack("train", {"workers": workers, "env_id": ENV_ID, "run_root": str(out)}, log)
        try:
            result = _train(client, cfg)
        finally:
            runner.stop()
        times["train_s"] = time.monotonic() - t0
        print(f"  trained: held-out success {result.success_rate:.0%}; artifact {result.artifact_dir}", flush=True)

        print(f"[2/3] deploying: sim_node robot mode + controller_node, {cfg.goals} random goals", flush=True)
        t0 = time.monotonic()
        runner = start_stack("deploy", {"artifact": result.artifact_dir, "env_id": ENV_ID, "rviz": "false",
                                   "record": str(recording)}, log)
        try:
            goals = _sample_goals(cfg)
            from drl_control.robot import iiwa14

            drive = _drive(client, cfg, goals, list(iiwa14().joint_names))
        finally:
            runner.stop()
        times["deploy_s"] = time.monotonic() - t0

        print("[3/3] plots and video", flush=True)
        trajectory_png = _plot_trajectory(drive["path"], goals, out / "ee_trajectory.png")
        gif = _policy_gif(result.artifact_dir, out / "policy.gif", cfg.seed)
    finally:
        client.close()
        log.close()
    records = drive["goals"]
    summary = {
        "env_id": ENV_ID,
        "train_success_rate": result.success_rate,
        "deploy_success_rate": float(np.mean([r["success"] for r in records])),
        "deploy_mean_final_distance_m": float(np.mean([r["final_distance"] for r in records])),
        "deploy_median_time_to_reach_s": float(np.median([r["time_to_reach_s"] for r in records
                                                          if r["time_to_reach_s"] is not None] or [np.nan])),
        "times_s": times,
        "run_dir": result.run_dir,
        "artifact_dir": result.artifact_dir,
        "learning_curve_png": str(Path(result.run_dir) / "learning_curve.png"),
        "trajectory_png": str(trajectory_png),
        "gif": str(gif),
        "recording": str(recording),
        "goals": records,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    t = summary["times_s"]
    print("\n=== drl_control demo summary ===")
    print(f"training (over ROS):   {summary['train_success_rate']:.0%} success on held-out goals, {t['train_s']:.0f} s")
    print(f"deployment (20 goals): {summary['deploy_success_rate']:.0%} reached, mean final distance "
          f"{summary['deploy_mean_final_distance_m'] * 100:.1f} cm, median time to reach "
          f"{summary['deploy_median_time_to_reach_s']:.2f} s, {t['deploy_s']:.0f} s")
    print(f"learning curve:        {summary['learning_curve_png']}")
    print(f"trajectory plot:       {summary['trajectory_png']}")
    print(f"policy GIF:            {summary['gif']}")
    print(f"recording (MCAP):      {summary['recording']}  (drl-control view/plot/replay)")
    print(f"artifact:              {summary['artifact_dir']}")


def demo_output_dir(out: str | None) -> Path:
    """Each demo in a directory of its own: a new runs/demo_<time>, or `out` if it is new or empty."""
    if out is None:
        return new_output_dir("demo")
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{path}: exists and is not an empty directory; omit --out for a new runs/demo_<time>")
    return path


def demo_cli(args: Any) -> int:
    """`drl-control demo` handler (without --artifact: see drl_control.ros.object_demo)."""
    if args.timesteps < 1 or args.workers < 1 or args.goals < 1:
        raise UserError("--timesteps, --workers and --goals must be positive")
    if args.env not in (None, ENV_ID):
        raise UserError(f"--env {args.env}: without --artifact the demo trains {ENV_ID} only; pass --artifact DIR "
                        f"with a trained {args.env} policy (drl-control train, then export)")
    out = demo_output_dir(args.out)
    print(f"demo directory: {out}", flush=True)
    try:
        summary = run_demo(DemoConfig(out_dir=out, timesteps=args.timesteps, workers=args.workers,
                                      goals=args.goals, seed=args.seed))
    except KeyboardInterrupt:  # the nodes were stopped on the way out; what was written stays
        print(f"demo interrupted; what it wrote so far (nodes.log, run/) is in {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print_summary(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0
