"""The commander actor and a controller session's command side, against a fake store and a fake
socket, in virtual time (autojump clock)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import orjson
import trio
import trio.testing
from test_actors_session import FakePort, FakeSubmit, ack, err, frame

from webmacs.actors.commander import Commander, LocalRelay, deliver, run_commander
from webmacs.actors.controller_session import run_controller_session
from webmacs.actors.ports import Activity
from webmacs.commands import (
    BAD_COMMAND_ID,
    BAD_EVENTS,
    Candidate,
    CommandBook,
    CommandOutbox,
    CommandRecord,
)
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.records import DatapointRecord

A, B = str(uuid.uuid4()), str(uuid.uuid4())
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class FakeStore:
    """The commands table in memory; ``failures`` makes the next creates fail."""

    def __init__(self) -> None:
        self.rows: list[CommandRecord] = []
        self.creates: list[list[Candidate]] = []
        self.failures = 0
        self.acks: list[tuple[str, str]] = []

    async def create(self, candidates: Sequence[Candidate], now: datetime,
                     ttl: timedelta) -> list[CommandRecord]:
        await trio.sleep(0.01)  # a round trip to the database
        self.creates.append(list(candidates))
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable("down")
        made = [CommandRecord(str(uuid.uuid4()), t, c.row.event_public_id, c.row.value,
                              c.row.timestamp) for c in candidates for t in c.targets]
        self.rows.extend(made)
        return made

    async def pending(self, target: str, event_ids: Sequence[str], now: datetime,
                      limit: int = 1000) -> list[CommandRecord]:
        await trio.sleep(0.01)
        return [r for r in self.rows if r.target == target and r.event_public_id in event_ids]

    async def ack(self, target: str, command_id: str) -> bool:
        self.acks.append((target, command_id))
        before = len(self.rows)
        self.rows = [r for r in self.rows if not (r.public_id == command_id and r.target == target)]
        return len(self.rows) < before


def row(event: str = A, value: float = 1.0) -> DatapointRecord:
    return DatapointRecord(str(uuid.uuid4()), value, T0, event, None)


def command(cmd: CommandRecord) -> dict[str, Any]:
    return {"type": "command", "id": cmd.public_id, "event_public_id": cmd.event_public_id,
            "value": cmd.value, "timestamp": "2026-12-03T12:00:00.000000+00:00"}


def hello(*events: str) -> str:
    return orjson.dumps({"type": "hello", "events": list(events)}).decode()


def command_ack(command_id: Any) -> str:
    return orjson.dumps({"type": "command_ack", "id": command_id}).decode()


@attrs.define
class Rig:
    store: FakeStore
    commander: Commander
    port: FakePort
    submit: FakeSubmit
    identity: str

    async def send(self, *frames: str) -> None:
        for f in frames:
            await self.port.incoming.send(f)
        await trio.sleep(0.1)


@asynccontextmanager
async def open_rig(
    identity: str = "c:rig", port: FakePort | None = None, outbox: int = 10_000,
) -> AsyncIterator[Rig]:
    """A commander (running) and one controller session with commands enabled."""
    store, book = FakeStore(), CommandBook()
    commander = Commander(book, store, LocalRelay(book), timedelta(seconds=300))
    port = port or FakePort()
    submit = FakeSubmit()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_commander, commander)

        async def session() -> None:
            await run_controller_session(port, submit, Activity(), 30.0, trio.Event(), 10,
                                         commands=lambda: commander.open_session(identity, outbox))

        nursery.start_soon(session)
        yield Rig(store, commander, port, submit, identity)
        port.incoming.close()
        await trio.sleep(1)
        nursery.cancel_scope.cancel()


async def test_commander_stores_in_order_retrying_while_the_database_is_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    book = CommandBook()
    store = FakeStore()
    store.failures = 2
    commander = Commander(book, store, LocalRelay(book), timedelta(seconds=300))
    book_outbox = CommandOutbox()
    entry = book.attach("c:one", book_outbox)
    book.declare(entry, [A])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_commander, commander)
        first, second = row(value=1.0), row(value=0.0)
        commander.on_publish((first, row(B)))
        commander.on_publish((second,))
        with trio.fail_after(30):
            await commander.idle()
        nursery.cancel_scope.cancel()
    # Two failed attempts of the queued head, then both rows in one transaction, in order.
    assert [len(c) for c in store.creates] == [2, 2, 2]
    assert [c.row for c in store.creates[-1]] == [first, second]
    assert [orjson.loads(f)["value"] for f in book_outbox.take()] == [1.0, 0.0]
    assert commander.metrics()["stored"] == 2


async def test_hello_redelivers_pending_then_live_commands_flow_and_acks_reach_the_store(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig() as rig:
        old = CommandRecord(str(uuid.uuid4()), "c:rig", A, 5.0, T0)
        rig.store.rows += [old, CommandRecord(str(uuid.uuid4()), "c:other", A, 6.0, T0),
                           CommandRecord(str(uuid.uuid4()), "c:rig", B, 7.0, T0)]
        await rig.send(hello(A))  # no seq yet: commands are sent anyway
        assert rig.port.frames() == [command(old)]
        rig.commander.on_publish((row(A, 1.0), row(B, 2.0)))
        await trio.sleep(1)
        live = rig.store.rows[-1]
        assert (live.event_public_id, live.value) == (A, 1.0)  # B: not declared, no command
        assert rig.port.frames() == [command(old), command(live)]
        await rig.send(command_ack(old.public_id), command_ack(live.public_id), frame(1, n=0))
        assert rig.store.acks == [("c:rig", old.public_id), ("c:rig", live.public_id)]
        assert rig.port.frames()[-1] == ack(1, accepted=0)
        assert [r.target for r in rig.store.rows] == ["c:other", "c:rig"]
        # A second hello resynchronises: what is still pending comes again.
        await rig.send(hello(A, B))
        assert rig.port.frames()[-1]["value"] == 7.0
    assert rig.commander.book.sessions == {}  # the session detached when it closed


async def test_bad_control_frames_get_error_frames_without_seq_and_the_session_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig() as rig:
        await rig.send(orjson.dumps({"type": "hello", "events": "x"}).decode(), command_ack(3),
                       frame(1, n=0))
        assert rig.port.frames()[:2] == [err(None, BAD_EVENTS), err(None, BAD_COMMAND_ID)]
        assert rig.port.frames()[2]["type"] == "ack"


async def test_a_database_outage_during_hello_or_ack_is_an_error_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig() as rig:
        async def down(*args: Any) -> Any:
            raise DatabaseUnavailable("down")

        rig.store.pending = down  # type: ignore[method-assign]
        rig.store.ack = down  # type: ignore[method-assign]
        await rig.send(hello(A), command_ack(A))
        assert rig.port.frames() == [err(None, "Database unavailable.")] * 2
        # The declaration holds: live commands still come.
        rig.commander.on_publish((row(A),))
        await trio.sleep(1)
        assert rig.port.frames()[-1]["type"] == "command"


class StuckPort(FakePort):
    """A controller that never reads: every send blocks."""

    async def send(self, data: str | bytes) -> None:
        await trio.sleep_forever()


async def test_a_controller_that_never_reads_blocks_nobody_and_its_outbox_stays_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig(port=StuckPort(), outbox=256) as rig:
        await rig.send(hello(A))
        for i in range(2000):  # far more than the reply channel (64) and the outbox (256)
            rig.commander.on_publish((row(A, float(i)),))
        with trio.fail_after(60):
            await rig.commander.idle()  # every command stored: nothing waited for the socket
        await trio.sleep(1)
        (link,) = [e.outbox for e in rig.commander.book.sessions.values()]
        assert len(link) <= link.max_items
        assert link.dropped > 0
        assert len(rig.store.rows) == 2000  # still pending in the store for the next hello
        # The session still reads frames (its acks wait behind the stuck writer).
        before = rig.port.receive_calls
        await rig.send(frame(None))
        assert rig.port.receive_calls > before


def test_deliver_offers_once_per_session_and_id() -> None:
    book = CommandBook()
    outboxes = [CommandOutbox() for _ in range(2)]
    rings: list[int] = []
    for i, box in enumerate(outboxes):
        entry = book.attach("c:one", box)
        entry.wake = lambda i=i: rings.append(i)  # type: ignore[misc]
        book.declare(entry, [A])
    cmd = CommandRecord(B, "c:one", A, 1.0, T0)
    assert deliver(book, [cmd, cmd, CommandRecord(A, "c:two", A, 1.0, T0)]) == 2
    assert rings == [0, 1]
