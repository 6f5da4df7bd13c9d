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

from webmacs.http.ws_compression import SmallMessagesUncompressed

SCOPE_KEY = "webmacs.activity"
ABORT_KEY = "webmacs.abort"
DIRECT_KEY = "webmacs.direct_send"
_MARK = "_webmacs_activity_hook"
PING_POLL_S = 0.5


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
    Hypercorn's pings or close frames. What the kernel does not take at once (a slow reader) is
    sent under the same lock the way Hypercorn sends. Plain TCP only: behind TLS, when the lock
    is busy, or once the connection is closing, :meth:`send` returns False and the caller uses
    the ordinary path.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        server = _server_of(stream)
        raw = getattr(getattr(server, "stream", None), "socket", None)
        # HTTP/1.1 only: over HTTP/2 a WebSocket's bytes travel inside DATA frames.
        http1 = isinstance(getattr(stream.send, "__self__", None), H11Protocol)
        plain = http1 and server is not None and not hasattr(server.stream, "transport_stream")
        self._server = server if plain and raw is not None else None
        self._socket: Any = raw

    async def send(self, payload: bytes) -> bool:
        server, stream = self._server, self._stream
        if (server is None or stream.closed
                or stream.state != ws_stream.ASGIWebsocketState.CONNECTED):
            return False
        lock: trio.Lock = server.send_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            return False
        broken = False
        try:
            # The descriptor is read now, never cached: a closed socket reports -1, and a number
            # kept from before could by now belong to another connection.
            fd = self._socket.fileno()
            if fd < 0:
                return False
            data = text_frame_header(len(payload)) + payload
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                sent = 0
            except OSError:
                return False  # the ordinary path sees the broken socket and closes properly
            if sent < len(data):
                try:
                    with trio.CancelScope(shield=True):  # a frame is never half-sent
                        await server.stream.send_all(data[sent:])
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    broken = True
        finally:
            lock.release()
        if broken:
            await server.protocol.handle(Closed())
        return True


def _abort(stream: Any) -> None:
    """Shut the socket down: a send blocked on a peer that never reads fails at once."""
    sock = _socket_of(stream)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def install() -> None:
    """Wrap ``WSStream`` once per process (idempotent): activity on every received chunk, an
    abort handle in the scope, a ping loop that ends soon after its connection closes, and
    permessage-deflate that skips small messages (see :mod:`webmacs.http.ws_compression`)."""
    cls: Any = ws_stream.WSStream
    if getattr(cls, _MARK, False):
        return
    ws_stream.PerMessageDeflate = SmallMessagesUncompressed  # type: ignore[misc,attr-defined]
    original = cls.handle

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

    async def send_pings(self: Any) -> None:
        # Hypercorn's own loop sleeps a whole interval before it notices a closed connection,
        # which holds the server's graceful shutdown for up to that long.
        connected = ws_stream.ASGIWebsocketState.CONNECTED
        while not self.closed and self.state == connected:
            await self._send_wsproto_event(Ping())
            waited = 0.0
            while waited < self.config.websocket_ping_interval:
                step = min(PING_POLL_S, self.config.websocket_ping_interval - waited)
                await self.context.sleep(step)
                waited += step
                if self.closed or self.state != connected:
                    return

    cls.handle = handle
    cls._send_pings = send_pings
    setattr(cls, _MARK, True)


class TcpTimeoutConfig(Config):
    """Hypercorn config whose listening sockets carry ``TCP_USER_TIMEOUT`` (inherited by every
    accepted connection): a send to a peer that stopped acknowledging is released by the kernel
    after ``tcp_user_timeout_ms`` instead of blocking its writer forever (Hypercorn's send
    cannot be cancelled from the application)."""

    tcp_user_timeout_ms: int = 30_000

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        option = getattr(socket, "TCP_USER_TIMEOUT", None)
        if option is not None:
            for sock in (*sockets.insecure_sockets, *sockets.secure_sockets):
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, option, self.tcp_user_timeout_ms)
        return sockets
