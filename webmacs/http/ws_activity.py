"""Protocol-level liveness for WebSockets served by Hypercorn.

ASGI gives an application no protocol pings or pongs, but §5.4 counts a pong as activity.
Hypercorn sends the pings (``websocket_ping_interval``); :func:`install` wraps its WebSocket
stream so every chunk of bytes received from the peer after the handshake — data, pong or
close — touches the :class:`~webmacs.actors.ports.Activity` that our handler put into the
connection's ASGI scope under :data:`SCOPE_KEY`. Without the hook (e.g. the in-process test
client) only application frames count, which is the conservative direction.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from typing import Any

import trio
from hypercorn.config import Config, Sockets
from hypercorn.events import Closed
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import Body, Data, Request
from hypercorn.protocol.h11 import H11Protocol
from wsproto.events import Ping

from webmacs.http.ws_compression import COMPRESS_MIN_BYTES, SmallMessagesUncompressed

SCOPE_KEY = "webmacs.activity"
ABORT_KEY = "webmacs.abort"
DIRECT_KEY = "webmacs.direct_send"
_MARK = "_webmacs_activity_hook"
# Larger messages take the ordinary path, compressed if the client negotiated it.
DIRECT_MAX_BYTES = COMPRESS_MIN_BYTES


def _server_of(stream: Any) -> Any:
    """Hypercorn's ``TCPServer`` under a WebSocket stream (HTTP/1.1), or None if not reachable."""
    try:
        return stream.send.__self__.send.__self__  # H11Protocol.stream_send -> TCPServer
    except AttributeError:
        return None


def _socket_of(stream: Any) -> socket.socket | None:
    """The TCP socket under a Hypercorn WebSocket stream (HTTP/1.1), or None if not reachable."""
    try:
        server = _server_of(stream)
        transport = getattr(server.stream, "transport_stream", server.stream)  # TLS or plain
        sock: socket.socket = transport.socket
        return sock
    except AttributeError:
        return None


def text_frame_header(length: int) -> bytes:
    """RFC 6455 header of a final, unmasked (server-to-client) text frame of ``length`` bytes."""
    if length < 126:
        return bytes((0x81, length))
    if length < 1 << 16:
        return bytes((0x81, 126)) + length.to_bytes(2, "big")
    return bytes((0x81, 127)) + length.to_bytes(8, "big")


