"""Access to the running process's services from inside a request or WebSocket handler."""

from __future__ import annotations

from typing import cast

from quart import current_app

from webmacs.services import Services

EXTENSION_KEY = "webmacs"


def services() -> Services:
    return cast(Services, current_app.extensions[EXTENSION_KEY])
