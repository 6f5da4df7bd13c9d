"""Sans-IO rules for how long an HTTP/1.1 connection may sit, and how many may be open.

No socket, clock or Hypercorn in here: :mod:`webmacs.http.tcp_guard` feeds these classes the
connection's state and the time, and acts on what they answer.
"""

from __future__ import annotations

import enum
import math

import attrs
import h11
import orjson


class Phase(enum.Enum):
    """Where a connection is, from the reading side."""

    IDLE = "idle"    # between requests (or before the first): nothing of a request received
    HEAD = "head"    # part of a request head received, not all of it
    BODY = "body"    # the head is in, the announced body is still arriving
    OTHER = "other"  # the request is in and the response under way, or a WebSocket: no limit


def phase_of(their_state: object, buffered: bool) -> Phase:
    """The phase of an HTTP/1.1 server connection, from h11's view of the client."""
    if their_state is h11.IDLE:
        return Phase.HEAD if buffered else Phase.IDLE
    if their_state is h11.SEND_BODY:
        return Phase.BODY
    return Phase.OTHER


@attrs.frozen
class ReadTimeouts:
    """Seconds. ``keep_alive``: idle between requests; ``header``: from a request's first byte
    to the end of its head; ``body``: the longest silence while a body is arriving."""

    keep_alive: float
    header: float
    body: float


@attrs.define
class ReadClock:
    """The deadline for a connection's next read, given its phase and what it received.

    The keep-alive and header clocks start when their phase starts and are not reset by
    trickling bytes (a slow head is as bad as a stalled one); the body clock is an inactivity
    clock, reset by every chunk received, so a large upload on a slow link is not cut. Once
    the server is shutting down, a connection without a request in progress may go at once.
    """

    timeouts: ReadTimeouts
    phase: Phase
    since: float
    terminating: bool = False

    @classmethod
    def start(cls, timeouts: ReadTimeouts, now: float) -> ReadClock:
        return cls(timeouts, Phase.IDLE, now)

    def observe(self, phase: Phase, now: float, *, received: bool = False) -> None:
        if phase is not self.phase or (received and phase is Phase.BODY):
            self.phase, self.since = phase, now

    def terminate(self) -> None:
        self.terminating = True

    def deadline(self) -> float:
        if self.phase is Phase.OTHER:
            return math.inf
        if self.terminating and self.phase in (Phase.IDLE, Phase.HEAD):
            return -math.inf
        limit = {Phase.IDLE: self.timeouts.keep_alive, Phase.HEAD: self.timeouts.header,
                 Phase.BODY: self.timeouts.body}[self.phase]
        return self.since + limit


class Refusal(enum.Enum):
    """Why a new connection is turned away; the value is the client's ``detail``."""

    PER_ADDRESS = "Too many connections from this address."
    TOTAL = "Too many connections to this server."


@attrs.define
class ConnectionLimiter:
    """Counts open connections per client address and in total; admits up to the caps."""

    per_address: int
    total: int
    open_total: int = 0
    refused: int = 0
    _by_address: dict[str, int] = attrs.field(factory=dict)
    _reported: int = 0
    _reported_at: float = -math.inf

    def admit(self, address: str) -> Refusal | None:
        """Count the connection in and return None, or return why it is refused (not counted)."""
        held = self._by_address.get(address, 0)
        refusal = (Refusal.TOTAL if self.open_total >= self.total
                   else Refusal.PER_ADDRESS if held >= self.per_address else None)
        if refusal is not None:
            self.refused += 1
            return refusal
        self._by_address[address] = held + 1
        self.open_total += 1
        return None

    def release(self, address: str) -> None:
        """An admitted connection has closed."""
        held = self._by_address.get(address, 0)
        if held <= 0:
            raise ValueError(f"release of a connection never admitted from {address!r}")
        if held == 1:
            del self._by_address[address]
        else:
            self._by_address[address] = held - 1
        self.open_total -= 1

    def open_from(self, address: str) -> int:
        return self._by_address.get(address, 0)

    def refusals_to_report(self, now: float, every: float = 10.0) -> int | None:
        """Refusals not yet reported, at most once per ``every`` seconds: operators hear that the
        caps bite without one log line per refused connection."""
        if self.refused == self._reported or now - self._reported_at < every:
            return None
        count, self._reported, self._reported_at = self.refused - self._reported, self.refused, now
        return count


def error_response(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response with a JSON ``detail`` that closes the connection: what
    the guard writes itself, before or outside Hypercorn's request handling."""
    body = orjson.dumps({"detail": detail})
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n")
    if status == 503:
        head += "retry-after: 5\r\n"
    return head.encode("ascii") + b"\r\n" + body
