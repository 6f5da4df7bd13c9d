"""The experiment recorder: owns the write path for one stream of readings.

The *collector* moves jobs from the inbox into the batch being gathered (up to ``max_rows``
rows; then it waits, and the inbox pushes back on the router). Each *writer* (one on SQLite,
two on PostgreSQL), when free, takes the whole batch gathered so far — at once by default, or
once ``window`` seconds have passed since its oldest job was queued if a flush window is
configured — commits it in one transaction and only then
completes the senders' tickets and releases each job's rows to the :class:`Release` stage (the
sequencer), which publishes them in submission order. While the writers commit, the collector
gathers the next batch, so under load commits run back to back and batches grow by themselves
(group commit), while an idle recorder commits a lone reading without waiting.

Every job taken from the inbox is either committed or failed, and resolved in the release stage
either way: a crash fails the batch in hand (its senders hear "Database unavailable." and may
resend), never leaves a sender or a later job's publication waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol

import trio

from webmacs.actors.batching import Batch, FlushPolicy
from webmacs.actors.messages import Changed, IngestFailed, RecordJob
from webmacs.actors.tally import IngestTally
from webmacs.frame_ids import FrameAck, FrameSpans, StoreOutcome
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.records import DatapointRecord, NewReading, Rejection

log = logging.getLogger(__name__)

StoreFn = Callable[
    [Sequence[tuple[NewReading, datetime, tuple[int, str] | None]], FrameSpans | None],
    Awaitable[list[StoreOutcome]],
]


class Release(Protocol):
    """Where committed jobs go (:class:`~webmacs.actors.sequencing.Sequencer`)."""

    def resolve(self, number: int | None, rows: tuple[DatapointRecord, ...] = ()) -> None: ...

    async def room(self) -> None: ...


RETRY_DELAYS = (0.1, 0.5, 1.0)  # transient database trouble: retry before failing the batch


class RecorderHandle:
    """The recorder's inbox and lifecycle, owned outside the actor so a restart keeps the queue."""

    def __init__(self, key: int | None, capacity: int = 256, label: str | None = None,
                 tally: IngestTally | None = None) -> None:
        self.key = key
        self.label = label  # the experiment's public id (None: readings outside experiments)
        self.send, self.recv = trio.open_memory_channel[RecordJob](capacity)
        self.finished = trio.Event()
        self.batches = 0
        self.rows = 0
        self.tally = tally or IngestTally()  # shared by every recorder of the tree (/metrics)
        self.fault: Callable[[Batch], None] | None = None  # test hook: raise to simulate a crash

    def close(self) -> None:
        """No more jobs: the recorder flushes what it has, then ends."""
        self.send.close()


async def run_recorder(
    handle: RecorderHandle, store: StoreFn, release: Release, policy: FlushPolicy
) -> None:
    gathering = Gathering()
    try:
        async with trio.open_nursery() as nursery:
            # Several writers overlap one batch's commit with the next batch's COPY: the database
            # round trips, not the CPU, bound a single writer. Batches may commit out of order:
            # each sender's acks stay in order (sessions await their tickets in frame order) and
            # the release stage publishes in submission order.
            for _ in range(policy.writers):
                nursery.start_soon(_write_loop, handle, gathering, store, release, policy)
            await _collect_loop(handle.recv, gathering, policy)
    finally:
        handle.tally.failed += gathering.batch.rows
        fail_jobs(gathering.batch, IngestFailed(), release)  # a crash: the batch not yet taken
    handle.finished.set()


class Gathering:
    """The batch being gathered, shared by the collector (which adds jobs) and the writers
    (which take it whole when they are free): group commit without a timer. An idle writer
    takes the first job at once; while every writer is committing, jobs pile up into the next
    batch, so under load batches grow by themselves."""

    def __init__(self) -> None:
        self.batch = Batch()
        self.closed = False
        self.taken = 0  # batches taken so far; a batch's number is its position
        self.in_flight: set[int] = set()
        self.changed = Changed()

    def take(self) -> tuple[int, Batch]:
        batch, self.batch = self.batch, Batch()
        number = self.taken
        self.taken += 1
        self.in_flight.add(number)
        self.changed.notify()
        return number, batch

    def done(self, number: int) -> None:
        self.in_flight.discard(number)
        self.changed.notify()

    def earlier_in_flight(self, number: int) -> bool:
        return any(n < number for n in self.in_flight)


