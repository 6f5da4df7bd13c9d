"""The commands table (storage/sql/commands.py) on SQLite and PostgreSQL, with explicit clocks:
only actuator and range events are commanded, redelivery stops at the TTL, acks are per target,
pruning deletes expired commands only, deleting an event deletes its commands."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from webmacs.actors.commander import deliver
from webmacs.actors.tree import command_prune_interval, open_actor_tree
from webmacs.commands import Candidate, CommandBook, CommandRecord
from webmacs.services import Services
from webmacs.settings import SettingsError, load_settings
from webmacs.storage.records import DatapointRecord, EventFields, NewReading
from webmacs.validation import utcnow

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=300)


async def make_event(services: Services, kind: str) -> str:
    record = await services.repos.events.create(
        EventFields(f"{kind}-{uuid.uuid4().hex[:8]}", 0.0, 100.0, "%", kind), None)
    return record.public_id


def candidate(event: str, value: float, *targets: str) -> Candidate:
    return Candidate(DatapointRecord(str(uuid.uuid4()), value, T0, event, None), targets)


async def test_create_redeliver_ack_expire_and_prune(services: Services) -> None:
    repo = services.repos.commands
    act, rng, sensor = [await make_event(services, k) for k in ("actuator", "range", "sensor")]
    made = await repo.create([
        candidate(act, 1.0, "c:a", "c:b"), candidate(sensor, 2.0, "c:a"), candidate(rng, 3.5, "c:a"),
        candidate(str(uuid.uuid4()), 4.0, "c:a"),  # an event that does not exist (deleted)
    ], T0, TTL)
    assert [(c.target, c.event_public_id, c.value) for c in made] == [
        ("c:a", act, 1.0), ("c:b", act, 1.0), ("c:a", rng, 3.5)]
    assert all((c.timestamp, c.expires_at) == (T0, T0 + TTL) for c in made)
    a_act, b_act, a_rng = made

    assert await repo.pending("c:a", [act, rng, sensor], T0) == [a_act, a_rng]
    assert await repo.pending("c:a", [rng], T0) == [a_rng]
    assert await repo.pending("c:b", [act], T0 + TTL - timedelta(microseconds=1)) == [b_act]
    assert await repo.pending("c:b", [act], T0 + TTL) == []  # expired: never sent again
    assert await repo.pending("c:a", [], T0) == []

    assert not await repo.ack("c:b", a_act.public_id)  # another controller's command
    assert await repo.ack("c:a", a_act.public_id)
    assert not await repo.ack("c:a", a_act.public_id)  # twice: nothing more to do
    assert await repo.pending("c:a", [act, rng], T0) == [a_rng]

    later = await repo.create([candidate(act, 0.0, "c:b")], T0 + TTL, TTL)
    assert await repo.prune(T0 + TTL) == 0  # expires_at < cutoff only
    assert await repo.prune(T0 + TTL + timedelta(seconds=1)) == 2  # b_act, a_rng
    assert await repo.count() == 1
    assert await repo.pending("c:b", [act], T0 + TTL) == later


async def test_redelivery_is_the_newest_commands_oldest_first(services: Services) -> None:
    repo = services.repos.commands
    act = await make_event(services, "actuator")
    made = await repo.create([candidate(act, float(i), "c:a") for i in range(5)], T0, TTL)
    assert await repo.pending("c:a", [act], T0, limit=3) == made[2:]


async def test_deleting_an_event_deletes_its_commands(services: Services) -> None:
    repo = services.repos.commands
    act, other = await make_event(services, "actuator"), await make_event(services, "actuator")
    await repo.create([candidate(act, 1.0, "c:a"), candidate(other, 1.0, "c:a")], T0, TTL)
    assert await services.repos.events.delete(act)
    assert [c.event_public_id for c in await repo.pending("c:a", [act, other], T0)] == [other]


def test_command_ttl_setting(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SECRET_KEY": "k" * 40}
    assert load_settings(env, workdir=tmp_path, persist_secret=False).command_ttl_seconds == 300
    env["COMMAND_TTL_SECONDS"] = "30"
    assert load_settings(env, workdir=tmp_path, persist_secret=False).command_ttl_seconds == 30
    for bad in ("0", "abc", str(8 * 24 * 3600)):
        env["COMMAND_TTL_SECONDS"] = bad
        with pytest.raises(SettingsError, match="COMMAND_TTL_SECONDS"):
            load_settings(env, workdir=tmp_path, persist_secret=False)


def test_the_prune_interval_follows_the_ttl_between_a_minute_and_an_hour() -> None:
    assert [command_prune_interval(timedelta(seconds=s)) for s in (1, 300, 7 * 24 * 3600)] == [
        60.0, 300.0, 3600.0]


async def test_the_tree_prunes_expired_commands_and_stores_published_ones(
    services: Services,
) -> None:
    repo = services.repos.commands
    act = await make_event(services, "actuator")
    await repo.create([candidate(act, 1.0, "c:a")], T0, TTL)  # expired long ago
    async with open_actor_tree(services) as tree:
        with trio.fail_after(10):
            while await repo.count():
                await trio.sleep(0.01)
        # A declared actuator reading published by the hub becomes a stored command.
        link = tree.commander.open_session("c:a")
        await link.hello([act])
        ticket = await tree.ingest((NewReading(0, 2.0, act, None),))
        (stored,) = (await ticket.wait()).stored
        with trio.fail_after(10):
            while not len(link.outbox):
                await trio.sleep(0.01)
        (cmd,) = await repo.pending("c:a", [act], utcnow())
        assert (cmd.value, cmd.timestamp) == (2.0, stored.timestamp)
        link.close()


class RecordingRelay:
    """A relay as a bus would be: it sees every stored command, and its ``run`` is an actor."""

    def __init__(self, book: CommandBook) -> None:
        self.book = book
        self.published: list[CommandRecord] = []
        self.running = trio.Event()

    async def publish(self, commands: Sequence[CommandRecord]) -> None:
        self.published.extend(commands)
        deliver(self.book, commands)  # what each instance does with what it receives

    async def run(self) -> None:
        self.running.set()
        await trio.sleep_forever()


async def test_the_command_relay_is_a_port_the_tree_takes(services: Services) -> None:
    relays: list[RecordingRelay] = []

    def make(book: CommandBook) -> RecordingRelay:
        relays.append(RecordingRelay(book))
        return relays[-1]

    act = await make_event(services, "actuator")
    async with open_actor_tree(services, relay=make) as tree:
        (relay,) = relays
        with trio.fail_after(10):
            await relay.running.wait()
        link = tree.commander.open_session("c:a")
        await link.hello([act])
        await (await tree.ingest((NewReading(0, 3.0, act, None),))).wait()
        with trio.fail_after(10):
            while not relay.published:
                await trio.sleep(0.01)
        assert [(c.target, c.value) for c in relay.published] == [("c:a", 3.0)]
        assert len(link.take()) == 1
        link.close()
