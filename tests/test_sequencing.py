"""Publishing in submission order: the sans-IO reorder buffer and the sequencer's publisher."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from webmacs.actors.messages import Committed
from webmacs.actors.sequencing import ReorderBuffer, Sequencer, run_publisher
from webmacs.storage.records import DatapointRecord

TS = datetime(2026, 1, 1, tzinfo=UTC)


def rows(*ids: str) -> tuple[DatapointRecord, ...]:
    return tuple(DatapointRecord(i, 1.0, TS, "ev", None) for i in ids)


def test_in_order_resolutions_release_at_once() -> None:
    buf = ReorderBuffer()
    a, b = buf.take(), buf.take()
    assert buf.resolve(a, rows("a")) == [rows("a")]
    assert buf.resolve(b, rows("b")) == [rows("b")]
    assert buf.outstanding == 0


def test_later_commit_waits_for_earlier_one() -> None:
    buf = ReorderBuffer()
    a, b, c = buf.take(), buf.take(), buf.take()
    assert buf.resolve(c, rows("c")) == []
    assert buf.resolve(b, rows("b")) == []
    assert buf.resolve(a, rows("a")) == [rows("a"), rows("b"), rows("c")]


def test_failed_job_releases_the_ones_behind_it_and_publishes_nothing() -> None:
    buf = ReorderBuffer()
    a, b = buf.take(), buf.take()
    assert buf.resolve(b, rows("b")) == []
    assert buf.resolve(a, ()) == [rows("b")]


@pytest.mark.parametrize("bad", ["twice", "never taken", "released"])
def test_resolving_what_is_not_outstanding_is_a_bug(bad: str) -> None:
    buf = ReorderBuffer()
    a = buf.take()
    buf.take()
    if bad == "twice":
        buf.resolve(a + 1, ())
        with pytest.raises(ValueError):
            buf.resolve(a + 1, ())
    elif bad == "never taken":
        with pytest.raises(ValueError):
            buf.resolve(a + 5, ())
    else:
        buf.resolve(a, ())
        with pytest.raises(ValueError):
            buf.resolve(a, ())


async def test_publisher_forwards_in_order_and_joins_what_is_ready(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seq = Sequencer()
    hub_send, hub_recv = trio.open_memory_channel[Committed](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_publisher, seq, hub_send)
        a, b, c = seq.take(), seq.take(), seq.take()
        seq.resolve(c, rows("c"))
        seq.resolve(b, rows("b1", "b2"))
        await trio.sleep(1)  # nothing released while ``a`` is in flight
        assert seq.ready == type(seq.ready)()
        seq.resolve(a, rows("a"))
        got = await hub_recv.receive()
        assert [d.public_id for d in got.datapoints] == ["a", "b1", "b2", "c"]
        await seq.idle()
        seq.resolve(None, rows("barrier rows are never published"))
        assert not seq.ready
        nursery.cancel_scope.cancel()


async def test_writers_wait_for_room_while_the_hub_is_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seq = Sequencer(max_ready=2)
    for _ in range(4):
        seq.resolve(seq.take(), rows("x"))
    waited = trio.Event()

    async def writer() -> None:
        await seq.room()
        waited.set()

    hub_send, hub_recv = trio.open_memory_channel[Committed](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.sleep(1)
        assert not waited.is_set()  # 4 ready > 2: the writer is held back
        nursery.start_soon(run_publisher, seq, hub_send)
        got = await hub_recv.receive()  # all four joined into one message
        assert len(got.datapoints) == 4
        await waited.wait()
        nursery.cancel_scope.cancel()
