"""WebSockets (contract §5, with §4.4's ingestion pipeline) over real sockets.

Every test starts the real server in-process (``webmacs.server.serve``: Hypercorn's trio worker,
the actor tree, the services) on an ephemeral port, talks to it with trio-websocket, httpx and,
where a client must misbehave (never read, never answer pings), a hand-written WebSocket client
on a raw TCP socket. Each test runs on SQLite and PostgreSQL and stops its server at the end.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio_websocket
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings

from webmacs.server import Running, serve
from webmacs.settings import Settings

TELEMETRY = "/ws/controller/telemetry"
STREAM = "/ws/datapoints/stream"
DP = "/api/v1/datapoints"
MiB = 1024 * 1024
CONNECTED = {"type": "connected", "message": "Subscribed to live datapoint stream."}
UNKNOWN = "3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23"  # a well-formed UUID4 that is never issued
# Tests that are not about heartbeats get a 10 s one (20 s of silence before a 1011). Client and
# server share one loop here, and on a busy CI host a 0.5 s heartbeat closed sockets in the middle
# of large frames and floods. Heartbeat tests set their own interval.
TEST_HEARTBEAT = "10"


# ---------------------------------------------------------------- the server under test


class Server:
    def __init__(self, running: Running, settings: Settings, http: httpx.AsyncClient,
                 shutdown: trio.Event) -> None:
        self.running = running
        self.settings = settings
        self.http = http
        self.shutdown = shutdown
        self.base_url = running.binds[0]
        parts = urlsplit(self.base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.ws_base = "ws://" + parts.netloc
        self.token = ""
        self.headers: dict[str, str] = {}

    async def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
        resp = await self.http.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    async def event(self, name: str | None = None) -> str:
        resp = await self.http.post(
            "/api/v1/events", headers=self.headers,
            json={"name": name or f"event-{uuid.uuid4().hex[:8]}", "min_value": 0, "max_value": 100,
                  "unit": "°C", "type": "sensor"},
        )
        assert resp.status_code == 201, resp.text
        public_id: str = resp.json()["public_id"]
        return public_id

    async def start_experiment(self, name: str | None = None) -> str:
        resp = await self.http.post("/api/v1/experiments", headers=self.headers,
                                    json={"name": name or f"exp-{uuid.uuid4().hex[:8]}"})
        assert resp.status_code == 201, resp.text
        public_id: str = resp.json()["public_id"]
        return public_id

    async def stop_experiment(self, public_id: str) -> dict[str, Any]:
        resp = await self.http.put(f"/api/v1/experiments/{public_id}/stop", headers=self.headers)
        assert resp.status_code == 200, resp.text
        got = await self.http.get(f"/api/v1/experiments/{public_id}", headers=self.headers)
        body: dict[str, Any] = got.json()
        return body

    async def datapoints(self, **params: Any) -> list[dict[str, Any]]:
        """Every datapoint matching the filters, through REST (all pages)."""
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            resp = await self.http.get(DP, headers=self.headers,
                                       params={**params, "page": page, "page_size": 1000})
            assert resp.status_code == 200, resp.text
            data = resp.json()["data"]
            rows.extend(data)
            if len(data) < 1000:
                return rows
            page += 1

    def url(self, path: str, token: str | None = None, **query: Any) -> str:
        params: list[tuple[str, str]] = []
        if token is not None:
            params.append(("token", token))
        for key, value in query.items():
            for v in value if isinstance(value, list) else [value]:
                params.append((key, v))
        qs = "&".join(f"{k}={v}" for k, v in params)
        return self.ws_base + path + (f"?{qs}" if qs else "")

    def ws(self, path: str, token: str | None = None, *, headers: dict[str, str] | None = None,
           queue: int = 100_000, **query: Any) -> Any:
        """A trio-websocket client (its reader answers pings by itself)."""
        return trio_websocket.open_websocket_url(
            self.url(path, token, **query),
            extra_headers=[(k.encode(), v.encode()) for k, v in (headers or {}).items()],
            message_queue_size=queue, max_message_size=16 * MiB,
            connect_timeout=10, disconnect_timeout=5,
        )

    def telemetry(self, **kw: Any) -> Any:
        return self.ws(TELEMETRY, self.token, **kw)

    async def subscribe(self, stack: Any, **query: Any) -> Any:
        """An open stream socket whose ``connected`` frame has been read."""
        ws = await stack.enter_async_context(self.ws(STREAM, self.token, **query))
        assert await recv_json(ws) == CONNECTED
        return ws


@asynccontextmanager
async def running_server(
    database_url: str, tmp_path: Path, *, access_log: bool = False, **env: str
) -> AsyncIterator[Server]:
    """The real server on an ephemeral port; stopped (and checked to stop) on exit."""
    env = {"PORT": "0", "HOST": "127.0.0.1", "WS_HEARTBEAT_INTERVAL": TEST_HEARTBEAT, **env}
    settings = make_settings(database_url, tmp_path, **env)
    shutdown = trio.Event()
    stopped = trio.Event()

    async def run(task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await serve(settings, access_log=access_log, install_signal_handlers=False,
                        shutdown=shutdown, task_status=task_status)
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            running: Running = await nursery.start(run)
        try:
            async with httpx.AsyncClient(base_url=running.binds[0], timeout=30) as http:
                server = Server(running, settings, http, shutdown)
                server.token = await server.login()
                server.headers = {"Authorization": f"Bearer {server.token}"}
                yield server
        finally:
            shutdown.set()
            with trio.fail_after(15):
                await stopped.wait()


# ---------------------------------------------------------------- client helpers


def no_pacing(server: Server) -> None:
    """For tests that expect every reading delivered: on a busy machine (a full test run) the
    loop can lag enough for fan-out pacing to shed readings (tested in tests/test_pacing.py)."""
    server.running.tree.pacer.observe = lambda lag: None  # type: ignore[method-assign]


async def recv_json(ws: Any, timeout: float = 10.0) -> Any:
    with trio.fail_after(timeout):
        return json.loads(await ws.get_message())


async def assert_silent(ws: Any, window: float = 0.4) -> None:
    with trio.move_on_after(window):
        message = await ws.get_message()
        pytest.fail(f"expected no frame, got {message!r}")


async def closed_with(ws: Any, timeout: float = 10.0) -> int:
    """Read until the server closes; the close code."""
    with trio.fail_after(timeout):
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            code: int = exc.reason.code
            return code


async def rejected(server: Server, path: str, token: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """Connect expecting a plain HTTP refusal: status, headers, JSON body."""
    with pytest.raises(trio_websocket.ConnectionRejected) as info:
        async with server.ws(path, token, headers=headers):
            pass
    exc = info.value
    hdrs = {k.decode().lower(): v.decode() for k, v in exc.headers}
    return exc.status_code, hdrs, json.loads(exc.body or b"null")


def frame(items: list[dict[str, Any]], seq: int | None = None) -> str:
    body: dict[str, Any] = {"datapoints": items}
    if seq is not None:
        body["seq"] = seq
    return json.dumps(body)


def readings(event_id: str, values: list[float], **extra: Any) -> list[dict[str, Any]]:
    return [{"value": v, "event_public_id": event_id, **extra} for v in values]


class StreamReader:
    """Collects the readings a stream socket receives, in order; remembers control frames."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.rows: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []
        self.changed = trio.Event()

    async def run(self) -> None:
        try:
            while True:
                msg = json.loads(await self.ws.get_message())
                if msg.get("type") == "datapoints_batch":
                    assert msg["datapoints"], "empty data frames are never sent"
                    self.rows.extend(msg["datapoints"])
                else:
                    self.other.append(msg)
                self.changed.set()
                self.changed = trio.Event()
        except trio_websocket.ConnectionClosed:
            pass

    async def wait_for(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with trio.fail_after(timeout):
            while len(self.rows) < n:
                await self.changed.wait()
        return self.rows


async def read_rows(ws: Any, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Exactly ``n`` readings from a stream socket (skipping control frames)."""
    rows: list[dict[str, Any]] = []
    with trio.fail_after(timeout):
        while len(rows) < n:
            msg = json.loads(await ws.get_message())
            if msg.get("type") == "datapoints_batch":
                rows.extend(msg["datapoints"])
    assert len(rows) == n, rows
    return rows


# ---------------------------------------------------------------- a raw WebSocket client


class RawWebSocket:
    """A minimal client on a plain TCP socket: it reads only when told to and never answers a
    ping by itself, so it can be a peer that does not read or a peer that is silent."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, host: str, port: int, path: str, rcvbuf: int | None = None) -> RawWebSocket:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the advertised window stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect((host, port))
        self = cls(trio.SocketStream(sock))
        key = base64.b64encode(os.urandom(16)).decode()
        await self.stream.send_all(
            (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
             ).encode()
        )
        with trio.fail_after(10):
            while b"\r\n\r\n" not in self.buffer:
                await self._fill()
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        status = head.split(b"\r\n", 1)[0]
        assert status.split()[1] == b"101", head
        return self

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("connection closed")
        self.buffer += data

    async def _exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            await self._fill()
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def recv_frame(self) -> tuple[int, bytes]:
        """One frame from the server (never masked): opcode and payload."""
        b0, b1 = await self._exact(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(await self._exact(2), "big")
        elif length == 127:
            length = int.from_bytes(await self._exact(8), "big")
        return b0 & 0x0F, await self._exact(length)

    async def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = bytes([0x81, 0x80 | n])
        elif n < 65536:
            header = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await self.stream.send_all(header + mask + masked)

    async def close_code(self, timeout: float) -> tuple[int, list[dict[str, Any]]]:
        """Read until the server's close frame: its code, and the text frames before it."""
        texts: list[dict[str, Any]] = []
        with trio.fail_after(timeout):
            while True:
                opcode, payload = await self.recv_frame()
                if opcode == 0x8:
                    return int.from_bytes(payload[:2], "big"), texts
                if opcode == 0x1:
                    texts.append(json.loads(payload))

    async def aclose(self) -> None:
        await self.stream.aclose()


# ---------------------------------------------------------------- §5.1 authentication


async def test_handshake_refuses_missing_bad_revoked_and_orphaned_tokens_with_401(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        revoked = await server.login()
        resp = await server.http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {revoked}"})
        assert resp.status_code == 200, resp.text
        resp = await server.http.post("/api/v1/users", headers=server.headers, json={
            "email": "gone@lab.local", "username": "gone", "password": "password123", "admin": False})
        assert resp.status_code == 201, resp.text
        gone_id = resp.json()["public_id"]
        orphaned = await server.login("gone@lab.local", "password123")
        resp = await server.http.delete(f"/api/v1/users/{gone_id}", headers=server.headers)
        assert resp.status_code == 200, resp.text

        cases: list[tuple[str | None, dict[str, str] | None, str]] = [
            (None, None, "Authentication required."),
            ("", None, "Authentication required."),
            (None, {"Authorization": "Basic YWRtaW46YWRtaW4xMjM="}, "Authentication required."),
            ("not-a-jwt", None, "Invalid or expired token."),
            (None, {"Authorization": "Bearer not-a-jwt"}, "Invalid or expired token."),
            (server.token[:-4] + "AAAA", None, "Invalid or expired token."),
            (revoked, None, "Token has been revoked."),
            (None, {"Authorization": f"Bearer {revoked}"}, "Token has been revoked."),
            (orphaned, None, "User not found."),
        ]
        for path in (TELEMETRY, STREAM):
            for token, headers, detail in cases:
                # ConnectionRejected means a plain HTTP answer instead of 101: never accept-then-close.
                status, hdrs, body = await rejected(server, path, token, headers)
                assert (status, body) == (401, {"detail": detail}), (path, token, headers)
                assert hdrs["content-type"].startswith("application/json")
                assert hdrs["www-authenticate"] == "Bearer"
        assert server.running.tree.connections == 0


async def test_token_accepted_in_query_and_in_authorization_header(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        bearer = {"Authorization": f"Bearer {server.token}"}
        lower = {"Authorization": f"bearer {server.token}"}
        for token, headers in ((server.token, None), (None, bearer), (None, lower)):
            async with server.ws(STREAM, token, headers=headers) as ws:
                assert await recv_json(ws) == CONNECTED
            async with server.ws(TELEMETRY, token, headers=headers) as ws:
                await ws.send_message(frame(readings(event, [1.0]), seq=1))
                assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": 1, "rejected": []}


async def test_anonymous_telemetry_when_enabled_but_never_anonymous_subscribers(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path, WS_ANONYMOUS_TELEMETRY="true") as server:
        event = await server.event()
        async with server.ws(TELEMETRY) as ws:  # no token at all, like a v2 controller
            await ws.send_message(frame(readings(event, [4.5])))  # v2 frame
            await ws.send_message(frame(readings(event, [5.5]), seq=1))
            assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": 1, "rejected": []}
        assert sorted(r["value"] for r in await server.datapoints(event_public_id=event)) == [4.5, 5.5]
        # A token that is presented is still checked, and the stream never takes anonymous clients.
        status, _, body = await rejected(server, TELEMETRY, "not-a-jwt")
        assert (status, body) == (401, {"detail": "Invalid or expired token."})
        status, _, body = await rejected(server, STREAM)
        assert (status, body) == (401, {"detail": "Authentication required."})


# ---------------------------------------------------------------- §5.2 telemetry


async def test_v2_frames_are_stored_and_broadcast_and_get_no_reply(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        async with server.ws(STREAM, server.token) as sub, server.telemetry() as ws:
            assert await recv_json(sub) == CONNECTED
            # Exactly what the v2 controller sends: string values, no timestamps, no seq.
            await ws.send_message(json.dumps({"datapoints": [
                {"value": "21.5", "event_public_id": event}, {"value": "22", "event_public_id": event}]}))
            await ws.send_message(json.dumps({"datapoints": [{"value": 23.25, "event_public_id": event}]}))
            # Problems in a v2 connection are logged, never answered (v2 never reads its socket).
            await ws.send_message("this is not json")
            await ws.send_message(json.dumps({"datapoints": "nope"}))
            await ws.send_message(json.dumps({"datapoints": [{"value": 1, "event_public_id": UNKNOWN},
                                                             {"value": 24, "event_public_id": event}]}))
            await ws.send_message(json.dumps({"datapoints": []}))
            rows = await read_rows(sub, 4)
            await assert_silent(ws, 0.5)
            assert [r["value"] for r in rows] == [21.5, 22.0, 23.25, 24.0]
            for row in rows:
                assert set(row) == {"public_id", "value", "event_public_id", "timestamp",
                                    "experiment_public_id"}
                assert row["event_public_id"] == event and row["experiment_public_id"] is None
                assert row["timestamp"].endswith("+00:00")
            stored = await server.datapoints(event_public_id=event)
            assert {r["public_id"]: r for r in stored} == {r["public_id"]: r for r in rows}
            await assert_silent(sub, 0.2)  # each reading broadcast once


async def test_ack_only_after_commit_in_frame_order_with_rejections(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        async with server.telemetry() as ws:
            await ws.send_message(frame(readings(event, [1.0, 2.0, 3.0]), seq=1))
            assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": 3, "rejected": []}
            # Read-your-writes: the acked rows are visible to the very next request.
            assert sorted(r["value"] for r in await server.datapoints(event_public_id=event)) == [1, 2, 3]

            # Ten frames pipelined: ten acks, in frame order, each after its own commit.
            for seq in range(10, 20):
                await ws.send_message(frame(readings(event, [seq * 100.0 + i for i in range(seq - 9)]), seq))
            for seq in range(10, 20):
                ack = await recv_json(ws)
                assert ack == {"type": "ack", "seq": seq, "accepted": seq - 9, "rejected": []}
                values = {r["value"] for r in await server.datapoints(event_public_id=event)}
                assert {seq * 100.0 + i for i in range(seq - 9)} <= values, f"ack {seq} before commit"

            # Bad items are rejected by name; the good ones of the frame are committed.
            items: list[Any] = [
                {"value": 7, "event_public_id": event},
                {"value": 1, "event_public_id": UNKNOWN},
                {"value": "abc", "event_public_id": event},
                {"value": "NaN", "event_public_id": event},
                {"value": True, "event_public_id": event},
                {"value": 1, "event_public_id": event, "timestamp": "yesterday"},
                {"value": 1, "event_public_id": event, "timestamp": "2026-02-10T20:44:08"},
                {"value": 1},
                "not an object",
                {"value": "8.5", "event_public_id": event},
            ]
            await ws.send_message(frame(items, seq=42))
            ack = await recv_json(ws)
            assert (ack["type"], ack["seq"], ack["accepted"]) == ("ack", 42, 2)
            assert [(r["index"], r["event_public_id"]) for r in ack["rejected"]] == [
                (1, UNKNOWN), (2, event), (3, event), (4, event), (5, event), (6, event), (7, None),
                (8, None)]
            assert ack["rejected"][0]["detail"] == "Event not found."
            assert all(isinstance(r["detail"], str) and r["detail"] for r in ack["rejected"])
            values = [r["value"] for r in await server.datapoints(event_public_id=event)]
            assert values.count(7.0) == 1 and values.count(8.5) == 1 and len(values) == 3 + 55 + 2

            # Every item bad: still an ack (nothing stored); empty frames: ack only with seq.
            await ws.send_message(frame([{"value": 1, "event_public_id": UNKNOWN}], seq=43))
            ack = await recv_json(ws)
            assert (ack["seq"], ack["accepted"], len(ack["rejected"])) == (43, 0, 1)
            await ws.send_message(frame([]))
            await ws.send_message(frame([], seq=44))
            assert await recv_json(ws) == {"type": "ack", "seq": 44, "accepted": 0, "rejected": []}
            await assert_silent(ws, 0.3)


async def test_bad_frames_get_error_frames_and_the_connection_stays_open(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        async with server.telemetry() as ws:
            await ws.send_message("{oops")  # no seq used yet: a v2 client, no reply
            await assert_silent(ws, 0.3)
            await ws.send_message(frame(readings(event, [1.0]), seq=1))
            assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": 1, "rejected": []}
            bad: list[tuple[str | bytes, int | None, str]] = [
                ("{oops", None, "Malformed JSON frame."),
                ('{"seq": 2, "datapoints": [NaN]}', None, "Malformed JSON frame."),
                (b'{"seq": 3, "datapoints": []}', None, "Malformed JSON frame."),
                ("[1, 2]", None, "Frame must be a JSON object."),
                ('"text"', None, "Frame must be a JSON object."),
                ('{"seq": "4", "datapoints": []}', None, "Field 'seq' must be an integer."),
                ('{"seq": 4.5, "datapoints": []}', None, "Field 'seq' must be an integer."),
                ('{"seq": true, "datapoints": []}', None, "Field 'seq' must be an integer."),
                ('{"seq": 5}', 5, "Field 'datapoints' must be a list."),
                ('{"seq": 6, "datapoints": {"value": 1}}', 6, "Field 'datapoints' must be a list."),
                ('{"datapoints": null}', None, "Field 'datapoints' must be a list."),
            ]
            for raw, _, _ in bad:
                await ws.send_message(raw)
            await ws.send_message(frame(readings(event, [2.0]), seq=7))
            for _, seq, detail in bad:
                assert await recv_json(ws) == {"type": "error", "seq": seq, "detail": detail}, detail
            assert await recv_json(ws) == {"type": "ack", "seq": 7, "accepted": 1, "rejected": []}
            for seq in (-1, 0, 2**63 - 1):  # any integer is a seq, echoed as sent
                await ws.send_message(frame([], seq=seq))
                assert await recv_json(ws) == {"type": "ack", "seq": seq, "accepted": 0, "rejected": []}
            assert sorted(r["value"] for r in await server.datapoints(event_public_id=event)) == [1, 2]


async def test_frame_limits_batch_too_large_error_and_1009_over_two_mib(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        limit = server.settings.max_batch
        assert limit == 10_000
        async with server.telemetry() as ws:
            await ws.send_message(frame([{"value": 1, "event_public_id": event}] * (limit + 1), seq=1))
            assert await recv_json(ws) == {
                "type": "error", "seq": 1,
                "detail": f"Batch too large: {limit + 1} datapoints (limit {limit})."}
            # A full MAX_BATCH frame with timestamps fits the frame limit and is stored whole.
            base = datetime(2026, 2, 10, 20, 0, tzinfo=UTC)
            full = [{"value": i * 0.5, "event_public_id": event,
                     "timestamp": (base + timedelta(microseconds=i)).isoformat()} for i in range(limit)]
            text = frame(full, seq=2)
            assert MiB < len(text) < 2 * MiB
            await ws.send_message(text)
            assert await recv_json(ws, 30) == {"type": "ack", "seq": 2, "accepted": limit, "rejected": []}
            resp = await server.http.get(DP, headers=server.headers,
                                         params={"event_public_id": event, "page_size": 1})
            assert resp.json()["total"] == limit
            # Exactly 2 MiB is still a frame; one byte more closes the connection with 1009.
            head = '{"seq": 3, "datapoints": [], "pad": "'
            exact = head + "x" * (2 * MiB - len(head) - 2) + '"}'
            assert len(exact) == 2 * MiB
            await ws.send_message(exact)
            assert await recv_json(ws) == {"type": "ack", "seq": 3, "accepted": 0, "rejected": []}
            await ws.send_message(exact[:-2] + 'x"}')
            assert await closed_with(ws) == 1009


async def test_per_reading_timestamps_and_experiment_stamping(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        done_id = await server.start_experiment()
        await trio.sleep(0.2)
        done = await server.stop_experiment(done_id)
        started, stopped = (datetime.fromisoformat(done[k]) for k in ("started_on", "stopped_on"))
        assert stopped - started >= timedelta(seconds=0.1)
        running_id = await server.start_experiment()
        middle = started + (stopped - started) / 2
        plus2 = timezone(timedelta(hours=2))
        cases: list[tuple[str | None, datetime | None, str | None]] = [
            # (timestamp sent, instant expected, experiment expected)
            (middle.isoformat(), middle, done_id),  # buffered during an outage, sent after the stop
            (middle.astimezone(plus2).isoformat(), middle, done_id),  # any offset, stored as UTC
            (started.isoformat(), started, done_id),  # [started_on, stopped_on)
            (stopped.isoformat(), stopped, None),
            ((started - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
             started - timedelta(hours=1), None),
            (None, None, running_id),  # no timestamp: arrival time, the running experiment
        ]
        items = [{"value": float(i), "event_public_id": event, **({"timestamp": t} if t else {})}
                 for i, (t, _, _) in enumerate(cases)]
        async with server.ws(STREAM, server.token) as sub, server.telemetry() as ws:
            assert await recv_json(sub) == CONNECTED
            before = datetime.now(UTC)
            await ws.send_message(frame(items, seq=1))
            assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": len(cases), "rejected": []}
            after = datetime.now(UTC)
            streamed = {r["value"]: r for r in await read_rows(sub, len(cases))}
        stored = {r["value"]: r for r in await server.datapoints(event_public_id=event)}
        assert streamed == stored
        for i, (_, instant, experiment) in enumerate(cases):
            row = stored[float(i)]
            assert row["experiment_public_id"] == experiment, (i, row)
            assert row["timestamp"].endswith("+00:00") and len(row["timestamp"]) == 32, row
            when = datetime.fromisoformat(row["timestamp"])
            if instant is None:
                assert before - timedelta(seconds=1) <= when <= after + timedelta(seconds=1)
            else:
                assert when == instant, (i, row)
        by_experiment = await server.datapoints(experiment_public_id=done_id)
        assert sorted(r["value"] for r in by_experiment) == [0.0, 1.0, 2.0]


async def test_a_recorder_crash_fails_its_frame_loudly_and_loses_no_acked_reading(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        handle = server.running.tree.router.recorders[None]

        def raise_once(batch: object) -> None:
            handle.fault = None
            raise RuntimeError("injected recorder crash")

        acked: set[float] = set()
        failed: set[float] = set()
        async with server.telemetry() as ws:
            handle.fault = raise_once
            await ws.send_message(frame(readings(event, [1.0, 1.5]), seq=1))
            assert await recv_json(ws) == {"type": "error", "seq": 1, "detail": "Database unavailable."}
            failed |= {1.0, 1.5}
            for seq in (2, 3):  # the recorder was restarted: later frames are stored and acked
                await ws.send_message(frame(readings(event, [float(seq)]), seq))
                assert await recv_json(ws) == {"type": "ack", "seq": seq, "accepted": 1, "rejected": []}
                acked.add(float(seq))

            # A crash in the middle of pipelined frames: every frame gets its reply, in order.
            handle.fault = raise_once
            for seq in range(10, 30):
                await ws.send_message(frame(readings(event, [seq + 0.1, seq + 0.2]), seq))
            for seq in range(10, 30):
                reply = await recv_json(ws)
                assert reply["seq"] == seq, reply
                if reply["type"] == "ack":
                    assert (reply["accepted"], reply["rejected"]) == (2, [])
                    acked |= {seq + 0.1, seq + 0.2}
                else:
                    assert reply == {"type": "error", "seq": seq, "detail": "Database unavailable."}
                    failed |= {seq + 0.1, seq + 0.2}
            assert len(failed) > 2, "the injected crash failed no pipelined frame"
            await ws.send_message(frame(readings(event, [99.0]), seq=99))
            assert await recv_json(ws) == {"type": "ack", "seq": 99, "accepted": 1, "rejected": []}
            acked.add(99.0)
        values = [r["value"] for r in await server.datapoints(event_public_id=event)]
        assert len(values) == len(set(values))
        assert set(values) == acked  # no acked reading lost, no failed reading half-stored
        assert handle.fault is None and server.running.tree.healthy
        health = await server.http.get("/health")
        assert health.status_code == 200 and health.json()["database"] == "ok"


# ---------------------------------------------------------------- §5.3 stream


async def test_stream_filters_by_events_and_experiment(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path) as server, AsyncExitStack() as stack:
        a, b, c = await server.event("A"), await server.event("B"), await server.event("C")
        exp = await server.start_experiment()
        subs = {
            "all": await server.subscribe(stack),
            "a": await server.subscribe(stack, event_public_id=a),
            "ab": await server.subscribe(stack, event_public_id=[a, b]),
            "exp": await server.subscribe(stack, experiment_public_id=exp),
            "a&exp": await server.subscribe(stack, event_public_id=a, experiment_public_id=exp),
            "unknown": await server.subscribe(stack, event_public_id=UNKNOWN),
            "unknown-exp": await server.subscribe(stack, experiment_public_id=UNKNOWN),
        }
        async with server.telemetry() as ws:
            # In the experiment: 1, 2, 3; then outside it: 11, 12, 13.
            await ws.send_message(frame([{"value": 1, "event_public_id": a},
                                         {"value": 2, "event_public_id": b},
                                         {"value": 3, "event_public_id": c}], seq=1))
            assert (await recv_json(ws))["accepted"] == 3
            await server.stop_experiment(exp)
            await ws.send_message(frame([{"value": 11, "event_public_id": a},
                                         {"value": 12, "event_public_id": b},
                                         {"value": 13, "event_public_id": c}], seq=2))
            assert (await recv_json(ws))["accepted"] == 3
        expected = {
            "all": [1, 2, 3, 11, 12, 13], "a": [1, 11], "ab": [1, 2, 11, 12], "exp": [1, 2, 3],
            "a&exp": [1], "unknown": [], "unknown-exp": [],
        }
        await read_rows(subs["all"], 6)  # everything is published by now
        for name, values in expected.items():
            if name == "all":
                continue
            rows = await read_rows(subs[name], len(values))
            assert [r["value"] for r in rows] == values, name
            await assert_silent(subs[name], 0.05)


async def test_rest_ingestion_reaches_the_stream(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        async with server.ws(STREAM, server.token) as sub:
            assert await recv_json(sub) == CONNECTED
            resp = await server.http.post(DP, headers=server.headers,
                                          json={"value": "1.0", "event_public_id": event})
            assert resp.status_code == 201, resp.text
            single = resp.json()["public_id"]
            (row,) = await read_rows(sub, 1)
            assert (row["public_id"], row["value"], row["event_public_id"]) == (single, 1.0, event)
            for path in (f"{DP}/batch", f"{DP}/bulk/"):
                resp = await server.http.post(path, headers=server.headers, json={"datapoints": [
                    {"value": 2, "event_public_id": event}, {"value": 5, "event_public_id": UNKNOWN},
                    {"value": "3.5", "event_public_id": event, "timestamp": "2026-02-10T20:44:08.5Z"}]})
                assert resp.status_code == 201 and resp.json()["accepted"] == 2, resp.text
                rows = await read_rows(sub, 2)
                assert [r["value"] for r in rows] == [2.0, 3.5]
                assert rows[1]["timestamp"] == "2026-02-10T20:44:08.500000+00:00"
            stored = {r["public_id"] for r in await server.datapoints(event_public_id=event)}
            assert len(stored) == 5 and single in stored
            await assert_silent(sub, 0.2)


async def test_a_subscriber_that_never_reads_delays_no_one(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stuck socket is closed with 1013 after this, then aborted after as long again (the
    # grace period): long enough that the test reads the 1013 before the abort on a busy machine.
    stuck_timeout = 3.0
    async with running_server(database_url, tmp_path, WS_HEARTBEAT_INTERVAL="3.0") as server, \
            trio.open_nursery() as nursery, \
            AsyncExitStack() as stack:
        tree = server.running.tree
        no_pacing(server)
        # The contract's example stuck timeout is 10 s. Here the first stream socket (the laggard)
        # gets a long one and the second (the stuck one) a short one, to keep this test quick.
        timeouts = [60.0, stuck_timeout]
        subscribe = tree.subscribe
        monkeypatch.setattr(tree, "subscribe", lambda flt, **_: subscribe(
            flt, stuck_timeout=timeouts.pop(0) if timeouts else 10.0))
        event = await server.event()

        async def never_reading() -> tuple[RawWebSocket, Any]:
            """A raw socket with a tiny receive window that is not read (until the end)."""
            before = set(tree.hub.subscriptions)
            raw = await RawWebSocket.connect(server.host, server.port, f"{STREAM}?token={server.token}",
                                             rcvbuf=4096)
            with trio.fail_after(5):
                while not set(tree.hub.subscriptions) - before:
                    await trio.sleep(0.01)
            (sub_id,) = set(tree.hub.subscriptions) - before

            async def keep_alive() -> None:  # it talks (no heartbeat close), it just does not read
                with contextlib.suppress(trio.BrokenResourceError):  # aborted once closed: expected
                    while True:
                        await raw.send_text('{"type":"ping"}')
                        await trio.sleep(0.2)

            nursery.start_soon(keep_alive)
            stack.push_async_callback(raw.aclose)
            return raw, tree.hub.subscriptions[sub_id].outbox

        laggard, laggard_outbox = await never_reading()
        stuck, stuck_outbox = await never_reading()
        others = [StreamReader(await server.subscribe(stack)) for _ in range(20)]
        for reader in others:
            nursery.start_soon(reader.run)

        ws = await stack.enter_async_context(server.telemetry())
        frames, per_frame = 24, 500
        stuck_since = trio.current_time()
        slowest_ack = 0.0
        for seq in range(1, frames + 1):
            sent = trio.current_time()
            await ws.send_message(frame(readings(event, [seq * 1000.0 + i for i in range(per_frame)]), seq))
            assert await recv_json(ws) == {"type": "ack", "seq": seq, "accepted": per_frame, "rejected": []}
            slowest_ack = max(slowest_ack, trio.current_time() - sent)
        total = frames * per_frame
        assert slowest_ack < 2.0, f"ingestion stalled: an ack took {slowest_ack:.2f}s"

        committed = [r["public_id"] for r in reversed(await server.datapoints(event_public_id=event))]
        assert len(committed) == total
        for reader in others:
            rows = await reader.wait_for(total, timeout=20)
            assert [r["public_id"] for r in rows] == committed  # every reading, once, in commit order
            assert not [m for m in reader.other if m.get("type") == "lag"]
        # The two really are stuck: their outboxes overflowed, their writers are blocked in a send.
        for outbox in (laggard_outbox, stuck_outbox):
            assert outbox.sending and outbox.dropped_total > 0

        # Stuck beyond its timeout: closed with 1013 (seen once it reads again).
        await trio.sleep(max(0.0, stuck_since + stuck_timeout + 1.0 - trio.current_time()))
        code, texts = await stuck.close_code(timeout=20)
        assert code == 1013, texts[-3:]
        got = [r["public_id"] for m in texts if m.get("type") == "datapoints_batch" for r in m["datapoints"]]
        dropped = sum(m["dropped"] for m in texts if m.get("type") == "lag")
        assert len(got) == len(set(got)) and set(got) <= set(committed)
        assert len(got) + dropped <= total

        # Reading again within its timeout: the laggard learns what it missed, then gets the rest.
        got, dropped = [], 0
        with trio.fail_after(20):
            while len(got) + dropped < total:
                opcode, payload = await laggard.recv_frame()
                assert opcode != 0x8, f"laggard closed: {payload!r}"
                if opcode != 0x1:
                    continue
                msg = json.loads(payload)
                if msg["type"] == "lag":
                    assert msg["dropped"] > 0
                    dropped += msg["dropped"]
                elif msg["type"] == "datapoints_batch":
                    got.extend(r["public_id"] for r in msg["datapoints"])
        assert dropped == laggard_outbox.dropped_total > 0
        assert len(got) + dropped == total
        received = set(got)
        assert got == [p for p in committed if p in received]  # a subsequence, in commit order
        assert got[-1] == committed[-1]  # drop-oldest: the newest readings survive
        # ... and the others were never disturbed.
        assert all(len(reader.rows) == total for reader in others)
        nursery.cancel_scope.cancel()


async def test_a_stuck_subscriber_is_released_at_its_timeout(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck_timeout = 1.0
    async with running_server(database_url, tmp_path) as server:
        tree = server.running.tree
        subscribe = tree.subscribe
        monkeypatch.setattr(tree, "subscribe", lambda flt, **_: subscribe(flt, stuck_timeout=stuck_timeout))
        event = await server.event()
        raw = await RawWebSocket.connect(server.host, server.port, f"{STREAM}?token={server.token}",
                                         rcvbuf=4096)
        try:
            async with trio.open_nursery() as nursery:

                async def keep_alive() -> None:  # it talks, it just does not read
                    while True:
                        await raw.send_text('{"type":"ping"}')
                        await trio.sleep(0.2)

                nursery.start_soon(keep_alive)
                async with server.telemetry() as ws:
                    for seq in range(1, 5):
                        await ws.send_message(frame(readings(event, [float(i) for i in range(500)]), seq))
                        assert (await recv_json(ws))["accepted"] == 500
                with trio.move_on_after(stuck_timeout + 2.5):
                    while tree.connections:
                        await trio.sleep(0.05)
                still_open = tree.connections
                nursery.cancel_scope.cancel()
            assert still_open == 0, "the stuck subscriber is still connected well past its timeout"
        finally:
            await raw.aclose()  # lets the blocked send fail, so the server can stop


# ---------------------------------------------------------------- §5.4 heartbeat and shutdown


async def test_heartbeat_keeps_live_peers_and_closes_silent_ones_1011(
    database_url: str, tmp_path: Path
) -> None:
    interval = 1.0  # a live peer survives a 2 s stall of this shared loop (a busy CI host)
    async with running_server(database_url, tmp_path, WS_HEARTBEAT_INTERVAL=str(interval)) as server:
        event = await server.event()
        async with server.ws(STREAM, server.token) as sub, server.telemetry() as ws, \
                trio.open_nursery() as nursery:
            assert await recv_json(sub) == CONNECTED
            silent: dict[str, tuple[int, float]] = {}

            async def silent_peer(path: str) -> None:
                # Never sends a byte after the handshake and never answers the server's pings.
                raw = await RawWebSocket.connect(server.host, server.port, f"{path}?token={server.token}")
                opened = trio.current_time()
                code, _ = await raw.close_code(timeout=10)
                silent[path] = (code, trio.current_time() - opened)
                await raw.aclose()

            nursery.start_soon(silent_peer, STREAM)
            nursery.start_soon(silent_peer, TELEMETRY)
            # Idle but alive (trio-websocket answers the protocol pings): still open after 5 intervals.
            await trio.sleep(5 * interval)
            # Anything but an application ping is ignored by the stream, and it stays open.
            for junk in ("garbage", '{"type": "subscribe"}', "[]", b"\x00\x01"):
                await sub.send_message(junk)
            await sub.send_message('{"type": "ping"}')
            assert await recv_json(sub) == {"type": "pong"}
            await assert_silent(sub, 0.2)
            await ws.send_message(frame(readings(event, [1.0]), seq=1))
            assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": 1, "rejected": []}
            assert not sub.closed and not ws.closed
        for path in (STREAM, TELEMETRY):
            code, after = silent[path]
            assert code == 1011, path
            assert 2 * interval <= after < 2 * interval + 2.0, (path, after)


async def test_graceful_shutdown_acks_pending_frames_then_closes_1001(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webmacs.storage.sql.datapoints import SqlDatapointRepository

    gate, entered = trio.Event(), trio.Event()
    original_store = SqlDatapointRepository.store

    async def slow_store(self: Any, items: Any, frames: Any = None) -> Any:
        entered.set()
        await gate.wait()  # storage is slow: commits are pending when the shutdown starts
        return await original_store(self, items, frames)

    monkeypatch.setattr(SqlDatapointRepository, "store", slow_store)
    frames = 6
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        async with server.ws(STREAM, server.token) as sub, server.telemetry() as ws:
            assert await recv_json(sub) == CONNECTED
            for seq in range(1, frames + 1):
                await ws.send_message(frame(readings(event, [seq + i / 10 for i in range(5)]), seq))
            with trio.fail_after(5):
                await entered.wait()
            await assert_silent(ws, 0.3)  # nothing committed yet, so nothing acked

            async def open_gate_later() -> None:
                await trio.sleep(0.5)
                gate.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(open_gate_later)
                server.shutdown.set()
                # While it drains, the server still answers handshakes, with a refusal.
                status, _, body = await rejected(server, STREAM, server.token)
                assert (status, body) == (503, {"detail": "Server shutting down."})
                assert not gate.is_set()
                acks: list[int] = []
                with trio.fail_after(10):
                    try:
                        while True:
                            reply = json.loads(await ws.get_message())
                            assert reply["type"] == "ack" and reply["accepted"] == 5, reply
                            acks.append(reply["seq"])
                    except trio_websocket.ConnectionClosed as exc:
                        code = exc.reason.code
                assert gate.is_set()
            assert (code, acks) == (1001, list(range(1, frames + 1)))
            assert await closed_with(sub) == 1001
    # Everything acked is durable: a fresh server on the same database sees it all.
    async with running_server(database_url, tmp_path) as again:
        stored = sorted(r["value"] for r in await again.datapoints(event_public_id=event))
        assert stored == sorted(seq + i / 10 for seq in range(1, frames + 1) for i in range(5))


# ---------------------------------------------------------------- embedding the server


async def test_serve_accepts_a_trio_event(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, PORT="0", HOST="127.0.0.1")
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            running = await nursery.start(functools.partial(
                serve, settings, access_log=False, install_signal_handlers=False, shutdown=shutdown))
        assert running.binds
        shutdown.set()


async def test_stop_is_prompt_after_a_websocket(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, PORT="0", HOST="127.0.0.1")  # default heartbeat
    assert settings.ws_heartbeat_interval == 30
    shutdown, stopped = trio.Event(), trio.Event()

    async def run(task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await serve(settings, access_log=False, install_signal_handlers=False,
                        shutdown=shutdown, task_status=task_status)
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(run)
        async with httpx.AsyncClient(base_url=running.binds[0]) as http:
            resp = await http.post("/api/v1/auth/login",
                                   json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            token = resp.json()["access_token"]
        url = running.binds[0].replace("http://", "ws://") + f"{STREAM}?token={token}"
        async with trio_websocket.open_websocket_url(url, disconnect_timeout=5) as ws:
            assert json.loads(await ws.get_message()) == CONNECTED
        # The only WebSocket is closed and nothing is in flight: stopping should be quick.
        shutdown.set()
        with trio.move_on_after(2):
            await stopped.wait()
        prompt = stopped.is_set()
        nursery.cancel_scope.cancel()
    assert prompt, "the server took more than 2 s to stop"


async def test_flood_on_one_connection_reaches_subscribers_in_sent_order(
    database_url: str, tmp_path: Path
) -> None:
    """160 pipelined frames on one connection (the defect: on PostgreSQL two writers commit out
    of order, and frame 24 reached subscribers before the end of frame 22). Every subscriber
    gets every reading once, in the order sent, and a REST batch's readings keep theirs too."""
    async with running_server(database_url, tmp_path) as server, trio.open_nursery() as nursery, \
            AsyncExitStack() as stack:
        no_pacing(server)
        event = await server.event()
        subscribers = [StreamReader(await server.subscribe(stack)) for _ in range(3)]
        for reader in subscribers:
            nursery.start_soon(reader.run)
        ws = await stack.enter_async_context(server.telemetry())
        frames, per_frame = 160, 50
        sent = [seq * 1000.0 + i for seq in range(1, frames + 1) for i in range(per_frame)]

        async def send_all() -> None:
            for seq in range(1, frames + 1):
                values = sent[(seq - 1) * per_frame:seq * per_frame]
                await ws.send_message(frame(readings(event, values), seq))

        nursery.start_soon(send_all)
        for seq in range(1, frames + 1):  # acks in frame order (read concurrently with sending)
            assert await recv_json(ws, timeout=30) == {
                "type": "ack", "seq": seq, "accepted": per_frame, "rejected": []}
        for reader in subscribers:
            rows = await reader.wait_for(len(sent), timeout=30)
            assert [r["value"] for r in rows] == sent
        nursery.cancel_scope.cancel()


async def test_small_messages_take_the_direct_path_and_stay_in_order(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small stream frames are written straight to the socket, large ones through Hypercorn
    (compressed when negotiated); a client sees every reading once, in order, either way,
    between Hypercorn's own pings."""
    from webmacs.http import ws_activity

    direct = []
    original = ws_activity.DirectSender.send

    async def counting(self: Any, payload: bytes) -> bool:
        sent = await original(self, payload)
        direct.append(sent)
        return sent

    monkeypatch.setattr(ws_activity.DirectSender, "send", counting)
    async with running_server(database_url, tmp_path, WS_HEARTBEAT_INTERVAL="2.0") as server, \
            trio.open_nursery() as nursery, AsyncExitStack() as stack:
        event = await server.event()
        reader = StreamReader(await server.subscribe(stack))
        nursery.start_soon(reader.run)
        ws = await stack.enter_async_context(server.telemetry())
        sent: list[float] = []
        for seq, n in enumerate([1, 1, 40, 1, 200, 3], start=1):  # one-reading and large frames
            values = [seq * 1000.0 + i for i in range(n)]
            sent += values
            await ws.send_message(frame(readings(event, values), seq))
            assert (await recv_json(ws))["seq"] == seq  # acks: small, direct
            # Let Hypercorn's pings interleave (a 2 s heartbeat over ~3 s). Shorter heartbeats
            # closed busy CI runs 1011: client and server share this loop.
            await trio.sleep(0.5)
        rows = await reader.wait_for(len(sent), timeout=10)
        assert [r["value"] for r in rows] == sent
        assert direct.count(True) >= 6  # at least the acks (the lock may be busy with a ping)
        nursery.cancel_scope.cancel()


def test_text_frame_headers() -> None:
    from webmacs.http.ws_activity import text_frame_header

    assert text_frame_header(0) == b"\x81\x00"
    assert text_frame_header(125) == b"\x81\x7d"
    assert text_frame_header(126) == b"\x81\x7e\x00\x7e"
    assert text_frame_header(65535) == b"\x81\x7e\xff\xff"
    assert text_frame_header(65536) == b"\x81\x7f" + (65536).to_bytes(8, "big")


async def test_direct_path_declines_what_is_not_plain_http1() -> None:
    """Over HTTP/2 a WebSocket's bytes travel inside DATA frames: writing a raw frame to the
    socket would corrupt the connection, so the direct path declines (and so it does for a
    stream it cannot see through)."""
    from webmacs.http.ws_activity import DirectSender

    class H2Like:
        async def stream_send(self, event: Any) -> None: ...

    class Stream:
        closed = False

        def __init__(self) -> None:
            self.send = H2Like().stream_send

    assert await DirectSender(Stream()).send(b"{}") is False


async def test_frames_the_hub_writes_in_part_are_finished_whole_and_in_order(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub writes small stream frames itself; a subscriber that stops reading fills its
    socket, so a frame goes out in part and its writer task finishes it. Read again, the
    subscriber finds every frame whole and every reading once, in order, and the readers that
    kept reading were served by the hub's direct writes."""
    from webmacs.http import ws_activity

    results: list[str] = []
    original = ws_activity.DirectSender.write_now

    def counting(self: Any, payload: bytes) -> bytes | None:
        rest = original(self, payload)
        results.append("declined" if rest is None else "partial" if rest else "whole")
        return rest

    monkeypatch.setattr(ws_activity.DirectSender, "write_now", counting)
    async with running_server(database_url, tmp_path, WS_HEARTBEAT_INTERVAL="3.0") as server, \
            trio.open_nursery() as nursery, AsyncExitStack() as stack:
        tree = server.running.tree
        no_pacing(server)
        subscribe = tree.subscribe
        monkeypatch.setattr(tree, "subscribe", lambda flt, **_: subscribe(flt, stuck_timeout=60.0))
        event = await server.event()
        before = set(tree.hub.subscriptions)
        laggard = await RawWebSocket.connect(server.host, server.port,
                                             f"{STREAM}?token={server.token}", rcvbuf=4096)
        stack.push_async_callback(laggard.aclose)
        opcode, payload = await laggard.recv_frame()
        while opcode != 0x1:  # Hypercorn's first ping may come before
            opcode, payload = await laggard.recv_frame()
        assert json.loads(payload) == CONNECTED
        with trio.fail_after(5):
            while not set(tree.hub.subscriptions) - before:
                await trio.sleep(0.01)
        (sub_id,) = set(tree.hub.subscriptions) - before
        outbox = tree.hub.subscriptions[sub_id].outbox

        async def keep_alive() -> None:  # it talks (no heartbeat close), it just does not read
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while True:
                    await laggard.send_text('{"type":"ping"}')
                    await trio.sleep(0.2)

        nursery.start_soon(keep_alive)
        reader = StreamReader(await server.subscribe(stack))
        nursery.start_soon(reader.run)
        ws = await stack.enter_async_context(server.telemetry())
        # A frame is about 200 bytes: enough of them to fill the laggard's socket many times.
        values = [float(seq) for seq in range(1, 801)]
        for seq, value in enumerate(values, start=1):
            await ws.send_message(frame(readings(event, [value]), seq))
            assert (await recv_json(ws))["seq"] == seq
            if "partial" in results and seq % 50 == 0 and outbox.pending > 20:
                break  # the socket is full and readings wait in the outbox: enough
        sent = values[:seq]
        assert (await reader.wait_for(len(sent), timeout=20)) and [
            r["value"] for r in reader.rows] == sent
        assert "partial" in results and "whole" in results

        got: list[float] = []
        with trio.fail_after(20):
            while len(got) < len(sent):
                opcode, payload = await laggard.recv_frame()
                if opcode != 0x1:
                    continue
                msg = json.loads(payload)  # every frame whole: it parses
                if msg["type"] == "datapoints_batch":
                    got.extend(r["value"] for r in msg["datapoints"])
                else:
                    assert msg["type"] == "pong", msg
        assert got == sent and outbox.dropped_total == 0
        nursery.cancel_scope.cancel()


async def test_frames_sent_just_before_the_client_closes_are_all_stored(
    database_url: str, tmp_path: Path
) -> None:
    """A controller that sends its last frames and closes without waiting for their acks: every
    frame that arrived before its close is stored (Quart-Trio used to cancel the handler at the
    disconnect, dropping the frames still queued)."""
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        sent = 0
        for round_ in range(5):
            with contextlib.suppress(trio_websocket.ConnectionClosed, trio_websocket.HandshakeError):
                async with server.telemetry() as ws:
                    for seq in range(10):
                        values = [round_ * 1000.0 + seq * 10 + i for i in range(50)]
                        await ws.send_message(frame(readings(event, values), seq))
                        sent += 50
        with trio.fail_after(20):
            while len(stored := await server.datapoints(event_public_id=event)) < sent:
                await trio.sleep(0.1)
        assert len(stored) == sent
