"""Hostile clients on a shared domain against the real-robot side (issue 14 items 1, 3, 4): real
node processes, an independent rclpy client.

- `set_parameters` (rcl_interfaces/srv/SetParameters) on robot_interface_node and controller_node:
  every parameter is read-only, `use_sim_time` is refused with its reason; values read back
  unchanged and both nodes keep ticking (hypothesis over names and values);
- `use_sim_time:=true` or an absurd safety value at start: one line on stderr, exit 2;
- `~/load_policy` with control_hz 1e-12, 0.5, 5000, NaN: refused with the reason, the old policy
  keeps commanding; a compatible rate (50 Hz) is taken over;
- a load of a big artifact does not stop the control tick, and `~/enable false` answers before it;
- a second publisher on `joint_states`: `~/enable true` refused; one flooding states 0.78 rad away
  while enabled is refused per message (every command stays within one speed-limited step of the
  arm); a 60 s old replayed state is stale.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool

from drl_control.deploy.artifact import sha256_file
from drl_control.deploy.safety import SafetyConfig
from drl_control.robot import iiwa14
from drl_control.ros import names
from drl_control_interfaces.msg import ControllerStatus
from drl_control_interfaces.srv import LoadPolicy

sys.path.insert(0, str(Path(__file__).parent))
from fault_util import untrained_artifact  # noqa: E402
from ros_util import RosHarness, domain_id, ros_env, stamp_now, wait_future, wait_until  # noqa: E402

SPEC = iiwa14()
HOME = SPEC.home
RI, CTL = "/h_ri", "/h_ctl"
RI_NODE = names.join(RI, names.ROBOT_INTERFACE_NODE)
CTL_NODE = names.join(CTL, names.CONTROLLER_NODE)
HYPO = settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    h = RosHarness(domain_id(71), tmp_path_factory.mktemp("hostile_logs"))
    h.start("drl_control.ros.robot_interface_node", "-r", f"__ns:={RI}", "-p", "profile:=lbr", name="ri")
    h.artifact = untrained_artifact(tmp_path_factory.getbasetemp())
    h.start("drl_control.ros.controller_node", "-r", f"__ns:={CTL}", "-p", f"artifact:={h.artifact}",
            "-p", "goal:=[0.5, 0.0, 0.4]", name="controller")
    try:
        yield h
    finally:
        h.close()


def _set(ros, node: str, name: str, value) -> list:
    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return ros.call(SetParameters, f"{node}/set_parameters", request).results


def _get(ros, node: str, name: str):
    values = ros.call(GetParameters, f"{node}/get_parameters", GetParameters.Request(names=[name])).values
    return Parameter.from_parameter_msg(ParameterMsg(name=name, value=values[0])).value


def _status(ros, node: str) -> list:
    return ros.collect(ControllerStatus, f"{node}/status")[0]


def test_named_attacks_on_parameters_are_refused_with_a_reason(ros):
    status = _status(ros, RI_NODE)
    for node in (RI_NODE, CTL_NODE):
        for name, value in (("velocity_scale", 50.0), ("limit_margin", -1.0), ("use_sim_time", True)):
            (result,) = _set(ros, node, name, value)
            assert not result.successful and result.reason, (node, name)
            if name == "use_sim_time":
                assert "steady clock" in result.reason
            else:
                assert "read-only" in result.reason
        assert _get(ros, node, "velocity_scale") != 50.0 and _get(ros, node, "use_sim_time") is False
    t0 = time.monotonic()  # still ticking on the steady clock
    wait_until(lambda: sum(t > t0 for t, _ in status) >= 5, 10, what="status after the attacks")


VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**63, 2**63 - 1), st.booleans(),
                   st.text(max_size=20), st.lists(st.floats(-10, 10), max_size=4))
NAMES = st.one_of(st.sampled_from(["velocity_scale", "limit_margin", "rate_hz", "profile", "dry_run", "autostart",
                                   "workspace_low", "stale_periods", "use_sim_time", "artifact", "realtime_priority",
                                   "command_timeout_periods", "joint_states", "position_commands"]),
                  st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))


@HYPO
@given(node=st.sampled_from([RI_NODE, CTL_NODE]), name=NAMES, value=VALUES)
def test_no_parameter_can_be_changed_at_run_time(ros, node, name, value):
    (result,) = _set(ros, node, name, value)
    if name == "use_sim_time" and value is False:
        return  # the one harmless value of the one writable parameter
    assert not result.successful and result.reason, (name, value, result.reason)


@pytest.mark.parametrize("module,args", [
    ("robot_interface_node", ["-p", "use_sim_time:=true"]),
    ("controller_node", ["-p", "use_sim_time:=true"]),
    ("robot_interface_node", ["-p", "velocity_scale:=50.0"]),
    ("controller_node", ["-p", "rate_hz:=1.0e-12"]),
    ("controller_node", ["-p", "limit_margin:=-1.0"]),
])
def test_bad_start_parameters_exit_2_with_one_line(module, args):
    proc = subprocess.run([sys.executable, "-m", f"drl_control.ros.{module}", "--ros-args", *args],
                          env=ros_env(domain_id(72)), capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"{module}: error: "), proc.stderr
    assert args[-1].split(":=")[0] in lines[0] or "use_sim_time" in lines[0] or "rate_hz" in lines[0]


def _variant(base: Path, out: Path, **spec) -> Path:
    shutil.copytree(base, out)
    meta = json.loads((out / "policy.json").read_text())
    meta["env_spec"].update(spec)
    (out / "policy.json").write_text(json.dumps(meta))
    return out


def _drive(ros, namespace: str, seconds: float, q=HOME, until=lambda: False):
    pub = ros.publisher(JointState, f"{namespace}/{names.JOINT_STATES}")
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until():
        pub.publish(stamp_now(JointState(name=list(SPEC.joint_names), position=list(q))))
        time.sleep(0.02)
    ros.on_executor(ros.node.destroy_publisher, pub)


def test_load_policy_refuses_bad_rates_and_the_old_policy_keeps_running(ros, tmp_path):
    commands, _ = ros.collect_sent(Float64MultiArray, f"{CTL}/{names.FORWARD_POSITION_COMMANDS}")
    load = f"{CTL_NODE}/load_policy"
    wait_until(lambda: ros.call(SetBool, f"{CTL_NODE}/enable", SetBool.Request(data=True)).success, 20,
               what=f"enable\n{ros.logs()}")
    for i, hz in enumerate((1e-12, 0.5, 5000.0, math.nan)):
        bad = _variant(ros.artifact, tmp_path / f"bad{i}", control_hz=hz)
        t0 = time.time()
        response = ros.call(LoadPolicy, load, LoadPolicy.Request(artifact_dir=str(bad)))
        assert not response.success and response.message.startswith("cannot load"), response.message
        assert "control_hz" in response.message or "Hz" in response.message, response.message
        _drive(ros, CTL, 20.0, until=lambda t0=t0: sum(t > t0 for t, _ in commands) >= 10)
        assert sum(t > t0 for t, _ in commands) >= 10, (hz, ros.logs())  # the old policy keeps commanding
    assert all(p.alive() for p in ros.procs)
    good = _variant(ros.artifact, tmp_path / "fifty", control_hz=50.0)  # 250 Hz physics: 5 substeps
    response = ros.call(LoadPolicy, load, LoadPolicy.Request(artifact_dir=str(good)))
    assert response.success and "50 Hz" in response.message, response.message
    t0 = time.time() + 0.3  # the next tick installs it
    _drive(ros, CTL, 20.0, until=lambda: sum(t > t0 for t, _ in commands) >= 30)
    sent = [t for t, _ in commands if t > t0]
    # the controller's own send times (DDS source timestamps): a 20 ms period now, not 40
    assert len(sent) >= 30 and np.median(np.diff(sent)) < 0.03, (len(sent), np.median(np.diff(sent)))
    assert ros.call(SetBool, f"{CTL_NODE}/enable", SetBool.Request(data=False)).success


def test_a_big_load_does_not_stop_the_tick_and_the_e_stop_does_not_wait(ros, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    big = tmp_path / "big"
    shutil.copytree(ros.artifact, big)
    tensors = load_file(big / "policy.safetensors")
    tensors["padding"] = torch.zeros(40_000_000)  # 160 MB the loader must hash and read
    save_file(tensors, big / "policy.safetensors")
    meta = json.loads((big / "policy.json").read_text())
    meta["tensors"]["shapes"]["padding"] = [40_000_000]
    meta["tensors"]["sha256"] = sha256_file(big / "policy.safetensors")
    (big / "policy.json").write_text(json.dumps(meta))
    del tensors

    status = _status(ros, CTL_NODE)
    load = ros.node.create_client(LoadPolicy, f"{CTL_NODE}/load_policy")
    enable = ros.node.create_client(SetBool, f"{CTL_NODE}/enable")
    assert load.wait_for_service(timeout_sec=20) and enable.wait_for_service(timeout_sec=20)
    order: list[str] = []
    t_load = time.time()
    loading = load.call_async(LoadPolicy.Request(artifact_dir=str(big)))
    loading.add_done_callback(lambda _f: order.append("load"))
    stopping = enable.call_async(SetBool.Request(data=False))
    stopping.add_done_callback(lambda _f: order.append("enable"))
    assert wait_future(stopping, 20).success
    wait_future(loading, 60)
    t_done = time.time()
    assert order[0] == "enable", order
    during = [m for _, m in status if t_load < m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 < t_done]
    assert len(during) >= max(1, int((t_done - t_load) * 25 * 0.3)), (len(during), t_done - t_load)


def test_second_joint_state_publisher_and_replayed_states(ros):
    enable = f"{CTL_NODE}/enable"
    commands, _ = ros.collect_sent(Float64MultiArray, f"{CTL}/{names.FORWARD_POSITION_COMMANDS}")
    status = _status(ros, CTL_NODE)
    arm = ros.publisher(JointState, f"{CTL}/{names.JOINT_STATES}")
    rogue = ros.publisher(JointState, f"{CTL}/{names.JOINT_STATES}")
    wait_until(lambda: ros.node.count_publishers(f"{CTL}/{names.JOINT_STATES}") == 2, 10, what="two publishers")
    response = ros.call(SetBool, enable, SetBool.Request(data=True))
    assert not response.success and "2 publishers on" in response.message, response.message
    ros.on_executor(ros.node.destroy_publisher, rogue)
    wait_until(lambda: ros.call(SetBool, enable, SetBool.Request(data=True)).success, 20, what="enable")

    # a rogue flooding states 0.78 rad away once enabled: refused per message; commands follow the arm
    rogue = ros.node.create_publisher(JointState, f"{CTL}/{names.JOINT_STATES}", 10)
    away = HOME + np.array([0.0, 0.78, 0.0, 0.0, 0.0, 0.0, 0.0])
    t0 = time.time()
    for _ in range(100):
        arm.publish(stamp_now(JointState(name=list(SPEC.joint_names), position=HOME.tolist())))
        for _flood in range(3):
            rogue.publish(stamp_now(JointState(name=list(SPEC.joint_names), position=away.tolist())))
        time.sleep(0.02)
    sent = [np.asarray(m.data) for t, m in commands if t > t0]
    step = SafetyConfig().velocity_scale * SPEC.max_velocity / 25.0
    assert sent and all(np.all(np.abs(c - HOME) <= step + 1e-6) for c in sent), ros.logs()
    assert any("2 publishers on" in m.reason for _, m in status)
    ros.on_executor(ros.node.destroy_publisher, rogue)

    # a replayed state, 60 s old: not fresh -> the controller holds on stale state
    t0 = time.monotonic()
    old = JointState(name=list(SPEC.joint_names), position=HOME.tolist())
    old.header.stamp.sec = int(time.time() - 60)
    for _ in range(50):
        arm.publish(old)
        time.sleep(0.02)
    wait_until(lambda: any(t > t0 + 0.3 and m.holding and "stale joint state stamp" in m.reason for t, m in status),
               10, what=f"hold on replayed states\n{[m.reason for _, m in status[-3:]]}")
    assert ros.call(SetBool, enable, SetBool.Request(data=False)).success
