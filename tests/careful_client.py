"""A careful telemetry controller, for fault tests against a real ``webmacs serve``.

It does what a controller must do to lose nothing (``docs/operations.md``): it numbers its frames
(``seq``), names itself (``controller_id``), keeps at most ``window`` frames unacknowledged, and
after any failure (a dropped connection, a refused handshake, an error frame) sends every
unacknowledged frame again with the *same* ``seq`` once it can. Every reading carries a value no
other reading has, so each stored row can be traced back to the frame that carried it.

:class:`Ledger` is the whole bookkeeping as a sans-IO core (time is passed in);
:class:`CarefulController` only moves frames between it and a socket; :func:`audit` compares
what the ledger knows with the values read straight from the database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import attrs
import orjson
import trio
import trio_websocket

VALUE_STRIDE = 1000
"""Reading ``i`` of frame ``seq`` has the value ``seq * VALUE_STRIDE + i``: unique and exact."""


def frame_values(seq: int, per_frame: int) -> tuple[float, ...]:
    return tuple(float(seq * VALUE_STRIDE + i) for i in range(per_frame))


@attrs.define
class Backoff:
    """Reconnect delays: doubling from ``first`` up to ``cap``; reset once a connection works."""

    first: float = 0.05
    cap: float = 1.0
    _next: float = attrs.field(init=False, default=0.0)

    def delay(self) -> float:
        current = self._next
        self._next = min(self.cap, max(self.first, current * 2))
        return current

    def reset(self) -> None:
        self._next = 0.0


@attrs.define
class Ledger:
    """Which frames exist, which are unacknowledged (in flight or due again), which were acked.

    ``take_due(now)`` hands out what to send now: first the unacknowledged frames that are due
    again (oldest ``seq`` first), then new frames while fewer than ``window`` are unacknowledged
    (and, with ``pace``, no sooner than ``pace`` seconds apart).
    """

    frames: int
    per_frame: int
    window: int = 8
    pace: float = 0.0
    retry_after: float = 0.2
    # seq -> None while in flight on the current connection, else the time it is due again.
    unacked: dict[int, float | None] = attrs.field(factory=dict)
    acked: dict[int, int] = attrs.field(factory=dict)  # seq -> accepted count of its ack
    next_seq: int = 0
    next_new_at: float = 0.0
    sends: int = 0
    resends: int = 0
    error_frames: int = 0
    stray_acks: int = 0
    errors: list[str] = attrs.field(factory=list)
    # Deaf: replies are dropped unread, as if lost with a dying server (a fault to inject).
    deaf: bool = False
    dropped_replies: int = 0

    def __attrs_post_init__(self) -> None:
        if self.per_frame > VALUE_STRIDE:
            raise ValueError(f"at most {VALUE_STRIDE} readings per frame")

    @property
    def done(self) -> bool:
        return len(self.acked) == self.frames

    def take_due(self, now: float) -> list[int]:
        again = sorted(seq for seq, due in self.unacked.items() if due is not None and due <= now)
        for seq in again:
            self.unacked[seq] = None
        self.resends += len(again)
        fresh: list[int] = []
        while (self.next_seq < self.frames and len(self.unacked) < self.window
               and now >= self.next_new_at):
            fresh.append(self.next_seq)
            self.unacked[self.next_seq] = None
            self.next_seq += 1
            if self.pace:
                self.next_new_at = now + self.pace
        self.sends += len(again) + len(fresh)
        return again + fresh

    def next_wakeup(self) -> float | None:
        """When :meth:`take_due` may next have something (``None``: only after a reply)."""
        times = [due for due in self.unacked.values() if due is not None]
        if self.next_seq < self.frames and len(self.unacked) < self.window:
            times.append(self.next_new_at)
        return min(times, default=None)

    def on_reply(self, raw: str | bytes, now: float) -> None:
        if self.deaf:
            self.dropped_replies += 1
            return
        reply = orjson.loads(raw)
        seq = reply.get("seq")
        if reply.get("type") == "ack" and seq in self.unacked:
            del self.unacked[seq]
            self.acked[seq] = int(reply["accepted"])
        elif reply.get("type") == "ack":
            self.stray_acks += 1  # e.g. a second ack for a frame sent twice on one connection
        elif reply.get("type") == "error" and seq in self.unacked:
            # Not stored (database unavailable, shutting down): send it again a little later.
            self.error_frames += 1
            self.errors.append(str(reply.get("detail")))
            self.unacked[seq] = now + self.retry_after
        else:
            raise AssertionError(f"unexpected reply from the server: {reply!r}")

    def on_disconnect(self, now: float) -> None:
        """Every frame still in flight is due again on the next connection."""
        for seq, due in self.unacked.items():
            if due is None:
                self.unacked[seq] = now

    def frame_text(self, seq: int, event_public_id: str) -> str:
        items = [{"value": v, "event_public_id": event_public_id}
                 for v in frame_values(seq, self.per_frame)]
        return orjson.dumps({"seq": seq, "datapoints": items}).decode()

    def sent_values(self) -> set[float]:
        """Values of every frame handed out at least once (seqs are handed out in order)."""
        return {v for seq in range(self.next_seq) for v in frame_values(seq, self.per_frame)}

    def acked_values(self) -> set[float]:
        return {v for seq in self.acked for v in frame_values(seq, self.per_frame)}


@attrs.frozen
class Audit:
    """What the database holds, judged against what the controller sent and was told."""

    frames_sent: int
    frames_acked: int
    resends: int
    readings_sent: int
    readings_acked: int
    rows_stored: int
    duplicates: int  # rows beyond the first of each value
    missing_acked: int  # acked readings with no row
    never_sent: int  # rows whose value the controller never sent

    def line(self, label: str) -> str:
        return (f"{label}: frames sent={self.frames_sent} acked={self.frames_acked} "
                f"resent={self.resends}; readings sent={self.readings_sent} "
                f"acked={self.readings_acked} stored={self.rows_stored} "
                f"duplicates={self.duplicates} missing_acked={self.missing_acked} "
                f"never_sent={self.never_sent}")


def audit(ledger: Ledger, stored: Iterable[float]) -> Audit:
    counts = Counter(stored)
    sent, acked = ledger.sent_values(), ledger.acked_values()
    return Audit(
        frames_sent=ledger.next_seq,
        frames_acked=len(ledger.acked),
        resends=ledger.resends,
        readings_sent=len(sent),
        readings_acked=len(acked),
        rows_stored=sum(counts.values()),
        duplicates=sum(n - 1 for n in counts.values()),
        missing_acked=len(acked - counts.keys()),
        never_sent=len(counts.keys() - sent),
    )


ConnectionFailures = (trio_websocket.ConnectionClosed, trio_websocket.HandshakeError, OSError,
                      trio.BrokenResourceError)


class CarefulController:
    """The I/O shell around a :class:`Ledger`: connect, send what is due, read replies, and on
    any connection failure back off and reconnect until every frame is acknowledged."""

    def __init__(self, url: Callable[[], str], event_public_id: str, ledger: Ledger) -> None:
        self.url = url
        self.event_public_id = event_public_id
        self.ledger = ledger
        self.backoff = Backoff()
        self.connects = 0
        self.failures: list[str] = []
        self._changed = trio.Event()

    async def run(self) -> None:
        while not self.ledger.done:
            try:
                async with trio_websocket.open_websocket_url(
                    self.url(), connect_timeout=5, disconnect_timeout=2
                ) as ws:
                    self.connects += 1
                    await self._session(ws)
            except* ConnectionFailures as group:
                self.failures.append(repr(group.exceptions[0]))
            self.ledger.on_disconnect(trio.current_time())
            if not self.ledger.done:
                await trio.sleep(self.backoff.delay())

    async def wait_until(self, condition: Callable[[Ledger], bool]) -> None:
        """Until ``condition(ledger)`` holds (checked after every reply)."""
        while not condition(self.ledger):
            await self._wait_change(None)

    async def _session(self, ws: trio_websocket.WebSocketConnection) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive, ws, nursery.cancel_scope)
            try:
                while True:
                    for seq in self.ledger.take_due(trio.current_time()):
                        await ws.send_message(self.ledger.frame_text(seq, self.event_public_id))
                    await self._wait_change(self.ledger.next_wakeup())
            except trio_websocket.ConnectionClosed:
                # The peer closed: acks it sent before closing are still queued. The receiver
                # reads them all, then fails with ConnectionClosed itself and ends the session.
                await trio.sleep_forever()

    async def _receive(self, ws: trio_websocket.WebSocketConnection, scope: trio.CancelScope) -> None:
        while not self.ledger.done:
            self.ledger.on_reply(await ws.get_message(), trio.current_time())
            self.backoff.reset()
            self._notify()
        scope.cancel()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_change(self, deadline: float | None) -> None:
        changed = self._changed
        with trio.move_on_at(deadline if deadline is not None else float("inf")):
            await changed.wait()
