"""Two real ``webmacs serve`` processes on one PostgreSQL database with the NATS bus: a token
revoked on one closes its sockets on the other within a second (its credential watcher), and
is refused there within the lookup cache's second; a user deleted on one has the sockets of
their logins on the other closed the same way. Skipped without PostgreSQL or NATS, like
tests/test_multi_instance.py."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import trio
import trio_websocket
from conftest import PG_ADMIN_DSN
from instances import Instances, fresh_database
from test_api_tokens import _closed_for
from test_bus import NATS_URL
from test_multi_instance import REVOCATION_BOUND_S, _login, _need_pg_and_nats

CLOSE_BOUND_S = 1.0


async def test_revoking_on_one_instance_closes_sockets_on_the_other(tmp_path: Path) -> None:
    _need_pg_and_nats()
    with fresh_database(PG_ADMIN_DSN) as url:
        pair = Instances(2, url, NATS_URL, tmp_path)
        try:
            async with httpx.AsyncClient(base_url=pair[0].base_url, timeout=10) as a, \
                    httpx.AsyncClient(base_url=pair[1].base_url, timeout=10) as b:
                admin = {"Authorization": f"Bearer {await _login(a)}"}
                created = (await a.post("/api/v1/tokens", headers=admin,
                                        json={"name": "ctl", "scopes": ["telemetry"]})).json()
                secret = {"Authorization": f"Bearer {created['token']}"}
                assert (await b.get("/api/v1/events", headers=secret)).status_code == 200
                url_b = f"{pair[1].ws_url}/ws/controller/telemetry?token={created['token']}"
                async with trio_websocket.open_websocket_url(url_b) as ws:
                    await ws.send_message('{"seq": 1, "datapoints": []}')
                    assert '"ack"' in await ws.get_message()
                    resp = await a.delete(f"/api/v1/tokens/{created['public_id']}", headers=admin)
                    assert resp.status_code == 204
                    assert await _closed_for(ws, CLOSE_BOUND_S) == (1008, "Token has been revoked.")
                deadline = time.monotonic() + REVOCATION_BOUND_S
                while (status := (await b.get("/api/v1/events", headers=secret)).status_code) != 401:
                    assert time.monotonic() < deadline, status
                    await trio.sleep(0.05)

                # A login token's socket on B, its user deleted on A.
                user = (await a.post("/api/v1/users", headers=admin, json={
                    "email": "leaving@lab.local", "username": "leaving", "password": "password123",
                    "role": "viewer"})).json()
                login = (await b.post("/api/v1/auth/login", json={
                    "email": "leaving@lab.local", "password": "password123"})).json()
                url_b = f"{pair[1].ws_url}/ws/datapoints/stream?token={login['access_token']}"
                async with trio_websocket.open_websocket_url(url_b) as ws:
                    assert '"connected"' in await ws.get_message()
                    resp = await a.delete(f"/api/v1/users/{user['public_id']}", headers=admin)
                    assert resp.status_code == 200
                    assert await _closed_for(ws, CLOSE_BOUND_S) == (1008, "User not found.")
        finally:
            codes = pair.stop()
        assert codes == [0, 0], [i.output()[-2000:] for i in pair.all]
