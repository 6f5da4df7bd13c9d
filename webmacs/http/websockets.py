"""The two WebSockets of §5 as thin shims: authenticate before the upgrade, then hand the
connection to its actor (a controller session or a subscriber) in the actor tree."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from quart import Blueprint, websocket

from webmacs.actors.controller_session import run_controller_session
from webmacs.actors.credential_watch import OpenSocket, run_closable
from webmacs.actors.hub import StreamFilter
from webmacs.actors.messages import Ticket
from webmacs.actors.ports import Activity, ConnectionClosed
from webmacs.actors.subscriber import run_subscriber
from webmacs.commands import controller_identity
from webmacs.frame_ids import FrameTag, controller_id_error
from webmacs.http.context import services, tree
from webmacs.http.errors import ApiError, error_response, validation_response
from webmacs.http.guards import Principal, authenticate, bearer_token, check_scope, require
from webmacs.http.responses import json_response
from webmacs.http.session_cookie import SESSION_COOKIE
from webmacs.http.ws_activity import ABORT_KEY, DIRECT_KEY, SCOPE_KEY, DirectSender
from webmacs.http.ws_compression import COMPRESS_MIN_BYTES
from webmacs.roles import Role
from webmacs.services import Services
from webmacs.settings import Settings
from webmacs.storage.records import NewReading
from webmacs.validation import FieldError, new_public_id
from webmacs.ws_trust import address_in, origin_allowed

log = logging.getLogger(__name__)
bp = Blueprint("websockets", __name__)
ORIGIN_REFUSED = "Origin not allowed."


class QuartPort:
    """Adapts Quart's websocket object to :class:`~webmacs.actors.ports.WebSocketPort`.

    Small text messages (stream frames of a few readings, acks) go straight to the socket
    (:class:`~webmacs.http.ws_activity.DirectSender`); larger ones, and any the direct path
    declines, through Quart and Hypercorn, compressed if the client negotiated it."""

    def __init__(self) -> None:
        extensions: dict[str, Any] = websocket.scope.get("extensions") or {}  # type: ignore[assignment]
        self._direct: DirectSender | None = extensions.get(DIRECT_KEY)
        self._abort: Any = extensions.get(ABORT_KEY)

    @property
    def direct(self) -> DirectSender | None:
        """For the hub's writes without a task switch (None in the in-process test client)."""
        return self._direct

    async def receive(self) -> str | bytes:
        try:
            data: str | bytes = await websocket.receive()
        except trio.EndOfChannel:  # the client closed; what it sent before was read
            raise ConnectionClosed from None
        return data

    async def send(self, data: str | bytes) -> None:
        if (self._direct is not None and isinstance(data, str) and len(data) < COMPRESS_MIN_BYTES
                and await self._direct.send(data.encode())):
            return
        await websocket.send(data)

    async def close(self, code: int, reason: str = "") -> None:
        await websocket.close(code, reason)

    def abort(self) -> None:
        if callable(self._abort):
            self._abort()


def _explicit_token() -> str | None:
    return websocket.args.get("token") or bearer_token(websocket.headers.get("Authorization"))


def _origin_ok(settings: Settings) -> bool:
    return origin_allowed(websocket.headers.get("Origin"), websocket.scheme,
                          websocket.headers.get("Host", ""), settings.cors_origins)


def _anonymous_telemetry_ok(settings: Settings) -> bool:
    return settings.ws_anonymous_telemetry or address_in(
        websocket.remote_addr, settings.ws_anonymous_telemetry_networks)


async def _admit(svc: Services, *, telemetry: bool) -> Principal | None:
    """Who is connecting (None: an anonymous controller), or an :class:`ApiError` refusal.

    An explicit token (``?token=`` or Bearer) wins and is all that is checked. Otherwise the
    ambient credentials count: the session cookie, only with an allowed ``Origin`` (browsers
    always send one on an upgrade); for telemetry, the source network, and then any ``Origin``
    sent (a browser page inside that network) must be allowed too.
    """
    token = _explicit_token()
    if token is None:
        cookie = websocket.cookies.get(SESSION_COOKIE) or None
        if cookie is not None:
            if not _origin_ok(svc.settings):
                raise ApiError(403, ORIGIN_REFUSED)
            token = cookie
        elif telemetry and _anonymous_telemetry_ok(svc.settings):
            if websocket.headers.get("Origin") is not None and not _origin_ok(svc.settings):
                raise ApiError(403, ORIGIN_REFUSED)  # a foreign page inside the trusted network
            return None
    principal = await authenticate(svc, token)
    check_scope(principal, websocket.endpoint, "GET")
    return principal


async def _run_guarded(principal: Principal | None, needs: Role, session: Callable[[], Awaitable[None]],
                       kind: str) -> None:
    """Run the connection actor; an authenticated one is closed with 1008 when its credential
    stops qualifying (revoked, owner deleted or demoted: webmacs.actors.credential_watch)."""
    actors = tree()
    if principal is None:
        await actors.run_connection(session, kind)
        return
    port = QuartPort()

    async def guarded() -> None:
        credential = OpenSocket(principal.user.public_id, principal.api_token, principal.role,
                                needs, jti=principal.jti, issued_at=principal.issued_at)
        await run_closable(actors.sockets, credential, session, port.close)

    await actors.run_connection(guarded, kind)


def _activity() -> Activity:
    activity = Activity()
    extensions: dict[str, Any] = websocket.scope.setdefault("extensions", {})  # type: ignore[assignment]
    extensions[SCOPE_KEY] = activity
    return activity


@bp.websocket("/ws/controller/telemetry")
async def controller_telemetry() -> Any:
    svc, actors = services(), tree()
    try:
        principal = await _admit(svc, telemetry=True)
        if principal is not None:
            require(principal, Role.OPERATOR)  # viewers read the stream, they do not send
    except ApiError as exc:
        return error_response(exc)  # plain HTTP, no upgrade: never accept-then-close (§5.1)
    who = "anonymous controller" if principal is None else f"controller {principal.user.username}"
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
    identity = controller_identity(controller_id, new_public_id())
    if actors.shutting_down.is_set():
        return json_response({"detail": "Server shutting down."}, 503)
    await websocket.accept()
    activity = _activity()
    log.info("%s connected from %s", who, websocket.remote_addr)
    settings = svc.settings

    async def submit(readings: tuple[NewReading, ...], tag: FrameTag | None) -> Ticket:
        return await actors.ingest(readings, tag, origin=identity)

    async def session() -> None:
        await run_controller_session(
            QuartPort(), submit, activity, settings.ws_heartbeat_interval,
            actors.shutting_down, settings.max_batch, name=who, controller_id=controller_id,
            commands=lambda: actors.commander.open_session(identity),
        )

    await _run_guarded(principal, Role.OPERATOR, session, "controller")
    return None


@bp.websocket("/ws/datapoints/stream")
async def datapoint_stream() -> Any:
    svc, actors = services(), tree()
    try:
        principal = await _admit(svc, telemetry=False)
    except ApiError as exc:
        return error_response(exc)  # plain HTTP, no upgrade: never accept-then-close (§5.1)
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
                             svc.settings.ws_heartbeat_interval, actors.shutting_down, actors.pacer)

    await _run_guarded(principal, Role.VIEWER, subscriber, "subscriber")
    return None
