"""The ingest router with fake repositories, under a supervisor, in virtual time."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import attrs
import pytest
import trio
import trio.testing

from webmacs.actors.batching import FlushPolicy
from webmacs.actors.messages import ActorFailed, Committed, Future, IngestFailed, Ticket
from webmacs.actors.router import (
    DeleteExperiment,
    Router,
    RouterMessage,
    StartExperiment,
    StopExperiment,
    Submit,
    run_router,
)
from webmacs.actors.sequencing import Sequencer, run_publisher
from webmacs.actors.supervisor import Supervisor
from webmacs.frame_ids import StoreOutcome
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.protocols import Conflict
from webmacs.storage.records import DatapointRecord, ExperimentRecord, IngestResult, NewReading, Rejection
from webmacs.validation import utcnow

Row = tuple[NewReading, datetime, tuple[int, str] | None]
T10 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
T11 = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)


@attrs.define
class Exp:
    id: int
    record: ExperimentRecord


class FakeExperiments:
    """The experiment repository's surface the router uses; every call is a checkpoint."""

    def __init__(self) -> None:
        self.rows: dict[str, Exp] = {}
        self.calls: list[tuple[str, float]] = []
        self._ids = itertools.count(1)
        self.on_delete: Callable[[str], None] | None = None

    def add(self, name: str, started_on: datetime, stopped_on: datetime | None = None) -> Exp:
        exp = Exp(next(self._ids), ExperimentRecord(f"exp-{name}", name, started_on, stopped_on, None))
        self.rows[exp.record.public_id] = exp
        return exp

    async def intervals(self) -> list[tuple[int, str, datetime, datetime | None]]:
        await trio.sleep(0)
        rows = sorted(self.rows.values(), key=lambda e: (e.record.started_on, e.id))
        return [(e.id, e.record.public_id, e.record.started_on, e.record.stopped_on) for e in rows]

    async def create(self, name: str, user_public_id: str | None) -> ExperimentRecord:
        await trio.sleep(0)
        self.calls.append(("create", trio.current_time()))
        if any(e.record.name == name for e in self.rows.values()):
            raise Conflict("Experiment already exists.")
        running = [e for e in self.rows.values() if e.record.stopped_on is None]
        if running:
            raise Conflict(f"Experiment '{running[0].record.name}' is still running; stop it first.")
        return self.add(name, utcnow()).record

    async def stop(self, public_id: str) -> ExperimentRecord | None:
        await trio.sleep(0)
        self.calls.append(("stop", trio.current_time()))
        exp = self.rows.get(public_id)
        if exp is None:
            return None
        if exp.record.stopped_on is None:
            exp.record = attrs.evolve(exp.record, stopped_on=utcnow())
        return exp.record

    async def get(self, public_id: str) -> ExperimentRecord | None:
        await trio.sleep(0)
        exp = self.rows.get(public_id)
        return None if exp is None else exp.record

    async def delete(self, public_id: str) -> bool:
        await trio.sleep(0)
        self.calls.append(("delete", trio.current_time()))
        if self.on_delete is not None:
            self.on_delete(public_id)
        return self.rows.pop(public_id, None) is not None


class FakeDatapoints:
    """``store`` like the SQL repository: one outcome per row; ``script`` gives per-call durations."""

    def __init__(self, script: Sequence[float] = (), unavailable_for: frozenset[str] = frozenset()) -> None:
        self.script = list(script)
        self.unavailable_for = unavailable_for  # batches holding rows of these experiments fail
        self.calls: list[tuple[float, list[Row]]] = []
        self.stored: list[tuple[float, DatapointRecord]] = []  # (commit time, row)
        self._ids = itertools.count(1)

    async def store(self, rows: Sequence[Row], frames: object = None) -> list[StoreOutcome]:
        self.calls.append((trio.current_time(), list(rows)))
        await trio.sleep(self.script.pop(0) if self.script else 0)
        if any(exp is not None and exp[1] in self.unavailable_for for _, _, exp in rows):
            raise DatabaseUnavailable("down")
        out: list[DatapointRecord | Rejection] = []
        for reading, ts, exp in rows:
            rec = DatapointRecord(f"dp-{next(self._ids)}", reading.value, ts, reading.event_public_id,
                                  None if exp is None else exp[1])
            self.stored.append((trio.current_time(), rec))
            out.append(rec)
        return out


