"""Idempotent telemetry in storage (§8): a frame id is committed with its rows, and a frame whose
id was committed before is answered with its first ack and stores nothing, on SQLite and
PostgreSQL, within a batch, across batches, across restarts and across concurrent transactions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import trio
from conftest import make_settings

from webmacs.frame_ids import FrameAck, FrameKey, FrameTag, StoreOutcome
from webmacs.services import Services, open_services
from webmacs.settings import Settings
from webmacs.storage.records import DatapointRecord, EventFields, NewReading, Rejection
from webmacs.storage.sql.datapoints import _store
from webmacs.validation import utcnow

TS = datetime(2026, 12, 3, 9, 0, 0, tzinfo=UTC)
UNKNOWN = "3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23"
Row = tuple[NewReading, datetime, tuple[int, str] | None]


async def new_event(svc: Services) -> str:
    fields = EventFields(name=f"ev-{utcnow().timestamp()}", min_value=0, max_value=100, unit="C",
                         type="sensor")
    return (await svc.repos.events.create(fields, None)).public_id


def rows(event: str, values: Sequence[float], second: int = 0) -> list[Row]:
    return [(NewReading(i, v, event, None), TS + timedelta(seconds=second), None)
            for i, v in enumerate(values)]


def tag(seq: int, *parse_rejected: Rejection, cid: str = "ctl-1") -> FrameTag:
    return FrameTag(FrameKey(cid, seq), parse_rejected)


def totals(settings: Settings) -> tuple[int, int, int, int]:
    """Rows, the counters' sum, the rollups' sum, and frame ids: all must move together."""
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            return tuple(int(conn.execute(sa.text(q)).scalar_one()) for q in (  # type: ignore[return-value]
                "SELECT count(*) FROM datapoints",
                "SELECT coalesce(sum(n), 0) FROM datapoint_counts",
                "SELECT coalesce(sum(n), 0) FROM datapoint_seconds",
                "SELECT count(*) FROM ingest_frames",
            ))
    finally:
        engine.dispose()


def stored(outcomes: Sequence[StoreOutcome]) -> list[DatapointRecord]:
    return [o for o in outcomes if isinstance(o, DatapointRecord)]


async def test_clearing_the_event_id_cache_mid_transaction_rejects_no_reading(
    services: Services,
) -> None:
    """The Trio thread clears the write path's event-id cache (another instance deleted an
    event; the bus reconnected) while a batch's transaction runs in a worker thread. The batch
    still stores the readings of live events (a NATS restart once had one rejected as "Event
    not found" when the clear fell between the cache lookup and the insert)."""
    event = await new_event(services)
    repo = services.repos.datapoints
    await repo.store(rows(event, [1.0]), [(tag(1), 1)])  # the event's id is cached now
    engine = services.db.engine

    def clear_the_cache(*_: Any) -> None:  # at every statement of the transaction
        repo.forget_event()

    sa.event.listen(engine, "before_cursor_execute", clear_the_cache)
    try:
        out = await repo.store(rows(event, [2.0], second=1), [(tag(2), 1)])
    finally:
        sa.event.remove(engine, "before_cursor_execute", clear_the_cache)
    assert [o.value for o in stored(out)] == [2.0]


async def test_a_repeated_id_in_one_batch_is_stored_once(services: Services, settings: Settings) -> None:
    event = await new_event(services)
    first, again, plain = rows(event, [1.0, 2.0]), rows(event, [1.0, 2.0]), rows(event, [9.0])
    out = await services.repos.datapoints.store(
        [*first, *again, *plain], [(tag(1), 2), (tag(1), 2), (None, 1)]
    )
    assert [o.value for o in stored(out[:2])] == [1.0, 2.0]
    assert out[2:4] == [FrameAck(2, ()), FrameAck(2, ())]
    assert [o.value for o in stored(out[4:])] == [9.0]  # no id: stored as always
    assert totals(settings) == (3, 3, 3, 1)


async def test_a_resend_in_a_later_batch_gets_the_first_ack_and_stores_nothing(
    services: Services, settings: Settings
) -> None:
    event = await new_event(services)
    parse_rejected = Rejection(1, event, "Input should be a finite number or a string holding one.")
    # Frame 7 had items 0 and 2 good, 1 bad at parsing, 3 of an unknown event.
    items = [(NewReading(0, 1.5, event, None), TS, None), (NewReading(2, 2.5, event, None), TS, None),
             (NewReading(3, 3.5, UNKNOWN, None), TS, None)]
    out = await services.repos.datapoints.store(items, [(tag(7, parse_rejected), 3)])
    assert len(stored(out)) == 2
    before = totals(settings)
    assert before == (2, 2, 2, 1)

    # The resend, batched with a new frame and a frame without id.
    out = await services.repos.datapoints.store(
        [*items, *rows(event, [4.0]), *rows(event, [5.0])],
        [(tag(7, parse_rejected), 3), (tag(8), 1), (None, 1)],
    )
    first = FrameAck(2, (parse_rejected, Rejection(3, UNKNOWN, "Event not found.")))
    assert out[:3] == [first] * 3
    assert [o.value for o in stored(out[3:])] == [4.0, 5.0]
    assert totals(settings) == (4, 4, 4, 2)
    # The same seq of another controller is another frame.
    out = await services.repos.datapoints.store(rows(event, [6.0]), [(tag(7, cid="ctl-2"), 1)])
    assert len(stored(out)) == 1


async def test_ids_survive_a_restart(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path)
    async with open_services(settings) as svc:
        event = await new_event(svc)
        out = await svc.repos.datapoints.store(rows(event, [1.0, 2.0, 3.0]), [(tag(1), 3)])
        assert len(stored(out)) == 3
    async with open_services(settings) as svc:  # a new process on the same database
        out = await svc.repos.datapoints.store(rows(event, [1.0, 2.0, 3.0]), [(tag(1), 3)])
        assert out == [FrameAck(3, ())] * 3
    assert totals(settings) == (3, 3, 3, 1)


async def test_pruned_ids_are_forgotten_and_only_old_ones(services: Services, settings: Settings) -> None:
    event = await new_event(services)
    frames = services.repos.frames
    await services.repos.datapoints.store(rows(event, [1.0]), [(tag(1), 1)])
    assert await frames.prune(utcnow() - timedelta(hours=1)) == 0
    again = await services.repos.datapoints.store(rows(event, [1.0]), [(tag(1), 1)])
    assert again == [FrameAck(1, ())]
    assert await frames.prune(utcnow() + timedelta(seconds=1)) == 1
    assert await frames.count() == 0
    # Past its retention a resend is new again (the promise holds for INGEST_FRAME_RETENTION_HOURS).
    again = await services.repos.datapoints.store(rows(event, [1.0]), [(tag(1), 1)])
    assert len(stored(again)) == 1
    assert totals(settings) == (2, 2, 2, 1)


@pytest.mark.parametrize("first_commits", [True, False])
async def test_concurrent_transactions_on_postgresql_store_a_frame_once(
    services: Services, settings: Settings, first_commits: bool
) -> None:
    """A resend arriving while the original is uncommitted (another writer task): the second
    transaction's claim waits for the first, then replays its ack, or stores the frame itself
    if the first rolled back."""
    if services.db.dialect != "postgresql":
        pytest.skip("SQLite writers take turns: nothing runs concurrently")
    event = await new_event(services)
    items = rows(event, [1.0, 2.0])
    db = services.db
    release = trio.Event()
    claimed = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def first_transaction() -> list[StoreOutcome]:
        with db.engine.connect() as conn:
            conn.begin()
            out = _store(conn, items, False, {}, [(tag(1), 2)])
            trio.from_thread.run_sync(claimed.set, trio_token=token)
            trio.from_thread.run(release.wait, trio_token=token)
            (conn.commit if first_commits else conn.rollback)()
            return out

    async with trio.open_nursery() as nursery:
        results: dict[str, Any] = {}

        async def run_first() -> None:
            results["first"] = await trio.to_thread.run_sync(first_transaction)

        async def run_second() -> None:
            results["second"] = await services.repos.datapoints.store(items, [(tag(1), 2)])

        nursery.start_soon(run_first)
        await claimed.wait()
        nursery.start_soon(run_second)
        with trio.fail_after(10):
            while await waiting_on_locks(settings) == 0:
                await trio.sleep(0.02)
        assert "second" not in results
        release.set()
    assert len(stored(results["first"])) == 2
    if first_commits:
        assert results["second"] == [FrameAck(2, ())] * 2
    else:
        assert len(stored(results["second"])) == 2
    assert totals(settings) == (2, 2, 2, 1)


async def waiting_on_locks(settings: Settings) -> int:
    def query() -> int:
        engine = sa.create_engine(settings.sqlalchemy_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()")).scalar_one())
        finally:
            engine.dispose()

    return await trio.to_thread.run_sync(query)
