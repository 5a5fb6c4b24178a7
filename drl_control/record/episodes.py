"""Recording episodes: gym episodes of a DrlControl env (`drl-control eval --record`) and the
deploy-path ticks of transfer worlds (`drl-control transfer --record DIR`, one file per world).

The hook of `sim.rollout.run_episode`: `on_reset(env)` after each reset and `on_step(env, action,
reward, terminated, truncated, info)` after each step. Time is the simulation's: the file's clock
starts at the wall time the recording started and advances one control period per step, episodes
back to back, so a replay at rate 1 runs as fast as the arm moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drl_control.record.writer import Recorder, RecordPathError


class EpisodeRecorder:
    """Joint states + TF, goal/object/path markers, the policy's action and per-step episode info."""

    def __init__(self, path: str | Path, metadata: Mapping[str, str] | None = None) -> None:
        self.recorder = Recorder(path, metadata=metadata)
        self._t_ns = self.recorder.last_ns
        self.episode = -1
        self.step_index = 0

    def _snapshot(self, env: Any) -> None:
        base = env.unwrapped
        q, qd = base.arm.joint_state()
        task = base.task
        self.recorder.set_goal(getattr(task, "goal", None))
        body = getattr(task, "object", None)
        if body is not None:
            position, orientation = base.world.base_pose(body)
            self.recorder.set_object(position, orientation)
        else:
            self.recorder.set_object(None)
        self.recorder.joint_state(self._t_ns, base.arm.spec.joint_names, q, qd)
        self.recorder.markers(self._t_ns)

    def on_reset(self, env: Any) -> None:
        self.episode += 1
        self.step_index = 0
        if self.episode > 0:
            self._t_ns += int(env.unwrapped.world.config.control_dt * 1e9)  # a reset is not instantaneous
        self.recorder.clear_path()
        self._snapshot(env)

    def on_step(self, env: Any, action: Any, reward: float, terminated: bool, truncated: bool,
                info: Mapping[str, Any]) -> None:
        self._t_ns += int(env.unwrapped.world.config.control_dt * 1e9)
        self.step_index += 1
        self.recorder.action(self._t_ns, np.asarray(action, dtype=float))
        self._snapshot(env)
        self.recorder.episode_step(self._t_ns, {
            "episode": self.episode, "step": self.step_index, "reward": float(reward),
            "is_success": bool(info.get("is_success", False)), "terminated": bool(terminated),
            "truncated": bool(truncated)})

    def close(self) -> None:
        self.recorder.close()

    def __enter__(self) -> EpisodeRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_record_dir(directory: str | Path) -> Path:
    """`--record DIR` (one file per world): refuse an unusable directory before any work starts."""
    from drl_control.record.writer import check_writable

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise RecordPathError(f"cannot record to {directory}: not a directory")
    check_writable(directory / "probe.mcap")  # creates the directory; leaves no file
    return directory


def world_recorder(directory: str | Path, world: str, metadata: Mapping[str, str] | None = None) -> EpisodeRecorder:
    """The recorder of one world of a transfer run: DIR/<world>.mcap (a name made safe for a file)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in world) or "world"
    return EpisodeRecorder(Path(directory) / f"{safe}.mcap", {"world": world, **(metadata or {})})


class TransferRecorder:
    """`drl-control transfer --record DIR`: the `on_step(world, episode, tick)` callback of
    `learn.transfer`, writing DIR/<world>.mcap per world. A tick carries the arm's true joint state
    (joint_states + tf), the goal, the command the controller sent and, per step, the controller's
    reason and the measured positions it saw (`/policy/episode`). Time: the recording's start plus
    the world's simulated time, episodes back to back. Duck-typed on the tick (no import of learn/)."""

    def __init__(self, directory: str | Path, joint_names: Sequence[str],
                 metadata: Mapping[str, str] | None = None) -> None:
        self.directory = check_record_dir(directory)  # before any work starts
        self.joint_names = list(joint_names)
        self.metadata = dict(metadata or {})
        self._worlds: dict[str, tuple[Recorder, list[int]]] = {}  # world -> recorder, [origin_ns, episode, last_ns]

    def __call__(self, world: str, episode: int, tick: Any) -> None:
        if world not in self._worlds:
            rec = world_recorder(self.directory, world, self.metadata).recorder
            self._worlds[world] = (rec, [rec.last_ns, episode, rec.last_ns])
        rec, clock = self._worlds[world]
        if episode != clock[1]:  # the next episode's clock starts at the last tick (its first is a period on)
            clock[0], clock[1] = clock[2], episode
            rec.clear_path()
        t_ns = clock[0] + int(tick.time * 1e9)
        clock[2] = t_ns
        rec.set_goal(tick.goal)
        rec.joint_state(t_ns, self.joint_names, tick.q, tick.qd)
        if tick.command is not None:
            rec.command(t_ns, tick.command)
        rec.markers(t_ns)
        rec.episode_step(t_ns, {"episode": episode, "step": tick.tick + 1, "reason": tick.result.reason or "",
                                "holding": bool(tick.result.holding),
                                "q_measured": [float(v) for v in tick.q_measured]})

    def close(self) -> None:
        for rec, _clock in self._worlds.values():
            rec.close()
