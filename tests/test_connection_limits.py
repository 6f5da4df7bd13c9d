"""Connections that cannot be held for ever (issue 7, defect 5).

The rules (:mod:`webmacs.http.connection_limits`) are tested without sockets or clocks; the guard
(:mod:`webmacs.http.tcp_guard`) against the real server on a real socket, spoken to with raw
bytes so that a client can stop in the middle of a request. The server runs in-process on
SQLite (these limits do not touch the database) with short timeouts, and in a subprocess for
SIGTERM.
"""

from __future__ import annotations

import contextlib
import math
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import h11
import orjson
import pytest
import trio
from conftest import LiveServer, make_settings

from webmacs.http.connection_limits import (
    ConnectionLimiter,
    Phase,
    ReadClock,
    ReadTimeouts,
    Refusal,
    error_response,
    phase_of,
)
from webmacs.server import serve

# ---------------------------------------------------------------- the rules, sans IO

TIMEOUTS = ReadTimeouts(keep_alive=5, header=10, body=30)


def test_phase_follows_the_clients_side_of_the_exchange() -> None:
    assert phase_of(h11.IDLE, buffered=False) is Phase.IDLE
    assert phase_of(h11.IDLE, buffered=True) is Phase.HEAD
    assert phase_of(h11.SEND_BODY, buffered=False) is Phase.BODY
    for state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, h11.SWITCHED_PROTOCOL):
        assert phase_of(state, buffered=True) is Phase.OTHER


def test_keep_alive_and_header_clocks_are_not_reset_by_trickling_bytes() -> None:
    clock = ReadClock.start(TIMEOUTS, now=100)
    assert clock.deadline() == 105
    clock.observe(Phase.IDLE, 103, received=True)
    assert clock.deadline() == 105
    clock.observe(Phase.HEAD, 104, received=True)  # the first bytes of a request
    assert clock.deadline() == 114
    clock.observe(Phase.HEAD, 113, received=True)  # one byte at a time: still due at 114
    assert clock.deadline() == 114


def test_body_clock_is_an_inactivity_clock() -> None:
    clock = ReadClock.start(TIMEOUTS, now=0)
    clock.observe(Phase.BODY, 1, received=True)
    assert clock.deadline() == 31
    clock.observe(Phase.BODY, 20, received=True)
    assert clock.deadline() == 50
    clock.observe(Phase.BODY, 25)  # a reschedule without data does not extend it
    assert clock.deadline() == 50


def test_no_read_deadline_while_the_response_is_under_way_or_on_a_websocket() -> None:
    clock = ReadClock.start(TIMEOUTS, now=0)
    clock.observe(Phase.OTHER, 1)
    assert clock.deadline() == math.inf
    clock.terminate()
    assert clock.deadline() == math.inf  # a request in progress gets the grace period
    clock.observe(Phase.IDLE, 2)  # its response is done: the keep-alive ends at once
    assert clock.deadline() == -math.inf


def test_shutdown_ends_idle_and_half_sent_heads_at_once_but_not_bodies() -> None:
    for phase, expected in ((Phase.IDLE, -math.inf), (Phase.HEAD, -math.inf), (Phase.BODY, 31)):
        clock = ReadClock.start(TIMEOUTS, now=0)
        clock.observe(phase, 1)
        clock.terminate()
        assert clock.deadline() == expected


def test_limiter_caps_per_address_and_in_total() -> None:
    limiter = ConnectionLimiter(per_address=2, total=3)
    assert limiter.admit("10.0.0.1") is None
    assert limiter.admit("10.0.0.1") is None
    assert limiter.admit("10.0.0.1") is Refusal.PER_ADDRESS
    assert limiter.admit("10.0.0.2") is None
    assert limiter.admit("10.0.0.3") is Refusal.TOTAL
    assert (limiter.open_total, limiter.refused, limiter.open_from("10.0.0.1")) == (3, 2, 2)
    limiter.release("10.0.0.1")
    assert limiter.admit("10.0.0.3") is None
    assert limiter.admit("10.0.0.1") is Refusal.TOTAL


def test_limiter_forgets_an_address_whose_connections_all_closed() -> None:
    limiter = ConnectionLimiter(per_address=1, total=10)
    assert limiter.admit("a") is None
    limiter.release("a")
    assert (limiter.open_total, limiter.open_from("a")) == (0, 0)
    assert limiter.admit("a") is None
    with pytest.raises(ValueError, match="never admitted"):
        limiter.release("b")


def test_refusals_are_reported_at_most_once_per_interval() -> None:
    limiter = ConnectionLimiter(per_address=1, total=1)
    assert limiter.refusals_to_report(now=0) is None  # nothing refused yet
    assert limiter.admit("a") is None
    assert limiter.admit("a") is Refusal.TOTAL
    assert limiter.refusals_to_report(now=0) == 1
    for _ in range(3):
        limiter.admit("b")
    assert limiter.refusals_to_report(now=9.9) is None
    assert limiter.refusals_to_report(now=10) == 3
    assert limiter.refusals_to_report(now=30) is None


