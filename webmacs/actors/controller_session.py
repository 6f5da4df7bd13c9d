"""A controller session (one per ``/ws/controller/telemetry`` connection).

The reader parses frames in order and submits them to the ingest router; the acker waits for
each frame's commit in frame order and queues the ack (or error frame); the writer sends them.
``max_inflight`` frames may await their commit: beyond that the reader stops reading the socket,
so TCP pushes back on the controller instead of webmacs buffering without bound or dropping.

Replies go only to clients that read: a connection earns acks and error frames by sending a
frame with ``seq``. v2 controllers never do, and never get a byte back (§5.2).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs
import trio

from webmacs.actors.messages import IngestFailed, Ticket
from webmacs.actors.ports import Activity, ConnectionClosed, WebSocketPort
from webmacs.actors.subscriber import CLOSE_GOING_AWAY, CLOSE_INTERNAL, CLOSE_NORMAL, close_quietly
from webmacs.frame_ids import FrameTag, frame_tag
from webmacs.frames import FrameError, ack, error, parse_telemetry
from webmacs.storage.records import NewReading

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0
SubmitFn = Callable[[tuple[NewReading, ...], FrameTag | None], Awaitable[Ticket]]


@attrs.frozen
class Pending:
    seq: int | None
    replies: bool
    ticket: Ticket | None
    error: str | None = None


@attrs.define
class SessionStats:
    frames: int = 0
    readings: int = 0
    rejected: int = 0
    errors: int = 0
    replayed: int = 0  # resent frames answered with their first ack


async def run_controller_session(
    port: WebSocketPort,
    submit: SubmitFn,
    activity: Activity,
    heartbeat_interval: float,
    shutdown: trio.Event,
    max_batch: int,
    max_inflight: int = 8,
    outbox_size: int = 64,
    name: str = "controller",
    controller_id: str | None = None,
) -> int:
    """``controller_id`` (from the handshake) makes each ``seq`` frame a frame id: the store
    answers a resend with its first ack instead of storing it again (§8)."""
    stats = SessionStats()
    slots = trio.Semaphore(max_inflight)
    inflight_send, inflight_recv = trio.open_memory_channel[Pending](max_inflight)
    outbox_send, outbox_recv = trio.open_memory_channel[bytes](outbox_size)
    code = CLOSE_NORMAL
    replies = False

    async def reader() -> None:
        nonlocal replies
        async with inflight_send:
            while True:
                # A slot per unacknowledged frame, taken *before* reading: at most max_inflight
                # frames are read and not yet answered, then the socket is left unread.
                await slots.acquire()
                raw = await port.receive()
                activity.touch()
                # A frame that was read is seen through (submitted and queued for its ack) even
                # during shutdown; bounded, so a stuck router cannot hold the connection forever.
                with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_GRACE_S):
                    pending = await handle_frame(raw)
                    if pending is None:
                        slots.release()
                    else:
                        inflight_send.send_nowait(pending)

    async def handle_frame(raw: str | bytes) -> Pending | None:
        nonlocal replies
        stats.frames += 1
        frame = parse_telemetry(raw, max_batch)
        if isinstance(frame, FrameError):
            replies = replies or frame.has_seq
            stats.errors += 1
            log.info("%s: bad frame: %s", name, frame.detail)
            return Pending(frame.seq, True, None, frame.detail) if replies else None
        replies = replies or frame.has_seq
        tag = frame_tag(controller_id, frame.seq, frame.rejected)
        if isinstance(tag, str):
            stats.errors += 1
            log.info("%s: bad frame: %s", name, tag)
            return Pending(frame.seq, True, None, tag)
        stats.rejected += len(frame.rejected)
        if frame.readings:
            # (A frame without a storable reading is not recorded: its ack depends on its
            # content alone, so a resend gets the same ack anyway.)
            ticket = await submit(tuple(frame.readings), tag)
            for r in frame.rejected:
                ticket.add_rejection(r)
        else:
            ticket = Ticket(0, frame.rejected)
        return Pending(frame.seq, replies, ticket)

    async def acker() -> None:
        async with outbox_send:
            async for pending in inflight_recv:
                reply: bytes | None = None
                if pending.ticket is None:
                    reply = error(pending.seq, pending.error or "")
                else:
                    try:
                        result = await pending.ticket.wait()
                        stats.readings += len(result.stored)
                        stats.replayed += result.first_accepted is not None
                        if result.rejected and not pending.replies:
                            log.info("%s: %d readings rejected", name, len(result.rejected))
                        if pending.replies and pending.seq is not None:
                            reply = ack(pending.seq, result.accepted, result.rejected)
                    except IngestFailed as exc:
                        log.warning("%s: frame seq=%s not stored: %s", name, pending.seq, exc.detail)
                        if pending.replies:
                            reply = error(pending.seq, exc.detail)
                if reply is not None:
                    await outbox_send.send(reply)
                slots.release()

    async def writer() -> None:
        async for frame in outbox_recv:
            await port.send(frame.decode("utf-8"))

    async def watchdog(scope: trio.CancelScope) -> None:
        nonlocal code
        tick = max(0.05, min(1.0, heartbeat_interval / 4))
        while activity.silent_for() <= 2 * heartbeat_interval:
            await trio.sleep(tick)
        log.info("%s: silent for two heartbeat intervals: closing 1011", name)
        code = CLOSE_INTERNAL
        scope.cancel()

    try:
        async with trio.open_nursery() as outer:
            outer.start_soon(watchdog, outer.cancel_scope)
            async with trio.open_nursery() as pipeline:
                pipeline.start_soon(acker)
                pipeline.start_soon(writer)
                async with trio.open_nursery() as reading:
                    reading.start_soon(reader)
                    await shutdown.wait()
                    # Shutting down: stop reading, then let the acker and writer drain.
                    code = CLOSE_GOING_AWAY
                    reading.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    except* ConnectionClosed:
        code = CLOSE_NORMAL
    finally:
        log.info("%s: closed (%d frames, %d readings stored, %d rejected, %d bad frames, "
                 "%d resends answered from their first ack)",
                 name, stats.frames, stats.readings, stats.rejected, stats.errors, stats.replayed)
    await close_quietly(port, code)
    return code
