"""Authorization matrix: every route of the app × {anonymous, viewer, operator, admin}, over REST
and both WebSockets, on a real server.

The routes are read from the app's ``url_map``: a route added without a row in ``MATRIX`` (or a
row left behind by a removed route) fails ``test_every_route_has_a_row``. Each row says the least
role that may call the route and what a permitted call answers; every call gets fresh objects
created by the admin, so a viewer or operator acting on them acts on someone else's objects.
Viewers read; operators also write events, experiments, datapoints and logs; admins manage users.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from conftest import ADMIN_PASSWORD
from test_websockets import STREAM, TELEMETRY, Server, recv_json, rejected, running_server

from webmacs.http.app import create_app
from webmacs.http.guards import ADMIN_REQUIRED, REFUSALS
from webmacs.roles import Role

API = "/api/v1"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


class Access(Enum):
    PUBLIC = "public"  # no token needed
    VIEWER = "viewer"  # any authenticated user: every role reads
    OPERATOR = "operator"  # writes the lab's data: 403 for a viewer
    ADMIN = "admin"  # 403 for a viewer or an operator
    SELF_OR_ADMIN = "self"  # a non-admin only on their own user id (the rows target another user)


PRINCIPALS = ("anonymous", "viewer", "operator", "admin")


@dataclass
class Call:
    params: dict[str, str]
    body: Any = None


Make = Callable[["World"], Awaitable[Call]]


@dataclass
class Row:
    access: Access
    ok: int  # what a permitted caller gets
    make: Make
    slashed: bool = True  # REST paths answer with a trailing slash too (§2.1); the page's files do not


class World:
    """Objects to act on, created through the API by the admin."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = server.http
        self.admin = server.headers

    async def create(self, path: str, body: dict[str, Any]) -> str:
        resp = await self.http.post(API + path, json=body, headers=self.admin)
        assert resp.status_code == 201, resp.text
        public_id: str = resp.json()["public_id"]
        return public_id

    async def event(self) -> str:
        return await self.create("/events", {"name": f"ev-{uuid.uuid4().hex[:8]}", "min_value": 0,
                                             "max_value": 100, "unit": "°C", "type": "sensor"})

    async def no_running_experiment(self) -> None:
        resp = await self.http.get(API + "/experiments", params={"page_size": 1000}, headers=self.admin)
        for experiment in resp.json()["data"]:
            if experiment["stopped_on"] is None:
                await self.server.stop_experiment(experiment["public_id"])

    async def experiment(self) -> str:
        await self.no_running_experiment()
        return await self.create("/experiments", {"name": f"exp-{uuid.uuid4().hex[:8]}"})

    async def datapoint(self) -> str:
        return await self.create("/datapoints", {"value": 1.5, "event_public_id": await self.event()})

    async def log_entry(self) -> str:
        return await self.create("/logging", {"content": "note", "logging_type": "info"})

    async def other_user(self) -> str:
        return await self.create("/users", new_user())


