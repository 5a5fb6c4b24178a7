"""Learning from demonstrations: demo files, a demo part of the HER replay buffer, Q-filtered BC.

Which paper each part follows (docs/DEMOS.md has the measurements):
  - demonstrations stay in the replay buffer for the whole run, beside the agent's own data
    (Vecerik et al. 2017, DDPGfD): `DemoHerReplayBuffer` keeps them in a buffer of their own that
    nothing writes after loading, so they are never evicted;
  - a fixed share of every minibatch comes from them, and they are relabelled by HER like the
    agent's episodes (Nair et al. 2018 with Andrychowicz et al. 2017): the demo buffer is itself
    a `HerReplayBuffer`;
  - a behaviour-cloning loss on the actor, only where the critic rates the demonstrated action
    above the policy's, Q(s, a_demo) > Q(s, pi(s)) (Nair et al. 2018, the "Q-filter"), so it fades
    as the policy overtakes the expert; optionally its weight also decays linearly to zero.

Files: `.npz` read with `allow_pickle=False` (a pickle cannot run when loaded), plus a JSON
header (env id, shapes, episodes, seeds) so a wrong env, a wrong shape or a damaged file is one
clear `DemoFileError` before a run starts.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples

from drl_control.errors import UserError
from drl_control.learn.config import OFF_POLICY
from drl_control.sim.registration import check_env_id, import_env_packages

if TYPE_CHECKING:
    from drl_control.sim.experts import ExpertLabeller

FILE_FORMAT = "drl_control.demos"
FILE_VERSION = 1
DEMO_SEED_OFFSET = 2_000_000  # demo goals come from a seed stream of their own (eval uses 1_000_000)
_PER_TRANSITION = ("actions", "rewards", "terminated", "truncated")
_PER_EPISODE = ("episode_lengths", "seeds", "successes")


class DemoError(UserError, ValueError):
    """Demonstrations asked for in a way that cannot work (the message names what)."""


class DemoFileError(DemoError):
    """A demonstration file is damaged, unsafe or does not fit the run; the message names what."""


@dataclass
class Demos:
    """Transitions of whole expert episodes, in order (episode i has episode_lengths[i] rows)."""

    env_id: str
    observations: dict[str, np.ndarray]
    next_observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode_lengths: np.ndarray
    seeds: np.ndarray
    successes: np.ndarray

    @property
    def episodes(self) -> int:
        return len(self.episode_lengths)

    @property
    def transitions(self) -> int:
        return len(self.actions)

    def header(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "env_id": self.env_id,
            "episodes": self.episodes,
            "transitions": self.transitions,
            "observation_shapes": {k: list(v.shape[1:]) for k, v in self.observations.items()},
            "action_shape": list(self.actions.shape[1:]),
            "seeds": [int(s) for s in self.seeds],
            "success_rate": float(np.mean(self.successes)) if self.episodes else 0.0,
        }


# --- recording the scripted experts ---------------------------------------------------------------
class TransitionRecorder(gym.Wrapper):
    """Keeps every (obs, action, reward, next_obs, terminated, truncated) that passes through."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.rows: list[tuple[Any, ...]] = []
        self._obs: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.rows.append((self._obs, np.asarray(action, dtype=np.float32), float(reward), obs, bool(terminated),
                          bool(truncated)))
        self._obs = obs
        return obs, reward, terminated, truncated, info


def demo_seeds(seed: int, episodes: int) -> list[int]:
    """Reset seeds of `train --demos N`: apart from training's seed+rank and the eval stream."""
    rng = np.random.default_rng([DEMO_SEED_OFFSET, seed])
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=episodes)]


