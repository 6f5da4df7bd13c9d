"""A request id for every HTTP request and WebSocket handshake.

A sane incoming ``X-Request-ID`` (a proxy's, a client's) is kept so one id follows a request
across systems; anything else is replaced by a fresh one. The id is echoed in the response
header, stored in the ASGI scope for the access line (written by Hypercorn outside the request's
task), and set in a context variable for every log record emitted while the request is handled:
Trio tasks started meanwhile inherit it (``webmacs.logs.RequestIdFilter`` adds it to records).
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

from webmacs.http.access_log import AsgiApp, Message, Receive, Scope, Send

REQUEST_ID_KEY = "webmacs.request_id"
HEADER = b"x-request-id"  # ASGI header names are lower-case
_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")

current_request_id: ContextVar[str | None] = ContextVar("webmacs_request_id", default=None)


def request_id(headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> str:
    """The incoming ``X-Request-ID`` if it is 1–64 of ``A-Z a-z 0-9 . _ -``, else a new one
    (anything else could forge log fields or carry a secret into the logs)."""
    for name, value in headers:
        if name == HEADER:
            text = value.decode("latin1")
            if _SANE.fullmatch(text):
                return text
            break
    return os.urandom(16).hex()  # 128 random bits; a sixth of uuid4()'s cost


class RequestIds:
    """ASGI middleware: assigns the id, echoes it on HTTP responses, scopes it for logging."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = scope[REQUEST_ID_KEY] = request_id(scope.get("headers") or ())
        token = current_request_id.set(rid)
        try:
            if kind == "websocket":
                await self.app(scope, receive, send)
                return
            header = (HEADER, rid.encode("ascii"))

            async def send_with_id(message: Message) -> None:
                if message.get("type") == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), header]
                await send(message)

            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)
