"""Ambient WebSocket credentials (contract §8) over real sockets: the session cookie with its
Origin check, and token-less telemetry by source network. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from test_websockets import CONNECTED, STREAM, TELEMETRY, frame, readings, recv_json, rejected, running_server

from webmacs.http.session_cookie import SESSION_COOKIE

REFUSED = {"detail": "Origin not allowed."}
CONSOLE = "http://console.lab:5173"


def cookie(token: str, origin: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"other=1; {SESSION_COOKIE}={token}"}
    if origin is not None:
        headers["Origin"] = origin
    return headers


async def test_cookie_opens_both_sockets_from_the_own_or_a_listed_origin(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path, CORS_ORIGINS=CONSOLE) as server:
        event = await server.event()
        own = f"http://127.0.0.1:{server.port}"
        for origin in (own, CONSOLE):
            async with server.ws(STREAM, headers=cookie(server.token, origin)) as ws:
                assert await recv_json(ws) == CONNECTED
            async with server.ws(TELEMETRY, headers=cookie(server.token, origin)) as ws:
                await ws.send_message(frame(readings(event, [1.0]), seq=1))
                assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": 1, "rejected": []}


async def test_cookie_from_a_foreign_or_missing_origin_is_refused_403_before_the_upgrade(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path, CORS_ORIGINS=f"{CONSOLE},*") as server:
        port = server.port
        for origin in ("https://evil.example", f"http://localhost:{port}", f"http://127.0.0.1:{port + 1}",
                       f"https://127.0.0.1:{port}", "null", None):
            for path in (STREAM, TELEMETRY):
                # ConnectionRejected: a plain HTTP answer, never an accepted-then-closed socket.
                status, hdrs, body = await rejected(server, path, headers=cookie(server.token, origin))
                assert (status, body) == (403, REFUSED), (path, origin)
                assert hdrs["content-type"].startswith("application/json")
        assert server.running.tree.connections == 0


async def test_an_explicit_token_wins_over_the_cookie(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path) as server:
        own = f"http://127.0.0.1:{server.port}"
        bad = cookie("not-a-jwt", "https://evil.example")
        # A good explicit token with a bad cookie from anywhere: the token is what counts.
        async with server.ws(STREAM, server.token, headers=bad) as ws:
            assert await recv_json(ws) == CONNECTED
        async with server.ws(STREAM, headers={**bad, "Authorization": f"Bearer {server.token}"}) as ws:
            assert await recv_json(ws) == CONNECTED
        # A bad explicit token with a good cookie is still a bad token.
        status, _, body = await rejected(server, STREAM, "not-a-jwt", headers=cookie(server.token, own))
        assert (status, body) == (401, {"detail": "Invalid or expired token."})
        # A bad or revoked cookie from the right origin: the §3.4 answers.
        status, hdrs, body = await rejected(server, STREAM, headers=cookie("not-a-jwt", own))
        assert (status, body) == (401, {"detail": "Invalid or expired token."})
        assert hdrs["www-authenticate"] == "Bearer"
        revoked = await server.login()
        resp = await server.http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {revoked}"})
        assert resp.status_code == 200
        status, _, body = await rejected(server, TELEMETRY, headers=cookie(revoked, own))
        assert (status, body) == (401, {"detail": "Token has been revoked."})
        # An empty cookie (what logout leaves behind) is no credential at all.
        status, _, body = await rejected(server, STREAM, headers=cookie("", own))
        assert (status, body) == (401, {"detail": "Authentication required."})


async def test_anonymous_telemetry_from_a_listed_network(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path,
                              WS_ANONYMOUS_TELEMETRY_NETWORKS="10.0.0.0/8, 127.0.0.0/8") as server:
        event = await server.event()
        async with server.ws(TELEMETRY) as ws:  # the socket peer is 127.0.0.1
            await ws.send_message(frame(readings(event, [2.5]), seq=7))
            assert await recv_json(ws) == {"type": "ack", "seq": 7, "accepted": 1, "rejected": []}
        assert [r["value"] for r in await server.datapoints(event_public_id=event)] == [2.5]
        own = f"http://127.0.0.1:{server.port}"
        async with server.ws(TELEMETRY, headers={"Origin": own}):
            pass
        # A page of a foreign origin inside the network does not get in on the address.
        status, _, body = await rejected(server, TELEMETRY, headers={"Origin": "https://evil.example"})
        assert (status, body) == (403, REFUSED)
        # A presented token is still checked, and the stream never takes anonymous clients.
        status, _, body = await rejected(server, TELEMETRY, "not-a-jwt")
        assert (status, body) == (401, {"detail": "Invalid or expired token."})
        status, _, body = await rejected(server, STREAM)
        assert (status, body) == (401, {"detail": "Authentication required."})


async def test_no_anonymous_telemetry_from_outside_the_networks(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path, WS_ANONYMOUS_TELEMETRY_NETWORKS="10.0.0.0/8") as server:
        status, hdrs, body = await rejected(server, TELEMETRY)
        assert (status, body) == (401, {"detail": "Authentication required."})
        assert hdrs["www-authenticate"] == "Bearer"
        async with server.ws(TELEMETRY, server.token):  # tokens work as ever
            pass