@attrs.define
class Harness:
    router: Router
    inbox: trio.MemorySendChannel[RouterMessage]
    hub: trio.MemoryReceiveChannel[Committed]
    experiments: FakeExperiments
    datapoints: FakeDatapoints

    async def submit(self, *readings: NewReading) -> Ticket:
        ticket = Ticket()
        await self.inbox.send(Submit(tuple(readings), ticket))
        return ticket

    async def ask(self, make: Callable[[Future], RouterMessage]) -> object:
        reply = Future()
        await self.inbox.send(make(reply))
        return await reply.get()

    async def send(self, make: Callable[[Future], RouterMessage]) -> Future:
        reply = Future()
        await self.inbox.send(make(reply))
        return reply

    async def published(self) -> list[DatapointRecord]:
        """What reached the hub, once the publisher has handed over everything released."""
        await self.router.sequencer.idle()
        out: list[DatapointRecord] = []
        while True:
            try:
                out.extend(self.hub.receive_nowait().datapoints)
            except trio.WouldBlock:
                return out


@asynccontextmanager
async def open_router(
    experiments: FakeExperiments, datapoints: FakeDatapoints, window: float = 0.5
) -> AsyncIterator[Harness]:
    hub_send, hub_recv = trio.open_memory_channel[Committed](1000)
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, "test")
        sequencer = Sequencer()
        sup.start_permanent("publisher", run_publisher, sequencer, hub_send)
        router = Router(sup, experiments, datapoints, sequencer, FlushPolicy(window=window))  # type: ignore[arg-type]
        await router.load()
        send, recv = trio.open_memory_channel[RouterMessage](64)
        sup.start_permanent("router", run_router, recv, router)
        yield Harness(router, send, hub_recv, experiments, datapoints)
        send.close()
        router.close()
        await router.drained()
        await sequencer.idle()
        nursery.cancel_scope.cancel()


_values = itertools.count(1)


def reading(event: str = "ev", ts: datetime | None = None, index: int = 0) -> NewReading:
    return NewReading(index, float(next(_values)), event, ts)


def stamps(result: IngestResult) -> list[str | None]:
    return [d.experiment_public_id for d in result.stored]


async def test_readings_without_timestamp_go_to_running_experiment(
    autojump_clock: trio.testing.MockClock,
) -> None:
    experiments = FakeExperiments()
    exp = experiments.add("run", utcnow() - timedelta(hours=1))
    datapoints = FakeDatapoints()
    async with open_router(experiments, datapoints) as h:
        assert h.router.running == (exp.id, "exp-run")
        assert set(h.router.recorders) == {None, exp.id}
        before = utcnow()
        ticket = await h.submit(reading(index=0), reading(index=1), reading(index=2))
        res = await ticket.wait()
        after = utcnow()
        assert stamps(res) == ["exp-run"] * 3
        assert all(before <= d.timestamp <= after for d in res.stored)
        assert h.router.recorders[exp.id].rows == 3
        assert h.router.recorders[None].rows == 0
        assert [row[2] for _, rows in datapoints.calls for row in rows] == [(exp.id, "exp-run")] * 3
        assert [d.public_id for d in await h.published()] == [d.public_id for d in res.stored]


async def test_readings_without_experiment_stamped_none(autojump_clock: trio.testing.MockClock) -> None:
    experiments = FakeExperiments()
    datapoints = FakeDatapoints()
    async with open_router(experiments, datapoints) as h:
        assert h.router.running is None
        assert set(h.router.recorders) == {None}
        res = await (await h.submit(reading(), reading(ts=T10, index=1))).wait()
        assert stamps(res) == [None, None]
        assert res.stored[1].timestamp == T10
        assert h.router.recorders[None].rows == 2


