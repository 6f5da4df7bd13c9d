"""Instances sharing PostgreSQL and a bus: experiment changes and events made on one govern the
others from the moment the call answers (stamping at commit, control messages for the rest).

Two actor trees with their own services (own pools and caches) on one database and one bus
stand for two instances; the bus is in-process (two buses on one broker) or NATS (skipped with
the reason when unreachable).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest
import trio
from conftest import _empty_pg, make_settings
from test_bus import NATS_HOST, NATS_PORT, NATS_URL, instance_bus, need, reachable

from webmacs.actors.control import (
    EVENT_CREATED,
    EVENT_DELETED,
    EXPERIMENT_DELETED,
    EXPERIMENT_STARTED,
    RECONNECTED,
    Action,
    Do,
    plan,
)
from webmacs.actors.tree import ActorTree, open_actor_tree
from webmacs.bus import Control, InProcessBus, LocalBroker
from webmacs.bus.wire import BadMessage, decode_control, encode_control
from webmacs.services import Services, open_services
from webmacs.storage.records import DatapointFilter, DatapointRecord, EventFields, NewReading
from webmacs.storage.sql.datapoints import STAMP_LOCK
from webmacs.validation import utcnow

# -- sans-IO


def test_plan_ignores_own_messages_and_unknown_kinds() -> None:
    assert plan(Control("me", EXPERIMENT_STARTED, {}), "me") == []
    assert plan(Control("other", "something.new", {}), "me") == []
    assert plan(Control("other", EVENT_CREATED, {"event_id": 3}), "me") == []  # malformed


def test_plan_maps_other_instances_changes() -> None:
    assert plan(Control("o", EXPERIMENT_STARTED, {"experiment_id": "x"}), "me") == [
        Action(Do.RESYNC_EXPERIMENTS)]
    assert plan(Control("o", EXPERIMENT_DELETED, {"experiment_id": "x"}), "me") == [
        Action(Do.RESYNC_EXPERIMENTS), Action(Do.RELOAD_LATEST)]
    assert plan(Control("o", EVENT_CREATED, {"event_id": "e"}), "me") == [
        Action(Do.EVENT_CREATED, "e")]
    assert plan(Control("o", EVENT_DELETED, {"event_id": "e"}), "me") == [
        Action(Do.EVENT_DELETED, "e")]


def test_a_reconnect_reloads_everything_even_from_this_instance() -> None:
    assert [a.do for a in plan(Control("me", RECONNECTED, {}), "me")] == [
        Do.RESYNC_EXPERIMENTS, Do.RELOAD_EVENTS, Do.RELOAD_LATEST]


def test_control_wire_round_trip_and_rejects() -> None:
    msg = Control("abc", EVENT_DELETED, {"event_id": "e1"})
    assert decode_control(encode_control(msg)) == msg
    for bad in (b"not json", b'{"o": "a", "k": "b"}', b'{"o": 1, "k": "b", "p": {}}'):
        with pytest.raises(BadMessage):
            decode_control(bad)


async def test_local_control_messages_reach_every_instance_on_the_broker() -> None:
    broker = LocalBroker()
    a, b = InProcessBus(broker), InProcessBus(broker)
    assert a.distributed and not InProcessBus().distributed
    sub = await b.subscribe_control("s.control")
    await a.publish_control("s.control", EVENT_CREATED, {"event_id": "e"})
    await a.publish_control("other.control", EVENT_CREATED, {"event_id": "x"})
    await b.aclose()
    assert [m async for m in sub] == [Control(a.instance_id, EVENT_CREATED, {"event_id": "e"})]
    await a.aclose()


# -- two instances on PostgreSQL


@pytest.fixture(params=["local", "nats"])
async def instances(
    request: pytest.FixtureRequest, pg_database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[tuple[ActorTree, Services], tuple[ActorTree, Services]]]:
    _empty_pg(pg_database_url)
    subject = f"test.webmacs.{tmp_path.name}".replace("-", "_")
    settings = make_settings(pg_database_url, tmp_path, WEBMACS_BUS_SUBJECT=subject)
    broker = LocalBroker()
    async with AsyncExitStack() as stack:

        async def instance() -> tuple[ActorTree, Services]:
            bus = await instance_bus(request.param, broker)
            stack.push_async_callback(bus.aclose)
            svc = await stack.enter_async_context(open_services(settings))
            return await stack.enter_async_context(open_actor_tree(svc, bus=bus)), svc

        yield await instance(), await instance()


async def new_event(svc: Services, name: str = "t") -> str:
    fields = EventFields(name=name, min_value=0, max_value=100, unit="C", type="sensor")
    return (await svc.repos.events.create(fields, None)).public_id


async def stamp_of(tree: ActorTree, event_id: str) -> str | None:
    result = await (await tree.ingest((NewReading(0, 1.0, event_id, None),))).wait()
    assert result.rejected == [] and len(result.stored) == 1
    stored = result.stored[0]
    in_db = await tree.svc.repos.datapoints.get(stored.public_id)
    assert in_db is not None and in_db.experiment_public_id == stored.experiment_public_id
    return stored.experiment_public_id


async def counted(svc: Services, experiment_id: str) -> int:
    page = await svc.repos.datapoints.page(DatapointFilter(experiment_public_id=experiment_id), 0, 1)
    return page.total


Pair = tuple[tuple[ActorTree, Services], tuple[ActorTree, Services]]


async def test_experiment_changes_on_one_instance_govern_stamping_on_the_other(
    instances: Pair,
) -> None:
    (a, svc_a), (b, svc_b) = instances
    event = await new_event(svc_a)
    assert await stamp_of(b, event) is None
    first = await a.create_experiment("first", None)
    # No waiting for control messages: the answer is enough.
    assert await stamp_of(b, event) == first.public_id
    assert await stamp_of(b, event) == first.public_id
    assert await counted(svc_b, first.public_id) == 2
    await b.stop_experiment(first.public_id)
    assert await stamp_of(a, event) is None
    assert await counted(svc_a, first.public_id) == 2
    second = await b.create_experiment("second", None)
    assert await stamp_of(a, event) == second.public_id
    assert await a.delete_experiment(second.public_id)
    assert await stamp_of(b, event) is None
    assert await stamp_of(a, event) is None
    # The routers follow through control messages (they route by their intervals).
    with trio.fail_after(10):
        while b.router.running is not None or a.router.running is not None:
            await trio.sleep(0.01)


async def test_readings_queued_for_an_experiment_deleted_elsewhere_are_kept_without_it(
    instances: Pair,
) -> None:
    (a, svc_a), (b, _) = instances
    event = await new_event(svc_a)
    exp = await a.create_experiment("doomed", None)
    with trio.fail_after(10):
        while b.router.running is None:  # B routes to the experiment's own recorder
            await trio.sleep(0.01)
    assert await stamp_of(b, event) == exp.public_id
    assert await a.delete_experiment(exp.public_id)
    assert await stamp_of(b, event) is None
    assert await counted(svc_a, exp.public_id) == 0


async def test_events_created_and_deleted_on_one_instance_reach_the_other(
    instances: Pair,
) -> None:
    (a, svc_a), (b, _) = instances
    event = await new_event(svc_a)
    await a.event_created(event)
    assert await stamp_of(b, event) is None  # accepted by B
    with trio.fail_after(10):
        while event not in [r.event_public_id for r in await b.latest()]:
            await trio.sleep(0.01)
    assert await svc_a.repos.events.delete(event)
    await a.event_deleted(event)
    result = await (await b.ingest((NewReading(0, 2.0, event, None),))).wait()
    assert result.stored == [] and [r.detail for r in result.rejected] == ["Event not found."]
    with trio.fail_after(10):
        while await latest_has(b, event):
            await trio.sleep(0.01)


async def latest_has(tree: ActorTree, event_id: str) -> bool:
    rows: list[DatapointRecord] = await tree.latest()
    return event_id in [r.event_public_id for r in rows]


async def test_after_a_reconnect_an_instance_reloads_what_it_may_have_missed(
    instances: Pair,
) -> None:
    (_, svc_a), (b, _) = instances
    event = await new_event(svc_a)
    assert await stamp_of(b, event) is None
    with trio.fail_after(10):
        while not await latest_has(b, event):
            await trio.sleep(0.01)
    # Deleted with its control message lost: B still shows it until it reloads.
    assert await svc_a.repos.events.delete(event)
    for action in plan(Control("", RECONNECTED, {}), "b"):
        await b.apply_control(action)
    assert not await latest_has(b, event)


async def test_a_nats_reconnect_is_delivered_to_control_subscriptions() -> None:
    need(reachable(NATS_HOST, NATS_PORT), f"no NATS server at {NATS_URL}")
    from webmacs.bus.nats_bus import NatsBus

    bus = await NatsBus.open(NATS_URL, wait_connected=10)
    try:
        sub = await bus.subscribe_control("test.webmacs.reconnect.control")
        await bus._call(bus._on_reconnect)  # what nats-py calls after reconnecting
        with trio.fail_after(10):
            msg = await sub.__anext__()
        assert msg.kind == RECONNECTED and msg.origin == bus.instance_id
    finally:
        await bus.aclose()


async def test_a_single_instance_stamps_from_memory(tmp_path: Path) -> None:
    """The in-process default: no stamping query, no lock (one statement per batch)."""
    settings = make_settings(f"sqlite:///{tmp_path / 'solo.db'}", tmp_path)
    async with open_services(settings) as svc, open_actor_tree(svc) as tree:
        assert tree.bus is not None and not tree.bus.distributed
        assert not svc.repos.datapoints.stamp_at_commit
        assert not svc.repos.experiments.serialize_with_stamping


async def test_a_batch_waits_for_a_concurrent_experiment_change_and_sees_it(
    instances: Pair, pg_database_url: str
) -> None:
    """The stamping lock: a batch committing while an experiment change holds the lock is
    stamped from what that change committed (here, a start written by hand in SQL)."""
    (_, svc_a), (b, _) = instances
    event = await new_event(svc_a)
    changer = await trio.to_thread.run_sync(lambda: psycopg.connect(pg_database_url))
    watcher = await trio.to_thread.run_sync(
        lambda: psycopg.connect(pg_database_url, autocommit=True))
    try:
        await trio.to_thread.run_sync(
            lambda: changer.execute("SELECT pg_advisory_xact_lock(%s)", (STAMP_LOCK,)))
        ts = utcnow()
        ticket = await b.ingest((NewReading(0, 1.0, event, ts),))

        def batch_waits() -> bool:
            row = watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            return row is not None and row[0] > 0

        with trio.fail_after(10):
            while not await trio.to_thread.run_sync(batch_waits):
                await trio.sleep(0.01)
        exp_id = str(uuid4())

        def start() -> None:
            changer.execute(
                "INSERT INTO experiments (public_id, name, started_on) VALUES (%s, %s, %s)",
                (exp_id, "by hand", ts - timedelta(seconds=1)))
            changer.commit()

        await trio.to_thread.run_sync(start)
        result = await ticket.wait()
        assert [r.experiment_public_id for r in result.stored] == [exp_id]
        assert await counted(svc_a, exp_id) == 1
    finally:
        await trio.to_thread.run_sync(changer.close)
        await trio.to_thread.run_sync(watcher.close)
