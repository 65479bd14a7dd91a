"""A TCP proxy that can freeze: the network between the server and its upstream goes quiet.

Frozen, it holds whatever either side sends instead of passing it on, and closes nothing: a
partition, as a stalled NAT or a dead link looks from each end. Thawed, it passes on what it
held, in order.
"""

from __future__ import annotations

from functools import partial

import trio


class FreezableProxy:
    """Forwards every connection made to it to `127.0.0.1:target_port`."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._flowing = trio.Event()
        self._flowing.set()

    def freeze(self) -> None:
        if self._flowing.is_set():
            self._flowing = trio.Event()

    def thaw(self) -> None:
        self._flowing.set()

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Accept connections until cancelled; `started()` gets the port it listens on."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port: int = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(trio.serve_listeners, self._forward, listeners))
            task_status.started(port)

    async def _forward(self, client: trio.SocketStream) -> None:
        target = await trio.open_tcp_stream("127.0.0.1", self._target_port)
        async with client, target, trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, target, nursery.cancel_scope)
            nursery.start_soon(self._pump, target, client, nursery.cancel_scope)

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, both: trio.CancelScope
    ) -> None:
        try:
            while data := await source.receive_some(65536):
                await self._flowing.wait()
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        both.cancel()  # one side is gone: so is the connection