async def test_timestamped_readings_stamped_by_interval(autojump_clock: trio.testing.MockClock) -> None:
    experiments = FakeExperiments()
    old = experiments.add("old", T10, T11)
    run = experiments.add("run", utcnow() - timedelta(minutes=5))
    datapoints = FakeDatapoints()
    async with open_router(experiments, datapoints) as h:
        ticket = await h.submit(
            reading(ts=T10 + timedelta(minutes=30), index=0),  # buffered during an outage: old
            reading(ts=T10, index=1),                          # start is inclusive
            reading(ts=T11, index=2),                          # stop is exclusive
            reading(ts=T10 - timedelta(seconds=1), index=3),   # before any experiment
            reading(ts=utcnow() - timedelta(minutes=1), index=4),  # inside the running one
        )
        res = await ticket.wait()
        by_index = {r.index: exp for _, rows in datapoints.calls for r, _, exp in rows}
        assert by_index == {
            0: (old.id, "exp-old"), 1: (old.id, "exp-old"), 2: None, 3: None, 4: (run.id, "exp-run"),
        }
        # One submission, one recorder, one transaction: it holds a reading of the running
        # experiment, so the running experiment's recorder writes all five, each with its stamp.
        assert set(h.router.recorders) == {None, run.id}
        assert h.router.recorders[None].rows == 0
        assert h.router.recorders[run.id].rows == 5
        assert sorted(stamps(res), key=str) == sorted(["exp-old", "exp-old", None, None, "exp-run"], key=str)


async def test_stop_handover_no_reading_lost(autojump_clock: trio.testing.MockClock) -> None:
    experiments = FakeExperiments()
    exp = experiments.add("run", utcnow() - timedelta(hours=1))
    datapoints = FakeDatapoints(script=[2.0])  # the first write is slow
    async with open_router(experiments, datapoints, window=1.0) as h:
        recorder = h.router.recorders[exp.id]
        # Sent back to back: the router handles them in this order.
        before = [await h.submit(reading(index=i)) for i in range(3)]
        stop = await h.send(lambda f: StopExperiment("exp-run", f))
        after = [await h.submit(reading(index=i)) for i in range(3)]
        buffered = await h.submit(reading(ts=utcnow() - timedelta(minutes=30)))  # measured during the run
        record = await stop.get()
        assert isinstance(record, ExperimentRecord) and record.stopped_on is not None
        results = [await t.wait() for t in (*before, *after, buffered)]
        assert [stamps(r) for r in results] == [["exp-run"]] * 3 + [[None]] * 3 + [["exp-run"]]
        assert h.router.running is None
        assert exp.id not in h.router.recorders
        await recorder.finished.wait()  # the stopped experiment's recorder drained and ended
        assert recorder.rows == 3
        assert h.router.recorders[None].rows == 4
        assert len(datapoints.stored) == 7
        published = await h.published()
        assert sorted(d.public_id for d in published) == sorted(d.public_id for _, d in datapoints.stored)
        # Readings routed before the stop were stamped before stopped_on; those after, after it.
        assert all(d.timestamp <= record.stopped_on for r in results[:3] for d in r.stored)
        assert all(d.timestamp >= record.stopped_on for r in results[3:6] for d in r.stored)


async def test_start_handover(autojump_clock: trio.testing.MockClock) -> None:
    experiments = FakeExperiments()
    datapoints = FakeDatapoints()
    async with open_router(experiments, datapoints) as h:
        t_before = await h.submit(reading())
        start = await h.send(lambda f: StartExperiment("new", "user-1", f))
        t_after = await h.submit(reading(), reading(index=1))
        record = await start.get()
        assert isinstance(record, ExperimentRecord) and record.name == "new"
        assert stamps(await t_before.wait()) == [None]
        assert stamps(await t_after.wait()) == ["exp-new", "exp-new"]
        key = experiments.rows["exp-new"].id
        assert h.router.running == (key, "exp-new")
        assert h.router.recorders[key].rows == 2
        # A second start while it runs: the repository's conflict reaches the caller.
        with pytest.raises(Conflict, match="still running"):
            await h.ask(lambda f: StartExperiment("other", None, f))
        assert h.router.running == (key, "exp-new")
        assert set(h.router.recorders) == {None, key}


async def test_stop_of_stopped_experiment_changes_nothing(autojump_clock: trio.testing.MockClock) -> None:
    experiments = FakeExperiments()
    experiments.add("old", T10, T11)
    run = experiments.add("run", utcnow())
    async with open_router(experiments, FakeDatapoints()) as h:
        record = await h.ask(lambda f: StopExperiment("exp-old", f))
        assert isinstance(record, ExperimentRecord) and record.stopped_on == T11
        assert await h.ask(lambda f: StopExperiment("unknown", f)) is None
        assert h.router.running == (run.id, "exp-run")
        assert stamps(await (await h.submit(reading())).wait()) == ["exp-run"]