def test_error_response_is_complete_json_and_closes() -> None:
    raw = error_response(503, "Service Unavailable", Refusal.TOTAL.value)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"connection: close" in head and b"retry-after: 5" in head
    assert f"content-length: {len(body)}".encode() in head
    assert orjson.loads(body) == {"detail": "Too many connections to this server."}


# ---------------------------------------------------------------- the guard, on a real socket

GET = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


@asynccontextmanager
async def running(tmp_path: Path, **env: str) -> AsyncIterator[int]:
    """The real server in-process on an ephemeral port; its port. Stopped on exit."""
    settings = make_settings(f"sqlite:///{tmp_path / 'limits.db'}", tmp_path,
                             PORT="0", HOST="127.0.0.1", **env)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            started = await nursery.start(lambda task_status: serve(
                settings, access_log=False, install_signal_handlers=False, shutdown=shutdown,
                task_status=task_status))
        try:
            yield int(started.binds[0].rsplit(":", 1)[1])
        finally:
            shutdown.set()


async def connect(port: int, source: str = "127.0.0.1") -> trio.SocketStream:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    await sock.bind((source, 0))  # other 127/8 sources stand for other client addresses
    await sock.connect(("127.0.0.1", port))
    return trio.SocketStream(sock)


async def read_response(stream: trio.SocketStream) -> tuple[int, bytes]:
    """One whole response (status, body) read with h11, leaving the connection open."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    status, body = 0, b""
    with trio.fail_after(10):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, body


async def request(stream: trio.SocketStream, raw: bytes = GET) -> tuple[int, bytes]:
    await stream.send_all(raw)
    return await read_response(stream)


async def closed_by_server(stream: trio.SocketStream, within: float = 10) -> bytes:
    """Everything the server sends until it closes; fails if it holds the connection."""
    received = b""
    with trio.fail_after(within):
        while chunk := await stream.receive_some(65536):
            received += chunk
    return received


async def test_idle_keep_alive_connection_is_closed_after_its_timeout(tmp_path: Path) -> None:
    async with running(tmp_path, HTTP_KEEP_ALIVE_TIMEOUT="0.5") as port:
        stream = await connect(port)
        assert (await request(stream))[0] == 200
        assert (await request(stream))[0] == 200  # kept alive between requests
        idle_from = trio.current_time()
        assert await closed_by_server(stream) == b""
        assert trio.current_time() - idle_from >= 0.5  # not before its time


async def test_a_connection_that_never_sends_is_closed_too(tmp_path: Path) -> None:
    async with running(tmp_path, HTTP_KEEP_ALIVE_TIMEOUT="0.5") as port:
        assert await closed_by_server(await connect(port)) == b""


async def test_an_idle_http2_connection_is_closed_too(tmp_path: Path) -> None:
    import h2.config
    import h2.connection
    import h2.events

    async with running(tmp_path, HTTP_KEEP_ALIVE_TIMEOUT="0.5") as port:
        stream = await connect(port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", "/health"), (":scheme", "http"),
                              (":authority", "test")], end_stream=True)
        await stream.send_all(conn.data_to_send())
        ended = False
        with trio.fail_after(10):
            while not ended:  # prior-knowledge HTTP/2: one whole response
                for event in conn.receive_data(await stream.receive_some(65536)):
                    ended = ended or isinstance(event, h2.events.StreamEnded)
                await stream.send_all(conn.data_to_send())
        await closed_by_server(stream)


async def test_a_stalled_body_is_cut_after_the_body_timeout(tmp_path: Path) -> None:
    async with running(tmp_path, HTTP_BODY_TIMEOUT="0.5") as port:
        stream = await connect(port)
        await stream.send_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\n"
                              b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"em")
        await closed_by_server(stream)


async def test_a_slow_but_moving_body_is_not_cut(tmp_path: Path) -> None:
    body = orjson.dumps({"email": "nobody@example.org", "password": "wrong-password-" + "x" * 30})
    async with running(tmp_path, HTTP_BODY_TIMEOUT="1.5") as port:
        stream = await connect(port)
        await stream.send_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\n"
                              b"Content-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), len(body) // 6 + 1):  # ~2.4 s in all, 0.4 s gaps
            await trio.sleep(0.4)
            await stream.send_all(body[i:i + len(body) // 6 + 1])
        assert (await read_response(stream))[0] == 401


async def test_an_unfinished_head_gets_408_and_is_closed(tmp_path: Path) -> None:
    async with running(tmp_path, HTTP_HEADER_TIMEOUT="0.5", HTTP_KEEP_ALIVE_TIMEOUT="30") as port:
        stream = await connect(port)
        await stream.send_all(b"GET /health HT")
        head, _, body = (await closed_by_server(stream)).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert orjson.loads(body) == {"detail": "Request head not received in time."}


async def test_a_head_trickling_in_byte_by_byte_is_cut_all_the_same(tmp_path: Path) -> None:
    async with running(tmp_path, HTTP_HEADER_TIMEOUT="0.5", HTTP_KEEP_ALIVE_TIMEOUT="30") as port:
        stream = await connect(port)
        await stream.send_all(b"GET /health HTTP/1.1\r\nX-Slow: ")
        ended = trio.Event()

        async def read_until_closed() -> None:
            with contextlib.suppress(trio.BrokenResourceError):  # reset by our late bytes
                while await stream.receive_some(65536):
                    pass
            ended.set()

        with trio.fail_after(10):  # were each byte to restart the clock, this would not end
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_until_closed)
                with contextlib.suppress(trio.BrokenResourceError):
                    while not ended.is_set():
                        await stream.send_all(b"x")
                        with trio.move_on_after(0.1):
                            await ended.wait()


async def test_a_quiet_websocket_is_not_cut_by_the_http_timeouts(tmp_path: Path) -> None:
    async with running(tmp_path, HTTP_KEEP_ALIVE_TIMEOUT="0.3", HTTP_HEADER_TIMEOUT="0.3",
                       HTTP_BODY_TIMEOUT="0.3", WS_ANONYMOUS_TELEMETRY="true") as port:
        stream = await connect(port)
        await stream.send_all(ws_upgrade("/ws/controller/telemetry"))
        assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 101 ")
        with trio.move_on_after(1.5):
            while True:
                assert await stream.receive_some(65536) != b"", "closed by the server"


def ws_upgrade(path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()


async def refused_with(stream: trio.SocketStream, raw: bytes) -> str:
    """The server's 503 detail for this request on this (refused) connection."""
    await stream.send_all(raw)
    head, _, body = (await closed_by_server(stream)).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), head
    detail: str = orjson.loads(body)["detail"]
    return detail


