"""One access-log line per request (issue 7, defect 9b).

A client that reads its response and hangs up at once used to get two lines: ``-`` (Hypercorn's
reader saw the close while the last, empty chunk was still being written) and then the status.
"""

from __future__ import annotations

import collections
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket
from test_websockets import STREAM, running_server

from webmacs.http.access_log import MarkResponseEnd, claim_line

LINE = re.compile(r'^127\.0\.0\.1:(\d+) "(\S+) (\S+) [\d.]+" (\S+) ')


# ---------------------------------------------------------------- sans-IO


def test_the_status_line_wins_over_the_close_seen_while_the_last_chunk_is_sent() -> None:
    scope: dict[str, Any] = {"type": "http", "webmacs.response_ended": True}
    assert not claim_line(scope, None)  # reader: connection closed, status follows
    assert claim_line(scope, {"status": 200, "headers": []})
    assert not claim_line(scope, None)


def test_a_client_that_left_before_the_response_gets_one_dash_line() -> None:
    scope: dict[str, Any] = {"type": "http"}
    assert claim_line(scope, None)
    assert not claim_line(scope, {"status": 200, "headers": []})  # the app finished anyway


def test_a_handshake_ended_with_500_is_logged_once() -> None:
    scope: dict[str, Any] = {"type": "websocket"}
    assert claim_line(scope, {"status": 500, "headers": []})
    assert not claim_line(scope, {"status": 500, "headers": []})


async def test_the_middleware_marks_only_the_last_body_chunk() -> None:
    seen: list[bool] = []
    scope: dict[str, Any] = {"type": "http"}

    async def send(message: Any) -> None:
        seen.append(bool(scope.get("webmacs.response_ended")))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    await MarkResponseEnd(app)(scope, None, send)  # type: ignore[arg-type]
    assert seen == [False, False, True]


# ---------------------------------------------------------------- a real served request


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("webmacs.access")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def get_and_hang_up(port: int, path: str) -> int:
    """A raw HTTP/1.1 GET that reads the whole response, then closes at once; the client port."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    client_port: int = stream.socket.getsockname()[1]
    await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    with trio.fail_after(10):
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += await stream.receive_some(65536)
    await stream.aclose()
    return client_port


def lines_by_port(lines: list[str]) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = collections.defaultdict(list)
    for line in lines:
        m = LINE.match(line)
        assert m is not None, line
        out[int(m.group(1))].append((m.group(3), m.group(4)))
    return out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_served_request_is_logged_exactly_once(
    database_url: str, tmp_path: Path, access_lines: list[str]
) -> None:
    async with running_server(database_url, tmp_path, access_log=True) as server:
        ports = [await get_and_hang_up(server.port, "/health") for _ in range(60)]
        async with server.ws(STREAM, server.token) as ws:
            await ws.get_message()
        with pytest.raises(trio_websocket.ConnectionRejected):
            async with server.ws(STREAM, "not-a-token"):
                pass
        await trio.sleep(0.2)
    logged = lines_by_port(access_lines)
    for port in ports:
        assert logged[port] == [("/health", "200")], (port, logged[port])
    statuses = sorted(s for entries in logged.values() for path, s in entries if path.startswith("/ws/"))
    assert statuses == ["101", "401"]
    assert all(len(entries) == 1 for entries in logged.values()), logged


def test_the_access_line_has_its_five_fields_and_no_token() -> None:
    from hypercorn.config import Config

    from webmacs.server import ACCESS_LOG_FORMAT, RedactingLogger

    logger = RedactingLogger(Config())
    scope = {"type": "http", "method": "GET", "path": "/api/v1/events", "http_version": "1.1",
             "query_string": b"page=2&token=sekrit", "client": ("10.0.0.7", 51234),
             "headers": [], "scheme": "http"}
    response = {"status": 200, "headers": [(b"content-type", b"application/json"),
                                           (b"Content-Length", b"123")]}
    line = ACCESS_LOG_FORMAT % logger.atoms(scope, response, 0.0123456)
    assert line == '10.0.0.7:51234 "GET /api/v1/events?page=2&token=[redacted] 1.1" 200 123 0.012346s'
    closed = ACCESS_LOG_FORMAT % logger.atoms({**scope, "type": "websocket", "client": None,
                                              "query_string": b""}, None, 1.5)
    assert closed == '- "GET /api/v1/events 1.1" - - 1.500000s'
