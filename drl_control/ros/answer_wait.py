"""AnswerWait: one outstanding request per service client, its answer taken on a wait set of its own.

Why not the executor: a RosVecEnv step round sends one request to each worker and needs exactly
those answers, nothing else from its node. rclpy's executor, on every wait, lists every entity of
the node into a new wait set, then makes a Task per ready entity and completes a Future whose
callbacks run in turn; profiled, that machinery was ~70 % of the client's CPU per step round
(docs/SCALE.md). Here the wait set is made once for the given clients, a request goes out on the
client's handle, and its answer is taken from that handle and matched by sequence number; an
answer to anything else (a request given up on) is dropped.

It uses `_rclpy.WaitSet` and the client handle's `send_request` / `take_response`, the binding calls
rclpy's own executor makes (rclpy is pinned in requirements.txt); `AnswerWait.supported()` says
whether they are there, and RosVecEnv keeps to its executor where they are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

try:
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
except ImportError:  # pragma: no cover - a different rclpy layout: RosVecEnv uses its executor
    _rclpy = None


class Pending:
    """A request sent through an AnswerWait: the part of rclpy's Future that RosVecEnv's wait uses."""

    def __init__(self, wait: AnswerWait, index: int) -> None:
        self._wait, self._index = wait, index

    def done(self) -> bool:
        return self._index in self._wait.answers

    def exception(self) -> None:
        return None

    def result(self) -> Any:
        return self._wait.take(self._index)

    def give_up(self) -> None:
        """No answer is wanted any more; a late one is dropped when it comes."""
        self._wait.expected.pop(self._index, None)
        self._wait.answers.pop(self._index, None)


class AnswerWait:
    """The answers to the requests sent on `clients` (one outstanding request per client)."""

    @staticmethod
    def supported() -> bool:
        return _rclpy is not None and all(hasattr(_rclpy.WaitSet, a) for a in
                                          ("clear_entities", "add_client", "wait", "get_ready_entities"))

    def __init__(self, context: Any, clients: Sequence[Any]) -> None:
        self.context = context
        self.clients = list(clients)
        with context.handle:
            self._wait_set = _rclpy.WaitSet(0, 0, 0, len(self.clients), 0, 0, context.handle)
        self.expected: dict[int, int] = {}  # client index -> sequence number of its outstanding request
        self.answers: dict[int, Any] = {}   # client index -> the answer to that request

    def send(self, index: int, request: Any) -> Pending:
        client = self.clients[index]
        if not isinstance(request, client.srv_type.Request):
            raise TypeError(f"{client.srv_name} takes a {client.srv_type.Request.__name__}, "
                            f"not a {type(request).__name__}")
        with client.handle:
            self.expected[index] = client.handle.send_request(request)
        self.answers.pop(index, None)
        return Pending(self, index)

    def take(self, index: int) -> Any:
        self.expected.pop(index, None)
        return self.answers.pop(index)

    def close(self) -> None:
        """Free the wait set (before its clients and context go)."""
        self._wait_set.destroy_when_not_in_use()
        self.expected.clear()
        self.answers.clear()

    def spin(self, timeout: float) -> None:
        """Take the answers that are there, waiting at most `timeout` s for one to come."""
        waiting = [i for i in self.expected if i not in self.answers]
        if not waiting:
            return
        with ExitStack() as stack:
            stack.enter_context(self.context.handle)
            handles = [self.clients[i].handle for i in waiting]
            for handle in handles:
                stack.enter_context(handle)  # not destroyed while the wait set holds it
            ws = self._wait_set
            ws.clear_entities()
            for handle in handles:
                ws.add_client(handle)
            ws.wait(max(int(timeout * 1e9), 0))
            ready = ws.get_ready_entities("client")
            for i, handle in zip(waiting, handles):
                if handle.pointer not in ready:
                    continue
                header, answer = handle.take_response(self.clients[i].srv_type.Response)
                if header is not None and header.request_id.sequence_number == self.expected.get(i):
                    self.answers[i] = answer
