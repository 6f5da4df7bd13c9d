"""The hub: routes committed batches to subscribers and keeps the latest value per event.

With a bus (the tree always has one), the hub learns of this instance's commits twice:
``Committed`` from the publisher updates the latest values at once (so ``/datapoints/latest``
never depends on the bus), and ``Delivered`` from the bus relay feeds the fan-out, with every
instance's commits (this one's included) in publish order per instance. A bus gap reaches every
subscriber as a ``lag`` frame. A hub without a bus (``origin`` None) fans ``Committed`` out itself.

``on_publish`` (the commander) hears every committed batch exactly once, split like the latest
values: this instance's from ``Committed`` (never dependent on the bus, and its writers are
known here, for echo exclusion), other instances' from ``Delivered``. So each instance commands
its own connected controllers with every instance's commits.

It never awaits a socket. Each committed reading is encoded to JSON once; each subscriber gets
the readings its filter matches through a non-blocking offer into its bounded outbox, and a
doorbell (a one-slot channel) wakes its writer.

A task switch per delivery is the largest cost of fan-out, so when a subscriber's outbox is idle
and its socket offers a :class:`~webmacs.actors.ports.DirectWrite`, the hub writes the frame
itself (one ``datapoints_batch`` payload built once for every subscriber that wants the same
readings); only what the socket declines or does not take whole goes through the writer.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable

import attrs
import orjson
import trio

from webmacs.actors.latest import LatestValues
from webmacs.actors.messages import Committed, Future, answer_crash
from webmacs.actors.outbox import SubscriberOutbox, batch_payload
from webmacs.actors.pacing import FanoutPacer
from webmacs.actors.ports import DirectWrite
from webmacs.bus import ChannelSubscription
from webmacs.storage.records import DatapointRecord
from webmacs.validation import format_timestamp

log = logging.getLogger(__name__)


@attrs.frozen
class StreamFilter:
    """Empty ``event_ids`` means every event; ``experiment_id`` None means any experiment."""

    event_ids: frozenset[str] = frozenset()
    experiment_id: str | None = None

    def matches(self, row: DatapointRecord) -> bool:
        if self.event_ids and row.event_public_id not in self.event_ids:
            return False
        return self.experiment_id is None or row.experiment_public_id == self.experiment_id


class Subscription:
    """What the hub holds for one subscriber: its filter, outbox and doorbell."""

    _ids = itertools.count(1)

    def __init__(self, flt: StreamFilter, outbox: SubscriberOutbox) -> None:
        self.id = next(self._ids)
        self.filter = flt
        self.outbox = outbox
        self.bell_send, self.bell_recv = trio.open_memory_channel[None](1)
        # Set by the subscriber once its first frames are out: until then the writer sends all.
        self.direct: DirectWrite | None = None

    def deliver(
        self, chosen: list[bytes], payload: bytes | None, now: float, write: bool = True
    ) -> None:
        """Hand ``chosen`` readings on: written at once when possible (and ``write``), else to
        the writer. ``payload`` is their ``datapoints_batch`` frame if already built (shared)."""
        outbox, direct = self.outbox, self.direct
        if write and direct is not None and outbox.idle and len(chosen) <= outbox.max_frame_items:
            if payload is None:
                payload = batch_payload(chosen)
            rest = direct.write_now(payload)
            if rest is not None:
                if rest:
                    outbox.unfinished(rest, now)
                    self.ring()
                else:
                    outbox.written(now)
                return
        outbox.offer(chosen, now)
        self.ring()

    def ring(self) -> None:
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.bell_send.send_nowait(None)


def encode(row: DatapointRecord) -> bytes:
    return orjson.dumps({
        "public_id": row.public_id, "value": row.value, "event_public_id": row.event_public_id,
        "timestamp": format_timestamp(row.timestamp),
        "experiment_public_id": row.experiment_public_id,
    })


@attrs.frozen
class Delivered:
    """Bus relay -> hub: a batch committed by instance ``origin`` (maybe this one), and how many
    readings of that instance this one missed just before it."""

    origin: str
    rows: tuple[DatapointRecord, ...]
    missed: int = 0


@attrs.frozen
class Subscribe:
    subscription: Subscription


@attrs.frozen
class Unsubscribe:
    subscription_id: int


@attrs.frozen
class GetLatest:
    reply: Future


@attrs.frozen
class EventCreated:
    event_id: str


@attrs.frozen
class EventDeleted:
    event_id: str


@attrs.frozen
class GetSeq:
    reply: Future


@attrs.frozen
class ReloadLatest:
    rows: tuple[DatapointRecord, ...]
    snapshot_seq: int


HubMessage = (
    Committed | Delivered | Subscribe | Unsubscribe | GetLatest | EventCreated | EventDeleted | GetSeq
    | ReloadLatest
)


class Hub:
    def __init__(self, origin: str | None = None, pacer: FanoutPacer | None = None) -> None:
        self.origin = origin  # this instance on the bus; None: no bus
        # While the loop is behind, the hub writes no frame itself: writers coalesce instead.
        self.pacer = pacer or FanoutPacer()
        self.latest = LatestValues()
        self.subscriptions: dict[int, Subscription] = {}
        self.published = 0  # rows committed by this instance
        self.delivered = 0  # rows fanned out from the bus, every instance's
        self.missed = 0  # readings the bus lost before they reached this instance
        self.broadcast = 0  # readings offered to subscribers (one per reading and subscriber)
        self._dropped_gone = 0  # readings dropped for slow subscribers that have left since
        # Told every committed batch once, this instance's and the bus's others (the commander:
        # commands for the actuators this instance's controllers declared).
        self.on_publish: Callable[[tuple[DatapointRecord, ...]], None] | None = None

    def publish(self, rows: tuple[DatapointRecord, ...], now: float) -> None:
        """Without a bus: latest values and fan-out in one step."""
        self.latest.update(rows)
        if self.on_publish is not None:
            self.on_publish(rows)
        self.published += len(rows)
        self.fan_out(rows, now)

    def deliver(self, msg: Delivered, now: float) -> None:
        if msg.missed:
            self.lag(msg.missed, now)
        if msg.origin != self.origin:  # this instance's own rows came through Committed
            self.latest.update(msg.rows)
            if self.on_publish is not None:
                self.on_publish(msg.rows)
        self.delivered += len(msg.rows)
        self.fan_out(msg.rows, now)

    def lag(self, missed: int, now: float) -> None:
        """Every subscriber missed these readings (their events are unknown): one ``lag``."""
        self.missed += missed
        for sub in list(self.subscriptions.values()):
            if sub.outbox.closed:
                self._forget(sub.id)
                continue
            sub.outbox.missed(missed, now)
            sub.ring()

    def fan_out(self, rows: tuple[DatapointRecord, ...], now: float) -> None:
        if not self.subscriptions:
            return
        encoded = [encode(r) for r in rows]
        shared: bytes | None = None  # the frame of all rows, built once when first needed
        write = not self.pacer.busy
        offered = 0
        for sub in list(self.subscriptions.values()):
            if sub.outbox.closed:
                self._forget(sub.id)
                continue
            flt = sub.filter
            if not flt.event_ids and flt.experiment_id is None:
                if shared is None and write and sub.direct is not None:
                    shared = batch_payload(encoded)
                sub.deliver(encoded, shared, now, write)
                offered += len(encoded)
                continue
            chosen = [e for r, e in zip(rows, encoded, strict=True) if flt.matches(r)]
            if chosen:
                sub.deliver(chosen, None, now, write)
                offered += len(chosen)
        self.broadcast += offered

    def _forget(self, subscription_id: int) -> None:
        sub = self.subscriptions.pop(subscription_id, None)
        if sub is not None:
            self._dropped_gone += sub.outbox.dropped_total

    @property
    def dropped(self) -> int:
        """Readings dropped for slow subscribers since start (outbox overflow, shedding while
        the loop is behind), summed when asked: the outboxes count, the hub adds nothing."""
        return self._dropped_gone + sum(s.outbox.dropped_total for s in self.subscriptions.values())

    def handle(self, msg: HubMessage) -> None:
        now = trio.current_time()
        if isinstance(msg, Delivered):
            self.deliver(msg, now)
        elif isinstance(msg, Committed):
            if self.origin is None:
                self.publish(msg.datapoints, now)
            else:
                self.latest.update(msg.datapoints)
                if self.on_publish is not None:
                    self.on_publish(msg.datapoints)
                self.published += len(msg.datapoints)
        elif isinstance(msg, Subscribe):
            self.subscriptions[msg.subscription.id] = msg.subscription
        elif isinstance(msg, Unsubscribe):
            self._forget(msg.subscription_id)
        elif isinstance(msg, GetLatest):
            msg.reply.set(self.latest.snapshot())
        elif isinstance(msg, GetSeq):
            msg.reply.set(self.latest.seq)
        elif isinstance(msg, EventCreated):
            self.latest.event_created(msg.event_id)
        elif isinstance(msg, EventDeleted):
            self.latest.event_deleted(msg.event_id)
        elif isinstance(msg, ReloadLatest):
            self.latest.reload(msg.rows, msg.snapshot_seq)


async def run_hub(inbox: trio.MemoryReceiveChannel[HubMessage], hub: Hub) -> None:
    """A crash while handling a message answers its caller (if it waits) before the restart."""
    async for msg in inbox:
        try:
            hub.handle(msg)
        except BaseException as exc:
            answer_crash(msg, exc)
            raise


async def run_relay(delivered: ChannelSubscription, hub_send: trio.MemorySendChannel[HubMessage]) -> None:
    """Bus subscription -> hub inbox, in delivery order. Ends when either side closes."""
    try:
        async for d in delivered:
            await hub_send.send(Delivered(d.origin, d.rows, d.missed))
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        return