def new_user(**extra: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    return {"email": f"u{suffix}@lab.local", "username": f"u{suffix}", "password": "password123",
            **extra}


def fixed(body: Any = None) -> Make:
    async def make(_w: World) -> Call:
        return Call({}, body)
    return make


def with_id(factory: Callable[[World], Awaitable[str]], body: Any = None) -> Make:
    async def make(w: World) -> Call:
        return Call({"public_id": await factory(w)}, body)
    return make


async def _new_user(_w: World) -> Call:
    return Call({}, new_user())


async def _rename_other_user(w: World) -> Call:
    return Call({"public_id": await w.other_user()}, {"username": f"r{uuid.uuid4().hex[:8]}"})


async def _new_experiment(w: World) -> Call:
    await w.no_running_experiment()
    return Call({}, {"name": f"exp-{uuid.uuid4().hex[:8]}"})


async def _new_datapoint(w: World) -> Call:
    return Call({}, {"value": 2.5, "event_public_id": await w.event()})


async def _batch(w: World) -> Call:
    return Call({}, {"datapoints": [{"value": 3.5, "event_public_id": await w.event()}]})


async def _series(w: World) -> Call:
    return Call({}, {"event_public_ids": [await w.event()], "minutes": 60})


async def _new_event(_w: World) -> Call:
    return Call({}, {"name": f"ev-{uuid.uuid4().hex[:8]}", "min_value": 0, "max_value": 1,
                     "unit": "V", "type": "sensor"})


async def _rename_experiment(w: World) -> Call:
    return Call({"public_id": await w.experiment()}, {"name": f"exp-{uuid.uuid4().hex[:8]}"})


async def _page_file(_w: World) -> Call:
    return Call({"filename": "app.js"})


LOG = {"content": "note", "logging_type": "info"}
LOG_ROWS: dict[tuple[str, str], Row] = {
    ("", "GET"): Row(Access.VIEWER, 200, fixed()),
    ("", "POST"): Row(Access.OPERATOR, 201, fixed(LOG)),
    ("/<public_id>", "GET"): Row(Access.VIEWER, 200, with_id(World.log_entry)),
    ("/<public_id>", "PUT"): Row(Access.OPERATOR, 200, with_id(World.log_entry, {"status_type": "read"})),
    ("/<public_id>", "DELETE"): Row(Access.OPERATOR, 200, with_id(World.log_entry)),
}

MATRIX: dict[tuple[str, str], Row] = {
    ("/health", "GET"): Row(Access.PUBLIC, 200, fixed()),
    ("/openapi.json", "GET"): Row(Access.PUBLIC, 200, fixed()),
    ("/docs", "GET"): Row(Access.PUBLIC, 200, fixed()),
    # Quart's default static route; webmacs ships no static folder, so nothing is behind it.
    ("/static/<path:filename>", "GET"): Row(Access.PUBLIC, 404, fixed()),
    # The live page (webmacs/http/web.py): its files are public, its data comes from the API.
    ("/", "GET"): Row(Access.PUBLIC, 200, fixed(), slashed=False),
    ("/ui/<path:filename>", "GET"): Row(Access.PUBLIC, 200, _page_file, slashed=False),
    (f"{API}/metrics", "GET"): Row(Access.VIEWER, 200, fixed()),
    ("/metrics", "GET"): Row(Access.ADMIN, 200, fixed()),  # Prometheus, unless METRICS_BIND
    (f"{API}/auth/login", "POST"): Row(
        Access.PUBLIC, 200, fixed({"email": "admin@webmacs.io", "password": ADMIN_PASSWORD})),
    (f"{API}/auth/logout", "POST"): Row(Access.VIEWER, 200, fixed()),
    (f"{API}/auth/me", "GET"): Row(Access.VIEWER, 200, fixed()),
    (f"{API}/users", "GET"): Row(Access.ADMIN, 200, fixed()),
    (f"{API}/users", "POST"): Row(Access.ADMIN, 201, _new_user),
    (f"{API}/users/<public_id>", "GET"): Row(Access.SELF_OR_ADMIN, 200, with_id(World.other_user)),
    (f"{API}/users/<public_id>", "PUT"): Row(Access.SELF_OR_ADMIN, 200, _rename_other_user),
    (f"{API}/users/<public_id>", "DELETE"): Row(Access.ADMIN, 200, with_id(World.other_user)),
    (f"{API}/events", "GET"): Row(Access.VIEWER, 200, fixed()),
    (f"{API}/events", "POST"): Row(Access.OPERATOR, 201, _new_event),
    (f"{API}/events/<public_id>", "GET"): Row(Access.VIEWER, 200, with_id(World.event)),
    (f"{API}/events/<public_id>", "PUT"): Row(Access.OPERATOR, 200, with_id(World.event, {"unit": "K"})),
    (f"{API}/events/<public_id>", "DELETE"): Row(Access.OPERATOR, 200, with_id(World.event)),
    (f"{API}/experiments", "GET"): Row(Access.VIEWER, 200, fixed()),
    (f"{API}/experiments", "POST"): Row(Access.OPERATOR, 201, _new_experiment),
    (f"{API}/experiments/<public_id>", "GET"): Row(Access.VIEWER, 200, with_id(World.experiment)),
    (f"{API}/experiments/<public_id>", "PUT"): Row(Access.OPERATOR, 200, _rename_experiment),
    (f"{API}/experiments/<public_id>/stop", "PUT"): Row(Access.OPERATOR, 200, with_id(World.experiment)),
    (f"{API}/experiments/<public_id>", "DELETE"): Row(Access.OPERATOR, 200, with_id(World.experiment)),
    (f"{API}/experiments/<public_id>/export/csv", "GET"): Row(Access.VIEWER, 200, with_id(World.experiment)),
    (f"{API}/datapoints", "GET"): Row(Access.VIEWER, 200, fixed()),
    (f"{API}/datapoints", "POST"): Row(Access.OPERATOR, 201, _new_datapoint),
    (f"{API}/datapoints/batch", "POST"): Row(Access.OPERATOR, 201, _batch),
    (f"{API}/datapoints/bulk", "POST"): Row(Access.OPERATOR, 201, _batch),
    (f"{API}/datapoints/series", "POST"): Row(Access.VIEWER, 200, _series),
    (f"{API}/datapoints/latest", "GET"): Row(Access.VIEWER, 200, fixed()),
    (f"{API}/datapoints/<datapoint_id:public_id>", "GET"): Row(Access.VIEWER, 200, with_id(World.datapoint)),
    (f"{API}/datapoints/<datapoint_id:public_id>", "DELETE"): Row(
        Access.OPERATOR, 200, with_id(World.datapoint)),
    **{(f"{API}/{base}{suffix}", method): row
       for base in ("logging", "logs") for (suffix, method), row in LOG_ROWS.items()},
}
WEBSOCKETS = {TELEMETRY, STREAM}



def fill(rule: str, params: dict[str, str]) -> str:
    """``/x/<datapoint_id:public_id>`` → ``/x/<params['public_id']>`` (a static file name: ``x``)."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: params.get(m.group(1), "x"), rule)


def app_routes(app: Any) -> tuple[set[tuple[str, str]], set[str]]:
    """(REST rule without its trailing-slash twin, method) pairs, and the WebSocket rules."""
    rest: set[tuple[str, str]] = set()
    sockets: set[str] = set()
    for rule in app.url_map.iter_rules():
        if rule.websocket:
            sockets.add(rule.rule)
            continue
        for method in set(rule.methods or ()) - IGNORED_METHODS:
            rest.add((rule.rule.rstrip("/") if rule.rule != "/" else rule.rule, method))
    return rest, sockets


async def test_every_route_has_a_row(services: Any, tree: Any) -> None:
    rest, sockets = app_routes(create_app(services, tree))
    assert rest - MATRIX.keys() == set(), "routes with no authorization row"
    assert MATRIX.keys() - rest == set(), "rows for routes that no longer exist"
    assert sockets == WEBSOCKETS


def _expectation(row: Row, principal: str) -> tuple[int, str | None]:
    """The status (and ``detail``, for refusals) ``principal`` must get from ``row``."""
    if row.access is Access.PUBLIC:
        return row.ok, None
    if principal == "anonymous":
        return 401, "Authentication required."
    needed = Role.ADMIN if row.access is Access.SELF_OR_ADMIN else Role[row.access.name]
    if Role[principal.upper()] < needed:
        return 403, REFUSALS[needed]
    return row.ok, None


async def test_rest_matrix_and_websockets(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path) as server:
        world = World(server)
        credentials = {"admin": ("admin@webmacs.io", ADMIN_PASSWORD)}
        ids = {}
        for role in ("viewer", "operator"):
            account = new_user(role=role)
            resp = await server.http.post(f"{API}/users", json=account, headers=server.headers)
            assert resp.status_code == 201, resp.text
            credentials[role] = (account["email"], account["password"])
            ids[role] = resp.json()["public_id"]
        tokens = {role: await server.login(*pair) for role, pair in credentials.items()}

        mismatches = []
        calls = 0
        for (rule, method), row in sorted(MATRIX.items(), key=lambda kv: kv[0]):
            for principal in PRINCIPALS:
                for slash in ("", "/") if row.slashed else ("",):
                    call = await row.make(world)
                    token = tokens.get(principal)
                    if token is not None and rule == f"{API}/auth/logout":
                        token = await server.login(*credentials[principal])  # logout revokes it
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    path = fill(rule, call.params) + slash
                    resp = await server.http.request(method, path, json=call.body, headers=headers)
                    calls += 1
                    status, detail = _expectation(row, principal)
                    got_detail = resp.json().get("detail") if detail is not None else None
                    if (resp.status_code, got_detail) != (status, detail):
                        mismatches.append((method, path, principal, resp.status_code, resp.text[:200]))
                    if status == 401 and resp.headers.get("WWW-Authenticate") != "Bearer":
                        mismatches.append((method, path, principal, "no WWW-Authenticate"))
        assert mismatches == []
        assert calls == sum(len(PRINCIPALS) * (2 if row.slashed else 1) for row in MATRIX.values())

        # Viewers and operators read and edit their own profile, but cannot change their role.
        for role in ("viewer", "operator"):
            own = f"{API}/users/{ids[role]}"
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            resp = await server.http.get(own, headers=headers)
            assert (resp.status_code, resp.json()["role"], resp.json()["admin"]) == (200, role, False)
            assert (await server.http.put(own, json={"username": f"me-{role}"}, headers=headers)
                    ).status_code == 200
            assert (await server.http.put(own, json={"role": role, "admin": False}, headers=headers)
                    ).status_code == 200  # their own role, restated: no change
            for change in ({"admin": True}, {"role": "admin"},
                           {"role": "operator" if role == "viewer" else "viewer"}):
                resp = await server.http.put(own, json=change, headers=headers)
                assert (resp.status_code, resp.json()) == (403, {"detail": ADMIN_REQUIRED}), change

        # WebSockets: anonymous refused before the upgrade; the stream is for every role,
        # telemetry for operators and admins (a viewer gets 403 before the upgrade).
        for path in sorted(WEBSOCKETS):
            status, _, body = await rejected(server, path)
            assert (status, body) == (401, {"detail": "Authentication required."}), path
        status, _, body = await rejected(server, TELEMETRY, tokens["viewer"])
        assert (status, body) == (403, {"detail": "Operator role required."})
        for role in ("viewer", "operator", "admin"):
            await _accepted(server, STREAM, tokens[role])
        for role in ("operator", "admin"):
            await _accepted(server, TELEMETRY, tokens[role])


async def _accepted(server: Server, path: str, token: str) -> None:
    async with server.ws(path, token) as ws:
        if path == STREAM:
            assert (await recv_json(ws))["type"] == "connected"
        else:
            await ws.send_message('{"seq": 1, "datapoints": []}')
            assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": 0, "rejected": []}