async def _collect_loop(
    inbox: trio.MemoryReceiveChannel[RecordJob], gathering: Gathering, policy: FlushPolicy
) -> None:
    try:
        async for job in inbox:
            while policy.full(gathering.batch):  # wait for a writer to take it
                await gathering.changed.wait()
            gathering.batch.add(job)
            gathering.changed.notify()
    finally:
        gathering.closed = True
        gathering.changed.notify()


async def _next_batch(gathering: Gathering, policy: FlushPolicy) -> tuple[int, Batch] | None:
    """Wait for work, then take the whole batch gathered so far (None: closed and drained).
    With a flush window configured, an idle writer first waits for it to pass since the oldest
    job was queued, unless the batch fills up or holds a barrier."""
    while True:
        while gathering.batch.empty:
            if gathering.closed:
                return None
            await gathering.changed.wait()
        deadline = gathering.batch.jobs[0].enqueued_at + policy.window
        while (not gathering.batch.empty and not policy.full(gathering.batch)
               and not gathering.closed and trio.current_time() < deadline):
            with trio.move_on_at(deadline):
                await gathering.changed.wait()
        if not gathering.batch.empty:  # (another writer may have taken it meanwhile)
            return gathering.take()


async def _write_loop(
    handle: RecorderHandle,
    gathering: Gathering,
    store: StoreFn,
    release: Release,
    policy: FlushPolicy,
) -> None:
    while (taken := await _next_batch(gathering, policy)) is not None:
        number, batch = taken
        try:
            if batch.urgent:
                # A barrier completes only after every batch taken before it committed.
                while gathering.earlier_in_flight(number):
                    await gathering.changed.wait()
            await _write_batch(handle, batch, store, release)
        finally:
            gathering.done(number)
        await release.room()


async def _write_batch(handle: RecorderHandle, batch: Batch, store: StoreFn, release: Release) -> None:
    tally = handle.tally
    started = trio.current_time()
    try:
        if handle.fault is not None:
            handle.fault(batch)
        outcomes = await _store_with_retry(store, batch) if batch.rows else []
    except BaseException as exc:
        rows = batch.rows
        tally.failed += rows
        fail_jobs(batch, IngestFailed(), release)
        if isinstance(exc, DatabaseUnavailable):
            log.warning("recorder %s: batch of %d rows failed: database unavailable",
                        handle.key, rows)
            return
        raise
    seconds = trio.current_time() - started
    committed = rejected = resent = 0
    pos = 0
    for job in batch.jobs:
        part = outcomes[pos:pos + len(job.items)]
        pos += len(job.items)
        if part and isinstance(part[0], FrameAck):  # a resend: its first ack, nothing new
            job.ticket.replay(part[0])
            release.resolve(job.number)
            resent += len(job.items)
            continue
        stored = [o for o in part if isinstance(o, DatapointRecord)]
        refused = [o for o in part if isinstance(o, Rejection)]
        job.ticket.complete(stored, refused)
        release.resolve(job.number, tuple(stored))
        committed += len(stored)
        rejected += len(refused)
    handle.batches += 1
    handle.rows += committed
    tally.batch_done(batch.rows, committed, rejected, resent, seconds)


async def _store_with_retry(store: StoreFn, batch: Batch) -> list[StoreOutcome]:
    rows = batch.items()  # Stamped tuples: (reading, timestamp, experiment)
    frames = batch.frames()
    for delay in (*RETRY_DELAYS, None):
        try:
            return await store(rows, frames)
        except DatabaseUnavailable:
            if delay is None:
                raise
            await trio.sleep(delay)
    raise AssertionError("unreachable")


def fail_jobs(batch: Batch, error: IngestFailed, release: Release) -> None:
    for job in batch.jobs:
        if not job.ticket.done:
            job.ticket.fail(error)
            release.resolve(job.number)
    batch.jobs.clear()
    batch.rows = 0