def collect_demos(env_id: str, seeds: Sequence[int]) -> tuple[Demos, list[Any]]:
    """Run the task's scripted expert once per seed; the demos and each episode's summary."""
    from drl_control.sim.experts import make_expert
    from drl_control.sim.rollout import run_episode

    if not seeds:
        raise DemoError("demonstrations need at least one episode")
    import_env_packages(env_id)  # a registered id, or one line naming the close matches
    env = TransitionRecorder(gym.make(env_id))
    try:
        if not hasattr(env.unwrapped, "task"):
            raise DemoError(f"{env_id}: no scripted expert for this env (only DrlControl/* tasks have one)")
        expert = make_expert(env)
        runs, lengths = [], []
        for seed in seeds:
            before = len(env.rows)
            runs.append(run_episode(env, lambda _obs: expert.act(), int(seed)))
            lengths.append(len(env.rows) - before)
    finally:
        env.close()
    rows = env.rows
    keys = list(rows[0][0])
    demos = Demos(
        env_id=env_id,
        observations={k: np.stack([r[0][k] for r in rows]).astype(np.float32) for k in keys},
        next_observations={k: np.stack([r[3][k] for r in rows]).astype(np.float32) for k in keys},
        actions=np.stack([r[1] for r in rows]),
        rewards=np.array([r[2] for r in rows], dtype=np.float32),
        terminated=np.array([r[4] for r in rows]),
        truncated=np.array([r[5] for r in rows]),
        episode_lengths=np.array(lengths, dtype=np.int64),
        seeds=np.array(seeds, dtype=np.int64),
        successes=np.array([r.success for r in runs]),
    )
    return demos, runs


