"""Replays of what the v2 clients really send (contract §7): the controller (§7.1) and the frontend (§7.2).

Each call is made the way the client makes it (headers, paths with or without trailing slashes, bodies) and
checked for exactly what the client reads from the answer.

The full controller run and the frontend session are replayed twice: through the in-process Quart test client
and against a real ``webmacs serve`` process over a socket (``live_server``), both on SQLite and PostgreSQL.
Both transports go through the small ``V2Http`` adapter below, so each replay is written once.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, Protocol

import httpx
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

API = "/api/v1"

DEMO_EVENTS: list[dict[str, Any]] = [
    {"name": "Temperature Reactor", "min_value": 20.0, "max_value": 500.0, "unit": "°C", "type": "sensor"},
    {"name": "Temperature Inlet", "min_value": 15.0, "max_value": 200.0, "unit": "°C", "type": "sensor"},
    {"name": "Temperature Outlet", "min_value": 15.0, "max_value": 300.0, "unit": "°C", "type": "sensor"},
    {"name": "Pressure Chamber", "min_value": 0.0, "max_value": 6.0, "unit": "bar", "type": "sensor"},
    {"name": "Pressure Differential", "min_value": 0.0, "max_value": 100.0, "unit": "mbar", "type": "sensor"},
    {"name": "Volume Flow", "min_value": 0.0, "max_value": 40.0, "unit": "m³/h", "type": "sensor"},
    {"name": "Humidity", "min_value": 0.0, "max_value": 100.0, "unit": "%", "type": "sensor"},
    {"name": "Heater Power", "min_value": 0.0, "max_value": 100.0, "unit": "%", "type": "actuator"},
    {"name": "Valve Position", "min_value": 0.0, "max_value": 100.0, "unit": "%", "type": "actuator"},
]
DEMO_LOGS = [
    "Controller started in development mode",
    "Demo events seeded successfully",
    "Simulated hardware initialized",
    "Sensor polling active – 8 channels",
    "Actuator manager ready – 2 channels",
]
EVENT_TYPES = {"sensor", "actuator", "range", "cmd_button", "cmd_opened", "cmd_closed"}
CSV_HEADER = "timestamp,event_name,event_public_id,value,unit,datapoint_public_id"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_utc_timestamp(value: Any) -> bool:
    return isinstance(value, str) and value.endswith("+00:00") and "T" in value


# ==================================================================== transports


class Reply(NamedTuple):
    """One answer, the same whatever the transport: status, headers (lower-cased names), raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def mimetype(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip()

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        assert self.mimetype == "application/json", (self.status, self.headers.get("content-type"), self.body)
        return json.loads(self.body)


def encode_json(body: Any) -> bytes:
    """What httpx's ``json=`` and axios' ``JSON.stringify`` put on the wire: compact UTF-8."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


class V2Http(Protocol):
    name: str
    calls: list[tuple[str, str, int]]

    async def request(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Reply: ...


def no_redirect(method: str, path: str, status: int) -> None:
    # Both v2 clients follow redirects, but they must never need to.
    assert not 300 <= status < 400, f"{method} {path} answered {status}: a v2 client would be redirected"


class InProcessHttp:
    """The Quart test client: no socket, the app called in-process."""

    name = "test_client"

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[tuple[str, str, int]] = []

    async def request(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Reply:
        data = None if json is None else encode_json(json)
        resp = await self.client.open(path, method=method, headers=dict(headers or {}), data=data,
                                      query_string=params)
        body = await resp.get_data()
        reply = Reply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, body)
        self.calls.append((method, path, reply.status))
        no_redirect(method, path, reply.status)
        return reply


class SocketHttp:
    """A real ``webmacs serve`` process over TCP through httpx (what the v2 controller itself uses),
    following redirects like both v2 clients do; any redirect on the way fails the replay."""

    name = "socket"

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.calls: list[tuple[str, str, int]] = []

    async def request(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Reply:
        content = None if json is None else encode_json(json)
        resp = await self.http.request(method, path, content=content, headers=headers, params=params)
        for hop in resp.history:
            no_redirect(method, path, hop.status_code)
        reply = Reply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, resp.content)
        self.calls.append((method, path, reply.status))
        no_redirect(method, path, reply.status)
        return reply


@asynccontextmanager
async def over_socket(server: LiveServer) -> AsyncIterator[SocketHttp]:
    async with httpx.AsyncClient(base_url=server.base_url, follow_redirects=True, timeout=30) as http:
        yield SocketHttp(http)
    output = server.output()
    assert "Traceback" not in output, output


def as_v2_http(client: Any) -> V2Http:
    return client if isinstance(client, InProcessHttp | SocketHttp) else InProcessHttp(client)


class V2Controller:
    """The v2 controller's API client: JSON Content-Type and Bearer on every call, ``.json()`` on every 2xx,
    ``raise_for_status`` on anything else (a failure here is a failure of the replay)."""

    def __init__(self, client: Any) -> None:
        self.http = as_v2_http(client)  # a V2Http adapter, or a bare Quart test client
        self.token: str | None = None
        self.calls: list[tuple[str, str, int]] = []

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
        credentials = {"email": email, "password": password}
        reply = await self.http.request("POST", f"{API}/auth/login", json=credentials,
                                        headers={"Content-Type": "application/json"})
        assert reply.status == 200, reply.body
        self.token = reply.json()["access_token"]
        assert isinstance(self.token, str) and self.token

    async def request(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        reply = await self.http.request(method, f"{API}{path}", json=body, headers=self.headers)
        self.calls.append((method, path, reply.status))
        assert reply.status == expect, (method, path, reply.status, reply.body)
        return reply.json()

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def post(self, path: str, body: Any, expect: int = 201) -> Any:
        return await self.request("POST", path, body, expect)

    # ---------------------------------------------------------------- the controller's own steps

    async def fetch_events(self) -> list[dict[str, Any]]:
        data = await self.get("/events")
        assert isinstance(data, dict) and isinstance(data["data"], list)
        for e in data["data"]:
            # EventSchema(**e): these fields with these types, or the controller crashes.
            assert isinstance(e["public_id"], str)
            assert isinstance(e["name"], str)
            assert is_number(e["min_value"]) and is_number(e["max_value"])
            assert isinstance(e["unit"], str)
            assert e["type"] in EVENT_TYPES
            assert e.get("user_public_id") is None or isinstance(e["user_public_id"], str)
        events: list[dict[str, Any]] = data["data"]
        return events

    async def seed_if_empty(self) -> bool:
        existing = await self.get("/events")
        items = existing.get("data", []) if isinstance(existing, dict) else existing or []
        if items:
            return False
        for event in DEMO_EVENTS:
            await self.post("/events", event)
        for content in DEMO_LOGS:
            await self.post("/logging", {"content": content, "logging_type": "info"})
        return True

    async def latest(self) -> dict[str, dict[str, Any]]:
        data = await self.get("/datapoints/latest")
        assert isinstance(data, list)
        by_event: dict[str, dict[str, Any]] = {}
        for dp in data:
            # DatapointSchema(**dp): numeric value, string event id, string-or-null timestamp.
            assert is_number(dp["value"]), dp
            assert isinstance(dp["event_public_id"], str)
            assert dp.get("timestamp") is None or isinstance(dp["timestamp"], str)
            assert dp["event_public_id"] not in by_event, "more than one row for an event"
            by_event[dp["event_public_id"]] = dp
        return by_event

    async def send_sensors(self, readings: list[dict[str, Any]]) -> Any:
        return await self.post("/datapoints/batch", {"datapoints": readings})

    async def post_event_value(self, event_public_id: str, value: float) -> Any:
        # RuleEngine._post_event_value: the value goes out as a *string*.
        return await self.post("/datapoints", {"event_public_id": event_public_id, "value": str(value)})

    async def post_log(self, content: str, logging_type: str) -> Any:
        return await self.post("/logging", {"content": content, "logging_type": logging_type})


def sensor_values(sensors: list[dict[str, Any]], cycle: int) -> list[dict[str, Any]]:
    return [{"value": round(20.0 + cycle * 1.25 + i * 0.5, 3), "event_public_id": s["public_id"]}
            for i, s in enumerate(sensors)]


# ==================================================================== §7.1 controller


async def replay_v2_controller_full_run(http: V2Http) -> None:
    ctl = V2Controller(http)

    # 1. Login: only access_token is read.
    await ctl.login()

    # 2. GET /events with no query (first page of 25), empty on a fresh database → seed.
    first = await ctl.get("/events")
    assert first["data"] == [] and first["total"] == 0
    assert first["page"] == 1 and first["page_size"] == 25
    assert await ctl.seed_if_empty() is True

    # 3. Fetch and cache the events.
    events = await ctl.fetch_events()
    assert [e["name"] for e in events] == [e["name"] for e in DEMO_EVENTS]
    for got, sent in zip(events, DEMO_EVENTS, strict=True):
        assert got["type"] == sent["type"]
        assert got["unit"] == sent["unit"]
        assert got["min_value"] == sent["min_value"] and got["max_value"] == sent["max_value"]
    sensors = [e for e in events if e["type"] == "sensor"]
    actuators = [e for e in events if e["type"] in ("actuator", "range")]
    assert len(sensors) == 7 and len(actuators) == 2
    valve = next(e for e in actuators if e["name"] == "Valve Position")

    # 4. Startup log.
    created = await ctl.post_log("Controller started – sensor polling active", "info")
    assert created["status"] == "success"

    # Loops.
    for cycle in range(3):
        readings = sensor_values(sensors, cycle)
        result = await ctl.send_sensors(readings)
        assert result["status"] == "success"
        assert result["message"] == "7 datapoints successfully created."

        latest = await ctl.latest()  # actuator loop
        for reading in readings:
            row = latest[reading["event_public_id"]]
            assert row["value"] == reading["value"]
            assert is_utc_timestamp(row["timestamp"])

        # Rule loop: about three /latest polls, then string values for the rule-controlled valve.
        for _ in range(3):
            await ctl.latest()
        await ctl.post_event_value(valve["public_id"], 1.0)
        assert (await ctl.latest())[valve["public_id"]]["value"] == 1.0
        await ctl.post_event_value(valve["public_id"], 0.0)
        assert (await ctl.latest())[valve["public_id"]]["value"] == 0.0

    # Shutdown.
    await ctl.post_log("Controller shutting down", "warning")

    # Every call succeeded (no 3xx anywhere: the controller follows them, but it must not need to).
    assert len(ctl.calls) == 1 + 1 + 9 + 5 + 1 + 1 + 3 * (1 + 1 + 3 + 4) + 1  # login not counted
    assert all(200 <= status < 300 for _, _, status in ctl.calls)

    # What a v2 browser then sees.
    credentials = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    token = (await read(await http.request("POST", f"{API}/auth/login", json=credentials,
                                           headers=browser(json_body=True))))["access_token"]

    def get(path: str, **params: Any) -> Any:
        return http.request("GET", f"{API}{path}", params=params or None, headers=browser(token))

    logs = await read(await get("/logging/?page=1&page_size=50"))
    assert logs["total"] == 7
    assert [(e["content"], e["logging_type"]) for e in logs["data"]] == [
        ("Controller shutting down", "warning"),
        ("Controller started – sensor polling active", "info"),
        *[(c, "info") for c in reversed(DEMO_LOGS)],
    ]
    dps = await read(await get("/datapoints?page=1&page_size=50"))
    assert dps["total"] == 3 * 7 + 3 * 2
    valve_rows = await read(await get("/datapoints", event_public_id=valve["public_id"], page_size=10))
    assert [r["value"] for r in valve_rows["data"]] == [0.0, 1.0] * 3
    assert all(is_number(r["value"]) for r in valve_rows["data"])
    assert all(200 <= status < 300 for _, _, status in http.calls)


async def test_v2_controller_full_run(client: Any) -> None:
    await replay_v2_controller_full_run(InProcessHttp(client))


async def test_v2_controller_full_run_over_socket(live_server: LiveServer) -> None:
    async with over_socket(live_server) as http:
        await replay_v2_controller_full_run(http)


async def test_v2_controller_restart_skips_seeding_and_runs_rule_cycle(
    client: Any, admin_headers: dict[str, str]
) -> None:
    # Events configured through the UI before the controller (re)starts.
    ui = V2Controller(client)
    ui.token = admin_headers["Authorization"].split(" ", 1)[1]
    ids = {}
    for name, type_ in [("Start", "cmd_button"), ("Open time", "cmd_opened"),
                        ("Close time", "cmd_closed"), ("Rule valve", "actuator"), ("Probe", "sensor")]:
        body = {"name": name, "min_value": 0, "max_value": 10, "unit": "-", "type": type_}
        ids[name] = (await ui.post("/events", body))["public_id"]
    # The operator presses the start button (frontend sends a number).
    await ui.post("/datapoints", {"event_public_id": ids["Start"], "value": 1})

    ctl = V2Controller(client)
    await ctl.login()
    assert await ctl.seed_if_empty() is False
    events = await ctl.fetch_events()
    assert len(events) == 5
    await ctl.post_log("Controller started – sensor polling active", "info")

    # RuleEngine.run: start button value from /latest, read as int(float(value)) == 1.
    latest = await ctl.latest()
    assert int(float(latest[ids["Start"]]["value"])) == 1
    # _execute_cycle: opened/closed durations (no data yet → absent), then "1.0", "0.0", reset the button.
    latest = await ctl.latest()
    assert ids["Open time"] not in latest
    await ctl.latest()
    await ctl.post_event_value(ids["Rule valve"], 1.0)
    await ctl.post_event_value(ids["Rule valve"], 0.0)
    await ctl.post_event_value(ids["Start"], 0.0)

    latest = await ctl.latest()
    assert latest[ids["Rule valve"]]["value"] == 0.0
    assert latest[ids["Start"]]["value"] == 0.0
    assert int(float(latest[ids["Start"]]["value"])) != 1  # the next rule pass does nothing

    await ctl.post_log("Controller shutting down", "warning")
    # No demo events or demo logs were created by the restart.
    page = await (await client.get(f"{API}/events", headers=admin_headers)).get_json()
    assert page["total"] == 5
    logs = await (await client.get(f"{API}/logging", headers=admin_headers)).get_json()
    assert [e["content"] for e in logs["data"]] == [
        "Controller shutting down", "Controller started – sensor polling active"
    ]


async def test_v2_controller_survives_event_deleted_while_running(
    client: Any, admin_headers: dict[str, str]
) -> None:
    ctl = V2Controller(client)
    await ctl.login()
    await ctl.seed_if_empty()
    events = await ctl.fetch_events()
    sensors = [e for e in events if e["type"] == "sensor"]

    # Someone deletes a sensor in the UI; the controller keeps its cached list.
    gone = sensors[3]
    resp = await client.delete(f"{API}/events/{gone['public_id']}", headers=admin_headers)
    assert resp.status_code == 200

    readings = sensor_values(sensors, 0)
    result = await ctl.send_sensors(readings)  # still 2xx: the controller would not retry a 4xx
    assert result["message"] == "6 datapoints successfully created."
    assert result["accepted"] == 6
    assert result["rejected"] == [
        {"index": 3, "event_public_id": gone["public_id"], "detail": "Event not found."}
    ]

    latest = await ctl.latest()
    assert set(latest) == {s["public_id"] for s in sensors} - {gone["public_id"]}


async def test_v2_controller_relogs_in_after_401(client: Any) -> None:
    ctl = V2Controller(client)
    await ctl.login()
    stale = ctl.token
    # The token gets revoked (here: logged out elsewhere); the next call is a 401 with a JSON detail.
    resp = await client.post(f"{API}/auth/logout", headers={"Authorization": f"Bearer {stale}"})
    assert resp.status_code == 200
    resp = await client.get(f"{API}/datapoints/latest", headers=ctl.headers)
    assert resp.status_code == 401
    assert (await resp.get_json())["detail"] == "Token has been revoked."
    # APIClient._reauthenticate, then the retry succeeds at once.
    await ctl.login()
    assert ctl.token != stale
    assert await ctl.latest() == {}


async def test_v2_controller_get_with_json_content_type_and_no_body(client: Any) -> None:
    # httpx sends the client's default Content-Type: application/json even on bodiless GET and DELETE.
    ctl = V2Controller(client)
    await ctl.login()
    event = (await ctl.post("/events", DEMO_EVENTS[0]))["public_id"]
    assert (await ctl.get(f"/events/{event}"))["name"] == DEMO_EVENTS[0]["name"]
    assert (await ctl.get("/logging"))["total"] == 0
    deleted = await ctl.request("DELETE", f"/events/{event}")
    assert deleted == {"status": "success", "message": "Event successfully deleted."}


# ==================================================================== §7.2 frontend


def browser(token: str | None = None, json_body: bool = False) -> dict[str, str]:
    headers = {"Accept": "application/json, text/plain, */*"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if json_body:
        headers["Content-Type"] = "application/json"
    return headers


async def read(resp: Any, status: int = 200) -> Any:
    """The JSON of a ``Reply`` or of a bare Quart test-client response, after checking its status."""
    if isinstance(resp, Reply):
        assert resp.status == status, (resp.status, resp.body)
        return resp.json()
    assert resp.status_code == status, await resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    return json.loads(await resp.get_data(as_text=True))


def check_user(user: dict[str, Any]) -> None:
    assert isinstance(user["public_id"], str)
    assert isinstance(user["email"], str)
    assert isinstance(user["username"], str)
    assert isinstance(user["admin"], bool)
    assert is_utc_timestamp(user["registered_on"])
    assert "password" not in json.dumps(user).lower()


async def replay_v2_frontend_session(http: V2Http) -> None:
    def get(path: str, token: str) -> Any:
        return http.request("GET", f"{API}{path}", headers=browser(token))

    def send(method: str, path: str, body: Any, token: str | None) -> Any:
        return http.request(method, f"{API}{path}", json=body, headers=browser(token, json_body=True))

    # Login form.
    credentials = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    body = await read(await send("POST", "/auth/login", credentials, None))
    token = body["access_token"]
    assert body["username"] == "admin"

    me = await read(await get("/auth/me", token))
    check_user(me)
    assert me["username"] == "admin" and me["admin"] is True and me["email"] == ADMIN_EMAIL

    # Events view (trailing slashes).
    page = await read(await get("/events/?page=1&page_size=50", token))
    assert page["data"] == [] and page["total"] == 0
    created = await read(await send("POST", "/events/", {
        "name": "Pump", "min_value": 0, "max_value": 1, "unit": "on/off", "type": "actuator"}, token), 201)
    assert created["status"] == "success" and created["message"] == "Event successfully created."
    pump = created["public_id"]
    slider = await read(await send("POST", "/events/", {
        "name": "Fan speed", "min_value": 0, "max_value": 100, "unit": "%", "type": "range"}, token), 201)
    page = await read(await get("/events/?page=1&page_size=50", token))
    assert page["total"] == 2
    assert [e["name"] for e in page["data"]] == ["Pump", "Fan speed"]

    # A duplicate shows a string toast.
    dup = await read(await send("POST", "/events/", {
        "name": "Pump", "min_value": 0, "max_value": 1, "unit": "x", "type": "actuator"}, token), 409)
    assert dup == {"detail": "Event already exists."}

    # Logs view and users view.
    logs = await read(await get("/logging/?page=1&page_size=50", token))
    assert logs["data"] == [] and logs["total"] == 0
    users = await read(await get("/users/", token))
    assert users["total"] == 1
    check_user(users["data"][0])
    assert users["data"][0]["public_id"] == me["public_id"]

    # Experiments view: create = start; the running one is on page 1 with stopped_on null.
    exps = await read(await get("/experiments?page=1&page_size=50", token))
    assert exps["data"] == [] and exps["total"] == 0
    old = await read(await send("POST", "/experiments", {"name": "Run 1"}, token), 201)
    await read(await http.request("PUT", f"{API}/experiments/{old['public_id']}/stop",
                                  headers=browser(token)))
    exp = await read(await send("POST", "/experiments", {"name": "Run 2"}, token), 201)
    assert exp["message"] == "Experiment successfully created."
    exps = await read(await get("/experiments?page=1&page_size=50", token))
    assert exps["total"] == 2
    assert exps["data"][0]["public_id"] == exp["public_id"]
    assert exps["data"][0]["stopped_on"] is None
    assert exps["data"][1]["stopped_on"] is not None

    # Datapoints view.
    dps = await read(await get("/datapoints?page=1&page_size=50", token))
    assert dps["data"] == [] and dps["total"] == 0

    # Toggle the pump on, then read /latest immediately: "on" means value is exactly 1.
    for value in (1, 0, 1):
        resp = await send("POST", "/datapoints", {"event_public_id": pump, "value": value}, token)
        assert (await read(resp, 201))["message"] == "Datapoint successfully created."
        latest = await read(await get("/datapoints/latest", token))
        rows = [r for r in latest if r["event_public_id"] == pump]
        assert len(rows) == 1
        assert is_number(rows[0]["value"]) and rows[0]["value"] == value
        assert rows[0]["experiment_public_id"] == exp["public_id"]
    # Slider float.
    resp = await send("POST", "/datapoints", {"event_public_id": slider["public_id"], "value": 42.5}, token)
    await read(resp, 201)
    latest = await read(await get("/datapoints/latest", token))
    assert {r["event_public_id"]: r["value"] for r in latest} == {pump: 1, slider["public_id"]: 42.5}

    dps = await read(await get("/datapoints?page=1&page_size=50", token))
    assert dps["total"] == 4
    assert [r["value"] for r in dps["data"]] == [42.5, 1, 0, 1]

    # Stop: PUT with no body at all.
    resp = await http.request("PUT", f"{API}/experiments/{exp['public_id']}/stop", headers=browser(token))
    stopped = await read(resp)
    assert stopped == {"status": "success", "message": "Experiment successfully stopped."}
    exps = await read(await get("/experiments?page=1&page_size=50", token))
    assert all(e["stopped_on"] is not None for e in exps["data"])

    # CSV export through fetch() with a Bearer header.
    resp = await http.request("GET", f"{API}/experiments/{exp['public_id']}/export/csv",
                              headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    assert resp.mimetype == "text/csv"
    lines = resp.text().split("\r\n")
    assert lines[0] == CSV_HEADER
    rows = [line for line in lines[1:] if line]
    assert len(rows) == 4
    assert [r.split(",")[1] for r in rows] == ["Pump", "Pump", "Pump", "Fan speed"]
    assert [r.split(",")[3] for r in rows] == ["1.0", "0.0", "1.0", "42.5"]

    # Logout; any later 401 logs the user out client-side.
    out = await read(await http.request("POST", f"{API}/auth/logout", headers=browser(token)))
    assert out == {"status": "success", "message": "Successfully logged out."}
    resp = await get("/auth/me", token)
    assert resp.status == 401
    assert isinstance(resp.json()["detail"], str)


async def test_v2_frontend_session(client: Any) -> None:
    await replay_v2_frontend_session(InProcessHttp(client))


async def test_v2_frontend_session_over_socket(live_server: LiveServer) -> None:
    async with over_socket(live_server) as http:
        await replay_v2_frontend_session(http)


async def test_v2_frontend_polling_fallback_reads_latest(client: Any, admin_token: str) -> None:
    # Without a live socket the dashboard polls /datapoints/latest; REST ingestion from a controller
    # must show up there (the only data path a v2 browser has under this contract).
    ctl = V2Controller(client)
    await ctl.login()
    await ctl.seed_if_empty()
    sensors = [e for e in await ctl.fetch_events() if e["type"] == "sensor"]
    await ctl.send_sensors(sensor_values(sensors, 0))
    await ctl.send_sensors(sensor_values(sensors, 1))
    latest = await read(await client.get(f"{API}/datapoints/latest", headers=browser(admin_token)))
    assert [r["event_public_id"] for r in latest] == [s["public_id"] for s in sensors]
    assert [r["value"] for r in latest] == [v["value"] for v in sensor_values(sensors, 1)]
    assert all(is_utc_timestamp(r["timestamp"]) for r in latest)
