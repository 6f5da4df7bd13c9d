"""Protocol-level liveness for WebSockets served by Hypercorn.

ASGI gives an application no protocol pings or pongs, but §5.4 counts a pong as activity.
Hypercorn sends the pings (``websocket_ping_interval``); :func:`install` wraps its WebSocket
stream so every chunk of bytes received from the peer after the handshake — data, pong or
close — touches the :class:`~webmacs.actors.ports.Activity` that our handler put into the
connection's ASGI scope under :data:`SCOPE_KEY`. Without the hook (e.g. the in-process test
client) only application frames count, which is the conservative direction.
"""

from __future__ import annotations

import socket
from typing import Any

from hypercorn.config import Config, Sockets
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import Body, Data

SCOPE_KEY = "webmacs.activity"
_MARK = "_webmacs_activity_hook"


def install() -> None:
    """Wrap ``WSStream.handle`` once per process (idempotent)."""
    cls: Any = ws_stream.WSStream
    if getattr(cls, _MARK, False):
        return
    original = cls.handle

    async def handle(self: Any, event: Any) -> None:
        if isinstance(event, Body | Data):
            scope = getattr(self, "scope", None)
            if scope is not None:
                activity = scope.get("extensions", {}).get(SCOPE_KEY)
                if activity is not None:
                    activity.touch()
        await original(self, event)

    cls.handle = handle
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
