"""The experiment recorder: owns the write path for one stream of readings.

Two tasks share one recorder. The *collector* coalesces jobs from the inbox into a batch and
flushes it when it holds ``max_rows`` rows or when ``window`` seconds have passed since its
oldest job was enqueued. The *writer* commits each batch in one transaction and only then
completes the senders' tickets and releases each job's rows to the :class:`Release` stage (the
sequencer), which publishes them in submission order. While the writer commits, the collector
gathers the next batch, so under load commits run back to back (group commit).

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
from webmacs.actors.messages import IngestFailed, RecordJob
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.records import DatapointRecord, NewReading, Rejection

log = logging.getLogger(__name__)

StoreFn = Callable[
    [Sequence[tuple[NewReading, datetime, tuple[int, str] | None]]],
    Awaitable[list[DatapointRecord | Rejection]],
]


class Release(Protocol):
    """Where committed jobs go (:class:`~webmacs.actors.sequencing.Sequencer`)."""

    def resolve(self, number: int | None, rows: tuple[DatapointRecord, ...] = ()) -> None: ...

    async def room(self) -> None: ...


RETRY_DELAYS = (0.1, 0.5, 1.0)  # transient database trouble: retry before failing the batch


class RecorderHandle:
    """The recorder's inbox and lifecycle, owned outside the actor so a restart keeps the queue."""

    def __init__(self, key: int | None, capacity: int = 256, label: str | None = None) -> None:
        self.key = key
        self.label = label  # the experiment's public id (None: readings outside experiments)
        self.send, self.recv = trio.open_memory_channel[RecordJob](capacity)
        self.finished = trio.Event()
        self.batches = 0
        self.rows = 0
        self.fault: Callable[[Batch], None] | None = None  # test hook: raise to simulate a crash

    def close(self) -> None:
        """No more jobs: the recorder flushes what it has, then ends."""
        self.send.close()


async def run_recorder(
    handle: RecorderHandle, store: StoreFn, release: Release, policy: FlushPolicy
) -> None:
    handoff_send, handoff_recv = trio.open_memory_channel[Batch](0)
    async with trio.open_nursery() as nursery:
        # Several writers overlap one batch's commit with the next batch's COPY: the database
        # round trips, not the CPU, bound a single writer. Batches may commit out of order: each
        # sender's acks stay in order (sessions await their tickets in frame order) and the
        # release stage publishes in submission order.
        for _ in range(policy.writers):
            nursery.start_soon(_write_loop, handle, handoff_recv.clone(), store, release)
        handoff_recv.close()
        await _collect_loop(handle.recv, handoff_send, release, policy)
    handle.finished.set()


async def _collect_loop(
    inbox: trio.MemoryReceiveChannel[RecordJob],
    handoff: trio.MemorySendChannel[Batch],
    release: Release,
    policy: FlushPolicy,
) -> None:
    batch = Batch()
    async with handoff:
        try:
            while True:
                if batch.empty:
                    try:
                        batch.add(await inbox.receive())
                    except trio.EndOfChannel:
                        return
                deadline = batch.jobs[0].enqueued_at + policy.window
                closed = False
                while not policy.full(batch):
                    try:
                        batch.add(inbox.receive_nowait())
                        continue
                    except trio.WouldBlock:
                        pass
                    except trio.EndOfChannel:
                        closed = True
                        break
                    if trio.current_time() >= deadline:
                        break
                    with trio.move_on_at(deadline):
                        try:
                            batch.add(await inbox.receive())
                        except trio.EndOfChannel:
                            closed = True
                            break
                await handoff.send(batch)
                batch = Batch()
                if closed:
                    return
        finally:
            fail_jobs(batch, IngestFailed(), release)


async def _write_loop(
    handle: RecorderHandle,
    batches: trio.MemoryReceiveChannel[Batch],
    store: StoreFn,
    release: Release,
) -> None:
    async with batches:
        await _write_batches(handle, batches, store, release)


async def _write_batches(
    handle: RecorderHandle,
    batches: trio.MemoryReceiveChannel[Batch],
    store: StoreFn,
    release: Release,
) -> None:
    async for batch in batches:
        try:
            if handle.fault is not None:
                handle.fault(batch)
            outcomes = await _store_with_retry(store, batch) if batch.rows else []
        except BaseException as exc:
            rows = batch.rows
            fail_jobs(batch, IngestFailed(), release)
            if isinstance(exc, DatabaseUnavailable):
                log.warning("recorder %s: batch of %d rows failed: database unavailable",
                            handle.key, rows)
                continue
            raise
        committed = 0
        pos = 0
        for job in batch.jobs:
            part = outcomes[pos:pos + len(job.items)]
            pos += len(job.items)
            stored = [o for o in part if isinstance(o, DatapointRecord)]
            job.ticket.complete(stored, [o for o in part if isinstance(o, Rejection)])
            release.resolve(job.number, tuple(stored))
            committed += len(stored)
        handle.batches += 1
        handle.rows += committed
        await release.room()


async def _store_with_retry(store: StoreFn, batch: Batch) -> list[DatapointRecord | Rejection]:
    rows = batch.items()  # Stamped tuples: (reading, timestamp, experiment)
    for delay in (*RETRY_DELAYS, None):
        try:
            return await store(rows)
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