# --- files ----------------------------------------------------------------------------------------
def save_demos(demos: Demos, path: str | Path) -> Path:
    """Write `demos` as .npz (numeric arrays only) with its JSON header; returns the path written."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {"header": np.frombuffer(json.dumps(demos.header()).encode(), dtype=np.uint8)}
    for k, v in demos.observations.items():
        arrays[f"obs/{k}"] = v
    for k, v in demos.next_observations.items():
        arrays[f"next_obs/{k}"] = v
    for name in _PER_TRANSITION + _PER_EPISODE:
        arrays[name] = np.asarray(getattr(demos, name))
    with open(path, "wb") as f:  # an open file: np.savez would append ".npz" to a bare name
        np.savez_compressed(f, **arrays)
    return path


def load_demos(path: str | Path) -> Demos:
    """Read and check a demo file; anything damaged, unsafe or inconsistent is a DemoFileError."""
    path = Path(path)
    if path.is_dir():
        raise DemoFileError(f"{path}: is a directory, expected a demonstration file")
    if not path.is_file():
        raise FileNotFoundError(f"demonstration file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise DemoFileError(f"{path}: not a demonstration file (a bare array, not an .npz archive)")
            arrays = {name: data[name] for name in data.files}
    except DemoFileError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        # allow_pickle=False: a pickle (or an object array) lands here without being executed
        raise DemoFileError(f"{path}: damaged or not a demonstration file ({' '.join(str(exc).split())})") from None
    return _demos_from_arrays(path, arrays)


def _demos_from_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Demos:
    def bad(what: str) -> DemoFileError:
        return DemoFileError(f"{path}: {what}")

    raw = arrays.get("header")
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise bad("no header (not written by `drl-control expert --save`)")
    try:
        header = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError):
        raise bad("header is not valid JSON") from None
    if not isinstance(header, dict) or header.get("format") != FILE_FORMAT:
        raise bad(f"header format is not {FILE_FORMAT!r}")
    if header.get("version") != FILE_VERSION:
        raise bad(f"file version {header.get('version')!r}, this drl_control reads version {FILE_VERSION}")
    shapes = header.get("observation_shapes")
    if not isinstance(shapes, dict) or not shapes or not isinstance(header.get("env_id"), str):
        raise bad("header lacks env_id or observation_shapes")
    obs = {k: arrays.get(f"obs/{k}") for k in shapes}
    next_obs = {k: arrays.get(f"next_obs/{k}") for k in shapes}
    missing = [n for n in (*(f"obs/{k}" for k in shapes), *(f"next_obs/{k}" for k in shapes),
                           *_PER_TRANSITION, *_PER_EPISODE) if arrays.get(n) is None]
    if missing:
        raise bad("missing arrays " + ", ".join(missing))
    lengths = arrays["episode_lengths"]
    n = int(lengths.sum()) if lengths.ndim == 1 and lengths.dtype.kind in "iu" else -1
    if n < 1 or (lengths < 1).any() or header.get("episodes") != len(lengths) or header.get("transitions") != n:
        raise bad("episode lengths do not match the header")
    for name, arr in [*(("obs/" + k, v) for k, v in obs.items()), *(("next_obs/" + k, v) for k, v in next_obs.items())]:
        want = (n, *shapes[name.split("/", 1)[1]])
        if arr.shape != want or arr.dtype.kind != "f" or not np.isfinite(arr).all():
            raise bad(f"array {name} has shape {arr.shape} ({arr.dtype}), expected finite floats of shape {want}")
    actions = arrays["actions"]
    if actions.shape != (n, *header.get("action_shape", [])) or actions.dtype.kind != "f" \
            or not np.isfinite(actions).all():
        raise bad(f"array actions has shape {actions.shape}, expected finite floats of shape "
                  f"{(n, *header.get('action_shape', []))}")
    for name in ("rewards", "terminated", "truncated"):
        if arrays[name].shape != (n,):
            raise bad(f"array {name} has shape {arrays[name].shape}, expected ({n},)")
    for name in ("seeds", "successes"):
        if arrays[name].shape != lengths.shape:
            raise bad(f"array {name} has shape {arrays[name].shape}, expected {lengths.shape}")
    ends = np.cumsum(lengths) - 1
    done = arrays["terminated"].astype(bool) | arrays["truncated"].astype(bool)
    if not done[ends].all() or done.sum() != len(lengths):
        raise bad("episode ends do not match the terminated/truncated flags")
    return Demos(
        env_id=header["env_id"], observations=obs, next_observations=next_obs, actions=actions.astype(np.float32),
        rewards=arrays["rewards"].astype(np.float32), terminated=arrays["terminated"].astype(bool),
        truncated=arrays["truncated"].astype(bool), episode_lengths=lengths.astype(np.int64),
        seeds=arrays["seeds"].astype(np.int64), successes=arrays["successes"].astype(bool),
    )


def check_fits(demos: Demos, env_id: str, observation_space: gym.spaces.Dict, action_space: gym.spaces.Box,
               source: str = "demonstrations") -> None:
    """Refuse demos recorded on another env or with other observation/action shapes."""
    if demos.env_id != env_id:
        raise DemoFileError(f"{source}: recorded on {demos.env_id}, but the run trains {env_id}")
    for key, space in observation_space.spaces.items():
        got = demos.observations.get(key)
        if got is None or got.shape[1:] != space.shape:
            shape = None if got is None else got.shape[1:]
            raise DemoFileError(f"{source}: observation {key!r} has shape {shape}, {env_id} has {space.shape}")
    if demos.actions.shape[1:] != action_space.shape:
        raise DemoFileError(f"{source}: actions have shape {demos.actions.shape[1:]}, {env_id} has {action_space.shape}")


# --- the run's demonstrations ----------------------------------------------------------------------
def demos_enabled(cfg: Mapping[str, Any]) -> bool:
    d = cfg.get("demos") or {}
    return bool(d.get("episodes")) or d.get("file") is not None


def prepare_demos(cfg: Mapping[str, Any]) -> Demos | None:
    """The run's demonstrations (file or N seeded expert episodes), checked against its env id."""
    d = cfg.get("demos") or {}
    if not demos_enabled(cfg):
        if d.get("expert_labels"):
            raise DemoError("demos.expert_labels needs demonstrations as well (--demos N or --demos FILE)")
        return None
    if d.get("expert_labels"):
        _expert_labeller(cfg["env_id"])  # refuses an env the expert cannot label, before the run starts
    if d.get("episodes") and d.get("file") is not None:
        raise DemoError("demos.episodes and demos.file are both set; use one (--demos N or --demos FILE)")
    if not cfg.get("her", {}).get("enabled", False):
        raise DemoError("demonstrations are replayed through HER: they need her.enabled=true")
    if cfg.get("algo") not in OFF_POLICY:
        raise DemoError(f"demonstrations need an off-policy algorithm ({', '.join(OFF_POLICY)})")
    if d.get("file") is not None:
        demos = load_demos(d["file"])
        source = str(d["file"])
    else:
        demos, _ = collect_demos(cfg["env_id"], demo_seeds(int(cfg.get("seed", 0)), int(d["episodes"])))
        source = f"{d['episodes']} expert episodes"
    if demos.env_id != cfg["env_id"]:
        raise DemoFileError(f"{source}: recorded on {demos.env_id}, but the run trains {cfg['env_id']}")
    return demos


