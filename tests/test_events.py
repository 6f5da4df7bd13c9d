"""Events REST API: contract §2 (conventions) and §4.2 (events)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import trio
from conftest import create_event, create_user

EVENTS = "/api/v1/events"
EVENT_TYPES = ("sensor", "actuator", "range", "cmd_button", "cmd_opened", "cmd_closed")
EVENT_KEYS = ("public_id", "name", "min_value", "max_value", "unit", "type", "user_public_id")
MIN_MAX_ERROR = {
    "loc": ["body"],
    "msg": "min_value must be less than or equal to max_value",
    "type": "value_error",
}
MISSING = object()


# ---------------------------------------------------------------- helpers


def event_body(**overrides: Any) -> dict[str, Any]:
    """A valid EventCreate body; an override of ``MISSING`` removes the field."""
    body: dict[str, Any] = {
        "name": f"event-{uuid.uuid4().hex[:8]}",
        "min_value": 0,
        "max_value": 100,
        "unit": "°C",
        "type": "sensor",
    }
    for key, value in overrides.items():
        if value is MISSING:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def assert_public_id(value: Any) -> None:
    assert isinstance(value, str)
    parsed = uuid.UUID(value)
    assert str(parsed) == value, "public_id must be a lower-case canonical UUID"
    assert parsed.version == 4


def assert_validation_error(status: int, body: Any, field: str | None = None) -> None:
    assert status == 422, body
    detail = body["detail"]
    assert isinstance(detail, list) and detail, body
    for item in detail:
        assert isinstance(item["loc"], list)
        assert isinstance(item["msg"], str)
        assert isinstance(item["type"], str)
    if field is not None:
        assert any(item["loc"] == ["body", field] for item in detail), detail


def assert_min_max_error(status: int, body: Any) -> None:
    assert status == 422, body
    detail = body["detail"]
    assert isinstance(detail, list) and len(detail) == 1, body
    assert {k: detail[0][k] for k in ("loc", "msg", "type")} == MIN_MAX_ERROR


def event_view(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event[k] for k in EVENT_KEYS}


async def get_event(client: Any, headers: dict[str, str], public_id: str) -> dict[str, Any]:
    resp = await client.get(f"{EVENTS}/{public_id}", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    event: dict[str, Any] = await resp.get_json()
    return event


async def list_events(client: Any, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    resp = await client.get(f"{EVENTS}{query}", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    page: dict[str, Any] = await resp.get_json()
    return page


async def post_raw(client: Any, url: str, headers: dict[str, str], raw: str) -> Any:
    return await client.post(
        url, data=raw.encode(), headers={**headers, "Content-Type": "application/json"}
    )


async def datapoint_total(client: Any, headers: dict[str, str], event_id: str) -> int:
    resp = await client.get(f"/api/v1/datapoints?event_public_id={event_id}", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    total: int = (await resp.get_json())["total"]
    return total


async def post_batch(client: Any, headers: dict[str, str], items: list[dict[str, Any]]) -> None:
    resp = await client.post("/api/v1/datapoints/batch", json={"datapoints": items}, headers=headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    assert (await resp.get_json())["accepted"] == len(items)


@pytest.fixture
async def admin_public_id(client: Any, admin_headers: dict[str, str]) -> str:
    resp = await client.get("/api/v1/auth/me", headers=admin_headers)
    assert resp.status_code == 200
    public_id: str = (await resp.get_json())["public_id"]
    return public_id


# ---------------------------------------------------------------- create and read


async def test_create_returns_envelope_and_event_shape(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    body = event_body(name="Temperature Reactor", min_value=-20.5, max_value=150, unit="°C")
    resp = await client.post(EVENTS, json=body, headers=user["headers"])
    assert resp.status_code == 201
    created = await resp.get_json()
    assert set(created) == {"status", "message", "public_id"}
    assert created["status"] == "success"
    assert created["message"] == "Event successfully created."
    assert_public_id(created["public_id"])

    event = await get_event(client, admin_headers, created["public_id"])
    assert event_view(event) == {
        "public_id": created["public_id"],
        "name": "Temperature Reactor",
        "min_value": -20.5,
        "max_value": 150,
        "unit": "°C",
        "type": "sensor",
        "user_public_id": user["public_id"],
    }
    assert isinstance(event["min_value"], int | float) and isinstance(event["max_value"], int | float)


async def test_admin_creator_is_recorded(
    client: Any, admin_headers: dict[str, str], admin_public_id: str
) -> None:
    public_id = await create_event(client, admin_headers)
    event = await get_event(client, admin_headers, public_id)
    assert event["user_public_id"] == admin_public_id
    page = await list_events(client, admin_headers)
    assert page["data"][0]["user_public_id"] == admin_public_id


async def test_any_user_may_update_and_delete_anothers_event(
    client: Any, admin_headers: dict[str, str], admin_public_id: str
) -> None:
    other = await create_user(client, admin_headers)
    public_id = await create_event(client, admin_headers, name="shared")
    resp = await client.put(f"{EVENTS}/{public_id}", json={"unit": "bar"}, headers=other["headers"])
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    event = await get_event(client, other["headers"], public_id)
    assert event["unit"] == "bar"
    assert event["user_public_id"] == admin_public_id  # the creator, not the last editor
    resp = await client.delete(f"{EVENTS}/{public_id}", headers=other["headers"])
    assert resp.status_code == 200


async def test_deleting_the_creator_keeps_event_with_null_user(
    client: Any, admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers)
    public_id = await create_event(client, user["headers"])
    resp = await client.delete(f"/api/v1/users/{user['public_id']}", headers=admin_headers)
    assert resp.status_code == 200
    event = await get_event(client, admin_headers, public_id)
    assert event["user_public_id"] is None


@pytest.mark.parametrize("event_type", EVENT_TYPES)
async def test_every_event_type_is_accepted(
    client: Any, admin_headers: dict[str, str], event_type: str
) -> None:
    public_id = await create_event(client, admin_headers, type=event_type)
    assert (await get_event(client, admin_headers, public_id))["type"] == event_type


@pytest.mark.parametrize(
    "bad_type", ["Sensor", "SENSOR", "switch", "cmd", "", " sensor", 1, True, ["sensor"], None, MISSING]
)
async def test_other_event_types_are_rejected(
    client: Any, admin_headers: dict[str, str], bad_type: Any
) -> None:
    resp = await client.post(EVENTS, json=event_body(type=bad_type), headers=admin_headers)
    assert_validation_error(resp.status_code, await resp.get_json(), "type")
    assert (await list_events(client, admin_headers))["total"] == 0


@pytest.mark.parametrize("field", ["name", "unit"])
async def test_name_and_unit_length_bounds(client: Any, admin_headers: dict[str, str], field: str) -> None:
    for value in ("x", "y" * 255):
        resp = await client.post(EVENTS, json=event_body(**{field: value}), headers=admin_headers)
        assert resp.status_code == 201, await resp.get_data(as_text=True)
        event = await get_event(client, admin_headers, (await resp.get_json())["public_id"])
        assert event[field] == value
    for value in ("", "z" * 256):
        resp = await client.post(EVENTS, json=event_body(**{field: value}), headers=admin_headers)
        assert_validation_error(resp.status_code, await resp.get_json(), field)
    assert (await list_events(client, admin_headers))["total"] == 2


@pytest.mark.parametrize("field", ["name", "unit"])
@pytest.mark.parametrize("value", [5, True, None, ["a"], {"a": 1}, MISSING])
async def test_name_and_unit_must_be_strings(
    client: Any, admin_headers: dict[str, str], field: str, value: Any
) -> None:
    resp = await client.post(EVENTS, json=event_body(**{field: value}), headers=admin_headers)
    assert_validation_error(resp.status_code, await resp.get_json(), field)


@pytest.mark.parametrize("field", ["min_value", "max_value"])
@pytest.mark.parametrize("value", [True, False, "5", "1.5", "abc", "NaN", None, [1], {"v": 1}, MISSING])
async def test_min_max_must_be_numbers(
    client: Any, admin_headers: dict[str, str], field: str, value: Any
) -> None:
    resp = await client.post(EVENTS, json=event_body(**{field: value}), headers=admin_headers)
    assert_validation_error(resp.status_code, await resp.get_json(), field)
    assert (await list_events(client, admin_headers))["total"] == 0


@pytest.mark.parametrize("field", ["min_value", "max_value"])
@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1" + "0" * 400])
async def test_min_max_must_be_finite(
    client: Any, admin_headers: dict[str, str], field: str, literal: str
) -> None:
    body = event_body(min_value=0, max_value=0)
    body[field] = "@@"
    raw = json.dumps(body).replace('"@@"', literal)
    resp = await post_raw(client, EVENTS, admin_headers, raw)
    # A 401-digit integer is a number beyond double range, like 1e400: its field fails.
    assert_validation_error(resp.status_code, await resp.get_json(), field)
    assert (await list_events(client, admin_headers))["total"] == 0


async def test_min_max_accept_ints_and_floats(client: Any, admin_headers: dict[str, str]) -> None:
    public_id = await create_event(client, admin_headers, min_value=-1.25e3, max_value=7)
    event = await get_event(client, admin_headers, public_id)
    assert event["min_value"] == -1250.0
    assert event["max_value"] == 7


async def test_min_greater_than_max_rejected_on_create(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.post(EVENTS, json=event_body(min_value=10, max_value=9.5), headers=admin_headers)
    assert_min_max_error(resp.status_code, await resp.get_json())
    assert (await list_events(client, admin_headers))["total"] == 0
    # Equal bounds are allowed.
    public_id = await create_event(client, admin_headers, min_value=3.5, max_value=3.5)
    event = await get_event(client, admin_headers, public_id)
    assert (event["min_value"], event["max_value"]) == (3.5, 3.5)


@pytest.mark.parametrize(
    ("update", "ok"),
    [
        ({"min_value": 101}, False),
        ({"max_value": -0.5}, False),
        ({"min_value": 200, "max_value": 150}, False),
        ({"min_value": 100}, True),
        ({"max_value": 0}, True),
        ({"min_value": 150, "max_value": 200}, True),
        ({"min_value": -50, "max_value": -10}, True),
        ({"min_value": 150, "max_value": None}, False),
        ({"min_value": None, "max_value": -1}, False),
    ],
)
async def test_put_min_max_check_uses_merged_values(
    client: Any, admin_headers: dict[str, str], update: dict[str, Any], ok: bool
) -> None:
    public_id = await create_event(client, admin_headers, min_value=0, max_value=100)
    before = await get_event(client, admin_headers, public_id)
    resp = await client.put(f"{EVENTS}/{public_id}", json=update, headers=admin_headers)
    after = await get_event(client, admin_headers, public_id)
    if ok:
        assert resp.status_code == 200, await resp.get_data(as_text=True)
        expected = {**before, **{k: v for k, v in update.items() if v is not None}}
        assert event_view(after) == event_view(expected)
    else:
        assert_min_max_error(resp.status_code, await resp.get_json())
        assert after == before


# ---------------------------------------------------------------- uniqueness


async def test_duplicate_name_rejected_on_create(client: Any, admin_headers: dict[str, str]) -> None:
    await create_event(client, admin_headers, name="Pressure Chamber")
    resp = await client.post(EVENTS, json=event_body(name="Pressure Chamber"), headers=admin_headers)
    assert resp.status_code == 409
    assert await resp.get_json() == {"detail": "Event already exists."}
    # The rule is an exact match: other spellings are different names.
    await create_event(client, admin_headers, name="pressure chamber")
    await create_event(client, admin_headers, name="Pressure Chamber ")
    assert (await list_events(client, admin_headers))["total"] == 3


async def test_concurrent_creates_with_same_name(client: Any, admin_headers: dict[str, str]) -> None:
    results: list[tuple[int, Any]] = []

    async def attempt() -> None:
        resp = await client.post(EVENTS, json=event_body(name="racy"), headers=admin_headers)
        results.append((resp.status_code, await resp.get_json()))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(attempt)

    assert sorted(status for status, _ in results) == [201, 409, 409, 409, 409], results
    assert all(body == {"detail": "Event already exists."} for status, body in results if status == 409)
    page = await list_events(client, admin_headers)
    assert page["total"] == 1
    assert page["data"][0]["public_id"] == next(b["public_id"] for st, b in results if st == 201)


async def test_rename_to_taken_name_conflicts(client: Any, admin_headers: dict[str, str]) -> None:
    await create_event(client, admin_headers, name="Heater Power")
    other = await create_event(client, admin_headers, name="Valve Position")
    before = await get_event(client, admin_headers, other)
    resp = await client.put(
        f"{EVENTS}/{other}", json={"name": "Heater Power", "unit": "%"}, headers=admin_headers
    )
    assert resp.status_code == 409
    assert await resp.get_json() == {"detail": "Event already exists."}
    assert await get_event(client, admin_headers, other) == before
    # Sending the event's own name back (as an edit form does) is not a conflict.
    resp = await client.put(
        f"{EVENTS}/{other}", json={"name": "Valve Position", "unit": "%"}, headers=admin_headers
    )
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert (await get_event(client, admin_headers, other))["unit"] == "%"


# ---------------------------------------------------------------- update


async def test_put_updates_every_field(
    client: Any, admin_headers: dict[str, str], admin_public_id: str
) -> None:
    public_id = await create_event(client, admin_headers, name="old", type="sensor")
    update = {"name": "new", "min_value": -5, "max_value": 5.5, "unit": "mbar", "type": "range"}
    resp = await client.put(f"{EVENTS}/{public_id}", json=update, headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == {"status": "success", "message": "Event successfully updated."}
    event = await get_event(client, admin_headers, public_id)
    assert event_view(event) == {**update, "public_id": public_id, "user_public_id": admin_public_id}


@pytest.mark.parametrize(
    "update",
    [
        {},
        {"name": None, "min_value": None, "max_value": None, "unit": None, "type": None},
        {"stopped_on": "2020-01-01T00:00:00+00:00", "public_id": "x", "user_public_id": None},
    ],
)
async def test_put_with_null_or_omitted_fields_changes_nothing(
    client: Any, admin_headers: dict[str, str], update: dict[str, Any]
) -> None:
    public_id = await create_event(client, admin_headers, min_value=1, max_value=2, unit="V")
    before = await get_event(client, admin_headers, public_id)
    resp = await client.put(f"{EVENTS}/{public_id}", json=update, headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert await resp.get_json() == {"status": "success", "message": "Event successfully updated."}
    assert await get_event(client, admin_headers, public_id) == before


async def test_put_changes_only_given_fields(client: Any, admin_headers: dict[str, str]) -> None:
    public_id = await create_event(client, admin_headers, min_value=1, max_value=2, unit="V")
    before = await get_event(client, admin_headers, public_id)
    resp = await client.put(
        f"{EVENTS}/{public_id}", json={"unit": "mV", "name": None}, headers=admin_headers
    )
    assert resp.status_code == 200
    assert await get_event(client, admin_headers, public_id) == {**before, "unit": "mV"}


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "n" * 256}, "name"),
        ({"name": 12}, "name"),
        ({"unit": ""}, "unit"),
        ({"unit": "u" * 256}, "unit"),
        ({"type": "valve"}, "type"),
        ({"type": "Actuator"}, "type"),
        ({"min_value": "1"}, "min_value"),
        ({"max_value": True}, "max_value"),
    ],
)
async def test_put_invalid_fields_rejected(
    client: Any, admin_headers: dict[str, str], update: dict[str, Any], field: str
) -> None:
    public_id = await create_event(client, admin_headers)
    before = await get_event(client, admin_headers, public_id)
    resp = await client.put(f"{EVENTS}/{public_id}", json=update, headers=admin_headers)
    assert_validation_error(resp.status_code, await resp.get_json(), field)
    assert await get_event(client, admin_headers, public_id) == before


async def test_put_non_finite_number_rejected(client: Any, admin_headers: dict[str, str]) -> None:
    public_id = await create_event(client, admin_headers)
    resp = await client.put(
        f"{EVENTS}/{public_id}",
        data=b'{"max_value": 1e400}',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert_validation_error(resp.status_code, await resp.get_json(), "max_value")


# ---------------------------------------------------------------- unknown ids


@pytest.mark.parametrize("unknown", ["not-a-uuid", "12345", "0", str(uuid.uuid4()), "latest"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_unknown_id_is_404(
    client: Any, admin_headers: dict[str, str], unknown: str, method: str
) -> None:
    await create_event(client, admin_headers)
    kwargs: dict[str, Any] = {"headers": admin_headers}
    if method == "PUT":
        kwargs["json"] = {"unit": "bar"}
    resp = await client.open(f"{EVENTS}/{unknown}", method=method, **kwargs)
    assert resp.status_code == 404
    assert await resp.get_json() == {"detail": f"Event '{unknown}' not found."}


# ---------------------------------------------------------------- delete


async def test_delete_event(client: Any, admin_headers: dict[str, str]) -> None:
    keep = await create_event(client, admin_headers, name="keep")
    gone = await create_event(client, admin_headers, name="gone")
    resp = await client.delete(f"{EVENTS}/{gone}", headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == {"status": "success", "message": "Event successfully deleted."}
    resp = await client.get(f"{EVENTS}/{gone}", headers=admin_headers)
    assert resp.status_code == 404
    assert await resp.get_json() == {"detail": f"Event '{gone}' not found."}
    resp = await client.delete(f"{EVENTS}/{gone}", headers=admin_headers)
    assert resp.status_code == 404
    page = await list_events(client, admin_headers)
    assert page["total"] == 1
    assert [e["public_id"] for e in page["data"]] == [keep]
    # The name is free again.
    await create_event(client, admin_headers, name="gone")


async def test_delete_removes_its_datapoints_only(client: Any, admin_headers: dict[str, str]) -> None:
    doomed = await create_event(client, admin_headers, name="doomed")
    kept = await create_event(client, admin_headers, name="kept")
    await post_batch(
        client,
        admin_headers,
        [{"value": i, "event_public_id": doomed} for i in range(5)]
        + [{"value": i, "event_public_id": kept} for i in range(3)],
    )
    resp = await client.post(
        "/api/v1/datapoints",
        json={"value": 1.5, "event_public_id": doomed},
        headers=admin_headers,
    )
    assert resp.status_code == 201
    single = (await resp.get_json())["public_id"]
    assert await datapoint_total(client, admin_headers, doomed) == 6
    assert await datapoint_total(client, admin_headers, kept) == 3

    resp = await client.delete(f"{EVENTS}/{doomed}", headers=admin_headers)
    assert resp.status_code == 200
    assert await datapoint_total(client, admin_headers, doomed) == 0
    assert await datapoint_total(client, admin_headers, kept) == 3
    resp = await client.get(f"/api/v1/datapoints/{single}", headers=admin_headers)
    assert resp.status_code == 404
    resp = await client.get("/api/v1/datapoints", headers=admin_headers)
    assert (await resp.get_json())["total"] == 3
    resp = await client.get("/api/v1/datapoints/latest", headers=admin_headers)
    assert [row["event_public_id"] for row in await resp.get_json()] == [kept]


# ---------------------------------------------------------------- listing


async def test_list_is_paginated_in_creation_order(client: Any, admin_headers: dict[str, str]) -> None:
    # Names deliberately not in alphabetical order.
    names = ["zeta", "alpha", "Mu", "beta", "omega"]
    ids = [await create_event(client, admin_headers, name=name) for name in names]

    page = await list_events(client, admin_headers)
    assert (page["page"], page["page_size"], page["total"]) == (1, 25, 5)
    assert [e["public_id"] for e in page["data"]] == ids
    assert [e["name"] for e in page["data"]] == names
    for event in page["data"]:
        assert set(EVENT_KEYS) <= set(event)

    page = await list_events(client, admin_headers, "?page=2&page_size=2")
    assert (page["page"], page["page_size"], page["total"]) == (2, 2, 5)
    assert [e["public_id"] for e in page["data"]] == ids[2:4]
    page = await list_events(client, admin_headers, "?page=3&page_size=2")
    assert [e["public_id"] for e in page["data"]] == ids[4:]
    page = await list_events(client, admin_headers, "?page=4&page_size=2")
    assert page["data"] == [] and page["total"] == 5

    # An update does not move an event.
    resp = await client.put(f"{EVENTS}/{ids[0]}", json={"name": "zz-renamed"}, headers=admin_headers)
    assert resp.status_code == 200
    page = await list_events(client, admin_headers, "?page_size=1000")
    assert [e["public_id"] for e in page["data"]] == ids


async def test_empty_list(client: Any, admin_headers: dict[str, str]) -> None:
    page = await list_events(client, admin_headers)
    assert page == {"page": 1, "page_size": 25, "total": 0, "data": []}


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("page_size=0", "page_size"),
        ("page_size=1001", "page_size"),
        ("page_size=x", "page_size"),
    ],
)
async def test_list_rejects_bad_pagination(
    client: Any, admin_headers: dict[str, str], query: str, param: str
) -> None:
    resp = await client.get(f"{EVENTS}?{query}", headers=admin_headers)
    assert resp.status_code == 422
    detail = (await resp.get_json())["detail"]
    assert isinstance(detail, list)
    assert any(item["loc"] == ["query", param] for item in detail), detail


# ---------------------------------------------------------------- paths and auth


async def test_trailing_slash_variants(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.post(f"{EVENTS}/", json=event_body(name="slashed"), headers=admin_headers)
    assert resp.status_code == 201
    public_id = (await resp.get_json())["public_id"]

    resp = await client.get(f"{EVENTS}/?page=1&page_size=50", headers=admin_headers)
    assert resp.status_code == 200
    slashed_page = await resp.get_json()
    assert slashed_page == await list_events(client, admin_headers, "?page=1&page_size=50")
    assert [e["public_id"] for e in slashed_page["data"]] == [public_id]

    resp = await client.get(f"{EVENTS}/{public_id}/", headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == await get_event(client, admin_headers, public_id)

    resp = await client.put(f"{EVENTS}/{public_id}/", json={"unit": "K"}, headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == {"status": "success", "message": "Event successfully updated."}
    assert (await get_event(client, admin_headers, public_id))["unit"] == "K"

    resp = await client.get(f"{EVENTS}/nope/", headers=admin_headers)
    assert resp.status_code == 404
    assert await resp.get_json() == {"detail": "Event 'nope' not found."}

    resp = await client.delete(f"{EVENTS}/{public_id}/", headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == {"status": "success", "message": "Event successfully deleted."}
    assert (await list_events(client, admin_headers))["total"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("POST", ""), ("GET", "/{id}"), ("PUT", "/{id}"), ("DELETE", "/{id}")],
)
async def test_requires_token(client: Any, admin_headers: dict[str, str], method: str, path: str) -> None:
    public_id = await create_event(client, admin_headers)
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PUT"):
        kwargs["json"] = event_body()
    resp = await client.open(EVENTS + path.format(id=public_id), method=method, **kwargs)
    assert resp.status_code == 401
    assert await resp.get_json() == {"detail": "Authentication required."}
    assert resp.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert (await list_events(client, admin_headers))["total"] == 1
