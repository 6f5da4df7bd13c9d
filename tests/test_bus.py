"""The bus port's contract, run against the in-process bus and NATS alike.

NATS tests use the server at 127.0.0.1:4222 (``.ci/run`` starts it) and skip, with the reason
printed, when it is unreachable; ``WEBMACS_REQUIRE_NATS=1`` makes that a failure. The restart
tests start a private ``nats-server`` on a free port instead of touching the shared one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing

from webmacs.bus import Bus, BusClosed, ChannelSubscription, Delivery, GapDetector, InProcessBus, LocalBroker
from webmacs.bus.base import Batch
from webmacs.bus.wire import BadMessage, decode, encode
from webmacs.storage.records import DatapointRecord

NATS_HOST, NATS_PORT = "127.0.0.1", 4222
NATS_URL = f"nats://{NATS_HOST}:{NATS_PORT}"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
_counter = iter(range(10**9))


def row(event: str = "e", experiment: str | None = None) -> DatapointRecord:
    n = next(_counter)
    return DatapointRecord(f"p{n}", n + 0.25, T0 + timedelta(microseconds=n), event, experiment)


def rows(k: int) -> tuple[DatapointRecord, ...]:
    return tuple(row() for _ in range(k))


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def instance_bus(kind: str, broker: LocalBroker) -> Bus:
    """One instance's bus for the multi-instance tests: ``local`` (every bus on one broker, as
    instances on one NATS) or ``nats`` (skipped with the reason when no server is reachable).
    The caller closes it."""
    if kind == "local":
        return InProcessBus(broker)
    need(reachable(NATS_HOST, NATS_PORT), f"no NATS server at {NATS_URL}")
    from webmacs.bus.nats_bus import NatsBus

    return await NatsBus.open(NATS_URL, wait_connected=10)


def need(condition: bool, reason: str) -> None:
    """Skip with ``reason``, or fail when the environment demands NATS."""
    if condition:
        return
    if os.environ.get("WEBMACS_REQUIRE_NATS") == "1":
        pytest.fail(f"WEBMACS_REQUIRE_NATS=1 but {reason}")
    pytest.skip(reason)


def subject() -> str:
    return f"test.webmacs.{uuid.uuid4().hex}"


Factory = Callable[[], Awaitable[Bus]]


@pytest.fixture(params=["local", "nats"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Opens buses that share one broker (local) or one NATS server: separate instances."""
    kind = request.param
    if kind == "nats":
        need(reachable(NATS_HOST, NATS_PORT), f"no NATS server at {NATS_URL}")
        from webmacs.bus.nats_bus import NatsBus
    broker = LocalBroker()
    opened: list[Bus] = []

    async def make() -> Bus:
        bus: Bus
        if kind == "local":
            bus = InProcessBus(broker)
        else:
            nats_bus = await NatsBus.open(NATS_URL, wait_connected=10)
            assert nats_bus.connected.is_set()
            bus = nats_bus
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        await bus.aclose()


async def take(sub: ChannelSubscription, n: int) -> list[Delivery]:
    with trio.fail_after(10):
        return [await sub.receive() for _ in range(n)]


# -- the contract, against both implementations


async def test_order_per_publisher_and_own_batches(make_bus: Factory) -> None:
    a, b, c = await make_bus(), await make_bus(), await make_bus()
    subj = subject()
    sub_c, sub_a = await c.subscribe(subj), await a.subscribe(subj)
    sent: dict[str, list[tuple[DatapointRecord, ...]]] = {a.instance_id: [], b.instance_id: []}
    for _ in range(50):
        for bus in (a, b):
            batch = rows(3)
            await bus.publish(subj, batch)
            sent[bus.instance_id].append(batch)
    for sub, n in ((sub_c, 100), (sub_a, 100)):
        got: dict[str, list[Delivery]] = {a.instance_id: [], b.instance_id: []}
        for d in await take(sub, n):
            got[d.origin].append(d)
        for origin, batches in sent.items():
            assert [d.seq for d in got[origin]] == list(range(50))
            assert [d.rows for d in got[origin]] == batches
            assert all(d.missed == 0 for d in got[origin])


