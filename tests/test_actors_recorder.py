"""The recorder actor against a fake store, in virtual time (no threads, no database)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import attrs
import pytest
import trio
import trio.testing

from webmacs.actors.batching import Batch, FlushPolicy
from webmacs.actors.messages import Committed, IngestFailed, RecordJob, Stamped, Ticket
from webmacs.actors.recorder import RETRY_DELAYS, RecorderHandle, run_recorder
from webmacs.actors.sequencing import Sequencer, run_publisher
from webmacs.actors.supervisor import RestartPolicy, Supervisor
from webmacs.frame_ids import StoreOutcome
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.records import DatapointRecord, NewReading, Rejection

TS = datetime(2026, 2, 10, 20, 44, 8, tzinfo=UTC)
Row = tuple[NewReading, datetime, tuple[int, str] | None]


Action = float | BaseException | tuple[float, BaseException] | None


class FakeStore:
    """Records each call with its virtual time; ``script`` scripts per-call behaviour.

    A script entry is a duration to sleep (float), an exception instance to raise at once, a
    (duration, exception) pair to raise after a while, or None. Readings whose event id is in
    ``unknown`` are rejected like unknown events.
    """

    def __init__(self, script: Sequence[Action] = (), unknown: frozenset[str] = frozenset()) -> None:
        self.script = list(script)
        self.unknown = unknown
        self.calls: list[tuple[float, list[Row]]] = []
        self.returned: list[float] = []
        self._ids = itertools.count(1)

    async def __call__(self, rows: Sequence[Row], frames: object = None) -> list[StoreOutcome]:
        self.calls.append((trio.current_time(), list(rows)))
        action = self.script.pop(0) if self.script else None
        if isinstance(action, tuple):
            await trio.sleep(action[0])
            raise action[1]
        if isinstance(action, BaseException):
            raise action
        await trio.sleep(action or 0)
        out: list[DatapointRecord | Rejection] = []
        for reading, ts, exp in rows:
            if reading.event_public_id in self.unknown:
                out.append(Rejection(reading.index, reading.event_public_id, "Event not found."))
            else:
                out.append(DatapointRecord(
                    f"dp-{next(self._ids)}", reading.value, ts, reading.event_public_id,
                    None if exp is None else exp[1],
                ))
        self.returned.append(trio.current_time())
        return out

    def call_times(self, t0: float) -> list[float]:
        return [t - t0 for t, _ in self.calls]

    def call_values(self) -> list[list[float]]:
        return [[r.value for r, _, _ in rows] for _, rows in self.calls]


class Publisher:
    """The release stage's side: what each committed batch released (the rows its jobs
    resolved with, gathered until the writer's ``room()`` call that ends the batch), when, and
    the tickets' state at that moment."""

    def __init__(self, tickets: Callable[[], list[Ticket]] = list) -> None:
        self.published: list[tuple[float, Committed]] = []
        self.tickets = tickets
        self.tickets_done_at_publish: list[list[bool]] = []
        self.resolved: list[int | None] = []
        self._rows: list[DatapointRecord] = []

    def resolve(self, number: int | None, rows: tuple[DatapointRecord, ...] = ()) -> None:
        self.resolved.append(number)
        self._rows.extend(rows)

    async def room(self) -> None:
        if self._rows:
            self.published.append((trio.current_time(), Committed(tuple(self._rows))))
            self.tickets_done_at_publish.append([t.done for t in self.tickets()])
            self._rows = []
        await trio.sleep(0)

    def values(self) -> list[list[float]]:
        return [[d.value for d in c.datapoints] for _, c in self.published]


_values = itertools.count(1)


def job(*events: str, enqueued_at: float | None = None, ticket: Ticket | None = None) -> RecordJob:
    """A job of one reading per event id (values count up across the test run)."""
    items = tuple(
        Stamped(NewReading(i, float(next(_values)), ev, None), TS, None) for i, ev in enumerate(events)
    )
    return RecordJob(items, ticket or Ticket(1), trio.current_time() if enqueued_at is None else enqueued_at)


@asynccontextmanager
async def recorder(
    store: FakeStore, policy: FlushPolicy, publish: Publisher | None = None, capacity: int = 256
) -> AsyncIterator[RecorderHandle]:
    handle = RecorderHandle(None, capacity)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_recorder, handle, store, publish or Publisher(), policy)
        yield handle
        handle.close()


