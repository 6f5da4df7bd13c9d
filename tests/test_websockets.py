"""WebSockets (contract §5, with §4.4's ingestion pipeline) over real sockets.

Every test starts the real server in-process (``webmacs.server.serve``: Hypercorn's trio worker,
the actor tree, the services) on an ephemeral port, talks to it with trio-websocket, httpx and,
where a client must misbehave (never read, never answer pings), a hand-written WebSocket client
on a raw TCP socket. Each test runs on SQLite and PostgreSQL and stops its server at the end.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
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
# Most tests use a short heartbeat: Hypercorn's ping task of a closed WebSocket lingers for up to
# one interval and the server's stop waits for it (see test_stop_is_prompt_after_a_websocket).
FAST_HEARTBEAT = "1.0"


# ---------------------------------------------------------------- the server under test


class ShutdownEvent:
    """What ``serve(shutdown=...)`` needs. A real ``trio.Event`` cannot be passed today:
    ``serve`` evaluates ``shutdown or trio.Event()``, and Trio events refuse ``bool()``
    (see test_serve_accepts_a_trio_event)."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def __bool__(self) -> bool:
        return True

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


class Server:
    def __init__(self, running: Running, settings: Settings, http: httpx.AsyncClient,
                 shutdown: ShutdownEvent) -> None:
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
async def running_server(database_url: str, tmp_path: Path, **env: str) -> AsyncIterator[Server]:
    """The real server on an ephemeral port; stopped (and checked to stop) on exit."""
    env = {"PORT": "0", "HOST": "127.0.0.1", "WS_HEARTBEAT_INTERVAL": FAST_HEARTBEAT, **env}
    settings = make_settings(database_url, tmp_path, **env)
    shutdown = ShutdownEvent()
    stopped = trio.Event()

    async def run(task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await serve(settings, access_log=False, install_signal_handlers=False,
                        shutdown=shutdown, task_status=task_status)  # type: ignore[arg-type]
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


# ---------------------------------------------------------------- scratch


async def test_scratch_stuck(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import AsyncExitStack
    async with running_server(database_url, tmp_path) as server, trio.open_nursery() as nursery, \
            AsyncExitStack() as stack:
        tree = server.running.tree
        monkeypatch.setattr(tree, "subscribe", functools.partial(tree.subscribe, stuck_timeout=2.0))
        ev = await server.event("x" * 200)
        before = set(tree.hub.subscriptions)
        stuck = await RawWebSocket.connect(server.host, server.port, f"{STREAM}?token={server.token}",
                                           rcvbuf=4096)
        await trio.sleep(0.1)
        (sid,) = set(tree.hub.subscriptions) - before
        sub = tree.hub.subscriptions[sid]
        if True:
            async def keepalive() -> None:
                while True:
                    await stuck.send_text('{"type":"ping"}')
                    await trio.sleep(0.25)
            nursery.start_soon(keepalive)
            others = [StreamReader(await server.subscribe(stack)) for _ in range(20)]
            for r in others:
                nursery.start_soon(r.run)
            ws = await stack.enter_async_context(server.telemetry())
            t0 = trio.current_time()
            total = 0
            for seq in range(1, 41):
                t = trio.current_time()
                await ws.send_message(frame(readings(ev, [float(i) for i in range(500)]), seq))
                ack = await recv_json(ws)
                total += ack["accepted"]
                print(seq, f"{trio.current_time()-t:.3f}", sub.outbox.pending, sub.outbox.sending,
                      sub.outbox.dropped_total, min(len(r.rows) for r in others))
            for r in others:
                await r.wait_for(total, 20)
            print("all received", trio.current_time() - t0)
            got = []
            with trio.move_on_after(8):
                while True:
                    op, payload = await stuck.recv_frame()
                    got.append((op, payload[:80], len(payload), trio.current_time()))
            print([(g[0], g[1][:60], g[2]) for g in got if g[0] != 1 or b"datapoints_batch" not in g[1]][:20])
            print(len(got), got[-1] if got else None)
            print(sub.outbox.pending, sub.outbox.sending, sub.outbox.closed, sub.outbox.dropped_total)
            code, texts = await stuck.close_code(1)
            print("stuck", code, len(texts), [t for t in texts if t.get("type") != "datapoints_batch"][:5],
                  sum(len(t.get("datapoints", [])) for t in texts))
            nursery.cancel_scope.cancel()
