"""Fan-out gives way when the event loop is behind (sans-IO pacer, outbox shedding, the hub's
and the subscriber writer's use of them, in virtual time)."""

from __future__ import annotations

import trio
import trio.testing
from test_actors_stream import FakePort
from test_hub_direct import FakeSocket, row, subscribed

from webmacs.actors.hub import Hub, StreamFilter, Subscription, encode
from webmacs.actors.outbox import SubscriberOutbox
from webmacs.actors.pacing import BUSY_FRAME_ITEMS, MAX_PAUSE_S, FanoutPacer
from webmacs.actors.ports import Activity
from webmacs.actors.subscriber import run_subscriber


def test_the_pacer_follows_the_smoothed_lag() -> None:
    pacer = FanoutPacer()
    assert not pacer.busy and pacer.pause() == 0.0 and pacer.keep() is None
    pacer.observe(0.2)  # one late wake-up alone: smoothed to 40 ms, behind
    assert pacer.busy and 0 < pacer.pause() <= MAX_PAUSE_S and pacer.keep() == BUSY_FRAME_ITEMS
    for _ in range(50):
        pacer.observe(0.0)  # the loop keeps up again
    assert not pacer.busy and pacer.pause() == 0.0
    for _ in range(50):
        pacer.observe(5.0)
    assert pacer.pause() == MAX_PAUSE_S  # bounded: a subscriber still hears every second


def test_shedding_keeps_the_newest_and_counts_the_rest() -> None:
    box = SubscriberOutbox()
    box.offer([encode(row(float(i))) for i in range(10)], 0.0)
    box.shed(3)
    frames = box.take()
    assert frames[0] == b'{"type":"lag","dropped":7}'
    assert b'"value":7.0' in frames[1] and b'"value":6.0' not in frames[1]
    box.shed(3)  # nothing pending: nothing dropped
    assert box.dropped_total == 7


def test_a_busy_hub_writes_nothing_itself() -> None:
    hub = Hub()
    socket = FakeSocket()
    sub = subscribed(hub, socket)
    hub.pacer.observe(1.0)
    hub.publish((row(1.0),), now=1.0)
    assert socket.frames == [] and sub.outbox.pending == 1  # left to the (pausing) writer


async def test_a_behind_loop_makes_writers_pause_and_send_the_newest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pacer = FanoutPacer()
    port = FakePort()
    sub = Subscription(StreamFilter(), SubscriberOutbox())
    hub_send, _hub_recv = trio.open_memory_channel[object](10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_subscriber, port, sub, hub_send, Activity(), 30.0, trio.Event(),
                           pacer)
        await trio.sleep(0.01)
        pacer.lag = 0.1  # behind: pause 0.8 s after each send, the newest 100 per frame
        start = trio.current_time()
        sub.outbox.offer([encode(row(0.0))], start)
        sub.ring()
        await trio.sleep(0.01)  # sent at once; now the writer pauses
        for i in range(1, 301):
            sub.outbox.offer([encode(row(float(i)))], trio.current_time())
            sub.ring()
            await trio.sleep(0.001)
        await trio.sleep(1.0)
        kinds = [(t - start, f["type"]) for t, f in port.sent[1:]]  # after "connected"
        assert [k for _, k in kinds] == ["datapoints_batch", "lag", "datapoints_batch"]
        assert kinds[1][0] >= 0.8  # the second send waited for the pause
        assert port.sent[2][1] == {"type": "lag", "dropped": 200}
        assert [r["value"] for r in port.sent[3][1]["datapoints"]] == [float(i) for i in range(201, 301)]
        nursery.cancel_scope.cancel()