async def test_single_job_flushed_after_window_not_before(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore()
    async with recorder(store, FlushPolicy(window=1.0)) as handle:
        t0 = trio.current_time()
        j = job("a")
        await handle.send.send(j)
        await trio.sleep(0.999)
        assert store.calls == []
        assert not j.ticket.done
        res = await j.ticket.wait()
        assert trio.current_time() - t0 == pytest.approx(1.0)
        assert [d.value for d in res.stored] == [j.items[0].reading.value]
    assert store.call_times(t0) == pytest.approx([1.0])
    assert handle.finished.is_set()


async def test_jobs_within_window_coalesced(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore()
    publish = Publisher()
    async with recorder(store, FlushPolicy(window=1.0), publish) as handle:
        t0 = trio.current_time()
        jobs = []
        for delay in (0.0, 0.3, 0.3, 0.3):  # at 0, 0.3, 0.6, 0.9
            await trio.sleep(delay)
            jobs.append(job("a", "b"))
            await handle.send.send(jobs[-1])
        await trio.sleep(0.3)  # 1.2: after the flush
        late = job("c")
        await handle.send.send(late)
        for j in [*jobs, late]:
            await j.ticket.wait()
    assert store.call_times(t0) == pytest.approx([1.0, 2.2])
    assert [len(rows) for _, rows in store.calls] == [8, 1]
    assert store.call_values()[0] == [r.reading.value for j in jobs for r in j.items]
    assert handle.batches == 2
    assert handle.rows == 9
    assert publish.values() == store.call_values()


async def test_max_rows_flushes_immediately(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore()
    async with recorder(store, FlushPolicy(max_rows=5, window=10.0)) as handle:
        t0 = trio.current_time()
        first = job("a", "b", "c")
        await handle.send.send(first)
        await trio.sleep(1.0)
        assert store.calls == []
        second = job("d", "e")
        await handle.send.send(second)  # 5 rows: full
        await second.ticket.wait()
        assert trio.current_time() - t0 == pytest.approx(1.0)
        big = job(*"abcdefg")  # one job over the limit is flushed alone, at once
        await handle.send.send(big)
        await big.ticket.wait()
        assert trio.current_time() - t0 == pytest.approx(1.0)
    assert store.call_times(t0) == pytest.approx([1.0, 1.0])
    assert [len(rows) for _, rows in store.calls] == [5, 7]


async def test_jobs_queued_during_slow_store_written_together_right_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore(script=[5.0])  # the first write takes 5 s, later ones are instant
    async with recorder(store, FlushPolicy(window=1.0)) as handle:
        t0 = trio.current_time()
        a = job("a")
        await handle.send.send(a)
        await trio.sleep(2.0)
        b = job("b")  # at 2: gathered while the writer is busy
        await handle.send.send(b)
        await trio.sleep(1.5)
        c = job("c")  # at 3.5: joins the same batch
        await handle.send.send(c)
        for j in (a, b, c):
            await j.ticket.wait()
            assert trio.current_time() - t0 == pytest.approx(6.0)
    # Their windows ended while the writer was busy, so the batch goes the moment it is free.
    assert store.call_times(t0) == pytest.approx([1.0, 6.0])
    assert store.call_values() == [[a.items[0].reading.value],
                                   [b.items[0].reading.value, c.items[0].reading.value]]


async def test_idle_writer_commits_at_once_and_busy_writers_gather(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The default: no flush window. A lone job is written the moment it arrives; what comes
    while both writers commit forms one batch for the first writer free."""
    store = FakeStore(script=[2.0, 2.0, 0.0])
    async with recorder(store, FlushPolicy(writers=2)) as handle:
        t0 = trio.current_time()
        jobs = [job("a") for _ in range(5)]
        await handle.send.send(jobs[0])  # written at once (0..2)
        await trio.sleep(0.5)
        await handle.send.send(jobs[1])  # the second writer, at once (0.5..2.5)
        await trio.sleep(0.5)
        for j in jobs[2:]:  # both busy: gathered, written at 2 by the first writer free
            await handle.send.send(j)
        for j in jobs:
            await j.ticket.wait()
    assert store.call_times(t0) == pytest.approx([0.0, 0.5, 2.0])
    assert [len(rows) for _, rows in store.calls] == [1, 1, 3]


async def test_window_measured_from_enqueued_at(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore()
    async with recorder(store, FlushPolicy(window=1.0)) as handle:
        t0 = trio.current_time()
        old = job("a", enqueued_at=t0 - 0.75)
        await handle.send.send(old)
        await old.ticket.wait()
        assert trio.current_time() - t0 == pytest.approx(0.25)
        stale = job("b", enqueued_at=trio.current_time() - 5.0)
        await handle.send.send(stale)
        await stale.ticket.wait()
    assert store.call_times(t0) == pytest.approx([0.25, 0.25])


async def test_tickets_completed_only_after_store_returns_with_per_job_split(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore(script=[2.0], unknown=frozenset({"gone"}))
    tickets: list[Ticket] = []
    publish = Publisher(lambda: tickets)
    async with recorder(store, FlushPolicy(window=1.0), publish) as handle:
        t0 = trio.current_time()
        j1 = job("a", "gone", "b")
        j2 = job("gone", "c")
        j3 = job("gone")
        tickets.extend([j1.ticket, j2.ticket, j3.ticket])
        for j in (j1, j2, j3):
            await handle.send.send(j)
        await trio.sleep(1.5)
        assert len(store.calls) == 1
        await trio.sleep(1.499)
        assert not any(t.done for t in tickets)  # the store is still running
        r1, r2, r3 = [await t.wait() for t in tickets]
        assert trio.current_time() - t0 == pytest.approx(3.0)
    assert [d.event_public_id for d in r1.stored] == ["a", "b"]
    assert [(r.index, r.event_public_id) for r in r1.rejected] == [(1, "gone")]
    assert [d.event_public_id for d in r2.stored] == ["c"]
    assert [(r.index, r.event_public_id) for r in r2.rejected] == [(0, "gone")]
    assert r3.stored == []
    assert [(r.index, r.event_public_id) for r in r3.rejected] == [(0, "gone")]
    # Published once, after commit, with every ticket of the batch already complete.
    assert [t - t0 for t, _ in publish.published] == pytest.approx([3.0])
    assert publish.tickets_done_at_publish == [[True, True, True]]
    assert [d.event_public_id for _, c in publish.published for d in c.datapoints] == ["a", "b", "c"]
    assert handle.rows == 3


async def test_nothing_published_when_every_row_rejected(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore(unknown=frozenset({"gone"}))
    publish = Publisher()
    async with recorder(store, FlushPolicy(window=0.1), publish) as handle:
        j = job("gone")
        await handle.send.send(j)
        res = await j.ticket.wait()
    assert res.stored == [] and len(res.rejected) == 1
    assert publish.published == []


async def test_committed_published_in_commit_order(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore(script=[1.0, 0.5, 2.0, 0.0])
    publish = Publisher()
    handle = RecorderHandle(None)
    jobs = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_recorder, handle, store, publish, FlushPolicy(window=0.1))
        for _ in range(8):
            jobs.append(job("a"))
            await handle.send.send(jobs[-1])
            await trio.sleep(0.4)
        handle.close()
        await handle.finished.wait()
    assert [v for vs in publish.values() for v in vs] == [j.items[0].reading.value for j in jobs]
    assert publish.values() == store.call_values()
    # Each publish happens at or after the matching store returned, never before.
    assert all(p >= r for (p, _), r in zip(publish.published, store.returned, strict=True))


async def test_overlapping_writers_publish_in_submission_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two writers: the second batch commits first (0.1 s against 2 s), yet the hub gets the
    first batch's rows first, and every job is resolved exactly once."""
    store = FakeStore(script=[2.0, 0.1, 0.1, 0.1])
    sequencer = Sequencer()
    hub_send, hub_recv = trio.open_memory_channel[Committed](100)
    handle = RecorderHandle(None)
    jobs = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_publisher, sequencer, hub_send)
        nursery.start_soon(run_recorder, handle, store, sequencer, FlushPolicy(writers=2))
        for _ in range(4):
            j = job("a")
            j = attrs.evolve(j, number=sequencer.take())
            jobs.append(j)
            await handle.send.send(j)
            await trio.sleep(0.5)
        handle.close()
        await handle.finished.wait()
        await sequencer.idle()
        nursery.cancel_scope.cancel()
    received: list[float] = []
    while True:
        try:
            received.extend(d.value for d in hub_recv.receive_nowait().datapoints)
        except trio.WouldBlock:
            break
    assert len(store.calls) == 4  # one batch per job: the first commit ends last
    assert received == [j.items[0].reading.value for j in jobs]
    assert sequencer.buffer.outstanding == 0


async def test_database_unavailable_retried_then_tickets_failed(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="webmacs.actors.recorder")
    store = FakeStore(script=[DatabaseUnavailable("down")] * 4)
    async with recorder(store, FlushPolicy(window=1.0)) as handle:
        t0 = trio.current_time()
        j1, j2 = job("a"), job("b")
        await handle.send.send(j1)
        await handle.send.send(j2)
        for j in (j1, j2):
            with pytest.raises(IngestFailed) as info:
                await j.ticket.wait()
            assert info.value.detail == "Database unavailable."
        assert trio.current_time() - t0 == pytest.approx(1.0 + sum(RETRY_DELAYS))
        # The recorder survives: the next job is stored.
        j3 = job("c")
        await handle.send.send(j3)
        assert len((await j3.ticket.wait()).stored) == 1
    assert RETRY_DELAYS == (0.1, 0.5, 1.0)
    assert store.call_times(t0)[:4] == pytest.approx([1.0, 1.1, 1.6, 2.6])
    assert len(store.calls) == 5
    assert handle.batches == 1
    # The log names the failed batch's size (it said 0 once: it was read after clearing).
    assert [r.getMessage() for r in caplog.records] == [
        "recorder None: batch of 2 rows failed: database unavailable"]


async def test_transient_database_trouble_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore(script=[DatabaseUnavailable("busy"), DatabaseUnavailable("busy"), None])
    async with recorder(store, FlushPolicy(window=1.0)) as handle:
        t0 = trio.current_time()
        j = job("a")
        await handle.send.send(j)
        res = await j.ticket.wait()
    assert len(res.stored) == 1
    assert store.call_times(t0) == pytest.approx([1.0, 1.1, 1.6])


async def test_fault_fails_batch_and_crashes(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore()
    handle = RecorderHandle(None)
    faulted: list[Batch] = []

    def fault(batch: Batch) -> None:
        faulted.append(batch)
        raise RuntimeError("simulated crash")

    handle.fault = fault
    j1, j2 = job("a", "b"), job("c")
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="simulated crash"), flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_recorder, handle, store, Publisher(), FlushPolicy(window=1.0))
            t0 = trio.current_time()
            await handle.send.send(j1)
            await handle.send.send(j2)
            await trio.sleep_forever()
    assert trio.current_time() - t0 == pytest.approx(1.0)
    for j in (j1, j2):
        assert j.ticket.done  # nobody is left waiting
        with pytest.raises(IngestFailed, match=r"Database unavailable\."):
            await j.ticket.wait()
    assert store.calls == []
    assert len(faulted) == 1
    assert not handle.finished.is_set()


async def test_store_exception_fails_batch_and_crashes(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore(script=[ValueError("bad row")])
    handle = RecorderHandle(None)
    j = job("a")
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="bad row"), flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_recorder, handle, store, Publisher(), FlushPolicy(window=1.0))
            await handle.send.send(j)
    with pytest.raises(IngestFailed, match=r"Database unavailable\."):
        await j.ticket.wait()
    assert len(store.calls) == 1


async def test_crash_also_fails_the_batch_waiting_for_the_writer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The batch being gathered is failed too (its senders may resend); nothing waits."""
    store = FakeStore(script=[(2.0, RuntimeError("connection reset"))])
    handle = RecorderHandle(None)
    j1, j2, j3 = job("a"), job("b"), job("c")
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError), flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_recorder, handle, store, Publisher(), FlushPolicy(window=1.0))
            t0 = trio.current_time()
            await handle.send.send(j1)  # written from 1, raises at 3
            await trio.sleep(1.5)
            await handle.send.send(j2)  # gathered while the writer is busy
            await trio.sleep(1.2)
            await handle.send.send(j3)  # at 2.7: gathered too
            await trio.sleep_forever()
    assert trio.current_time() - t0 == pytest.approx(3.0)
    for j in (j1, j2, j3):
        with pytest.raises(IngestFailed):
            await j.ticket.wait()
    assert len(store.calls) == 1


async def test_restarted_recorder_keeps_its_queue(autojump_clock: trio.testing.MockClock) -> None:
    """Under a supervisor: the crashed batch is failed, jobs still queued are written after restart."""
    store = FakeStore(script=[2.0, RuntimeError("crash"), None])
    handle = RecorderHandle(None)
    async with trio.open_nursery() as nursery:
        Supervisor(nursery).start_permanent(
            "recorder[-]", run_recorder, handle, store, Publisher(), FlushPolicy(window=1.0),
            policy=RestartPolicy(initial_backoff=3.0),
        )
        t0 = trio.current_time()
        a = job("a")
        await handle.send.send(a)  # written 1..3
        await trio.sleep(1.5)
        b = job("b")  # batched at 2.5, store at 3 raises
        await handle.send.send(b)
        await trio.sleep(1.6)  # 3.1: the recorder is down, restarting at 6
        c = job("c")
        await handle.send.send(c)
        assert len((await a.ticket.wait()).stored) == 1
        with pytest.raises(IngestFailed):
            await b.ticket.wait()
        assert len((await c.ticket.wait()).stored) == 1
        assert trio.current_time() - t0 == pytest.approx(6.0)  # restarted at 6, c's window is over
        handle.close()
        await handle.finished.wait()
    assert store.call_times(t0) == pytest.approx([1.0, 3.0, 6.0])


async def test_close_flushes_queue_then_finishes(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore(script=[2.0])
    handle = RecorderHandle(None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_recorder, handle, store, Publisher(), FlushPolicy(window=10.0))
        t0 = trio.current_time()
        jobs = [job("a"), job("b"), job("c")]
        for j in jobs:
            await handle.send.send(j)
        handle.close()
        with pytest.raises(trio.ClosedResourceError):
            await handle.send.send(job("d"))
        await trio.sleep(1.0)
        assert not handle.finished.is_set()  # the write (started at once, not after 10 s) is running
        await handle.finished.wait()
        assert trio.current_time() - t0 == pytest.approx(2.0)
        assert all(j.ticket.done for j in jobs)
    assert store.call_times(t0) == pytest.approx([0.0])
    assert [len(rows) for _, rows in store.calls] == [3]
    for j in jobs:
        assert len((await j.ticket.wait()).stored) == 1


async def test_close_idle_recorder_finishes_at_once(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore()
    handle = RecorderHandle(7)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_recorder, handle, store, Publisher(), FlushPolicy())
        await trio.sleep(5.0)
        t0 = trio.current_time()
        handle.close()
        await handle.finished.wait()
        assert trio.current_time() == t0
    assert store.calls == []


async def test_close_while_batch_waits_for_writer(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore(script=[3.0, 3.0])
    handle = RecorderHandle(None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_recorder, handle, store, Publisher(), FlushPolicy(window=1.0))
        t0 = trio.current_time()
        a, b, c = job("a"), job("b"), job("c")
        await handle.send.send(a)  # written 1..4
        await trio.sleep(1.5)
        await handle.send.send(b)  # gathered while the writer is busy
        await trio.sleep(0.5)
        await handle.send.send(c)  # gathered too
        handle.close()
        await handle.finished.wait()
    assert all(j.ticket.done for j in (a, b, c))
    assert store.call_times(t0) == pytest.approx([1.0, 4.0])
    assert store.call_values() == [[a.items[0].reading.value],
                                   [b.items[0].reading.value, c.items[0].reading.value]]


async def test_batch_sans_io() -> None:
    batch = Batch()
    assert batch.empty
    j1, j2 = job("a", "b"), job("c", "d", "e")
    batch.add(j1)
    batch.add(j2)
    assert batch.rows == 5
    assert not FlushPolicy(max_rows=6).full(batch)
    assert FlushPolicy(max_rows=5).full(batch)
    assert [s.reading.event_public_id for s in batch.items()] == list("abcde")
    assert batch.split_results([True, False, False, True, True]) == [[0], [1, 2]]


async def test_barrier_waits_for_every_batch_taken_before_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two writers: a barrier taken by the free one completes only once the other one's earlier
    batch committed (experiment delete relies on it), while later jobs are not held up."""
    store = FakeStore(script=[2.0])
    async with recorder(store, FlushPolicy(writers=2)) as handle:
        t0 = trio.current_time()
        a = job("a")
        await handle.send.send(a)  # writer 1: 0..2
        await trio.sleep(0.5)
        barrier = RecordJob((), Ticket(1), trio.current_time())
        await handle.send.send(barrier)  # writer 2 takes it at 0.5
        await barrier.ticket.wait()
        assert a.ticket.done
        assert trio.current_time() - t0 == pytest.approx(2.0)
