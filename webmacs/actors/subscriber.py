"""A browser subscriber (one per ``/ws/datapoints/stream`` connection).

Its writer sends whatever its outbox holds, coalesced into one ``datapoints_batch`` frame per
send; its reader answers application pings; its watchdog closes the connection with 1011 after
two silent heartbeat intervals and with 1013 when the outbox makes no progress for its stuck
timeout. The hub only ever offers to the outbox, so a slow or dead browser delays nobody else.
"""

from __future__ import annotations

import contextlib
import logging

import trio

from webmacs.actors.hub import Subscription, Unsubscribe
from webmacs.actors.pacing import FanoutPacer
from webmacs.actors.ports import Activity, ConnectionClosed, DirectWrite, WebSocketPort
from webmacs.frames import CONNECTED, PONG, is_ping

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013
ABORT_GRACE_MAX_S = 5.0


async def run_subscriber(
    port: WebSocketPort,
    sub: Subscription,
    hub_send: trio.MemorySendChannel[object],
    activity: Activity,
    heartbeat_interval: float,
    shutdown: trio.Event,
    pacer: FanoutPacer | None = None,
) -> int:
    """Serve one subscriber until it leaves, is closed, or the server shuts down; the close code."""
    outbox = sub.outbox
    code = CLOSE_NORMAL

    direct: DirectWrite | None = getattr(port, "direct", None)

    async def writer() -> None:
        while True:
            rest = outbox.take_rest()
            if rest:
                assert direct is not None
                await direct.finish(rest)  # the end of a frame the hub started
                outbox.sent(trio.current_time())
                continue
            if pacer is not None and (keep := pacer.keep()) is not None:
                outbox.shed(keep)
            frames = outbox.take()
            if not frames:
                # The first frames (``connected``) are out: from now on the hub may write.
                sub.direct = direct
                await sub.bell_recv.receive()
                continue
            for frame in frames:
                await port.send(frame.decode("utf-8"))
            outbox.sent(trio.current_time())
            if pacer is not None and (pause := pacer.pause()):
                await trio.sleep(pause)  # the loop is behind: let readings coalesce meanwhile

    async def reader() -> None:
        while True:
            raw = await port.receive()
            activity.touch()
            if is_ping(raw):
                outbox.control(PONG, trio.current_time())
                sub.ring()

    async def watchdog(scope: trio.CancelScope) -> None:
        nonlocal code
        silent_limit = 2 * heartbeat_interval
        while True:
            # Sleep until the first moment either limit could be reached (both only move later).
            now = trio.current_time()
            await trio.sleep_until(min(activity.last + silent_limit, outbox.stuck_at(now)))
            if activity.silent_for() >= silent_limit:
                code = CLOSE_INTERNAL
                break
            if outbox.stuck(trio.current_time()):
                log.info("subscriber %d stuck (%d pending, %d dropped): closing 1013",
                         sub.id, outbox.pending, outbox.dropped_total)
                code = CLOSE_TRY_AGAIN
                guard.start_soon(abort_if_still_blocked)
                break
        scope.cancel()

    async def abort_if_still_blocked() -> None:
        # The writer is blocked in a send the server cannot cancel, and the 1013 close frame
        # queues behind it: give the peer a grace period to read, then abort the socket.
        await trio.sleep(min(outbox.stuck_timeout, ABORT_GRACE_MAX_S))
        abort = getattr(port, "abort", None)
        if abort is not None and outbox.sending:
            log.info("subscriber %d still blocked: aborting its connection", sub.id)
            abort()

    async def until_shutdown(scope: trio.CancelScope) -> None:
        nonlocal code
        await shutdown.wait()
        code = CLOSE_GOING_AWAY
        scope.cancel()

    outbox.control(CONNECTED, trio.current_time())
    try:
        async with trio.open_nursery() as guard:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                nursery.start_soon(reader)
                nursery.start_soon(watchdog, nursery.cancel_scope)
                nursery.start_soon(until_shutdown, nursery.cancel_scope)
            guard.cancel_scope.cancel()
    except* ConnectionClosed:
        code = CLOSE_NORMAL
    finally:
        outbox.closed = True
        sub.direct = None
        rest = outbox.take_rest()
        if rest and direct is not None:
            # A frame the hub started was never finished: the connection cannot carry another
            # byte in order, so cut it (which also makes the pending send fail and free the lock).
            abort = getattr(port, "abort", None)
            if abort is not None:
                abort()
            with trio.CancelScope(shield=True):
                await direct.finish(rest)
        # Best effort: the hub also drops closed outboxes on its next publish.
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            hub_send.send_nowait(Unsubscribe(sub.id))
    await close_quietly(port, code)
    return code


async def close_quietly(port: WebSocketPort, code: int) -> None:
    with contextlib.suppress(ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
        await port.close(code)
