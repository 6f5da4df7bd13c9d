"""Replays of what the v2 clients really send (contract §7): the controller (§7.1) and the frontend (§7.2).

Each call is made the way the client makes it (headers, paths with or without trailing slashes, bodies) and
checked for exactly what the client reads from the answer.
"""

from __future__ import annotations

import json
import math
from typing import Any

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD

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


class V2Controller:
    """The v2 controller's API client: JSON Content-Type and Bearer on every call, ``.json()`` on every 2xx,
    ``raise_for_status`` on anything else (a failure here is a failure of the replay)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.token: str | None = None
        self.calls: list[tuple[str, str, int]] = []

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
        resp = await self.client.post(f"{API}/auth/login", json={"email": email, "password": password})
        assert resp.status_code == 200, await resp.get_data(as_text=True)
        self.token = (await self._json(resp))["access_token"]
        assert isinstance(self.token, str) and self.token

    async def request(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        data = None if body is None else json.dumps(body)
        resp = await self.client.open(f"{API}{path}", method=method, headers=self.headers, data=data)
        self.calls.append((method, path, resp.status_code))
        assert resp.status_code == expect, (method, path, resp.status_code, await resp.get_data(as_text=True))
        return await self._json(resp)

    @staticmethod
    async def _json(resp: Any) -> Any:
        assert resp.mimetype == "application/json", resp.content_type
        return json.loads(await resp.get_data(as_text=True))

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


async def test_v2_controller_full_run(client: Any, admin_headers: dict[str, str]) -> None:
    ctl = V2Controller(client)

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
    assert all(200 <= status < 300 for _, _, status in ctl.calls)

    # What a v2 browser then sees.
    logs = await (await client.get(f"{API}/logging?page=1&page_size=50", headers=admin_headers)).get_json()
    assert logs["total"] == 7
    assert [(e["content"], e["logging_type"]) for e in logs["data"]] == [
        ("Controller shutting down", "warning"),
        ("Controller started – sensor polling active", "info"),
        *[(c, "info") for c in reversed(DEMO_LOGS)],
    ]
    dps = await (await client.get(f"{API}/datapoints?page=1&page_size=50", headers=admin_headers)).get_json()
    assert dps["total"] == 3 * 7 + 3 * 2
    valve_rows = await (await client.get(
        f"{API}/datapoints?event_public_id={valve['public_id']}&page_size=10", headers=admin_headers
    )).get_json()
    assert [r["value"] for r in valve_rows["data"]] == [0.0, 1.0] * 3
    assert all(is_number(r["value"]) for r in valve_rows["data"])


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


async def test_v2_frontend_session(client: Any) -> None:
    # Login form.
    body = await read(await client.post(f"{API}/auth/login", data=json.dumps(
        {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}), headers=browser(json_body=True)))
    token = body["access_token"]
    assert body["username"] == "admin"

    me = await read(await client.get(f"{API}/auth/me", headers=browser(token)))
    check_user(me)
    assert me["username"] == "admin" and me["admin"] is True and me["email"] == ADMIN_EMAIL

    # Events view (trailing slashes).
    page = await read(await client.get(f"{API}/events/?page=1&page_size=50", headers=browser(token)))
    assert page["data"] == [] and page["total"] == 0
    created = await read(await client.post(f"{API}/events/", data=json.dumps(
        {"name": "Pump", "min_value": 0, "max_value": 1, "unit": "on/off", "type": "actuator"}),
        headers=browser(token, json_body=True)), 201)
    assert created["status"] == "success" and created["message"] == "Event successfully created."
    pump = created["public_id"]
    slider = await read(await client.post(f"{API}/events/", data=json.dumps(
        {"name": "Fan speed", "min_value": 0, "max_value": 100, "unit": "%", "type": "range"}),
        headers=browser(token, json_body=True)), 201)
    page = await read(await client.get(f"{API}/events/?page=1&page_size=50", headers=browser(token)))
    assert page["total"] == 2
    assert [e["name"] for e in page["data"]] == ["Pump", "Fan speed"]

    # A duplicate shows a string toast.
    dup = await read(await client.post(f"{API}/events/", data=json.dumps(
        {"name": "Pump", "min_value": 0, "max_value": 1, "unit": "x", "type": "actuator"}),
        headers=browser(token, json_body=True)), 409)
    assert dup == {"detail": "Event already exists."}

    # Logs view and users view.
    logs = await read(await client.get(f"{API}/logging/?page=1&page_size=50", headers=browser(token)))
    assert logs["data"] == [] and logs["total"] == 0
    users = await read(await client.get(f"{API}/users/", headers=browser(token)))
    assert users["total"] == 1
    check_user(users["data"][0])
    assert users["data"][0]["public_id"] == me["public_id"]

    # Experiments view: create = start; the running one is on page 1 with stopped_on null.
    exps = await read(await client.get(f"{API}/experiments?page=1&page_size=50", headers=browser(token)))
    assert exps["data"] == [] and exps["total"] == 0
    old = await read(await client.post(f"{API}/experiments", data=json.dumps({"name": "Run 1"}),
                                       headers=browser(token, json_body=True)), 201)
    await read(await client.put(f"{API}/experiments/{old['public_id']}/stop", headers=browser(token)))
    exp = await read(await client.post(f"{API}/experiments", data=json.dumps({"name": "Run 2"}),
                                       headers=browser(token, json_body=True)), 201)
    assert exp["message"] == "Experiment successfully created."
    exps = await read(await client.get(f"{API}/experiments?page=1&page_size=50", headers=browser(token)))
    assert exps["total"] == 2
    assert exps["data"][0]["public_id"] == exp["public_id"]
    assert exps["data"][0]["stopped_on"] is None
    assert exps["data"][1]["stopped_on"] is not None

    # Datapoints view.
    dps = await read(await client.get(f"{API}/datapoints?page=1&page_size=50", headers=browser(token)))
    assert dps["data"] == [] and dps["total"] == 0

    # Toggle the pump on, then read /latest immediately: "on" means value is exactly 1.
    for value in (1, 0, 1):
        resp = await client.post(f"{API}/datapoints", data=json.dumps(
            {"event_public_id": pump, "value": value}), headers=browser(token, json_body=True))
        assert (await read(resp, 201))["message"] == "Datapoint successfully created."
        latest = await read(await client.get(f"{API}/datapoints/latest", headers=browser(token)))
        rows = [r for r in latest if r["event_public_id"] == pump]
        assert len(rows) == 1
        assert is_number(rows[0]["value"]) and rows[0]["value"] == value
        assert rows[0]["experiment_public_id"] == exp["public_id"]
    # Slider float.
    resp = await client.post(f"{API}/datapoints", data=json.dumps(
        {"event_public_id": slider["public_id"], "value": 42.5}), headers=browser(token, json_body=True))
    await read(resp, 201)
    latest = await read(await client.get(f"{API}/datapoints/latest", headers=browser(token)))
    assert {r["event_public_id"]: r["value"] for r in latest} == {pump: 1, slider["public_id"]: 42.5}

    dps = await read(await client.get(f"{API}/datapoints?page=1&page_size=50", headers=browser(token)))
    assert dps["total"] == 4
    assert [r["value"] for r in dps["data"]] == [42.5, 1, 0, 1]

    # Stop: PUT with no body at all.
    resp = await client.put(f"{API}/experiments/{exp['public_id']}/stop", headers=browser(token))
    stopped = await read(resp)
    assert stopped == {"status": "success", "message": "Experiment successfully stopped."}
    exps = await read(await client.get(f"{API}/experiments?page=1&page_size=50", headers=browser(token)))
    assert all(e["stopped_on"] is not None for e in exps["data"])

    # CSV export through fetch() with a Bearer header.
    resp = await client.get(f"{API}/experiments/{exp['public_id']}/export/csv",
                            headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    text = await resp.get_data(as_text=True)
    lines = text.split("\r\n")
    assert lines[0] == CSV_HEADER
    rows = [line for line in lines[1:] if line]
    assert len(rows) == 4
    assert [r.split(",")[1] for r in rows] == ["Pump", "Pump", "Pump", "Fan speed"]
    assert [r.split(",")[3] for r in rows] == ["1.0", "0.0", "1.0", "42.5"]

    # Logout; any later 401 logs the user out client-side.
    out = await read(await client.post(f"{API}/auth/logout", headers=browser(token)))
    assert out == {"status": "success", "message": "Successfully logged out."}
    resp = await client.get(f"{API}/auth/me", headers=browser(token))
    assert resp.status_code == 401
    assert isinstance((await resp.get_json())["detail"], str)


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