async def test_every_subscriber_on_every_instance_gets_each_batch(make_bus: Factory) -> None:
    buses = [await make_bus() for _ in range(3)]
    subj = subject()
    subs = [await bus.subscribe(subj) for bus in buses]
    batch = (row("x", "exp"), row("y"))
    await buses[1].publish(subj, batch)
    for sub in subs:
        [d] = await take(sub, 1)
        assert (d.origin, d.seq, d.rows, d.missed) == (buses[1].instance_id, 0, batch, 0)


async def test_other_subjects_are_not_delivered(make_bus: Factory) -> None:
    bus = await make_bus()
    s1, s2 = subject(), subject()
    sub = await bus.subscribe(s1)
    await bus.publish(s2, rows(1))
    await bus.publish(s1, only := rows(1))
    [d] = await take(sub, 1)
    assert d.rows == only


async def test_a_slow_subscriber_loses_batches_and_counts_the_missed_readings(make_bus: Factory) -> None:
    pub, recv = await make_bus(), await make_bus()
    subj = subject()
    sub = await recv.subscribe(subj, max_pending=4)
    for _ in range(20):
        await pub.publish(subj, rows(3))
    with trio.fail_after(10):
        while sub.dropped < 16:  # all 20 arrived: 4 queued, 16 dropped
            await trio.sleep(0.01)
    got = await take(sub, 4)
    await pub.publish(subj, last := rows(2))
    got += await take(sub, 1)
    assert [d.seq for d in got] == [0, 1, 2, 3, 20]
    assert [d.missed for d in got] == [0, 0, 0, 0, 16 * 3]
    assert got[-1].rows == last
    assert sub.missed_total == 48


async def test_closing_a_subscription_ends_it_and_only_it(make_bus: Factory) -> None:
    bus = await make_bus()
    subj = subject()
    gone, stays = await bus.subscribe(subj), await bus.subscribe(subj)
    await bus.publish(subj, first := rows(1))
    await take(stays, 1)
    await gone.aclose()
    await bus.publish(subj, second := rows(1))
    assert [d.rows async for d in gone] == [first]  # what was queued, then the end
    [d] = await take(stays, 1)
    assert d.rows == second


async def test_closing_the_bus_ends_its_subscriptions_and_refuses_more(make_bus: Factory) -> None:
    bus = await make_bus()
    subj = subject()
    sub = await bus.subscribe(subj)
    await bus.publish(subj, batch := rows(2))
    await take(sub, 1)  # delivered before the close
    await bus.aclose()
    assert [d async for d in sub] == []
    with pytest.raises(BusClosed):
        await bus.publish(subj, rows(1))
    with pytest.raises(BusClosed):
        await bus.subscribe(subj)
    await bus.aclose()  # twice is harmless
    assert batch


async def test_a_cancelled_receive_loses_nothing(make_bus: Factory) -> None:
    bus = await make_bus()
    subj = subject()
    sub = await bus.subscribe(subj)
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def wait() -> None:
            with scope:
                await sub.receive()

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        scope.cancel()
    await bus.publish(subj, batch := rows(1))
    [d] = await take(sub, 1)
    assert (d.seq, d.rows) == (0, batch)


async def test_empty_batches_are_not_published(make_bus: Factory) -> None:
    bus = await make_bus()
    subj = subject()
    sub = await bus.subscribe(subj)
    await bus.publish(subj, ())
    await bus.publish(subj, batch := rows(1))
    [d] = await take(sub, 1)
    assert (d.seq, d.rows, d.missed) == (0, batch, 0)


# -- sans-IO parts


def test_gap_detector() -> None:
    gaps = GapDetector()
    assert gaps.check("a", 5, 100, 10) == 0  # first batch seen: baseline, not a gap
    assert gaps.check("a", 6, 110, 1) == 0
    assert gaps.check("b", 0, 0, 2) == 0  # origins are independent
    assert gaps.check("a", 9, 130, 5) == 19  # seq 7 and 8 held readings 111..129
    assert gaps.check("a", 8, 120, 3) is None  # older than seen: dropped
    assert gaps.check("a", 9, 130, 5) is None  # a duplicate too
    assert gaps.check("a", 10, 135, 1) == 0
    assert gaps.missed_total == 19


