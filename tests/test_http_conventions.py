"""HTTP conventions of the contract: §2.1 paths, §2.2 request bodies, §2.3 error shapes, §2.6 CORS,
§4.6 health / OpenAPI / docs, and §1 (JSON always, stored data verbatim)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ADMIN_EMAIL,
    bearer,
    create_event,
    create_experiment,
    create_user,
    login,
    make_settings,
    open_app,
)

API = "/api/v1"
ALLOWED_ORIGIN = "http://localhost:5173"
EVIL_ORIGIN = "http://evil.example"
MALFORMED = {"detail": [{"loc": ["body"], "msg": "Malformed JSON body.", "type": "json_invalid"}]}
UNSUPPORTED = {"detail": "Content-Type must be application/json."}
TOO_LARGE = {"detail": "Request body too large."}
EIGHT_MIB = 8 * 1024 * 1024


async def json_of(resp: Any) -> Any:
    """The body of a response that must be JSON (never text/plain, never HTML)."""
    assert resp.mimetype == "application/json", (resp.status_code, resp.content_type)
    return json.loads(await resp.get_data(as_text=True))


def allow_set(resp: Any) -> set[str]:
    header = resp.headers.get("Allow")
    assert header, "405 without an Allow header"
    return {m.strip().upper() for m in header.split(",") if m.strip()}


async def event_total(client: Any, headers: dict[str, str]) -> int:
    resp = await client.get(f"{API}/events", headers=headers)
    assert resp.status_code == 200
    total: int = (await json_of(resp))["total"]
    return total


# ==================================================================== §2.1 trailing slashes


@pytest.mark.parametrize(
    "path",
    [
        "/events", "/experiments", "/logging", "/logs", "/users", "/datapoints", "/datapoints/latest",
        "/auth/me", "/events?page=1&page_size=50",
    ],
)
async def test_trailing_slash_on_collection_get(
    client: Any, admin_headers: dict[str, str], path: str
) -> None:
    event = await create_event(client, admin_headers)
    resp = await client.post(f"{API}/datapoints", json={"event_public_id": event, "value": 1.5},
                             headers=admin_headers)
    assert resp.status_code == 201
    route, _, query = path.partition("?")
    slashed = f"{API}{route}/" + (f"?{query}" if query else "")
    plain = await client.get(f"{API}{path}", headers=admin_headers)
    with_slash = await client.get(slashed, headers=admin_headers)
    assert plain.status_code == 200
    assert with_slash.status_code == 200
    assert await json_of(with_slash) == await json_of(plain)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/events/", {"name": "slash-event", "min_value": 0, "max_value": 1, "unit": "V", "type": "sensor"},
         "Event successfully created."),
        ("/experiments/", {"name": "slash-experiment"}, "Experiment successfully created."),
        ("/logging/", {"content": "slash log"}, "Log entry successfully created."),
        ("/logs/", {"content": "slash alias log"}, "Log entry successfully created."),
        ("/users/", {"email": "slash@lab.local", "username": "slashuser", "password": "password123"},
         "User successfully created."),
    ],
)
async def test_trailing_slash_on_collection_post(
    client: Any, admin_headers: dict[str, str], path: str, body: dict[str, Any], message: str
) -> None:
    resp = await client.post(f"{API}{path}", json=body, headers=admin_headers)
    assert resp.status_code == 201
    data = await json_of(resp)
    assert data["status"] == "success"
    assert data["message"] == message
    assert isinstance(data["public_id"], str)
    # The object really exists and is reachable under both spellings of its item route.
    collection = path.rstrip("/")
    for item in (f"{API}{collection}/{data['public_id']}", f"{API}{collection}/{data['public_id']}/"):
        got = await client.get(item, headers=admin_headers)
        assert got.status_code == 200
        assert (await json_of(got))["public_id"] == data["public_id"]


@pytest.mark.parametrize("path", ["/datapoints/", "/datapoints/batch/", "/datapoints/bulk/"])
async def test_trailing_slash_on_datapoint_writes(
    client: Any, admin_headers: dict[str, str], path: str
) -> None:
    event = await create_event(client, admin_headers)
    item = {"event_public_id": event, "value": 2.5}
    body = item if path == "/datapoints/" else {"datapoints": [item]}
    resp = await client.post(f"{API}{path}", json=body, headers=admin_headers)
    assert resp.status_code == 201
    data = await json_of(resp)
    assert data["status"] == "success"
    latest = await json_of(await client.get(f"{API}/datapoints/latest/", headers=admin_headers))
    assert [(d["event_public_id"], d["value"]) for d in latest] == [(event, 2.5)]


async def test_trailing_slash_on_login(client: Any) -> None:
    resp = await client.post(f"{API}/auth/login/", json={"email": ADMIN_EMAIL, "password": "admin123"})
    assert resp.status_code == 200
    assert isinstance((await json_of(resp))["access_token"], str)


async def test_trailing_slash_on_item_routes(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers, "item-slash")
    plain = await client.get(f"{API}/events/{event}", headers=admin_headers)
    slashed = await client.get(f"{API}/events/{event}/", headers=admin_headers)
    assert plain.status_code == slashed.status_code == 200
    assert await json_of(plain) == await json_of(slashed)

    resp = await client.put(f"{API}/events/{event}/", json={"unit": "K"}, headers=admin_headers)
    assert resp.status_code == 200
    assert await json_of(resp) == {"status": "success", "message": "Event successfully updated."}
    assert (await json_of(await client.get(f"{API}/events/{event}", headers=admin_headers)))["unit"] == "K"

    resp = await client.delete(f"{API}/events/{event}/", headers=admin_headers)
    assert resp.status_code == 200
    assert await json_of(resp) == {"status": "success", "message": "Event successfully deleted."}
    plain = await client.get(f"{API}/events/{event}", headers=admin_headers)
    slashed = await client.get(f"{API}/events/{event}/", headers=admin_headers)
    assert plain.status_code == slashed.status_code == 404
    assert await json_of(plain) == await json_of(slashed) == {"detail": f"Event '{event}' not found."}


async def test_trailing_slash_on_unknown_non_uuid_id(client: Any, admin_headers: dict[str, str]) -> None:
    for path in (f"{API}/experiments/not-a-uuid", f"{API}/experiments/not-a-uuid/"):
        resp = await client.get(path, headers=admin_headers)
        assert resp.status_code == 404
        assert await json_of(resp) == {"detail": "Experiment 'not-a-uuid' not found."}


async def test_trailing_slash_on_action_routes(client: Any, admin_headers: dict[str, str]) -> None:
    exp = await create_experiment(client, admin_headers, "slash-stop")
    resp = await client.put(f"{API}/experiments/{exp}/stop/", headers=admin_headers)
    assert resp.status_code == 200
    first = await json_of(resp)
    assert first == {"status": "success", "message": "Experiment successfully stopped."}
    resp = await client.put(f"{API}/experiments/{exp}/stop", headers=admin_headers)
    assert resp.status_code == 200
    assert await json_of(resp) == first
    stopped = await json_of(await client.get(f"{API}/experiments/{exp}/", headers=admin_headers))
    assert stopped["stopped_on"] is not None

    plain = await client.get(f"{API}/experiments/{exp}/export/csv", headers=admin_headers)
    slashed = await client.get(f"{API}/experiments/{exp}/export/csv/", headers=admin_headers)
    assert plain.status_code == slashed.status_code == 200
    assert plain.mimetype == slashed.mimetype == "text/csv"
    assert await plain.get_data() == await slashed.get_data()


async def test_trailing_slash_on_unauthenticated_request(client: Any) -> None:
    plain = await client.get(f"{API}/events")
    slashed = await client.get(f"{API}/events/")
    assert plain.status_code == slashed.status_code == 401
    assert await json_of(plain) == await json_of(slashed) == {"detail": "Authentication required."}
    assert slashed.headers.get("WWW-Authenticate", "").lower().startswith("bearer")


async def test_trailing_slash_on_health(client: Any) -> None:
    plain = await client.get("/health")
    slashed = await client.get("/health/")
    assert plain.status_code == slashed.status_code == 200
    a, b = await json_of(plain), await json_of(slashed)
    for key in ("status", "version", "database"):
        assert a[key] == b[key]


# ==================================================================== §2.3 unknown routes, wrong methods


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/nope"),
        ("GET", "/api/v1/nope/"),
        ("POST", "/api/v1/nope"),
        ("GET", "/nope"),
        ("GET", "/api/v2/events"),
        ("GET", "/api/v1/events/a/b/c"),
        ("GET", "/api/v1/experiments/x/export/xlsx"),
    ],
)
async def test_unknown_route_is_json_404(
    client: Any, admin_headers: dict[str, str], method: str, path: str
) -> None:
    resp = await client.open(path, method=method, headers=admin_headers, json={"a": 1})
    assert resp.status_code == 404
    assert await json_of(resp) == {"detail": "Not Found"}


async def test_unknown_route_without_token_is_404(client: Any) -> None:
    resp = await client.get("/definitely/not/here")
    assert resp.status_code == 404
    assert await json_of(resp) == {"detail": "Not Found"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/events", {"GET", "POST"}),
        ("DELETE", "/api/v1/events/", {"GET", "POST"}),
        ("PATCH", "/api/v1/events/3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23", {"GET", "PUT", "DELETE"}),
        ("POST", "/api/v1/users/3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23", {"GET", "PUT", "DELETE"}),
        ("GET", "/api/v1/datapoints/batch", {"POST"}),
        ("GET", "/api/v1/datapoints/bulk", {"POST"}),
        ("DELETE", "/api/v1/datapoints/latest", {"GET"}),
        ("GET", "/api/v1/auth/login", {"POST"}),
        ("GET", "/api/v1/auth/logout", {"POST"}),
        ("POST", "/api/v1/auth/me", {"GET"}),
        ("GET", "/api/v1/experiments/some-id/stop", {"PUT"}),
        ("POST", "/api/v1/experiments/some-id/export/csv", {"GET"}),
        ("PUT", "/api/v1/logging", {"GET", "POST"}),
        ("POST", "/health", {"GET"}),
    ],
)
async def test_wrong_method_is_405_with_allow(
    client: Any, admin_headers: dict[str, str], method: str, path: str, allowed: set[str]
) -> None:
    resp = await client.open(path, method=method, headers=admin_headers)
    assert resp.status_code == 405
    assert await json_of(resp) == {"detail": "Method Not Allowed"}
    assert allowed <= allow_set(resp)
    assert method not in allow_set(resp)


# ==================================================================== §2.2 content types


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/jsonx",
    ],
)
async def test_non_json_content_type_is_415(
    client: Any, admin_headers: dict[str, str], content_type: str
) -> None:
    before = await event_total(client, admin_headers)
    body = json.dumps({"name": "typed", "min_value": 0, "max_value": 1, "unit": "V", "type": "sensor"})
    resp = await client.post(
        f"{API}/events", data=body, headers={**admin_headers, "Content-Type": content_type}
    )
    assert resp.status_code == 415
    assert await json_of(resp) == UNSUPPORTED
    assert await event_total(client, admin_headers) == before


async def test_415_on_put_and_batch(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers)
    headers = {**admin_headers, "Content-Type": "text/plain"}
    resp = await client.put(f"{API}/events/{event}", data='{"unit": "K"}', headers=headers)
    assert resp.status_code == 415
    assert await json_of(resp) == UNSUPPORTED
    body = json.dumps({"datapoints": [{"event_public_id": event, "value": 1}]})
    resp = await client.post(f"{API}/datapoints/batch", data=body, headers=headers)
    assert resp.status_code == 415
    assert await json_of(resp) == UNSUPPORTED
    latest = await json_of(await client.get(f"{API}/datapoints/latest", headers=admin_headers))
    assert latest == []


async def test_other_content_type_with_empty_body_is_not_415(
    client: Any, admin_headers: dict[str, str]
) -> None:
    # Only a non-empty body of another type is refused; the stop action takes no body at all.
    exp = await create_experiment(client, admin_headers)
    resp = await client.put(
        f"{API}/experiments/{exp}/stop",
        headers={**admin_headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200
    assert await json_of(resp) == {"status": "success", "message": "Experiment successfully stopped."}


async def test_absent_content_type_is_parsed_as_json(client: Any, admin_headers: dict[str, str]) -> None:
    body = json.dumps({"name": "no-ctype", "min_value": 1, "max_value": 2, "unit": "V", "type": "actuator"})
    resp = await client.post(f"{API}/events", data=body.encode(), headers=admin_headers)
    assert resp.status_code == 201
    event = (await json_of(resp))["public_id"]
    got = await json_of(await client.get(f"{API}/events/{event}", headers=admin_headers))
    assert got["name"] == "no-ctype"
    assert got["type"] == "actuator"

    resp = await client.put(f"{API}/events/{event}", data=b'{"unit": "mV"}', headers=admin_headers)
    assert resp.status_code == 200
    got = await json_of(await client.get(f"{API}/events/{event}", headers=admin_headers))
    assert got["unit"] == "mV"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/merge-patch+json",
        "application/vnd.webmacs+json",
        "application/json; charset=utf-8",
        "Application/JSON",
    ],
)
async def test_json_family_content_types_accepted(
    client: Any, admin_headers: dict[str, str], content_type: str
) -> None:
    event = await create_event(client, admin_headers)
    headers = {**admin_headers, "Content-Type": content_type}
    resp = await client.put(f"{API}/events/{event}", data='{"unit": "bar"}', headers=headers)
    assert resp.status_code == 200
    assert await json_of(resp) == {"status": "success", "message": "Event successfully updated."}
    got = await json_of(await client.get(f"{API}/events/{event}", headers=admin_headers))
    assert got["unit"] == "bar"

    resp = await client.post(f"{API}/logging", data='{"content": "typed log"}', headers=headers)
    assert resp.status_code == 201


# ==================================================================== §2.2 malformed JSON


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": ',
        b"{'name': 'single quotes'}",
        b"not json at all",
        b'{"value": 1}}',
        b'{"value": 1,}',
        b"\xff\xfe\x00{",
    ],
)
async def test_malformed_json_is_rejected(client: Any, admin_headers: dict[str, str], raw: bytes) -> None:
    before = await event_total(client, admin_headers)
    resp = await client.post(
        f"{API}/events", data=raw, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert resp.status_code in (400, 422)
    assert await json_of(resp) == MALFORMED
    assert await event_total(client, admin_headers) == before


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
async def test_non_standard_number_tokens_are_malformed(
    client: Any, admin_headers: dict[str, str], token: str
) -> None:
    event = await create_event(client, admin_headers)
    headers = {**admin_headers, "Content-Type": "application/json"}

    single = f'{{"event_public_id": "{event}", "value": {token}}}'
    resp = await client.post(f"{API}/datapoints", data=single, headers=headers)
    assert resp.status_code in (400, 422)
    assert await json_of(resp) == MALFORMED

    batch = (f'{{"datapoints": [{{"event_public_id": "{event}", "value": 1.0}}, '
             f'{{"event_public_id": "{event}", "value": {token}}}]}}')
    resp = await client.post(f"{API}/datapoints/batch", data=batch, headers=headers)
    assert resp.status_code in (400, 422)
    assert await json_of(resp) == MALFORMED

    ev = f'{{"name": "nan-event", "min_value": {token}, "max_value": 1, "unit": "V", "type": "sensor"}}'
    resp = await client.post(f"{API}/events", data=ev, headers=headers)
    assert resp.status_code in (400, 422)
    assert await json_of(resp) == MALFORMED

    # Nothing was stored: the whole body was refused, including the good batch item.
    latest = await json_of(await client.get(f"{API}/datapoints/latest", headers=admin_headers))
    assert latest == []


async def test_json_that_is_not_an_object_is_422(client: Any, admin_headers: dict[str, str]) -> None:
    for raw in (b"[1, 2, 3]", b'"a string"', b"42", b"null"):
        resp = await client.post(
            f"{API}/events", data=raw, headers={**admin_headers, "Content-Type": "application/json"}
        )
        assert resp.status_code == 422, raw
        detail = (await json_of(resp))["detail"]
        assert isinstance(detail, list) and detail
        for item in detail:
            assert {"loc", "msg", "type"} <= set(item)


# ==================================================================== §2.2 body size


@pytest.mark.parametrize("declare_length", [True, False])
async def test_body_over_limit_is_413(
    client: Any, admin_headers: dict[str, str], declare_length: bool
) -> None:
    event = await create_event(client, admin_headers)
    prefix = f'{{"datapoints": [{{"event_public_id": "{event}", "value": 1}}], "pad": "'.encode()
    suffix = b'"}'
    body = prefix + b"a" * (EIGHT_MIB + 1 - len(prefix) - len(suffix)) + suffix
    assert len(body) == EIGHT_MIB + 1
    headers = {**admin_headers, "Content-Type": "application/json"}
    if declare_length:
        headers["Content-Length"] = str(len(body))
    resp = await client.post(f"{API}/datapoints/batch", data=body, headers=headers)
    assert resp.status_code == 413
    assert await json_of(resp) == TOO_LARGE
    # Nothing was written and the server keeps answering.
    latest = await client.get(f"{API}/datapoints/latest", headers=admin_headers)
    assert latest.status_code == 200
    assert await json_of(latest) == []


async def test_large_body_under_limit_is_accepted(client: Any, admin_headers: dict[str, str]) -> None:
    # A full MAX_BATCH batch with timestamps is about 1.2 MB: bodies of that size must pass.
    body = {"content": "big body", "pad": "a" * (3 * 1024 * 1024 // 2)}
    resp = await client.post(f"{API}/logging", json=body, headers=admin_headers)
    assert resp.status_code == 201


# ==================================================================== §1 / §2.3 JSON always


async def test_errors_are_always_json(client: Any, admin_headers: dict[str, str]) -> None:
    cases = [
        (await client.get(f"{API}/events"), 401),
        (await client.get(f"{API}/events", headers={"Authorization": "Bearer not.a.jwt"}), 401),
        (await client.get(f"{API}/events/{uuid.uuid4()}", headers=admin_headers), 404),
        (await client.get("/nowhere"), 404),
        (await client.delete(f"{API}/events", headers=admin_headers), 405),
        (await client.post(f"{API}/events", json={"name": ""}, headers=admin_headers), 422),
        (await client.get(f"{API}/events?page=0", headers=admin_headers), 422),
        (await client.post(f"{API}/events", data="x=1",
                           headers={**admin_headers, "Content-Type": "text/plain"}), 415),
        (await client.post(f"{API}/auth/login", json={"email": "nobody@lab.local", "password": "x"}), 401),
    ]
    for resp, status in cases:
        assert resp.status_code == status
        body = await json_of(resp)
        assert "detail" in body
        if status != 422:
            assert isinstance(body["detail"], str) and body["detail"]


async def test_successes_are_json(client: Any, admin_headers: dict[str, str]) -> None:
    for path in ("/health", f"{API}/events", f"{API}/datapoints/latest", f"{API}/auth/me"):
        resp = await client.get(path, headers=admin_headers)
        assert resp.status_code == 200
        await json_of(resp)


# ==================================================================== data stored verbatim


SQLISH = [
    "Robert'); DROP TABLE events;--",
    "' OR '1'='1",
    '"; DELETE FROM users WHERE "1"="1',
    "100% _match_ \\ backslash",
    "x' UNION SELECT password_hash FROM users --",
]


async def test_sql_looking_strings_are_stored_verbatim(client: Any, admin_headers: dict[str, str]) -> None:
    event_ids = []
    for i, text in enumerate(SQLISH):
        event_ids.append(await create_event(client, admin_headers, text, unit=f"{text} unit{i}"))
    for event, text in zip(event_ids, SQLISH, strict=True):
        got = await json_of(await client.get(f"{API}/events/{event}", headers=admin_headers))
        assert got["name"] == text
        assert got["unit"].startswith(text)

    for text in SQLISH:
        resp = await client.post(f"{API}/logging", json={"content": text}, headers=admin_headers)
        assert resp.status_code == 201
        log_id = (await json_of(resp))["public_id"]
        got = await json_of(await client.get(f"{API}/logging/{log_id}", headers=admin_headers))
        assert got["content"] == text

    exp = await create_experiment(client, admin_headers, SQLISH[0])
    got = await json_of(await client.get(f"{API}/experiments/{exp}", headers=admin_headers))
    assert got["name"] == SQLISH[0]

    # The tables are intact: every event is listed and the admin still logs in.
    page = await json_of(await client.get(f"{API}/events?page_size=100", headers=admin_headers))
    assert sorted(e["name"] for e in page["data"]) == sorted(SQLISH)
    assert page["total"] == len(SQLISH)
    await login(client, ADMIN_EMAIL, "admin123")


async def test_sql_looking_ids_and_filters_match_nothing(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers)
    resp = await client.post(f"{API}/datapoints", json={"event_public_id": event, "value": 3},
                             headers=admin_headers)
    assert resp.status_code == 201

    resp = await client.get(f"{API}/events/%27%20OR%20%271%27%3D%271", headers=admin_headers)
    assert resp.status_code == 404
    assert await json_of(resp) == {"detail": "Event '' OR '1'='1' not found."}

    resp = await client.get(f"{API}/datapoints", query_string={"event_public_id": "' OR 1=1 --"},
                            headers=admin_headers)
    assert resp.status_code == 200
    page = await json_of(resp)
    assert page["total"] == 0
    assert page["data"] == []

    resp = await client.post(f"{API}/datapoints", json={"event_public_id": "' OR 1=1 --", "value": 1},
                             headers=admin_headers)
    assert resp.status_code == 404


# ==================================================================== non-Latin-1 text


UNICODE_NAMES = ["Temperatur 🌡️ Reaktor", "温度传感器", "Δp Kammer – ½ bar", "🔥🔥🔥", "центрифуга №2"]


async def test_non_latin1_names_roundtrip(client: Any, admin_headers: dict[str, str]) -> None:
    ids = [await create_event(client, admin_headers, name, unit="m³/h µS ℃") for name in UNICODE_NAMES]
    for event, name in zip(ids, UNICODE_NAMES, strict=True):
        got = await json_of(await client.get(f"{API}/events/{event}", headers=admin_headers))
        assert got["name"] == name
        assert got["unit"] == "m³/h µS ℃"
    page = await json_of(await client.get(f"{API}/events", headers=admin_headers))
    assert [e["name"] for e in page["data"]] == UNICODE_NAMES

    exp = await create_experiment(client, admin_headers, "実験 🚀 Lauf")
    got = await json_of(await client.get(f"{API}/experiments/{exp}", headers=admin_headers))
    assert got["name"] == "実験 🚀 Lauf"
    resp = await client.get(f"{API}/experiments/{exp}/export/csv", headers=admin_headers)
    assert resp.status_code == 200

    resp = await client.post(f"{API}/logging", json={"content": "Ventil geöffnet ✅ — 阀门已打开"},
                             headers=admin_headers)
    assert resp.status_code == 201
    log_id = (await json_of(resp))["public_id"]
    got = await json_of(await client.get(f"{API}/logging/{log_id}", headers=admin_headers))
    assert got["content"] == "Ventil geöffnet ✅ — 阀门已打开"


async def test_non_latin1_user_roundtrip(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers, email="jürgen.研究@labor.local", username="研究者👩‍🔬")
    me = await json_of(await client.get(f"{API}/auth/me", headers=user["headers"]))
    assert me["username"] == "研究者👩‍🔬"
    assert me["email"] == "jürgen.研究@labor.local"
    assert me["public_id"] == user["public_id"]


async def test_non_latin1_unknown_id_is_404(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.get(f"{API}/events/温度", headers=admin_headers)
    assert resp.status_code == 404
    assert await json_of(resp) == {"detail": "Event '温度' not found."}


# ==================================================================== §2.6 CORS


def preflight_headers(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/events", "POST"),
        ("/api/v1/events/", "GET"),
        ("/api/v1/events/3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23", "PUT"),
        ("/api/v1/events/3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23", "DELETE"),
        ("/api/v1/experiments/3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23/stop", "PUT"),
        ("/api/v1/auth/login", "POST"),
        ("/api/v1/datapoints/batch", "POST"),
    ],
)
async def test_preflight_from_allowed_origin(client: Any, path: str, method: str) -> None:
    resp = await client.options(path, headers=preflight_headers(ALLOWED_ORIGIN, method))
    assert resp.status_code in (200, 204)
    assert resp.headers.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert resp.headers.get("Access-Control-Allow-Credentials") == "true"
    methods = {m.strip().upper() for m in resp.headers.get("Access-Control-Allow-Methods", "").split(",")}
    assert method in methods
    allowed_headers = resp.headers.get("Access-Control-Allow-Headers", "").lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers


async def test_other_default_origin_is_allowed(client: Any) -> None:
    resp = await client.options(f"{API}/events", headers=preflight_headers("http://localhost:3000"))
    assert resp.status_code in (200, 204)
    assert resp.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000"


async def test_actual_request_from_allowed_origin(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.get(f"{API}/events", headers={**admin_headers, "Origin": ALLOWED_ORIGIN})
    assert resp.status_code == 200
    assert resp.headers.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert resp.headers.get("Access-Control-Allow-Credentials") == "true"
    exposed = {h.strip().lower() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"content-disposition", "retry-after", "x-request-id"}


async def test_error_response_carries_cors_headers(client: Any) -> None:
    # The browser must be able to read a 401 to log the user out (§7.2).
    resp = await client.get(f"{API}/auth/me", headers={"Origin": ALLOWED_ORIGIN})
    assert resp.status_code == 401
    assert resp.headers.get("Access-Control-Allow-Origin") == ALLOWED_ORIGIN


@pytest.mark.parametrize(
    "origin", [EVIL_ORIGIN, "http://localhost:5173.evil.example", "http://localhost:5174", "null"]
)
async def test_disallowed_origin_gets_no_acao(
    client: Any, admin_headers: dict[str, str], origin: str
) -> None:
    resp = await client.options(f"{API}/events", headers=preflight_headers(origin))
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.get(f"{API}/events", headers={**admin_headers, "Origin": origin})
    assert resp.status_code == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


@pytest.fixture
async def custom_cors_client(database_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    settings = make_settings(database_url, tmp_path, CORS_ORIGINS='["https://lab.example.org"]')
    async with open_app(settings) as app:
        yield app.test_client()


async def test_cors_origins_setting_is_effective(custom_cors_client: Any) -> None:
    client = custom_cors_client
    resp = await client.options(f"{API}/events", headers=preflight_headers("https://lab.example.org"))
    assert resp.status_code in (200, 204)
    assert resp.headers.get("Access-Control-Allow-Origin") == "https://lab.example.org"
    resp = await client.options(f"{API}/events", headers=preflight_headers(ALLOWED_ORIGIN))
    assert "Access-Control-Allow-Origin" not in resp.headers


# ==================================================================== §4.6 health, OpenAPI, docs


async def test_health(client: Any) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200
    body = await json_of(resp)
    assert body["status"] == "healthy"
    assert body["database"] == "ok"
    assert isinstance(body["version"], str) and body["version"]


async def test_health_ignores_bad_credentials(client: Any) -> None:
    resp = await client.get("/health", headers={"Authorization": "Bearer garbage"})
    assert resp.status_code == 200
    assert (await json_of(resp))["status"] == "healthy"


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path).rstrip("/") or "/"


EXPECTED_OPERATIONS = {
    "/api/v1/auth/login": {"post"},
    "/api/v1/auth/logout": {"post"},
    "/api/v1/auth/me": {"get"},
    "/api/v1/users": {"get", "post"},
    "/api/v1/users/{}": {"get", "put", "delete"},
    "/api/v1/events": {"get", "post"},
    "/api/v1/events/{}": {"get", "put", "delete"},
    "/api/v1/experiments": {"get", "post"},
    "/api/v1/experiments/{}": {"get", "put", "delete"},
    "/api/v1/experiments/{}/stop": {"put"},
    "/api/v1/experiments/{}/export/csv": {"get"},
    "/api/v1/datapoints": {"get", "post"},
    "/api/v1/datapoints/batch": {"post"},
    "/api/v1/datapoints/latest": {"get"},
    "/api/v1/datapoints/{}": {"get", "delete"},
    "/api/v1/logging": {"get", "post"},
    "/api/v1/logging/{}": {"get", "put", "delete"},
    "/health": {"get"},
}


async def openapi_paths(client: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    doc = await json_of(resp)
    assert isinstance(doc.get("openapi"), str) and doc["openapi"].startswith("3.")
    assert isinstance(doc.get("info"), dict) and "title" in doc["info"] and "version" in doc["info"]
    paths: dict[str, dict[str, Any]] = {}
    for raw, ops in doc["paths"].items():
        paths.setdefault(_normalise(raw), {}).update(ops)
    return doc, paths


async def test_openapi_lists_every_rest_route(client: Any) -> None:
    _, paths = await openapi_paths(client)
    for path, methods in EXPECTED_OPERATIONS.items():
        assert path in paths, f"{path} missing from /openapi.json"
        assert methods <= set(paths[path]), (path, sorted(paths[path]))


async def test_openapi_describes_parameters_bodies_and_errors(client: Any) -> None:
    _, paths = await openapi_paths(client)
    events_get = paths["/api/v1/events"]["get"]
    names = {p.get("name") for p in events_get.get("parameters", []) if isinstance(p, dict)}
    assert {"page", "page_size"} <= names
    assert "200" in events_get["responses"]

    events_post = paths["/api/v1/events"]["post"]
    assert "requestBody" in events_post
    assert {"201", "401", "409", "422"} <= set(events_post["responses"])

    item = paths["/api/v1/events/{}"]["get"]
    assert {"200", "404"} <= set(item["responses"])

    login_op = paths["/api/v1/auth/login"]["post"]
    assert "requestBody" in login_op
    assert {"200", "401", "422"} <= set(login_op["responses"])


async def test_openapi_is_public(client: Any) -> None:
    resp = await client.get("/openapi.json", headers={"Authorization": "Bearer garbage"})
    assert resp.status_code == 200


async def test_docs_is_html(client: Any) -> None:
    resp = await client.get("/docs")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    html = await resp.get_data(as_text=True)
    assert "<html" in html.lower()
    # Built from the OpenAPI document: either it loads /openapi.json or it embeds the document.
    assert "openapi.json" in html or "/api/v1/events" in html


async def test_bearer_helper_is_case_insensitive_scheme(client: Any, admin_token: str) -> None:
    # §3.2: the scheme is matched case-insensitively.
    resp = await client.get(f"{API}/auth/me", headers={"Authorization": f"bearer {admin_token}"})
    assert resp.status_code == 200
    resp = await client.get(f"{API}/auth/me", headers=bearer(admin_token))
    assert resp.status_code == 200