class DirectSender:
    """Sends a small text message straight to the connection's TCP socket.

    Through Quart and Hypercorn a message passes seven layers (wrapper, ASGI queue, WSStream,
    wsproto, H11Protocol, TCPServer, trio's stream), each with its own awaits and cancel scopes:
    ~100 µs of the event loop per delivery, the largest cost of fan-out. This writes the frame
    (a 2-byte header and the payload; uncompressed, which permessage-deflate permits per message)
    with one non-blocking ``write`` under Hypercorn's own send lock, so it never interleaves with
    Hypercorn's pings or close frames. Plain TCP only: behind TLS, when the lock is busy, for
    messages of :data:`DIRECT_MAX_BYTES` or more, or once the connection is closing, the sender
    declines and the caller uses the ordinary path.

    :meth:`write_now` never waits, so the hub can call it for every subscriber of a batch without
    a task switch per delivery. What the kernel does not take at once (a slow reader) stays with
    the caller, the send lock held, until :meth:`finish` sends it from the subscriber's own task.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        server = _server_of(stream)
        raw = getattr(getattr(server, "stream", None), "socket", None)
        # HTTP/1.1 only: over HTTP/2 a WebSocket's bytes travel inside DATA frames.
        http1 = isinstance(getattr(stream.send, "__self__", None), H11Protocol)
        plain = http1 and server is not None and not hasattr(server.stream, "transport_stream")
        # Handing a held lock to another task needs the owner-less lock tcp_guard installs.
        handoff = isinstance(getattr(server, "send_lock", None), trio.Semaphore)
        self._server = server if plain and handoff and raw is not None else None
        self._socket: Any = raw

    def write_now(self, payload: bytes) -> bytes | None:
        """Write ``payload`` as one text frame without waiting. None: declined, nothing written
        (use the ordinary path); ``b""``: all written; otherwise the frame's unwritten rest, and
        the send lock stays held until :meth:`finish` is awaited with it."""
        server, stream = self._server, self._stream
        if (server is None or len(payload) >= DIRECT_MAX_BYTES or stream.closed
                or stream.state != ws_stream.ASGIWebsocketState.CONNECTED):
            return None
        lock = server.send_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            return None
        # The descriptor is read now, never cached: a closed socket reports -1, and a number
        # kept from before could by now belong to another connection.
        fd = self._socket.fileno()
        if fd < 0:
            lock.release()
            return None
        data = text_frame_header(len(payload)) + payload
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            lock.release()
            return None  # the ordinary path sees the broken socket and closes properly
        if sent == len(data):
            lock.release()
            return b""
        return data[sent:]

    async def finish(self, rest: bytes) -> None:
        """Send the rest of a frame :meth:`write_now` started, then release the send lock."""
        server = self._server
        assert server is not None
        broken = False
        try:
            with trio.CancelScope(shield=True):  # a frame is never half-sent
                await server.stream.send_all(rest)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            broken = True
        finally:
            server.send_lock.release()
        if broken:
            await server.protocol.handle(Closed())

    async def send(self, payload: bytes) -> bool:
        """:meth:`write_now`, waiting for whatever the kernel did not take. False: declined."""
        rest = self.write_now(payload)
        if rest is None:
            return False
        if rest:
            await self.finish(rest)
        return True


def _abort(stream: Any) -> None:
    """Shut the socket down: a send blocked on a peer that never reads fails at once."""
    sock = _socket_of(stream)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _stop_pings_if_closed(stream: Any) -> None:
    scope: trio.CancelScope | None = getattr(stream, "_webmacs_pings", None)
    if scope is not None and (stream.closed
                              or stream.state != ws_stream.ASGIWebsocketState.CONNECTED):
        scope.cancel()


def install() -> None:
    """Wrap ``WSStream`` once per process (idempotent): activity on every received chunk, an
    abort handle in the scope, a ping loop that ends soon after its connection closes, and
    permessage-deflate that skips small messages (see :mod:`webmacs.http.ws_compression`)."""
    cls: Any = ws_stream.WSStream
    if getattr(cls, _MARK, False):
        return
    ws_stream.PerMessageDeflate = SmallMessagesUncompressed  # type: ignore[misc,attr-defined]
    original = cls.handle
    original_app_send = cls.app_send

    async def handle(self: Any, event: Any) -> None:
        if isinstance(event, Body | Data):
            scope = getattr(self, "scope", None)
            if scope is not None:
                activity = scope.get("extensions", {}).get(SCOPE_KEY)
                if activity is not None:
                    activity.touch()
        await original(self, event)
        if isinstance(event, Request) and getattr(self, "scope", None) is not None:
            extensions = self.scope.setdefault("extensions", {})
            extensions[ABORT_KEY] = functools.partial(_abort, self)
            extensions[DIRECT_KEY] = DirectSender(self)
        _stop_pings_if_closed(self)

    async def app_send(self: Any, message: Any) -> None:
        await original_app_send(self, message)
        _stop_pings_if_closed(self)

    async def send_pings(self: Any) -> None:
        # Hypercorn's own loop sleeps a whole interval before it notices a closed connection,
        # which holds the server's graceful shutdown for up to that long; this one's sleep is
        # cancelled as soon as the connection closes (no polling: with hundreds of connections,
        # timers that wake only to look were a visible share of the event loop).
        connected = ws_stream.ASGIWebsocketState.CONNECTED
        with trio.CancelScope() as scope:
            self._webmacs_pings = scope
            while not self.closed and self.state == connected:
                await self._send_wsproto_event(Ping())
                await self.context.sleep(self.config.websocket_ping_interval)

    cls.handle = handle
    cls.app_send = app_send
    cls._send_pings = send_pings
    setattr(cls, _MARK, True)


class TcpTimeoutConfig(Config):
    """Hypercorn config whose listening sockets carry ``TCP_USER_TIMEOUT`` (inherited by every
    accepted connection): a send to a peer that stopped acknowledging is released by the kernel
    after ``tcp_user_timeout_ms`` instead of blocking its writer forever (Hypercorn's send
    cannot be cancelled from the application)."""

    tcp_user_timeout_ms: int = 30_000
    reuse_port: bool = False

    def _create_sockets(self, binds: list[str], type_: int = socket.SOCK_STREAM) -> list[socket.socket]:
        """With ``reuse_port``, every worker of ``webmacs serve --workers N`` binds its own socket
        with ``SO_REUSEPORT`` on the same port, rather than inheriting one socket from the parent.

        Why: each worker then runs exactly the code path of a single ``webmacs serve`` (binds,
        prints where it listens, and a restarted worker simply binds again); the kernel spreads
        new connections over the workers' own accept queues, so an idle worker is not woken for
        every connection another one takes. The cost: connections still queued on a worker that
        dies are reset (their clients reconnect), and only processes of the same user can join
        the port. Hypercorn sets the option before ``bind`` only when ``workers > 1`` (its own
        multi-process runner, which ``hypercorn.trio.serve`` never uses), so that switch is
        borrowed for the call."""
        saved = self.workers
        if self.reuse_port:
            self.workers = 2
        try:
            return super()._create_sockets(binds, type_)
        finally:
            self.workers = saved

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        option = getattr(socket, "TCP_USER_TIMEOUT", None)
        if option is not None:
            for sock in (*sockets.insecure_sockets, *sockets.secure_sockets):
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, option, self.tcp_user_timeout_ms)
        return sockets
