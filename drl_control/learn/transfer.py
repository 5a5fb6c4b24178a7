"""`drl-control transfer`: a policy evaluated in transfer worlds THROUGH THE DEPLOY PATH.

The path is the one a real arm sees: deploy artifact (a run directory is exported first) ->
`deploy.controller.PolicyController` (observations from measured joint states, the shared action
law, the safety filter) at the artifact's control rate -> joint position commands -> in the
real-arm worlds, robot_interface_node's relay (its profile's safety filter at the profile's rate,
config/robot_profiles.yaml: velocity_scale 0.5, limit_margin 0.1) -> a driver model
(`sim.drivers`) at the driver's own rate -> the PyBullet arm. Nothing of the training env's step
is used but its world, arm, goal sampling and dynamics randomization.

Transfer worlds (sim configurations; `WORLDS`):

- `nominal`: the training simulator: ideal 25 Hz servo, nominal dynamics, the controller
  commanding the arm directly (as sim_node robot mode).
- `lbr`: lbr_fri_ros2_stack's command path (100 Hz, exponential smoothing tau 0.04 s, 1 cycle)
  behind the `lbr` profile's relay.
- `iiwa_ros2`: iiwa_ros2's (225 Hz, unfiltered, 1 cycle) behind the `iiwa_ros2` profile's relay.
- `perturbed`: a held-out reality, EVERY parameter OUTSIDE the ranges of the sim2real training
  preset (config/randomization/sim2real.yaml; tests/test_transfer.py checks it): driver at 80 Hz
  (preset 90..250), smoothing tau 0.08 s (0..0.06), latency 3 cycles (0..2), measurement noise
  3e-4 rad (0..2e-4); joint damping 1.5 N·m·s/rad (0..1), Coulomb friction 0.8 N·m (0..0.6), link
  masses x1.25 (0.85..1.15); control period jitter +-15 % (10 %); behind the `lbr` profile's relay.

Metrics per world: success_rate (TCP within the task's distance threshold at the end of the
episode, as the env's is_success), mean_final_distance (m), median_time_to_goal (s until the TCP
is first within the threshold; over the episodes that got there), mean_jerk (m/s^3, mean |third
difference of the TCP position| / dt^3 over the control ticks), safety_interventions (control
ticks on which the controller's safety filter, or the relay's filter at any of its ticks within,
changed or held the command; all episodes) and intervention_rate (their share of the ticks).

For recordings (`--record DIR`, one per world), `transfer()` takes `on_step(world, episode, record)`:
a callback after every control tick with a `TickRecord` (tick, time, measured and true joint
state, command sent, controller result, TCP, goal).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drl_control.errors import UserError
from drl_control.learn.evaluate import eval_seeds, is_artifact
from drl_control.sim.drivers import DRIVERS, DriverModel


@dataclass(frozen=True)
class TransferWorld:
    """A simulated reality: the driver's command path and fixed dynamics (degenerate ranges)."""

    name: str
    driver: DriverModel
    dynamics: dict[str, Any] = field(default_factory=dict)  # sim.randomization keys
    control_jitter: float = 0.0  # fraction by which a control period may vary
    profile: str | None = None  # robot_interface_node profile relaying to the driver (None: direct)
    description: str = ""


WORLDS: dict[str, TransferWorld] = {
    "nominal": TransferWorld("nominal", DRIVERS["ideal"], description="training simulator, ideal 25 Hz servo"),
    "lbr": TransferWorld("lbr", DRIVERS["lbr"], profile="lbr",
                         description="lbr_fri_ros2_stack: 100 Hz, tau 0.04 s, 1 cycle; lbr relay"),
    "iiwa_ros2": TransferWorld("iiwa_ros2", DRIVERS["iiwa_ros2"], profile="iiwa_ros2",
                               description="iiwa_ros2: 225 Hz, unfiltered, 1 cycle; iiwa_ros2 relay"),
    "perturbed": TransferWorld(
        "perturbed",
        DriverModel("perturbed", update_hz=80.0, tau=0.08, latency_cycles=3, measurement_noise=3e-4),
        {"joint_damping": [1.5, 1.5], "joint_friction": [0.8, 0.8], "link_mass": [1.25, 1.25]},
        control_jitter=0.15,
        profile="lbr",
        description="held out: every parameter outside the sim2real preset; lbr relay",
    ),
}


