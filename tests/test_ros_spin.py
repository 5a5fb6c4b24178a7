"""drl_control.ros.spin: the LeanExecutor every single-threaded node spins (real rclpy, FastDDS)."""

from __future__ import annotations

import threading
import time

import pytest
from ros_util import domain_id, wait_future, wait_until

rclpy = pytest.importorskip("rclpy")

from std_msgs.msg import Int32
from std_srvs.srv import SetBool

from drl_control.ros.spin import LeanExecutor, lean_executor


def test_lean_executor_runs_services_subscriptions_and_timers_on_one_thread():
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id(29))
    executor = lean_executor(context)
    assert isinstance(executor, LeanExecutor)  # the pinned rclpy has the private parts it overrides
    server = rclpy.create_node("lean_server", context=context)
    client_node = rclpy.create_node("lean_client", context=context)
    threads, got, ticks = set(), [], []

    def on_request(request, response):
        threads.add(threading.get_ident())
        response.success = request.data
        response.message = "ok"
        return response

    def on_msg(msg):
        threads.add(threading.get_ident())
        got.append(msg.data)

    server.create_service(SetBool, "lean/srv", on_request)
    server.create_subscription(Int32, "lean/topic", on_msg, 100)
    server.create_timer(0.01, lambda: ticks.append(threading.get_ident()))
    client = client_node.create_client(SetBool, "lean/srv")
    pub = client_node.create_publisher(Int32, "lean/topic", 100)
    for node in (server, client_node):
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert client.wait_for_service(timeout_sec=10)
        wait_until(lambda: pub.get_subscription_count() > 0, 10, what="the subscription")
        for i in range(50):
            response = wait_future(client.call_async(SetBool.Request(data=i % 2 == 0)), 10)
            assert response.success == (i % 2 == 0) and response.message == "ok"
            pub.publish(Int32(data=i))
        wait_until(lambda: len(got) == 50, 10, what="50 messages")
        assert got == list(range(50))
        n = len(ticks)
        time.sleep(0.2)
        assert len(ticks) > n + 5  # the timer keeps running between the other callbacks
        assert threads | set(ticks) == {spinner.ident}
    finally:
        executor.shutdown()
        server.destroy_node()
        client_node.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=5)


# --- `<node> --help`: the node's PARAMETERS table, printed before anything starts ---------------------

NODE_MODULES = ("sim_node", "learner_node", "controller_node", "robot_interface_node")


@pytest.mark.parametrize("module", NODE_MODULES)
def test_node_help_lists_every_parameter_and_starts_nothing(module, capsys):
    import importlib

    from drl_control.ros.spin import _format_default

    mod = importlib.import_module(f"drl_control.ros.{module}")
    # the node's class, or the factory that picks one (sim_node's roles)
    node_class = next(v for v in vars(mod).values() if callable(v) and hasattr(v, "PARAMETERS")
                      and getattr(v, "__module__", None) == mod.__name__)
    assert mod.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {module}") or "usage: " in out.splitlines()[0]
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert set(rows) >= {p.name for p in node_class.PARAMETERS}
    for p in node_class.PARAMETERS:
        assert p.description in rows[p.name] and f"(default: {_format_default(p.default)}" in rows[p.name]
    assert not rclpy.ok()  # rclpy was never initialised: no node, no DDS participant


def test_help_after_ros_args_is_a_ros_argument_not_ours():
    from drl_control.ros.spin import help_requested

    assert help_requested(["--help"]) and help_requested(["-h", "--ros-args", "-p", "a:=1"])
    assert not help_requested(["--ros-args", "-p", "help:=1", "--help"])
    assert not help_requested([])


def test_declared_parameters_carry_the_table_description_and_default():
    from rclpy.parameter import Parameter

    from drl_control.ros.spin import Param, declare_parameters

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id(31))
    try:
        node = rclpy.create_node("param_table", context=context)
        table = (Param("rate", 2.5, "how often"), Param("names", ["a"], "which", read_only=True),
                 Param("goal", Parameter.Type.DOUBLE_ARRAY, "where"))
        assert declare_parameters(node, table) == {"rate": 2.5, "names": ["a"], "goal": None}
        descriptors = node.describe_parameters(["rate", "names"])
        assert [d.description for d in descriptors] == ["how often", "which"]
        assert [d.read_only for d in descriptors] == [False, True]
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_controller_node_help_as_a_process_exits_0_quickly():
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("controller_node")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "artifact" in proc.stdout and "limit_margin" in proc.stdout
    assert "ready" not in proc.stdout + proc.stderr  # the node never started


def test_an_action_client_made_beside_a_spinning_executor_does_not_kill_it():
    """rclpy's ActionClient joins its node's wait set before it has its lock; an executor thread
    woken by that (here: at once, inside add_waitable) found no lock and died."""
    from rclpy.action import ActionClient

    from drl_control.ros.spin import ThreadSafeActionClient
    from drl_control_interfaces.action import Train

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id(7))
    try:
        node = rclpy.create_node("action_client_race", context=context)
        add_waitable, counted = node.add_waitable, []

        def woken_executor_first(waitable):  # the executor's wait-set build, before __init__ returns
            add_waitable(waitable)
            counted.append(waitable.get_num_entities().num_clients)

        node.add_waitable = woken_executor_first
        with pytest.raises(AttributeError, match="_lock"):
            ActionClient(node, Train, "/race")
        client = ThreadSafeActionClient(node, Train, "/race_safe")
        assert counted == [3] and client._lock is not None
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
