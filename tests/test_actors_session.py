"""Controller sessions (/ws/controller/telemetry) on a fake port, with a fake submit, in virtual time."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing

from webmacs.actors.controller_session import SHUTDOWN_GRACE_S, run_controller_session
from webmacs.actors.messages import IngestFailed, Ticket
from webmacs.actors.ports import Activity, ConnectionClosed
from webmacs.storage.records import DatapointRecord, NewReading, Rejection

EV = "3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23"
_ids = itertools.count(1)


class FakePort:
    """A controller: ``incoming`` is what it sends; ``receive_calls`` counts our reads."""

    def __init__(self) -> None:
        self.incoming, self._recv = trio.open_memory_channel[str | bytes](1000)
        self.receive_calls = 0
        self.sent: list[tuple[float, Any]] = []
        self.closed: tuple[float, int] | None = None

    async def receive(self) -> str | bytes:
        self.receive_calls += 1
        try:
            return await self._recv.receive()
        except trio.EndOfChannel:
            raise ConnectionClosed() from None

    async def send(self, data: str | bytes) -> None:
        assert isinstance(data, str)
        self.sent.append((trio.current_time(), orjson.loads(data)))
        await trio.sleep(0)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (trio.current_time(), code)

    def frames(self) -> list[Any]:
        return [f for _, f in self.sent]


class FakeSubmit:
    """The router's side: hands back a ticket per frame, completed by the test."""

    def __init__(self) -> None:
        self.submitted: list[tuple[tuple[NewReading, ...], Ticket]] = []
        self.blocked_for = 0.0  # how long the router's inbox stays full

    async def __call__(self, readings: tuple[NewReading, ...], frame: object = None) -> Ticket:
        await trio.sleep(self.blocked_for)
        ticket = Ticket(1)
        self.submitted.append((readings, ticket))
        await trio.sleep(0)
        return ticket

    def complete(self, i: int, rejected: list[Rejection] | None = None) -> None:
        readings, ticket = self.submitted[i]
        stored = [DatapointRecord(f"dp-{next(_ids)}", r.value, r.timestamp, r.event_public_id, None)
                  for r in readings if not rejected or r.index not in {x.index for x in rejected}]
        ticket.complete(stored, rejected or [])

    def complete_all(self) -> None:
        for i, (_, ticket) in enumerate(self.submitted):
            if not ticket.done:
                self.complete(i)


def dp(value: float = 1.0, event: str = EV) -> dict[str, Any]:
    return {"value": value, "event_public_id": event}


def frame(seq: int | None = None, n: int = 1, **extra: Any) -> str:
    body: dict[str, Any] = {"datapoints": [dp(float(i)) for i in range(n)], **extra}
    if seq is not None:
        body["seq"] = seq
    return orjson.dumps(body).decode()


def ack(seq: int, accepted: int = 1, rejected: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "ack", "seq": seq, "accepted": accepted, "rejected": rejected or []}


def err(seq: int | None, detail: str) -> dict[str, Any]:
    return {"type": "error", "seq": seq, "detail": detail}


@attrs.define
class Session:
    port: FakePort
    submit: FakeSubmit
    shutdown: trio.Event
    code: list[int]

    async def send(self, *frames: str | bytes) -> None:
        for f in frames:
            await self.port.incoming.send(f)
        await trio.sleep(0.01)


@asynccontextmanager
async def open_session(
    heartbeat: float = 30.0, max_batch: int = 10, max_inflight: int = 8,
) -> AsyncIterator[Session]:
    port, submit, shutdown, code = FakePort(), FakeSubmit(), trio.Event(), []

    async def run() -> None:
        code.append(await run_controller_session(
            port, submit, Activity(), heartbeat, shutdown, max_batch, max_inflight=max_inflight,
        ))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        yield Session(port, submit, shutdown, code)
        submit.complete_all()
        if not code:
            port.incoming.close()


