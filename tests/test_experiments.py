"""Experiments REST API: contract §2 (conventions) and §4.3 (experiments, stamping, CSV export)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import pytest
import trio
from conftest import create_event, create_experiment, create_user

EXPERIMENTS = "/api/v1/experiments"
DATAPOINTS = "/api/v1/datapoints"
EXPERIMENT_KEYS = ("public_id", "name", "started_on", "stopped_on", "user_public_id")
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00")
CSV_HEADER = "timestamp,event_name,event_public_id,value,unit,datapoint_public_id\r\n"
STOPPED = {"status": "success", "message": "Experiment successfully stopped."}
UPDATED = {"status": "success", "message": "Experiment successfully updated."}
DELETED = {"status": "success", "message": "Experiment successfully deleted."}
MISSING = object()


# ---------------------------------------------------------------- helpers


def fmt_ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(value: str) -> datetime:
    assert TS_RE.fullmatch(value), value
    return datetime.fromisoformat(value)


def assert_public_id(value: Any) -> None:
    assert isinstance(value, str)
    parsed = uuid.UUID(value)
    assert str(parsed) == value
    assert parsed.version == 4


def running_conflict(name: str) -> dict[str, str]:
    return {"detail": f"Experiment '{name}' is still running; stop it first."}


EXISTS = {"detail": "Experiment already exists."}


async def get_experiment(client: Any, headers: dict[str, str], public_id: str) -> dict[str, Any]:
    resp = await client.get(f"{EXPERIMENTS}/{public_id}", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    experiment: dict[str, Any] = await resp.get_json()
    return experiment


async def list_experiments(client: Any, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    resp = await client.get(f"{EXPERIMENTS}{query}", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    page: dict[str, Any] = await resp.get_json()
    return page


async def stop(client: Any, headers: dict[str, str], public_id: str) -> dict[str, Any]:
    resp = await client.put(f"{EXPERIMENTS}/{public_id}/stop", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert await resp.get_json() == STOPPED
    return await get_experiment(client, headers, public_id)


async def post_datapoint(
    client: Any, headers: dict[str, str], event_id: str, value: Any, ts: datetime | None = None
) -> str:
    body: dict[str, Any] = {"value": value, "event_public_id": event_id}
    if ts is not None:
        body["timestamp"] = fmt_ts(ts)
    resp = await client.post(DATAPOINTS, json=body, headers=headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    public_id: str = (await resp.get_json())["public_id"]
    return public_id


async def datapoint_experiment(client: Any, headers: dict[str, str], public_id: str) -> str | None:
    resp = await client.get(f"{DATAPOINTS}/{public_id}", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    experiment_id: str | None = (await resp.get_json())["experiment_public_id"]
    return experiment_id


async def datapoints_of_experiment(
    client: Any, headers: dict[str, str], experiment_id: str
) -> dict[str, Any]:
    resp = await client.get(
        f"{DATAPOINTS}?experiment_public_id={experiment_id}&page_size=1000", headers=headers
    )
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    page: dict[str, Any] = await resp.get_json()
    return page


async def export_csv(client: Any, headers: dict[str, str], public_id: str) -> tuple[Any, str]:
    resp = await client.get(f"{EXPERIMENTS}/{public_id}/export/csv", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    raw: bytes = await resp.get_data()
    assert not raw.startswith(b"\xef\xbb\xbf"), "no BOM"
    return resp, raw.decode("utf-8")


async def export_csv_raw(client: Any, headers: dict[str, str], public_id: str) -> tuple[Any, bytes]:
    """The export as the ASGI server sees it (the test client's response adds a Content-Length)."""
    body = bytearray()
    async with client.request(f"{EXPERIMENTS}/{public_id}/export/csv", headers=headers) as conn:
        await conn.send_complete()
        try:
            while True:
                body += await conn.receive()
        except trio.EndOfChannel:
            pass
    assert conn.status_code == 200
    return conn.headers, bytes(body)


@pytest.fixture
async def admin_public_id(client: Any, admin_headers: dict[str, str]) -> str:
    resp = await client.get("/api/v1/auth/me", headers=admin_headers)
    assert resp.status_code == 200
    public_id: str = (await resp.get_json())["public_id"]
    return public_id


# ---------------------------------------------------------------- create = start


async def test_create_starts_the_experiment(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    before = datetime.now(UTC)
    resp = await client.post(EXPERIMENTS, json={"name": "Run 1"}, headers=user["headers"])
    after = datetime.now(UTC)
    assert resp.status_code == 201
    created = await resp.get_json()
    assert set(created) == {"status", "message", "public_id"}
    assert created["status"] == "success"
    assert created["message"] == "Experiment successfully created."
    assert_public_id(created["public_id"])

    experiment = await get_experiment(client, admin_headers, created["public_id"])
    assert set(EXPERIMENT_KEYS) <= set(experiment)
    assert experiment["public_id"] == created["public_id"]
    assert experiment["name"] == "Run 1"
    assert experiment["stopped_on"] is None
    assert experiment["user_public_id"] == user["public_id"]
    started = parse_ts(experiment["started_on"])
    assert before - timedelta(seconds=2) <= started <= after + timedelta(seconds=2)


async def test_deleting_the_creator_keeps_experiment_with_null_user(
    client: Any, admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers)
    public_id = await create_experiment(client, user["headers"])
    resp = await client.delete(f"/api/v1/users/{user['public_id']}", headers=admin_headers)
    assert resp.status_code == 200
    assert (await get_experiment(client, admin_headers, public_id))["user_public_id"] is None


@pytest.mark.parametrize("name", ["", "n" * 256, 42, True, ["x"], None, MISSING])
async def test_create_rejects_bad_names(client: Any, admin_headers: dict[str, str], name: Any) -> None:
    body = {} if name is MISSING else {"name": name}
    resp = await client.post(EXPERIMENTS, json=body, headers=admin_headers)
    assert resp.status_code == 422
    detail = (await resp.get_json())["detail"]
    assert isinstance(detail, list)
    assert any(item["loc"] == ["body", "name"] for item in detail), detail
    assert (await list_experiments(client, admin_headers))["total"] == 0


async def test_name_length_bounds(client: Any, admin_headers: dict[str, str]) -> None:
    public_id = await create_experiment(client, admin_headers, "x")
    await stop(client, admin_headers, public_id)
    public_id = await create_experiment(client, admin_headers, "y" * 255)
    assert (await get_experiment(client, admin_headers, public_id))["name"] == "y" * 255


async def test_second_create_while_one_runs_conflicts(client: Any, admin_headers: dict[str, str]) -> None:
    first = await create_experiment(client, admin_headers, "Calibration")
    resp = await client.post(EXPERIMENTS, json={"name": "Second"}, headers=admin_headers)
    assert resp.status_code == 409
    assert await resp.get_json() == running_conflict("Calibration")

    # The message names the running experiment by its current name.
    resp = await client.put(f"{EXPERIMENTS}/{first}", json={"name": "Calibration v2"}, headers=admin_headers)
    assert resp.status_code == 200
    resp = await client.post(EXPERIMENTS, json={"name": "Second"}, headers=admin_headers)
    assert resp.status_code == 409
    assert await resp.get_json() == running_conflict("Calibration v2")

    page = await list_experiments(client, admin_headers)
    assert page["total"] == 1

    await stop(client, admin_headers, first)
    second = await create_experiment(client, admin_headers, "Second")
    assert (await get_experiment(client, admin_headers, second))["stopped_on"] is None


async def test_duplicate_name_conflicts(client: Any, admin_headers: dict[str, str]) -> None:
    first = await create_experiment(client, admin_headers, "Batch 7")
    # Both conflicts apply (same name, and it is running): the name conflict is reported.
    resp = await client.post(EXPERIMENTS, json={"name": "Batch 7"}, headers=admin_headers)
    assert resp.status_code == 409
    assert await resp.get_json() == EXISTS

    await stop(client, admin_headers, first)
    resp = await client.post(EXPERIMENTS, json={"name": "Batch 7"}, headers=admin_headers)
    assert resp.status_code == 409
    assert await resp.get_json() == EXISTS
    assert (await list_experiments(client, admin_headers))["total"] == 1

    # Names are compared exactly.
    other = await create_experiment(client, admin_headers, "batch 7")
    await stop(client, admin_headers, other)


async def test_concurrent_creates_start_exactly_one(client: Any, admin_headers: dict[str, str]) -> None:
    results: list[tuple[str, int, Any]] = []

    async def attempt(name: str) -> None:
        resp = await client.post(EXPERIMENTS, json={"name": name}, headers=admin_headers)
        results.append((name, resp.status_code, await resp.get_json()))

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(attempt, f"race-{i}")

    winners = [r for r in results if r[1] == 201]
    assert len(winners) == 1, results
    winner = winners[0][0]
    for name, status, body in results:
        if name != winner:
            assert status == 409, results
            assert body == running_conflict(winner)
    page = await list_experiments(client, admin_headers)
    assert page["total"] == 1
    assert page["data"][0]["name"] == winner
    assert page["data"][0]["public_id"] == winners[0][2]["public_id"]
    assert page["data"][0]["stopped_on"] is None


async def test_concurrent_creates_with_same_name(client: Any, admin_headers: dict[str, str]) -> None:
    # Every loser faces both conflicts (same name, and that experiment runs): the name one is reported.
    # Several rounds make a race in the implementation much more likely to show.
    for round_ in range(3):
        name = f"same-{round_}"
        results: list[tuple[int, Any]] = []

        async def attempt(name: str = name, results: list[tuple[int, Any]] = results) -> None:
            resp = await client.post(EXPERIMENTS, json={"name": name}, headers=admin_headers)
            results.append((resp.status_code, await resp.get_json()))

        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(attempt)

        statuses = sorted(status for status, _ in results)
        assert statuses == [201, 409, 409, 409, 409, 409], results
        for status, body in results:
            if status == 409:
                assert body == EXISTS, results
        winner = next(body["public_id"] for status, body in results if status == 201)
        page = await list_experiments(client, admin_headers)
        assert page["total"] == round_ + 1
        assert page["data"][0]["public_id"] == winner
        await stop(client, admin_headers, winner)


# ---------------------------------------------------------------- stop


async def test_stop_is_idempotent_and_keeps_first_stopped_on(
    client: Any, admin_headers: dict[str, str]
) -> None:
    public_id = await create_experiment(client, admin_headers, "stop me")
    started = await get_experiment(client, admin_headers, public_id)
    await trio.sleep(0.01)
    stopped = await stop(client, admin_headers, public_id)
    assert stopped["name"] == "stop me"
    assert stopped["started_on"] == started["started_on"]
    assert stopped["stopped_on"] is not None
    assert parse_ts(stopped["stopped_on"]) > parse_ts(stopped["started_on"])
    assert parse_ts(stopped["stopped_on"]) <= datetime.now(UTC) + timedelta(seconds=2)

    await trio.sleep(0.01)
    again = await stop(client, admin_headers, public_id)
    assert again == stopped
    page = await list_experiments(client, admin_headers)
    assert page["data"][0]["stopped_on"] == stopped["stopped_on"]


async def test_concurrent_stops_agree_on_stopped_on(client: Any, admin_headers: dict[str, str]) -> None:
    public_id = await create_experiment(client, admin_headers)
    responses: list[tuple[int, Any]] = []
    seen: set[str | None] = set()

    async def attempt() -> None:
        resp = await client.put(f"{EXPERIMENTS}/{public_id}/stop", headers=admin_headers)
        responses.append((resp.status_code, await resp.get_json()))
        seen.add((await get_experiment(client, admin_headers, public_id))["stopped_on"])

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(attempt)

    assert responses == [(200, STOPPED)] * 5
    final = (await get_experiment(client, admin_headers, public_id))["stopped_on"]
    assert final is not None
    assert seen == {final}


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"stopped_on": "2000-01-01T00:00:00+00:00", "name": "hijacked", "started_on": null}',
         "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"null", "application/json"),
        (b"{}", "application/json"),
        (b"{not json", "application/json"),
    ],
)
async def test_stop_ignores_any_body(
    client: Any, admin_headers: dict[str, str], data: bytes, content_type: str
) -> None:
    public_id = await create_experiment(client, admin_headers, "with body")
    before = datetime.now(UTC)
    resp = await client.put(
        f"{EXPERIMENTS}/{public_id}/stop",
        data=data,
        headers={**admin_headers, "Content-Type": content_type},
    )
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert await resp.get_json() == STOPPED
    experiment = await get_experiment(client, admin_headers, public_id)
    assert experiment["name"] == "with body"
    assert experiment["stopped_on"] is not None
    assert parse_ts(experiment["stopped_on"]) >= before - timedelta(seconds=2)


