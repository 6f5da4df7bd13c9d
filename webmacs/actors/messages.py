"""Messages between actors: small, frozen, and the one mutable thing, :class:`Ticket`.

A :class:`Ticket` is how an ingestion's outcome travels back to whoever is waiting for it (a
REST route or a controller session's acker): the recorder completes it after its commit, or
fails it. (It can count several parts; the router sends each submission to one recorder.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

import attrs
import trio

from webmacs.frame_ids import FrameAck, FrameTag
from webmacs.storage.records import DatapointRecord, IngestResult, NewReading, Rejection


class Stamped(NamedTuple):
    """A reading with its time decided and its experiment stamped (internal id, public id).
    A NamedTuple: one is built per reading on the event loop."""

    reading: NewReading
    timestamp: datetime
    experiment: tuple[int, str] | None


class IngestFailed(Exception):
    """The readings were not committed (database unavailable, recorder crashed)."""

    def __init__(self, detail: str = "Database unavailable.") -> None:
        super().__init__(detail)
        self.detail = detail


class ShuttingDown(Exception):
    """The actor tree is closing: new work is refused (rendered as 503)."""


class ActorFailed(Exception):
    """The actor handling a request crashed before answering it (rendered as 503: the
    supervisor restarts it, so the same request may succeed when tried again)."""

    detail = "Service temporarily unavailable; try again."


class Ticket:
    """The pending outcome of one submission: ``parts`` completions (or one failure) end it."""

    def __init__(
        self, parts: int | None = None, rejected: list[Rejection] | None = None,
        on_commit: Callable[[list[DatapointRecord]], None] | None = None,
    ) -> None:
        """``on_commit`` is told the stored rows as the recorder completes the ticket, before
        they are released to the hub (the commander notes which controller wrote them)."""
        self._on_commit = on_commit
        self._parts = 0
        self._stored: list[DatapointRecord] = []
        self._rejected: list[Rejection] = list(rejected or [])
        self._error: IngestFailed | None = None
        self._replayed: FrameAck | None = None
        self._done = trio.Event()
        if parts is not None:
            self.expect(parts)

    def expect(self, parts: int) -> None:
        """Set how many recorder batches will complete this ticket (0: done already)."""
        self._parts = parts
        if parts == 0:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def add_rejection(self, rejection: Rejection) -> None:
        self._rejected.append(rejection)

    def complete(self, stored: list[DatapointRecord], rejected: list[Rejection]) -> None:
        if self._on_commit is not None and stored:
            self._on_commit(stored)
        self._stored.extend(stored)
        self._rejected.extend(rejected)
        self._finish_part()

    def replay(self, first: FrameAck) -> None:
        """A resent frame committed before: its outcome is the first ack, whole (nothing new)."""
        self._replayed = first
        self._finish_part()

    def fail(self, error: IngestFailed) -> None:
        self._error = self._error or error
        self._finish_part()

    def _finish_part(self) -> None:
        self._parts -= 1
        if self._parts <= 0:
            self._done.set()

    async def wait(self) -> IngestResult:
        """The committed result; raises :class:`IngestFailed` if any part failed."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        if self._replayed is not None:
            return IngestResult([], list(self._replayed.rejected), self._replayed.accepted)
        return IngestResult(self._stored, sorted(self._rejected, key=lambda r: r.index))


@attrs.frozen
class RecordJob:
    """Work for a recorder: stamped readings of one submission, and the ticket to complete.

    ``enqueued_at`` (Trio clock) starts the flush window, so jobs that queued while the
    previous batch was being written are flushed without waiting again. ``frame``: the
    telemetry frame id the store checks for resends (§8), if the sender gave one.
    """

    items: tuple[Stamped, ...]
    ticket: Ticket
    enqueued_at: float
    number: int | None = None  # submission order, for publishing in order (None: a barrier)
    frame: FrameTag | None = None


class Future:
    """A one-shot reply slot for request/response messages between a route and an actor."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: object = None
        self._error: BaseException | None = None

    def set(self, value: object) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def get(self) -> object:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value


class Changed:
    """A broadcast wake-up for state shared by several tasks (which re-check it on waking):
    :meth:`notify` wakes every waiter, and later waiters wait for the next notify."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


def answer_crash(msg: object, exc: BaseException) -> None:
    """An actor failed while handling ``msg``: whoever waits on its reply hears so now, and a
    restarted actor answers only later messages. Cancellation means the tree is closing."""
    reply = getattr(msg, "reply", None)
    if isinstance(reply, Future):
        reply.fail(ActorFailed() if isinstance(exc, Exception) else ShuttingDown())


@attrs.frozen
class Committed:
    """Recorder -> hub: rows that are durable, in commit order."""

    datapoints: tuple[DatapointRecord, ...]
