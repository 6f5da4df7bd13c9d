"""Commands across instances (issue 9): two actor trees on one bus and one PostgreSQL database.

A datapoint committed on tree A reaches, exactly once, a controller session on tree B that
declared its event; the controller on A that wrote it is not echoed; an unacked command is
redelivered when its controller reconnects to the other tree, and an ack on either removes it.
Run on the in-process bus (two buses on one broker) and on NATS (skipped, with the reason, when
unreachable). Sessions are real controller sessions on fake sockets (no wire), real clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import test_bus_wiring
import trio
from conftest import _empty_pg, make_settings
from test_actors_session import FakePort
from test_bus_wiring import Opener
from test_commands_actors import command_ack, hello

from webmacs.actors.controller_session import run_controller_session
from webmacs.actors.hub import Delivered, Hub
from webmacs.actors.messages import Committed, Ticket
from webmacs.actors.ports import Activity
from webmacs.actors.tree import ActorTree, open_actor_tree
from webmacs.commands import controller_identity
from webmacs.frame_ids import FrameTag
from webmacs.services import Services, open_services
from webmacs.storage.records import DatapointRecord, EventFields, NewReading

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

open_instance_bus = test_bus_wiring.open_instance_bus  # the same fixture: both buses


def row(event: str, n: int) -> DatapointRecord:
    return DatapointRecord(f"p{event}{n}", float(n), T0 + timedelta(seconds=n), event, None)


# -- the hub alone: every committed batch reaches the commander once


async def test_the_commander_hears_own_batches_from_committed_and_others_from_the_bus() -> None:
    hub = Hub(origin="me")
    heard: list[tuple[DatapointRecord, ...]] = []
    hub.on_publish = heard.append
    mine, theirs = (row("a", 1),), (row("a", 2),)
    hub.handle(Committed(mine))
    hub.handle(Delivered("me", mine))  # the bus echo of our own batch: not a second time
    hub.handle(Delivered("other", theirs))
    assert heard == [mine, theirs]


async def test_without_a_bus_the_commander_hears_committed_batches() -> None:
    hub = Hub()
    heard: list[tuple[DatapointRecord, ...]] = []
    hub.on_publish = heard.append
    hub.handle(Committed((row("a", 1),)))
    assert heard == [(row("a", 1),)]


# -- two instances

@pytest.fixture
def shared_pg(pg_database_url: str) -> str:
    _empty_pg(pg_database_url)
    return pg_database_url


class Controller:
    """A controller session (real session actor, fake socket) on one tree."""

    def __init__(self, tree: ActorTree, controller_id: str, nursery: trio.Nursery) -> None:
        self.tree = tree
        self.identity = controller_identity(controller_id, "unused")
        self.port = FakePort()
        self.done = trio.Event()

        async def submit(readings: tuple[NewReading, ...], tag: FrameTag | None) -> Ticket:
            return await tree.ingest(readings, tag, origin=self.identity)

        async def session() -> None:
            try:
                await run_controller_session(
                    self.port, submit, Activity(), 30.0, trio.Event(), 100,
                    controller_id=controller_id,
                    commands=lambda: tree.commander.open_session(self.identity))
            finally:
                self.done.set()

        nursery.start_soon(session)

    async def send(self, body: str) -> None:
        await self.port.incoming.send(body)

    async def telemetry(self, seq: int, event: str, value: float) -> None:
        """One reading, waited for until acked (committed)."""
        await self.send(orjson.dumps(
            {"seq": seq, "datapoints": [{"event_public_id": event, "value": value}]}).decode())
        await until(lambda: any(f.get("type") == "ack" and f.get("seq") == seq
                                for f in self.port.frames()))

    def commands(self) -> list[dict[str, Any]]:
        return [f for f in self.port.frames() if f.get("type") == "command"]

    async def leave(self) -> None:
        self.port.incoming.close()
        with trio.fail_after(10):
            await self.done.wait()


async def until(condition: Callable[[], bool]) -> None:
    """Wait (a deadline, not a timing assertion) until ``condition`` holds."""
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.01)


async def until_count(svc: Services, target: str, n: int) -> None:
    with trio.fail_after(10):
        while await svc.repos.commands.count(target) != n:
            await trio.sleep(0.01)


@asynccontextmanager
async def two_instances(
    open_bus: Opener, url: str, tmp_path: Path
) -> AsyncIterator[tuple[Services, ActorTree, ActorTree, trio.Nursery]]:
    subject = f"test.webmacs.{tmp_path.name}".replace("-", "_")
    settings = make_settings(url, tmp_path, WEBMACS_BUS_SUBJECT=subject)
    bus_a, bus_b = await open_bus(), await open_bus()
    async with (open_services(settings) as svc_a, open_services(settings) as svc_b,
                open_actor_tree(svc_a, bus=bus_a) as a, open_actor_tree(svc_b, bus=bus_b) as b,
                trio.open_nursery() as nursery):
        yield svc_a, a, b, nursery
        nursery.cancel_scope.cancel()


async def test_a_command_follows_its_controller_across_instances(
    open_instance_bus: Opener, shared_pg: str, tmp_path: Path
) -> None:
    async with two_instances(open_instance_bus, shared_pg, tmp_path) as (svc, a, b, nursery):
        event = (await svc.repos.events.create(
            EventFields(name="valve", min_value=0, max_value=100, unit="%", type="actuator"),
            None)).public_id
        writer = Controller(a, "writer", nursery)
        reader = Controller(b, "reader", nursery)
        await writer.send(hello(event))
        await reader.send(hello(event))
        await until(lambda: len(a.commander.book.sessions) == len(b.commander.book.sessions) == 1)

        # The writer on A reports 42 as telemetry; then a REST-like write (no identity) of 43.
        await writer.telemetry(1, event, 42.0)
        ticket = await a.ingest((NewReading(0, 43.0, event, None),))
        assert (await ticket.wait()).accepted == 1

        # B commands its reader with both, in order, once each (B's commander does it in
        # order, so after 43 nothing of 42 is still on its way there).
        await until(lambda: [c["value"] for c in reader.commands()] == [42.0, 43.0])
        await until(lambda: [c["value"] for c in writer.commands()] == [43.0])
        await a.commander.idle()
        await b.commander.idle()
        assert [c["value"] for c in reader.commands()] == [42.0, 43.0]
        assert [c["value"] for c in writer.commands()] == [43.0]  # its own 42 not echoed
        assert await svc.repos.commands.count(reader.identity) == 2
        assert await svc.repos.commands.count(writer.identity) == 1
        assert a.commander.stored == 1 and b.commander.stored == 2  # each commands its own

        # The reader acks 43 on B, leaves, and says hello on A: 42 comes again, from the store.
        first, second = reader.commands()
        await reader.send(command_ack(second["id"]))
        await until_count(svc, reader.identity, 1)
        await reader.leave()
        again = Controller(a, "reader", nursery)
        await again.send(hello(event))
        await until(lambda: again.commands() == [first])
        await again.send(command_ack(first["id"]))
        await until_count(svc, reader.identity, 0)

        # Its identity moved to A: a write on B now reaches it there, not through B.
        ticket = await b.ingest((NewReading(0, 44.0, event, None),))
        assert (await ticket.wait()).accepted == 1
        await until(lambda: [c["value"] for c in again.commands()] == [42.0, 44.0])
        await until(lambda: [c["value"] for c in writer.commands()] == [43.0, 44.0])
        for tree in (a, b):
            await tree.commander.idle()
        assert b.commander.stored == 2  # B has no controller left: nothing created there
        await writer.leave()
        await again.leave()


async def test_one_controller_id_on_two_instances_gets_its_own_write_on_the_other(
    open_instance_bus: Opener, shared_pg: str, tmp_path: Path
) -> None:
    """The documented edge: writers are known only where they wrote (the bus carries none)."""
    async with two_instances(open_instance_bus, shared_pg, tmp_path) as (svc, a, b, nursery):
        event = (await svc.repos.events.create(
            EventFields(name="valve", min_value=0, max_value=100, unit="%", type="actuator"),
            None)).public_id
        on_a, on_b = Controller(a, "twice", nursery), Controller(b, "twice", nursery)
        for session in (on_a, on_b):
            await session.send(hello(event))
        await until(lambda: len(a.commander.book.sessions) == len(b.commander.book.sessions) == 1)
        await on_a.telemetry(1, event, 7.0)
        await until(lambda: [c["value"] for c in on_b.commands()] == [7.0])
        for tree in (a, b):
            await tree.commander.idle()
        assert on_a.commands() == []  # no echo where it wrote
        await on_a.leave()
        await on_b.leave()