@pytest.mark.parametrize("unknown", ["not-a-uuid", "42", str(uuid.uuid4())])
async def test_stop_unknown_is_404(client: Any, admin_headers: dict[str, str], unknown: str) -> None:
    await create_experiment(client, admin_headers)
    resp = await client.put(f"{EXPERIMENTS}/{unknown}/stop", headers=admin_headers)
    assert resp.status_code == 404
    assert await resp.get_json() == {"detail": f"Experiment '{unknown}' not found."}


# ---------------------------------------------------------------- update


async def test_rename_running_and_stopped(client: Any, admin_headers: dict[str, str]) -> None:
    public_id = await create_experiment(client, admin_headers, "draft")
    before = await get_experiment(client, admin_headers, public_id)
    resp = await client.put(f"{EXPERIMENTS}/{public_id}", json={"name": "final"}, headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == UPDATED
    renamed = await get_experiment(client, admin_headers, public_id)
    assert renamed == {**before, "name": "final"}
    assert renamed["stopped_on"] is None

    stopped = await stop(client, admin_headers, public_id)
    resp = await client.put(f"{EXPERIMENTS}/{public_id}", json={"name": "archived"}, headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == UPDATED
    assert await get_experiment(client, admin_headers, public_id) == {**stopped, "name": "archived"}


@pytest.mark.parametrize(
    "body",
    [
        {"stopped_on": "2001-01-01T00:00:00+00:00"},
        {"stopped_on": "2001-01-01T00:00:00+00:00", "started_on": "2000-01-01T00:00:00+00:00"},
        {"name": None},
        {"name": None, "stopped_on": None, "user_public_id": None},
        {},
    ],
)
async def test_put_ignores_unknown_and_null_fields(
    client: Any, admin_headers: dict[str, str], body: dict[str, Any]
) -> None:
    public_id = await create_experiment(client, admin_headers, "steady")
    before = await get_experiment(client, admin_headers, public_id)
    resp = await client.put(f"{EXPERIMENTS}/{public_id}", json=body, headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert await resp.get_json() == UPDATED
    after = await get_experiment(client, admin_headers, public_id)
    assert after == before
    assert after["stopped_on"] is None


async def test_put_stopped_on_and_name_renames_only(client: Any, admin_headers: dict[str, str]) -> None:
    public_id = await create_experiment(client, admin_headers, "a")
    before = await get_experiment(client, admin_headers, public_id)
    resp = await client.put(
        f"{EXPERIMENTS}/{public_id}",
        json={"name": "b", "stopped_on": "2001-01-01T00:00:00+00:00"},
        headers=admin_headers,
    )
    assert resp.status_code == 200
    assert await get_experiment(client, admin_headers, public_id) == {**before, "name": "b"}


@pytest.mark.parametrize("name", ["", "n" * 256, 7, False, ["x"]])
async def test_put_rejects_bad_names(client: Any, admin_headers: dict[str, str], name: Any) -> None:
    public_id = await create_experiment(client, admin_headers)
    before = await get_experiment(client, admin_headers, public_id)
    resp = await client.put(f"{EXPERIMENTS}/{public_id}", json={"name": name}, headers=admin_headers)
    assert resp.status_code == 422
    detail = (await resp.get_json())["detail"]
    assert any(item["loc"] == ["body", "name"] for item in detail), detail
    assert await get_experiment(client, admin_headers, public_id) == before


async def test_rename_to_taken_name_conflicts(client: Any, admin_headers: dict[str, str]) -> None:
    old = await create_experiment(client, admin_headers, "old run")
    await stop(client, admin_headers, old)
    current = await create_experiment(client, admin_headers, "current run")
    before = await get_experiment(client, admin_headers, current)
    resp = await client.put(f"{EXPERIMENTS}/{current}", json={"name": "old run"}, headers=admin_headers)
    assert resp.status_code == 409
    assert await resp.get_json() == EXISTS
    assert await get_experiment(client, admin_headers, current) == before
    resp = await client.put(f"{EXPERIMENTS}/{old}", json={"name": "current run"}, headers=admin_headers)
    assert resp.status_code == 409
    assert await resp.get_json() == EXISTS
    # Its own name is not a conflict.
    resp = await client.put(f"{EXPERIMENTS}/{current}", json={"name": "current run"}, headers=admin_headers)
    assert resp.status_code == 200
    assert await get_experiment(client, admin_headers, current) == before


# ---------------------------------------------------------------- unknown ids


@pytest.mark.parametrize("unknown", ["not-a-uuid", "12345", str(uuid.uuid4())])
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PUT", ""), ("DELETE", ""), ("PUT", "/stop"), ("GET", "/export/csv")],
)
async def test_unknown_id_is_404(
    client: Any, admin_headers: dict[str, str], unknown: str, method: str, suffix: str
) -> None:
    await create_experiment(client, admin_headers)
    kwargs: dict[str, Any] = {"headers": admin_headers}
    if method == "PUT" and not suffix:
        kwargs["json"] = {"name": "renamed"}
    resp = await client.open(f"{EXPERIMENTS}/{unknown}{suffix}", method=method, **kwargs)
    assert resp.status_code == 404
    assert await resp.get_json() == {"detail": f"Experiment '{unknown}' not found."}


# ---------------------------------------------------------------- listing


async def test_list_is_newest_first(client: Any, admin_headers: dict[str, str]) -> None:
    ids = []
    for name in ["first", "second", "third", "fourth"]:
        public_id = await create_experiment(client, admin_headers, name)
        ids.append(public_id)
        if name != "fourth":
            await stop(client, admin_headers, public_id)
    newest_first = ids[::-1]

    page = await list_experiments(client, admin_headers)
    assert (page["page"], page["page_size"], page["total"]) == (1, 25, 4)
    assert [e["public_id"] for e in page["data"]] == newest_first
    assert [e["name"] for e in page["data"]] == ["fourth", "third", "second", "first"]
    assert page["data"][0]["stopped_on"] is None
    assert all(e["stopped_on"] is not None for e in page["data"][1:])
    for experiment in page["data"]:
        assert set(EXPERIMENT_KEYS) <= set(experiment)

    page = await list_experiments(client, admin_headers, "?page=1&page_size=3")
    assert [e["public_id"] for e in page["data"]] == newest_first[:3]
    page = await list_experiments(client, admin_headers, "?page=2&page_size=3")
    assert [e["public_id"] for e in page["data"]] == newest_first[3:]
    assert page["total"] == 4
    page = await list_experiments(client, admin_headers, "?page=3&page_size=3")
    assert page["data"] == [] and page["total"] == 4

    # Renaming does not reorder.
    resp = await client.put(f"{EXPERIMENTS}/{ids[0]}", json={"name": "zzz"}, headers=admin_headers)
    assert resp.status_code == 200
    page = await list_experiments(client, admin_headers)
    assert [e["public_id"] for e in page["data"]] == newest_first


@pytest.mark.parametrize(
    ("query", "param"),
    [("page=0", "page"), ("page=x", "page"), ("page_size=0", "page_size"), ("page_size=1001", "page_size")],
)
async def test_list_rejects_bad_pagination(
    client: Any, admin_headers: dict[str, str], query: str, param: str
) -> None:
    resp = await client.get(f"{EXPERIMENTS}?{query}", headers=admin_headers)
    assert resp.status_code == 422
    detail = (await resp.get_json())["detail"]
    assert any(item["loc"] == ["query", param] for item in detail), detail


# ---------------------------------------------------------------- delete


async def test_delete_removes_experiment_and_its_datapoints(
    client: Any, admin_headers: dict[str, str]
) -> None:
    event = await create_event(client, admin_headers)
    outside = await post_datapoint(client, admin_headers, event, 1.0)  # no experiment yet
    old = await create_experiment(client, admin_headers, "old")
    old_point = await post_datapoint(client, admin_headers, event, 2.0)
    await stop(client, admin_headers, old)
    running = await create_experiment(client, admin_headers, "running")
    resp = await client.post(
        f"{DATAPOINTS}/batch",
        json={"datapoints": [{"value": v, "event_public_id": event} for v in range(4)]},
        headers=admin_headers,
    )
    assert resp.status_code == 201
    assert (await datapoints_of_experiment(client, admin_headers, running))["total"] == 4

    # Deleting the running experiment is allowed.
    resp = await client.delete(f"{EXPERIMENTS}/{running}", headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == DELETED
    resp = await client.get(f"{EXPERIMENTS}/{running}", headers=admin_headers)
    assert resp.status_code == 404
    assert (await datapoints_of_experiment(client, admin_headers, running))["total"] == 0
    resp = await client.get(f"{DATAPOINTS}?page_size=1000", headers=admin_headers)
    assert {d["public_id"] for d in (await resp.get_json())["data"]} == {outside, old_point}
    resp = await client.get(f"/api/v1/events/{event}", headers=admin_headers)
    assert resp.status_code == 200

    # No experiment runs any more, so a new one can start.
    await create_experiment(client, admin_headers, "next")

    resp = await client.delete(f"{EXPERIMENTS}/{old}", headers=admin_headers)
    assert resp.status_code == 200
    resp = await client.get(f"{DATAPOINTS}/{old_point}", headers=admin_headers)
    assert resp.status_code == 404
    assert await datapoint_experiment(client, admin_headers, outside) is None
    page = await list_experiments(client, admin_headers)
    assert [e["name"] for e in page["data"]] == ["next"]


# ---------------------------------------------------------------- ingestion stamping


async def test_datapoints_posted_while_running_are_stamped(
    client: Any, admin_headers: dict[str, str]
) -> None:
    event = await create_event(client, admin_headers)
    before = await post_datapoint(client, admin_headers, event, 0)
    experiment = await create_experiment(client, admin_headers)
    during = await post_datapoint(client, admin_headers, event, "1.0")
    resp = await client.post(
        f"{DATAPOINTS}/batch",
        json={"datapoints": [{"value": 2, "event_public_id": event}, {"value": 3, "event_public_id": event}]},
        headers=admin_headers,
    )
    assert resp.status_code == 201
    await stop(client, admin_headers, experiment)
    after = await post_datapoint(client, admin_headers, event, 4)

    assert await datapoint_experiment(client, admin_headers, before) is None
    assert await datapoint_experiment(client, admin_headers, during) == experiment
    assert await datapoint_experiment(client, admin_headers, after) is None
    page = await datapoints_of_experiment(client, admin_headers, experiment)
    assert page["total"] == 3
    assert sorted(d["value"] for d in page["data"]) == [1.0, 2.0, 3.0]
    assert all(d["experiment_public_id"] == experiment for d in page["data"])


async def test_timestamps_are_stamped_by_experiment_interval(
    client: Any, admin_headers: dict[str, str]
) -> None:
    event = await create_event(client, admin_headers)
    first = await create_experiment(client, admin_headers, "first")
    await trio.sleep(0.02)
    stopped = await stop(client, admin_headers, first)
    start1, stop1 = parse_ts(stopped["started_on"]), parse_ts(stopped["stopped_on"])
    assert start1 < stop1
    second = await create_experiment(client, admin_headers, "second")
    start2 = parse_ts((await get_experiment(client, admin_headers, second))["started_on"])
    assert start2 >= stop1

    mid1 = start1 + (stop1 - start1) / 2
    cases = [
        (start1 - timedelta(hours=1), None),  # before any experiment
        (start1 - timedelta(microseconds=1), None),
        (start1, first),  # interval start is inclusive
        (mid1, first),  # buffered reading sent after the experiment stopped
        (stop1 - timedelta(microseconds=1), first),
        (stop1, second if stop1 >= start2 else None),  # interval end is exclusive
        (start2, second),
        (None, second),  # arrival time: the running experiment
    ]
    for ts, expected in cases:
        point = await post_datapoint(client, admin_headers, event, 1.5, ts)
        assert await datapoint_experiment(client, admin_headers, point) == expected, (ts, expected)

    # The batch path stamps the same way.
    items: list[dict[str, Any]] = []
    for ts, _ in cases:
        item: dict[str, Any] = {"value": 2.5, "event_public_id": event}
        if ts is not None:
            item["timestamp"] = fmt_ts(ts)
        items.append(item)
    resp = await client.post(f"{DATAPOINTS}/batch", json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 201
    assert (await resp.get_json())["accepted"] == len(items)
    resp = await client.get(f"{DATAPOINTS}?page_size=1000&event_public_id={event}", headers=admin_headers)
    rows = [d for d in (await resp.get_json())["data"] if d["value"] == 2.5]
    assert len(rows) == len(cases)
    expected_counts = {
        first: sum(1 for _, e in cases if e == first),
        second: sum(1 for _, e in cases if e == second),
        None: sum(1 for _, e in cases if e is None),
    }
    actual_counts = {key: sum(1 for d in rows if d["experiment_public_id"] == key) for key in expected_counts}
    assert actual_counts == expected_counts


# ---------------------------------------------------------------- CSV export


async def test_csv_export_format(client: Any, admin_headers: dict[str, str]) -> None:
    temp = await create_event(client, admin_headers, name="Temperature Reactor", unit="°C")
    flow = await create_event(client, admin_headers, name="Volume Flow", unit="L/min")
    experiment = await create_experiment(client, admin_headers, "Run 1")
    start = parse_ts((await get_experiment(client, admin_headers, experiment))["started_on"])
    t = [start + timedelta(microseconds=10 * (i + 1)) for i in range(4)]

    # Posted out of order; two rows share a timestamp (then insertion order decides).
    p_late = await post_datapoint(client, admin_headers, flow, -0.001, t[3])
    p_tie_a = await post_datapoint(client, admin_headers, temp, 2, t[1])
    p_first = await post_datapoint(client, admin_headers, temp, 1.5, t[0])
    p_tie_b = await post_datapoint(client, admin_headers, flow, "-2.5e3", t[1])
    p_third = await post_datapoint(client, admin_headers, temp, 0.1 + 0.2, t[2])
    # Not part of the experiment.
    await post_datapoint(client, admin_headers, temp, 99, start - timedelta(seconds=5))

    resp, text = await export_csv(client, admin_headers, experiment)  # still running
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    expected_rows = [
        (t[0], "Temperature Reactor", temp, "1.5", "°C", p_first),
        (t[1], "Temperature Reactor", temp, "2.0", "°C", p_tie_a),
        (t[1], "Volume Flow", flow, "-2500.0", "L/min", p_tie_b),
        (t[2], "Temperature Reactor", temp, "0.30000000000000004", "°C", p_third),
        (t[3], "Volume Flow", flow, "-0.001", "L/min", p_late),
    ]
    expected = CSV_HEADER + "".join(
        f"{fmt_ts(ts)},{name},{eid},{value},{unit},{pid}\r\n"
        for ts, name, eid, value, unit, pid in expected_rows
    )
    assert text == expected

    # Streamed: no Content-Length on the wire.
    raw_headers, raw_body = await export_csv_raw(client, admin_headers, experiment)
    assert "Content-Length" not in raw_headers
    assert raw_headers["Content-Type"] == "text/csv; charset=utf-8"
    assert raw_body.decode("utf-8") == expected

    # Same content after the experiment stopped.
    await stop(client, admin_headers, experiment)
    _, again = await export_csv(client, admin_headers, experiment)
    assert again == expected


async def test_csv_minimal_quoting(client: Any, admin_headers: dict[str, str]) -> None:
    comma = await create_event(client, admin_headers, name="Pressure, chamber", unit="bar")
    quote_ev = await create_event(client, admin_headers, name='Valve "main"', unit='in"')
    newline = await create_event(client, admin_headers, name="two\nlines", unit="a,b")
    plain = await create_event(client, admin_headers, name="Plain name; with semicolon", unit="%")
    experiment = await create_experiment(client, admin_headers)
    start = parse_ts((await get_experiment(client, admin_headers, experiment))["started_on"])
    t = [start + timedelta(microseconds=i + 1) for i in range(4)]
    p1 = await post_datapoint(client, admin_headers, comma, 1, t[0])
    p2 = await post_datapoint(client, admin_headers, quote_ev, 2, t[1])
    p3 = await post_datapoint(client, admin_headers, newline, 3, t[2])
    p4 = await post_datapoint(client, admin_headers, plain, 4, t[3])

    _, text = await export_csv(client, admin_headers, experiment)
    assert text == (
        CSV_HEADER
        + f'{fmt_ts(t[0])},"Pressure, chamber",{comma},1.0,bar,{p1}\r\n'
        + f'{fmt_ts(t[1])},"Valve ""main""",{quote_ev},2.0,"in""",{p2}\r\n'
        + f'{fmt_ts(t[2])},"two\nlines",{newline},3.0,"a,b",{p3}\r\n'
        + f"{fmt_ts(t[3])},Plain name; with semicolon,{plain},4.0,%,{p4}\r\n"
    )


async def test_csv_of_empty_experiment_is_header_only(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers)
    await post_datapoint(client, admin_headers, event, 1)
    experiment = await create_experiment(client, admin_headers)
    resp, text = await export_csv(client, admin_headers, experiment)
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert text == CSV_HEADER
    await stop(client, admin_headers, experiment)
    _, text = await export_csv(client, admin_headers, experiment)
    assert text == CSV_HEADER


async def test_csv_excludes_other_experiments(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers, name="ev", unit="u")
    first = await create_experiment(client, admin_headers, "first")
    mine = await post_datapoint(client, admin_headers, event, 1)
    await stop(client, admin_headers, first)
    second = await create_experiment(client, admin_headers, "second")
    theirs = await post_datapoint(client, admin_headers, event, 2)

    _, text = await export_csv(client, admin_headers, first)
    lines = text.split("\r\n")
    assert lines[0] + "\r\n" == CSV_HEADER
    assert len(lines) == 3 and lines[2] == ""
    assert lines[1].endswith(f",ev,{event},1.0,u,{mine}")
    _, text = await export_csv(client, admin_headers, second)
    lines = text.split("\r\n")
    assert len(lines) == 3
    assert lines[1].endswith(f",ev,{event},2.0,u,{theirs}")


async def test_csv_content_disposition_contract_example(client: Any, admin_headers: dict[str, str]) -> None:
    experiment = await create_experiment(client, admin_headers, 'Run "A" €')
    resp, _ = await export_csv(client, admin_headers, experiment)
    short = experiment[:8]
    # §4.3's rule: display name `Run_"A"_€` -> `Run__A___` (both quotes and the € become "_"),
    # then "_<id>". The contract's example string shows one "_" fewer, as if the € were dropped;
    # issue 7 settles it for the rule.
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="experiment_Run__A____{short}.csv"; '
        f"filename*=UTF-8''experiment_Run_%22A%22_%E2%82%AC_{short}.csv"
    )


@pytest.mark.parametrize(
    ("name", "display", "ascii_display"),
    [
        ("\U0001f9ea test/run\\a", "\U0001f9ea_test-run-a", "__test-run-a"),
        ("\u00dcn\u00efc\u00f6d\u00e9.name-1_2", "\u00dcn\u00efc\u00f6d\u00e9.name-1_2", "_n_c_d_.name-1_2"),
        ("\u20acuro", "\u20acuro", "_uro"),
        ("a\x07b\x1bc/d", "abc-d", "abc-d"),
        ("50% done; ok", "50%_done;_ok", "50__done__ok"),
        ("back\\slash 'quoted'", "back-slash_'quoted'", "back-slash__quoted_"),
        ('say "hi", (ok)?', 'say_"hi",_(ok)?', "say__hi____ok__"),
        ("plain", "plain", "plain"),
    ],
)
async def test_csv_content_disposition_for_awkward_names(
    client: Any, admin_headers: dict[str, str], name: str, display: str, ascii_display: str
) -> None:
    """§4.3: each character outside ``A-Z a-z 0-9 . _ -`` becomes one ``_`` (never dropped)."""
    experiment = await create_experiment(client, admin_headers, name)
    assert (await get_experiment(client, admin_headers, experiment))["name"] == name
    resp, _ = await export_csv(client, admin_headers, experiment)
    short = experiment[:8]
    encoded = quote(f"experiment_{display}_{short}.csv", safe="")
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="experiment_{ascii_display}_{short}.csv"; filename*=UTF-8\'\'{encoded}'
    )


@pytest.mark.parametrize(
    "name",
    [
        "line\nbreak",
        "tab\there",
        "cr\rlf\r\n",
        "\u2028sep\u00a0nbsp",
        "\x7f\x00del",
        "\U0001f468\u200d\U0001f52c",
    ],
)
async def test_csv_content_disposition_is_always_a_valid_header(
    client: Any, admin_headers: dict[str, str], name: str
) -> None:
    resp = await client.post(EXPERIMENTS, json={"name": name}, headers=admin_headers)
    if "\x00" in name and resp.status_code == 422:
        return  # PostgreSQL cannot store NUL; rejecting such a name is acceptable.
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    experiment = (await resp.get_json())["public_id"]
    resp, text = await export_csv(client, admin_headers, experiment)
    assert text == CSV_HEADER
    header = resp.headers["Content-Disposition"]
    assert all(0x20 <= ord(ch) < 0x7F for ch in header), repr(header)
    short = experiment[:8]
    m = re.fullmatch(
        r'attachment; filename="(experiment_[A-Za-z0-9._-]*_' + short + r'\.csv)"; '
        r"filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]+)",
        header,
    )
    assert m is not None, header
    decoded = unquote(m.group(2), errors="strict")
    assert decoded.startswith("experiment_") and decoded.endswith(f"_{short}.csv")
    assert not any(ch in decoded for ch in "/\\\r\n\t\x00\x7f")


async def test_csv_requires_token(client: Any, admin_headers: dict[str, str]) -> None:
    experiment = await create_experiment(client, admin_headers)
    resp = await client.get(f"{EXPERIMENTS}/{experiment}/export/csv")
    assert resp.status_code == 401
    assert await resp.get_json() == {"detail": "Authentication required."}


# ---------------------------------------------------------------- paths and auth


async def test_trailing_slash_variants(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers)
    resp = await client.post(f"{EXPERIMENTS}/", json={"name": "slash"}, headers=admin_headers)
    assert resp.status_code == 201
    experiment = (await resp.get_json())["public_id"]
    await post_datapoint(client, admin_headers, event, 1)

    resp = await client.get(f"{EXPERIMENTS}/?page=1&page_size=50", headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == await list_experiments(client, admin_headers, "?page=1&page_size=50")

    resp = await client.get(f"{EXPERIMENTS}/{experiment}/", headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == await get_experiment(client, admin_headers, experiment)

    resp = await client.put(f"{EXPERIMENTS}/{experiment}/", json={"name": "slash 2"}, headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == UPDATED

    resp = await client.get(f"{EXPERIMENTS}/{experiment}/export/csv/", headers=admin_headers)
    assert resp.status_code == 200
    _, plain = await export_csv(client, admin_headers, experiment)
    assert await resp.get_data(as_text=True) == plain
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"

    resp = await client.put(f"{EXPERIMENTS}/{experiment}/stop/", headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == STOPPED
    stopped = await get_experiment(client, admin_headers, experiment)
    assert stopped["name"] == "slash 2" and stopped["stopped_on"] is not None
    resp = await client.put(f"{EXPERIMENTS}/{experiment}/stop/", headers=admin_headers)
    assert resp.status_code == 200
    assert (await get_experiment(client, admin_headers, experiment))["stopped_on"] == stopped["stopped_on"]

    resp = await client.put(f"{EXPERIMENTS}/nope/stop/", headers=admin_headers)
    assert resp.status_code == 404
    assert await resp.get_json() == {"detail": "Experiment 'nope' not found."}

    resp = await client.delete(f"{EXPERIMENTS}/{experiment}/", headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == DELETED
    assert (await list_experiments(client, admin_headers))["total"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("POST", ""),
        ("GET", "/{id}"),
        ("PUT", "/{id}"),
        ("PUT", "/{id}/stop"),
        ("DELETE", "/{id}"),
    ],
)
async def test_requires_token(client: Any, admin_headers: dict[str, str], method: str, path: str) -> None:
    experiment = await create_experiment(client, admin_headers, "guarded")
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PUT"):
        kwargs["json"] = {"name": "intruder"}
    resp = await client.open(EXPERIMENTS + path.format(id=experiment), method=method, **kwargs)
    assert resp.status_code == 401
    assert await resp.get_json() == {"detail": "Authentication required."}
    assert resp.headers["WWW-Authenticate"].lower().startswith("bearer")
    current = await get_experiment(client, admin_headers, experiment)
    assert current["name"] == "guarded" and current["stopped_on"] is None


async def test_any_user_may_manage_anothers_experiment(
    client: Any, admin_headers: dict[str, str], admin_public_id: str
) -> None:
    other = await create_user(client, admin_headers)
    experiment = await create_experiment(client, admin_headers, "admin's")
    resp = await client.put(f"{EXPERIMENTS}/{experiment}", json={"name": "renamed"}, headers=other["headers"])
    assert resp.status_code == 200
    await stop(client, other["headers"], experiment)
    current = await get_experiment(client, other["headers"], experiment)
    assert current["user_public_id"] == admin_public_id
    _, text = await export_csv(client, other["headers"], experiment)
    assert text == CSV_HEADER
    resp = await client.delete(f"{EXPERIMENTS}/{experiment}", headers=other["headers"])
    assert resp.status_code == 200
