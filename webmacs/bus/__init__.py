"""The bus port (:class:`Bus`) and its two implementations: in-process (the embedded default)
and NATS (``WEBMACS_BUS_URL=nats://…``), which carries commits between instances."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from webmacs.bus.base import (
    CONTROL_SUFFIX,
    DEFAULT_MAX_PENDING,
    DEFAULT_SUBJECT,
    RECONNECTED,
    Batch,
    Bus,
    BusClosed,
    ChannelSubscription,
    Control,
    ControlSubscription,
    Delivery,
    Rows,
)
from webmacs.bus.gaps import GapDetector
from webmacs.bus.local import InProcessBus, LocalBroker

__all__ = [
    "CONTROL_SUFFIX", "DEFAULT_MAX_PENDING", "DEFAULT_SUBJECT", "RECONNECTED", "Batch", "Bus",
    "BusClosed", "ChannelSubscription", "Control", "ControlSubscription", "Delivery",
    "GapDetector", "InProcessBus", "LocalBroker", "Rows", "open_bus",
]


@asynccontextmanager
async def open_bus(url: str | None) -> AsyncIterator[Bus]:
    """The bus ``url`` names (None: in-process), closed on exit."""
    bus: Bus
    if url is None:
        bus = InProcessBus()
    else:
        from webmacs.bus.nats_bus import NatsBus  # nats-py is imported only when used

        bus = await NatsBus.open(url)
    try:
        yield bus
    finally:
        with trio.CancelScope(shield=True):
            await bus.aclose()