async def test_delete_drains_running_experiment_recorder_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    experiments = FakeExperiments()
    exp = experiments.add("run", utcnow() - timedelta(hours=1))
    datapoints = FakeDatapoints(script=[5.0])
    pending_at_delete: list[bool] = []
    async with open_router(experiments, datapoints, window=0.5) as h:
        t0 = trio.current_time()
        tickets = [await h.submit(reading(index=i)) for i in range(3)]
        experiments.on_delete = lambda _: pending_at_delete.extend(not t.done for t in tickets)
        await trio.sleep(0.1)
        found = await h.ask(lambda f: DeleteExperiment("exp-run", f))
        assert found is True
        # Closing the recorder at 0.1 flushes at once (no window wait); the write takes 5 s.
        delete_at = [t for name, t in experiments.calls if name == "delete"]
        assert delete_at == [pytest.approx(t0 + 5.1)]
        assert [t - t0 for t, _ in datapoints.calls] == [pytest.approx(0.1)]
        assert pending_at_delete == [False, False, False]
        assert all(t <= delete_at[0] for t, _ in datapoints.stored)
        assert [stamps(await t.wait()) for t in tickets] == [["exp-run"]] * 3
        assert h.router.running is None
        assert exp.id not in h.router.recorders
        assert stamps(await (await h.submit(reading())).wait()) == [None]
        assert await h.ask(lambda f: DeleteExperiment("exp-run", f)) is False


async def _stamped_rows_committed_after_delete(h: Harness, public_id: str) -> list[DatapointRecord]:
    delete_at = next(t for name, t in h.experiments.calls if name == "delete")
    return [d for t, d in h.datapoints.stored if d.experiment_public_id == public_id and t > delete_at]


async def test_delete_right_after_stop_waits_for_stopped_recorder(
    autojump_clock: trio.testing.MockClock,
) -> None:
    experiments = FakeExperiments()
    experiments.add("run", utcnow() - timedelta(hours=1))
    datapoints = FakeDatapoints(script=[5.0])
    async with open_router(experiments, datapoints, window=0.5) as h:
        ticket = await h.submit(reading())
        await h.ask(lambda f: StopExperiment("exp-run", f))
        assert await h.ask(lambda f: DeleteExperiment("exp-run", f)) is True
        await ticket.wait()
        assert await _stamped_rows_committed_after_delete(h, "exp-run") == []


async def test_delete_waits_for_buffered_readings_of_stopped_experiment(
    autojump_clock: trio.testing.MockClock,
) -> None:
    experiments = FakeExperiments()
    experiments.add("old", T10, T11)
    datapoints = FakeDatapoints(script=[5.0])
    async with open_router(experiments, datapoints, window=0.5) as h:
        ticket = await h.submit(reading(ts=T10 + timedelta(minutes=1)))
        await trio.sleep(0.1)
        assert await h.ask(lambda f: DeleteExperiment("exp-old", f)) is True
        assert stamps(await ticket.wait()) == ["exp-old"]
        assert await _stamped_rows_committed_after_delete(h, "exp-old") == []


async def test_submission_is_written_by_one_recorder(autojump_clock: trio.testing.MockClock) -> None:
    experiments = FakeExperiments()
    experiments.add("old", T10, T11)
    run = experiments.add("run", utcnow() - timedelta(minutes=5))
    datapoints = FakeDatapoints()
    async with open_router(experiments, datapoints) as h:
        readings = (reading(index=0), reading(ts=T10, index=1), reading(index=2))
        ticket = await h.submit(*readings)
        res = await ticket.wait()
        # Never split: the good readings of a submission commit together (§4.4).
        assert [(d.value, d.experiment_public_id) for d in res.stored] == list(
            zip([r.value for r in readings], ["exp-run", "exp-old", "exp-run"], strict=True)
        )
        assert len(datapoints.calls) == 1
        assert h.router.recorders[run.id].rows == 3
        assert h.router.recorders[None].rows == 0


