"""Datapoints (contract §4.4, with the conventions of §1 and §2 that apply to them).

Every test runs against SQLite and PostgreSQL (the parametrized ``database_url`` fixture).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    bearer,
    create_event,
    create_experiment,
    create_user,
    login,
    make_settings,
    open_app,
)

H = dict[str, str]
DP = "/api/v1/datapoints"
BATCH_PATHS = [f"{DP}/batch", f"{DP}/bulk", f"{DP}/batch/", f"{DP}/bulk/"]
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")
MALFORMED = {"detail": [{"loc": ["body"], "msg": "Malformed JSON body.", "type": "json_invalid"}]}
RESPONSE_KEYS = {"public_id", "value", "timestamp", "event_public_id", "experiment_public_id"}
JSON_CT = {"Content-Type": "application/json"}
UNKNOWN = "3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23"  # a well-formed UUID4 that is never issued
UNKNOWN2 = "9b1e4f2a-0c3d-4e5f-8a7b-6c5d4e3f2a1b"
PLUS2 = timezone(timedelta(hours=2))


# ---------------------------------------------------------------- helpers


def is_public_id(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return str(parsed) == value and parsed.version == 4


def ts(offset_seconds: float = 0.0) -> str:
    """A fixed, deterministic instant (plus an offset) in the input format."""
    base = datetime(2026, 2, 10, 20, 0, 0, tzinfo=UTC)
    return (base + timedelta(seconds=offset_seconds)).isoformat(timespec="microseconds")


def parse_ts(text: str) -> datetime:
    assert TS_RE.match(text), text
    return datetime.fromisoformat(text)


async def body(resp: Any) -> Any:
    return await resp.get_json()


async def post_dp(
    client: Any, headers: dict[str, str], event_id: str, value: Any = 1.0, timestamp: str | None = None
) -> str:
    item: dict[str, Any] = {"value": value, "event_public_id": event_id}
    if timestamp is not None:
        item["timestamp"] = timestamp
    resp = await client.post(DP, json=item, headers=headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    public_id: str = (await body(resp))["public_id"]
    return public_id


async def get_dp(client: Any, headers: dict[str, str], public_id: str) -> dict[str, Any]:
    resp = await client.get(f"{DP}/{public_id}", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    data: dict[str, Any] = await body(resp)
    return data


async def list_dp(client: Any, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    resp = await client.get(f"{DP}?{query}" if query else DP, headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    data: dict[str, Any] = await body(resp)
    return data


async def total(client: Any, headers: dict[str, str]) -> int:
    count: int = (await list_dp(client, headers))["total"]
    return count


def assert_422(data: Any) -> list[dict[str, Any]]:
    assert isinstance(data, dict), data
    detail = data["detail"]
    assert isinstance(detail, list) and detail, data
    for item in detail:
        assert isinstance(item["loc"], list), item
        assert isinstance(item["msg"], str), item
        assert isinstance(item["type"], str), item
    return detail


def locs_mention(detail: list[dict[str, Any]], field: str) -> bool:
    return any(field in item["loc"] for item in detail)


async def post_raw(client: Any, path: str, raw: bytes, headers: dict[str, str]) -> Any:
    return await client.post(path, data=raw, headers={**headers, **JSON_CT})


@pytest.fixture
async def event_id(client: Any, admin_headers: H) -> str:
    return await create_event(client, admin_headers)


@pytest.fixture
async def small_client(database_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    """A second app on the same kind of database with MAX_BATCH=5."""
    settings = make_settings(database_url, tmp_path, MAX_BATCH="5")
    async with open_app(settings) as app:
        yield app.test_client()


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", DP),
        ("POST", DP),
        ("POST", f"{DP}/batch"),
        ("POST", f"{DP}/bulk"),
        ("GET", f"{DP}/latest"),
        ("GET", f"{DP}/{UNKNOWN}"),
        ("DELETE", f"{DP}/{UNKNOWN}"),
    ],
)
async def test_requires_token(client: Any, method: str, path: str) -> None:
    kwargs: dict[str, Any] = {}
    if method == "POST":
        kwargs["json"] = {"datapoints": []} if path.endswith(("batch", "bulk")) else {"value": 1}
    resp = await client.open(path, method=method, **kwargs)
    assert resp.status_code == 401
    assert (await body(resp)) == {"detail": "Authentication required."}
    assert resp.headers.get("WWW-Authenticate", "").lower().startswith("bearer")


# ---------------------------------------------------------------- single create


async def test_create_single_envelope_and_response(
    client: Any, admin_headers: H, event_id: str
) -> None:
    before = datetime.now(UTC)
    resp = await client.post(DP, json={"value": 1.5, "event_public_id": event_id}, headers=admin_headers)
    after = datetime.now(UTC)
    assert resp.status_code == 201
    data = await body(resp)
    assert data["status"] == "success"
    assert data["message"] == "Datapoint successfully created."
    assert is_public_id(data["public_id"])

    got = await get_dp(client, admin_headers, data["public_id"])
    assert set(got) >= RESPONSE_KEYS
    assert got["public_id"] == data["public_id"]
    assert got["value"] == 1.5 and isinstance(got["value"], float | int)
    assert got["event_public_id"] == event_id
    assert got["experiment_public_id"] is None
    # Without a timestamp, the server time at ingestion is used.
    stamp = parse_ts(got["timestamp"])
    assert before - timedelta(seconds=5) <= stamp <= after + timedelta(seconds=5)
    assert "id" not in got and "event_id" not in got


async def test_create_is_visible_to_the_next_request(
    client: Any, admin_headers: H, event_id: str
) -> None:
    public_id = await post_dp(client, admin_headers, event_id, 7)
    page = await list_dp(client, admin_headers)
    assert page["total"] == 1
    assert [row["public_id"] for row in page["data"]] == [public_id]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0.0),
        (42, 42.0),
        (-3.25, -3.25),
        ("1.0", 1.0),
        ("0.0", 0.0),
        ("-2.5e3", -2500.0),
        ("17", 17.0),
        ("1E2", 100.0),
        (" +.5e3 ", 500.0),
        # Whitespace that float() itself refuses: was a 500 (ValueError), found by the schema fuzzer.
        ("\x1c1\x1f", 1.0),
    ],
)
async def test_value_number_or_numeric_string(
    client: Any, admin_headers: H, event_id: str, raw: Any, expected: float
) -> None:
    public_id = await post_dp(client, admin_headers, event_id, raw)
    got = await get_dp(client, admin_headers, public_id)
    # Always returned as a JSON number, never as the string that was sent.
    assert isinstance(got["value"], int | float) and not isinstance(got["value"], bool)
    assert got["value"] == expected


@pytest.mark.parametrize(
    "raw",
    [
        "NaN", "nan", "Infinity", "-Infinity", "inf", "-inf", "1e400", "-1e400",
        True, False, None, "abc", "", " ", "1,5", "0x10", "1.0.0", [1.0], {"v": 1.0},
        "\u0663", "\ufeff1",  # ASCII digits and the documented pattern's whitespace only
    ],
)
async def test_value_rejected(
    client: Any, admin_headers: H, event_id: str, raw: Any
) -> None:
    resp = await client.post(DP, json={"value": raw, "event_public_id": event_id}, headers=admin_headers)
    assert resp.status_code == 422, (raw, await resp.get_data(as_text=True))
    detail = assert_422(await body(resp))
    assert locs_mention(detail, "value"), detail
    assert await total(client, admin_headers) == 0


async def test_value_missing_rejected(client: Any, admin_headers: H, event_id: str) -> None:
    resp = await client.post(DP, json={"event_public_id": event_id}, headers=admin_headers)
    assert resp.status_code == 422
    assert locs_mention(assert_422(await body(resp)), "value")


@pytest.mark.parametrize("literal", [b"1e400", b"-1e400", b"1" + b"0" * 400])
async def test_value_overflowing_json_number_rejected(
    client: Any, admin_headers: H, event_id: str, literal: bytes
) -> None:
    raw = b'{"value": ' + literal + b', "event_public_id": "' + event_id.encode() + b'"}'
    resp = await post_raw(client, DP, raw, admin_headers)
    assert resp.status_code == 422
    assert_422(await body(resp))
    assert await total(client, admin_headers) == 0


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("path", [DP, f"{DP}/batch"])
async def test_bare_non_finite_token_is_malformed_json(
    client: Any, admin_headers: H, event_id: str, token: bytes, path: str
) -> None:
    item = b'{"value": ' + token + b', "event_public_id": "' + event_id.encode() + b'"}'
    raw = item if path == DP else b'{"datapoints": [' + item + b"]}"
    resp = await post_raw(client, path, raw, admin_headers)
    assert resp.status_code in (400, 422)
    assert (await body(resp)) == MALFORMED
    assert await total(client, admin_headers) == 0


@pytest.mark.parametrize("raw", [b'{"value": 1, ', b"{'value': 1}", b"not json", b'{"value": 1}}'])
async def test_malformed_json_body(client: Any, admin_headers: H, raw: bytes) -> None:
    resp = await post_raw(client, DP, raw, admin_headers)
    assert resp.status_code in (400, 422)
    assert (await body(resp)) == MALFORMED


async def test_body_without_content_type_is_parsed(
    client: Any, admin_headers: H, event_id: str
) -> None:
    raw = json.dumps({"value": 2, "event_public_id": event_id}).encode()
    resp = await client.post(DP, data=raw, headers=admin_headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)


async def test_other_content_type_is_415(client: Any, admin_headers: H, event_id: str) -> None:
    raw = json.dumps({"value": 2, "event_public_id": event_id}).encode()
    resp = await client.post(DP, data=raw, headers={**admin_headers, "Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert (await body(resp)) == {"detail": "Content-Type must be application/json."}
    assert await total(client, admin_headers) == 0


@pytest.mark.parametrize("unknown", [UNKNOWN, "not-a-uuid", "Temperature Reactor"])
async def test_unknown_event_is_404(client: Any, admin_headers: H, unknown: str) -> None:
    resp = await client.post(DP, json={"value": 1, "event_public_id": unknown}, headers=admin_headers)
    assert resp.status_code == 404
    assert (await body(resp)) == {"detail": "Event not found."}
    assert await total(client, admin_headers) == 0


@pytest.mark.parametrize("bad", [None, 123, ["x"]])
async def test_event_public_id_missing_or_not_string_is_422(
    client: Any, admin_headers: H, bad: Any
) -> None:
    payload: dict[str, Any] = {"value": 1}
    if bad is not None:
        payload["event_public_id"] = bad
    resp = await client.post(DP, json=payload, headers=admin_headers)
    assert resp.status_code == 422
    assert locs_mention(assert_422(await body(resp)), "event_public_id")


@pytest.mark.parametrize("payload", [[], [{"value": 1}], "x", 5])
async def test_single_body_not_an_object_is_422(
    client: Any, admin_headers: H, payload: Any
) -> None:
    resp = await client.post(DP, json=payload, headers=admin_headers)
    assert resp.status_code == 422
    assert_422(await body(resp))


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-02-10T20:44:08.123456Z", "2026-02-10T20:44:08.123456+00:00"),
        ("2026-02-10T20:44:08Z", "2026-02-10T20:44:08.000000+00:00"),
        ("2026-02-10T22:44:08.5+02:00", "2026-02-10T20:44:08.500000+00:00"),
        ("2026-02-10T20:44:08+00:00", "2026-02-10T20:44:08.000000+00:00"),
        ("2026-02-10T20:44:08.000001-05:30", "2026-02-11T02:14:08.000001+00:00"),
        ("2026-01-01T01:00:00+02:00", "2025-12-31T23:00:00.000000+00:00"),
    ],
)
async def test_timestamp_converted_to_utc(
    client: Any, admin_headers: H, event_id: str, given: str, expected: str
) -> None:
    public_id = await post_dp(client, admin_headers, event_id, 1, timestamp=given)
    assert (await get_dp(client, admin_headers, public_id))["timestamp"] == expected
    page = await list_dp(client, admin_headers)
    assert page["data"][0]["timestamp"] == expected


@pytest.mark.parametrize(
    "bad",
    [
        "2026-02-10T20:44:08",  # naive
        "2026-02-10T20:44:08.123456",  # naive
        "2026-02-10",  # date only, no offset
        1770756248,  # epoch number
        1770756248.5,
        "1770756248",
        "garbage",
        "",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-02-10T25:00:00Z",
        True,
        ["2026-02-10T20:44:08Z"],
    ],
)
async def test_timestamp_rejected(
    client: Any, admin_headers: H, event_id: str, bad: Any
) -> None:
    resp = await client.post(
        DP, json={"value": 1, "event_public_id": event_id, "timestamp": bad}, headers=admin_headers
    )
    assert resp.status_code == 422, (bad, await resp.get_data(as_text=True))
    assert locs_mention(assert_422(await body(resp)), "timestamp")
    assert await total(client, admin_headers) == 0


async def test_buffered_reading_keeps_measurement_time(
    client: Any, admin_headers: H, event_id: str
) -> None:
    old = "2020-05-01T12:00:00.250000+00:00"
    public_id = await post_dp(client, admin_headers, event_id, 3, timestamp=old)
    assert (await get_dp(client, admin_headers, public_id))["timestamp"] == old


# ---------------------------------------------------------------- batch


@pytest.mark.parametrize("path", BATCH_PATHS)
async def test_batch_empty(client: Any, admin_headers: H, path: str) -> None:
    resp = await client.post(path, json={"datapoints": []}, headers=admin_headers)
    assert resp.status_code == 201
    data = await body(resp)
    assert data["status"] == "success"
    assert data["message"] == "0 datapoints successfully created."
    assert data["accepted"] == 0
    assert data.get("rejected", []) == []
    assert await total(client, admin_headers) == 0


@pytest.mark.parametrize("path", BATCH_PATHS)
async def test_batch_all_good(client: Any, admin_headers: H, path: str) -> None:
    e1 = await create_event(client, admin_headers)
    e2 = await create_event(client, admin_headers)
    items = [
        {"value": "1.0", "event_public_id": e1},
        {"value": 2.5, "event_public_id": e2},
        {"value": -3, "event_public_id": e1, "timestamp": "2026-02-10T22:00:00+02:00"},
    ]
    resp = await client.post(path, json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    data = await body(resp)
    assert data["status"] == "success"
    assert data["message"] == "3 datapoints successfully created."
    assert data["accepted"] == 3
    assert data["rejected"] == []
    page = await list_dp(client, admin_headers, "page_size=10")
    assert page["total"] == 3
    stored = sorted((row["event_public_id"], row["value"]) for row in page["data"])
    assert stored == sorted([(e1, 1.0), (e2, 2.5), (e1, -3.0)])
    assert all(isinstance(row["value"], int | float) for row in page["data"])
    assert "2026-02-10T20:00:00.000000+00:00" in {row["timestamp"] for row in page["data"]}


async def test_batch_plural_wording_for_one(client: Any, admin_headers: H, event_id: str) -> None:
    resp = await client.post(
        f"{DP}/batch", json={"datapoints": [{"value": 1, "event_public_id": event_id}]}, headers=admin_headers
    )
    assert resp.status_code == 201
    data = await body(resp)
    assert data["message"] == "1 datapoints successfully created."
    assert data["accepted"] == 1
    assert data["rejected"] == []


@pytest.mark.parametrize("path", [f"{DP}/batch", f"{DP}/bulk"])
async def test_batch_mixed_keeps_good_items_and_names_bad_ones(
    client: Any, admin_headers: H, path: str
) -> None:
    good = await create_event(client, admin_headers)
    missing = str(uuid.uuid4())
    items: list[Any] = [
        {"value": 1, "event_public_id": good},  # 0 ok
        {"value": 2, "event_public_id": missing},  # 1 unknown event
        {"value": "3.5", "event_public_id": good},  # 2 ok
        {"value": "abc", "event_public_id": good},  # 3 bad value
        {"value": 4, "event_public_id": good, "timestamp": "2026-02-10T20:44:08"},  # 4 naive ts
        {"value": 5},  # 5 event missing
        {"value": "NaN", "event_public_id": good},  # 6 non-finite string
        {"value": True, "event_public_id": good},  # 7 boolean
        {"value": None, "event_public_id": good},  # 8 null
        {"value": 6, "event_public_id": good, "timestamp": "2026-02-10T20:44:08.5+02:00"},  # 9 ok
    ]
    resp = await client.post(path, json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    data = await body(resp)
    assert data["status"] == "success"
    assert data["accepted"] == 3
    assert data["message"] == "3 datapoints successfully created."
    rejected = data["rejected"]
    assert sorted(r["index"] for r in rejected) == [1, 3, 4, 5, 6, 7, 8]
    for r in rejected:
        assert set(r) >= {"index", "event_public_id", "detail"}
        assert isinstance(r["detail"], str) and r["detail"]
    by_index = {r["index"]: r for r in rejected}
    assert by_index[1]["event_public_id"] == missing
    assert by_index[1]["detail"] == "Event not found."
    assert by_index[3]["event_public_id"] == good
    assert by_index[5]["event_public_id"] is None

    page = await list_dp(client, admin_headers)
    assert page["total"] == 3
    assert sorted(row["value"] for row in page["data"]) == [1.0, 3.5, 6.0]
    assert {row["event_public_id"] for row in page["data"]} == {good}
    assert "2026-02-10T18:44:08.500000+00:00" in {row["timestamp"] for row in page["data"]}


async def test_batch_item_not_an_object_is_rejected_by_index(
    client: Any, admin_headers: H, event_id: str
) -> None:
    items: list[Any] = [{"value": 1, "event_public_id": event_id}, 5, "x", None]
    resp = await client.post(f"{DP}/batch", json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    data = await body(resp)
    assert data["accepted"] == 1
    assert sorted(r["index"] for r in data["rejected"]) == [1, 2, 3]
    assert all(r["event_public_id"] is None for r in data["rejected"])
    assert await total(client, admin_headers) == 1


async def test_batch_overflowing_number_rejects_only_that_item(
    client: Any, admin_headers: H, event_id: str
) -> None:
    eid = event_id.encode()
    raw = (
        b'{"datapoints": [{"value": 1e400, "event_public_id": "' + eid + b'"}, '
        b'{"value": 2, "event_public_id": "' + eid + b'"}]}'
    )
    resp = await post_raw(client, f"{DP}/batch", raw, admin_headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    data = await body(resp)
    assert data["accepted"] == 1
    assert [r["index"] for r in data["rejected"]] == [0]
    assert data["rejected"][0]["event_public_id"] == event_id
    page = await list_dp(client, admin_headers)
    assert [row["value"] for row in page["data"]] == [2.0]


async def test_batch_deleted_event_rejected_by_name_others_flow(
    client: Any, admin_headers: H
) -> None:
    """§7.1: a controller caches events; one deleted channel must not black out the others."""
    kept = await create_event(client, admin_headers)
    gone = await create_event(client, admin_headers)
    resp = await client.delete(f"/api/v1/events/{gone}", headers=admin_headers)
    assert resp.status_code == 200
    items = [{"value": "20.5", "event_public_id": gone}, {"value": "21.5", "event_public_id": kept}]
    resp = await client.post(f"{DP}/batch", json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 201
    data = await body(resp)
    assert data["accepted"] == 1
    assert data["rejected"] == [
        {**data["rejected"][0], "index": 0, "event_public_id": gone, "detail": "Event not found."}
    ]
    page = await list_dp(client, admin_headers)
    assert [(row["event_public_id"], row["value"]) for row in page["data"]] == [(kept, 21.5)]


@pytest.mark.parametrize("n", [1, 1500])  # small batches and large ones take different paths
async def test_batch_to_an_event_deleted_after_it_was_written_to(
    client: Any, admin_headers: H, n: int
) -> None:
    """The write path remembers event ids; a deleted event's id fails the insert's foreign key,
    and the batch is resolved again: that event's readings rejected, the others stored."""
    kept = await create_event(client, admin_headers)
    gone = await create_event(client, admin_headers)
    items = [{"value": 1, "event_public_id": gone}, {"value": 2, "event_public_id": kept}]
    resp = await client.post(f"{DP}/batch", json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 201 and (await body(resp))["accepted"] == 2
    resp = await client.delete(f"/api/v1/events/{gone}", headers=admin_headers)
    assert resp.status_code == 200
    items = [{"value": 3, "event_public_id": gone}] + [
        {"value": 4, "event_public_id": kept} for _ in range(n)]
    resp = await client.post(f"{DP}/batch", json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    data = await body(resp)
    assert data["accepted"] == n
    assert [(r["index"], r["event_public_id"]) for r in data["rejected"]] == [(0, gone)]
    page = await list_dp(client, admin_headers, f"event_public_id={kept}&limit=1")
    assert page["total"] == n + 1


@pytest.mark.parametrize("path", [f"{DP}/batch", f"{DP}/bulk"])
async def test_batch_all_bad_is_422_per_item(client: Any, admin_headers: H, path: str) -> None:
    good = await create_event(client, admin_headers)
    missing = str(uuid.uuid4())
    items = [
        {"value": 1, "event_public_id": missing},
        {"value": "abc", "event_public_id": good},
        {"value": 2, "event_public_id": good, "timestamp": "yesterday"},
    ]
    resp = await client.post(path, json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 422, await resp.get_data(as_text=True)
    detail = sorted(assert_422(await body(resp)), key=lambda item: item["loc"][2])
    assert len(detail) == 3
    assert [item["loc"][:3] for item in detail] == [["body", "datapoints", i] for i in range(3)]
    unknown = detail[0]
    assert unknown["loc"] == ["body", "datapoints", 0, "event_public_id"]
    assert unknown["msg"] == "Event not found."
    assert detail[1]["loc"] == ["body", "datapoints", 1, "value"]
    assert detail[2]["loc"] == ["body", "datapoints", 2, "timestamp"]
    assert await total(client, admin_headers) == 0


async def test_batch_over_max_batch(small_client: Any) -> None:
    headers = bearer(await login(small_client, ADMIN_EMAIL, ADMIN_PASSWORD))
    event_id = await create_event(small_client, headers)
    items = [{"value": i, "event_public_id": event_id} for i in range(6)]
    resp = await small_client.post(f"{DP}/batch", json={"datapoints": items}, headers=headers)
    assert resp.status_code in (413, 422)
    data = await body(resp)
    text = json.dumps(data["detail"])
    assert re.search(r"(?<![\d.])5(?![\d.])", text), data  # the limit is named
    if resp.status_code == 413:
        assert data == {"detail": "Batch too large: 6 datapoints (limit 5)."}
    assert (await total(small_client, headers)) == 0

    # Exactly MAX_BATCH items is fine, on both aliases.
    for path in (f"{DP}/batch", f"{DP}/bulk"):
        resp = await small_client.post(path, json={"datapoints": items[:5]}, headers=headers)
        assert resp.status_code == 201, await resp.get_data(as_text=True)
        assert (await body(resp))["accepted"] == 5
    assert (await total(small_client, headers)) == 10


async def test_batch_over_default_limit(client: Any, admin_headers: H, event_id: str) -> None:
    items = [{"value": 1, "event_public_id": event_id}] * 10001
    resp = await client.post(f"{DP}/batch", json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code in (413, 422)
    data = await body(resp)
    assert "10000" in json.dumps(data["detail"])
    if resp.status_code == 413:
        assert data == {"detail": "Batch too large: 10001 datapoints (limit 10000)."}
    assert await total(client, admin_headers) == 0


@pytest.mark.parametrize(
    "payload",
    [
        [],
        [{"value": 1, "event_public_id": "x"}],
        {},
        {"items": []},
        {"datapoints": None},
        {"datapoints": {}},
        {"datapoints": "abc"},
        {"datapoints": 3},
        "datapoints",
        7,
    ],
)
async def test_batch_body_shape_is_422(client: Any, admin_headers: H, payload: Any) -> None:
    resp = await client.post(f"{DP}/batch", json=payload, headers=admin_headers)
    assert resp.status_code == 422, await resp.get_data(as_text=True)
    assert_422(await body(resp))


# ---------------------------------------------------------------- list


async def test_list_pagination_shape_and_total(client: Any, admin_headers: H, event_id: str) -> None:
    items = [{"value": i, "event_public_id": event_id, "timestamp": ts(i)} for i in range(30)]
    resp = await client.post(f"{DP}/batch", json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 201

    page = await list_dp(client, admin_headers)
    assert (page["page"], page["page_size"], page["total"]) == (1, 25, 30)
    assert len(page["data"]) == 25
    assert [row["value"] for row in page["data"]] == [float(v) for v in range(29, 4, -1)]
    for row in page["data"]:
        assert set(row) >= RESPONSE_KEYS
        assert TS_RE.match(row["timestamp"])

    page2 = await list_dp(client, admin_headers, "page=2&page_size=25")
    assert (page2["page"], page2["total"]) == (2, 30)
    assert [row["value"] for row in page2["data"]] == [4.0, 3.0, 2.0, 1.0, 0.0]

    beyond = await list_dp(client, admin_headers, "page=9&page_size=10")
    assert beyond["total"] == 30 and beyond["data"] == []

    slash = await client.get(f"{DP}/?page=2&page_size=25", headers=admin_headers)
    assert slash.status_code == 200
    assert (await body(slash)) == page2


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("page=0", ["query", "page"]),
        ("page=-1", ["query", "page"]),
        ("page=abc", ["query", "page"]),
        ("page_size=0", ["query", "page_size"]),
        ("page_size=1001", ["query", "page_size"]),
        ("page_size=1.5", ["query", "page_size"]),
        # beyond 64 bits: was a 500 (orjson cannot encode the echoed page), found by the fuzzer
        (f"page={10**30}", ["query", "page"]),
    ],
)
async def test_list_bad_pagination(client: Any, admin_headers: H, query: str, loc: list[str]) -> None:
    resp = await client.get(f"{DP}?{query}", headers=admin_headers)
    assert resp.status_code == 422
    assert [item["loc"] for item in assert_422(await body(resp))] == [loc]


async def test_list_order_timestamp_desc_then_insertion_desc(
    client: Any, admin_headers: H, event_id: str
) -> None:
    a = await post_dp(client, admin_headers, event_id, 1, timestamp=ts(10))
    b = await post_dp(client, admin_headers, event_id, 2, timestamp=ts(30))
    c = await post_dp(client, admin_headers, event_id, 3, timestamp=ts(20))
    d = await post_dp(client, admin_headers, event_id, 4, timestamp=ts(20))  # ties with c
    e = await post_dp(client, admin_headers, event_id, 5, timestamp=ts(20))  # ties with c and d
    f = await post_dp(client, admin_headers, event_id, 6, timestamp=ts(0))
    page = await list_dp(client, admin_headers)
    assert [row["public_id"] for row in page["data"]] == [b, e, d, c, a, f]
    # Same order across page boundaries.
    ids = []
    for n in (1, 2, 3):
        chunk = await list_dp(client, admin_headers, f"page={n}&page_size=2")
        ids += [row["public_id"] for row in chunk["data"]]
    assert ids == [b, e, d, c, a, f]


async def test_list_filter_by_event_and_alias(client: Any, admin_headers: H) -> None:
    e1 = await create_event(client, admin_headers)
    e2 = await create_event(client, admin_headers)
    for i in range(4):
        await post_dp(client, admin_headers, e1, i, timestamp=ts(i))
    await post_dp(client, admin_headers, e2, 100, timestamp=ts(50))

    canonical = await list_dp(client, admin_headers, f"event_public_id={e1}&page_size=2")
    assert canonical["total"] == 4
    assert [row["value"] for row in canonical["data"]] == [3.0, 2.0]
    assert all(row["event_public_id"] == e1 for row in canonical["data"])
    alias = await list_dp(client, admin_headers, f"event_id={e1}&page_size=2")
    assert alias == canonical
    both_same = await list_dp(client, admin_headers, f"event_id={e1}&event_public_id={e1}&page_size=2")
    assert both_same == canonical

    other = await list_dp(client, admin_headers, f"event_public_id={e2}")
    assert other["total"] == 1 and other["data"][0]["value"] == 100.0

    unfiltered = await list_dp(client, admin_headers)
    assert unfiltered["total"] == 5


async def test_list_alias_conflict_is_422(client: Any, admin_headers: H) -> None:
    e1 = await create_event(client, admin_headers)
    e2 = await create_event(client, admin_headers)
    x1, x2 = UNKNOWN, UNKNOWN2
    for query in (
        f"event_public_id={e1}&event_id={e2}",
        f"experiment_public_id={x1}&experiment_id={x2}",
    ):
        resp = await client.get(f"{DP}?{query}", headers=admin_headers)
        assert resp.status_code == 422, query
        detail = assert_422(await body(resp))
        assert all(item["loc"][0] == "query" for item in detail), detail


@pytest.mark.parametrize(
    "query",
    [
        f"event_public_id={UNKNOWN}",
        f"event_id={UNKNOWN}",
        "event_public_id=not-a-uuid",
        f"experiment_public_id={UNKNOWN}",
        "experiment_id=nope",
    ],
)
async def test_list_unknown_ids_give_empty_page(
    client: Any, admin_headers: H, event_id: str, query: str
) -> None:
    await post_dp(client, admin_headers, event_id, 1)
    resp = await client.get(f"{DP}?{query}", headers=admin_headers)
    assert resp.status_code == 200
    page = await body(resp)
    assert page["total"] == 0 and page["data"] == []


async def test_list_filter_by_experiment_and_alias(client: Any, admin_headers: H, event_id: str) -> None:
    outside = await post_dp(client, admin_headers, event_id, 1)
    exp = await create_experiment(client, admin_headers)
    inside1 = await post_dp(client, admin_headers, event_id, 2)
    inside2 = await post_dp(client, admin_headers, event_id, 3)
    for query in (f"experiment_public_id={exp}", f"experiment_id={exp}"):
        page = await list_dp(client, admin_headers, query)
        assert page["total"] == 2
        assert {row["public_id"] for row in page["data"]} == {inside1, inside2}
        assert all(row["experiment_public_id"] == exp for row in page["data"])
    page = await list_dp(client, admin_headers, f"experiment_id={exp}&event_id={event_id}")
    assert page["total"] == 2
    assert outside not in {row["public_id"] for row in page["data"]}


async def test_list_since_inclusive_until_exclusive(
    client: Any, admin_headers: H, event_id: str
) -> None:
    for i in range(5):
        await post_dp(client, admin_headers, event_id, i, timestamp=ts(i * 60))

    async def values(query: str) -> list[float]:
        page = await list_dp(client, admin_headers, query)
        assert page["total"] == len(page["data"])
        return [row["value"] for row in page["data"]]

    t1 = ts(60).replace("+00:00", "Z")
    t3 = ts(180).replace("+00:00", "Z")
    assert await values(f"since={t1}") == [4.0, 3.0, 2.0, 1.0]
    assert await values(f"until={t1}") == [0.0]
    assert await values(f"since={t1}&until={t3}") == [2.0, 1.0]
    assert await values(f"since={t1}&until={t1}") == []
    # The same instant with a +02:00 offset, correctly percent-encoded.
    plus2 = datetime.fromisoformat(ts(60)).astimezone(PLUS2)
    assert plus2.isoformat().endswith("+02:00")
    assert await values(f"since={plus2.isoformat().replace('+', '%2B')}") == [4.0, 3.0, 2.0, 1.0]
    # An unencoded "+" arrives as a space: still understood.
    assert await values(f"since={ts(60)}") == [4.0, 3.0, 2.0, 1.0]
    assert await values(f"until={ts(180)}") == [2.0, 1.0, 0.0]
    assert await values(f"since={plus2.isoformat()}&until={ts(180)}") == [2.0, 1.0]
    # Combined with an event filter.
    assert await values(f"event_id={event_id}&since={t3}") == [4.0, 3.0]


@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("bad", ["garbage", "2026-02-10T20:00:00", "1770756248", "2026-02-31T00:00:00Z"])
async def test_list_bad_since_until_is_422(
    client: Any, admin_headers: H, param: str, bad: str
) -> None:
    resp = await client.get(DP, query_string={param: bad}, headers=admin_headers)
    assert resp.status_code == 422
    detail = assert_422(await body(resp))
    assert any(item["loc"] == ["query", param] for item in detail), detail


# ---------------------------------------------------------------- latest


async def test_latest_empty(client: Any, admin_headers: H) -> None:
    await create_event(client, admin_headers)  # an event without data does not appear
    for path in (f"{DP}/latest", f"{DP}/latest/"):
        resp = await client.get(path, headers=admin_headers)
        assert resp.status_code == 200
        assert (await body(resp)) == []


async def test_latest_one_row_per_event_in_event_order(client: Any, admin_headers: H) -> None:
    e1 = await create_event(client, admin_headers)
    e2 = await create_event(client, admin_headers)
    e3 = await create_event(client, admin_headers)
    await create_event(client, admin_headers)  # no data
    # Data arrives for the later events first, and the newest reading is not the last one posted.
    await post_dp(client, admin_headers, e3, 30, timestamp=ts(5))
    newest3 = await post_dp(client, admin_headers, e3, 31, timestamp=ts(50))
    await post_dp(client, admin_headers, e3, 32, timestamp=ts(10))
    newest1 = await post_dp(client, admin_headers, e1, 11, timestamp=ts(40))
    await post_dp(client, admin_headers, e1, 10, timestamp=ts(1))
    await post_dp(client, admin_headers, e2, 20, timestamp=ts(2))
    newest2 = await post_dp(client, admin_headers, e2, 21, timestamp=ts(3))

    resp = await client.get(f"{DP}/latest", headers=admin_headers)
    assert resp.status_code == 200
    rows = await body(resp)
    assert isinstance(rows, list)
    assert [row["event_public_id"] for row in rows] == [e1, e2, e3]
    assert [row["public_id"] for row in rows] == [newest1, newest2, newest3]
    assert [row["value"] for row in rows] == [11.0, 21.0, 31.0]
    for row in rows:
        assert set(row) >= RESPONSE_KEYS
        assert isinstance(row["timestamp"], str) and TS_RE.match(row["timestamp"])
        assert isinstance(row["value"], int | float)
    assert rows[0]["timestamp"] == ts(40)


async def test_latest_ties_go_to_the_row_stored_last(client: Any, admin_headers: H) -> None:
    e1 = await create_event(client, admin_headers)
    e2 = await create_event(client, admin_headers)
    await post_dp(client, admin_headers, e1, 1, timestamp=ts(100))
    await post_dp(client, admin_headers, e1, 2, timestamp=ts(100))
    last = await post_dp(client, admin_headers, e1, 3, timestamp=ts(100))
    await post_dp(client, admin_headers, e1, 4, timestamp=ts(99))  # stored later but older
    # A tie inside one batch too: items are stored in list order.
    await post_dp(client, admin_headers, e2, 9, timestamp=ts(100))
    resp = await client.post(
        f"{DP}/batch",
        json={"datapoints": [{"value": 7, "event_public_id": e2, "timestamp": ts(100)}]},
        headers=admin_headers,
    )
    assert resp.status_code == 201

    rows = await body(await client.get(f"{DP}/latest", headers=admin_headers))
    assert len(rows) == 2
    assert rows[0]["public_id"] == last and rows[0]["value"] == 3.0
    assert rows[1]["event_public_id"] == e2 and rows[1]["value"] == 7.0


async def test_latest_follows_new_writes(client: Any, admin_headers: H, event_id: str) -> None:
    """§7.2: the frontend posts a toggle and immediately reads /latest."""
    await post_dp(client, admin_headers, event_id, 0)
    await post_dp(client, admin_headers, event_id, "1.0")
    rows = await body(await client.get(f"{DP}/latest", headers=admin_headers))
    assert [(row["event_public_id"], row["value"]) for row in rows] == [(event_id, 1.0)]


# ---------------------------------------------------------------- reserved segments


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{DP}/batch"),
        ("GET", f"{DP}/bulk"),
        ("DELETE", f"{DP}/batch"),
        ("PUT", f"{DP}/bulk"),
        ("POST", f"{DP}/latest"),
        ("DELETE", f"{DP}/latest"),
        ("GET", f"{DP}/batch/"),
    ],
)
async def test_reserved_segments_wrong_method_is_405(
    client: Any, admin_headers: H, method: str, path: str
) -> None:
    resp = await client.open(path, method=method, headers=admin_headers)
    assert resp.status_code == 405
    assert (await body(resp)) == {"detail": "Method Not Allowed"}
    assert resp.headers.get("Allow")


async def test_series_is_reserved_and_post_only(client: Any, admin_headers: H) -> None:
    # `series` now exists (POST, issue 4): it is never an id, and other methods are 405.
    for path in (f"{DP}/series", f"{DP}/series/"):
        resp = await client.get(path, headers=admin_headers)
        assert resp.status_code == 405
        assert (await body(resp)) == {"detail": "Method Not Allowed"}
        assert "POST" in resp.headers["Allow"]


# ---------------------------------------------------------------- single read and delete


async def test_get_single_and_trailing_slash(client: Any, admin_headers: H, event_id: str) -> None:
    public_id = await post_dp(client, admin_headers, event_id, "12.5", timestamp="2026-03-01T10:00:00Z")
    expected = {
        "public_id": public_id,
        "value": 12.5,
        "timestamp": "2026-03-01T10:00:00.000000+00:00",
        "event_public_id": event_id,
        "experiment_public_id": None,
    }
    for path in (f"{DP}/{public_id}", f"{DP}/{public_id}/"):
        resp = await client.get(path, headers=admin_headers)
        assert resp.status_code == 200
        got = await body(resp)
        assert {k: got[k] for k in RESPONSE_KEYS} == expected


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("unknown", [UNKNOWN, UNKNOWN.upper(), "not-a-uuid", "12345", "series-x"])
async def test_unknown_datapoint_is_404(
    client: Any, admin_headers: H, method: str, unknown: str
) -> None:
    resp = await client.open(f"{DP}/{unknown}", method=method, headers=admin_headers)
    assert resp.status_code == 404
    assert (await body(resp)) == {"detail": f"Datapoint '{unknown}' not found."}


async def test_delete_single(client: Any, admin_headers: H, event_id: str) -> None:
    keep = await post_dp(client, admin_headers, event_id, 1, timestamp=ts(0))
    gone = await post_dp(client, admin_headers, event_id, 2, timestamp=ts(1))
    resp = await client.delete(f"{DP}/{gone}", headers=admin_headers)
    assert resp.status_code == 200
    assert (await body(resp)) == {"status": "success", "message": "Datapoint successfully deleted."}

    resp = await client.get(f"{DP}/{gone}", headers=admin_headers)
    assert resp.status_code == 404
    assert (await body(resp)) == {"detail": f"Datapoint '{gone}' not found."}
    resp = await client.delete(f"{DP}/{gone}/", headers=admin_headers)
    assert resp.status_code == 404

    page = await list_dp(client, admin_headers)
    assert [row["public_id"] for row in page["data"]] == [keep]
    rows = await body(await client.get(f"{DP}/latest", headers=admin_headers))
    assert [row["public_id"] for row in rows] == [keep]

    resp = await client.delete(f"{DP}/{keep}/", headers=admin_headers)
    assert resp.status_code == 200
    assert await total(client, admin_headers) == 0


async def test_any_user_can_read_and_write(client: Any, admin_headers: H, event_id: str) -> None:
    user = await create_user(client, admin_headers)
    public_id = await post_dp(client, user["headers"], event_id, 5)
    assert (await get_dp(client, admin_headers, public_id))["value"] == 5.0
    resp = await client.delete(f"{DP}/{public_id}", headers=user["headers"])
    assert resp.status_code == 200


# ---------------------------------------------------------------- experiment stamping


async def get_experiment(client: Any, headers: dict[str, str], public_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/experiments/{public_id}", headers=headers)
    assert resp.status_code == 200
    data: dict[str, Any] = await body(resp)
    return data


async def test_stamping_with_running_experiment(client: Any, admin_headers: H, event_id: str) -> None:
    before = await post_dp(client, admin_headers, event_id, 1)
    exp = await create_experiment(client, admin_headers)
    single = await post_dp(client, admin_headers, event_id, 2)
    resp = await client.post(
        f"{DP}/batch", json={"datapoints": [{"value": 3, "event_public_id": event_id}]}, headers=admin_headers
    )
    assert resp.status_code == 201
    resp = await client.put(f"/api/v1/experiments/{exp}/stop", headers=admin_headers)
    assert resp.status_code == 200
    after = await post_dp(client, admin_headers, event_id, 4)

    assert (await get_dp(client, admin_headers, before))["experiment_public_id"] is None
    assert (await get_dp(client, admin_headers, single))["experiment_public_id"] == exp
    assert (await get_dp(client, admin_headers, after))["experiment_public_id"] is None
    page = await list_dp(client, admin_headers, f"experiment_public_id={exp}")
    assert page["total"] == 2
    assert sorted(row["value"] for row in page["data"]) == [2.0, 3.0]
    latest = await body(await client.get(f"{DP}/latest", headers=admin_headers))
    assert latest[0]["value"] == 4.0 and latest[0]["experiment_public_id"] is None


async def test_stamping_uses_measurement_time(client: Any, admin_headers: H, event_id: str) -> None:
    """A buffered reading lands in the experiment it was measured in: [started_on, stopped_on)."""
    exp1 = await create_experiment(client, admin_headers)
    resp = await client.put(f"/api/v1/experiments/{exp1}/stop", headers=admin_headers)
    assert resp.status_code == 200
    info = await get_experiment(client, admin_headers, exp1)
    started = parse_ts(info["started_on"])
    stopped = parse_ts(info["stopped_on"])
    assert started < stopped
    exp2 = await create_experiment(client, admin_headers)  # now running

    def iso(dt: datetime) -> str:
        return dt.isoformat(timespec="microseconds")

    cases = [
        (iso(started - timedelta(seconds=1)), None),
        (iso(started), exp1),  # inclusive start
        (info["started_on"].replace("+00:00", "Z"), exp1),
        (iso(stopped - timedelta(microseconds=1)), exp1),
        (iso(started.astimezone(PLUS2)), exp1),
        (None, exp2),  # arrival time: the running experiment
    ]
    for timestamp, expected in cases:
        public_id = await post_dp(client, admin_headers, event_id, 1, timestamp=timestamp)
        got = await get_dp(client, admin_headers, public_id)
        assert got["experiment_public_id"] == expected, (timestamp, got)

    # The end is exclusive: at stopped_on exactly, exp1 no longer contains the reading.
    public_id = await post_dp(client, admin_headers, event_id, 1, timestamp=iso(stopped))
    got = await get_dp(client, admin_headers, public_id)
    assert got["experiment_public_id"] != exp1

    resp = await client.post(
        f"{DP}/batch",
        json={"datapoints": [
            {"value": 1, "event_public_id": event_id, "timestamp": iso(started)},
            {"value": 2, "event_public_id": event_id},
        ]},
        headers=admin_headers,
    )
    assert resp.status_code == 201
    page = await list_dp(client, admin_headers, f"experiment_id={exp1}&page_size=100")
    assert page["total"] == 5


async def test_stamping_running_experiment_is_open_ended(
    client: Any, admin_headers: H, event_id: str
) -> None:
    exp = await create_experiment(client, admin_headers)
    started = parse_ts((await get_experiment(client, admin_headers, exp))["started_on"])
    later = (started + timedelta(hours=1)).isoformat(timespec="microseconds")
    earlier = (started - timedelta(hours=1)).isoformat(timespec="microseconds")
    items = [
        {"value": 1, "event_public_id": event_id, "timestamp": later},
        {"value": 2, "event_public_id": event_id, "timestamp": earlier},
    ]
    resp = await client.post(f"{DP}/batch", json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 201
    page = await list_dp(client, admin_headers)
    stamped = {row["value"]: row["experiment_public_id"] for row in page["data"]}
    assert stamped == {1.0: exp, 2.0: None}


# ---------------------------------------------------------------- edges: limits, odd input, cascades


async def test_full_batch_with_timestamps_fits_the_body_limit(
    client: Any, admin_headers: H, event_id: str
) -> None:
    """§2.2: the body limit MUST fit a full MAX_BATCH (10000) batch with timestamps."""
    items = [
        {"value": f"{i}.123456789", "event_public_id": event_id,
         "timestamp": f"2026-02-10T20:{i // 3600 % 60:02d}:{i % 60:02d}.123456+02:00"}
        for i in range(10000)
    ]
    resp = await client.post(f"{DP}/batch", json={"datapoints": items}, headers=admin_headers)
    assert resp.status_code == 201, (await resp.get_data(as_text=True))[:500]
    data = await body(resp)
    assert data["accepted"] == 10000
    assert data["message"] == "10000 datapoints successfully created."
    assert await total(client, admin_headers) == 10000


async def test_body_over_server_limit_is_413(client: Any, admin_headers: H, event_id: str) -> None:
    filler = "x" * (32 * 1024 * 1024)
    raw = json.dumps({"datapoints": [{"value": 1, "event_public_id": event_id, "note": filler}]}).encode()
    resp = await post_raw(client, f"{DP}/batch", raw, admin_headers)
    assert resp.status_code == 413
    assert (await body(resp)) == {"detail": "Request body too large."}
    assert await total(client, admin_headers) == 0


@pytest.mark.parametrize(
    "extreme",
    [
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        "2026-02-10T20:44:08+23:59",
    ],
)
async def test_extreme_timestamps_never_500(
    client: Any, admin_headers: H, event_id: str, extreme: str
) -> None:
    resp = await client.post(
        DP, json={"value": 1, "event_public_id": event_id, "timestamp": extreme}, headers=admin_headers
    )
    assert resp.status_code in (201, 422), await resp.get_data(as_text=True)
    if resp.status_code == 201:
        got = await get_dp(client, admin_headers, (await body(resp))["public_id"])
        assert TS_RE.match(got["timestamp"])
    resp = await client.get(DP, query_string={"since": extreme}, headers=admin_headers)
    assert resp.status_code in (200, 422)


@pytest.mark.parametrize(
    "bad", ["2026-02-10T20:44:08+24:00", "2026-02-10T20:44:08+25:00", "2026-02-10T20:44:08+2"]
)
async def test_impossible_offsets_rejected(client: Any, admin_headers: H, event_id: str, bad: str) -> None:
    resp = await client.post(
        DP, json={"value": 1, "event_public_id": event_id, "timestamp": bad}, headers=admin_headers
    )
    assert resp.status_code == 422
    assert locs_mention(assert_422(await body(resp)), "timestamp")


@pytest.mark.parametrize(
    ("path", "template", "allowed"),
    [
        (DP, b'{"value": 1, "event_public_id": "\\ud800"}', (400, 404, 422)),
        (DP, b'{"value": "\\ud800", "event_public_id": "EID"}', (400, 422)),
        (f"{DP}/batch", b'{"datapoints": [{"value": 1, "event_public_id": "\\ud800"}]}', (400, 422)),
        (
            f"{DP}/batch",
            b'{"datapoints": [{"value": 1, "event_public_id": "\\ud800"}, '
            b'{"value": 2, "event_public_id": "EID"}]}',
            (201, 400, 422),
        ),
    ],
    ids=["single-event", "single-value", "batch-all-bad", "batch-mixed"],
)
async def test_lone_surrogate_in_body_is_not_500(
    client: Any, admin_headers: H, event_id: str, path: str, template: bytes, allowed: tuple[int, ...]
) -> None:
    """JSON allows the escape "\\ud800", but it is no valid text: a client mistake, never a 500 (§1)."""
    raw = template.replace(b"EID", event_id.encode())
    resp = await post_raw(client, path, raw, admin_headers)
    assert resp.status_code in allowed, (resp.status_code, await resp.get_data(as_text=True))


async def test_invalid_utf8_in_query_is_not_500(client: Any, admin_headers: H) -> None:
    for query in ("event_id=%ED%A0%80", "since=%FF%FE"):
        resp = await client.get(f"{DP}?{query}", headers=admin_headers)
        assert resp.status_code in (200, 400, 422), query


async def test_deleting_event_or_experiment_removes_its_datapoints(client: Any, admin_headers: H) -> None:
    e1 = await create_event(client, admin_headers)
    e2 = await create_event(client, admin_headers)
    d1 = await post_dp(client, admin_headers, e1, 1)
    d2 = await post_dp(client, admin_headers, e2, 2)
    resp = await client.delete(f"/api/v1/events/{e1}", headers=admin_headers)
    assert resp.status_code == 200
    assert (await client.get(f"{DP}/{d1}", headers=admin_headers)).status_code == 404
    rows = await body(await client.get(f"{DP}/latest", headers=admin_headers))
    assert [row["public_id"] for row in rows] == [d2]

    exp = await create_experiment(client, admin_headers)
    d3 = await post_dp(client, admin_headers, e2, 3, timestamp=ts(-3600))  # before the experiment
    d4 = await post_dp(client, admin_headers, e2, 4)  # in the experiment
    resp = await client.delete(f"/api/v1/experiments/{exp}", headers=admin_headers)
    assert resp.status_code == 200
    assert (await client.get(f"{DP}/{d4}", headers=admin_headers)).status_code == 404
    page = await list_dp(client, admin_headers)
    assert {row["public_id"] for row in page["data"]} == {d2, d3}
    rows = await body(await client.get(f"{DP}/latest", headers=admin_headers))
    assert [row["public_id"] for row in rows] == [d2]