def test_wire_round_trip() -> None:
    old = DatapointRecord("q", -1e300, datetime(1969, 1, 1, tzinfo=UTC), "c", None)
    batch = Batch("inst", 7, 1234, (row("a", "x"), row("b"), old))
    again = decode(encode(batch))
    assert again == batch
    assert all(r.timestamp.tzinfo is not None for r in again.rows)


@pytest.mark.parametrize("data", [b"", b"[]", b'{"o":"a","s":1}', b'{"o":1,"s":0,"f":0,"r":[]}',
                                  b'{"o":"a","s":0,"f":0,"r":[[1]]}'])
def test_wire_rejects_what_is_not_a_batch(data: bytes) -> None:
    with pytest.raises(BadMessage):
        decode(data)


# -- NATS restarts (a private server, so the shared one is never disturbed)


class PrivateNats:
    def __init__(self, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log = tmp / "nats.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-l", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with trio.fail_after(10):
            while not reachable("127.0.0.1", self.port):
                await trio.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    need(os.access(NATS_SERVER, os.X_OK), f"{NATS_SERVER} is not installed")
    server = PrivateNats(tmp_path)
    yield server
    server.stop()


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(20):
        while not condition():
            await trio.sleep(0.02)


async def test_nats_bus_reconnects_after_a_server_restart_and_counts_what_was_lost(
    private_nats: PrivateNats,
) -> None:
    from webmacs.bus.nats_bus import NatsBus

    await private_nats.start()
    pub = await NatsBus.open(private_nats.url, wait_connected=10, reconnect_wait=0.1)
    recv = await NatsBus.open(private_nats.url, wait_connected=10, reconnect_wait=0.1)
    try:
        subj = subject()
        sub = await recv.subscribe(subj)
        published: list[int] = []

        async def publish(k: int) -> None:
            await pub.publish(subj, rows(k))
            published.append(k)

        await publish(2)
        [d] = await take(sub, 1)
        assert d.missed == 0
        private_nats.stop()
        await until(lambda: pub.disconnects >= 1 and recv.disconnects >= 1)
        await publish(3)  # buffered by nats-py, or lost: either way accounted for
        await private_nats.start()
        await until(lambda: pub.reconnects >= 1 and recv.reconnects >= 1)
        got = [d]
        with trio.fail_after(20):
            while got[-1].seq < 2:  # publish until one after the restart gets through
                await publish(1)
                with trio.move_on_after(0.2):
                    while True:
                        got.append(await sub.receive())
        last = got[-1].seq
        assert [g.seq for g in got] == sorted(g.seq for g in got)
        assert sum(len(g.rows) + g.missed for g in got) == sum(published[: last + 1])
    finally:
        await pub.aclose()
        await recv.aclose()


async def test_nats_bus_starts_without_a_server_and_connects_when_it_appears(
    private_nats: PrivateNats,
) -> None:
    from webmacs.bus.nats_bus import NatsBus

    bus = await NatsBus.open(private_nats.url, wait_connected=0, reconnect_wait=0.1)
    try:
        assert not bus.connected.is_set()
        subj = subject()
        sub = await bus.subscribe(subj)  # registered now, subscribed once connected
        await bus.publish(subj, rows(4))  # nowhere to go: dropped, and counted at the receiver
        await private_nats.start()
        with trio.fail_after(20):
            await bus.connected.wait()
        await bus.publish(subj, batch := rows(1))
        [d] = await take(sub, 1)
        assert (d.seq, d.rows) == (1, batch)
        assert d.missed == 0  # the first batch seen sets the baseline
    finally:
        await bus.aclose()


async def test_nats_bus_closes_promptly_while_still_connecting(private_nats: PrivateNats) -> None:
    from webmacs.bus.nats_bus import NatsBus

    bus = await NatsBus.open(private_nats.url, wait_connected=0, reconnect_wait=0.1)
    sub = await bus.subscribe(subject())
    with trio.fail_after(10):
        await bus.aclose()
    assert [d async for d in sub] == []
