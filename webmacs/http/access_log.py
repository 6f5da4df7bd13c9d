"""Exactly one access-log line per request.

Hypercorn calls its logger's ``access`` from two tasks. The app's task logs the status once the
last body chunk is sent; the connection's reader logs ``-`` when the connection closes before
the stream finished. A client that reads a response and hangs up at once closes the connection
while that last (empty) chunk is still being written, so both fire: a ``-`` line, then the
status line. A WebSocket handler that ends during the handshake is also logged twice (500).

:class:`MarkResponseEnd` records in the ASGI scope that the app has handed over its last body
chunk; :func:`claim_line` then drops the ``-`` call for such a request (its status line
follows) and any second call for a scope already logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

RESPONSE_ENDED = "webmacs.response_ended"
LOGGED = "webmacs.access_logged"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def claim_line(scope: Scope, response: Any) -> bool:
    """Whether this ``access`` call writes the request's line; marks the scope when it does."""
    if scope.get(LOGGED):
        return False
    if response is None and scope.get(RESPONSE_ENDED):
        return False  # the app's last chunk is on its way: Hypercorn logs its status next
    scope[LOGGED] = True
    return True


class MarkResponseEnd:
    """ASGI middleware: notes in the scope when an HTTP response's last body chunk is sent."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return

        async def marking_send(message: Message) -> None:
            if message.get("type") == "http.response.body" and not message.get("more_body", False):
                scope[RESPONSE_ENDED] = True
            await send(message)

        await self.app(scope, receive, marking_send)
