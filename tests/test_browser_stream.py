"""The v2 frontend's live stream in a real browser (contract §8, §7.2).

A real server process, Debian's Chromium driven by Playwright. The page is the server's own
``/docs``: it logs in with ``fetch`` (which sets the session cookie) and opens the stream with no
token, as the unmodified v2 frontend does. A datapoint posted over REST must reach it. Pages of
other origins must not ride the same cookie.

Needs ``/usr/bin/chromium`` (CI installs it); without it the test is skipped with the reason
printed. Never ``playwright install``: the browser comes from Debian.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

CHROMIUM = "/usr/bin/chromium"

# Opens a WebSocket; resolves with what happened: opened or not, frames, the close code.
TRY_SOCKET = """async (url) => await new Promise((resolve) => {
    const seen = {opened: false, frames: [], code: null};
    const ws = new WebSocket(url);
    ws.onopen = () => { seen.opened = true; };
    ws.onmessage = (e) => { seen.frames.push(JSON.parse(e.data)); ws.close(); };
    ws.onclose = (e) => { seen.code = e.code; resolve(seen); };
    setTimeout(() => resolve(seen), 10000);
})"""

# What the v2 frontend does: log in, then open the stream without a token.
LOGIN_AND_SUBSCRIBE = """async ({email, password}) => {
    const resp = await fetch('/api/v1/auth/login', {
        method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({email, password}),
    });
    if (!resp.ok) throw new Error('login ' + resp.status);
    window.frames_seen = [];
    await new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://${location.host}/ws/datapoints/stream`);
        ws.onmessage = (e) => {
            const frame = JSON.parse(e.data);
            window.frames_seen.push(frame);
            if (frame.type === 'connected') resolve();
        };
        ws.onclose = (e) => reject(new Error('stream closed ' + e.code));
        window.stream = ws;
    });
    return document.cookie;
}"""


class _Elsewhere(BaseHTTPRequestHandler):
    """A page of another origin (same host, other port)."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>elsewhere</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def elsewhere() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Elsewhere)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        print(f"\nSKIPPING browser tests: {reason}")
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()


def test_v2_style_token_less_stream_rides_the_session_cookie_same_origin_only(
    browser: Any, live_server: LiveServer, elsewhere: str
) -> None:
    base = live_server.base_url
    with httpx.Client(base_url=base, timeout=30) as http:
        token = http.post("/api/v1/auth/login",
                          json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        resp = http.post("/api/v1/events", headers=headers, json={
            "name": f"browser-{uuid.uuid4().hex[:8]}", "min_value": 0, "max_value": 100,
            "unit": "°C", "type": "sensor"})
        assert resp.status_code == 201, resp.text
        event = resp.json()["public_id"]

        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{base}/docs")
            visible = page.evaluate(LOGIN_AND_SUBSCRIBE, {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            assert "webmacs_session" not in visible  # HttpOnly: page scripts never see the token

            resp = http.post("/api/v1/datapoints", headers=headers,
                             json={"value": 21.5, "event_public_id": event})
            assert resp.status_code == 201, resp.text
            page.wait_for_function(
                "() => window.frames_seen.some(f => f.type === 'datapoints_batch')", timeout=15000)
            frames = page.evaluate("window.frames_seen")
            batch = next(f for f in frames if f["type"] == "datapoints_batch")
            assert [(d["event_public_id"], d["value"]) for d in batch["datapoints"]] == [(event, 21.5)]

            ws_url = f"ws://127.0.0.1:{live_server.port}/ws/datapoints/stream"
            # Same site, other origin (another port): Chromium sends the cookie; the Origin check refuses.
            foreign = context.new_page()
            foreign.goto(elsewhere)
            with foreign.expect_console_message(lambda m: "WebSocket connection" in m.text) as message:
                seen = foreign.evaluate(TRY_SOCKET, ws_url)
            assert seen["opened"] is False and seen["frames"] == [], seen
            assert "Unexpected response code: 403" in message.value.text  # the server's answer
            # Another site (localhost vs 127.0.0.1): SameSite=Strict keeps the cookie home.
            cross = context.new_page()
            cross.goto(f"http://localhost:{live_server.port}/docs")
            with cross.expect_console_message(lambda m: "WebSocket connection" in m.text) as message:
                seen = cross.evaluate(TRY_SOCKET, ws_url)
            assert seen["opened"] is False and seen["frames"] == [], seen
            assert "failed" in message.value.text  # no cookie, so no credentials: 401
            # Still fine from the server's own origin.
            seen = page.evaluate(TRY_SOCKET, ws_url)
            assert seen["opened"] is True, seen
            assert seen["frames"][0]["type"] == "connected", seen
        finally:
            context.close()
