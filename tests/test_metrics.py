"""``/metrics`` (Prometheus text format) on both backends.

Telemetry goes over the real controller WebSocket of an in-process server while a subscriber is
connected; the scrape must show the exact counts, the recorder histograms, the gauges of the
actor tree, and HTTP requests labelled by route template. Auth on the main port; the
``METRICS_BIND`` listener on its own real socket without auth.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from conftest import create_user, make_settings, open_app
from prometheus_client.parser import text_string_to_metric_families
from test_websockets import STREAM, UNKNOWN, Server, frame, read_rows, readings, recv_json, running_server

from webmacs.http.metrics_listener import worker_bind
from webmacs.http.request_id import request_id
from webmacs.metrics import UNMATCHED, HttpMetrics, Metrics, route_label

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(server: Server) -> Samples:
    resp = await server.http.get("/metrics", headers=server.headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == CONTENT_TYPE
    return parse(resp.text)


async def scrape_until(server: Server, done: Any, timeout: float = 10.0) -> Samples:
    """HTTP requests are counted as their access line is written, just after the response:
    scrape until the figures have settled."""
    with trio.fail_after(timeout):
        while not done(samples := await scrape(server)):
            await trio.sleep(0.02)
    return samples


# ---------------------------------------------------------------- the counts, over real sockets


async def test_a_scrape_shows_exact_counts_after_telemetry_and_a_subscriber(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server, AsyncExitStack() as stack:
        event = await server.event()
        sub = await server.subscribe(stack)
        ctl = await stack.enter_async_context(server.telemetry())
        await ctl.send_message(frame(readings(event, [1.0, 2.0, 3.0, 4.0, 5.0]), seq=1))
        ack = await recv_json(ctl)
        assert ack["type"] == "ack" and ack["accepted"] == 5, ack
        await ctl.send_message(frame(readings(event, [6.0, 7.0]) + readings(UNKNOWN, [8.0]), seq=2))
        ack = await recv_json(ctl)
        assert ack["accepted"] == 2 and len(ack["rejected"]) == 1, ack
        await read_rows(sub, 7)

        s = await scrape_until(server, lambda s: value(
            s, "webmacs_http_requests_total", route="/api/v1/events", method="POST", status="201") == 1)
        assert value(s, "webmacs_readings_received_total") == 8
        assert value(s, "webmacs_readings_committed_total") == 7
        assert value(s, "webmacs_readings_rejected_total") == 1
        assert value(s, "webmacs_readings_failed_total") == 0
        assert value(s, "webmacs_readings_broadcast_total") == 7  # 7 readings x 1 subscriber
        assert value(s, "webmacs_subscriber_readings_dropped_total") == 0
        # Every reading went through a recorder batch: the histograms saw all 8.
        assert value(s, "webmacs_recorder_batch_size_sum") == 8
        batches = value(s, "webmacs_recorder_batch_size_count")
        assert 1 <= batches <= 2
        assert value(s, "webmacs_recorder_commit_seconds_count") == batches
        assert value(s, "webmacs_recorder_commit_seconds_sum") > 0
        assert value(s, "webmacs_recorder_batch_size_bucket", le="+Inf") == batches
        assert value(s, "webmacs_subscribers_connected") == 1
        assert value(s, "webmacs_controllers_connected") == 1
        for actor in ("hub", "router", "publisher", "commander", "recorder[-]"):
            assert ("webmacs_actor_inbox_depth", (("actor", actor),)) in s, actor
        assert value(s, "webmacs_build_info", version="0.1.0", python=next(
            dict(k[1])["python"] for k in s if k[0] == "webmacs_build_info")) == 1
        assert value(s, "process_resident_memory_bytes") > 0
        # HTTP requests by route template, never by raw path; WebSocket handshakes by route.
        assert value(s, "webmacs_http_requests_total",
                     route="/api/v1/auth/login", method="POST", status="200") == 1
        assert value(s, "webmacs_http_requests_total",
                     route="/ws/controller/telemetry", method="GET", status="101") == 1
        assert value(s, "webmacs_http_request_duration_seconds_count",
                     route="/api/v1/events", method="POST") == 1

        got = await server.http.get(f"/api/v1/events/{event}", headers=server.headers)
        assert got.status_code == 200
        missing = await server.http.get(f"/api/v1/events/{UNKNOWN}/", headers=server.headers)
        assert missing.status_code == 404
        await server.http.get("/no/such/path")
        # A CORS preflight is answered by a hook: labelled by its route all the same.
        preflight = await server.http.options("/api/v1/events", headers={
            "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 204
        s = await scrape_until(server, lambda s: value(
            s, "webmacs_http_requests_total", route="/api/v1/events", method="OPTIONS", status="204") == 1)
        assert value(s, "webmacs_http_requests_total", route=UNMATCHED, method="GET", status="404") == 1
        assert value(s, "webmacs_http_requests_total",
                     route="/api/v1/events/<public_id>", method="GET", status="200") == 1
        assert value(s, "webmacs_http_requests_total",  # the trailing-slash twin: the same route
                     route="/api/v1/events/<public_id>", method="GET", status="404") == 1
        assert not [k for k in s if event in str(k) or UNKNOWN in str(k)]

        await ctl.aclose()
        with trio.fail_after(10):
            while value(await scrape(server), "webmacs_controllers_connected") != 0:
                await trio.sleep(0.02)


async def test_a_slow_subscriber_s_dropped_readings_are_counted(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path) as server, AsyncExitStack() as stack:
        event = await server.event()
        await server.subscribe(stack)
        hub = server.running.tree.hub
        sub = next(iter(hub.subscriptions.values()))
        sub.outbox.max_items = 3  # a tiny outbox, and a writer that is never rung
        sub.direct = None
        sub.ring = lambda: None  # type: ignore[method-assign]
        resp = await server.http.post("/api/v1/datapoints/batch", headers=server.headers, json={
            "datapoints": readings(event, [float(v) for v in range(10)])})
        assert resp.status_code == 201, resp.text
        with trio.fail_after(10):
            while value(s := await scrape(server), "webmacs_subscriber_readings_dropped_total") != 7:
                await trio.sleep(0.02)
        assert value(s, "webmacs_readings_received_total") == 10
        assert value(s, "webmacs_readings_broadcast_total") == 10


# ---------------------------------------------------------------- who may scrape


async def test_metrics_on_the_main_port_need_an_admin_token(
    client: Any, admin_headers: dict[str, str]
) -> None:
    anonymous = await client.get("/metrics")
    assert anonymous.status_code == 401
    assert (await anonymous.get_json())["detail"] == "Authentication required."
    user = await create_user(client, admin_headers)
    refused = await client.get("/metrics", headers=user["headers"])
    assert refused.status_code == 403
    assert (await refused.get_json())["detail"] == "Admin privileges required."
    ok = await client.get("/metrics", headers=admin_headers)
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == CONTENT_TYPE
    text = await ok.get_data(as_text=True)
    assert "# TYPE webmacs_readings_committed_total counter" in text
    assert "# TYPE webmacs_recorder_commit_seconds histogram" in text


async def test_metrics_can_be_turned_off(database_url: str, tmp_path: Path) -> None:
    async with open_app(make_settings(database_url, tmp_path, METRICS_ENABLED="false")) as app:
        client = app.test_client()
        resp = await client.get("/metrics")
        assert resp.status_code == 404
        assert await resp.get_json() == {"detail": "Not Found"}


async def test_metrics_bind_serves_without_auth_on_its_own_port_only(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path, METRICS_BIND="127.0.0.1:0") as server:
        (bind,) = server.running.metrics_binds
        assert bind != server.base_url
        async with httpx.AsyncClient(base_url=bind, timeout=10) as scraper:
            resp = await scraper.get("/metrics")
            assert resp.status_code == 200
            assert resp.headers["content-type"] == CONTENT_TYPE
            assert value(parse(resp.text), "webmacs_subscribers_connected") == 0
            assert ("webmacs_actor_inbox_depth", (("actor", "hub"),)) in parse(resp.text)
            other = await scraper.get("/api/v1/events")
            assert other.status_code == 404 and other.json() == {"detail": "Not Found"}
            post = await scraper.post("/metrics")
            assert post.status_code == 405 and post.json() == {"detail": "Method Not Allowed"}
        # The main port does not expose them a second time, not even to an admin.
        main = await server.http.get("/metrics", headers=server.headers)
        assert main.status_code == 404


# ---------------------------------------------------------------- sans-IO parts


def test_route_labels_join_the_trailing_slash_twin() -> None:
    assert route_label("/api/v1/events/<public_id>/") == "/api/v1/events/<public_id>"
    assert route_label("/") == "/"


def test_http_labels_stay_bounded() -> None:
    metrics = Metrics()
    http: HttpMetrics = metrics.http
    http.observe({"type": "http", "method": "BREW"}, 405, 0.001)
    http.observe({"type": "http", "method": "GET", "webmacs.route": "/health"}, None, 0.5)
    http.observe({"type": "websocket", "webmacs.route": STREAM}, 101, 3600.0)
    s = parse(metrics.render().decode())
    assert value(s, "webmacs_http_requests_total", route=UNMATCHED, method="OTHER", status="405") == 1
    assert value(s, "webmacs_http_requests_total", route="/health", method="GET",
                 status="disconnected") == 1
    assert value(s, "webmacs_http_requests_total", route=STREAM, method="GET", status="101") == 1
    # A WebSocket's lifetime is not a request duration.
    assert value(s, "webmacs_http_request_duration_seconds_count", route=STREAM, method="GET") == 0


def test_two_servers_do_not_share_metrics() -> None:
    a, b = Metrics(), Metrics()
    a.observe_commit(10, 0.01)
    assert value(parse(a.render().decode()), "webmacs_recorder_batch_size_count") == 1
    assert value(parse(b.render().decode()), "webmacs_recorder_batch_size_count") == 0


def test_request_ids_are_kept_when_sane_and_replaced_otherwise() -> None:
    assert request_id([(b"x-request-id", b"abc-123_X.y")]) == "abc-123_X.y"
    for bad in (b"", b"a" * 65, b"has space", b"new\nline", b'{"json":1}', "é".encode()):
        fresh = request_id([(b"x-request-id", bad)])
        assert len(fresh) == 32 and fresh != bad.decode("latin1")
    assert request_id([]) != request_id([])
    assert json.dumps(request_id([]))  # plain ASCII


def test_each_worker_gets_its_own_metrics_port() -> None:
    assert worker_bind("127.0.0.1:9100", 0) == "127.0.0.1:9100"
    assert worker_bind("127.0.0.1:9100", 3) == "127.0.0.1:9103"
    assert worker_bind("[::1]:9100", 1) == "[::1]:9101"
    assert worker_bind("0.0.0.0:0", 2) == "0.0.0.0:0"
    with pytest.raises(ValueError, match="beyond 65535"):
        worker_bind("127.0.0.1:65535", 1)


# ---------------------------------------------------------------- the recorder's counts, in virtual time


async def test_the_recorder_counts_each_batch_once_with_its_commit_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from test_actors_recorder import FakeStore, Publisher, job

    from webmacs.actors.batching import FlushPolicy
    from webmacs.actors.messages import IngestFailed
    from webmacs.actors.recorder import RETRY_DELAYS, RecorderHandle, run_recorder
    from webmacs.storage.database import DatabaseUnavailable

    metrics = Metrics()
    down = DatabaseUnavailable("down")
    # Batch 1 commits in 0.25 s; batch 2 fails after every retry; batch 3 commits at once.
    store = FakeStore(script=[0.25, *[down] * (len(RETRY_DELAYS) + 1), None],
                      unknown=frozenset({"gone"}))
    handle = RecorderHandle(None, tally=metrics.tally)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_recorder, handle, store, Publisher(), FlushPolicy())
        first = job("a", "b", "gone")
        await handle.send.send(first)
        await first.ticket.wait()
        failed = job("a", "b")
        await handle.send.send(failed)
        with pytest.raises(IngestFailed):
            await failed.ticket.wait()
        last = job("a")
        await handle.send.send(last)
        await last.ticket.wait()
        handle.close()
    tally = metrics.tally
    assert (tally.committed, tally.rejected, tally.failed, tally.resent) == (3, 1, 2, 0)
    s = parse(metrics.render().decode())
    assert value(s, "webmacs_recorder_batch_size_count") == 2  # the failed batch is not a commit
    assert value(s, "webmacs_recorder_batch_size_sum") == 4
    assert value(s, "webmacs_recorder_commit_seconds_sum") == pytest.approx(0.25)
    assert value(s, "webmacs_recorder_commit_seconds_bucket", le="0.25") == 2
    assert value(s, "webmacs_recorder_commit_seconds_bucket", le="0.1") == 1
