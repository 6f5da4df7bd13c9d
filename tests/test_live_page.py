"""The live page at ``/``: its files as served, and the page itself in a real browser.

The browser tests run a real ``webmacs serve`` (SQLite and PostgreSQL) and Debian's Chromium
driven by Playwright (the ``browser`` fixture of ``test_browser_stream``; never
``playwright install``). A controller's readings arrive over the real telemetry WebSocket.
Screenshots land in the test's ``tmp_path`` as artifacts.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
import trio_websocket
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from test_browser_stream import browser  # noqa: F401 - the module's Chromium (skips without it)

from webmacs.http.web import PAGE_POLICY
from webmacs.web import STATIC_DIR

API = "/api/v1"
UPLOT = "/ui/vendor/uplot-1.6.32"
WAIT_MS = 15000
YEAR = "public, max-age=31536000, immutable"


# ------------------------------------------------------------------ the files, as served


async def test_page_and_files_are_served_with_their_types_and_caching(client: Any) -> None:
    resp = await client.get("/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["Content-Security-Policy"] == PAGE_POLICY
    assert "default-src 'self'" in PAGE_POLICY and "frame-ancestors 'none'" in PAGE_POLICY
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    page = await resp.get_data(as_text=True)
    assert '<form id="login-form"' in page

    expected = {
        "/ui/app.js": ("text/javascript; charset=utf-8", "no-cache"),
        "/ui/app.css": ("text/css; charset=utf-8", "no-cache"),
        f"{UPLOT}/uPlot.iife.min.js": ("text/javascript; charset=utf-8", YEAR),
        f"{UPLOT}/uPlot.min.css": ("text/css; charset=utf-8", YEAR),
    }
    resp = await client.get("/ui/index.html")  # the same page by its file name: the same policy
    assert resp.headers["Content-Security-Policy"] == PAGE_POLICY
    for path, (content_type, cache) in expected.items():
        resp = await client.get(path)
        assert resp.status_code == 200, path
        assert (resp.headers["Content-Type"], resp.headers["Cache-Control"]) == (content_type, cache), path
        assert "Expires" not in resp.headers
        etag = resp.headers["ETag"]
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304, path  # revalidation is cheap


async def test_everything_the_page_loads_is_served(client: Any) -> None:
    """Every ``src``/``href`` of index.html and every module import resolves to a served file."""
    page = await (await client.get("/")).get_data(as_text=True)
    pending = [u for u in re.findall(r'(?:src|href)="(/[^"]+)"', page)]
    seen: set[str] = set()
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        resp = await client.get(url)
        assert resp.status_code == 200, url
        if url.endswith(".js") and "/vendor/" not in url:
            text = await resp.get_data(as_text=True)
            base = url.rsplit("/", 1)[0]
            pending += [f"{base}/{m[2:]}" for m in re.findall(r'from "(\./[^"]+)"', text)]
    assert {"/ui/app.js", "/ui/api.js", "/ui/charts.js", "/ui/series.js", "/ui/stream.js"} <= seen


@pytest.mark.parametrize("path", [
    "/ui/../settings.py", "/ui/%2e%2e/settings.py", "/ui/..%2fsettings.py", "/ui/vendor/../../http/web.py",
    "/ui//etc/passwd", "/ui/%2fetc%2fpasswd", "/ui/C:%5cwindows%5cwin.ini", "/ui/", "/ui/nope.js",
    "/ui/vendor/uplot-1.6.32/LICENSE", "/ui/vendor/uplot-1.6.32/README.md", "/ui/../__init__.py",
    "/index.html", "/ui/app.js/",
])
async def test_anything_else_is_a_json_404(client: Any, path: str) -> None:
    resp = await client.get(path)
    assert resp.status_code == 404, path
    assert await resp.get_json() == {"detail": "Not Found"}


async def test_only_get(client: Any) -> None:
    resp = await client.post("/", json={})
    assert resp.status_code == 405 and "GET" in resp.headers["Allow"]


def test_vendored_uplot_is_the_released_file() -> None:
    """The README's checksum matches the file (an edited or swapped copy would not)."""
    import hashlib

    folder = STATIC_DIR / "vendor" / "uplot-1.6.32"
    readme = (folder / "README.md").read_text()
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert f"{digest}  {name}" in readme
    banner = "/*! https://github.com/leeoniya/uPlot (v1.6.32)"
    assert (folder / "uPlot.iife.min.js").read_text().startswith(banner)
    assert "MIT" in (folder / "LICENSE").read_text()


