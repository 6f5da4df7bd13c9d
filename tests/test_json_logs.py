"""Logs: one JSON object per line in production, readable lines in development, and a request
id on every line written while a request is handled (the access line included).

The in-process tests run the real server (Hypercorn, sockets) with the process's logging set up
by ``configure_logging`` into a buffer; one test runs ``webmacs serve`` in production mode.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from conftest import LiveServer, make_settings
from test_websockets import closed_with, running_server

from webmacs.logs import configure_logging
from webmacs.settings import Settings, SettingsError, load_settings

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@contextmanager
def captured_logs(settings: Settings) -> Iterator[io.StringIO]:
    """The process's logging as ``webmacs serve`` sets it up, written to a buffer."""
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    handler = configure_logging(settings, "INFO", stream=buffer)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    for record in records:
        assert TS.match(record["ts"]), record
        assert {"level", "logger", "msg"} <= record.keys(), record
    return records


def access(records: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    (line,) = [r for r in records if r["logger"] == "webmacs.access" and r.get("request_id") == request_id]
    return line


async def settled(buffer: io.StringIO, needle: str) -> None:
    """Access lines are written just after the response: wait for the line."""
    with trio.fail_after(10):
        while needle not in buffer.getvalue():
            await trio.sleep(0.01)


async def test_json_lines_carry_the_request_id(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path, access_log=True, LOG_FORMAT="json",
                              WS_HEARTBEAT_INTERVAL="30") as server:
        with captured_logs(server.settings) as buffer:
            kept = await server.http.get("/health", headers={"X-Request-ID": "trace-123_a.b"})
            assert kept.headers["x-request-id"] == "trace-123_a.b"
            replaced = await server.http.get("/health", headers={"X-Request-ID": 'bad id"}{'})
            fresh = replaced.headers["x-request-id"]
            assert HEX_ID.match(fresh)

            # A log record written inside the handler (an unhandled error) gets the id too.
            def broken(*args: Any) -> Any:
                raise RuntimeError("boom")

            repo = server.running.services.repos.events
            original = repo.page
            repo.page = broken  # type: ignore[method-assign]
            try:
                failed = await server.http.get("/api/v1/events", headers=server.headers)
            finally:
                repo.page = original  # type: ignore[method-assign]
            assert failed.status_code == 500
            failed_id = failed.headers["x-request-id"]

            # A WebSocket: the handler's lines and its session's (child tasks) share its id.
            async with server.telemetry() as ctl:
                await ctl.send_message('{"datapoints": []}')
            await settled(buffer, "readings stored")
            await settled(buffer, failed_id)
            await settled(buffer, fresh)

        records = json_lines(buffer)
        line = access(records, "trace-123_a.b")
        assert line["method"] == "GET" and line["path"] == "/health" and line["status"] == 200
        assert line["client"].startswith("127.0.0.1:") and line["protocol"] == "1.1"
        assert isinstance(line["bytes"], int) and isinstance(line["duration_s"], float)
        assert access(records, fresh)["path"] == "/health"

        (error,) = [r for r in records if r["msg"] == "unhandled error"]
        assert error["request_id"] == failed_id and error["level"] == "ERROR"
        assert "RuntimeError: boom" in error["exc"] and "\n" in error["exc"]  # one string field
        assert access(records, failed_id)["status"] == 500

        (connected,) = [r for r in records if "connected from" in r["msg"]]
        (closed,) = [r for r in records if "readings stored" in r["msg"]]
        ws_id = connected["request_id"]
        assert HEX_ID.match(ws_id) and closed["request_id"] == ws_id
        handshake = access(records, ws_id)
        assert handshake["status"] == 101 and "token=[redacted]" in handshake["path"]
        assert server.token not in buffer.getvalue()
        # Outside requests: no id.
        assert all("request_id" not in r for r in records if r["logger"] == "webmacs.http.websockets"
                   and "connected" not in r["msg"])


async def test_text_lines_in_development(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path, access_log=True) as server:
        assert server.settings.log_format == "text"
        with captured_logs(server.settings) as buffer:
            resp = await server.http.get("/health", headers={"X-Request-ID": "dev-1"})
            assert resp.headers["x-request-id"] == "dev-1"
            await settled(buffer, "rid=dev-1")
        (line,) = [x for x in buffer.getvalue().splitlines() if "rid=dev-1" in x]
        assert re.match(r'^\d{4}-\d{2}-\d{2} [\d:,]+ INFO webmacs\.access: 127\.0\.0\.1:\d+ '
                        r'"GET /health 1\.1" 200 \d+ [\d.]+s rid=dev-1$', line), line


async def test_websocket_close_codes_unchanged_by_request_ids(database_url: str, tmp_path: Path) -> None:
    """The middleware passes WebSockets through untouched (no header on a 101)."""
    async with running_server(database_url, tmp_path) as server, AsyncExitStack() as stack:
        ctl = await stack.enter_async_context(server.telemetry())
        server.shutdown.set()
        assert await closed_with(ctl) == 1001


def test_log_format_defaults_follow_the_mode(tmp_path: Path) -> None:
    secret = "x" * 40
    base = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db'}", "SECRET_KEY": secret,
            "INITIAL_ADMIN_PASSWORD": "not-the-default"}
    assert load_settings(base, workdir=tmp_path).log_format == "text"
    assert load_settings({**base, "WEBMACS_MODE": "production"}, workdir=tmp_path).log_format == "json"
    assert load_settings({**base, "WEBMACS_MODE": "production", "LOG_FORMAT": "TEXT"},
                         workdir=tmp_path).log_format == "text"
    with pytest.raises(SettingsError, match="LOG_FORMAT must be json or text"):
        load_settings({**base, "LOG_FORMAT": "xml"}, workdir=tmp_path)