async def test_per_address_cap_refuses_the_excess_with_503(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path, MAX_CONNECTIONS_PER_ADDRESS="2", MAX_CONNECTIONS="10",
                       HTTP_KEEP_ALIVE_TIMEOUT="30") as port:
        held = [await connect(port), await connect(port)]
        for stream in held:
            assert (await request(stream))[0] == 200
        too_many = "Too many connections from this address."
        assert await refused_with(await connect(port), GET) == too_many
        assert await refused_with(await connect(port), ws_upgrade("/ws/datapoints/stream")) \
            == too_many
        assert (await request(await connect(port, "127.0.0.2")))[0] == 200  # another address
        assert "refused 1 connection(s) with 503 (Too many connections from this address.)" \
            in caplog.text  # the second refusal, within 10 s, is not logged yet

        await held.pop().aclose()  # its slot comes back once the server sees it closed
        with trio.fail_after(10):
            while True:
                stream = await connect(port)
                await stream.send_all(GET)
                status, _ = await read_response(stream)
                if status == 200:
                    break
                await trio.sleep(0.05)


async def test_total_cap_refuses_the_excess_with_503(tmp_path: Path) -> None:
    async with running(tmp_path, MAX_CONNECTIONS_PER_ADDRESS="2", MAX_CONNECTIONS="3",
                       HTTP_KEEP_ALIVE_TIMEOUT="30") as port:
        held = [await connect(port), await connect(port), await connect(port, "127.0.0.2")]
        for stream in held:
            assert (await request(stream))[0] == 200
        too_many = "Too many connections to this server."
        assert await refused_with(await connect(port, "127.0.0.3"), GET) == too_many
        assert await refused_with(await connect(port, "127.0.0.3"),
                                  ws_upgrade("/ws/controller/telemetry")) == too_many


# ---------------------------------------------------------------- SIGTERM, in a real process


def test_sigterm_with_idle_keep_alive_connections_exits_promptly(tmp_path: Path) -> None:
    server = LiveServer(f"sqlite:///{tmp_path / 'sigterm.db'}", tmp_path,
                        HTTP_KEEP_ALIVE_TIMEOUT="120", SHUTDOWN_GRACE_SECONDS="30")
    clients = []
    try:
        for _ in range(3):
            client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            client.sendall(GET)
            response = b""
            while not response.endswith(b"}"):  # the whole (small JSON) response
                response += client.recv(65536)
            assert response.startswith(b"HTTP/1.1 200")
            clients.append(client)
        half_head = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        half_head.sendall(b"GET /health HTTP/1.1\r\nHo")
        clients.append(half_head)
        time.sleep(0.2)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        # Requests in progress would get 30 s; idle connections and unfinished heads do not wait
        # for it (the bound is wide for a busy CI host, and far below the grace period).
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {time.monotonic() - started:.1f} s after SIGTERM")
        assert server.proc.returncode == 0
    finally:
        server.stop()
        for client in clients:
            client.close()


def test_shutdown_grace_seconds_is_the_grace_period_of_requests_in_progress(tmp_path: Path) -> None:
    from webmacs.server import hypercorn_config

    settings = make_settings(f"sqlite:///{tmp_path / 'grace.db'}", tmp_path,
                             SHUTDOWN_GRACE_SECONDS="12.5")
    assert hypercorn_config(settings, access_log=False).graceful_timeout == 12.5
