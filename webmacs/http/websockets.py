"""The two WebSockets of §5 as thin shims: authenticate before the upgrade, then hand the
connection to its actor (a controller session or a subscriber) in the actor tree."""

from __future__ import annotations

import logging
from typing import Any

from quart import Blueprint, websocket

from webmacs.actors.controller_session import run_controller_session
from webmacs.actors.hub import StreamFilter
from webmacs.actors.ports import Activity
from webmacs.actors.subscriber import run_subscriber
from webmacs.frame_ids import controller_id_error
from webmacs.http.context import services, tree
from webmacs.http.errors import validation_response
from webmacs.http.guards import AUTH_REQUIRED, AuthFailed, authenticate, bearer_token
from webmacs.http.responses import json_response
from webmacs.http.ws_activity import ABORT_KEY, SCOPE_KEY
from webmacs.validation import FieldError

log = logging.getLogger(__name__)
bp = Blueprint("websockets", __name__)


class QuartPort:
    """Adapts Quart's websocket object to :class:`~webmacs.actors.ports.WebSocketPort`."""

    async def receive(self) -> str | bytes:
        data: str | bytes = await websocket.receive()
        return data

    async def send(self, data: str | bytes) -> None:
        await websocket.send(data)

    async def close(self, code: int, reason: str = "") -> None:
        await websocket.close(code, reason)

    def abort(self) -> None:
        extensions: dict[str, Any] = websocket.scope.get("extensions") or {}  # type: ignore[assignment]
        abort = extensions.get(ABORT_KEY)
        if callable(abort):
            abort()


def _token() -> str | None:
    return websocket.args.get("token") or bearer_token(websocket.headers.get("Authorization"))


def _refusal(exc: AuthFailed) -> Any:
    # A plain HTTP answer instead of the upgrade: never accept-then-close (§5.1).
    return json_response({"detail": exc.detail}, exc.status, exc.headers)


def _activity() -> Activity:
    activity = Activity()
    extensions: dict[str, Any] = websocket.scope.setdefault("extensions", {})  # type: ignore[assignment]
    extensions[SCOPE_KEY] = activity
    return activity


@bp.websocket("/ws/controller/telemetry")
async def controller_telemetry() -> Any:
    svc, actors = services(), tree()
    token = _token()
    if token is None and svc.settings.ws_anonymous_telemetry:
        who = "anonymous controller"
    else:
        try:
            user, _ = await authenticate(svc, token)
        except AuthFailed as exc:
            return _refusal(exc)
        who = f"controller {user.username}"
    ids = websocket.args.getlist("controller_id")
    problem = controller_id_error(ids)
    if problem is not None:  # refused before the upgrade, like a bad token (§5.1)
        return validation_response(
            [FieldError(("query", "controller_id"), problem, "string_pattern_mismatch",
                        ids[0] if len(ids) == 1 else ids)]
        )
    controller_id = ids[0] if ids else None
    if controller_id is not None:
        who = f"{who} [{controller_id}]"
    if actors.shutting_down.is_set():
        return json_response({"detail": "Server shutting down."}, 503)
    await websocket.accept()
    activity = _activity()
    log.info("%s connected from %s", who, websocket.remote_addr)
    settings = svc.settings

    async def session() -> None:
        await run_controller_session(
            QuartPort(), actors.ingest, activity, settings.ws_heartbeat_interval,
            actors.shutting_down, settings.max_batch, name=who, controller_id=controller_id,
        )

    await actors.run_connection(session)
    return None


@bp.websocket("/ws/datapoints/stream")
async def datapoint_stream() -> Any:
    svc, actors = services(), tree()
    try:
        token = _token()
        if token is None:
            raise AuthFailed(AUTH_REQUIRED)
        await authenticate(svc, token)
    except AuthFailed as exc:
        return _refusal(exc)
    if actors.shutting_down.is_set():
        return json_response({"detail": "Server shutting down."}, 503)
    flt = StreamFilter(
        event_ids=frozenset(websocket.args.getlist("event_public_id")),
        experiment_id=websocket.args.get("experiment_public_id") or None,
    )
    await websocket.accept()
    activity = _activity()
    sub = await actors.subscribe(flt)

    async def subscriber() -> None:
        await run_subscriber(QuartPort(), sub, actors.hub_sender, activity,
                             svc.settings.ws_heartbeat_interval, actors.shutting_down)

    await actors.run_connection(subscriber)
    return None