# ------------------------------------------------------------------ helpers for the browser


def admin_client(base_url: str) -> tuple[httpx.Client, dict[str, str], str]:
    http = httpx.Client(base_url=base_url, timeout=30)
    token = http.post(f"{API}/auth/login",
                      json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).json()["access_token"]
    return http, {"Authorization": f"Bearer {token}"}, token


def new_event(http: httpx.Client, headers: dict[str, str], kind: str, lo: float = 0, hi: float = 100,
              unit: str = "°C") -> dict[str, Any]:
    body = {"name": f"{kind}-{uuid.uuid4().hex[:6]}", "min_value": lo, "max_value": hi, "unit": unit,
            "type": kind}
    resp = http.post(f"{API}/events", headers=headers, json=body)
    assert resp.status_code == 201, resp.text
    return {**body, "public_id": resp.json()["public_id"]}


def controller_sends(port: int, token: str, readings: list[tuple[str, float]]) -> None:
    """A controller: one telemetry frame with ``seq`` over the real WebSocket, acked = committed."""

    async def send() -> None:
        url = f"ws://127.0.0.1:{port}/ws/controller/telemetry?token={token}"
        async with trio_websocket.open_websocket_url(url) as ws:
            frame = {"seq": 1, "datapoints": [{"event_public_id": e, "value": v} for e, v in readings]}
            await ws.send_message(orjson.dumps(frame).decode())
            with trio.fail_after(15):
                ack = orjson.loads(await ws.get_message())
            assert ack == {"type": "ack", "seq": 1, "accepted": len(readings), "rejected": []}, ack

    trio.run(send)


def stored_values(http: httpx.Client, headers: dict[str, str], event_id: str) -> list[float]:
    """The event's stored datapoints, oldest first."""
    resp = http.get(f"{API}/datapoints", headers=headers,
                    params={"event_public_id": event_id, "page_size": 1000})
    assert resp.status_code == 200, resp.text
    return [d["value"] for d in reversed(resp.json()["data"])]


def wait_stored(page: Any, http: httpx.Client, headers: dict[str, str], event_id: str,
                values: list[float]) -> None:
    for _ in range(100):
        if stored_values(http, headers, event_id) == values:
            return
        page.wait_for_timeout(100)
    assert stored_values(http, headers, event_id) == values


def log_in(page: Any, base_url: str, password: str = ADMIN_PASSWORD) -> None:
    page.goto(f"{base_url}/")
    form = page.get_by_role("form", name="Log in")
    form.get_by_label("Email").fill(ADMIN_EMAIL)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Log in").click()


def wait_text(locator: Any, text: str) -> None:
    locator.page.wait_for_function("([el, text]) => el.textContent === text",
                                   arg=[locator.element_handle(), text], timeout=WAIT_MS)


def wait_state(page: Any, state: str, timeout: int = WAIT_MS) -> None:
    page.wait_for_function("(s) => window.webmacsDebug.state() === s", arg=state, timeout=timeout)


def open_page(browser: Any) -> tuple[Any, Any, list[str]]:  # noqa: F811 - the fixture's value
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    expected = "the server responded with a status of 401"  # a wrong password, a revoked token

    def console(message: Any) -> None:
        if message.type == "error" and expected not in message.text:
            errors.append(message.text)

    page.on("console", console)
    return context, page, errors