@dataclass
class TickRecord:
    """One control tick of a transfer episode (what a recorder writes)."""

    tick: int
    time: float
    q_measured: np.ndarray
    q: np.ndarray
    qd: np.ndarray
    command: np.ndarray | None
    result: Any  # deploy.controller.StepResult
    tcp: np.ndarray
    goal: np.ndarray


StepCallback = Callable[[str, int, TickRecord], None]


@dataclass
class _Episode:
    success: bool
    final_distance: float
    time_to_goal: float
    jerk: float
    interventions: int
    ticks: int


def _episode(env: Any, policy: Any, world: TransferWorld, seed: int, index: int,
             on_step: StepCallback | None) -> _Episode:
    from drl_control.deploy.controller import PolicyController

    sim = env.unwrapped
    sim.reset(seed=seed)
    arm, task = sim.arm, sim.task
    ctrl = PolicyController(policy)
    ok, why = ctrl.set_goal(task.goal)
    if not ok:
        raise ValueError(f"world {world.name}: the task's goal is refused by the controller: {why}")
    ctrl.set_enabled(True)
    names = list(arm.spec.joint_names)
    friction = None
    if sim.randomizer.friction is not None:
        def friction() -> None:
            sim.randomizer.apply_joint_friction(sim.world.client, arm.body, arm.joint_ids, sim._joint_axes)
    relay, relay_changed = None, [False]
    hook = friction
    if world.profile is not None:
        from drl_control.deploy.profiles import load_profile
        from drl_control.deploy.safety import SafetyFilter

        profile = load_profile(world.profile)
        relay = SafetyFilter(profile.safety_config(), arm.spec)
        relay.set_enabled(True)
        every = max(1, round(sim.world.config.physics_hz / profile.rate_hz))
        substep = [0]

        def hook() -> None:  # robot_interface_node's tick: measured state in, its decision to the driver
            if substep[0] % every == 0:
                sim.world.touch()  # a fresh read inside the control period
                now = t + substep[0] * sim.world.config.physics_dt
                relay.observe_state(np.array(arm.measured_joint_positions()), now)
                decision = relay.decide(now)
                relay_changed[0] = relay_changed[0] or bool(decision.reason)
                if decision.command is not None:
                    arm.drive(decision.command)
            substep[0] += 1
            if friction is not None:
                friction()
    rng = sim.np_random
    nominal = sim.world.substeps
    spread = max(1, round(nominal * world.control_jitter)) if world.control_jitter else 0
    t, threshold = 0.0, task.distance_threshold
    tcps, reached, interventions = [], math.nan, 0
    ticks = int(env.spec.max_episode_steps) if env.spec and env.spec.max_episode_steps else 50
    for tick in range(ticks):
        q_true, qd = (a.copy() for a in arm.joint_state())
        q_measured = np.array(arm.measured_joint_positions())
        ctrl.observe_joint_state(names, q_measured, qd, t)
        result = ctrl.step(t)
        relay_changed[0] = False
        if result.command is not None:
            if relay is None:
                arm.drive(result.command)
            else:
                relay.propose(result.command, t)
        substeps = nominal + (int(rng.integers(-spread, spread + 1)) if spread else 0)
        if relay is not None:
            substep[0] = 0
        arm.advance(substeps, hook)
        interventions += bool(result.reason) or relay_changed[0]
        t += substeps * sim.world.config.physics_dt
        tcp = np.array(arm.tcp_state()[0])
        tcps.append(tcp)
        if math.isnan(reached) and np.linalg.norm(tcp - task.goal) < threshold:
            reached = t
        if on_step is not None:
            on_step(world.name, index, TickRecord(tick, t, q_measured, q_true, qd, result.command, result, tcp,
                                                  np.array(task.goal)))
    final = float(np.linalg.norm(tcps[-1] - task.goal))
    p = np.array(tcps)
    dt = nominal * sim.world.config.physics_dt
    jerk = float(np.mean(np.linalg.norm(np.diff(p, n=3, axis=0), axis=1)) / dt**3) if len(p) > 3 else 0.0
    return _Episode(final < threshold, final, reached, jerk, interventions, ticks)


