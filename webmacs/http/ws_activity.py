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
import socket
from typing import Any

from hypercorn.config import Config, Sockets
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import Body, Data, Request
from wsproto.events import Ping

from webmacs.http.ws_compression import SmallMessagesUncompressed

SCOPE_KEY = "webmacs.activity"
ABORT_KEY = "webmacs.abort"
_MARK = "_webmacs_activity_hook"
PING_POLL_S = 0.5


def _socket_of(stream: Any) -> socket.socket | None:
    """The TCP socket under a Hypercorn WebSocket stream (HTTP/1.1), or None if not reachable."""
    try:
        server = stream.send.__self__.send.__self__  # H11Protocol.stream_send -> TCPServer
        transport = getattr(server.stream, "transport_stream", server.stream)  # TLS or plain
        sock: socket.socket = transport.socket
        return sock
    except AttributeError:
        return None


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
            self.scope.setdefault("extensions", {})[ABORT_KEY] = functools.partial(_abort, self)

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