# ------------------------------------------------------------------ the page in a browser


def test_log_in_watch_a_value_switch_an_actuator_run_an_experiment(
    browser: Any, live_server: LiveServer, tmp_path: Path  # noqa: F811
) -> None:
    base = live_server.base_url
    http, headers, token = admin_client(base)
    sensor = new_event(http, headers, "sensor")
    pump = new_event(http, headers, "actuator", 0, 1, "on")
    valve = new_event(http, headers, "range", 0, 50, "%")
    context, page, errors = open_page(browser)
    try:
        log_in(page, base, password="wrong-password")
        page.get_by_role("alert").filter(has_text="Invalid email or password.").wait_for()
        log_in(page, base)
        wait_state(page, "connected")
        assert page.get_by_role("status", name="Live data").inner_text() == "connected"
        page.get_by_label(f"Chart {sensor['name']}").check()

        controller_sends(live_server.port, token, [(sensor["public_id"], 21.5), (sensor["public_id"], 22.25)])
        value = page.get_by_label(f"{sensor['name']} latest value")
        page.wait_for_function("(id) => window.webmacsDebug.chartPoints(id) >= 2",
                               arg=sensor["public_id"], timeout=WAIT_MS)
        wait_text(value, "22.25")  # tiles repaint a few times a second
        tile = page.locator(f"article[data-event-id='{sensor['public_id']}']")
        assert "range 0 .. 100 °C" in tile.inner_text()
        chart = page.get_by_role("figure", name=f"Chart of {sensor['name']}")
        assert chart.locator("canvas").count() == 1

        switch = page.get_by_role("switch", name=f"{pump['name']} set-point")
        switch.check()
        wait_stored(page, http, headers, pump["public_id"], [1.0])
        switch.uncheck()
        wait_stored(page, http, headers, pump["public_id"], [1.0, 0.0])
        page.get_by_label(f"{valve['name']} set-point").fill("12.5")
        wait_stored(page, http, headers, valve["public_id"], [12.5])
        page.wait_for_function("(id) => window.webmacsDebug.latest(id)?.value === 12.5",
                               arg=valve["public_id"], timeout=WAIT_MS)  # back through the stream

        name = f"run {uuid.uuid4().hex[:6]}"
        form = page.get_by_role("form", name="Start experiment")
        form.get_by_label("Name").fill(name)
        form.get_by_role("button", name="Start").click()
        row = page.locator("#experiments tr", has_text=name)
        row.get_by_text("running").wait_for()
        controller_sends(live_server.port, token, [(sensor["public_id"], 30.0)])
        page.wait_for_function("(id) => window.webmacsDebug.latest(id)?.value === 30",
                               arg=sensor["public_id"], timeout=WAIT_MS)
        page.screenshot(path=tmp_path / "live-page.png", full_page=True)
        page.get_by_role("button", name=f"Stop {name}").click()
        row.get_by_text("running").wait_for(state="detached")

        with page.expect_download() as info:
            page.get_by_role("button", name=f"Download {name} as CSV").click()
        download = info.value
        assert download.suggested_filename.startswith("experiment_run_")
        rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
        assert rows[0] == ["timestamp", "event_name", "event_public_id", "value", "unit",
                           "datapoint_public_id"]
        assert [(r[1], r[3], r[4]) for r in rows[1:]] == [(sensor["name"], "30.0", "°C")]

        page.get_by_role("button", name="Log out").click()
        page.get_by_role("form", name="Log in").wait_for()
        page_token = page.evaluate("sessionStorage.getItem('webmacs.token')")
        assert page_token is None
        assert errors == []
    finally:
        context.close()
        http.close()


