"""`drl-control demo --env DrlControl/IiwaPush-v0 --artifact DIR`: a trained object-task policy
deployed through controller_node on a robot-mode sim, over N seeded episodes.

The `deploy` stack runs sim_node in robot mode (the task's object on `object_pose`, episodes on
its `~/reset`) and controller_node with the artifact. For each goal i the demo, a client like any
user's (topics and services only):
1. disables the controller (`~/enable false`: no commands while the arm jumps);
2. starts an episode on the sim (`~/reset`, seed = seed + i): the arm at home, object and goal
   sampled as the goal env samples them for that seed;
3. waits until the controller's state gate can take the arm's jump to home (the time the arm
   would need at its datasheet speeds) and `object_pose` shows the new object;
4. sends the goal (`~/set_goal`) and enables the controller;
5. watches `object_pose` until the object has stayed within the task's success distance (from
   the artifact) for `settle_s`, or the episode time runs out (default: twice the training
   episode); success is the final object-goal distance below the success distance, as the goal
   env's `is_success` at an episode's end.
Summary: success rate over N and mean final distance, printed and written to summary.json (and
to --json PATH if asked); the controller's MCAP recording and the nodes' log sit beside it.
A policy with a gripper action (PickAndPlace) is refused before anything starts: controller_node
has no gripper command interface (deploy.profiles).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, PoseStamped
from std_srvs.srv import SetBool

from drl_control.deploy.profiles import gripper_problem
from drl_control.errors import EXIT_INTERRUPTED, UserError
from drl_control.robot import iiwa14
from drl_control.ros import conversions as conv
from drl_control.ros import names
from drl_control.ros.demo import DemoClient, demo_output_dir, start_stack
from drl_control.sim.registration import MAX_EPISODE_STEPS
from drl_control_interfaces.msg import ControllerStatus
from drl_control_interfaces.srv import EnvReset, SetGoal

SERVICE_WAIT_S = 60.0  # the stack's nodes start in parallel; a loaded machine takes a while
ANSWER_S = 10.0
GATE_MARGIN_S = 0.3  # beyond the arm's own jump time (stamps, transport jitter)


@dataclass
class ObjectDemoConfig:
    out_dir: Path
    artifact: str
    env_id: str
    goals: int = 20
    seed: int = 0
    episode_timeout_s: float | None = None  # None: twice the training episode
    settle_s: float = 0.4
    json_path: Path | None = None


class ObjectWatch:
    """The demo's view of `object_pose` (the latest position and its stamp, wall seconds) and of
    the controller's status."""

    def __init__(self, client: DemoClient) -> None:
        self.position: np.ndarray | None = None
        self.stamp = 0.0
        self.received = 0
        self.status: ControllerStatus | None = None
        self.states: list[str] = []  # the controller's states since `states` was last cleared
        client.node.create_subscription(PoseStamped, "/" + names.OBJECT_POSE, self._on_pose, 10)
        client.node.create_subscription(ControllerStatus, names.private("/", names.CONTROLLER_NODE, names.STATUS),
                                        self._on_status, 10)

    def _on_status(self, msg: ControllerStatus) -> None:
        self.status = msg
        self.states.append(msg.state)

    def _on_pose(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        self.position = np.array([p.x, p.y, p.z])
        self.stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.received += 1


def _artifact_facts(artifact: str, env_id: str | None) -> tuple[str, float, float]:
    """(env id, success distance, control rate) of a verified artifact; it must be an object task's."""
    from drl_control.deploy.artifact import read_artifact

    meta, _ = read_artifact(artifact, env_id=env_id)
    spec = meta["env_spec"]
    if not any(name == "object_pos" for name, _ in spec["observation_layout"]):
        raise UserError(f"--artifact {artifact}: a {meta['env_id']} policy has no object; this demo deploys "
                        "object tasks (Push), `drl-control demo` without --artifact trains Reach")
    # refused here, before a stack starts, rather than found as "no policy loaded" in nodes.log
    problem = gripper_problem(spec, "")
    if problem:
        raise UserError(f"--artifact {artifact}: cannot be deployed through controller_node: {problem}")
    return meta["env_id"], float(spec.get("distance_threshold", 0.05)), float(spec["control_hz"])


def _wait_service(client: DemoClient, srv_type: Any, name: str) -> Any:
    service = client.node.create_client(srv_type, name)
    if not service.wait_for_service(timeout_sec=SERVICE_WAIT_S):
        raise RuntimeError(f"{name} did not come up (see nodes.log)")
    return service


def _call(client: DemoClient, service: Any, request: Any) -> Any:
    return client.wait(service.call_async(request), ANSWER_S)


def _enable(client: DemoClient, enable: Any, on: bool, patience_s: float = 15.0) -> None:
    """Enabling is refused until the controller sees the sim subscribe to its commands: retry."""
    deadline = time.monotonic() + patience_s
    reply = _call(client, enable, SetBool.Request(data=on))
    while not reply.success and time.monotonic() < deadline:
        time.sleep(0.2)
        reply = _call(client, enable, SetBool.Request(data=on))
    if not reply.success:
        raise RuntimeError(f"controller refused to {'enable' if on else 'disable'}: {reply.message}")


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _episodes(client: DemoClient, watch: ObjectWatch, cfg: ObjectDemoConfig, threshold: float,
              timeout_s: float) -> list[dict[str, Any]]:
    reset = _wait_service(client, EnvReset, names.private("/", names.SIM_NODE, names.RESET))
    set_goal = _wait_service(client, SetGoal, names.private("/", names.CONTROLLER_NODE, names.SET_GOAL))
    enable = _wait_service(client, SetBool, names.private("/", names.CONTROLLER_NODE, names.ENABLE))
    if not _wait(lambda: client.joints and watch.position is not None, 30.0):
        raise RuntimeError("no joint_states and object_pose from the robot-mode sim (see nodes.log)")
    if not _wait(lambda: watch.status is not None and watch.status.policy_loaded, SERVICE_WAIT_S):
        said = f" ({watch.status.reason})" if watch.status is not None else ""
        raise RuntimeError(f"controller_node did not load the artifact{said}; its reason is in nodes.log")
    spec = iiwa14()
    records = []
    for i in range(cfg.goals):
        seed = cfg.seed + i
        _enable(client, enable, False)
        q_before = np.array([client.joints[n] for n in spec.joint_names])
        reply = _call(client, reset, EnvReset.Request(seeds=[seed]))
        if not reply.success:
            raise RuntimeError(f"sim_node refused the episode: {reply.message}")
        reset_at = time.time()
        batch = conv.msg_to_batch(reply.batch)
        # EnvBatch carries float32: back to the micrometre, so a goal on the table (z = 0.02 m, the
        # bottom of the controller's goal box) is not read as 0.0199999996 and refused.
        start, goal = (np.round(batch[k][0].astype(float), 6) for k in ("achieved_goal", "desired_goal"))
        # The controller's state gate takes the jump once the arm could have moved that far.
        jump_s = float(np.max(np.abs(q_before - spec.home) / spec.max_velocity))
        time.sleep(jump_s + GATE_MARGIN_S)
        if not _wait(lambda t=reset_at: watch.stamp > t, 10.0):
            raise RuntimeError("object_pose stopped (see nodes.log)")
        answer = _call(client, set_goal, SetGoal.Request(goal=Point(x=goal[0], y=goal[1], z=goal[2])))
        if not answer.success:
            raise RuntimeError(f"controller refused the goal {np.round(goal, 3).tolist()}: {answer.message}")
        _enable(client, enable, True)
        watch.states = []
        begin = time.monotonic()
        reached_at, within_since = None, None
        while time.monotonic() - begin < timeout_s:
            distance = float(np.linalg.norm(watch.position - goal))
            if distance < threshold:
                reached_at = reached_at if reached_at is not None else time.monotonic() - begin
                within_since = within_since or time.monotonic()
                if time.monotonic() - within_since >= cfg.settle_s:
                    break
            else:
                within_since = None
            time.sleep(0.02)
        final_object = watch.position.copy()
        final = float(np.linalg.norm(final_object - goal))
        states = list(watch.states)
        # the share of the controller's ticks that ran the policy (not holding): a low one says the
        # plumbing (stale poses, refused states), not the policy, decided the episode
        running = states.count("running") / len(states) if states else 0.0
        records.append({"seed": seed, "goal": goal.tolist(), "object_start": start.tolist(),
                        "object_final": final_object.tolist(), "final_distance": final,
                        "success": final < threshold, "time_to_reach_s": reached_at, "running_share": running})
        print(f"  goal {i + 1:>2}/{cfg.goals} (seed {seed}): object moved "
              f"{np.linalg.norm(final_object - start) * 100:4.1f} cm, final distance {final * 100:5.1f} cm"
              + (f", reached in {reached_at:.2f} s" if reached_at is not None else ", not reached")
              + ("" if running >= 0.9 else f"; the controller ran the policy in only {running:.0%} of its ticks "
                 "(see nodes.log)"), flush=True)
    _enable(client, enable, False)
    return records


def run_object_demo(cfg: ObjectDemoConfig) -> dict[str, Any]:
    env_id, threshold, control_hz = _artifact_facts(cfg.artifact, cfg.env_id)
    timeout_s = cfg.episode_timeout_s or 2.0 * MAX_EPISODE_STEPS / control_hz
    out = cfg.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    from drl_control.record.writer import check_writable

    recording = check_writable(out / "deployment.mcap")  # controller_node records the deployment
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    print(f"deploying {cfg.artifact} ({env_id}): sim_node robot mode + controller_node, {cfg.goals} seeded "
          f"episodes (success: object within {threshold * 100:g} cm of the goal; {timeout_s:g} s each)", flush=True)
    t0 = time.monotonic()
    with open(out / "nodes.log", "w") as log:
        client = DemoClient()
        try:
            watch = ObjectWatch(client)
            runner = start_stack("deploy", {"artifact": str(Path(cfg.artifact).resolve()), "env_id": env_id,
                                       "rviz": "false", "record": str(recording)}, log)
            try:
                records = _episodes(client, watch, cfg, threshold, timeout_s)
            finally:
                runner.stop()
            object_poses = watch.received
        finally:
            client.close()
    summary = {
        "env_id": env_id,
        "artifact_dir": str(Path(cfg.artifact).resolve()),
        "goals": cfg.goals,
        "seed": cfg.seed,
        "success_distance_m": threshold,
        "episode_timeout_s": timeout_s,
        "success_rate": float(np.mean([r["success"] for r in records])),
        "mean_final_distance_m": float(np.mean([r["final_distance"] for r in records])),
        "mean_running_share": float(np.mean([r["running_share"] for r in records])),
        "object_poses_received": object_poses,
        "deploy_s": time.monotonic() - t0,
        "recording": str(recording),
        "episodes": records,
    }
    text = json.dumps(summary, indent=1)
    (out / "summary.json").write_text(text)
    if cfg.json_path is not None:
        cfg.json_path.write_text(text)
    return summary


def print_object_summary(summary: dict[str, Any]) -> None:
    print(f"\n=== drl_control demo summary: {summary['env_id']} ===")
    print(f"deployment ({summary['goals']} goals): {summary['success_rate']:.0%} success, mean final "
          f"object-goal distance {summary['mean_final_distance_m'] * 100:.1f} cm, {summary['deploy_s']:.0f} s")
    print(f"policy running:        {summary['mean_running_share']:.0%} of the controller's ticks in the episodes")
    print(f"recording (MCAP):      {summary['recording']}  (drl-control view/plot/replay)")
    print(f"artifact:              {summary['artifact_dir']}")


def object_demo_cli(args: Any) -> int:
    """`drl-control demo --artifact DIR [--env ID]` (an object task's trained policy)."""
    if args.goals < 1:
        raise UserError("--goals must be positive")
    json_path = Path(args.json) if args.json else None
    if json_path is not None and not json_path.parent.is_dir():
        raise UserError(f"--json {json_path}: directory {json_path.parent} does not exist")
    if args.goal_timeout is not None and not args.goal_timeout > 0:
        raise UserError("--goal-timeout must be positive")
    cfg = ObjectDemoConfig(out_dir=Path(), artifact=args.artifact, env_id=args.env, goals=args.goals, seed=args.seed,
                           episode_timeout_s=args.goal_timeout, json_path=json_path)
    _artifact_facts(cfg.artifact, cfg.env_id)  # a wrong artifact: one line before any directory or node
    cfg.out_dir = demo_output_dir(args.out)
    print(f"demo directory: {cfg.out_dir}", flush=True)
    try:
        summary = run_object_demo(cfg)
    except KeyboardInterrupt:  # the nodes were stopped on the way out; what was written stays
        print(f"demo interrupted; what it wrote so far (nodes.log, deployment.mcap) is in {cfg.out_dir}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print_object_summary(summary)
    return 0
