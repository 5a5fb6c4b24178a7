"""Learning from demonstrations (drl_control/learn/demos.py): safe demo files, a demo buffer that is
never evicted and is relabelled by HER, the Q-filter on the behaviour-cloning loss, and the CLI."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from drl_control.cli import main
from drl_control.learn.algos import build_model, make_env, wrap_normalizer
from drl_control.learn.config import resolve_config
from drl_control.learn.demos import (
    DemoFileError,
    DemoHerReplayBuffer,
    DemoLearner,
    attach_demos,
    check_fits,
    collect_demos,
    load_demos,
    q_filtered_bc_loss,
    save_demos,
)
from drl_control.learn.train import Trainer

REACH = "DrlControl/IiwaReach-v0"
PUSH = "DrlControl/IiwaPush-v0"
SMALL = ["algorithm.learning_starts=100", "algorithm.buffer_size=100", "policy.net_arch=[32,32]", "eval.episodes=1",
         "train.checkpoint_every=100000"]


@pytest.fixture(scope="module")
def reach_demos():
    demos, runs = collect_demos(REACH, [11, 12, 13])
    assert len(runs) == 3
    return demos


@pytest.fixture(scope="module")
def reach_file(reach_demos, tmp_path_factory) -> Path:
    return save_demos(reach_demos, tmp_path_factory.mktemp("demos") / "reach.npz")


def _model(algo: str, demos, *extra: str, normalize: bool = True):
    cfg = resolve_config(algo, REACH, overrides=[*SMALL, "demos.episodes=3", f"normalize.enabled={normalize}",
                                                 *extra])
    cfg["total_timesteps"] = 1000
    venv = wrap_normalizer(DummyVecEnv([lambda: make_env(REACH, 0, 0)]), cfg)
    model = build_model(cfg, venv)
    attach_demos(model, demos, REACH)
    return model


# --- files ----------------------------------------------------------------------------------------
def test_round_trip_keeps_every_array_and_the_header(reach_demos, reach_file: Path) -> None:
    back = load_demos(reach_file)
    assert back.env_id == REACH and back.episodes == 3 and back.transitions == reach_demos.transitions == 150
    for key, arr in reach_demos.observations.items():
        np.testing.assert_array_equal(back.observations[key], arr)
        np.testing.assert_array_equal(back.next_observations[key], reach_demos.next_observations[key])
    for name in ("actions", "rewards", "terminated", "truncated", "episode_lengths", "seeds", "successes"):
        np.testing.assert_array_equal(getattr(back, name), getattr(reach_demos, name))
    assert list(back.seeds) == [11, 12, 13] and back.successes.all()  # the Reach expert always succeeds
    with np.load(reach_file, allow_pickle=False) as data:
        header = json.loads(data["header"].tobytes())
    assert header["observation_shapes"]["observation"] == [reach_demos.observations["observation"].shape[1]]
    assert header["seeds"] == [11, 12, 13] and header["env_id"] == REACH


def test_a_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "code ran"))

    bad = tmp_path / "evil.npz"
    bad.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(DemoFileError, match="evil.npz"):
        load_demos(bad)
    # an .npz whose array is an object array (pickled inside the zip) is refused too
    inner = tmp_path / "objects.npz"
    np.savez(inner, header=np.array([Payload()], dtype=object))
    with pytest.raises(DemoFileError, match="objects.npz"):
        load_demos(inner)
    assert not marker.exists()


def test_damaged_files_are_one_clear_error(reach_file: Path, tmp_path: Path) -> None:
    data = reach_file.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(data[:200] + bytes([data[200] ^ 0xFF]) + data[201:])
    for path in (truncated, flipped):
        with pytest.raises(DemoFileError, match=path.name):
            load_demos(path)
    # a well-formed archive whose arrays contradict the header
    with zipfile.ZipFile(reach_file) as z:
        names = z.namelist()
    with np.load(reach_file, allow_pickle=False) as d:
        arrays = {n: d[n] for n in d.files}
    arrays["actions"] = arrays["actions"][:-1]
    short = tmp_path / "short.npz"
    np.savez(short, **arrays)
    with pytest.raises(DemoFileError, match="actions has shape"):
        load_demos(short)
    assert "header.npy" in names


def test_wrong_env_or_shape_is_refused(reach_demos) -> None:
    env = make_env(PUSH)
    try:
        with pytest.raises(DemoFileError, match=f"recorded on {REACH}, but the run trains {PUSH}"):
            check_fits(reach_demos, PUSH, env.observation_space, env.action_space)
        # same id, other observation size (e.g. a file from another drl_control version)
        with pytest.raises(DemoFileError, match="observation 'observation' has shape"):
            check_fits(reach_demos, REACH, env.observation_space, env.action_space)
    finally:
        env.close()


# --- buffer ---------------------------------------------------------------------------------------
def test_demo_buffer_is_never_evicted_and_mixed_into_every_batch(reach_demos) -> None:
    model = _model("sac", reach_demos, "demos.fraction=0.25")
    demo_buf = model.replay_buffer.demo_buffer
    before = {k: v.copy() for k, v in demo_buf.observations.items()}
    # the agent's own episodes, stored as SB3 stores them: the main buffer (100) wraps around 3 times
    env, buf = model.env, model.replay_buffer
    env.reset()
    obs = env.get_original_obs()
    for _ in range(300):
        action = np.random.uniform(-1, 1, size=(1, *env.action_space.shape)).astype(np.float32)
        _, reward, done, infos = env.step(action)
        nxt = env.get_original_obs()
        if done[0]:
            nxt = {k: v[None] for k, v in infos[0]["terminal_observation"].items()}
        buf.add(obs, nxt, action, reward, done, infos)
        obs = env.get_original_obs()
    buf = model.replay_buffer
    assert isinstance(buf, DemoHerReplayBuffer) and buf.full and buf.demo_buffer is demo_buf
    for k, v in before.items():
        np.testing.assert_array_equal(demo_buf.observations[k], v)
    np.testing.assert_allclose(demo_buf.actions[:, 0], reach_demos.actions, atol=1e-6)
    assert (demo_buf.ep_length > 0).all()  # every demo transition is still sampleable
    batch = buf.sample(64, env=model._vec_normalize_env)
    n_demo = buf.demo_batch_size(64)
    assert n_demo == 16 and batch.actions.shape == (64, reach_demos.actions.shape[1])
    tail = batch.actions[-n_demo:].numpy()
    distance = np.abs(tail[:, None, :] - reach_demos.actions[None]).max(-1).min(-1)
    assert (distance < 1e-5).all()  # the demo rows sit at the end of the batch
    torch.testing.assert_close(buf.last_demo_batch[1], batch.actions[-n_demo:])
    model.env.close()


def test_demo_transitions_are_relabelled_by_her(reach_demos) -> None:
    model = _model("sac", reach_demos, normalize=False)
    demo_buf = model.replay_buffer.demo_buffer
    np.random.seed(0)
    batch = demo_buf.sample(2000)
    env = model.env.envs[0].unwrapped
    obs = {k: v.numpy() for k, v in batch.observations.items()}
    nxt = {k: v.numpy() for k, v in batch.next_observations.items()}
    starts = np.concatenate([[0], np.cumsum(reach_demos.episode_lengths)])
    relabelled = 0
    for i in range(len(batch.actions)):
        # which demo transition is this row? (observation + action identify it)
        # (an arm resting on its goal repeats one: then any of them, all in one episode)
        rows = np.flatnonzero((np.abs(reach_demos.observations["observation"] - obs["observation"][i]).max(1) < 1e-6)
                              & (np.abs(reach_demos.actions - batch.actions[i].numpy()).max(1) < 1e-6))
        episodes = set(np.searchsorted(starts, rows, side="right") - 1)
        assert len(rows) >= 1 and len(episodes) == 1
        t, ep = int(rows.min()), int(episodes.pop())
        if np.allclose(obs["desired_goal"][i], reach_demos.observations["desired_goal"][t]):
            continue
        relabelled += 1
        # "future": a goal the same episode achieved at this step or later
        later = reach_demos.next_observations["achieved_goal"][t: starts[ep + 1]]
        assert np.abs(later - obs["desired_goal"][i]).max(1).min() < 1e-6
        expected = env.compute_reward(nxt["achieved_goal"][i], obs["desired_goal"][i], {})
        assert float(batch.rewards[i]) == pytest.approx(float(expected))
    assert 0.7 < relabelled / len(batch.actions) < 0.9  # her_ratio 0.8 with n_sampled_goal=4
    model.env.close()


# --- Q-filter -------------------------------------------------------------------------------------
def test_q_filter_masks_rows_where_the_policy_is_better() -> None:
    pi = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.5, 0.5], [1.0, 0.0]], requires_grad=True)
    demo = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -0.5], [0.0, 0.0]])
    q_demo = torch.tensor([2.0, -1.0, 3.0, 0.0])
    q_pi = torch.tensor([1.0, 0.0, 3.0, -1.0])  # demo better, worse, equal (not better), better
    loss, mask = q_filtered_bc_loss(pi, demo, q_demo, q_pi)
    assert mask.tolist() == [True, False, False, True]
    assert float(loss.detach()) == pytest.approx((1.0 + 1.0) / 4)
    loss.backward()
    assert torch.equal(pi.grad[1], torch.zeros(2)) and torch.equal(pi.grad[2], torch.zeros(2))
    assert pi.grad[0].abs().sum() > 0
    unfiltered, mask_all = q_filtered_bc_loss(pi, demo, q_demo, q_pi, q_filter=False)
    assert mask_all.all() and float(unfiltered.detach()) == pytest.approx((1 + 1 + 1 + 1) / 4)


def _linear_critic(model, w: torch.Tensor) -> None:
    """Make every critic Q(s, a) = w . a: which demo rows pass the filter is then known exactly."""
    for i, q_net in enumerate(model.critic.q_networks):
        lin = nn.Linear(q_net[0].in_features, 1)
        with torch.no_grad():
            lin.weight.zero_()
            lin.bias.zero_()
            lin.weight[0, -len(w):] = w
        model.critic.q_networks[i] = nn.Sequential(lin)


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_bc_gradient_on_the_actor_follows_the_q_filter(algo: str, reach_demos) -> None:
    model = _model(algo, reach_demos)
    assert isinstance(model, DemoLearner) and type(model).__name__ == algo.upper()
    dim = reach_demos.actions.shape[1]
    w = torch.zeros(dim)
    w[0] = 1.0
    _linear_critic(model, w)
    obs = {k: torch.as_tensor(v[:8]) for k, v in reach_demos.observations.items()}
    with torch.no_grad():
        pi = model.policy._predict(obs, deterministic=True)
    demo = pi.clone()
    demo[:4, 0] += 0.5  # Q prefers these demo actions: BC pulls the policy there
    demo[4:, 0] -= 0.5  # the policy is better here: the filter must mask these rows
    model.replay_buffer.last_demo_batch = (obs, demo)

    def bc_grads() -> list[torch.Tensor]:
        model.actor.optimizer.zero_grad()
        model._bc_in_train = True
        model._add_bc_gradient(model.actor.optimizer, (), {})
        model._bc_in_train = False
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.actor.parameters()]

    got = bc_grads()
    assert model.bc_stats["q_filter_pass"][-1] == 0.5
    model.actor.optimizer.zero_grad()
    expected_loss, mask = q_filtered_bc_loss(model.policy._predict(obs, deterministic=True), demo,
                                             (demo * w).sum(1), (pi * w).sum(1))
    assert mask.tolist() == [True] * 4 + [False] * 4
    (model.bc_weight * expected_loss).backward()
    for g, p in zip(got, model.actor.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad if p.grad is not None else torch.zeros_like(p))
    assert any(g.abs().sum() > 0 for g in got)
    # every demo action worse than the policy: nothing passes, no BC gradient at all
    model.replay_buffer.last_demo_batch = (obs, pi - w * 0.5)
    assert all(g.abs().sum() == 0 for g in bc_grads())
    assert model.bc_stats["q_filter_pass"][-1] == 0.0
    # outside train() the hook does nothing (e.g. an optimizer step of someone else)
    model.replay_buffer.last_demo_batch = (obs, demo)
    model.actor.optimizer.zero_grad()
    model._add_bc_gradient(model.actor.optimizer, (), {})
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.actor.parameters())
    model.env.close()


def test_bc_weight_decays_linearly(reach_demos) -> None:
    model = _model("sac", reach_demos, "demos.bc_weight=2.0", "demos.bc_decay_steps=1000")
    model.num_timesteps = 250
    assert model.current_bc_weight() == pytest.approx(1.5)
    model.num_timesteps = 5000
    assert model.current_bc_weight() == 0.0
    model.env.close()


# --- training and the CLI -------------------------------------------------------------------------
def test_expert_save_then_train_with_the_file(tmp_path: Path, capsys) -> None:
    demos = tmp_path / "reach.npz"
    assert main(["expert", "--env", REACH, "--episodes", "2", "--seed", "3", "--save", str(demos)]) == 0
    assert "100 transitions saved to" in capsys.readouterr().out
    assert load_demos(demos).seeds.tolist() == [3, 4]
    run = tmp_path / "run"
    assert main(["train", "--algo", "ddpg", "--env", REACH, "--timesteps", "150", "--seed", "0", "--out", str(run),
                 "--demos", str(demos), "--device", "cpu", *SMALL, "her.goal_selection_strategy=final"]) == 0
    saved = (run / "config.yaml").read_text()
    assert str(demos.resolve()) in saved and "device: cpu" in saved
    # resume rebuilds the demo buffer from the saved config
    assert main(["train", "--resume", str(run), "--timesteps", "200"]) == 0
    # a run trained with demos exports like any other (the artifact checks itself against the model)
    assert main(["export", str(run), str(tmp_path / "artifact")]) == 0


def test_train_with_n_expert_episodes_logs_the_filter(tmp_path: Path) -> None:
    cfg = resolve_config("tqc", REACH, overrides=[*SMALL, "demos.episodes=2", "train.progress_every=50"])
    cfg["total_timesteps"] = 200
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train()
    buf = trainer.model.replay_buffer
    assert buf.demo_buffer is not None and buf.demo_buffer.buffer_size == 100
    tb = list((tmp_path / "run" / "tb").rglob("events.out.tfevents*"))
    assert tb and b"demos/q_filter_pass" in tb[0].read_bytes()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f, d: f, "recorded on DrlControl/IiwaReach-v0, but the run trains DrlControl/IiwaPush-v0"),
        (lambda f, d: (d / "cut.npz").write_bytes(f.read_bytes()[:300]) and d / "cut.npz", "damaged"),
        (lambda f, d: d / "missing.npz", "neither a number of episodes nor an existing demonstration file"),
    ],
)
def test_bad_demos_exit_2_before_a_run_starts(reach_file: Path, tmp_path: Path, capsys, make, message: str) -> None:
    run = tmp_path / "run"
    source = make(reach_file, tmp_path)
    assert main(["train", "--algo", "sac", "--env", PUSH, "--timesteps", "100", "--out", str(run),
                 "--demos", str(source)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (run / "checkpoints").exists()


def test_demos_need_her_and_an_off_policy_algorithm(tmp_path: Path, capsys) -> None:
    assert main(["train", "--algo", "sac", "--env", REACH, "--timesteps", "100", "--out", str(tmp_path / "a"),
                 "--demos", "2", "her.enabled=false"]) == 2
    assert "need her.enabled=true" in capsys.readouterr().err
    assert main(["train", "--algo", "ppo", "--env", REACH, "--timesteps", "100", "--out", str(tmp_path / "b"),
                 "--demos", "2"]) == 2
    assert "unknown config key 'demos' for ppo" in capsys.readouterr().err


def test_expert_labels_clone_the_expert_on_the_agent_rows(tmp_path: Path) -> None:
    """demos.expert_labels: the agent's replayed states get BC towards the expert's action for them,
    computed from the unnormalised observation, under the same Q-filter."""
    cfg = resolve_config("tqc", PUSH, overrides=[*SMALL, "demos.episodes=2", "demos.expert_labels=true",
                                                  "policy.net_arch=[16]", "algorithm.buffer_size=1000"])
    cfg["total_timesteps"] = 300
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train()  # a few real gradient steps with labels: the tb log shows them
    model = trainer.model
    assert model.expert_labeller is not None
    tb = list((tmp_path / "run" / "tb").rglob("events.out.tfevents*"))
    assert tb and b"demos/expert_q_filter_pass" in tb[0].read_bytes()

    buf = model.replay_buffer
    batch = buf.sample(16, model._vec_normalize_env)
    agent_obs = buf.last_agent_obs
    assert agent_obs is not None and len(agent_obs["observation"]) == 16 - buf.demo_batch_size(16)
    raw = model._vec_normalize_env.unnormalize_obs({k: v.numpy() for k, v in agent_obs.items()})
    labels = torch.as_tensor(model.expert_labeller(raw["observation"], raw["desired_goal"]))
    assert not torch.allclose(batch.observations["observation"][: len(labels)], torch.as_tensor(raw["observation"]))
    w = torch.tensor([1.0, 0.0, 0.0])
    _linear_critic(model, w)
    buf.last_demo_batch = None  # the agent rows alone

    model.actor.optimizer.zero_grad()
    model._bc_in_train = True
    model._add_bc_gradient(model.actor.optimizer, (), {})
    model._bc_in_train = False
    got = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.actor.parameters()]
    model.actor.optimizer.zero_grad()
    pi = model.policy._predict(agent_obs, deterministic=True)
    loss, mask = q_filtered_bc_loss(pi, labels, (labels * w).sum(1), (pi.detach() * w).sum(1))
    (model.bc_weight * loss).backward()
    for g, p in zip(got, model.actor.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad if p.grad is not None else torch.zeros_like(p))
    assert model.bc_stats["expert_q_filter_pass"][-1] == pytest.approx(float(mask.float().mean()))
    model.env.close()


@pytest.mark.parametrize(("env_id", "extra", "message"), [
    ("DrlControl/IiwaPickAndPlace-v0", ["--demos", "1"], "needs an end-effector Push env"),
    ("DrlControl/IiwaPushJoints-v0", ["--demos", "1"], "needs an end-effector Push env"),
    (PUSH, [], "needs demonstrations as well"),
])
def test_expert_labels_are_refused_where_the_expert_cannot_label(tmp_path: Path, capsys, env_id, extra,
                                                                  message) -> None:
    run = tmp_path / "run"
    assert main(["train", "--algo", "tqc", "--env", env_id, "--timesteps", "100", "--out", str(run),
                 "demos.expert_labels=true", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (run / "checkpoints").exists()
