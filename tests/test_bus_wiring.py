"""The hub fed by the bus: two actor trees on one bus behave as two instances of webmacs.

A reading committed on instance A reaches B's subscribers and B's ``/datapoints/latest``, in
order; a bus gap reaches every subscriber as a ``lag`` frame. Run on the in-process bus (two
buses on one broker) and on NATS (two connections; skipped with the reason when unreachable).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import trio
from conftest import make_settings
from test_bus import instance_bus

from webmacs.actors.hub import Delivered, Hub, StreamFilter, Subscribe, Subscription
from webmacs.actors.messages import Committed
from webmacs.actors.outbox import SubscriberOutbox
from webmacs.actors.tree import ActorTree, open_actor_tree
from webmacs.bus import Bus, InProcessBus, LocalBroker
from webmacs.services import open_services
from webmacs.storage.records import DatapointRecord, EventFields, NewReading

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def row(event: str, n: int) -> DatapointRecord:
    return DatapointRecord(f"p{event}{n}", float(n), T0 + timedelta(seconds=n), event, None)


def frames(sub: Subscription) -> list[dict[str, object]]:
    return [orjson.loads(f) for f in sub.outbox.take()]


# -- the hub alone


async def test_committed_updates_latest_and_the_bus_delivery_fans_out() -> None:
    hub = Hub(origin="me")
    sub = Subscription(StreamFilter(), SubscriberOutbox())
    hub.handle(Subscribe(sub))
    mine = (row("a", 1),)
    hub.handle(Committed(mine))
    assert hub.latest.snapshot() == list(mine)
    assert frames(sub) == []  # not fanned out twice: it comes back through the bus
    hub.handle(Delivered("me", mine))
    assert [f["type"] for f in frames(sub)] == ["datapoints_batch"]
    assert hub.latest.seq == 1  # own rows counted once in the latest values
    theirs = (row("b", 2),)
    hub.handle(Delivered("other", theirs))
    assert hub.latest.snapshot() == [*mine, *theirs]
    assert (hub.published, hub.delivered) == (1, 2)


async def test_a_bus_gap_reaches_every_subscriber_as_one_lag_frame() -> None:
    hub = Hub(origin="me")
    everything = Subscription(StreamFilter(), SubscriberOutbox())
    elsewhere = Subscription(StreamFilter(event_ids=frozenset({"zzz"})), SubscriberOutbox())
    for sub in (everything, elsewhere):
        hub.handle(Subscribe(sub))
    hub.handle(Delivered("other", (row("a", 1),), missed=7))
    assert frames(everything)[0] == {"type": "lag", "dropped": 7}
    assert frames(elsewhere) == [{"type": "lag", "dropped": 7}]  # which events were lost is unknown
    assert everything.bell_recv.receive_nowait() is None
    assert hub.missed == 7
    assert everything.outbox.missed_total == 7 and everything.outbox.dropped_total == 0


# -- two instances


Opener = Callable[[], Awaitable[Bus]]


@pytest.fixture(params=["local", "nats"])
async def open_instance_bus(request: pytest.FixtureRequest) -> AsyncIterator[Opener]:
    broker = LocalBroker()
    async with AsyncExitStack() as stack:

        async def open_one() -> Bus:
            bus = await instance_bus(request.param, broker)
            stack.push_async_callback(bus.aclose)
            return bus

        yield open_one


async def test_a_reading_committed_on_one_instance_reaches_the_other(
    open_instance_bus: Opener, tmp_path: Path
) -> None:
    subject = f"test.webmacs.{tmp_path.name}".replace("-", "_")
    settings = make_settings(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path, WEBMACS_BUS_SUBJECT=subject)
    bus_a, bus_b = await open_instance_bus(), await open_instance_bus()
    async with open_services(settings) as svc:
        event = await svc.repos.events.create(
            EventFields(name="t", min_value=0, max_value=100, unit="C", type="sensor"), None
        )
        async with open_actor_tree(svc, bus=bus_a) as a, open_actor_tree(svc, bus=bus_b) as b:
            subs = {"a": await a.subscribe(StreamFilter()), "b": await b.subscribe(StreamFilter())}
            for n in range(5):
                reading = NewReading(0, float(n), event.public_id, T0 + timedelta(seconds=n))
                ticket = await a.ingest((reading,))
                await ticket.wait()
            for name, sub in subs.items():
                values = await received_values(sub, 5)
                assert values == [0.0, 1.0, 2.0, 3.0, 4.0], name
            assert [r.value for r in await b.latest()] == [4.0]
            assert b.hub.published == 0 and b.hub.delivered == 5


async def received_values(sub: Subscription, n: int) -> list[float]:
    values: list[float] = []
    with trio.fail_after(10):
        while len(values) < n:
            for frame in frames(sub):
                if frame["type"] == "datapoints_batch":
                    values += [d["value"] for d in frame["datapoints"]]  # type: ignore[attr-defined]
            if len(values) < n:
                await sub.bell_recv.receive()
    return values


async def test_latest_values_do_not_wait_for_the_bus(tmp_path: Path) -> None:
    """A bus that delivers nothing (NATS down) leaves ingest, acks and /latest working."""
    settings = make_settings(f"sqlite:///{tmp_path / 'solo.db'}", tmp_path)

    class Silent(InProcessBus):
        async def publish(self, subject: str, rows: tuple[DatapointRecord, ...]) -> None:
            return None

    async with open_services(settings) as svc:
        event = await svc.repos.events.create(
            EventFields(name="t", min_value=0, max_value=100, unit="C", type="sensor"), None
        )
        bus = Silent()
        tree: ActorTree
        async with open_actor_tree(svc, bus=bus) as tree:
            ticket = await tree.ingest((NewReading(0, 1.5, event.public_id, None),))
            assert (await ticket.wait()).accepted == 1
            with trio.fail_after(10):
                while not await tree.latest():
                    await trio.sleep(0.01)
            assert [r.value for r in await tree.latest()] == [1.5]
        await bus.aclose()