async def test_failed_submission_commits_nothing(autojump_clock: trio.testing.MockClock) -> None:
    experiments = FakeExperiments()
    experiments.add("old", T10, T11)
    experiments.add("run", utcnow() - timedelta(minutes=5))
    datapoints = FakeDatapoints(unavailable_for=frozenset({"exp-old"}))
    async with open_router(experiments, datapoints) as h:
        ticket = await h.submit(reading(index=0), reading(ts=T10, index=1))
        with pytest.raises(IngestFailed):
            await ticket.wait()
        assert datapoints.stored == []
        assert await h.published() == []


async def test_submit_after_close_fails_ticket(autojump_clock: trio.testing.MockClock) -> None:
    experiments = FakeExperiments()
    async with open_router(experiments, FakeDatapoints()) as h:
        h.router.close()
        await h.router.drained()
        ticket = await h.submit(reading())
        with pytest.raises(IngestFailed, match=r"Server shutting down\."):
            await ticket.wait()


async def test_empty_submission_is_done_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with open_router(FakeExperiments(), FakeDatapoints()) as h:
        ticket = await h.submit()
        res = await ticket.wait()
        assert res.stored == [] and res.rejected == []


async def test_publication_follows_submission_order_across_recorders(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A reading routed to the None recorder (slow commit), then one to the experiment started
    since (fast commit): subscribers still see them in the order they were submitted."""
    experiments = FakeExperiments()
    datapoints = FakeDatapoints(script=[2.0, 0.0, 0.0])
    async with open_router(experiments, datapoints, window=0.01) as h:
        first = await h.submit(reading())
        await trio.sleep(0.1)  # its batch is being written (2 s)
        await h.ask(lambda f: StartExperiment("run", None, f))
        second = await h.submit(reading())
        res2 = await second.wait()
        assert not first.done  # the second committed first...
        res1 = await first.wait()
        # ...but was published second.
        assert [d.public_id for d in await h.published()] == [
            res1.stored[0].public_id, res2.stored[0].public_id]
        assert stamps(res2) == ["exp-run"]


@pytest.mark.parametrize("message", ["start", "stop", "delete"])
async def test_router_crash_answers_the_waiting_caller_then_restarts(
    autojump_clock: trio.testing.MockClock, message: str,
) -> None:
    experiments = FakeExperiments()
    exp = experiments.add("run", T10)
    datapoints = FakeDatapoints()
    async with open_router(experiments, datapoints) as h:
        handler = {"start": "start_experiment", "stop": "stop_experiment",
                   "delete": "delete_experiment"}[message]
        original = getattr(h.router, handler)
        crashes = [1]

        async def crash_once(msg: RouterMessage) -> None:
            if crashes:
                crashes.pop()
                raise RuntimeError("bug")
            await original(msg)

        setattr(h.router, handler, crash_once)
        make: dict[str, Callable[[Future], RouterMessage]] = {
            "start": lambda f: StartExperiment("other", None, f),
            "stop": lambda f: StopExperiment(exp.record.public_id, f),
            "delete": lambda f: DeleteExperiment(exp.record.public_id, f),
        }
        with pytest.raises(ActorFailed):
            await h.ask(make[message])
        # The restarted router answers the next caller.
        if message == "start":
            with pytest.raises(Conflict):
                await h.ask(make[message])
        else:
            assert await h.ask(make[message])


async def test_router_crash_while_routing_fails_the_ticket(autojump_clock: trio.testing.MockClock) -> None:
    experiments = FakeExperiments()
    datapoints = FakeDatapoints()
    async with open_router(experiments, datapoints) as h:
        await (await h.submit(reading())).wait()  # the router has started (and synced)
        stamper = h.router.stamper

        class Broken:
            def stamp(self, ts: datetime) -> None:
                raise RuntimeError("bug")

        h.router.stamper = Broken()  # type: ignore[assignment]
        ticket = await h.submit(reading(ts=T10))
        with pytest.raises(IngestFailed):
            await ticket.wait()
        h.router.stamper = stamper  # the restart reloads intervals anyway
        later = await h.submit(reading(ts=T10))
        assert len((await later.wait()).stored) == 1
        assert len(await h.published()) == 2  # the failed one left no gap the hub waits on
