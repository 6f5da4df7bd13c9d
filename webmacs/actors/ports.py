"""The socket as the actors see it: a tiny protocol, so actors run against fakes in tests.

:class:`Activity` is the heartbeat clock: touched by every frame the peer sends (and, on the
real server, by its protocol-level pongs), read by the connection's watchdog.
"""

from __future__ import annotations

from typing import Protocol

import trio


class WebSocketPort(Protocol):
    async def receive(self) -> str | bytes: ...
    async def send(self, data: str | bytes) -> None: ...
    async def close(self, code: int, reason: str = "") -> None: ...


class DirectWrite(Protocol):
    """A socket the hub may write a small frame to without waiting (see ``DirectSender``)."""

    def write_now(self, payload: bytes) -> bytes | None:
        """None: declined, nothing written; ``b""``: all written; else the unwritten rest, which
        must be passed to :meth:`finish` before anything else is sent."""
        ...

    async def finish(self, rest: bytes) -> None: ...


class Activity:
    def __init__(self) -> None:
        self.last = trio.current_time()

    def touch(self) -> None:
        self.last = trio.current_time()

    def silent_for(self) -> float:
        return trio.current_time() - self.last

    async def wait_silent(self, limit: float) -> None:
        """Return once the peer has been silent for ``limit`` seconds. One timer per check, not
        a poll: a touch only moves the deadline later, so sleeping until the earliest moment the
        peer could be silent enough, then looking again, misses nothing (hundreds of connections
        polling every second cost a noticeable share of the event loop)."""
        while (deadline := self.last + limit) > trio.current_time():
            await trio.sleep_until(deadline)


class ConnectionClosed(Exception):
    """The peer went away (raised by ports on receive/send after a disconnect)."""
