"""Log entries (contract §4.5, alias ``/api/v1/logs``, with the conventions of §1 and §2).

Every test runs against SQLite and PostgreSQL (the parametrized ``database_url`` fixture).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import create_user

H = dict[str, str]
LOGGING = "/api/v1/logging"
LOGS = "/api/v1/logs"
BASES = [LOGGING, LOGS]
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")
KEYS = {"public_id", "content", "logging_type", "status_type", "user_public_id", "created_on"}
UNKNOWN = "3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23"  # a well-formed UUID4 that is never issued
MALFORMED = {"detail": [{"loc": ["body"], "msg": "Malformed JSON body.", "type": "json_invalid"}]}


def is_public_id(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return str(parsed) == value and parsed.version == 4


async def body(resp: Any) -> Any:
    return await resp.get_json()


async def me(client: Any, headers: H) -> str:
    resp = await client.get("/api/v1/auth/me", headers=headers)
    assert resp.status_code == 200
    public_id: str = (await body(resp))["public_id"]
    return public_id


async def create_log(
    client: Any, headers: H, content: str = "hello", base: str = LOGGING, **fields: Any
) -> str:
    resp = await client.post(base, json={"content": content, **fields}, headers=headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    public_id: str = (await body(resp))["public_id"]
    return public_id


async def get_log(client: Any, headers: H, public_id: str, base: str = LOGGING) -> dict[str, Any]:
    resp = await client.get(f"{base}/{public_id}", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    data: dict[str, Any] = await body(resp)
    return data


async def list_logs(client: Any, headers: H, query: str = "", base: str = LOGGING) -> dict[str, Any]:
    resp = await client.get(f"{base}?{query}" if query else base, headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    data: dict[str, Any] = await body(resp)
    return data


def assert_422(data: Any, field: str | None = None) -> list[dict[str, Any]]:
    assert isinstance(data, dict), data
    detail = data["detail"]
    assert isinstance(detail, list) and detail, data
    for item in detail:
        assert isinstance(item["loc"], list), item
        assert isinstance(item["msg"], str) and isinstance(item["type"], str), item
    if field is not None:
        assert any(field in item["loc"] for item in detail), detail
    return detail


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("POST", ""), ("GET", "/x"), ("PUT", "/x"), ("DELETE", "/x")],
)
async def test_requires_token(client: Any, base: str, method: str, suffix: str) -> None:
    kwargs: dict[str, Any] = {"json": {"content": "x"}} if method in ("POST", "PUT") else {}
    resp = await client.open(f"{base}{suffix}", method=method, **kwargs)
    assert resp.status_code == 401
    assert (await body(resp)) == {"detail": "Authentication required."}
    assert resp.headers.get("WWW-Authenticate", "").lower().startswith("bearer")


# ---------------------------------------------------------------- create


@pytest.mark.parametrize("base", BASES)
async def test_create_defaults(client: Any, admin_headers: H, base: str) -> None:
    admin_id = await me(client, admin_headers)
    before = datetime.now(UTC)
    resp = await client.post(base, json={"content": "Controller started – sensor polling active"},
                             headers=admin_headers)
    after = datetime.now(UTC)
    assert resp.status_code == 201
    data = await body(resp)
    assert data["status"] == "success"
    assert data["message"] == "Log entry successfully created."
    assert is_public_id(data["public_id"])

    entry = await get_log(client, admin_headers, data["public_id"], base)
    assert set(entry) >= KEYS
    assert entry["public_id"] == data["public_id"]
    assert entry["content"] == "Controller started – sensor polling active"
    assert entry["logging_type"] == "info"
    assert entry["status_type"] == "unread"
    assert entry["user_public_id"] == admin_id
    assert TS_RE.match(entry["created_on"]), entry["created_on"]
    created = datetime.fromisoformat(entry["created_on"])
    assert before - timedelta(seconds=5) <= created <= after + timedelta(seconds=5)
    assert "id" not in entry and "user_id" not in entry


@pytest.mark.parametrize("logging_type", ["info", "warning", "error"])
async def test_create_logging_types(client: Any, admin_headers: H, logging_type: str) -> None:
    public_id = await create_log(client, admin_headers, "Controller shutting down", logging_type=logging_type)
    entry = await get_log(client, admin_headers, public_id)
    assert entry["logging_type"] == logging_type
    assert entry["status_type"] == "unread"


@pytest.mark.parametrize("bad", ["debug", "INFO", "Warning", "", "critical", 1, True, ["info"]])
async def test_create_invalid_logging_type(client: Any, admin_headers: H, bad: Any) -> None:
    resp = await client.post(LOGGING, json={"content": "x", "logging_type": bad}, headers=admin_headers)
    assert resp.status_code == 422, (bad, await resp.get_data(as_text=True))
    assert_422(await body(resp), "logging_type")
    assert (await list_logs(client, admin_headers))["total"] == 0


@pytest.mark.parametrize("content", ["a", "x" * 500, "€" * 500, "😀" * 500, "line1\nline2"])
async def test_create_content_bounds_ok(client: Any, admin_headers: H, content: str) -> None:
    public_id = await create_log(client, admin_headers, content)
    assert (await get_log(client, admin_headers, public_id))["content"] == content


@pytest.mark.parametrize("content", ["", "x" * 501, "€" * 501, None, 5, ["x"], {"a": "b"}])
async def test_create_content_invalid(client: Any, admin_headers: H, content: Any) -> None:
    payload: dict[str, Any] = {"logging_type": "info"}
    if content is not None:
        payload["content"] = content
    resp = await client.post(LOGGING, json=payload, headers=admin_headers)
    assert resp.status_code == 422, await resp.get_data(as_text=True)
    assert_422(await body(resp), "content")
    assert (await list_logs(client, admin_headers))["total"] == 0


async def test_create_ignores_unknown_fields(client: Any, admin_headers: H) -> None:
    public_id = await create_log(client, admin_headers, "hi", colour="blue", id=99)
    entry = await get_log(client, admin_headers, public_id)
    assert entry["content"] == "hi"
    assert entry["status_type"] == "unread"


@pytest.mark.parametrize("payload", [[], ["content"], "content", 3])
async def test_create_body_not_an_object(client: Any, admin_headers: H, payload: Any) -> None:
    resp = await client.post(LOGGING, json=payload, headers=admin_headers)
    assert resp.status_code == 422
    assert_422(await body(resp))


@pytest.mark.parametrize("raw", [b'{"content": "x"', b'{"content": NaN}', b"nope"])
async def test_create_malformed_json(client: Any, admin_headers: H, raw: bytes) -> None:
    resp = await client.post(LOGGING, data=raw, headers={**admin_headers, "Content-Type": "application/json"})
    assert resp.status_code in (400, 422)
    assert (await body(resp)) == MALFORMED


async def test_create_wrong_content_type_is_415(client: Any, admin_headers: H) -> None:
    resp = await client.post(
        LOGGING, data=b'{"content": "x"}', headers={**admin_headers, "Content-Type": "text/plain"}
    )
    assert resp.status_code == 415
    assert (await body(resp)) == {"detail": "Content-Type must be application/json."}


async def test_author_is_the_caller(client: Any, admin_headers: H) -> None:
    user = await create_user(client, admin_headers)
    admin_id = await me(client, admin_headers)
    mine = await create_log(client, user["headers"], "from user")
    theirs = await create_log(client, admin_headers, "from admin")
    assert (await get_log(client, admin_headers, mine))["user_public_id"] == user["public_id"]
    assert (await get_log(client, user["headers"], theirs))["user_public_id"] == admin_id
    # Any authenticated user may read, update and delete any entry.
    resp = await client.put(f"{LOGGING}/{theirs}", json={"status_type": "read"}, headers=user["headers"])
    assert resp.status_code == 200
    resp = await client.delete(f"{LOGGING}/{theirs}", headers=user["headers"])
    assert resp.status_code == 200


async def test_deleting_author_keeps_entry(client: Any, admin_headers: H) -> None:
    user = await create_user(client, admin_headers)
    public_id = await create_log(client, user["headers"], "kept")
    resp = await client.delete(f"/api/v1/users/{user['public_id']}", headers=admin_headers)
    assert resp.status_code == 200
    entry = await get_log(client, admin_headers, public_id)
    assert entry["content"] == "kept"
    assert entry["user_public_id"] is None


# ---------------------------------------------------------------- list


@pytest.mark.parametrize("base", BASES)
async def test_list_newest_first_and_paginated(client: Any, admin_headers: H, base: str) -> None:
    ids = [await create_log(client, admin_headers, f"entry {i}", base=base) for i in range(5)]
    page = await list_logs(client, admin_headers, base=base)
    assert (page["page"], page["page_size"], page["total"]) == (1, 25, 5)
    assert [row["public_id"] for row in page["data"]] == ids[::-1]
    assert [row["content"] for row in page["data"]] == [f"entry {i}" for i in range(4, -1, -1)]
    for row in page["data"]:
        assert set(row) >= KEYS
        assert TS_RE.match(row["created_on"])
    created = [datetime.fromisoformat(row["created_on"]) for row in page["data"]]
    assert created == sorted(created, reverse=True)

    page2 = await list_logs(client, admin_headers, "page=2&page_size=2", base=base)
    assert (page2["page"], page2["page_size"], page2["total"]) == (2, 2, 5)
    assert [row["public_id"] for row in page2["data"]] == [ids[2], ids[1]]
    beyond = await list_logs(client, admin_headers, "page=4&page_size=2", base=base)
    assert beyond["total"] == 5 and beyond["data"] == []

    # Frontend form: trailing slash with a query.
    slash = await client.get(f"{base}/?page=2&page_size=2", headers=admin_headers)
    assert slash.status_code == 200
    assert (await body(slash)) == page2


async def test_list_empty(client: Any, admin_headers: H) -> None:
    page = await list_logs(client, admin_headers)
    assert page["total"] == 0 and page["data"] == []


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("page=0", ["query", "page"]),
        ("page=x", ["query", "page"]),
        ("page_size=0", ["query", "page_size"]),
        ("page_size=1001", ["query", "page_size"]),
    ],
)
async def test_list_bad_pagination(client: Any, admin_headers: H, query: str, loc: list[str]) -> None:
    resp = await client.get(f"{LOGGING}?{query}", headers=admin_headers)
    assert resp.status_code == 422
    assert [item["loc"] for item in assert_422(await body(resp))] == [loc]


async def test_aliases_share_data(client: Any, admin_headers: H) -> None:
    a = await create_log(client, admin_headers, "via logging", base=LOGGING)
    b = await create_log(client, admin_headers, "via logs", base=LOGS)
    one = await list_logs(client, admin_headers, base=LOGGING)
    two = await list_logs(client, admin_headers, base=LOGS)
    assert one == two
    assert [row["public_id"] for row in one["data"]] == [b, a]
    assert await get_log(client, admin_headers, a, LOGS) == await get_log(client, admin_headers, a, LOGGING)


# ---------------------------------------------------------------- update


@pytest.mark.parametrize("base", BASES)
async def test_update_status_type(client: Any, admin_headers: H, base: str) -> None:
    public_id = await create_log(client, admin_headers, "note", logging_type="warning")
    original = await get_log(client, admin_headers, public_id)

    resp = await client.put(f"{base}/{public_id}", json={"status_type": "read"}, headers=admin_headers)
    assert resp.status_code == 200
    assert (await body(resp)) == {"status": "success", "message": "LogEntry successfully updated."}
    entry = await get_log(client, admin_headers, public_id)
    assert entry == {**original, "status_type": "read"}

    resp = await client.put(f"{base}/{public_id}/", json={"status_type": "unread"}, headers=admin_headers)
    assert resp.status_code == 200
    assert (await get_log(client, admin_headers, public_id)) == original


async def test_update_content_and_omitted_fields(client: Any, admin_headers: H) -> None:
    public_id = await create_log(client, admin_headers, "before", logging_type="error")
    original = await get_log(client, admin_headers, public_id)

    resp = await client.put(f"{LOGGING}/{public_id}", json={"content": "after"}, headers=admin_headers)
    assert resp.status_code == 200
    entry = await get_log(client, admin_headers, public_id)
    assert entry == {**original, "content": "after"}

    # Omitted or null fields are left unchanged; unknown fields ignored.
    for payload in ({}, {"content": None, "status_type": None}, {"colour": "blue"}):
        resp = await client.put(f"{LOGGING}/{public_id}", json=payload, headers=admin_headers)
        assert resp.status_code == 200, payload
        assert (await get_log(client, admin_headers, public_id)) == entry

    resp = await client.put(
        f"{LOGGING}/{public_id}", json={"content": "y" * 500, "status_type": "read"}, headers=admin_headers
    )
    assert resp.status_code == 200
    entry = await get_log(client, admin_headers, public_id)
    assert entry == {**original, "content": "y" * 500, "status_type": "read"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"status_type": "done"}, "status_type"),
        ({"status_type": "READ"}, "status_type"),
        ({"status_type": ""}, "status_type"),
        ({"status_type": True}, "status_type"),
        ({"content": ""}, "content"),
        ({"content": "x" * 501}, "content"),
        ({"content": 12}, "content"),
        ({"content": "ok", "status_type": "archived"}, "status_type"),
    ],
)
async def test_update_invalid(client: Any, admin_headers: H, payload: dict[str, Any], field: str) -> None:
    public_id = await create_log(client, admin_headers, "unchanged")
    original = await get_log(client, admin_headers, public_id)
    resp = await client.put(f"{LOGGING}/{public_id}", json=payload, headers=admin_headers)
    assert resp.status_code == 422, await resp.get_data(as_text=True)
    assert_422(await body(resp), field)
    assert (await get_log(client, admin_headers, public_id)) == original


# ---------------------------------------------------------------- read, delete, 404


@pytest.mark.parametrize("base", BASES)
async def test_get_trailing_slash(client: Any, admin_headers: H, base: str) -> None:
    public_id = await create_log(client, admin_headers, "slash")
    plain = await client.get(f"{base}/{public_id}", headers=admin_headers)
    slash = await client.get(f"{base}/{public_id}/", headers=admin_headers)
    assert plain.status_code == slash.status_code == 200
    assert (await body(plain)) == (await body(slash))


@pytest.mark.parametrize("base", BASES)
async def test_create_trailing_slash(client: Any, admin_headers: H, base: str) -> None:
    resp = await client.post(f"{base}/", json={"content": "slash"}, headers=admin_headers)
    assert resp.status_code == 201
    data = await body(resp)
    assert data["message"] == "Log entry successfully created."
    assert (await get_log(client, admin_headers, data["public_id"]))["content"] == "slash"


@pytest.mark.parametrize("base", BASES)
async def test_delete(client: Any, admin_headers: H, base: str) -> None:
    keep = await create_log(client, admin_headers, "keep")
    gone = await create_log(client, admin_headers, "gone")
    resp = await client.delete(f"{base}/{gone}", headers=admin_headers)
    assert resp.status_code == 200
    assert (await body(resp)) == {"status": "success", "message": "LogEntry successfully deleted."}

    for method in ("GET", "DELETE", "PUT"):
        resp = await client.open(f"{base}/{gone}", method=method, json={"status_type": "read"},
                                 headers=admin_headers)
        assert resp.status_code == 404, method
        assert (await body(resp)) == {"detail": f"LogEntry '{gone}' not found."}

    page = await list_logs(client, admin_headers)
    assert page["total"] == 1
    assert [row["public_id"] for row in page["data"]] == [keep]

    resp = await client.delete(f"{base}/{keep}/", headers=admin_headers)
    assert resp.status_code == 200
    assert (await list_logs(client, admin_headers))["total"] == 0


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("unknown", [UNKNOWN, UNKNOWN.upper(), "not-a-uuid", "42"])
async def test_unknown_entry_is_404(
    client: Any, admin_headers: H, base: str, method: str, unknown: str
) -> None:
    kwargs: dict[str, Any] = {"json": {"status_type": "read"}} if method == "PUT" else {}
    resp = await client.open(f"{base}/{unknown}", method=method, headers=admin_headers, **kwargs)
    assert resp.status_code == 404
    assert (await body(resp)) == {"detail": f"LogEntry '{unknown}' not found."}
    slash = await client.open(f"{base}/{unknown}/", method=method, headers=admin_headers, **kwargs)
    assert slash.status_code == 404
    assert (await body(slash)) == {"detail": f"LogEntry '{unknown}' not found."}


async def test_put_unknown_with_invalid_body(client: Any, admin_headers: H) -> None:
    """An unknown id is 404 or 422 depending on check order; never 500 and never 2xx."""
    resp = await client.put(f"{LOGGING}/{UNKNOWN}", json={"status_type": "nope"}, headers=admin_headers)
    assert resp.status_code in (404, 422)


async def test_wrong_method_is_405(client: Any, admin_headers: H) -> None:
    resp = await client.open(LOGGING, method="DELETE", headers=admin_headers)
    assert resp.status_code == 405
    assert (await body(resp)) == {"detail": "Method Not Allowed"}
    assert resp.headers.get("Allow")


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_lone_surrogate_content_is_not_500(client: Any, admin_headers: H, method: str) -> None:
    """JSON allows the escape "\\ud800", but it is no valid text: a client mistake, never a 500 (§1)."""
    raw = b'{"content": "bad \\ud800 text"}'
    headers = {**admin_headers, "Content-Type": "application/json"}
    if method == "POST":
        resp = await client.post(LOGGING, data=raw, headers=headers)
        assert resp.status_code in (201, 400, 422), (resp.status_code, await resp.get_data(as_text=True))
    else:
        public_id = await create_log(client, admin_headers, "fine")
        resp = await client.put(f"{LOGGING}/{public_id}", data=raw, headers=headers)
        assert resp.status_code in (200, 400, 422), (resp.status_code, await resp.get_data(as_text=True))
        assert (await get_log(client, admin_headers, public_id))["content"] == "fine"
