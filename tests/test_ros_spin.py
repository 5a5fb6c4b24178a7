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
