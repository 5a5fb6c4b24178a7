"""Scripted experts: privileged state + IK. They prove each task solvable and are the learners' baseline."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from drl_control.errors import UserError
from drl_control.robot import kinematics
from drl_control.sim.registration import check_env_id
from drl_control.sim.rollout import run_episode, summarize
from drl_control.sim.tasks import OBJECT_HALF

PUSHER_RADIUS = 0.018  # ball end of urdf/tools/pusher.urdf


class Expert:
    """Chooses a TCP waypoint (and gripper opening); `act` turns it into an action for either control mode."""

    def __init__(self, env: gym.Env) -> None:
        self.env = env.unwrapped
        self.arm = self.env.arm
        self.task = self.env.task

    def waypoint(self) -> tuple[np.ndarray, float]:
        """TCP target and gripper command in [-1 (closed), 1 (open)]."""
        raise NotImplementedError

    max_speed = 1.0  # fraction of the full action the waypoint may demand

    def act(self) -> np.ndarray:
        target, grip = self.waypoint()
        pos = self.arm.tcp_state()[0]
        step = target - pos
        limit = self.max_speed * self.arm.config.ee_step
        if np.linalg.norm(step) > limit:
            target = pos + step * (limit / np.linalg.norm(step))
        if self.arm.config.control == "ee":
            motion = (target - pos) / self.arm.config.ee_step
        else:
            q, _ = self.arm.joint_state()
            q_goal = kinematics.inverse(
                target, q, self.arm.lower, self.arm.upper, target_rot=self.arm.target_rotation,
                tool_offset=self.arm.tool_offset, q_rest=self.arm.spec.home, iterations=30,
            )
            motion = (q_goal - q) / self.arm.law.max_step
        largest = float(np.max(np.abs(motion)))
        action = motion / largest if largest > 1.0 else motion  # scale, don't clip: keep the direction
        if self.arm.has_gripper:
            action = np.append(action, grip)
        return action.astype(np.float32)


class ReachExpert(Expert):
    def waypoint(self) -> tuple[np.ndarray, float]:
        return self.task.goal.copy(), 1.0


class PushExpert(Expert):
    """Get behind the cube on the cube-goal line, descend, push along the line; hold still once it is there."""

    push_z = 0.02
    travel_z = 0.09
    push_speed = 0.35  # fraction of the full action while in contact: a faster push makes the cube slide
    # Once the cube lies this far inside the success threshold, any further touch can only knock it
    # off: the cube-goal line flips as the cube passes the goal, and re-approaching the "new" behind
    # point from above lands on the cube. Without the hold the expert lost ~7 of 100 held-out goals
    # after reaching them (91.8% -> 99.3% on 600 held-out goals with it).
    hold_within = 0.6  # of task.distance_threshold

    def waypoint(self) -> tuple[np.ndarray, float]:
        self.max_speed = 1.0
        obj = self.task.achieved_goal()[:2]
        goal = self.task.goal[:2]
        tcp = self.arm.tcp_state()[0]
        to_goal = goal - obj
        distance = float(np.linalg.norm(to_goal))
        if distance < self.hold_within * self.task.distance_threshold:
            return tcp.copy(), 1.0
        u = to_goal / max(distance, 1e-6)
        standoff = OBJECT_HALF + PUSHER_RADIUS + 0.008
        behind = obj - u * standoff
        rel = tcp[:2] - obj
        along = float(rel @ u)
        lateral = abs(float(rel[0] * u[1] - rel[1] * u[0]))
        if tcp[2] < 0.05 and along < -0.025 and lateral < 0.012:
            # In contact position: push along the line until the cube sits on the goal.
            self.max_speed = self.push_speed
            return np.array([*(goal - u * standoff), self.push_z]), 1.0
        if float(np.linalg.norm(tcp[:2] - behind)) < 0.012:
            return np.array([*behind, self.push_z]), 1.0
        if tcp[2] < 0.06:  # lift clear of the cube before moving around it
            return np.array([*tcp[:2], self.travel_z]), 1.0
        return np.array([*behind, self.travel_z]), 1.0


class PickAndPlaceExpert(Expert):
    """Hover over the cube, descend with open jaws, close, carry the cube (not the TCP) to the goal."""

    hover = 0.08
    # A held cube slides and turns between the pads (up to ~2 cm off the TCP, the jaws ~1 cm wider
    # on a turned cube). Judging "holding" by a tighter fit let go of a cube still in the jaws, and
    # carrying the TCP to the goal left such a cube off it: 94% -> 100% on 300 held-out goals.
    hold_reach = 0.04  # largest TCP-cube distance with the cube still between the jaws
    hold_play = 0.012  # jaw opening beyond the cube's width that still counts as holding it

    def waypoint(self) -> tuple[np.ndarray, float]:
        obj = self.task.achieved_goal()
        tcp = self.arm.tcp_state()[0]
        width = self.arm.finger_opening()
        near = float(np.linalg.norm(tcp - obj))
        holding = near < self.hold_reach and 2 * OBJECT_HALF - 0.004 < width < 2 * OBJECT_HALF + self.hold_play
        if holding:
            return self.task.goal + (tcp - obj), -1.0
        if near < 0.012:
            return obj, -1.0  # close on the cube
        if float(np.linalg.norm(tcp[:2] - obj[:2])) < 0.01:
            return obj, 1.0  # descend with open jaws
        if tcp[2] < obj[2] + 0.04 and width < 0.07:  # missed: open and back off upwards
            return np.array([*tcp[:2], obj[2] + self.hover]), 1.0
        return np.array([*obj[:2], obj[2] + self.hover]), 1.0


EXPERTS = {"Reach": ReachExpert, "Push": PushExpert, "PickAndPlace": PickAndPlaceExpert}


def make_expert(env: gym.Env) -> Expert:
    return EXPERTS[env.unwrapped.task.name](env)


def run_episodes(env_id: str, episodes: int, seed: int, gif: str | None = None) -> dict:
    """Roll the task's expert out for `episodes` seeded episodes; success is judged at the last step."""
    if episodes < 1:
        raise UserError(f"episodes must be at least 1, got {episodes}")
    check_env_id(env_id)
    env = gym.make(env_id)
    expert = make_expert(env)
    recorder = None
    if gif:
        from drl_control.sim.media import EpisodeRecorder

        recorder = EpisodeRecorder(env)
    start = time.perf_counter()
    runs = [run_episode(env, lambda _obs: expert.act(), seed + episode,
                        after_step=(lambda: recorder.capture()) if recorder and episode == 0 else None)
            for episode in range(episodes)]
    summary = {**summarize(env_id, seed, runs), "wall_time_s": time.perf_counter() - start}
    if recorder:
        summary["gif"] = str(recorder.save(gif))
    env.close()
    return summary


def run_expert_cli(args: argparse.Namespace) -> int:
    summary = run_episodes(args.env, args.episodes, args.seed, args.gif)
    print(
        f"{summary['env_id']}: expert success rate {summary['success_rate']:.1%} over {summary['episodes']} "
        f"episodes (mean final distance {summary['mean_final_distance'] * 100:.1f} cm, "
        f"{summary['wall_time_s']:.1f} s)"
    )
    if "gif" in summary:
        print(f"GIF: {summary['gif']}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0