def evaluate_world(policy: Any, world: TransferWorld, seeds: Sequence[int],
                   on_step: StepCallback | None = None) -> dict[str, Any]:
    """One world's metrics over the episodes of `seeds` (the same goals in every world)."""
    import gymnasium as gym

    import drl_control  # noqa: F401 - registers the env ids

    env = gym.make(policy.env_id, driver=world.driver, randomization=world.dynamics or None)
    try:
        episodes = [_episode(env, policy, world, s, i, on_step) for i, s in enumerate(seeds)]
    finally:
        env.close()
    times = [e.time_to_goal for e in episodes if not math.isnan(e.time_to_goal)]
    total_ticks = sum(e.ticks for e in episodes)
    return {
        "description": world.description,
        "driver": {"update_hz": world.driver.update_hz, "tau": world.driver.tau,
                   "latency_cycles": world.driver.latency_cycles,
                   "measurement_noise": world.driver.measurement_noise},
        "dynamics": world.dynamics,
        "control_jitter": world.control_jitter,
        "episodes": len(episodes),
        "success_rate": float(np.mean([e.success for e in episodes])),
        "mean_final_distance": float(np.mean([e.final_distance for e in episodes])),
        "median_time_to_goal": float(np.median(times)) if times else None,
        "mean_jerk": float(np.mean([e.jerk for e in episodes])),
        "safety_interventions": int(sum(e.interventions for e in episodes)),
        "intervention_rate": float(sum(e.interventions for e in episodes) / total_ticks),
    }


def load_policy(target: str | Path, work_dir: str | Path) -> Any:
    """The deploy policy of an artifact, or of a run directory exported into `work_dir`."""
    from drl_control.deploy.policy import DeployPolicy

    target = Path(target)
    if not target.is_dir():
        raise FileNotFoundError(f"{target}: no such run or artifact directory")
    if not is_artifact(target):
        from drl_control.learn.export import export_run

        target = export_run(target, Path(work_dir) / "artifact")
    return DeployPolicy.load(target)


def transfer(target: str | Path, *, episodes: int, seed: int, worlds: Sequence[str] | None = None,
             on_step: StepCallback | None = None) -> dict[str, Any]:
    """Evaluate `target` in each world (default: all) on the same held-out seeded goals."""
    names = list(worlds or WORLDS)
    unknown = [n for n in names if n not in WORLDS]
    if unknown:
        raise UserError(f"unknown transfer world(s) {unknown}, expected some of {list(WORLDS)}")
    if episodes < 1:
        raise UserError("--episodes must be >= 1")
    with tempfile.TemporaryDirectory(prefix="drl_transfer_") as tmp:
        policy = load_policy(target, tmp)
    seeds = eval_seeds(seed, episodes)
    return {
        "target": str(target),
        "env_id": policy.env_id,
        "episodes": episodes,
        "seed": seed,
        "worlds": {name: evaluate_world(policy, WORLDS[name], seeds, on_step) for name in names},
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width table, one row per world."""
    head = f"{'world':<11} {'success':>8} {'final dist':>11} {'t goal':>7} {'jerk':>8} {'safety':>7}"
    lines = [f"{report['env_id']}  {report['target']}  ({report['episodes']} episodes, seed {report['seed']})", head]
    for name, w in report["worlds"].items():
        t = "-" if w["median_time_to_goal"] is None else f"{w['median_time_to_goal']:.2f}s"
        lines.append(f"{name:<11} {w['success_rate']:>8.2f} {w['mean_final_distance'] * 100:>9.2f}cm {t:>7} "
                     f"{w['mean_jerk']:>8.1f} {w['safety_interventions']:>7d}")
    return "\n".join(lines)


def transfer_cli(args: Any) -> int:
    """`drl-control transfer TARGET --episodes N --seed S [--worlds ...] [--json F] [--record DIR]`."""
    recorder = None
    if args.record:
        from drl_control.record.episodes import TransferRecorder
        from drl_control.robot import iiwa14

        recorder = TransferRecorder(args.record, iiwa14().joint_names, {  # an unusable DIR: refused here
            "source": "drl-control transfer", "target": str(args.target), "seed": str(args.seed)})
    try:
        report = transfer(args.target, episodes=args.episodes, seed=args.seed, worlds=args.worlds, on_step=recorder)
    finally:
        if recorder is not None:
            recorder.close()
    print(format_table(report))
    if recorder is not None:
        print(f"recordings: {recorder.directory}/<world>.mcap")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0
