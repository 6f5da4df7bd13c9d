"""Sans-IO bookkeeping of one controller's frames: seq numbers, the window, acks and resends.

This is what makes a controller exactly-once (docs/protocol.md): every frame keeps its ``seq``
and its exact text until its ack arrives; at most ``window`` frames are on the wire; after a
reconnect, or a transient error frame, the unacked frames go out again unchanged, oldest first,
before any newer frame. The server answers a resent ``(controller_id, seq)`` it already stored
with the first ack, so each reading is counted once here and stored once there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from webmacs.simulator.protocol import TRANSIENT_ERRORS, Ack, ErrorReply, telemetry


@attrs.frozen
class Frame:
    seq: int
    text: str  # sent byte for byte the same every time
    readings: int


@attrs.define
class Tally:
    """Counts in readings (``frames_*`` in frames) for the summary line."""

    sent: int = 0  # readings sent for the first time
    acked: int = 0  # readings the server stored (``accepted`` of first acks)
    resent: int = 0  # readings sent again (reconnect, transient error)
    rejected: int = 0  # readings the server refused by name, or in a frame it refused
    dropped: int = 0  # readings never sent because the backlog was full
    frames_acked: int = 0
    stray_acks: int = 0  # acks for frames not awaited (a second ack of a frame sent twice)
    errors: int = 0  # error frames
    commands: int = 0  # command frames received (and acked)
    unacked: int = 0  # readings still without an ack when the run ended

    def line(self) -> str:
        text = f"sent {self.sent}, acked {self.acked}, resent {self.resent}, rejected {self.rejected}"
        extra = [f"{name} {getattr(self, name)}" for name in ("dropped", "unacked", "commands")
                 if getattr(self, name)]
        return ", ".join([text, *extra])

    def add(self, other: Tally) -> None:
        for field in attrs.fields(Tally):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


@attrs.define
class FrameBook:
    """The frames of one controller from creation to their ack.

    ``first_seq`` should never repeat for a ``controller_id`` (the server would take new frames
    for resends of old ones): the simulator starts from the clock in microseconds."""

    first_seq: int = 0
    window: int = 8
    max_backlog: int = 100_000  # readings held unacked (while disconnected) before dropping new ones
    retry_after: float = 0.5  # seconds before a frame refused with a transient error goes again
    tally: Tally = attrs.field(factory=Tally)
    _next_seq: int = attrs.field(init=False)
    _unacked: dict[int, Frame] = attrs.field(init=False, factory=dict)  # in seq order
    _in_flight: set[int] = attrs.field(init=False, factory=set)
    _sent_before: set[int] = attrs.field(init=False, factory=set)
    _held: dict[int, float] = attrs.field(init=False, factory=dict)  # seq -> not before
    _backlog: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._next_seq = self.first_seq

    def add(self, datapoints: list[dict[str, Any]]) -> Frame | None:
        """A new frame for these readings, or None (counted as dropped) when the backlog is full."""
        if not datapoints:
            return None
        if self._backlog + len(datapoints) > self.max_backlog:
            self.tally.dropped += len(datapoints)
            return None
        frame = Frame(self._next_seq, telemetry(self._next_seq, datapoints), len(datapoints))
        self._next_seq += 1
        self._unacked[frame.seq] = frame
        self._backlog += frame.readings
        return frame

    def take(self, now: float) -> list[Frame]:
        """What to send now, in seq order: unacked frames not on the wire (resends first, as they
        are older), while fewer than ``window`` are on the wire."""
        out: list[Frame] = []
        for frame in self._waiting(now):
            if len(self._in_flight) >= self.window:
                break
            self._in_flight.add(frame.seq)
            self._held.pop(frame.seq, None)
            if frame.seq in self._sent_before:
                self.tally.resent += frame.readings
            else:
                self._sent_before.add(frame.seq)
                self.tally.sent += frame.readings
            out.append(frame)
        return out

    def _waiting(self, now: float) -> Iterator[Frame]:
        for seq, frame in self._unacked.items():
            if seq not in self._in_flight and self._held.get(seq, now) <= now:
                yield frame

    def on_ack(self, ack: Ack) -> None:
        frame = self._unacked.get(ack.seq)
        if frame is None:
            self.tally.stray_acks += 1
            return
        self._settle(frame)
        self.tally.frames_acked += 1
        self.tally.acked += ack.accepted
        self.tally.rejected += len(ack.rejected)

    def on_error(self, reply: ErrorReply, now: float) -> bool:
        """An error frame: a transient one puts its frame back after ``retry_after``; any other
        (never expected from our own frames) settles it as rejected. True if it named our frame."""
        self.tally.errors += 1
        frame = None if reply.seq is None else self._unacked.get(reply.seq)
        if frame is None:
            return False
        if reply.detail in TRANSIENT_ERRORS:
            self._in_flight.discard(frame.seq)
            self._held[frame.seq] = now + self.retry_after
        else:
            self._settle(frame)
            self.tally.rejected += frame.readings
        return True

    def on_disconnect(self) -> None:
        """Frames on the wire may or may not be stored: all go again on the next connection."""
        self._in_flight.clear()

    def _settle(self, frame: Frame) -> None:
        del self._unacked[frame.seq]
        self._in_flight.discard(frame.seq)
        self._sent_before.discard(frame.seq)
        self._held.pop(frame.seq, None)
        self._backlog -= frame.readings

    @property
    def unacked_frames(self) -> int:
        return len(self._unacked)

    @property
    def unacked_readings(self) -> int:
        return self._backlog

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def next_retry(self) -> float | None:
        """When a held frame is due again (None: none held)."""
        return min(self._held.values(), default=None)