def test_metrics_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db'}"
    default = make_settings(url, tmp_path)
    assert default.metrics_enabled and default.metrics_bind is None
    for good in ("127.0.0.1:9100", "[::1]:9100", "metrics.local:0"):
        assert make_settings(url, tmp_path, METRICS_BIND=good).metrics_bind == good
    for bad in ("9100", "127.0.0.1", "127.0.0.1:99999", "http://x:1", "::1:9100"):
        with pytest.raises(SettingsError, match="METRICS_BIND must be host:port"):
            make_settings(url, tmp_path, METRICS_BIND=bad)
    assert not make_settings(url, tmp_path, METRICS_ENABLED="off").metrics_enabled


def test_webmacs_serve_in_production_writes_json_lines(database_url: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SECRET_KEY=" + "s" * 48 + "\n")
    server = LiveServer(database_url, tmp_path, WEBMACS_MODE="production",
                        INITIAL_ADMIN_PASSWORD="production-pass-123")
    try:
        resp = httpx.get(server.base_url + "/health", headers={"X-Request-ID": "from-proxy-7"})
        assert resp.headers["x-request-id"] == "from-proxy-7"
    finally:
        assert server.stop() == 0
    lines = [line for line in server.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, the start banner included
    assert any(r["msg"].startswith("webmacs listening on") for r in records)
    line = access(records, "from-proxy-7")
    assert line["path"] == "/health" and line["status"] == 200
    assert records[-1]["msg"] == "webmacs stopped"


def test_configure_logging_replaces_its_own_handler_and_tags_workers(tmp_path: Path) -> None:
    from webmacs.http.request_id import current_request_id

    url = f"sqlite:///{tmp_path / 'db'}"
    root = logging.getLogger()
    level, before = root.level, list(root.handlers)
    first, second = io.StringIO(), io.StringIO()
    try:
        configure_logging(make_settings(url, tmp_path, LOG_FORMAT="text"), "INFO", "2", stream=first)
        handler = configure_logging(make_settings(url, tmp_path, LOG_FORMAT="json"), "DEBUG", "3",
                                    stream=second)
        assert [h for h in root.handlers if h not in before] == [handler]
        token = current_request_id.set("req-9")
        try:
            try:
                raise ValueError("bad")
            except ValueError:
                logging.getLogger("webmacs.test").exception("failed %s", "here", extra={"n": 7})
        finally:
            current_request_id.reset(token)
        logging.getLogger("webmacs.test").debug("outside")
    finally:
        for h in [h for h in root.handlers if h not in before]:
            root.removeHandler(h)
        root.setLevel(level)
    assert first.getvalue() == ""
    failed, outside = json_lines(second)
    assert failed["msg"] == "failed here" and failed["worker"] == "3" and failed["n"] == 7
    assert failed["request_id"] == "req-9" and "ValueError: bad" in failed["exc"]
    assert outside["level"] == "DEBUG" and "request_id" not in outside and "exc" not in outside


def test_text_lines_put_the_request_id_before_a_traceback(tmp_path: Path) -> None:
    from webmacs.logs import TextFormatter

    record = logging.LogRecord("webmacs.x", logging.ERROR, __file__, 1, "oops", None, None)
    record.request_id = "r-1"
    try:
        raise KeyError("k")
    except KeyError:
        import sys

        record.exc_info = sys.exc_info()
    text = TextFormatter("4").format(record)
    first, *rest = text.splitlines()
    assert first.endswith("ERROR [worker 4] webmacs.x: oops rid=r-1")
    assert rest[0] == "Traceback (most recent call last):"
