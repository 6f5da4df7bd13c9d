"""Publish committed rows in submission order, whatever order their commits finish in.

Recorders overlap commits (two writers on PostgreSQL) and several recorders run at once (one
per running experiment, one for readings outside experiments), so commits finish out of order.
Subscribers must see one connection's readings in the order they were sent (contract §8), so
the router numbers every submission as it routes it (its inbox is processed in arrival order)
and the rows are released to the hub strictly in that numbering.

:class:`ReorderBuffer` is the sans-IO core: every number handed out must be resolved exactly
once (committed rows, or nothing when the job failed), and a number is released only when all
numbers before it are. :class:`Sequencer` adds the Trio side: a resolved job never waits on
anything (``resolve`` is synchronous, so a failing or cancelled recorder can resolve its jobs
from any code path), and one publisher task forwards released rows in order: to the hub (its
latest values) and to the bus, whose deliveries feed every instance's fan-out. Publishing to the
bus never waits on the network, so the bus is never on the storage path.
"""

from __future__ import annotations

import logging
from collections import deque

import trio

from webmacs.actors.messages import Changed, Committed
from webmacs.bus import DEFAULT_SUBJECT, Bus, BusClosed
from webmacs.storage.records import DatapointRecord

Rows = tuple[DatapointRecord, ...]

log = logging.getLogger(__name__)


class ReorderBuffer:
    """Hands out consecutive numbers and releases resolved ones in number order."""

    def __init__(self) -> None:
        self._next_number = 0
        self._next_release = 0
        self._resolved: dict[int, Rows] = {}

    def take(self) -> int:
        number = self._next_number
        self._next_number += 1
        return number

    @property
    def outstanding(self) -> int:
        """Numbers handed out and not yet released."""
        return self._next_number - self._next_release

    def resolve(self, number: int, rows: Rows) -> list[Rows]:
        """Record ``number``'s outcome; return what can now be released, in order (empty row
        tuples of failed jobs are dropped). Resolving twice, or a number never taken, is a bug."""
        if not self._next_release <= number < self._next_number or number in self._resolved:
            raise ValueError(f"number {number} is not outstanding")
        self._resolved[number] = rows
        released: list[Rows] = []
        while self._next_release in self._resolved:
            ready = self._resolved.pop(self._next_release)
            self._next_release += 1
            if ready:
                released.append(ready)
        return released


class Sequencer:
    """The ordering stage between recorders and the hub (its loop is :func:`run_publisher`).

    ``ready`` holds released batches until the publisher hands them to the hub; writers wait in
    :meth:`room` while it is longer than ``max_ready``, so a slow hub still pushes back on
    ingestion as it did when writers sent to it directly.
    """

    def __init__(self, max_ready: int = 64) -> None:
        self.buffer = ReorderBuffer()
        self.ready: deque[Rows] = deque()
        self.max_ready = max_ready
        self.changed = Changed()

    def take(self) -> int:
        return self.buffer.take()

    def resolve(self, number: int | None, rows: Rows = ()) -> None:
        """Synchronous, so every path that ends a job (commit, failure, cancellation) can.
        Jobs without a number (barriers) publish nothing and are not ordered."""
        if number is None:
            return
        released = self.buffer.resolve(number, rows)
        if released:
            self.ready.extend(released)
            self.changed.notify()

    async def room(self) -> None:
        """Wait while the publisher is behind by more than ``max_ready`` batches."""
        while len(self.ready) > self.max_ready:
            await self.changed.wait()

    async def idle(self) -> None:
        """Wait until everything released so far was handed to the hub."""
        while self.ready:
            await self.changed.wait()


MAX_PUBLISH_ROWS = 1_000


async def run_publisher(
    sequencer: Sequencer, hub_send: trio.MemorySendChannel[Committed], bus: Bus | None = None,
    subject: str = DEFAULT_SUBJECT,
) -> None:
    """Forward released rows to the hub and then the bus, oldest first, joining what is ready
    into one message (the hub encodes and offers per message, so fewer, larger messages cost
    less). What is in hand stays in ``ready`` until both took it: a restarted publisher loses
    nothing."""
    while True:
        while not sequencer.ready:
            await sequencer.changed.wait()
        rows: list[DatapointRecord] = []
        taken = 0
        for ready in sequencer.ready:
            if rows and len(rows) + len(ready) > MAX_PUBLISH_ROWS:
                break
            rows.extend(ready)
            taken += 1
        batch = tuple(rows)
        await hub_send.send(Committed(batch))
        if bus is not None:
            try:
                await bus.publish(subject, batch)
            except BusClosed:
                log.debug("bus closed: %d rows not published", len(batch))
        for _ in range(taken):
            sequencer.ready.popleft()
        sequencer.changed.notify()
