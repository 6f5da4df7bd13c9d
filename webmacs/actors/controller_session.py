"""A controller session (one per ``/ws/controller/telemetry`` connection).

The reader parses frames in order and submits them to the ingest router; the acker waits for
each frame's commit in frame order and queues the ack (or error frame); the writer sends them.
``max_inflight`` frames may await their commit: beyond that the reader stops reading the socket,
so TCP pushes back on the controller instead of webmacs buffering without bound or dropping.

Replies go only to clients that read: a connection earns acks and error frames by sending a
frame with ``seq``. v2 controllers never do, and never get a byte back (§5.2).

Commands (§8): a ``hello`` frame declares the events the controller drives and opens the
session's command side (:class:`~webmacs.actors.commander.SessionCommands`); its *pump* moves
commands from their bounded outbox into the same reply channel as acks, so the one writer sends
both and a controller that stops reading is throttled, never buffered without bound. ``hello``
and ``command_ack`` frames (and their error frames) also earn replies: a client that asks for
commands reads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs
import trio

from webmacs.actors.commander import OpenSession, SessionCommands
from webmacs.actors.messages import IngestFailed, Ticket
from webmacs.actors.ports import Activity, ConnectionClosed, WebSocketPort
from webmacs.actors.subscriber import CLOSE_GOING_AWAY, CLOSE_INTERNAL, CLOSE_NORMAL, close_quietly
from webmacs.commands import CommandAck, ControlError, Hello
from webmacs.frame_ids import FrameTag, frame_tag
from webmacs.frames import FrameError, TelemetryFrame, ack, error, parse_controller_frame
from webmacs.storage.database import DatabaseUnavailable
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
    commands: int = 0  # command frames queued for sending


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
    commands: OpenSession | None = None,
) -> int:
    """``controller_id`` (from the handshake) makes each ``seq`` frame a frame id: the store
    answers a resend with its first ack instead of storing it again (§8). ``commands`` opens
    the session's command side at its first ``hello`` (None: hello frames are telemetry, and
    refused as such)."""
    stats = SessionStats()
    slots = trio.Semaphore(max_inflight)
    inflight_send, inflight_recv = trio.open_memory_channel[Pending](max_inflight)
    outbox_send, outbox_recv = trio.open_memory_channel[bytes](outbox_size)
    pump_send = outbox_send.clone() if commands is not None else None
    code = CLOSE_NORMAL
    replies = False
    link: SessionCommands | None = None
    link_open = trio.Event()

    # The submission in hand (see reader). Shutdown gives it SHUTDOWN_GRACE_S; until then it
    # has no time limit, because every frame with ``seq`` gets exactly one answer.
    in_hand: trio.CancelScope | None = None

    async def reader() -> None:
        nonlocal in_hand
        async with inflight_send:
            while True:
                # A slot per unanswered frame, taken *before* reading: at most max_inflight
                # frames are read and not yet answered, then the socket is left unread.
                await slots.acquire()
                raw = await port.receive()
                activity.touch()
                frame = parse_controller_frame(raw, max_batch, control=commands is not None)
                if isinstance(frame, Hello | CommandAck | ControlError):
                    answer = await control(frame)
                    if answer is None:
                        slots.release()
                    else:
                        inflight_send.send_nowait(answer)
                    continue
                pending, tag = answer_now(frame)
                if pending is None and isinstance(frame, TelemetryFrame) and frame.readings:
                    # A frame that was read is submitted even while shutdown cancels the
                    # reader; shutdown bounds the wait (a full router inbox), and a frame
                    # whose submission was cut short was not submitted (a cancelled send did
                    # not happen), so it is answered "Server shutting down.".
                    ticket: Ticket | None = None
                    with trio.CancelScope(shield=True) as in_hand:
                        if shutdown.is_set():
                            in_hand.deadline = trio.current_time() + SHUTDOWN_GRACE_S
                        # (A frame without a storable reading is not recorded: its ack depends
                        # on its content alone, so a resend gets the same ack anyway.)
                        ticket = await submit(tuple(frame.readings), tag)
                    in_hand = None
                    if ticket is None:
                        pending = Pending(frame.seq, replies, None, "Server shutting down.")
                    else:
                        for r in frame.rejected:
                            ticket.add_rejection(r)
                        pending = Pending(frame.seq, replies, ticket)
                if pending is None or not (pending.replies or pending.ticket):
                    slots.release()
                else:
                    inflight_send.send_nowait(pending)

    async def control(frame: Hello | CommandAck | ControlError) -> Pending | None:
        """A ``hello`` or ``command_ack``: its error frame, or None (no reply on success)."""
        nonlocal replies, link
        replies = True
        stats.frames += 1
        if isinstance(frame, ControlError):
            stats.errors += 1
            log.info("%s: bad frame: %s", name, frame.detail)
            return Pending(None, True, None, frame.detail)
        if link is None:
            assert commands is not None
            link = commands()
            link_open.set()
        try:
            if isinstance(frame, Hello):
                await link.hello(frame.events)
                log.info("%s: declared %d events for commands", name, len(frame.events))
            else:
                await link.ack(frame.id)
        except DatabaseUnavailable:
            return Pending(None, True, None, "Database unavailable.")
        return None

    async def pump() -> None:
        """Commands from the session's outbox into the reply channel (waits when it is full)."""
        assert pump_send is not None
        async with pump_send:
            await link_open.wait()
            assert link is not None
            while True:
                frames = link.take()
                if not frames:
                    await link.wait()
                    continue
                for frame in frames:
                    await pump_send.send(frame)
                    stats.commands += 1

    def answer_now(frame: TelemetryFrame | FrameError) -> tuple[Pending | None, FrameTag | None]:
        """The answer of a frame that needs no storage (bad, or no readings), or None and the
        frame's id for the store's resend check."""
        nonlocal replies
        stats.frames += 1
        replies = replies or frame.has_seq
        detail = frame.detail if isinstance(frame, FrameError) else None
        tag = None
        if isinstance(frame, TelemetryFrame):
            tagged = frame_tag(controller_id, frame.seq, frame.rejected)
            if isinstance(tagged, str):
                detail = tagged
            else:
                tag = tagged
        if detail is not None:
            stats.errors += 1
            log.info("%s: bad frame: %s", name, detail)
            return Pending(frame.seq, replies, None, detail), None
        assert isinstance(frame, TelemetryFrame)
        if frame.readings:
            return None, tag
        return Pending(frame.seq, replies, Ticket(0, frame.rejected)), None

    async def acker() -> None:
        async with outbox_send:
            async for pending in inflight_recv:
                reply: bytes | None = None
                if pending.ticket is None:
                    if pending.replies:
                        reply = error(pending.seq, pending.error or "")
                else:
                    try:
                        result = await pending.ticket.wait()
                        if result.first_accepted is not None:
                            stats.replayed += 1  # counted when first stored
                        else:
                            stats.readings += len(result.stored)
                            stats.rejected += len(result.rejected)
                        if result.rejected:
                            # Counted for the closing summary; a line per frame at DEBUG only
                            # (a controller streaming to a deleted event would log 10 a second).
                            log.debug("%s: frame seq=%s: %d readings rejected: %s", name,
                                      pending.seq, len(result.rejected), result.rejected[0].detail)
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
        await activity.wait_silent(2 * heartbeat_interval)
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
                    if pump_send is not None:
                        reading.start_soon(pump)
                    await shutdown.wait()
                    # Shutting down: stop reading, bound the frame in hand, then let the acker
                    # and writer drain.
                    code = CLOSE_GOING_AWAY
                    if in_hand is not None:
                        in_hand.deadline = trio.current_time() + SHUTDOWN_GRACE_S
                    reading.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    except* ConnectionClosed:
        code = CLOSE_NORMAL
    finally:
        commanded = ""
        if link is not None:
            link.close()
            commanded = (f", {stats.commands} commands sent ({link.redelivered} redelivered), "
                         f"{link.acked} acked, {link.outbox.dropped} dropped from a full outbox, "
                         f"{link.outbox.expired} expired before they could be sent")
        log.info("%s: closed (%d frames, %d readings stored, %d rejected, %d bad frames, "
                 "%d resends answered from their first ack%s)",
                 name, stats.frames, stats.readings, stats.rejected, stats.errors, stats.replayed,
                 commanded)
    await close_quietly(port, code)
    return code
