"""Hypercorn's trio TCP server with read timeouts and connection caps (Hypercorn pinned <0.19).

Hypercorn 0.18's trio worker enforces no header or body read timeout (``read_timeout`` would cut
long downloads and quiet WebSockets too), and its keep-alive timer never starts after a request
served by Quart-Trio: the timer is restarted from the app's task, which Quart-Trio cancels as
soon as the response is sent. Idle connections therefore stayed open for ever and held a
graceful shutdown for its whole grace period. :func:`install` swaps in
:class:`GuardedTCPServer`, which keeps one read deadline per connection in its own read loop
(the rules are in :mod:`webmacs.http.connection_limits`) and counts connections at accept.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import h11
import trio
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.utils import parse_socket_addr

from webmacs.http import ws_activity
from webmacs.http.connection_limits import (
    ConnectionLimiter,
    Phase,
    ReadClock,
    ReadTimeouts,
    Refusal,
    error_response,
    phase_of,
)

log = logging.getLogger("webmacs.http")

# A refused client gets this long to finish sending its request head (read so that closing
# does not reset the connection before the 503 arrives) and to read the answer.
REFUSAL_GRACE_S = 2.0
HEAD_TIMEOUT_RESPONSE = error_response(408, "Request Timeout", "Request head not received in time.")


class GuardedConfig(ws_activity.TcpTimeoutConfig):
    """Hypercorn config carrying the guard's settings; None turns that guard off."""

    read_timeouts: ReadTimeouts | None = None
    connection_limiter: ConnectionLimiter | None = None


class GuardedTCPServer(TCPServer):
    """One accepted connection: admitted or refused, then read under :class:`ReadClock`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # An owner-less lock (Hypercorn only uses ``async with``): the hub may start a stream
        # frame and leave its last bytes to the subscriber's writer task, which then releases
        # the lock it did not acquire (see ws_activity.DirectSender.write_now).
        self.send_lock = trio.Semaphore(1, max_value=1)  # type: ignore[assignment]
        timeouts = getattr(self.config, "read_timeouts", None)
        self._clock = None if timeouts is None else ReadClock.start(timeouts, trio.current_time())
        self._read_scope: trio.CancelScope | None = None

    async def run(self) -> None:
        limiter: ConnectionLimiter | None = getattr(self.config, "connection_limiter", None)
        address = self._peer_host()
        if limiter is None or address is None:
            await super().run()
            return
        refusal = limiter.admit(address)
        if refusal is not None:
            count = limiter.refusals_to_report(trio.current_time())
            if count is not None:
                log.warning("refused %d connection(s) with 503 (%s); open: %d, caps: %d per "
                            "address, %d in all", count, refusal.value, limiter.open_total,
                            limiter.per_address, limiter.total)
            await self._refuse(refusal)
            return
        try:
            await super().run()
        finally:
            limiter.release(address)

    # -- refusal ---------------------------------------------------------------------------

    def _peer_host(self) -> str | None:
        stream: Any = self.stream
        sock: Any = getattr(getattr(stream, "transport_stream", stream), "socket", None)
        try:
            peer = parse_socket_addr(sock.family, sock.getpeername())
        except (AttributeError, OSError):
            return None
        return None if peer is None else peer[0]

    async def _refuse(self, refusal: Refusal) -> None:
        """503 with a JSON detail, before Hypercorn sees the connection: a WebSocket upgrade is
        refused the same way, before the handshake."""
        with trio.move_on_after(REFUSAL_GRACE_S):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                head = b""
                while b"\r\n\r\n" not in head and len(head) <= self.config.h11_max_incomplete_size:
                    chunk = await self.stream.receive_some(MAX_RECV)
                    if not chunk:
                        break
                    head += chunk
                await self.stream.send_all(error_response(503, "Service Unavailable",
                                                          refusal.value))
                await self._close_after_reply()
        with trio.CancelScope(shield=True):
            await self.stream.aclose()

    async def _close_after_reply(self) -> None:
        """Half-close, then read until the peer closes, so our answer is not reset away."""
        with contextlib.suppress(AttributeError, trio.BusyResourceError):
            await self.stream.send_eof()  # type: ignore[attr-defined]  # plain TCP only
        while await self.stream.receive_some(MAX_RECV):
            pass

    # -- timeouts --------------------------------------------------------------------------

    async def _idle_timeout(self) -> None:
        if self._clock is None:
            await super()._idle_timeout()
        # Otherwise the read loop below keeps the keep-alive clock.

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated) and self._clock is not None:
            # May come from an app task about to be cancelled: only synchronous work here.
            self._reschedule()
            return
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        if self._clock is None:
            await super()._read_data()
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._close_idle_on_shutdown)
            await self._read_until_deadline(self._clock)
            nursery.cancel_scope.cancel()
        await self.protocol.handle(Closed())

    async def _read_until_deadline(self, clock: ReadClock) -> None:
        while True:
            with trio.CancelScope(deadline=clock.deadline()) as scope:
                self._read_scope = scope
                try:
                    data = await self.stream.receive_some(MAX_RECV)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    return
                finally:
                    self._read_scope = None
            if scope.cancelled_caught:
                if clock.phase is Phase.HEAD and not clock.terminating:
                    await super().protocol_send(RawData(HEAD_TIMEOUT_RESPONSE))
                return
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                return
            self._reschedule(received=True)

    def _reschedule(self, *, received: bool = False) -> None:
        """Bring the clock up to the connection's phase and move a read in progress to it."""
        if self._clock is None:
            return
        self._clock.observe(self._phase(), trio.current_time(), received=received)
        if self._read_scope is not None:
            self._read_scope.deadline = self._clock.deadline()

    def _phase(self) -> Phase:
        protocol = getattr(self, "protocol", None)
        h11_protocol = getattr(protocol, "protocol", None)
        if not isinstance(h11_protocol, H11Protocol):
            # HTTP/2 (h2c): only the keep-alive limit, on Hypercorn's word that no stream is open.
            return Phase.IDLE if getattr(h11_protocol, "idle", False) else Phase.OTHER
        connection: Any = h11_protocol.connection
        their_state = getattr(connection, "their_state", None)  # None: a WebSocket
        if their_state is None:
            return Phase.OTHER
        # Only a head in progress needs the buffer (a copy): look only between requests.
        return phase_of(their_state, their_state is h11.IDLE and bool(connection.trailing_data[0]))

    async def _close_idle_on_shutdown(self) -> None:
        await self.context.terminated.wait()
        if self._clock is not None:
            self._clock.terminate()
            self._reschedule()


def install() -> None:
    """Make Hypercorn's trio worker accept with :class:`GuardedTCPServer` (idempotent; servers
    whose config is not a :class:`GuardedConfig` behave exactly as before)."""
    setattr(hypercorn_run, "TCPServer", GuardedTCPServer)  # noqa: B010 - not re-exported

