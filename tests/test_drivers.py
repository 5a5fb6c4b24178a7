"""Driver models (sim/drivers.py): the real drivers' command paths, in the goal envs and the robot
emulator alike, each behaviour observed in the real simulation."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import drl_control  # noqa: F401 - registers the env ids
from drl_control.sim.drivers import DRIVERS, Driver, DriverModel, driver_model
from drl_control.sim.emulator import RobotEmulator
from drl_control.sim.randomization import Randomization, Randomizer

PHYSICS_DT = 1 / 500


def _run(model: DriverModel, seconds: float, target: float = 1.0):
    """A step command of `target` at t = 0; the setpoints sent, one per physics step."""
    sent: list[np.ndarray] = []
    driver = Driver(model, PHYSICS_DT, lambda q: sent.append(np.array(q)))
    driver.reset(np.zeros(1))
    driver.command(np.full(1, target))
    trace = []
    for _ in range(round(seconds / PHYSICS_DT)):
        driver.tick()
        trace.append(float(driver.setpoint[0]))
    return np.array(trace), len(sent)


def test_named_models_carry_the_drivers_facts():
    assert DRIVERS["ideal"].ideal
    lbr, icube = DRIVERS["lbr"], DRIVERS["iiwa_ros2"]
    assert (lbr.update_hz, lbr.tau) == (100.0, 0.04)
    assert lbr.alpha() == pytest.approx(1 - math.exp(-0.01 / 0.04))
    assert (icube.update_hz, icube.tau, icube.alpha()) == (225.0, 0.0, 1.0)
    assert driver_model(None) is DRIVERS["ideal"] and driver_model("lbr") is lbr


def test_unknown_driver_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"unknown driver 'kuka'.*iiwa_ros2"):
        driver_model("kuka")
    with pytest.raises(ValueError, match="unknown driver"):
        gym.make("DrlControl/IiwaReach-v0", driver="kuka")
    with pytest.raises(ValueError, match="tau"):
        DriverModel("bad", update_hz=100.0, tau=-1.0)


@pytest.mark.parametrize("name,cycles_per_s", [("lbr", 100), ("iiwa_ros2", 225)])
def test_driver_cycles_at_its_update_rate(name, cycles_per_s):
    _, sent = _run(DRIVERS[name], 1.0)
    assert abs(sent - cycles_per_s) <= 1


def test_lbr_smooths_exponentially_after_one_cycle_of_latency():
    trace, _ = _run(DRIVERS["lbr"], 0.2)
    alpha = DRIVERS["lbr"].alpha()
    per_cycle = trace[::5]  # the value in each 10 ms cycle
    assert per_cycle[0] == 0.0  # the step waits one cycle
    expected = [1 - (1 - alpha) ** k for k in range(0, 20)]
    np.testing.assert_allclose(per_cycle[1:], expected[1:], atol=1e-12)
    # time constant: 63 % of the step ~ tau after the latency
    t63 = np.argmax(trace >= 1 - math.exp(-1)) * PHYSICS_DT
    assert 0.03 <= t63 <= 0.06


def test_iiwa_ros2_passes_the_command_unfiltered_after_one_cycle():
    trace, _ = _run(DRIVERS["iiwa_ros2"], 0.05)
    first = np.argmax(trace == 1.0) * PHYSICS_DT
    assert 0.0 < first <= 2 / 225 and set(np.unique(trace)) <= {0.0, 1.0}


def test_env_goals_are_the_same_for_every_driver_and_lbr_lags_the_ideal_servo():
    tcp = {}
    for name in ("ideal", "lbr", "iiwa_ros2"):
        env = gym.make("DrlControl/IiwaReach-v0", driver=name)
        obs, _ = env.reset(seed=7)
        tcp[name] = [obs["desired_goal"]]
        for _ in range(3):
            obs, *_ = env.step(np.array([1.0, 0.0, 0.0]))
            tcp[name].append(obs["achieved_goal"])
        env.close()
    np.testing.assert_array_equal(tcp["ideal"][0], tcp["lbr"][0])
    np.testing.assert_array_equal(tcp["ideal"][0], tcp["iiwa_ros2"][0])
    moved = {k: v[-1][0] - v[1][0] for k, v in tcp.items()}
    assert moved["lbr"] < moved["iiwa_ros2"] <= moved["ideal"] + 1e-3


def test_measurement_noise_reaches_the_observation_and_the_law():
    env = gym.make("DrlControl/IiwaReachJoints-v0", driver=DRIVERS["lbr"].with_(measurement_noise=0.01))
    obs, _ = env.reset(seed=1)
    arm = env.unwrapped.arm
    q_true = arm.joint_state()[0]
    q_seen = obs["observation"][6:13]
    assert 0.001 < np.abs(q_seen - q_true).max() < 0.1
    assert np.all(arm.measured_joint_positions() == arm.measured_joint_positions())  # one sample per state
    env.close()


def test_emulator_runs_behind_the_lbr_driver():
    ideal, lbr = RobotEmulator(), RobotEmulator(driver="lbr", seed=0)
    try:
        for robot in (ideal, lbr):
            target = robot.setpoint.copy()
            target[0] += 0.05
            robot.command_positions(target)
            robot.advance(25)  # 50 ms
        lag_ideal = abs(ideal.setpoint[0] - ideal.joint_state()[0][0])
        lag_lbr = abs(lbr.setpoint[0] - lbr.joint_state()[0][0])
        assert lag_lbr > lag_ideal + 0.005
        lbr.advance(500)
        np.testing.assert_allclose(lbr.joint_state()[0], lbr.setpoint, atol=2e-3)
    finally:
        ideal.close()
        lbr.close()


def test_randomized_driver_parameters_lie_in_their_ranges():
    config = Randomization.from_dict({"driver_update_hz": [90, 250], "driver_tau": [0.0, 0.06],
                                      "driver_latency": [0, 2], "measurement_noise": [0.0, 2e-4]})
    randomizer = Randomizer(config)
    rng = np.random.default_rng(0)
    models = [randomizer.driver(rng, DRIVERS["lbr"]) for _ in range(50)]
    assert all(90 <= m.update_hz <= 250 and 0 <= m.tau <= 0.06 and m.latency_cycles in (0, 1, 2)
               and 0 <= m.measurement_noise <= 2e-4 for m in models)
    assert len({m.latency_cycles for m in models}) == 3
    with pytest.raises(ValueError, match="driver_latency"):
        Randomization.from_dict({"driver_latency": [0, 1.5]})


def test_link_mass_scale_does_not_compound_over_resets():
    env = gym.make("DrlControl/IiwaReach-v0", randomization={"link_mass": [1.2, 1.2]})
    u = env.unwrapped
    base = u.world.client.getDynamicsInfo(u.arm.body, u.arm.joint_ids[3])[0]
    for seed in range(3):
        env.reset(seed=seed)
    assert u.world.client.getDynamicsInfo(u.arm.body, u.arm.joint_ids[3])[0] == pytest.approx(1.2 * base)
    env.close()


def test_ideal_driver_share_keeps_that_share_of_episodes_on_the_envs_own_driver():
    ranges = {"driver_update_hz": [90, 250], "driver_tau": [0.0, 0.06]}
    rng = np.random.default_rng(0)
    for share, low, high in ((0.0, 0, 0), (0.5, 150, 250), (1.0, 400, 400)):
        randomizer = Randomizer(Randomization.from_dict({**ranges, "ideal_driver_share": share}))
        kept = sum(randomizer.driver(rng, DRIVERS["ideal"]) == DRIVERS["ideal"] for _ in range(400))
        assert low <= kept <= high, (share, kept)
    with pytest.raises(ValueError, match="ideal_driver_share"):
        Randomization.from_dict({"ideal_driver_share": 1.5})