def attach_demos(model: Any, demos: Demos, env_id: str, source: str = "demonstrations") -> None:
    """Put `demos` into the model's demo buffer (built by `build_model` when the config enables demos)."""
    if not isinstance(model.replay_buffer, DemoHerReplayBuffer):
        raise ValueError("the model was built without a demo buffer (demos disabled in its config)")
    check_fits(demos, env_id, model.observation_space, model.action_space, source)
    model.replay_buffer.load_demos(demos)


def demo_model_options(cfg: Mapping[str, Any], cls: type, kwargs: dict[str, Any]) -> type:
    """For a config with demos: the demo replay buffer in `kwargs` and the BC mixin on `cls`."""
    if not demos_enabled(cfg):
        return cls
    if kwargs.get("replay_buffer_class") is not HerReplayBuffer:
        raise DemoError("demonstrations are replayed through HER: they need her.enabled=true")
    kwargs["replay_buffer_class"] = DemoHerReplayBuffer
    kwargs["replay_buffer_kwargs"] = {**kwargs.get("replay_buffer_kwargs", {}),
                                      "demo_fraction": float(cfg["demos"].get("fraction", 0.125))}
    return with_demos(cls)


def configure_model(cfg: Mapping[str, Any], model: Any) -> None:
    """Set the BC hyperparameters of a model built by `demo_model_options`."""
    if isinstance(model, DemoLearner):
        d = cfg["demos"]
        model.configure_bc(float(d.get("bc_weight", 1.0)), bool(d.get("q_filter", True)), d.get("bc_decay_steps"))
        if d.get("expert_labels"):
            model.expert_labeller = _expert_labeller(cfg["env_id"])


def _expert_labeller(env_id: str) -> ExpertLabeller:
    from drl_control.sim.experts import ExpertLabeller

    env = gym.make(check_env_id(env_id))
    try:
        return ExpertLabeller(env)
    finally:
        env.close()


# --- replay ---------------------------------------------------------------------------------------
def _cat(parts: Sequence[DictReplayBufferSamples]) -> DictReplayBufferSamples:
    def cat(values: Sequence[Any]) -> Any:
        if values[0] is None:
            return None
        if isinstance(values[0], dict):
            return {k: torch.cat([v[k] for v in values]) for k in values[0]}
        return torch.cat(list(values))

    return DictReplayBufferSamples(*(cat([getattr(p, f) for p in parts]) for f in DictReplayBufferSamples._fields))


