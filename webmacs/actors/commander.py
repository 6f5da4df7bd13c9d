"""The commander: turns committed actuator readings into commands for controllers (§8).

::

    hub (Committed: own batches; Delivered: other instances') ──on_publish──▶
        CommandBook.candidates ──▶ CommandQueue (bounded)
    commander actor: store the queued candidates (one transaction) ──▶ CommandRelay.publish
    relay (in-process): each stored command ──▶ its target's sessions' CommandOutbox + doorbell
    controller session: pump (outbox ──▶ the session's reply channel ──▶ writer ──▶ socket)

The hub hands over rows in submission order (per instance), after their commit, so a command
never names an uncommitted datapoint, and commands for one event are created in the order its
readings were submitted. Nothing on this path waits for a socket: the relay only offers to
bounded outboxes.

Several instances on one bus: each hears every instance's committed batches and creates the
commands for its *own* connected controllers only (its book holds no one else), so each
command is created once, by the instance its target is connected to, and delivered there by
:class:`LocalRelay`. Acks and redelivery go through the shared database by controller identity,
so they work on any instance. :class:`CommandRelay` stays a port for a relay that would carry
stored commands between instances instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import trio

from webmacs.actors.messages import Changed
from webmacs.commands import (
    Candidate,
    CommandBook,
    CommandOutbox,
    CommandQueue,
    CommandRecord,
    SessionEntry,
    encode_command,
)
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.records import DatapointRecord
from webmacs.validation import utcnow

log = logging.getLogger(__name__)

STORE_BATCH = 500  # candidates per transaction
RETRY_DELAYS = (0.1, 0.5, 1.0, 5.0)  # database trouble: the last delay repeats
SESSION_OUTBOX = 10_000  # commands per connection not yet handed to its writer (as subscribers)
REDELIVER_LIMIT = 1000  # pending commands a hello sends again, the newest


class CommandStore(Protocol):
    """The database side (:class:`~webmacs.storage.sql.commands.SqlCommandRepository`)."""

    async def create(
        self, candidates: Sequence[Candidate], now: datetime, ttl: timedelta
    ) -> list[CommandRecord]: ...

    async def pending(
        self, target: str, event_ids: Sequence[str], now: datetime, limit: int = REDELIVER_LIMIT
    ) -> list[CommandRecord]: ...

    async def ack(self, target: str, command_id: str) -> bool: ...


class CommandRelay(Protocol):
    """Delivers stored commands to the connected sessions of their targets.

    ``publish`` is called by the commander with each batch of commands it stored. ``run`` is
    started as the ``command-relay`` actor (permanent): a bus implementation receives there what
    other instances published and hands it to :func:`deliver` for this instance's book."""

    async def publish(self, commands: Sequence[CommandRecord]) -> None: ...

    async def run(self) -> None: ...


RelayFactory = Callable[[CommandBook], CommandRelay]


def deliver(book: CommandBook, commands: Sequence[CommandRecord]) -> int:
    """Offer each command to its target's sessions on this instance (never waits); how many
    offers were queued."""
    queued = 0
    for cmd in commands:
        entries = book.route(cmd)
        if not entries:
            continue
        frame = encode_command(cmd)
        for entry in entries:
            if entry.outbox.offer(cmd.public_id, frame, cmd.expires_at):
                queued += 1
                entry.wake()
    return queued


class LocalRelay:
    """The in-process relay: one instance, so every target's sessions are here."""

    def __init__(self, book: CommandBook) -> None:
        self.book = book

    async def publish(self, commands: Sequence[CommandRecord]) -> None:
        deliver(self.book, commands)

    async def run(self) -> None:
        """Nothing comes from elsewhere: the actor ends at once."""


class Commander:
    """State of the commander actor (its loop is :func:`run_commander`); outlives restarts."""

    def __init__(
        self, book: CommandBook, store: CommandStore, relay: CommandRelay, ttl: timedelta,
        max_queue: int = 10_000,
    ) -> None:
        self.book = book
        self.store = store
        self.relay = relay
        self.ttl = ttl
        self.queue = CommandQueue(max_queue)
        self.changed = Changed()
        self.stored = 0

    def on_publish(self, rows: tuple[DatapointRecord, ...]) -> None:
        """Committed rows, this instance's or (from the bus) another's; synchronous, never
        waits. Only this instance's sessions are targets."""
        found = self.book.candidates(rows)
        if found:
            self.queue.extend(found)
            self.changed.notify()

    def note_origin(self, identity: str, rows: list[DatapointRecord]) -> None:
        """A controller's rows just committed (called by its ticket): not echoed back to it."""
        self.book.note_origin(identity, rows)

    def open_session(self, identity: str, outbox_size: int = SESSION_OUTBOX) -> SessionCommands:
        return SessionCommands(self, identity, outbox_size)

    async def idle(self) -> None:
        """Wait until every queued candidate was stored (or dropped)."""
        while len(self.queue):
            await self.changed.wait()

    def metrics(self) -> dict[str, int]:
        return {"sessions": len(self.book.sessions), "declared_events": self.book.declared_events,
                "queued": len(self.queue), "stored": self.stored, "dropped": self.queue.dropped}


async def run_commander(commander: Commander) -> None:
    """Store queued candidates in order, then hand the commands to the relay. While the
    database is unavailable, retry (the queue is bounded: the oldest are dropped, counted)."""
    failures = 0
    while True:
        while not len(commander.queue):
            await commander.changed.wait()
        batch = commander.queue.peek(STORE_BATCH)
        try:
            created = await commander.store.create(batch, utcnow(), commander.ttl)
        except DatabaseUnavailable:
            delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
            failures += 1
            log.warning("commander: %d commands not stored (database unavailable); retrying in "
                        "%.1f s", len(batch), delay)
            await trio.sleep(delay)
            continue
        failures = 0
        commander.queue.done(batch)
        commander.stored += len(created)
        commander.changed.notify()
        if created:
            await commander.relay.publish(created)


class SessionCommands:
    """One controller session's side of commands: its declaration in the book, its outbox and
    doorbell, and the database calls of ``hello`` (redelivery) and ``command_ack``."""

    def __init__(self, commander: Commander, identity: str, outbox_size: int) -> None:
        self.commander = commander
        self.identity = identity
        self.outbox = CommandOutbox(outbox_size)
        self.entry: SessionEntry = commander.book.attach(identity, self.outbox)
        self._bell_send, self._bell_recv = trio.open_memory_channel[None](1)
        self.entry.wake = self.ring
        self.redelivered = 0
        self.acked = 0

    def ring(self) -> None:
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self._bell_send.send_nowait(None)

    async def hello(self, events: Sequence[str]) -> None:
        """Declare ``events`` (replacing an earlier hello), then queue every pending command of
        this controller for them: commands not acked on an earlier connection are sent again."""
        self.commander.book.declare(self.entry, events)
        pending = await self.commander.store.pending(
            self.identity, list(events), utcnow(), min(REDELIVER_LIMIT, self.outbox.max_items))
        for cmd in pending:
            if self.outbox.offer(cmd.public_id, encode_command(cmd), cmd.expires_at):
                self.redelivered += 1
        if pending:
            self.ring()

    async def ack(self, command_id: str) -> None:
        self.outbox.discard(command_id)
        if await self.commander.store.ack(self.identity, command_id):
            self.acked += 1

    def take(self) -> list[bytes]:
        return self.outbox.take(utcnow())

    async def wait(self) -> None:
        await self._bell_recv.receive()

    def close(self) -> None:
        self.commander.book.detach(self.entry)
        self._bell_send.close()


OpenSession = Callable[[], SessionCommands]
