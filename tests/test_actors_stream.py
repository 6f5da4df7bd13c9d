"""The live stream: outbox and latest values (sans-IO), the hub, and subscribers on fake ports."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing

from webmacs.actors import hub as hub_module
from webmacs.actors.hub import (
    EventCreated,
    EventDeleted,
    GetLatest,
    GetSeq,
    Hub,
    HubMessage,
    ReloadLatest,
    StreamFilter,
    Subscribe,
    Subscription,
    encode,
    run_hub,
)
from webmacs.actors.latest import LatestValues
from webmacs.actors.messages import ActorFailed, Committed, Future
from webmacs.actors.outbox import SubscriberOutbox
from webmacs.actors.ports import Activity, ConnectionClosed
from webmacs.actors.subscriber import run_subscriber
from webmacs.actors.supervisor import Supervisor
from webmacs.storage.records import DatapointRecord

T0 = datetime(2026, 2, 10, 20, 44, 8, 123456, tzinfo=UTC)
_ids = itertools.count(1)


def row(
    event: str = "e1", ts: datetime = T0, value: float | None = None, exp: str | None = None
) -> DatapointRecord:
    n = next(_ids)
    return DatapointRecord(f"dp-{n}", float(n) if value is None else value, ts, event, exp)


def frame(data: bytes) -> Any:
    return orjson.loads(data)


def data_ids(frames: list[bytes]) -> list[list[str]]:
    return [[d["public_id"] for d in frame(f)["datapoints"]] for f in frames
            if frame(f)["type"] == "datapoints_batch"]


# -- SubscriberOutbox (sans-IO)


def test_outbox_coalesces_into_one_data_frame() -> None:
    box = SubscriberOutbox()
    rows = [row() for _ in range(3)]
    box.offer([encode(rows[0])], 0.0)
    box.offer([encode(rows[1]), encode(rows[2])], 0.0)
    frames = box.take()
    assert len(frames) == 1
    body = frame(frames[0])
    assert body["type"] == "datapoints_batch"
    assert [d["public_id"] for d in body["datapoints"]] == [r.public_id for r in rows]
    assert body["datapoints"][0] == {
        "public_id": rows[0].public_id, "value": rows[0].value, "event_public_id": "e1",
        "timestamp": "2026-02-10T20:44:08.123456+00:00", "experiment_public_id": None,
    }
    assert box.take() == []  # empty data frames are never produced


def test_outbox_splits_at_max_frame_items() -> None:
    box = SubscriberOutbox(max_frame_items=2)
    rows = [row() for _ in range(5)]
    box.offer([encode(r) for r in rows], 0.0)
    frames = box.take() + box.take() + box.take()
    assert data_ids(frames) == [[r.public_id for r in rows[:2]], [r.public_id for r in rows[2:4]],
                                [rows[4].public_id]]


def test_outbox_drops_oldest_and_reports_lag_before_next_data() -> None:
    box = SubscriberOutbox(max_items=3)
    rows = [row() for _ in range(5)]
    box.offer([encode(r) for r in rows[:2]], 0.0)
    box.offer([encode(r) for r in rows[2:]], 0.0)
    assert box.pending == 3
    frames = box.take()
    assert [frame(f) for f in frames[:1]] == [{"type": "lag", "dropped": 2}]
    assert data_ids(frames[1:]) == [[r.public_id for r in rows[2:]]]
    # The count restarts after each lag frame; the total keeps growing.
    more = [row() for _ in range(7)]
    box.offer([encode(r) for r in more], 1.0)
    frames = box.take()
    assert frame(frames[0]) == {"type": "lag", "dropped": 4}
    assert data_ids(frames[1:]) == [[r.public_id for r in more[4:]]]
    assert box.dropped_total == 6
    box.offer([encode(row())], 2.0)
    assert [frame(f)["type"] for f in box.take()] == ["datapoints_batch"]  # no lag: nothing dropped


def test_outbox_control_frames_first() -> None:
    box = SubscriberOutbox(max_items=1)
    box.offer([encode(row()), encode(row())], 0.0)
    box.control(b'{"type":"pong"}', 0.0)
    assert [frame(f)["type"] for f in box.take()] == ["pong", "lag", "datapoints_batch"]


def test_outbox_stuck_timing() -> None:
    box = SubscriberOutbox(stuck_timeout=10.0)
    assert not box.stuck(1000.0)  # idle is never stuck
    assert box.stuck_at(1000.0) == 1010.0  # work appearing now could be stuck at the earliest
    box.offer([encode(row())], 100.0)  # work appears at 100: the stuck clock starts there
    assert box.stuck_at(105.0) == 110.0
    assert not box.stuck(109.999)
    assert box.stuck(110.0)
    assert box.take()
    box.offer([encode(row())], 105.0)  # more work while busy does not restart the clock
    assert box.stuck(110.0)
    box.sent(108.0)  # progress
    assert not box.stuck(117.999) and box.stuck_at(117.0) == 118.0
    assert box.stuck(118.0)  # still has data pending
    assert box.take()
    box.sent(119.0)
    assert box.pending == 0 and not box.sending
    assert not box.stuck(500.0)


def test_outbox_sending_counts_as_busy() -> None:
    box = SubscriberOutbox(stuck_timeout=1.0)
    box.control(b'{"type":"connected"}', 0.0)
    box.take()
    assert box.pending == 0 and box.sending
    assert box.stuck(1.5)
    box.sent(1.6)
    assert not box.stuck(100.0)


def test_outbox_closed_ignores_offers() -> None:
    box = SubscriberOutbox()
    box.closed = True
    box.offer([encode(row())], 0.0)
    assert box.pending == 0 and box.take() == []


# -- LatestValues (sans-IO)


def test_latest_tie_goes_to_later_update() -> None:
    lv = LatestValues()
    first, second = row(ts=T0), row(ts=T0)
    lv.update([first])
    lv.update([second])
    assert lv.snapshot() == [second]
    third, fourth = row(ts=T0), row(ts=T0)
    lv.update([third, fourth])  # within one commit, the later row wins too
    assert lv.snapshot() == [fourth]


def test_latest_older_timestamp_never_overwrites() -> None:
    lv = LatestValues()
    new = row(ts=T0)
    lv.update([new])
    lv.update([row(ts=T0 - timedelta(seconds=1))])
    assert lv.snapshot() == [new]


def test_latest_order_is_event_order() -> None:
    lv = LatestValues()
    lv.load(["a", "b", "c"], [row("c")])
    rb, ra, rx = row("b"), row("a"), row("x")
    lv.update([rb])
    lv.update([ra, rx])  # "x" is unknown: appended
    assert [r.event_public_id for r in lv.snapshot()] == ["a", "b", "c", "x"]
    lv.event_created("d")
    rd = row("d")
    lv.update([rd])
    assert lv.snapshot()[-1] == rd


def test_latest_deleted_events_ignored() -> None:
    lv = LatestValues()
    lv.load(["a", "b"], [])
    rb = row("b")
    lv.update([row("a"), rb])
    lv.event_deleted("a")
    lv.update([row("a")])  # a late commit for the deleted event
    lv.reload([row("a"), rb], lv.seq)  # a snapshot read before the delete committed
    assert lv.snapshot() == [rb]
    lv.event_created("a")  # an id can come back (creation order: appended)
    ra = row("a")
    lv.update([ra])
    assert lv.snapshot() == [rb, ra]


def test_latest_reload_never_overwrites_newer() -> None:
    lv = LatestValues()
    lv.load(["a", "b", "c"], [])
    lv.update([row("a"), row("b"), row("c")])
    snapshot_seq = lv.seq
    newer_a = row("a", ts=T0 + timedelta(seconds=5))
    lv.update([newer_a])  # committed while the snapshot was being read
    db_a, db_b = row("a", ts=T0 - timedelta(hours=1)), row("b", ts=T0 - timedelta(hours=1))
    # c's data was deleted (absent from the snapshot); b was replaced by an older row.
    lv.reload([db_a, db_b], snapshot_seq)
    assert lv.snapshot() == [newer_a, db_b]
    # A later snapshot does replace it.
    lv.reload([db_b], lv.seq)
    assert lv.snapshot() == [db_b]


# -- Hub


async def test_hub_publish_is_synchronous_and_filters() -> None:
    assert not inspect.iscoroutinefunction(Hub.publish)
    hub = Hub()
    everything = Subscription(StreamFilter(), SubscriberOutbox())
    only_e2 = Subscription(StreamFilter(event_ids=frozenset({"e2", "e3"})), SubscriberOutbox())
    only_x = Subscription(StreamFilter(experiment_id="x"), SubscriberOutbox())
    both = Subscription(StreamFilter(event_ids=frozenset({"e1"}), experiment_id="x"), SubscriberOutbox())
    nothing = Subscription(StreamFilter(event_ids=frozenset({"unknown"})), SubscriberOutbox())
    for sub in (everything, only_e2, only_x, both, nothing):
        hub.handle(Subscribe(sub))
    rows = (row("e1"), row("e2", exp="x"), row("e1", exp="x"), row("e3", exp="y"))
    hub.publish(rows, 0.0)
    e4 = row("e4")
    hub.publish((e4,), 0.0)  # the doorbell is already rung: never blocks
    assert data_ids(everything.outbox.take()) == [[r.public_id for r in (*rows, e4)]]
    assert data_ids(only_e2.outbox.take()) == [[rows[1].public_id, rows[3].public_id]]
    assert data_ids(only_x.outbox.take()) == [[rows[1].public_id, rows[2].public_id]]
    assert data_ids(both.outbox.take()) == [[rows[2].public_id]]
    assert nothing.outbox.take() == []
    # Doorbells: rung once for a match, not at all otherwise.
    assert everything.bell_recv.receive_nowait() is None
    with pytest.raises(trio.WouldBlock):
        everything.bell_recv.receive_nowait()
    with pytest.raises(trio.WouldBlock):
        nothing.bell_recv.receive_nowait()
    assert hub.published == 5


async def test_hub_encodes_each_row_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(r: DatapointRecord) -> bytes:
        calls.append(r.public_id)
        return encode(r)

    monkeypatch.setattr(hub_module, "encode", counting)
    hub = Hub()
    rows = (row("e1"), row("e2"))
    hub.publish(rows, 0.0)  # no subscribers: no encoding at all
    assert calls == []
    for flt in (StreamFilter(), StreamFilter(event_ids=frozenset({"e1"})), StreamFilter(experiment_id="x")):
        hub.handle(Subscribe(Subscription(flt, SubscriberOutbox())))
    hub.publish(rows, 0.0)
    assert calls == [r.public_id for r in rows]


async def test_hub_drops_closed_outboxes_and_updates_latest() -> None:
    hub = Hub()
    sub = Subscription(StreamFilter(), SubscriberOutbox())
    hub.handle(Subscribe(sub))
    sub.outbox.closed = True
    r = row()
    hub.publish((r,), 0.0)
    assert hub.subscriptions == {}
    assert hub.latest.snapshot() == [r]


async def test_hub_full_outbox_never_blocks_publish() -> None:
    hub = Hub()
    sub = Subscription(StreamFilter(), SubscriberOutbox(max_items=2))
    hub.handle(Subscribe(sub))
    for _ in range(100):
        hub.publish((row(),), 0.0)
    assert sub.outbox.pending == 2
    assert sub.outbox.dropped_total == 98


async def test_run_hub_messages(autojump_clock: trio.testing.MockClock) -> None:
    hub = Hub()
    send, recv = trio.open_memory_channel[HubMessage](10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_hub, recv, hub)
        await send.send(EventCreated("a"))
        await send.send(EventCreated("b"))
        rb, ra = row("b"), row("a")
        await send.send(Committed((rb, ra)))
        latest, seq = Future(), Future()
        await send.send(GetLatest(latest))
        await send.send(GetSeq(seq))
        assert await latest.get() == [ra, rb]
        assert await seq.get() == 1
        await send.send(EventDeleted("a"))
        await send.send(ReloadLatest((ra, rb), 1))
        latest = Future()
        await send.send(GetLatest(latest))
        assert await latest.get() == [rb]
        send.close()


async def test_hub_crash_answers_the_waiting_caller_then_restarts(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = Hub()
    send, recv = trio.open_memory_channel[HubMessage](10)
    real = hub.latest.snapshot
    crashes = [1]

    def snapshot() -> list[DatapointRecord]:
        if crashes:
            crashes.pop()
            raise RuntimeError("bug")
        return real()

    monkeypatch.setattr(hub.latest, "snapshot", snapshot)
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, "test")
        sup.start_permanent("hub", run_hub, recv, hub)
        first = Future()
        await send.send(GetLatest(first))
        with pytest.raises(ActorFailed), trio.fail_after(60):  # before the fix: waited forever
            await first.get()
        second = Future()
        await send.send(GetLatest(second))
        assert await second.get() == []
        nursery.cancel_scope.cancel()


# -- run_subscriber on fake ports


class FakePort:
    """A browser: ``incoming`` is what it sends us; ``stuck`` makes every send block forever."""

    def __init__(self, stuck: bool = False, gate: trio.Event | None = None) -> None:
        self.incoming, self._recv = trio.open_memory_channel[str | bytes](100)
        self.sent: list[tuple[float, Any]] = []
        self.send_calls = 0
        self.closed: tuple[float, int] | None = None
        self.gate = trio.Event() if stuck else gate  # a stuck port's gate is never set

    async def receive(self) -> str | bytes:
        try:
            return await self._recv.receive()
        except trio.EndOfChannel:
            raise ConnectionClosed() from None

    async def send(self, data: str | bytes) -> None:
        self.send_calls += 1
        assert isinstance(data, str)
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append((trio.current_time(), orjson.loads(data)))

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (trio.current_time(), code)

    def frames(self) -> list[Any]:
        return [f for _, f in self.sent]

    def ids(self) -> list[str]:
        batches = [f for f in self.frames() if f["type"] == "datapoints_batch"]
        return [d["public_id"] for f in batches for d in f["datapoints"]]


@attrs.define
class Stream:
    hub: Hub
    hub_send: trio.MemorySendChannel[Any]
    nursery: trio.Nursery
    shutdown: trio.Event
    codes: dict[int, int] = attrs.field(factory=dict)

    async def connect(
        self, port: FakePort, heartbeat: float = 30.0, flt: StreamFilter | None = None,
        outbox: SubscriberOutbox | None = None,
    ) -> Subscription:
        sub = Subscription(flt or StreamFilter(), outbox or SubscriberOutbox())
        await self.hub_send.send(Subscribe(sub))

        async def run() -> None:
            self.codes[sub.id] = await run_subscriber(
                port, sub, self.hub_send, Activity(), heartbeat, self.shutdown
            )

        self.nursery.start_soon(run)
        await trio.sleep(0.01)  # the subscriber is up: its "connected" frame is being sent
        return sub

    async def publish(self, *rows: DatapointRecord) -> None:
        await self.hub_send.send(Committed(rows))


@asynccontextmanager
async def open_stream() -> AsyncIterator[Stream]:
    hub = Hub()
    send, recv = trio.open_memory_channel[Any](1024)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_hub, recv, hub)
        async with trio.open_nursery() as subscribers:
            stream = Stream(hub, send, subscribers, trio.Event())
            yield stream
            stream.shutdown.set()
        nursery.cancel_scope.cancel()


async def test_connected_first_then_data_and_ping_pong(autojump_clock: trio.testing.MockClock) -> None:
    async with open_stream() as s:
        port = FakePort()
        sub = Subscription(StreamFilter(), SubscriberOutbox())
        await s.hub_send.send(Subscribe(sub))
        early = row()
        await s.publish(early)  # published before the subscriber's writer even runs
        await trio.sleep(0.1)
        s.nursery.start_soon(run_subscriber, port, sub, s.hub_send, Activity(), 30.0, s.shutdown)
        await trio.sleep(0.1)
        await port.incoming.send('{"type": "ping"}')
        await port.incoming.send("not json")
        await port.incoming.send('{"type": "subscribe"}')
        await port.incoming.send(b"\xff")
        await trio.sleep(0.1)
        later = row()
        await s.publish(later)
        await trio.sleep(0.1)
        assert [f["type"] for f in port.frames()] == [
            "connected", "datapoints_batch", "pong", "datapoints_batch",
        ]
        assert port.frames()[0] == {"type": "connected", "message": "Subscribed to live datapoint stream."}
        assert port.ids() == [early.public_id, later.public_id]
        assert port.closed is None
    assert port.closed is not None and port.closed[1] == 1001


async def test_stuck_subscriber_closed_1013_others_keep_receiving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_stream() as s:
        t0 = trio.current_time()
        slow, good = FakePort(stuck=True), FakePort()
        slow_sub = await s.connect(slow, outbox=SubscriberOutbox(max_items=50, stuck_timeout=10.0))
        good_sub = await s.connect(good, outbox=SubscriberOutbox(stuck_timeout=10.0))
        published: list[str] = []
        for _ in range(30):  # 15 s of data, 10 rows every 0.5 s
            rows = [row(f"e{i}") for i in range(10)]
            published.extend(r.public_id for r in rows)
            await s.publish(*rows)
            await trio.sleep(0.5)
            # The hub never waits for the stuck socket: the good one gets each commit at once.
            assert good.sent[-1][0] == pytest.approx(trio.current_time() - 0.5)
        assert slow.closed is not None
        assert slow.closed[1] == 1013
        # Stuck for its 10 s timeout (counted from when its first frame was queued).
        assert 10.0 <= slow.closed[0] - t0 <= 10.5
        assert s.codes[slow_sub.id] == 1013
        assert slow.send_calls == 1  # its "connected" frame never completed
        assert slow_sub.id not in s.hub.subscriptions
        assert good.ids() == published  # every reading, in commit order, once
        assert good.closed is None
        assert good_sub.id in s.hub.subscriptions
    assert good.closed is not None and good.closed[1] == 1001
    assert s.codes[good_sub.id] == 1001


async def test_slow_consumer_gets_lag_then_latest(autojump_clock: trio.testing.MockClock) -> None:
    async with open_stream() as s:
        gate = trio.Event()
        port = FakePort(gate=gate)
        await s.connect(port, outbox=SubscriberOutbox(max_items=3, stuck_timeout=10.0))
        rows = [row() for _ in range(10)]
        for r in rows:
            await s.publish(r)
        await trio.sleep(1.0)
        assert port.sent == []  # "connected" is still being sent
        gate.set()
        await trio.sleep(0.1)
        assert port.frames()[1:] == [
            {"type": "lag", "dropped": 7},
            {"type": "datapoints_batch", "datapoints": [orjson.loads(encode(r)) for r in rows[7:]]},
        ]
        assert port.closed is None


async def test_silent_subscriber_closed_1011(autojump_clock: trio.testing.MockClock) -> None:
    async with open_stream() as s:
        t0 = trio.current_time()
        port = FakePort()
        sub = await s.connect(port, heartbeat=1.0)
        for at in (1.0, 2.5):  # pings keep it alive
            await trio.sleep_until(t0 + at)
            await port.incoming.send('{"type":"ping"}')
        await trio.sleep_until(t0 + 4.49)
        assert port.closed is None
        await trio.sleep_until(t0 + 10.0)
        # Last activity at 2.5: closed when the silence reaches two intervals, not polled for.
        assert port.closed == (pytest.approx(t0 + 4.5), 1011)
        assert s.codes[sub.id] == 1011
        assert [f["type"] for f in port.frames()] == ["connected", "pong", "pong"]


async def test_shutdown_closes_1001(autojump_clock: trio.testing.MockClock) -> None:
    async with open_stream() as s:
        ports = [FakePort(), FakePort(stuck=True)]
        subs = [await s.connect(p) for p in ports]
        await trio.sleep(3.0)
        t_shutdown = trio.current_time()
        s.shutdown.set()
        await trio.sleep(0.1)
        for p, sub in zip(ports, subs, strict=True):
            assert p.closed == (pytest.approx(t_shutdown), 1001)
            assert s.codes[sub.id] == 1001


async def test_peer_gone_closes_normally(autojump_clock: trio.testing.MockClock) -> None:
    async with open_stream() as s:
        port = FakePort()
        sub = await s.connect(port)
        port.incoming.close()
        await trio.sleep(0.1)
        assert s.codes[sub.id] == 1000
        assert port.closed is not None and port.closed[1] == 1000
        assert sub.outbox.closed
        assert sub.id not in s.hub.subscriptions
        await s.publish(row())  # nothing is offered to a closed outbox
        await trio.sleep(0.1)
        assert sub.outbox.pending == 0
