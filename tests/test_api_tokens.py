"""API tokens (contract §8): created once-shown, stored hashed, listed, revoked; Bearer and
``?token=`` on REST and both WebSockets; scope ``telemetry``; sockets closed with 1008 when the
token is revoked or its owner deleted or demoted. Real SQLite and PostgreSQL, real servers."""

from __future__ import annotations

import hashlib
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import trio
import trio_websocket
from conftest import bearer, create_event, create_user
from test_websockets import (
    CONNECTED,
    STREAM,
    TELEMETRY,
    Server,
    recv_json,
    rejected,
    running_server,
)

from webmacs.api_tokens import SCOPE_REFUSED
from webmacs.services import Services

TOKENS = "/api/v1/tokens"
CLOSE_BOUND_S = 1.0


async def make_token(client: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await client.post(TOKENS, json={"name": "controller", **body}, headers=headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    data: dict[str, Any] = await resp.get_json()
    return data


def stored_rows(services: Services) -> list[dict[str, Any]]:
    return services.db.read_sync(lambda c: [dict(r._mapping) for r in c.execute(
        sa.text("SELECT public_id, name, role, scopes, secret_hash FROM api_tokens"))])


async def test_create_shows_the_secret_once_and_stores_only_its_hash(
    client: Any, admin_headers: dict[str, str], services: Services
) -> None:
    created = await make_token(client, admin_headers, scopes=["telemetry"])
    secret = created["token"]
    assert secret.startswith("wm_") and len(secret) >= 3 + 43
    assert created["role"] == "admin" and created["scopes"] == ["telemetry"]
    assert created["expires_at"] is None
    [row] = stored_rows(services)
    assert str(row["public_id"]) .replace("-", "") == created["public_id"].replace("-", "")
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(row)
    listed = await (await client.get(TOKENS, headers=admin_headers)).get_json()
    assert listed["total"] == 1 and "token" not in listed["data"][0]
    assert secret not in str(listed) and row["secret_hash"] not in str(listed)


async def test_bearer_on_rest_and_its_role_and_expiry(
    client: Any, admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers)
    token = (await make_token(client, user["headers"]))["token"]
    me = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200 and (await me.get_json())["public_id"] == user["public_id"]
    # role above one's own
    resp = await client.post(TOKENS, json={"name": "x", "role": "admin"}, headers=user["headers"])
    assert resp.status_code == 403
    # an operator-role token of an admin cannot manage users
    op = (await make_token(client, admin_headers, role="operator"))["token"]
    assert (await client.get("/api/v1/users", headers=bearer(op))).status_code == 403
    # bad bodies
    for body in ({"name": ""}, {"name": "x", "scopes": ["everything"]}, {"name": "x", "role": "root"},
                 {"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, {"name": "x", "expires_at": "soon"}):
        assert (await client.post(TOKENS, json=body, headers=admin_headers)).status_code == 422, body
    # a token cannot mint tokens
    resp = await client.post(TOKENS, json={"name": "x"}, headers=bearer(token))
    assert resp.status_code == 403
    # unknown and expired
    resp = await client.get("/api/v1/auth/me", headers=bearer("wm_" + "A" * 43))
    assert resp.status_code == 401 and (await resp.get_json())["detail"] == "Invalid or expired token."
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    short = (await make_token(client, admin_headers, expires_at=soon))["token"]
    await trio.sleep(1.2)
    resp = await client.get("/api/v1/auth/me", headers=bearer(short))
    assert resp.status_code == 401 and (await resp.get_json())["detail"] == "Invalid or expired token."


async def test_list_own_admins_all_and_revoke(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    mine = await make_token(client, user["headers"], name="mine")
    theirs = await make_token(client, admin_headers, name="admin's")
    own = await (await client.get(TOKENS, headers=user["headers"])).get_json()
    assert [t["public_id"] for t in own["data"]] == [mine["public_id"]]
    every = await (await client.get(TOKENS, headers=admin_headers)).get_json()
    assert {t["public_id"] for t in every["data"]} == {mine["public_id"], theirs["public_id"]}
    assert {t["owner_email"] for t in every["data"]} == {user["email"], "admin@webmacs.io"}
    # someone else's token looks unknown
    resp = await client.delete(f"{TOKENS}/{theirs['public_id']}", headers=user["headers"])
    assert resp.status_code == 404
    resp = await client.delete(f"{TOKENS}/{mine['public_id']}", headers=user["headers"])
    assert resp.status_code == 204
    resp = await client.get("/api/v1/auth/me", headers=bearer(mine["token"]))
    assert resp.status_code == 401
    assert (await client.delete(f"{TOKENS}/{mine['public_id']}", headers=admin_headers)).status_code == 404
    assert (await client.delete(f"{TOKENS}/{theirs['public_id']}", headers=admin_headers)).status_code == 204
    # deleting the owner deletes its tokens
    other = await make_token(client, user["headers"])
    gone = await client.delete(f"/api/v1/users/{user['public_id']}", headers=admin_headers)
    assert gone.status_code == 200
    assert (await client.get("/api/v1/events", headers=bearer(other["token"]))).status_code == 401


async def test_logout_with_an_api_token_is_refused_plainly(
    client: Any, admin_headers: dict[str, str]
) -> None:
    token = (await make_token(client, admin_headers))["token"]
    resp = await client.post("/api/v1/auth/logout", headers=bearer(token))
    assert resp.status_code == 400


def _routes(app: Any) -> list[tuple[str, str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.endswith("_slash") or rule.websocket:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            path = rule.rule
            for arg in rule.arguments:
                path = path.replace(f"<{arg}>", "00000000-0000-4000-8000-000000000000")
                path = path.replace(f"<datapoint_id:{arg}>", "00000000-0000-4000-8000-000000000000")
                path = path.replace(f"<path:{arg}>", "x")
            out.append((rule.endpoint, method, path))
    return out


async def test_scope_telemetry_reads_events_and_nothing_else(
    app: Any, client: Any, admin_headers: dict[str, str]
) -> None:
    token = (await make_token(client, admin_headers, scopes=["telemetry"]))["token"]
    event = await create_event(client, admin_headers)
    assert (await client.get("/api/v1/events", headers=bearer(token))).status_code == 200
    assert (await client.get(f"/api/v1/events/{event}", headers=bearer(token))).status_code == 200
    allowed = {"events.list_events", "events.get_event"}
    checked = 0
    for endpoint, method, path in _routes(app):
        if endpoint in allowed:
            continue
        if (await client.open(path, method=method, json={})).status_code != 401:
            continue  # a public route: no credential is looked at
        resp = await client.open(path, method=method, headers=bearer(token), json={})
        body = await resp.get_data(as_text=True)
        assert resp.status_code == 403 and SCOPE_REFUSED in body, (endpoint, method, resp.status_code)
        checked += 1
    assert checked > 20


async def test_last_used_at_is_written_in_batches(
    client: Any, admin_headers: dict[str, str], services: Services, tree: Any
) -> None:
    created = await make_token(client, admin_headers)
    writes: list[int] = []
    touch = services.repos.api_tokens.touch

    async def counted(used: Any) -> None:
        writes.append(len(used))
        await touch(used)

    services.repos.api_tokens.touch = counted  # type: ignore[method-assign]
    pending = services.token_usage
    for _ in range(30):
        assert (await client.get("/api/v1/events", headers=bearer(created["token"]))).status_code == 200
    assert len(pending) == 1 and writes == []  # nothing written per request
    await touch(pending.take())
    listed = await (await client.get(TOKENS, headers=admin_headers)).get_json()
    assert listed["data"][0]["last_used_at"] is not None


# ---------------------------------------------------------------- real server, real sockets


async def _server_token(server: Server, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    resp = await server.http.post(TOKENS, json={"name": "c", **body}, headers=headers or server.headers)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def _closed_for(ws: Any, bound: float) -> tuple[int, str]:
    """The close code and reason, within ``bound`` (plus slack for a busy machine)."""
    start = time.monotonic()
    with trio.fail_after(5):
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            assert time.monotonic() - start < bound + 0.5, time.monotonic() - start
            return exc.reason.code, exc.reason.reason


async def _closed_within(ws: Any, bound: float) -> int:
    return (await _closed_for(ws, bound))[0]


async def test_websockets_take_the_token_and_close_with_1008_on_revocation(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server, AsyncExitStack() as stack:
        scoped = await _server_token(server, scopes=["telemetry"])
        plain = await _server_token(server)
        # the telemetry scope: telemetry yes, stream no (before the upgrade)
        await rejected(server, STREAM, scoped["token"])
        tele = await stack.enter_async_context(server.ws(TELEMETRY, scoped["token"]))
        bearer_tele = await stack.enter_async_context(
            server.ws(TELEMETRY, headers=bearer(plain["token"])))
        stream = await stack.enter_async_context(server.ws(STREAM, plain["token"]))
        assert await recv_json(stream) == CONNECTED
        bearer_stream = await stack.enter_async_context(server.ws(STREAM, headers=bearer(plain["token"])))
        assert await recv_json(bearer_stream) == CONNECTED
        await tele.send_message('{"seq": 1, "datapoints": []}')
        assert (await recv_json(tele))["type"] == "ack"
        assert (await server.http.delete(f"{TOKENS}/{scoped['public_id']}",
                                         headers=server.headers)).status_code == 204
        assert await _closed_within(tele, 0.2) == 1008
        assert (await server.http.delete(f"{TOKENS}/{plain['public_id']}",
                                         headers=server.headers)).status_code == 204
        assert await _closed_within(stream, 0.2) == 1008
        assert await _closed_within(bearer_tele, 0.2) == 1008
        assert await _closed_within(bearer_stream, 0.2) == 1008
        await rejected(server, TELEMETRY, plain["token"])


async def test_revocation_from_elsewhere_closes_within_a_second(
    database_url: str, tmp_path: Path
) -> None:
    """A write the server did not make (another instance, the CLI): the watcher sees it."""
    async with running_server(database_url, tmp_path) as server, AsyncExitStack() as stack:
        token = await _server_token(server)
        ws = await stack.enter_async_context(server.ws(TELEMETRY, token["token"]))
        await ws.send_message('{"seq": 1, "datapoints": []}')
        await recv_json(ws)
        db = server.running.services.db
        db.write_sync(lambda c: c.execute(sa.text("DELETE FROM api_tokens")))
        assert await _closed_within(ws, CLOSE_BOUND_S) == 1008


async def test_deleting_or_demoting_the_owner_closes_its_sockets(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server, AsyncExitStack() as stack:
        created = await server.http.post("/api/v1/users", headers=server.headers, json={
            "email": "boss@lab.local", "username": "boss", "password": "password123", "admin": True})
        boss_id = created.json()["public_id"]
        login = await server.login("boss@lab.local", "password123")
        admin_token = await _server_token(server, bearer(login), role="admin")
        # a socket that needs admin does not exist yet; demoting closes sockets needing more
        # than operator: none here, so the sockets of an operator-role token stay open
        op_token = await _server_token(server, bearer(login), role="operator")
        kept = await stack.enter_async_context(server.ws(TELEMETRY, op_token["token"]))
        stream = await stack.enter_async_context(server.ws(STREAM, admin_token["token"]))
        assert await recv_json(stream) == CONNECTED
        resp = await server.http.put(f"/api/v1/users/{boss_id}", headers=server.headers,
                                     json={"admin": False})
        assert resp.status_code == 200
        await kept.send_message('{"seq": 1, "datapoints": []}')
        assert (await recv_json(kept))["type"] == "ack"
        # a viewer may not send telemetry: that socket closes, the stream stays
        resp = await server.http.put(f"/api/v1/users/{boss_id}", headers=server.headers,
                                     json={"role": "viewer"})
        assert resp.status_code == 200
        assert await _closed_within(kept, 0.2) == 1008
        await stream.send_message('{"type": "ping"}')
        assert await recv_json(stream) == {"type": "pong"}
        gone = await server.http.delete(f"/api/v1/users/{boss_id}", headers=server.headers)
        assert gone.status_code == 200
        assert await _closed_within(stream, 0.2) == 1008
        with pytest.raises(trio_websocket.HandshakeError):
            async with server.ws(TELEMETRY, op_token["token"]):
                pass


async def test_a_demotion_made_elsewhere_closes_within_a_second(
    database_url: str, tmp_path: Path
) -> None:
    """A role lowered by another instance or the CLI (here: straight in the database)."""
    async with running_server(database_url, tmp_path) as server, AsyncExitStack() as stack:
        token = await _server_token(server)
        ws = await stack.enter_async_context(server.ws(TELEMETRY, token["token"]))
        await ws.send_message('{"seq": 1, "datapoints": []}')
        await recv_json(ws)
        server.running.services.db.write_sync(
            lambda c: c.execute(sa.text("UPDATE users SET role = 'viewer'")))
        assert await _closed_within(ws, CLOSE_BOUND_S) == 1008


async def test_login_token_sockets_close_when_the_login_stops_qualifying_elsewhere(
    database_url: str, tmp_path: Path
) -> None:
    """Sockets opened with a login token, and changes this server did not make (another instance,
    the CLI: here straight in the database): the user deleted or demoted below what the socket
    needs, the token logged out, the password changed. Each closes with 1008 and its reason
    within a second; the sockets of other logins stay open."""
    async with running_server(database_url, tmp_path) as server, AsyncExitStack() as stack:
        logins: dict[str, tuple[str, Any]] = {}
        for name in ("gone", "demoted", "out", "password", "kept"):
            resp = await server.http.post("/api/v1/users", headers=server.headers, json={
                "email": f"{name}@lab.local", "username": name, "password": "password123",
                "role": "operator"})
            assert resp.status_code == 201, resp.text
            token = await server.login(f"{name}@lab.local", "password123")
            ws = await stack.enter_async_context(server.ws(TELEMETRY, token))
            await ws.send_message('{"seq": 1, "datapoints": []}')
            assert (await recv_json(ws))["type"] == "ack"
            logins[name] = (token, ws)
        kept_stream = await stack.enter_async_context(server.ws(STREAM, logins["demoted"][0]))
        assert await recv_json(kept_stream) == CONNECTED
        from webmacs.storage.tables import users

        by_name = users.c.username
        for change in (users.delete().where(by_name == "gone"),
                       users.update().where(by_name == "demoted").values(role="viewer"),
                       users.update().where(by_name == "password").values(
                           tokens_valid_after=datetime.now(UTC))):
            server.running.services.db.write_sync(lambda c, change=change: c.execute(change))
        claims = server.running.services.tokens.decode(logins["out"][0])
        assert claims is not None
        await server.running.services.repos.tokens.revoke(claims.jti, claims.expires_at)
        expected = {"gone": "User not found.", "demoted": "Role no longer allows this connection.",
                    "out": "Token has been revoked.", "password": "Token has been revoked."}
        for name, reason in expected.items():
            assert await _closed_for(logins[name][1], CLOSE_BOUND_S) == (1008, reason), name
        # A viewer may still watch: the demoted user's stream stays, and so does the other login.
        await kept_stream.send_message('{"type": "ping"}')
        assert await recv_json(kept_stream) == {"type": "pong"}
        await logins["kept"][1].send_message('{"seq": 2, "datapoints": []}')
        assert (await recv_json(logins["kept"][1]))["type"] == "ack"


async def test_logging_out_closes_the_sockets_of_that_login_at_once(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server, AsyncExitStack() as stack:
        token = await server.login()
        stream = await stack.enter_async_context(server.ws(STREAM, token))
        assert await recv_json(stream) == CONNECTED
        other = await stack.enter_async_context(server.ws(STREAM, server.token))  # another login
        assert await recv_json(other) == CONNECTED
        resp = await server.http.post("/api/v1/auth/logout", headers=bearer(token))
        assert resp.status_code == 200
        assert await _closed_for(stream, 0.2) == (1008, "Token has been revoked.")
        await other.send_message('{"type": "ping"}')
        assert await recv_json(other) == {"type": "pong"}


async def test_the_simulator_runs_on_a_telemetry_token_and_stops_when_it_is_revoked(
    live_server: Any, database_url: str
) -> None:
    """``webmacs simulate --token``: a controller on an API token instead of a password."""
    import httpx
    from test_simulator import sim_config, total

    from webmacs.simulator.client import Simulation, SimulatorError

    first = Simulation(sim_config(live_server.base_url, controllers=1, duration=0.5))
    await first.run()  # creates its events with the admin's login
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as http:
        login = (await http.post("/api/v1/auth/login", json={
            "email": "admin@webmacs.io", "password": "admin123"})).json()["access_token"]
        created = (await http.post(TOKENS, headers=bearer(login),
                                   json={"name": "sim", "scopes": ["telemetry"]})).json()
        sim = Simulation(sim_config(live_server.base_url, controllers=1, duration=1.0,
                                    password="wrong", token=created["token"]))
        await sim.run()
        assert total(sim).acked > 0 and total(sim).unacked == 0
        revoked = await http.delete(f"{TOKENS}/{created['public_id']}", headers=bearer(login))
        assert revoked.status_code == 204
    with pytest.raises(SimulatorError, match=r"cannot list events: Invalid or expired token\."):
        await Simulation(sim_config(live_server.base_url, controllers=1, duration=1.0,
                                    token=created["token"])).run()
