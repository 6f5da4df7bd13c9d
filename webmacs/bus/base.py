"""The bus port: what the hub's fan-out needs from a message bus, whatever carries it.

A :class:`Bus` publishes committed batches of datapoint rows on a subject and delivers every
batch published on that subject, by any instance including this one, to each subscription, in
publish order per publisher. Publishing never waits for subscribers or the network: a batch
that cannot be delivered is lost to that receiver, and the receiver learns how many readings
it missed from the numbering every batch carries (:mod:`webmacs.bus.gaps`).

The Trio side of a subscription (:class:`ChannelSubscription`: a bounded buffer, drop-newest
when full, gap detection on receive) is shared by every implementation, so they differ only in
how a batch travels from ``publish`` to :meth:`ChannelSubscription.offer`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, Protocol, Self, TypeVar

import trio

from webmacs.bus.gaps import GapDetector
from webmacs.storage.records import DatapointRecord

Rows = tuple[DatapointRecord, ...]

DEFAULT_SUBJECT = "webmacs.datapoints"
DEFAULT_MAX_PENDING = 1024
CONTROL_SUFFIX = ".control"  # control messages travel on ``<bus subject>.control``
CONTROL_MAX_PENDING = 256
RECONNECTED = "bus.reconnected"  # delivered locally by a bus that may have lost messages


class BusClosed(Exception):
    """The bus was closed: nothing more can be published or subscribed."""


class Batch(NamedTuple):
    """One published message: ``seq`` numbers the publisher's messages from 0, ``first`` counts
    the readings it published before this one."""

    origin: str
    seq: int
    first: int
    rows: Rows


class Delivery(NamedTuple):
    """A received batch and the readings of ``origin`` missed just before it."""

    origin: str
    seq: int
    rows: Rows
    missed: int


def new_instance_id() -> str:
    return uuid.uuid4().hex[:16]


class Numbering:
    """The publisher's side of the numbering: one ``seq`` per message, ``first`` per reading.
    A batch numbered and then lost (queue full, server down) leaves the gap receivers count."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self._seq = 0
        self._readings = 0

    def stamp(self, rows: Rows) -> Batch:
        batch = Batch(self.origin, self._seq, self._readings, rows)
        self._seq += 1
        self._readings += len(rows)
        return batch


M = TypeVar("M")


class _Mailbox(Generic[M]):
    """The receiving end both subscriptions share: a bounded buffer that :meth:`offer` fills
    from the Trio thread without ever blocking (beyond ``max_pending`` the newest message is
    dropped and counted), and that :meth:`end` or :meth:`aclose` closes after what is queued."""

    def __init__(self, subject: str, max_pending: int, on_close: Callable[[Any], None]) -> None:
        self.subject = subject
        self._send, self._recv = trio.open_memory_channel[M](max_pending)
        self._on_close = on_close
        self.dropped = 0

    def offer(self, msg: M) -> None:
        try:
            self._send.send_nowait(msg)
        except trio.WouldBlock:
            self.dropped += 1
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def end(self) -> None:
        """No more messages (the bus closed); what is queued is still delivered."""
        self._send.close()

    async def aclose(self) -> None:
        self._on_close(self)
        self._send.close()


class ChannelSubscription(_Mailbox[Batch]):
    """A subscription as its reader sees it: ``async for delivery in sub`` (or :meth:`receive`).

    :meth:`offer` (Trio thread, never blocks) queues a batch; beyond ``max_pending`` batches the
    newest is dropped and shows as ``missed`` on the next delivery from its publisher. Closing
    (the subscription or its bus) ends the iteration after what is already queued; a cancelled
    ``receive`` loses nothing.
    """

    def __init__(
        self, subject: str, max_pending: int, on_close: Callable[[ChannelSubscription], None]
    ) -> None:
        super().__init__(subject, max_pending, on_close)
        self._gaps = GapDetector()

    @property
    def missed_total(self) -> int:
        return self._gaps.missed_total

    async def receive(self) -> Delivery:
        """The next delivery; raises :class:`trio.EndOfChannel` once closed and drained."""
        while True:
            batch = await self._recv.receive()
            missed = self._gaps.check(batch.origin, batch.seq, batch.first, len(batch.rows))
            if missed is not None:
                return Delivery(batch.origin, batch.seq, batch.rows, missed)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivery:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Control(NamedTuple):
    """A control message: something committed that other instances must apply (an experiment
    started, an event deleted...). ``payload`` is a small JSON object."""

    origin: str
    kind: str
    payload: dict[str, Any]


class ControlSubscription(_Mailbox[Control]):
    """Control messages as their reader sees them (``async for msg in sub``). Fire-and-forget
    like batches: beyond ``max_pending`` queued messages the newest is dropped (counted)."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Control:
        try:
            return await self._recv.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class Bus(Protocol):
    """A message bus for committed batches (PEP 544: any class with these members is one)."""

    @property
    def instance_id(self) -> str:
        """Identifies this publisher on the bus (new for every process start)."""
        ...

    async def publish(self, subject: str, rows: Rows) -> None:
        """Send one committed batch to every subscription of ``subject``, in order after this
        instance's earlier batches. Never waits for subscribers or the network; raises
        :class:`BusClosed` after :meth:`aclose`."""
        ...

    async def subscribe(
        self, subject: str, max_pending: int = DEFAULT_MAX_PENDING
    ) -> ChannelSubscription:
        """Start receiving ``subject``; batches published after this returns are delivered
        (while the bus is connected)."""
        ...

    @property
    def distributed(self) -> bool:
        """Whether other instances may share this bus (and the database): they then stamp
        readings from the database at commit and apply each other's control messages."""
        ...

    async def publish_control(self, subject: str, kind: str, payload: dict[str, Any]) -> None:
        """Send a control message to every control subscription of ``subject`` (this
        instance's included). Never waits; lost when undeliverable."""
        ...

    async def subscribe_control(
        self, subject: str, max_pending: int = CONTROL_MAX_PENDING
    ) -> ControlSubscription:
        """Start receiving control messages on ``subject``. A bus that reconnected (and may
        have lost some) delivers a :data:`RECONNECTED` message of its own."""
        ...

    async def aclose(self) -> None:
        """Flush what was published (briefly), end every subscription, release the connection."""
        ...
