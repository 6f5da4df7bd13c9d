"""Sans-IO core of actuator commands pushed to controllers (contract §8, "Commands to controllers").

A controller session says ``{"type":"hello","events":[...]}`` to declare the events it drives.
A committed datapoint of such an event whose type is ``actuator`` or ``range`` becomes one
command per declaring controller (its *target*), stored, then pushed as ``{"type":"command",…}``
until the controller answers ``{"type":"command_ack","id":…}`` or the command's TTL passes.

Everything here is plain data and bookkeeping, with no socket, clock or database:

- :func:`parse_control` reads ``hello`` and ``command_ack`` frames;
- :class:`CommandOutbox` is one session's bounded queue of encoded commands;
- :class:`CommandBook` knows which sessions (and controller identities) declared which events,
  remembers who wrote a row (so a controller's own write is not echoed back to it) and turns
  committed rows into :class:`Candidate` commands.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, NamedTuple

import attrs
import orjson

from webmacs.storage.records import DatapointRecord
from webmacs.validation import format_timestamp, is_public_id

COMMAND_EVENT_TYPES = ("actuator", "range")
MAX_HELLO_EVENTS = 1000
BAD_EVENTS = "Field 'events' must be a list of event ids."
TOO_MANY_EVENTS = f"Field 'events' must list at most {MAX_HELLO_EVENTS} event ids."
BAD_COMMAND_ID = "Field 'id' must be a command id."
CONTROL_TYPES = ("hello", "command_ack")


def controller_identity(controller_id: str | None, connection_id: str) -> str:
    """Who a command is for. With ``?controller_id=`` that id (shared by every connection giving
    it, so commands follow the controller across reconnects and restarts); without one, the
    connection itself (commands are pushed to it live and are not redelivered elsewhere)."""
    return f"c:{controller_id}" if controller_id is not None else f"s:{connection_id}"


@attrs.frozen
class Hello:
    events: tuple[str, ...]


@attrs.frozen
class CommandAck:
    id: str


@attrs.frozen
class ControlError:
    detail: str


def is_control(body: Any) -> bool:
    """Whether a parsed frame is a command-protocol frame rather than telemetry."""
    return isinstance(body, dict) and body.get("type") in CONTROL_TYPES


def parse_control(body: dict[str, Any]) -> Hello | CommandAck | ControlError:
    """A ``hello`` or ``command_ack`` frame (``is_control(body)`` holds)."""
    if body["type"] == "hello":
        events = body.get("events")
        if not isinstance(events, list) or not all(
            isinstance(e, str) and is_public_id(e) for e in events
        ):
            return ControlError(BAD_EVENTS)
        unique = tuple(dict.fromkeys(events))
        if len(unique) > MAX_HELLO_EVENTS:
            return ControlError(TOO_MANY_EVENTS)
        return Hello(unique)
    command_id = body.get("id")
    if not isinstance(command_id, str) or not is_public_id(command_id):
        return ControlError(BAD_COMMAND_ID)
    return CommandAck(command_id)


class CommandRecord(NamedTuple):
    """A stored command: one datapoint for one target controller."""

    public_id: str
    target: str
    event_public_id: str
    value: float
    timestamp: datetime
    expires_at: datetime | None = None  # never sent from then on


def encode_command(cmd: CommandRecord) -> bytes:
    return orjson.dumps({
        "type": "command", "id": cmd.public_id, "event_public_id": cmd.event_public_id,
        "value": cmd.value, "timestamp": format_timestamp(cmd.timestamp),
    })


class Candidate(NamedTuple):
    """A committed row of a declared event and the identities to command (its type is checked
    when the commands are stored)."""

    row: DatapointRecord
    targets: tuple[str, ...]


class CommandOutbox:
    """One session's commands not yet handed to its writer: bounded, drop-oldest, one entry per
    command id. A dropped command stays pending in the database and is sent again on the next
    ``hello`` (on this connection or the next)."""

    def __init__(self, max_items: int = 10_000) -> None:
        self.max_items = max_items
        self._items: OrderedDict[str, tuple[bytes, datetime | None]] = OrderedDict()
        self.dropped = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, command_id: str, frame: bytes, expires_at: datetime | None = None) -> bool:
        """Queue a command unless it is queued already; False when nothing was added."""
        if command_id in self._items:
            return False
        self._items[command_id] = (frame, expires_at)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
            self.dropped += 1
        return True

    def discard(self, command_id: str) -> None:
        """Acked before it was sent (delivered on an earlier connection): no need to send it."""
        self._items.pop(command_id, None)

    def take(self, now: datetime | None = None) -> list[bytes]:
        """Everything queued, oldest first, except commands whose TTL passed while they waited
        (for a controller that did not read)."""
        frames = [frame for frame, expires in self._items.values()
                  if now is None or expires is None or now < expires]
        self.expired += len(self._items) - len(frames)
        self._items.clear()
        return frames


class SessionEntry:
    """What the book holds for one connected session."""

    _keys = itertools.count(1)

    def __init__(self, identity: str, outbox: CommandOutbox) -> None:
        self.key = next(self._keys)
        self.identity = identity
        self.outbox = outbox
        self.events: frozenset[str] = frozenset()
        self.wake: Callable[[], None] = lambda: None  # rings the session's writer


class CommandBook:
    """Which sessions declared which events, and who wrote the rows in flight to the hub."""

    def __init__(self, max_origins: int = 10_000) -> None:
        self.sessions: dict[int, SessionEntry] = {}
        self._by_event: dict[str, set[int]] = {}
        self._origins: OrderedDict[str, str] = OrderedDict()  # datapoint public id -> identity
        self.max_origins = max_origins

    # -- sessions
    def attach(self, identity: str, outbox: CommandOutbox) -> SessionEntry:
        entry = SessionEntry(identity, outbox)
        self.sessions[entry.key] = entry
        return entry

    def declare(self, entry: SessionEntry, events: Iterable[str]) -> None:
        """Replace the session's declared events (a later hello wins)."""
        self._forget(entry)
        entry.events = frozenset(events)
        for event in entry.events:
            self._by_event.setdefault(event, set()).add(entry.key)

    def detach(self, entry: SessionEntry) -> None:
        self._forget(entry)
        self.sessions.pop(entry.key, None)

    def _forget(self, entry: SessionEntry) -> None:
        for event in entry.events:
            keys = self._by_event.get(event)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del self._by_event[event]
        entry.events = frozenset()

    @property
    def declared_events(self) -> int:
        return len(self._by_event)

    def declares(self, identity: str, event: str) -> bool:
        return any(self.sessions[k].identity == identity for k in self._by_event.get(event, ()))

    def targets(self, event: str) -> set[str]:
        return {self.sessions[k].identity for k in self._by_event.get(event, ())}

    def route(self, cmd: CommandRecord) -> list[SessionEntry]:
        """The connected sessions a stored command goes to: its target's, if they declare its
        event (a controller that left, or said hello without it, gets it on a later hello)."""
        return [self.sessions[k] for k in self._by_event.get(cmd.event_public_id, ())
                if self.sessions[k].identity == cmd.target]

    # -- rows
    def note_origin(self, identity: str, rows: Iterable[DatapointRecord]) -> None:
        """A controller's own rows, just committed: it is not commanded with them. Only rows of
        events it declared matter (nobody else's identity can be a target of them by mistake)."""
        if not self._by_event:
            return  # nothing declared anywhere: the common case costs one test per commit
        for row in rows:
            if self.declares(identity, row.event_public_id):
                self._origins[row.public_id] = identity
                while len(self._origins) > self.max_origins:  # rows never published (a crash)
                    self._origins.popitem(last=False)

    def candidates(self, rows: Iterable[DatapointRecord]) -> list[Candidate]:
        """The commands a published batch calls for: per row of a declared event, the
        identities declaring it, except the controller that wrote it. Writers are known for this
        instance's rows only: a row from another instance (bus) has no noted origin, so a
        controller connected here *and* there under one ``controller_id`` gets its own write
        back here (the bus does not carry writers)."""
        if not self._by_event:
            return []
        out: list[Candidate] = []
        for row in rows:
            keys = self._by_event.get(row.event_public_id)
            origin = self._origins.pop(row.public_id, None) if self._origins else None
            if not keys:
                continue
            targets = {self.sessions[k].identity for k in keys}
            if origin is not None:
                targets.discard(origin)
            if targets:
                out.append(Candidate(row, tuple(sorted(targets))))
        return out


class CommandQueue:
    """Candidates waiting to be stored, in publication order; bounded, drop-oldest (a database
    outage longer than the queue holds loses the oldest commands, counted)."""

    def __init__(self, max_items: int = 10_000) -> None:
        self.max_items = max_items
        self._items: deque[Candidate] = deque()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def extend(self, items: Iterable[Candidate]) -> None:
        self._items.extend(items)
        while len(self._items) > self.max_items:
            self._items.popleft()
            self.dropped += 1

    def peek(self, n: int) -> list[Candidate]:
        return list(itertools.islice(self._items, n))

    def done(self, taken: list[Candidate]) -> None:
        """Remove what :meth:`peek` returned (what is still at the head: drops may have taken
        some of it meanwhile)."""
        ids = {id(c) for c in taken}
        while self._items and id(self._items[0]) in ids:
            self._items.popleft()
