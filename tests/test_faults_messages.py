"""Issue 5, faults: bad messages to every topic and service a node consumes (hypothesis fuzzing).

Real processes on a private ROS domain, real FastDDS. Started once for the module: sim_node in env
mode (/fz_env), sim_node in robot mode (/fz_robot), robot_interface_node (/fz_ri, profile sim,
its driver = the /fz_robot sim, disabled until its test), controller_node (/fz_ctrl, an untrained
Reach artifact, fed by the test's joint_states) and learner_node. Each target gets
FUZZ_EXAMPLES hypothesis examples (NaN/inf, wrong lengths, unknown / reordered / duplicate joint
names, out-of-range and huge values, empty messages, goals outside the workspace or in another
frame). Asserted: each bad input is rejected with a logged reason (rejections counted where the
node logs every one), the process stays up and still serves a valid request, and nothing outside
the safety limits reaches the robot-mode sim (its joint_states stay within the URDF limits; the
controller's and the robot interface's commands stay within the limits shrunk by the margin).

    .venv/bin/python -m pytest tests/test_faults_messages.py            # 40 examples per target
    DRL_CONTROL_FUZZ_EXAMPLES=300 .venv/bin/python -m pytest tests/test_faults_messages.py
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, PointStamped
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from drl_control.deploy.safety import SafetyConfig, SafetyFilter
from drl_control.robot import iiwa14
from drl_control.ros import names
from drl_control.ros.spin import ThreadSafeActionClient
from drl_control_interfaces.action import Train
from drl_control_interfaces.msg import ControllerStatus, LearnerStatus
from drl_control_interfaces.srv import EnvReset, EnvStep, LoadPolicy, SetGoal

sys.path.insert(0, str(Path(__file__).parent))
from fault_util import untrained_artifact  # noqa: E402
from ros_util import RosHarness, domain_id, stamp_now, wait_for, wait_future, wait_until  # noqa: E402

EXAMPLES = int(os.environ.get("DRL_CONTROL_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
                suppress_health_check=list(HealthCheck))
SPEC = iiwa14()
JOINTS = list(SPEC.joint_names)
LOWER, UPPER = SPEC.lower, SPEC.upper
MARGIN = SafetyConfig.limit_margin
EPS = 1e-9
PACE = 0.01  # s between fuzzed messages: the nodes' subscriptions keep 10
COUNTS: Counter = Counter()  # inputs tried per target (reported at the end of the module)
ENV_NUM, ACTION_DIM = 2, 3  # /fz_env: two IiwaReach envs (ee displacement xyz)

# --- strategies --------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=16)  # no NUL/surrogates (not encodable)

SPECIAL = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0, 4.0, -4.0, 1e-300])
ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), SPECIAL)
IN_LIMITS = st.tuples(*[st.floats(float(lo), float(hi)) for lo, hi in zip(LOWER, UPPER, strict=True)]).map(list)
NEAR_LIMITS = st.tuples(*[st.sampled_from([float(lo) - 0.01, float(lo), float(hi), float(hi) + 0.01])
                          for lo, hi in zip(LOWER, UPPER, strict=True)]).map(list)
POSITIONS = st.one_of(st.lists(ANY_FLOAT, max_size=12), IN_LIMITS, NEAR_LIMITS,
                      st.lists(ANY_FLOAT, min_size=7, max_size=7))
JOINT_NAMES = st.one_of(
    st.permutations(JOINTS),
    st.lists(st.sampled_from(JOINTS + ["iiwa_joint_8", "lbr_A1", "", "gripper_finger_left"]), max_size=9),
    st.lists(TEXT, max_size=8),
)


def _valid_positions(q) -> bool:
    q = np.asarray(q, dtype=float)
    return q.shape == (7,) and bool(np.all(np.isfinite(q))) and bool(np.all((q >= LOWER) & (q <= UPPER)))


def _point(values) -> Point:
    return Point(x=values[0], y=values[1], z=values[2])


GOAL_POINT = st.tuples(ANY_FLOAT, ANY_FLOAT, ANY_FLOAT)
FRAMES = st.one_of(st.sampled_from(["", names.BASE_FRAME, "/" + names.BASE_FRAME, "world", "map"]),
                   TEXT)


@st.composite
def joint_state_msgs(draw, joints=tuple(JOINTS)) -> JointState:
    msg = JointState()
    msg.header.frame_id = "fuzz"  # tells the fuzz apart from a node's own joint_states
    joint_names = draw(st.one_of(st.permutations(list(joints)), JOINT_NAMES))
    msg.name = list(joint_names)
    n = len(msg.name)
    length = st.one_of(st.just(n), st.integers(0, 10))
    values = st.one_of(
        length.flatmap(lambda k: st.lists(ANY_FLOAT, min_size=k, max_size=k)),
        st.just([0.0] * n),
        st.lists(st.floats(-100.0, 100.0), min_size=n, max_size=n),
    )
    msg.position = draw(values)
    msg.velocity = draw(st.one_of(st.just([]), values))
    msg.effort = draw(st.one_of(st.just([]), values))
    return msg


@st.composite
def trajectories(draw, joints=tuple(JOINTS)) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(draw(st.one_of(st.permutations(list(joints)), JOINT_NAMES))))
    for _ in range(draw(st.integers(0, 3))):
        positions = draw(st.one_of(POSITIONS, st.lists(ANY_FLOAT, min_size=len(msg.joint_names),
                                                       max_size=len(msg.joint_names))))
        sec = draw(st.one_of(st.integers(-2**31, 2**31 - 1), st.integers(0, 2)))
        msg.points.append(JointTrajectoryPoint(
            positions=positions, time_from_start=Duration(sec=sec, nanosec=draw(st.integers(0, 999_999_999)))))
    return msg


# --- the nodes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    h = RosHarness(domain_id(7), tmp_path_factory.mktemp("fuzz_logs"))
    h.start("sim_node", "-r", "__ns:=/fz_env", "-p", f"num_envs:={ENV_NUM}", "-p", "seed:=0", name="sim_env")
    h.start("sim_node", "-r", "__ns:=/fz_robot", "-p", "mode:=robot", "-p", "publish_rate:=100.0",
            "-p", "physics_hz:=250.0", name="sim_robot")
    h.start("robot_interface_node", "-r", "__ns:=/fz_ri", "-p", "profile:=sim",
            "-p", "joint_states:=/fz_robot/joint_states",
            "-p", "position_commands:=/fz_robot/forward_position_controller/commands",
            "-p", "joint_trajectory:=/fz_robot/joint_trajectory_controller/joint_trajectory", name="ri")
    h.start("learner_node", "-p", "workers:=['/fz_env']", "-p", f"run_root:={h.log_dir / 'runs'}", name="learner")
    artifact = untrained_artifact(tmp_path_factory.getbasetemp())  # built while the nodes start
    h.start("controller_node", "-r", "__ns:=/fz_ctrl", "-p", f"artifact:={artifact}", "-p", "autostart:=true",
            "-p", "goal:=[0.5, 0.0, 0.4]", name="controller")
    h.artifact = artifact
    try:
        yield h
    finally:
        print("\nfuzzed inputs per target: " + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))
        h.close()


def _proc(ros, name):
    return next(p for p in ros.procs if p.log_path.stem == name)


def _publisher(ros, msg_type, topic):
    return ros.publisher(msg_type, topic)


def _primed(proc, pub, msg, pattern: str) -> int:
    """Publish `msg` (one the node logs as `pattern`) until a log line shows the node receives
    this publisher; returns the count of such lines then. Why: `get_subscription_count` says the
    probe's writer matched the node's reader, not yet the reverse, and a message sent in between
    is dropped (volatile QoS), which would make a later count one short."""
    base = _log_count(proc, pattern)
    for _ in range(100):
        pub.publish(msg)
        if wait_for(lambda: _log_count(proc, pattern) > base, 0.3):
            time.sleep(0.5)  # an earlier, delayed copy may still arrive
            return _log_count(proc, pattern)
    raise AssertionError(f"the node never logged {pattern!r} for {pub.topic_name}\n{proc.log()[-3000:]}")


def _client(ros, srv_type, name):
    client = ros.node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=30), f"service {name} not available\n{ros.logs()}"
    return client


def _call(client, request):
    return wait_future(client.call_async(request), 15, what=f"a response from {client.srv_name}")


def _within(q, lower, upper, tol=EPS) -> bool:
    q = np.asarray(q, dtype=float)
    return q.shape == (7,) and bool(np.all(np.isfinite(q))) and bool(np.all((q >= lower - tol) & (q <= upper + tol)))


def _log_count(proc, pattern: str) -> int:
    return len(re.findall(pattern, proc.log()))


def _topic_fuzzer(pub, label: str, messages):
    """A hypothesis test publishing each drawn message on `pub` (counted under `label`), paced."""
    @FUZZ
    @given(msg=messages)
    def fuzz(msg):
        COUNTS[label] += 1
        pub.publish(msg)
        time.sleep(PACE)

    return fuzz


def _goal_msg(frame: str, xyz) -> PointStamped:
    msg = PointStamped(point=_point(xyz))
    msg.header.frame_id = frame
    return msg


GOAL_MSGS = st.builds(_goal_msg, FRAMES, GOAL_POINT)
POSITION_MSGS = POSITIONS.map(lambda data: Float64MultiArray(data=data))


# --- safety filter, without ROS (the invariant the nodes rely on) ------------------------------


@FUZZ
@given(state=st.one_of(POSITIONS, st.lists(st.floats(-100, 100), min_size=7, max_size=7)), proposal=POSITIONS,
       enabled=st.booleans(), dt=st.floats(0.0, 0.2))
def test_safety_filter_never_emits_a_command_outside_the_shrunk_limits(state, proposal, enabled, dt):
    """...unless the arm itself stands in the margin: then no farther out than it is (it comes
    back at the speed limit, no jump), and never outside the URDF limits."""
    COUNTS["safety filter (no ROS)"] += 1
    f = SafetyFilter()
    f.set_enabled(enabled)
    q = np.asarray(state, dtype=float)
    f.observe_state(q, 0.0)
    f.propose(np.asarray(proposal, dtype=float), 0.0)
    d = f.decide(dt)
    if d.command is not None:
        lower = np.maximum(np.minimum(f.lower, q), LOWER)
        upper = np.minimum(np.maximum(f.upper, q), UPPER)
        assert _within(d.command, lower, upper), (state, proposal, d)
    if not enabled:
        assert d.command is None


def test_safety_filter_out_of_range_state_is_held_not_followed():
    f = SafetyFilter()
    f.set_enabled(True)
    f.observe_state(np.full(7, 100.0), 0.0)  # a corrupt state: before, rule 8 scaled from it, out of limits
    f.propose(SPEC.home, 0.0)
    d = f.decide(0.01)
    assert d.command is None and d.holding and "outside the URDF limits" in d.reason


# --- sim_node, robot mode ----------------------------------------------------------------------


def test_sim_robot_rejects_bad_commands_and_stays_within_limits(ros):
    proc = _proc(ros, "sim_robot")
    states, _ = ros.collect(JointState, "/fz_robot/joint_states", qos=100)
    positions = _publisher(ros, Float64MultiArray, "/fz_robot/forward_position_controller/commands")
    trajectory = _publisher(ros, JointTrajectory, "/fz_robot/joint_trajectory_controller/joint_trajectory")
    goal = _publisher(ros, PointStamped, "/fz_robot/goal")
    invalid = {"n": 0}

    @FUZZ
    @given(data=POSITIONS)
    def fuzz_positions(data):
        COUNTS["sim_node forward_position_controller/commands"] += 1
        positions.publish(Float64MultiArray(data=data))
        if _valid_positions(data):
            time.sleep(PACE)
        else:  # paced by the node's log: a burst may overflow its subscription's history when it is starved
            invalid["n"] += 1
            wait_for(lambda: _log_count(proc, rejected) - base >= invalid["n"], 10)

    fuzz_trajectory = _topic_fuzzer(trajectory, "sim_node joint_trajectory_controller/joint_trajectory", trajectories())
    fuzz_goal = _topic_fuzzer(goal, "sim_node goal", GOAL_MSGS)

    rejected = r"rejected forward_position_controller/commands"
    base = _primed(proc, positions, Float64MultiArray(data=[math.nan] * 7), rejected)
    fuzz_positions()
    # every invalid position vector gets its own log line (none is dropped or silently applied)
    wait_for(lambda: _log_count(proc, rejected) - base >= invalid["n"], 10)
    assert _log_count(proc, rejected) - base == invalid["n"], proc.log()[-3000:]
    fuzz_trajectory()
    trajectory.publish(JointTrajectory(joint_names=JOINTS[::-1], points=[JointTrajectoryPoint(
        positions=[math.nan] * 7, time_from_start=Duration(sec=1))]))
    fuzz_goal()
    goal.publish(PointStamped(point=_point([math.nan, 0.0, 0.0])))
    wait_until(lambda: "rejected joint_trajectory_controller/joint_trajectory: point 0: joint positions must be "
               "finite" in proc.log() and "rejected goal: goal must be 3 finite numbers" in proc.log(), 10,
               what="the rejection log lines")

    # still serving: a valid command is followed
    target = SPEC.home + 0.1
    n = len(states)
    positions.publish(Float64MultiArray(data=target.tolist()))
    wait_until(lambda: len(states) > n and np.max(np.abs(np.asarray(states[-1][1].position) - target)) < 0.02, 10,
               what="the arm at a valid command after the fuzz")
    assert proc.alive(), proc.log()[-3000:]
    sim_states = [m for _, m in states if m.header.frame_id != "fuzz"]
    assert sim_states and all(_within(m.position, LOWER, UPPER, 0.01) for m in sim_states)


# --- sim_node, env mode ------------------------------------------------------------------------


def test_sim_env_rejects_bad_reset_and_step_requests(ros):
    proc = _proc(ros, "sim_env")
    reset = _client(ros, EnvReset, "/fz_env/sim_node/reset")
    step = _client(ros, EnvStep, "/fz_env/sim_node/step")
    assert _call(reset, EnvReset.Request()).success
    options = st.one_of(st.just(""), st.just("{}"), TEXT, st.sampled_from(["[1]", "3", "null", "{"]))

    @FUZZ
    @given(seeds=st.lists(st.integers(-2**63, 2**63 - 1), max_size=3), options_json=options)
    def fuzz_reset(seeds, options_json):
        COUNTS["sim_node ~/reset"] += 1
        response = _call(reset, EnvReset.Request(seeds=seeds, options_json=options_json))
        if not response.success:
            assert response.message
            wait_until(lambda: response.message in proc.log(), 5, what=f"log of {response.message!r}")
        if seeds and (len(seeds) != ENV_NUM or min(seeds) < 0):
            assert not response.success

    f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)

    @FUZZ
    @given(actions=st.one_of(st.lists(f32, max_size=12), st.lists(st.floats(-1, 1, width=32), min_size=6, max_size=6)),
           action_dim=st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 9), st.just(ACTION_DIM)))
    def fuzz_step(actions, action_dim):
        COUNTS["sim_node ~/step"] += 1
        valid = action_dim == ACTION_DIM and len(actions) == ENV_NUM * ACTION_DIM and all(map(math.isfinite, actions))
        response = _call(step, EnvStep.Request(actions=actions, action_dim=action_dim))
        assert response.success == valid, (actions, action_dim, response.message)
        if not valid:
            assert "rejected ~/step request" in proc.log()

    fuzz_reset()
    fuzz_step()
    assert proc.alive(), proc.log()[-3000:]
    response = _call(step, EnvStep.Request(actions=[0.1] * (ENV_NUM * ACTION_DIM), action_dim=ACTION_DIM))
    assert response.success and len(response.rewards) == ENV_NUM


# --- controller_node ---------------------------------------------------------------------------


def _home_state() -> JointState:
    return stamp_now(JointState(name=JOINTS[::-1], position=SPEC.home[::-1].tolist()))


def test_controller_rejects_bad_inputs_and_commands_stay_within_limits(ros, tmp_path):
    proc = _proc(ros, "controller")
    ns = "/fz_ctrl"
    commands, _ = ros.collect_sent(Float64MultiArray, f"{ns}/{names.FORWARD_POSITION_COMMANDS}")
    status, _ = ros.collect(ControllerStatus, names.private(ns, names.CONTROLLER_NODE, names.STATUS))
    states = _publisher(ros, JointState, f"{ns}/joint_states")
    goal = _publisher(ros, PointStamped, f"{ns}/goal")
    set_goal = _client(ros, SetGoal, names.private(ns, names.CONTROLLER_NODE, names.SET_GOAL))
    load = _client(ros, LoadPolicy, names.private(ns, names.CONTROLLER_NODE, names.LOAD_POLICY))
    enable = _client(ros, SetBool, names.private(ns, names.CONTROLLER_NODE, names.ENABLE))

    stop = threading.Event()

    def feed():  # the arm's valid joint_states at 50 Hz, interleaved with the fuzz
        while not stop.is_set():
            states.publish(_home_state())
            time.sleep(0.02)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        wait_until(lambda: any(m.state == "running" for _, m in status), 30, what=f"running\n{ros.logs()}")
        (tmp_path / "junk").mkdir()
        (tmp_path / "junk" / "policy.json").write_text("{not json")

        fuzz_states = _topic_fuzzer(states, "controller_node joint_states", joint_state_msgs())
        fuzz_goal = _topic_fuzzer(goal, "controller_node goal", GOAL_MSGS)

        @FUZZ
        @given(xyz=st.one_of(GOAL_POINT, st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3))))
        def fuzz_set_goal(xyz):
            COUNTS["controller_node ~/set_goal"] += 1
            response = _call(set_goal, SetGoal.Request(goal=_point(xyz)))
            if not all(map(math.isfinite, xyz)) or max(map(abs, xyz)) > 1.5:
                assert not response.success, (xyz, response.message)
            assert response.message

        paths = st.one_of(TEXT, st.sampled_from(["", "/", "/nonexistent/artifact", str(tmp_path / "junk"),
                                                                 str(tmp_path), "."]))

        @FUZZ
        @given(path=paths)
        def fuzz_load(path):
            COUNTS["controller_node ~/load_policy"] += 1
            response = _call(load, LoadPolicy.Request(artifact_dir=path))
            assert not response.success and response.message.startswith("cannot load"), (path, response.message)

        fuzz_states()
        for bad in (JointState(name=JOINTS, position=[0.0] * 3),
                    JointState(name=JOINTS[:-1] + JOINTS[:1], position=[0.0] * 7),
                    JointState(name=JOINTS, position=[math.nan] * 7),
                    JointState(name=JOINTS, position=[100.0] * 7)):
            states.publish(bad)
            time.sleep(0.05)
        fuzz_goal()
        goal.publish(PointStamped(point=_point([0.5, 0.0, math.nan])))
        far = PointStamped(point=_point([5.0, 0.0, 0.4]))
        far.header.frame_id = names.BASE_FRAME
        goal.publish(far)
        fuzz_set_goal()
        fuzz_load()
        log = proc.log
        wait_until(lambda: "joint_states rejected: 3 positions for 7 joint names" in log()
                   and "joint_states rejected: duplicate joint names" in log()
                   and "goal rejected: goal must be 3 finite numbers" in log()
                   and "goal rejected: goal [5.0, 0.0, 0.4] outside the workspace box" in log()
                   and "~/set_goal rejected" in log() and "cannot load" in log(), 10,
                   what=f"the rejection log lines\n{log()[-3000:]}")
        assert re.search(r"joint state is not 7 finite values|joint state outside the URDF limits", log()), log()[-3000:]

        # commands to a disabled controller: goals and state keep coming, nothing is published
        assert _call(enable, SetBool.Request(data=False)).success
        disabled = time.time()  # the controller's send times (collect_sent) decide, not arrival
        for xyz in ([0.5, 0.2, 0.4], [0.6, -0.1, 0.3]):
            assert _call(set_goal, SetGoal.Request(goal=_point(xyz))).success
            time.sleep(0.4)
        assert not [m.data for t, m in commands if t > disabled], "commands published while disabled"
        n = len(commands)
        COUNTS["controller_node goals while disabled"] += 2
        assert _call(enable, SetBool.Request(data=True)).success
        wait_until(lambda: len(commands) > n + 3, 10, what="commands after re-enabling")
        t0 = time.monotonic()
        wait_until(lambda: any(t > t0 and m.state == "running" for t, m in status), 10, what="running after the fuzz")
    finally:
        stop.set()
        feeder.join()
    assert proc.alive(), proc.log()[-3000:]
    lower, upper = LOWER + MARGIN, UPPER - MARGIN
    outside = [m.data for _, m in commands if not _within(m.data, lower, upper)]
    assert len(commands) > 10 and not outside, outside[:3]


# --- robot_interface_node ----------------------------------------------------------------------


def test_robot_interface_rejects_bad_inputs_and_the_sim_stays_within_limits(ros):
    proc = _proc(ros, "ri")
    sent, _ = ros.collect(Float64MultiArray, "/fz_robot/forward_position_controller/commands", qos=100)
    relayed, _ = ros.collect(JointState, "/fz_ri/joint_states", qos=100)
    sim_states, _ = ros.collect(JointState, "/fz_robot/joint_states", qos=100)
    positions = _publisher(ros, Float64MultiArray, "/fz_ri/forward_position_controller/commands")
    trajectory = _publisher(ros, JointTrajectory, "/fz_ri/joint_trajectory_controller/joint_trajectory")
    enable = _client(ros, SetBool, names.private("/fz_ri", names.ROBOT_INTERFACE_NODE, names.ENABLE))

    # disabled (its start state): valid commands reach nothing
    wait_until(lambda: relayed, 30, what="relayed joint states")
    for _ in range(25):
        positions.publish(Float64MultiArray(data=(SPEC.home + 0.05).tolist()))
        time.sleep(0.02)
    assert not sent, "the disabled robot interface sent commands to the arm"
    COUNTS["robot_interface_node commands while disabled"] += 25

    assert _call(enable, SetBool.Request(data=True)).success
    wait_until(lambda: sent, 10, what="hold commands once enabled")
    # a rogue publisher beside the sim, once enabled (while it exists, ~/enable true is refused)
    driver = _publisher(ros, JointState, "/fz_robot/joint_states")

    fuzz_positions = _topic_fuzzer(positions, "robot_interface_node forward_position_controller/commands",
                                   POSITION_MSGS)
    fuzz_trajectory = _topic_fuzzer(trajectory, "robot_interface_node joint_trajectory_controller/joint_trajectory",
                                    trajectories())
    fuzz_driver = _topic_fuzzer(driver, "robot_interface_node driver joint_states", joint_state_msgs())

    fuzz_positions()
    fuzz_trajectory()
    fuzz_driver()
    for bad in (Float64MultiArray(data=[math.nan] * 7), Float64MultiArray(data=[10.0] * 7)):
        positions.publish(bad)
        time.sleep(0.05)
    trajectory.publish(JointTrajectory(joint_names=["joint_a1"] * 7))
    for bad in (JointState(name=JOINTS, position=[0.0] * 5), JointState(name=JOINTS, position=[100.0] * 7)):
        bad.header.frame_id = "fuzz"
        driver.publish(bad)
        time.sleep(0.05)
    log = proc.log
    wait_until(lambda: "rejected forward_position_controller/commands: not 7 finite positions" in log()
               and "outside the limits" in log() and "rejected joint_trajectory_controller/joint_trajectory" in log()
               and "driver joint_states rejected: 5 positions for 7 joint names" in log()
               and "driver joint_states not relayed: joint state outside the URDF limits" in log(), 10,
               what=f"the rejection log lines\n{log()[-3000:]}")

    # still serving: a valid command moves the sim arm
    target = SPEC.home + np.array([0.1, -0.1, 0.1, 0.1, -0.1, 0.1, 0.1])

    def at_target():
        positions.publish(Float64MultiArray(data=target.tolist()))
        real = [m for _, m in sim_states[-5:] if m.header.frame_id != "fuzz"]
        return real and np.max(np.abs(np.asarray(real[-1].position) - target)) < 0.02

    wait_until(at_target, 15, what=f"the sim arm at a valid command through the robot interface\n{ros.logs()}")
    assert _call(enable, SetBool.Request(data=False)).success
    assert proc.alive() and _proc(ros, "sim_robot").alive(), ros.logs()
    lower, upper = LOWER + MARGIN, UPPER - MARGIN
    assert [m.data for _, m in sent if not _within(m.data, lower, upper)] == []
    assert [m.position for _, m in relayed if not _within(m.position, LOWER - 0.05, UPPER + 0.05)] == []
    real = [m for _, m in sim_states if m.header.frame_id != "fuzz"]
    assert real and all(_within(m.position, LOWER, UPPER, 0.01) for m in real)


# --- learner_node ------------------------------------------------------------------------------

ALGOS = ("ddpg", "td3", "sac", "ppo")


@st.composite
def bad_train_goals(draw) -> Train.Goal:
    """A Train goal with at least one field that cannot work (the rest may be valid)."""
    goal = Train.Goal(
        algorithm=draw(st.one_of(st.sampled_from(ALGOS + ("", "SAC")), TEXT)),
        env_id=draw(st.sampled_from(["", "DrlControl/IiwaReach-v0"])),
        overrides=draw(st.lists(st.sampled_from(["algorithm.learning_starts=100", "eval.episodes=1"]), max_size=2)),
        timesteps=draw(st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 1000))),
        seed=draw(st.integers(-2**63, 2**63 - 1)),
        run_dir=draw(st.one_of(st.just(""), TEXT.map(lambda s: "/tmp/fz_run_" + s))),
    )
    bad = draw(st.sampled_from(["algorithm", "env_id", "overrides", "run_dir"]))
    if bad == "algorithm":
        goal.algorithm = draw(TEXT.filter(lambda s: s and s.lower() not in ALGOS))
    elif bad == "env_id":
        goal.env_id = draw(st.one_of(TEXT.filter(bool).map(lambda s: "Nope/" + s), TEXT.filter(bool)))
    elif bad == "overrides":
        goal.overrides = list(goal.overrides) + [draw(st.one_of(
            TEXT.filter(lambda s: "=" not in s), TEXT.map(lambda s: "=" + s),
            st.sampled_from(["algorithm.nope=1", "algorithm.gamma=abc", "algorithm.learning_rate=-1",
                             "her.enabled=[", "total_timesteps=-5", "a..b=1"])))]
    else:
        goal.run_dir = __file__  # exists and is a file
    return goal


def test_learner_rejects_bad_train_goals(ros):
    proc = _proc(ros, "learner")
    status, _ = ros.collect(LearnerStatus, "/learner_node/status")
    action = ThreadSafeActionClient(ros.node, Train, names.private("/", names.LEARNER_NODE, names.TRAIN))
    assert action.wait_for_server(timeout_sec=30), proc.log()
    sent = {"n": 0}
    base = _log_count(proc, "rejected train goal")

    @FUZZ
    @given(goal=bad_train_goals())
    def fuzz_goals(goal):
        COUNTS["learner_node ~/train"] += 1
        handle = wait_future(action.send_goal_async(goal), 30)
        sent["n"] += 1
        assert not handle.accepted, goal

    try:
        fuzz_goals()
        wait_for(lambda: _log_count(proc, "rejected train goal") - base >= sent["n"], 5)
        assert _log_count(proc, "rejected train goal") - base == sent["n"], proc.log()[-3000:]
        t0 = time.monotonic()
        wait_until(lambda: any(t > t0 for t, _ in status), 5, what="learner status after the fuzz")
        assert status[-1][1].state == "idle" and proc.alive()
    finally:
        ros.on_executor(action.destroy)


@pytest.mark.slow
def test_learner_accepts_a_valid_goal_after_the_fuzz(ros, tmp_path):
    """Liveness the expensive way: a valid goal is accepted, trains, and cancels cleanly."""
    status, _ = ros.collect(LearnerStatus, "/learner_node/status")
    action = ThreadSafeActionClient(ros.node, Train, names.private("/", names.LEARNER_NODE, names.TRAIN))
    try:
        assert action.wait_for_server(timeout_sec=30)
        goal = Train.Goal(algorithm="sac", timesteps=1_000_000, seed=0, run_dir="valid_run",
                          overrides=["algorithm.learning_starts=100", "eval.episodes=1"])
        handle = wait_future(action.send_goal_async(goal), 30)
        assert handle.accepted
        wait_until(lambda: status and status[-1][1].state == "training", 60, what="training")
        wait_future(handle.cancel_goal_async())
        result = wait_future(handle.get_result_async(), 60)
        assert "cancelled" in result.result.message
    finally:
        ros.on_executor(action.destroy)
