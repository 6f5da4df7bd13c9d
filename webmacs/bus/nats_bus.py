"""The NATS bus: batches travel through a NATS server, so every instance sees every commit.

nats-py is asyncio-only. It runs here in a dedicated thread with its own asyncio loop, and only
this module knows. Both ways were measured (``bench/bus_nats.py``, local NATS, 10-reading
batches of ~1 KB, 2 shared cores): a publish→own-subscription round trip is the same either way
(p50 0.42–0.48 ms, p99 0.7–3.2 ms through the thread; 0.35–0.57 ms, 0.6–2.9 ms through
trio-asyncio), but the thread carries 8,000–8,800 batches/s round trip against 2,200–3,200
(100-reading batches: 3,200 against 1,800). Publishing is a non-blocking hand-off
(``call_soon_threadsafe``) rather than an awaited ``aio_as_trio`` call per batch, nats-py's
parsing and reconnecting stay off the Trio loop, and trio-asyncio would have had to wrap the
whole server (Hypercorn and Quart-Trio included) in its loop. Each direction costs one thread
hop: ``call_soon_threadsafe`` out, the Trio token's ``run_sync_soon`` in.

The bus stays off the storage path: ``publish`` numbers the batch and hands it over, never
waiting. The NATS thread encodes it once and publishes it; while the server is unreachable
nats-py buffers up to ``pending_size`` bytes and reconnects by itself, forever. Whatever is
dropped on the way (a full queue, a full buffer, a message NATS did not deliver) shows up as a
numbering gap at the receivers. A batch of more than ``max_rows`` rows goes out as several
messages (NATS caps a message at 1 MiB by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
import nats.errors
import trio
from nats.aio.client import Client
from nats.aio.msg import Msg

from webmacs.bus.base import (
    CONTROL_MAX_PENDING,
    DEFAULT_MAX_PENDING,
    RECONNECTED,
    Batch,
    BusClosed,
    ChannelSubscription,
    Control,
    ControlSubscription,
    Numbering,
    Rows,
    new_instance_id,
)
from webmacs.bus.wire import BadMessage, decode, decode_control, encode, encode_control

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ROWS_PER_MESSAGE = 1_000
PUBLISH_QUEUE = 1_024  # batches handed over and not yet given to nats-py
PENDING_BYTES = 8 * 1024 * 1024  # what nats-py buffers while reconnecting
CLOSE_FLUSH_S = 2


class NatsBus:
    """Create with :meth:`open`; close with :meth:`aclose` (from the Trio thread)."""

    def __init__(
        self, url: str, *, instance_id: str | None = None, name: str = "webmacs",
        reconnect_wait: float = 0.5, max_rows: int = MAX_ROWS_PER_MESSAGE,
    ) -> None:
        self.url = url
        self.name = name
        self.reconnect_wait = reconnect_wait
        self.max_rows = max_rows
        self._numbering = Numbering(instance_id or new_instance_id())
        self._token = trio.lowlevel.current_trio_token()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-bus", daemon=True)
        self._nc: Client | None = None
        self._queue: asyncio.Queue[tuple[str, Batch | Control]] | None = None
        # → nats-py subscription (loop side)
        self._subs: dict[ChannelSubscription | ControlSubscription, Any] = {}
        self._main: asyncio.Task[None] | None = None
        self.connected = trio.Event()
        self.closed = False
        # counters (written on the loop thread, read anywhere)
        self.dropped_batches = 0
        self.disconnects = 0
        self.reconnects = 0

    @property
    def instance_id(self) -> str:
        return self._numbering.origin

    @property
    def distributed(self) -> bool:
        return True

    @classmethod
    async def open(cls, url: str, *, wait_connected: float = 2.0, **kwargs: Any) -> NatsBus:
        """Start the thread and connect. Returns once connected, or after ``wait_connected``
        seconds with the connection still being retried in the background."""
        bus = cls(url, **kwargs)
        bus._thread.start()
        bus._loop.call_soon_threadsafe(bus._start)
        with trio.move_on_after(wait_connected):
            await bus.connected.wait()
        if not bus.connected.is_set():
            log.warning("NATS bus: %s not reachable yet; retrying in the background", url)
        return bus

    # -- Trio side
    async def publish(self, subject: str, rows: Rows) -> None:
        if self.closed:
            raise BusClosed
        for start in range(0, len(rows), self.max_rows):
            batch = self._numbering.stamp(rows[start:start + self.max_rows])
            self._loop.call_soon_threadsafe(self._enqueue, subject, batch)

    async def subscribe(
        self, subject: str, max_pending: int = DEFAULT_MAX_PENDING
    ) -> ChannelSubscription:
        if self.closed:
            raise BusClosed
        sub = ChannelSubscription(subject, max_pending, self._unsubscribe)
        self._subs[sub] = None
        await self._call(lambda: self._add_subscription(sub))
        return sub

    async def publish_control(self, subject: str, kind: str, payload: dict[str, Any]) -> None:
        if self.closed:
            raise BusClosed
        self._loop.call_soon_threadsafe(
            self._enqueue, subject, Control(self.instance_id, kind, payload))

    async def subscribe_control(
        self, subject: str, max_pending: int = CONTROL_MAX_PENDING
    ) -> ControlSubscription:
        if self.closed:
            raise BusClosed
        sub = ControlSubscription(subject, max_pending, self._unsubscribe)
        self._subs[sub] = None
        await self._call(lambda: self._add_subscription(sub))
        return sub

    def _unsubscribe(self, sub: ChannelSubscription | ControlSubscription) -> None:
        if sub in self._subs:
            with contextlib.suppress(RuntimeError):  # the loop is already stopped
                self._loop.call_soon_threadsafe(self._drop_subscription, sub)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        await trio.to_thread.run_sync(self._thread.join)
        self._loop.close()
        for sub in list(self._subs):
            sub.end()
        self._subs.clear()

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on the NATS loop and wait for it here (cancellable)."""
        future = asyncio.run_coroutine_threadsafe(_wrap(fn), self._loop)
        done = trio.Event()

        def wake(_: object) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(done.set)

        future.add_done_callback(wake)
        try:
            await done.wait()
        except trio.Cancelled:
            future.cancel()
            raise
        return future.result()

    # -- loop side (never touches Trio objects except through the Trio token)
    def _start(self) -> None:
        self._main = self._loop.create_task(self._run())

    async def _run(self) -> None:
        self._queue = asyncio.Queue(PUBLISH_QUEUE)
        self._nc = await nats.connect(
            self.url, name=self.name, allow_reconnect=True, max_reconnect_attempts=-1,
            reconnect_time_wait=self.reconnect_wait, connect_timeout=2, pending_size=PENDING_BYTES,
            error_cb=self._on_error, disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
        )
        for sub in list(self._subs):
            await self._add_subscription(sub)
        self._token.run_sync_soon(self.connected.set)
        log.info("NATS bus connected to %s (instance %s)", self.url, self.instance_id)
        while True:
            subject, item = await self._queue.get()
            try:
                data = encode(item) if isinstance(item, Batch) else encode_control(item)
                await self._nc.publish(subject, data)
            except (nats.errors.OutboundBufferLimitError, nats.errors.ConnectionClosedError,
                    nats.errors.MaxPayloadError) as exc:
                self.dropped_batches += 1
                log.debug("NATS bus: message on %s not published: %r", subject, exc)
            finally:
                self._queue.task_done()

    def _enqueue(self, subject: str, item: Batch | Control) -> None:
        if self._queue is None or self._nc is None:
            self.dropped_batches += 1  # not connected yet: the receivers count the gap
            return
        try:
            self._queue.put_nowait((subject, item))
        except asyncio.QueueFull:
            self.dropped_batches += 1

    async def _add_subscription(self, sub: ChannelSubscription | ControlSubscription) -> None:
        if self._nc is None or sub not in self._subs or self._subs[sub] is not None:
            return  # not connected yet (_run subscribes it), closed, or subscribed already
        token = self._token

        async def on_message(msg: Msg) -> None:
            try:
                item = decode(msg.data) if isinstance(sub, ChannelSubscription) else (
                    decode_control(msg.data))
            except BadMessage as exc:
                log.warning("NATS bus: ignoring a message on %s: %s", msg.subject, exc)
                return
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(sub.offer, item)  # type: ignore[arg-type]

        self._subs[sub] = await self._nc.subscribe(sub.subject, cb=on_message)
        # Once flushed, the server has the subscription. While disconnected nats-py subscribes
        # again itself on reconnect.
        with contextlib.suppress(TimeoutError, nats.errors.Error):
            await self._nc.flush(timeout=2)

    def _drop_subscription(self, sub: ChannelSubscription | ControlSubscription) -> None:
        nats_sub = self._subs.pop(sub, None)
        if nats_sub is not None:
            self._loop.create_task(_quietly(nats_sub.unsubscribe()))

    async def _shutdown(self) -> None:
        if self._queue is not None and self._nc is not None and self._nc.is_connected:
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await asyncio.wait_for(self._queue.join(), CLOSE_FLUSH_S)
                await self._nc.flush(timeout=CLOSE_FLUSH_S)
        if self._nc is not None:
            await _quietly(self._nc.close())
        # Cancel and wait for whatever still runs (the connect loop, unsubscribes), so the loop
        # stops with no task pending.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        if rest:
            await asyncio.wait(rest, timeout=CLOSE_FLUSH_S)

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS bus: %r", exc)

    async def _on_disconnect(self) -> None:
        self.disconnects += 1
        if not self.closed:
            log.warning("NATS bus: disconnected from %s; reconnecting", self.url)

    async def _on_reconnect(self) -> None:
        self.reconnects += 1
        log.info("NATS bus: reconnected to %s", self.url)
        # Control messages may have been lost meanwhile: readers reload what they mirror.
        notice = Control(self.instance_id, RECONNECTED, {})
        for sub in list(self._subs):
            if isinstance(sub, ControlSubscription):
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(sub.offer, notice)


async def _wrap(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


async def _quietly(aw: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await aw