async def test_v2_frames_never_get_a_reply(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session() as s:
        await s.send(frame(n=3), frame(n=0), "not json", "[]", frame(n=1, datapoints="x"),
                     frame(n=11), b"\x00binary", frame(n=2))
        assert len(s.submit.submitted) == 2
        s.submit.complete(0)
        s.submit.submitted[1][1].fail(IngestFailed())
        await trio.sleep(1.0)
        # Items with problems: still no reply to a client that never sent seq.
        await s.send(orjson.dumps({"datapoints": [dp(), {"value": "x", "event_public_id": EV}]}).decode())
        s.submit.complete_all()
        await trio.sleep(1.0)
        assert s.port.sent == []
        assert s.port.closed is None
    assert s.code == [1000]
    assert s.port.sent == []


async def test_acks_in_frame_order_when_tickets_complete_out_of_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_session() as s:
        await s.send(frame(1), frame(2, n=2), frame(3))
        assert [len(r) for r, _ in s.submit.submitted] == [1, 2, 1]
        s.submit.complete(2)
        s.submit.complete(1)
        await trio.sleep(1.0)
        assert s.port.sent == []  # frame 1 is not committed yet
        s.submit.complete(0)
        await trio.sleep(0.01)
        assert s.port.frames() == [ack(1), ack(2, 2), ack(3)]


async def test_ack_sent_only_after_commit(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session() as s:
        t0 = trio.current_time()
        await s.send(frame(42))
        await trio.sleep_until(t0 + 5.0)
        assert s.port.sent == []
        s.submit.complete(0)
        await trio.sleep(0.01)
        assert s.port.sent == [(pytest.approx(t0 + 5.0), ack(42))]


async def test_rejected_items_listed_in_ack(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session() as s:
        body = {"seq": 7, "datapoints": [
            dp(1.0), {"value": "abc", "event_public_id": EV}, dp(2.0, "gone"), 5, dp(3.0),
        ]}
        await s.send(orjson.dumps(body).decode())
        readings, _ = s.submit.submitted[0]
        assert [r.index for r in readings] == [0, 2, 4]  # bad items never reach the router
        s.submit.complete(0, [Rejection(2, "gone", "Event not found.", input="gone")])
        await trio.sleep(0.01)
        assert s.port.frames() == [ack(7, 2, [
            {"index": 1, "event_public_id": EV,
             "detail": "Input should be a finite number or a string holding one."},
            {"index": 2, "event_public_id": "gone", "detail": "Event not found."},
            {"index": 3, "event_public_id": None, "detail": "Input should be a valid JSON object."},
        ])]


async def test_every_item_rejected_still_acked(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session() as s:
        body = {"seq": 3, "datapoints": [{"value": None, "event_public_id": EV}]}
        await s.send(orjson.dumps(body).decode())
        assert s.submit.submitted == []
        missing = {"index": 0, "event_public_id": EV, "detail": "Field required."}
        assert s.port.frames() == [ack(3, 0, [missing])]


@pytest.mark.parametrize(
    ("raw", "reply"),
    [
        ("{not json", err(None, "Malformed JSON frame.")),
        (b'{"seq": 5, "datapoints": []}', err(None, "Malformed JSON frame.")),
        ('{"seq": 5, "datapoints": [{"value": NaN, "event_public_id": "x"}]}',
         err(None, "Malformed JSON frame.")),
        ("[1, 2]", err(None, "Frame must be a JSON object.")),
        ('{"seq": "5", "datapoints": []}', err(None, "Field 'seq' must be an integer.")),
        ('{"seq": 5.5, "datapoints": []}', err(None, "Field 'seq' must be an integer.")),
        ('{"seq": false, "datapoints": []}', err(None, "Field 'seq' must be an integer.")),
        ('{"seq": 5}', err(5, "Field 'datapoints' must be a list.")),
        ('{"seq": 5, "datapoints": {"value": 1}}', err(5, "Field 'datapoints' must be a list.")),
        (frame(5, n=11), err(5, "Batch too large: 11 datapoints (limit 10).")),
    ],
)
async def test_error_frames(autojump_clock: trio.testing.MockClock, raw: str | bytes, reply: Any) -> None:
    async with open_session(max_batch=10) as s:
        await s.send(frame(1, n=0))  # this connection reads its socket
        await s.send(raw)
        await s.send(frame(2))  # the connection stays open and later frames work
        s.submit.complete_all()
        await trio.sleep(0.01)
        assert s.port.frames() == [ack(1, 0), reply, ack(2)]
        assert s.port.closed is None
    assert len(s.submit.submitted) == 1


@pytest.mark.parametrize(
    ("raw", "reply"),
    [
        ('{"seq": "abc"}', err(None, "Field 'seq' must be an integer.")),
        ('{"seq": 9}', err(9, "Field 'datapoints' must be a list.")),
        (frame(9, n=4), err(9, "Batch too large: 4 datapoints (limit 3).")),
    ],
)
async def test_first_frame_with_seq_gets_error(
    autojump_clock: trio.testing.MockClock, raw: str, reply: Any
) -> None:
    async with open_session(max_batch=3) as s:
        await s.send(raw)
        assert s.port.frames() == [reply]


async def test_seq_less_bad_frames_answered_once_seq_was_used(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session() as s:
        await s.send("garbage")  # before any seq: no reply
        await s.send(frame(1))
        await s.send("garbage", "42", frame(n=1, datapoints=None), frame(n=12))
        await s.send(frame(n=1))  # seq-less good frame: nothing to ack
        s.submit.complete_all()
        await trio.sleep(0.01)
        assert s.port.frames() == [
            ack(1),
            err(None, "Malformed JSON frame."),
            err(None, "Frame must be a JSON object."),
            err(None, "Field 'datapoints' must be a list."),
            err(None, "Batch too large: 12 datapoints (limit 10)."),
        ]


async def test_empty_datapoints_with_seq_acked(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session() as s:
        await s.send(frame(0, n=0), frame(n=0))
        assert s.submit.submitted == []
        assert s.port.frames() == [ack(0, 0)]


async def test_error_frames_keep_frame_order(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session() as s:
        await s.send(frame(1), '{"seq": 2}', frame(3))
        await trio.sleep(1.0)
        assert s.port.sent == []  # the error for 2 waits for the ack of 1
        s.submit.complete(1)
        s.submit.complete(0)
        await trio.sleep(0.01)
        assert s.port.frames() == [ack(1), err(2, "Field 'datapoints' must be a list."), ack(3)]


async def test_ingest_failed_becomes_error_frame(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session() as s:
        await s.send(frame(1), frame(2), frame(3))
        s.submit.complete(0)
        s.submit.submitted[1][1].fail(IngestFailed())
        s.submit.submitted[2][1].fail(IngestFailed("Server shutting down."))
        await trio.sleep(0.01)
        assert s.port.frames() == [
            ack(1), err(2, "Database unavailable."), err(3, "Server shutting down."),
        ]
        assert s.port.closed is None


async def test_backpressure_stops_reading(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session(max_inflight=2, heartbeat=1000.0) as s:
        await s.send(*[frame(i) for i in range(20)])
        await trio.sleep(100.0)
        # Exactly max_inflight frames are read and unanswered; then the socket is left unread.
        reads, submitted = s.port.receive_calls, len(s.submit.submitted)
        assert (reads, submitted) == (2, 2)
        await trio.sleep(100.0)
        assert s.port.receive_calls == reads  # no reading while storage is behind
        assert s.port.sent == []
        s.submit.complete(0)
        await trio.sleep(0.01)
        assert s.port.frames() == [ack(0)]
        assert (s.port.receive_calls, len(s.submit.submitted)) == (3, 3)
        for i in range(1, 20):
            s.submit.complete(i)
            await trio.sleep(0.01)
        assert s.port.frames() == [ack(i) for i in range(20)]  # nothing dropped, in order
        assert s.port.receive_calls == 21  # and now waiting for frame 21


async def test_heartbeat_silence_closes_1011(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session(heartbeat=1.0) as s:
        t0 = trio.current_time()
        for at in (1.0, 2.5):
            await trio.sleep_until(t0 + at)
            await s.port.incoming.send(frame())  # any frame counts as activity
        await trio.sleep_until(t0 + 4.49)
        assert s.port.closed is None
        await trio.sleep_until(t0 + 10.0)
        # Last activity at 2.5: closed when the silence reaches two intervals, not polled for.
        assert s.port.closed == (pytest.approx(t0 + 4.5), 1011)
        assert s.code == [1011]


async def test_shutdown_stops_reading_delivers_pending_acks_then_1001(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_session() as s:
        t0 = trio.current_time()
        await s.send(frame(1), frame(2))
        s.shutdown.set()
        await trio.sleep(0.01)
        reads = s.port.receive_calls
        await s.send(frame(3))  # arrives after shutdown: not read
        await trio.sleep(5.0)
        assert s.port.receive_calls == reads
        assert len(s.submit.submitted) == 2
        assert s.port.closed is None  # still waiting for the commits
        assert trio.current_time() - t0 == pytest.approx(5.03)
        s.submit.complete(1)
        s.submit.complete(0)
        await trio.sleep(0.01)
        assert s.port.frames() == [ack(1), ack(2)]
        assert s.port.closed == (pytest.approx(t0 + 5.03), 1001)
        assert s.code == [1001]


async def test_shutdown_under_backpressure_acks_every_submitted_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_session(max_inflight=1, heartbeat=1000.0) as s:
        await s.send(*[frame(i) for i in range(1, 6)])
        submitted = len(s.submit.submitted)
        assert submitted == 1  # max_inflight frames read and submitted, no more
        s.shutdown.set()
        await trio.sleep(0.01)
        s.submit.complete_all()
        await trio.sleep(0.01)
        assert s.code == [1001]
        assert s.port.frames() == [ack(i) for i in range(1, submitted + 1)]


async def test_peer_disconnect_closes_normally(autojump_clock: trio.testing.MockClock) -> None:
    async with open_session() as s:
        await s.send(frame(1))
        s.port.incoming.close()
        await trio.sleep(0.01)
        assert s.code == [1000]
        assert s.port.closed is not None and s.port.closed[1] == 1000


async def test_frame_waiting_long_for_a_full_router_still_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The router's inbox full for 60 s (a large experiment delete): no time limit applies
    outside shutdown, so the frame is submitted and acked, and its in-flight slot comes back."""
    async with open_session(max_inflight=1, heartbeat=1000.0) as s:
        s.submit.blocked_for = 60.0
        await s.send(frame(1))
        await trio.sleep(61)
        assert len(s.submit.submitted) == 1
        s.submit.blocked_for = 0.0
        s.submit.complete_all()
        await s.send(frame(2))
        s.submit.complete_all()
        await trio.sleep(0.01)
        assert s.port.frames() == [ack(1), ack(2)]


async def test_shutdown_bounds_a_blocked_submission_and_answers_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_session(max_inflight=2, heartbeat=1000.0) as s:
        s.submit.blocked_for = 1000.0
        await s.send(frame(7))
        await trio.sleep(5)
        t0 = trio.current_time()
        s.shutdown.set()
        await trio.sleep(SHUTDOWN_GRACE_S + 1)
        assert s.code == [1001]
        assert s.port.closed is not None and s.port.closed[0] - t0 <= SHUTDOWN_GRACE_S + 0.1
        assert s.submit.submitted == []  # never submitted, so...
        assert s.port.frames() == [err(7, "Server shutting down.")]  # ...answered, not acked


async def test_closing_summary_counts_storage_rejections_without_a_line_per_frame(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    """A v2 controller streaming to a deleted event: ten frames a second rejected at storage.
    No INFO line per frame; the closing summary counts every rejected item, parse-time or not."""
    caplog.set_level("INFO", logger="webmacs.actors.controller_session")
    async with open_session() as s:
        for i in range(10):
            bad = {"value": "x", "event_public_id": EV}
            await s.send(orjson.dumps({"datapoints": [dp(1.0, "gone"), bad]}).decode())
            s.submit.complete(i, [Rejection(0, "gone", "Event not found.", input="gone")])
        await trio.sleep(0.01)
        s.port.incoming.close()
    lines = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert lines == ["controller: closed (10 frames, 0 readings stored, 20 rejected, 0 bad frames, "
                     "0 resends answered from their first ack)"]
