"""Control messages between instances sharing a database and a bus.

What one instance commits that the others mirror in memory (experiment intervals, the latest
values' event bookkeeping, cached event ids) is announced on the bus's control subject after
the commit; every instance applies the others' announcements to its own actor tree. Like
batches they are fire-and-forget: stamping never depends on them (with a shared database it is
resolved at commit, see ``storage/sql/datapoints.py``), and a bus that reconnected (messages
may be lost) makes the instance reload everything from the database.

:func:`plan` is the sans-IO core: which :class:`Action` a message asks of this instance.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from webmacs.bus.base import RECONNECTED, Control, ControlSubscription

EXPERIMENT_STARTED = "experiment.started"
EXPERIMENT_STOPPED = "experiment.stopped"
EXPERIMENT_DELETED = "experiment.deleted"
EVENT_CREATED = "event.created"
EVENT_DELETED = "event.deleted"


class Do(enum.Enum):
    RESYNC_EXPERIMENTS = "resync experiments"  # reload the router's intervals
    RELOAD_LATEST = "reload latest"  # datapoints were deleted: refresh the latest values
    EVENT_CREATED = "event created"
    EVENT_DELETED = "event deleted"  # hub bookkeeping and the cached event id
    RELOAD_EVENTS = "reload events"  # after a reconnect: everything about events afresh


@attrs.frozen
class Action:
    do: Do
    event_id: str | None = None


def event_payload(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id}


def experiment_payload(experiment_id: str) -> dict[str, Any]:
    return {"experiment_id": experiment_id}


def plan(msg: Control, own_id: str) -> list[Action]:
    """The actions ``msg`` asks of the instance ``own_id`` (none for its own messages, for
    unknown kinds, or for malformed payloads)."""
    if msg.kind == RECONNECTED:
        return [Action(Do.RESYNC_EXPERIMENTS), Action(Do.RELOAD_EVENTS), Action(Do.RELOAD_LATEST)]
    if msg.origin == own_id:
        return []
    if msg.kind in (EXPERIMENT_STARTED, EXPERIMENT_STOPPED):
        return [Action(Do.RESYNC_EXPERIMENTS)]
    if msg.kind == EXPERIMENT_DELETED:
        return [Action(Do.RESYNC_EXPERIMENTS), Action(Do.RELOAD_LATEST)]
    event_id = msg.payload.get("event_id")
    if not isinstance(event_id, str):
        return []
    if msg.kind == EVENT_CREATED:
        return [Action(Do.EVENT_CREATED, event_id)]
    if msg.kind == EVENT_DELETED:
        return [Action(Do.EVENT_DELETED, event_id)]
    return []


async def run_control_relay(
    sub: ControlSubscription, own_id: str, apply: Callable[[Action], Awaitable[None]]
) -> None:
    """Apply other instances' control messages in arrival order. Ends when the bus closes."""
    async for msg in sub:
        for action in plan(msg, own_id):
            await apply(action)
