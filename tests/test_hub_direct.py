"""The hub's own writes to idle subscribers (sans-IO: a fake socket, no server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from webmacs.actors.hub import Hub, StreamFilter, Subscription
from webmacs.actors.outbox import SubscriberOutbox
from webmacs.storage.records import DatapointRecord


class FakeSocket:
    """Takes up to ``room`` bytes per write; ``declines`` makes it refuse (a busy send lock)."""

    def __init__(self, room: int = 1 << 20) -> None:
        self.room = room
        self.declines = False
        self.frames: list[bytes] = []
        self.finished: list[bytes] = []

    def write_now(self, payload: bytes) -> bytes | None:
        if self.declines:
            return None
        taken, rest = payload[: self.room], payload[self.room:]
        self.frames.append(taken)
        return rest

    async def finish(self, rest: bytes) -> None:
        self.finished.append(rest)


def row(value: float, event: str = "ev-1") -> DatapointRecord:
    return DatapointRecord(f"dp-{value}", value, datetime(2026, 12, 3, tzinfo=UTC), event, None)


def subscribed(hub: Hub, socket: FakeSocket, flt: StreamFilter | None = None) -> Subscription:
    sub = Subscription(flt or StreamFilter(), SubscriberOutbox())
    sub.direct = socket
    hub.subscriptions[sub.id] = sub
    return sub


def values(payload: bytes) -> list[float]:
    return [r["value"] for r in json.loads(payload)["datapoints"]]


def test_idle_subscribers_get_one_shared_frame_written_by_the_hub() -> None:
    hub = Hub()
    sockets = [FakeSocket() for _ in range(3)]
    subs = [subscribed(hub, s) for s in sockets]
    hub.publish((row(1.0), row(2.0)), now=5.0)
    assert [values(s.frames[0]) for s in sockets] == [[1.0, 2.0]] * 3
    assert sockets[0].frames[0] is sockets[1].frames[0]  # encoded once for all of them
    assert all(s.outbox.pending == 0 and not s.outbox.sending for s in subs)
    assert subs[0].outbox.last_progress == 5.0


def test_filters_choose_per_subscriber_and_empty_choices_write_nothing() -> None:
    hub = Hub()
    wants_a, wants_b = FakeSocket(), FakeSocket()
    subscribed(hub, wants_a, StreamFilter(event_ids=frozenset({"a"})))
    subscribed(hub, wants_b, StreamFilter(event_ids=frozenset({"b"})))
    hub.publish((row(1.0, "a"), row(2.0, "a")), now=1.0)
    assert [values(f) for f in wants_a.frames] == [[1.0, 2.0]] and wants_b.frames == []


def test_a_declining_socket_leaves_the_readings_to_the_writer() -> None:
    hub = Hub()
    socket = FakeSocket()
    socket.declines = True
    sub = subscribed(hub, socket)
    hub.publish((row(1.0),), now=1.0)
    assert sub.outbox.pending == 1 and sub.bell_recv.receive_nowait() is None
    # Readings queued for the writer keep their place: the next batch queues behind them even
    # when the socket would take it now.
    socket.declines = False
    hub.publish((row(2.0),), now=2.0)
    assert socket.frames == []
    assert [values(f) for f in sub.outbox.take()] == [[1.0, 2.0]]


def test_a_frame_taken_in_part_is_finished_by_the_writer_before_anything_else() -> None:
    hub = Hub()
    socket = FakeSocket(room=10)
    sub = subscribed(hub, socket)
    hub.publish((row(1.0),), now=1.0)
    rest = sub.outbox.take_rest()
    assert rest and values(socket.frames[0] + rest) == [1.0]
    assert sub.outbox.sending and sub.bell_recv.receive_nowait() is None
    # While the writer finishes it, the hub queues rather than writes.
    socket.room = 1 << 20
    hub.publish((row(2.0),), now=2.0)
    assert len(socket.frames) == 1 and sub.outbox.pending == 1
    sub.outbox.sent(3.0)
    assert [values(f) for f in sub.outbox.take()] == [[2.0]]


def test_pending_control_frames_and_closed_outboxes_are_never_overtaken() -> None:
    hub = Hub()
    socket = FakeSocket()
    sub = subscribed(hub, socket)
    sub.outbox.control(b'{"type":"pong"}', 0.0)
    hub.publish((row(1.0),), now=1.0)
    assert socket.frames == [] and len(sub.outbox.take()) == 2  # pong, then the data
    sub.outbox.sent(1.0)
    sub.outbox.closed = True
    hub.publish((row(2.0),), now=2.0)
    assert socket.frames == [] and sub.id not in hub.subscriptions


def test_subscribers_without_a_direct_socket_use_their_writer() -> None:
    hub = Hub()
    sub = Subscription(StreamFilter(), SubscriberOutbox())
    hub.subscriptions[sub.id] = sub
    hub.publish((row(1.0),), now=1.0)
    assert [values(f) for f in sub.outbox.take()] == [[1.0]]


def test_a_bus_gap_reaches_an_idle_subscriber_before_the_readings_after_it() -> None:
    """The ``lag`` of a gap precedes the next data: a direct write must not overtake it."""
    from webmacs.actors.hub import Delivered

    hub = Hub(origin="me")
    socket = FakeSocket()
    sub = subscribed(hub, socket)
    hub.deliver(Delivered("other", (row(76.0),), missed=45), now=5.0)
    assert socket.frames == []  # left to the writer, behind the lag frame
    lag, data = sub.outbox.take()
    assert json.loads(lag) == {"type": "lag", "dropped": 45}
    assert values(data) == [76.0]