class DemoHerReplayBuffer(HerReplayBuffer):
    """HER replay buffer with a demo part that is never evicted; each batch ends with its demo rows.

    The demos live in a second HerReplayBuffer sized exactly to them: only `load_demos` writes it,
    so the agent's data can wrap around the main buffer without touching them, and HER relabels
    them with goals from their own episodes. `last_demo_batch` (observations, actions) is the demo
    part of the latest `sample()`, for the behaviour-cloning loss.
    """

    def __init__(self, *args: Any, demo_fraction: float = 0.125, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0 < demo_fraction <= 1:
            raise ValueError(f"demo_fraction must be in (0, 1], got {demo_fraction}")
        self.demo_fraction = demo_fraction
        self.demo_buffer: HerReplayBuffer | None = None
        self.last_demo_batch: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None
        self.last_agent_obs: dict[str, torch.Tensor] | None = None  # the agent rows, for expert labels

    def set_env(self, env: Any) -> None:
        super().set_env(env)
        if self.demo_buffer is not None:
            self.demo_buffer.env = env

    def load_demos(self, demos: Demos) -> None:
        """Fill the demo part (replaces earlier demos); actions are rescaled to [-1, 1] as SB3 stores them."""
        buf = HerReplayBuffer(
            demos.transitions, self.observation_space, self.action_space, env=self.env, device=self.device, n_envs=1,
            handle_timeout_termination=self.handle_timeout_termination, n_sampled_goal=self.n_sampled_goal,
            goal_selection_strategy=self.goal_selection_strategy,
        )
        low, high = self.action_space.low, self.action_space.high
        actions = (2.0 * (demos.actions - low) / (high - low) - 1.0).astype(np.float32)
        for i in range(demos.transitions):
            truncated_only = bool(demos.truncated[i]) and not bool(demos.terminated[i])
            buf.add(
                {k: v[i : i + 1] for k, v in demos.observations.items()},
                {k: v[i : i + 1] for k, v in demos.next_observations.items()},
                actions[i : i + 1], demos.rewards[i : i + 1],
                np.array([demos.terminated[i] or demos.truncated[i]]),
                [{"TimeLimit.truncated": truncated_only}],
            )
        self.demo_buffer = buf

    def demo_batch_size(self, batch_size: int) -> int:
        return max(1, round(self.demo_fraction * batch_size)) if self.demo_buffer is not None else 0

    def sample(self, batch_size: int, env: Any = None) -> DictReplayBufferSamples:  # type: ignore[override]
        n_demo = self.demo_batch_size(batch_size)
        self.last_demo_batch, self.last_agent_obs = None, None
        if n_demo == 0:
            agent = super().sample(batch_size, env)
            self.last_agent_obs = agent.observations
            return agent
        assert self.demo_buffer is not None
        demo = self.demo_buffer.sample(n_demo, env)
        self.last_demo_batch = (demo.observations, demo.actions)
        if n_demo >= batch_size:
            return demo
        agent = super().sample(batch_size - n_demo, env)
        self.last_agent_obs = agent.observations
        return _cat([agent, demo])


# --- behaviour cloning ----------------------------------------------------------------------------
def q_filtered_bc_loss(policy_actions: torch.Tensor, demo_actions: torch.Tensor, q_demo: torch.Tensor,
                       q_policy: torch.Tensor, q_filter: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Nair et al. 2018: sum_i ||pi(s_i) - a_i||^2 * [Q(s_i, a_i) > Q(s_i, pi(s_i))], over the N_D demo rows.

    Returns (loss, mask). Averaged over all demo rows, not only the kept ones, so the term shrinks
    as fewer demonstrated actions beat the policy.
    """
    mask = (q_demo.reshape(-1) > q_policy.reshape(-1)) if q_filter else torch.ones_like(q_demo.reshape(-1), dtype=bool)
    per_row = ((policy_actions - demo_actions) ** 2).sum(dim=-1)
    return (per_row * mask.to(per_row.dtype)).mean(), mask


def critic_value(critic: Any, obs: Mapping[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
    """One Q value per row: the min over SB3's twin critics, the mean over TQC's quantiles."""
    q = critic(obs, actions)
    if isinstance(q, (tuple, list)):
        return torch.cat(q, dim=1).min(dim=1).values
    return q.mean(dim=(1, 2))  # TQC: (batch, n_critics, n_quantiles)


class DemoLearner:
    """Mixin for SB3's SAC/TD3/DDPG and sb3-contrib's TQC: adds Q-filtered BC to the actor's update.

    SB3's train() builds the actor loss inline, so rather than copy four train() bodies, a step
    pre-hook on the actor's optimizer adds the gradient of `weight * L_BC` to the gradient the
    actor loss has just left; the step then follows the gradient of (actor loss + weight * L_BC),
    exactly as if the two were summed. It acts only inside train(), on the demo rows of the
    batch being trained on.
    """

    bc_weight: float = 1.0
    q_filter: bool = True
    bc_decay_steps: int | None = None
    expert_labeller: ExpertLabeller | None = None  # demos.expert_labels: BC on the agent rows too

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        self._bc_in_train = False
        self.bc_stats: dict[str, list[float]] = {
            "bc_loss": [], "q_filter_pass": [], "expert_bc_loss": [], "expert_q_filter_pass": []}
        self.actor.optimizer.register_step_pre_hook(self._add_bc_gradient)

    def configure_bc(self, bc_weight: float, q_filter: bool, bc_decay_steps: int | None) -> None:
        self.bc_weight, self.q_filter, self.bc_decay_steps = float(bc_weight), bool(q_filter), bc_decay_steps

    def current_bc_weight(self) -> float:
        if self.bc_decay_steps is None:
            return self.bc_weight
        return self.bc_weight * max(0.0, 1.0 - self.num_timesteps / self.bc_decay_steps)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self._bc_in_train = True
        try:
            super().train(gradient_steps, batch_size)  # type: ignore[misc]
        finally:
            self._bc_in_train = False
        for key, values in self.bc_stats.items():
            if values:
                self.logger.record(f"demos/{key}", float(np.mean(values)))
                values.clear()
        self.logger.record("demos/bc_weight", self.current_bc_weight())

    def _add_bc_gradient(self, _optimizer: Any, _args: Any, _kwargs: Any) -> None:
        weight = self.current_bc_weight()
        if not self._bc_in_train or weight <= 0:
            return
        batch = getattr(self.replay_buffer, "last_demo_batch", None)
        if batch is not None:
            self._clone(*batch, weight, "")
        agent_obs = getattr(self.replay_buffer, "last_agent_obs", None)
        if self.expert_labeller is not None and agent_obs is not None:
            self._clone(agent_obs, self._expert_actions(agent_obs), weight, "expert_")

    def _clone(self, obs: dict[str, torch.Tensor], target_actions: torch.Tensor, weight: float, tag: str) -> None:
        policy_actions = self.policy._predict(obs, deterministic=True)
        with torch.no_grad():
            q_target = critic_value(self.critic, obs, target_actions)
            q_policy = critic_value(self.critic, obs, policy_actions)
        loss, mask = q_filtered_bc_loss(policy_actions, target_actions, q_target, q_policy, self.q_filter)
        (weight * loss).backward()
        self.bc_stats[f"{tag}bc_loss"].append(float(loss.detach()))
        self.bc_stats[f"{tag}q_filter_pass"].append(float(mask.float().mean()))

    def _expert_actions(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The expert's actions for (normalised) replay observations, scaled to [-1, 1] as SB3 stores them."""
        raw = {k: v.cpu().numpy() for k, v in obs.items()}
        normalizer = getattr(self, "_vec_normalize_env", None)
        if normalizer is not None:
            raw = normalizer.unnormalize_obs(raw)
        assert self.expert_labeller is not None
        actions = self.expert_labeller(raw["observation"], raw["desired_goal"])
        low, high = self.action_space.low, self.action_space.high
        return torch.as_tensor(2.0 * (actions - low) / (high - low) - 1.0, dtype=torch.float32, device=self.device)


_DEMO_CLASSES: dict[type, type] = {}


def with_demos(cls: type) -> type:
    """`cls` with the DemoLearner mixin; it keeps `cls.__name__`, which checkpoints and export key on."""
    if cls not in _DEMO_CLASSES:
        _DEMO_CLASSES[cls] = type(cls.__name__, (DemoLearner, cls), {"__module__": __name__, "__doc__": cls.__doc__})
    return _DEMO_CLASSES[cls]
