"""Access to the running process's services from inside a request or WebSocket handler."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from quart import current_app

from webmacs.services import Services

if TYPE_CHECKING:
    from webmacs.actors.tree import ActorTree

EXTENSION_KEY = "webmacs"
TREE_KEY = "webmacs.tree"


def services() -> Services:
    return cast(Services, current_app.extensions[EXTENSION_KEY])


def tree() -> ActorTree:
    return cast("ActorTree", current_app.extensions[TREE_KEY])