class Proxy:
    """A TCP proxy in front of the server, as a reverse proxy would be: it can cut the WebSockets
    going through it (a network drop) and refuse new ones with 502 (a proxy that does not pass
    upgrades), while plain HTTP keeps working. The page sees only the proxy's address."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.block_websockets = False
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_websockets(self) -> None:
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        self.cut_websockets()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                client.close()
                return
            head += chunk
        websocket = b"upgrade: websocket" in head.lower()
        if websocket and self.block_websockets:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            client.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        upstream.sendall(head)
        if websocket:
            self.sockets += [client, upstream]
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            if sock in self.sockets:
                self.sockets.remove(sock)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_dropped_stream_reconnects_and_a_refused_one_falls_back_to_polling(
    browser: Any, live_server: LiveServer, tmp_path: Path  # noqa: F811
) -> None:
    http, headers, _ = admin_client(live_server.base_url)
    sensor = new_event(http, headers, "sensor")
    proxy = Proxy(live_server.port)
    context, page, errors = open_page(browser)
    latest = "(id) => window.webmacsDebug.latest(id)?.value"
    try:
        log_in(page, proxy.base_url)
        wait_state(page, "connected")
        page.evaluate("""() => { window.states = [window.webmacsDebug.state()]; setInterval(() => {
            const s = window.webmacsDebug.state();
            if (s !== window.states.at(-1)) window.states.push(s); }, 20); }""")

        proxy.cut_websockets()
        page.wait_for_function("() => window.states.length >= 3", timeout=WAIT_MS)
        assert page.evaluate("window.states") == ["connected", "reconnecting", "connected"]

        proxy.block_websockets = True
        proxy.cut_websockets()
        wait_state(page, "polling", timeout=20000)
        assert page.get_by_role("status", name="Live data").inner_text() == "polling"
        resp = http.post(f"{API}/datapoints", headers=headers,
                         json={"event_public_id": sensor["public_id"], "value": 7.5})
        assert resp.status_code == 201
        page.wait_for_function(f"(id) => ({latest})(id) === 7.5", arg=sensor["public_id"],
                               timeout=5000)  # polled every second
        wait_text(page.get_by_label(f"{sensor['name']} latest value"), "7.5")
        page.screenshot(path=tmp_path / "polling.png")

        proxy.block_websockets = False
        wait_state(page, "connected", timeout=30000)
        resp = http.post(f"{API}/datapoints", headers=headers,
                         json={"event_public_id": sensor["public_id"], "value": 8.5})
        assert resp.status_code == 201
        page.wait_for_function(f"(id) => ({latest})(id) === 8.5", arg=sensor["public_id"], timeout=WAIT_MS)
        assert page.evaluate("window.states")[-3:] == ["reconnecting", "polling", "connected"]
        assert [e for e in errors if "WebSocket" not in e] == []  # the refusals are logged, nothing else
    finally:
        context.close()
        proxy.close()
        http.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_revoked_session_goes_back_to_the_login_form(
    browser: Any, live_server: LiveServer  # noqa: F811
) -> None:
    base = live_server.base_url
    http = httpx.Client(base_url=base, timeout=30)
    context, page, _ = open_page(browser)
    try:
        log_in(page, base)
        wait_state(page, "connected")
        token = page.evaluate("sessionStorage.getItem('webmacs.token')")
        # Logged out elsewhere (another tab, an admin's script): the server closes the page's
        # stream with 1008, and the page goes back to the form by itself, with the reason.
        resp = http.post(f"{API}/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200
        page.get_by_role("form", name="Log in").wait_for()
        assert "Token has been revoked." in page.locator("#login-error").inner_text()
        assert page.evaluate("window.webmacsDebug.state()") == "offline"
        page.reload()  # the token is gone: the form again, no call with a dead token
        page.get_by_role("form", name="Log in").wait_for()
    finally:
        context.close()
        http.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rest_call_refused_with_401_goes_back_to_the_login_form(
    browser: Any, live_server: LiveServer  # noqa: F811
) -> None:
    base = live_server.base_url
    context, page, _ = open_page(browser)
    try:
        log_in(page, base)
        wait_state(page, "connected")
        # The stream stays up (its cookie is still good); the next REST call gets a 401.
        page.evaluate("sessionStorage.setItem('webmacs.token', 'not-a-token')")
        form = page.get_by_role("form", name="Start experiment")
        form.get_by_label("Name").fill("never")
        form.get_by_role("button", name="Start").click()
        page.get_by_role("form", name="Log in").wait_for()
        assert "Invalid or expired token." in page.locator("#login-error").inner_text()
        assert page.evaluate("window.webmacsDebug.state()") == "offline"
    finally:
        context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_series_buffer_and_reconnect_policy_in_the_browser(
    browser: Any, live_server: LiveServer  # noqa: F811
) -> None:
    """The page's sans-IO parts, run by the browser's own JavaScript engine."""
    context, page, _ = open_page(browser)
    try:
        page.goto(f"{live_server.base_url}/")
        result = page.evaluate("""async () => {
            const { Series, epochSeconds } = await import('/ui/series.js');
            const { ReconnectPolicy } = await import('/ui/stream.js');
            const s = new Series(4, 100);
            for (const x of [1, 2, 3, 5]) s.push(x, x * 10);
            s.push(4, 40);                       // out of order: inserted in place
            const afterInsert = Array.from(s.view()[0]);
            s.push(6, 60);
            for (let i = 7; i < 40; i++) s.push(i, i);   // many compactions
            const capped = Array.from(s.view()[0]);
            s.push(500, 1);                      // older than 100 s before the newest: aged out
            const aged = Array.from(s.view()[0]);
            const m = new Series(10, 1000);
            m.push(10, 1); m.merge([[5, 0], [12, 2], [NaN, 3]]);
            const p = new ReconnectPolicy({ baseMs: 100, capMs: 1000, pollAfter: 3, stableMs: 5000,
                                            random: () => 1 });
            const closes = [1, 2, 3, 4, 5].map(() => p.closed(0));
            p.opened(0);
            const flap = p.closed(1000);          // up 1 s: still failing
            p.opened(2000);
            const stable = p.closed(9000);        // up 7 s: a fresh start
            const low = new ReconnectPolicy({ baseMs: 100, random: () => 0 }).closed(0);
            const { Pacer } = await import('/ui/charts.js');
            const pacer = new Pacer({ frameMs: 10, maxGapMs: 40, calm: 3 });
            const slots = [];
            const at = (t, continuing = true) => slots.push([t, pacer.frame(t, continuing), pacer.gapMs]);
            at(0, false); at(10); at(20);         // on time: everything, every frame
            at(100, false);                       // after idleness: not late
            at(130);                              // late: one chart per 10 ms
            at(160);                              // late again: per 20 ms
            at(170); at(180); at(190);            // on time: a slot per 20 ms; calm after 3: per 10
            at(200); at(210); at(220);            // per 10 ms, then calm again: everything
            at(300); at(400); at(500);            // late, late, late: capped at 40 ms
            return { afterInsert, capped, aged, merged: Array.from(m.view()[0]), closes, flap, stable,
                     low, slots, ts: epochSeconds('2026-02-10T20:44:08.123456+00:00') };
        }""")
    finally:
        context.close()
    assert result["afterInsert"] == [2, 3, 4, 5]
    assert result["capped"] == [36, 37, 38, 39]
    assert result["aged"] == [500]
    assert result["merged"] == [5, 10, 12]
    assert [(c["state"], c["poll"], c["delayMs"]) for c in result["closes"]] == [
        ("reconnecting", False, 100), ("reconnecting", False, 200), ("polling", True, 400),
        ("polling", True, 800), ("polling", True, 1000)]
    assert (result["flap"]["state"], result["flap"]["delayMs"]) == ("polling", 1000)
    assert (result["stable"]["state"], result["stable"]["delayMs"]) == ("reconnecting", 100)
    assert result["low"]["delayMs"] == 50  # equal jitter: never below half the step
    assert result["ts"] == pytest.approx(1770756248.123)
    inf = float("inf")
    assert result["slots"] == [
        [0, inf, 0], [10, inf, 0], [20, inf, 0], [100, inf, 0], [130, 1, 10], [160, 1, 20],
        [170, 0, 20], [180, 1, 20], [190, 1, 10], [200, 1, 10], [210, 1, 10], [220, inf, 0],
        [300, 1, 10], [400, 1, 20], [500, 1, 40]]


def test_the_first_minute_webmacs_simulate_feeds_the_page(
    browser: Any, live_server: LiveServer, tmp_path: Path  # noqa: F811
) -> None:
    """The README's first minute: a server, ``webmacs simulate`` as typed, the page at ``/``."""
    import subprocess
    import sys

    base = live_server.base_url
    sim = subprocess.Popen(
        [sys.executable, "-m", "webmacs", "simulate", "--url", base, "--controllers", "2",
         "--rate", "20", "--duration", "30"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    context, page, errors = open_page(browser)
    try:
        http, headers, _ = admin_client(base)
        for _ in range(150):  # the simulator creates its events first
            names = {e["name"]: e for e in http.get(f"{API}/events", headers=headers,
                                                     params={"page_size": 100}).json()["data"]}
            if "sim2_valve" in names:
                break
            page.wait_for_timeout(100)
        http.close()
        temperature = names["sim1_temperature"]
        log_in(page, base)
        wait_state(page, "connected")
        box = page.get_by_label("Chart sim1_temperature")
        if not box.is_checked():
            box.check()
        page.wait_for_function("(id) => window.webmacsDebug.chartPoints(id) >= 20",
                               arg=temperature["public_id"], timeout=WAIT_MS)
        latest = page.evaluate("(id) => window.webmacsDebug.latest(id).value", temperature["public_id"])
        assert temperature["min_value"] <= latest <= temperature["max_value"]
        assert page.get_by_role("switch", name="sim1_valve set-point").count() == 1
        page.screenshot(path=tmp_path / "first-minute.png", full_page=True)
        assert errors == []
    finally:
        context.close()
        sim.send_signal(2)  # Ctrl-C: the summary, exit 0
        out, err = sim.communicate(timeout=30)
    assert sim.returncode == 0, err
    assert out.strip().splitlines()[-1].startswith("total: sent ")


def test_a_viewer_watches_but_is_offered_no_controls(
    browser: Any, live_server: LiveServer  # noqa: F811
) -> None:
    base = live_server.base_url
    http, headers, _ = admin_client(base)
    pump = new_event(http, headers, "actuator", 0, 1, "on")
    valve = new_event(http, headers, "range", 0, 50, "%")
    email, password = f"viewer-{uuid.uuid4().hex[:6]}@lab.example", "viewer-password"
    created = http.post(f"{API}/users", headers=headers, json={
        "email": email, "username": email.split("@")[0], "password": password, "role": "viewer"})
    assert created.status_code == 201, created.text
    http.close()
    context, page, errors = open_page(browser)
    try:
        page.goto(f"{base}/")
        form = page.get_by_role("form", name="Log in")
        form.get_by_label("Email").fill(email)
        form.get_by_label("Password").fill(password)
        form.get_by_role("button", name="Log in").click()
        wait_state(page, "connected")
        assert "(viewer)" in page.locator("#who").inner_text()
        assert page.get_by_role("switch", name=f"{pump['name']} set-point").is_disabled()
        assert page.get_by_label(f"{valve['name']} set-point").is_disabled()
        start = page.get_by_role("form", name="Start experiment")
        assert start.get_by_role("button", name="Start").is_disabled()
        assert errors == []
    finally:
        context.close()
