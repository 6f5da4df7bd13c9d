"""Users: contract §4.1 (admin-only management, self-service, conflicts, pagination, deletion)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import trio
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, create_event, create_user, login

USERS = "/api/v1/users"
ME = "/api/v1/auth/me"
LOGIN = "/api/v1/auth/login"

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")
FORBIDDEN = "Admin privileges required."
CONFLICT = "User already exists."
USER_KEYS = {"public_id", "email", "username", "admin", "registered_on"}


# ---------------------------------------------------------------- helpers


async def expect_detail(resp: Any, status: int, detail: str) -> dict[str, Any]:
    text = await resp.get_data(as_text=True)
    assert resp.status_code == status, text
    data = await resp.get_json()
    assert isinstance(data, dict), text
    assert data.get("detail") == detail, text
    return data


async def expect_422(resp: Any, *locs: list[Any]) -> list[dict[str, Any]]:
    text = await resp.get_data(as_text=True)
    assert resp.status_code == 422, text
    data = await resp.get_json()
    detail = data["detail"]
    assert isinstance(detail, list), text
    assert detail, text
    for item in detail:
        assert isinstance(item["loc"], list), item
        assert isinstance(item["msg"], str), item
        assert isinstance(item["type"], str), item
    seen = [item["loc"] for item in detail]
    for loc in locs:
        assert list(loc) in seen, f"expected loc {loc} in {seen}"
    return detail


async def expect_ok(resp: Any, status: int, message: str) -> dict[str, Any]:
    text = await resp.get_data(as_text=True)
    assert resp.status_code == status, text
    data = await resp.get_json()
    assert data["status"] == "success", text
    assert data["message"] == message, text
    return data


def assert_password_not_echoed(detail: list[dict[str, Any]], text: str, password: str) -> None:
    if password:
        assert password not in text, text
    for item in detail:
        if item["loc"][-1:] == ["password"]:
            assert item.get("input") != password, item


def user_body(**overrides: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    body: dict[str, Any] = {
        "email": f"u{suffix}@lab.local",
        "username": f"u{suffix}",
        "password": "password123",
    }
    body.update(overrides)
    return body


async def get_user(client: Any, headers: dict[str, str], public_id: str) -> dict[str, Any]:
    resp = await client.get(f"{USERS}/{public_id}", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    data: dict[str, Any] = await resp.get_json()
    return data


def assert_user_shape(user: dict[str, Any]) -> None:
    assert set(user) >= USER_KEYS, user
    for forbidden in ("password", "password_hash", "hash", "id"):
        assert forbidden not in user, user
    parsed = uuid.UUID(user["public_id"])
    assert str(parsed) == user["public_id"]
    assert parsed.version == 4
    assert isinstance(user["email"], str)
    assert isinstance(user["username"], str)
    assert isinstance(user["admin"], bool)
    assert TIMESTAMP_RE.match(user["registered_on"]), user["registered_on"]


async def my_id(client: Any, headers: dict[str, str]) -> str:
    public_id: str = (await (await client.get(ME, headers=headers)).get_json())["public_id"]
    return public_id


# ---------------------------------------------------------------- create


async def test_create_user(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.post(
        USERS,
        json={"email": "Alice@Example.COM", "username": "alice", "password": "alice-password"},
        headers=admin_headers,
    )
    body = await expect_ok(resp, 201, "User successfully created.")
    public_id = body["public_id"]
    assert str(uuid.UUID(public_id)) == public_id
    user = await get_user(client, admin_headers, public_id)
    assert_user_shape(user)
    assert user["public_id"] == public_id
    assert user["email"] == "Alice@example.com"
    assert user["username"] == "alice"
    assert user["admin"] is False
    token = await login(client, "Alice@example.com", "alice-password")
    assert (await client.get(ME, headers=bearer(token))).status_code == 200
    assert "alice-password" not in await resp.get_data(as_text=True)


async def test_create_admin_user(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers, admin=True)
    assert (await get_user(client, admin_headers, user["public_id"]))["admin"] is True
    resp = await client.get(USERS, headers=user["headers"])
    assert resp.status_code == 200


async def test_create_with_trailing_slash(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.post(USERS + "/", json=user_body(), headers=admin_headers)
    body = await expect_ok(resp, 201, "User successfully created.")
    resp = await client.get(f"{USERS}/{body['public_id']}/", headers=admin_headers)
    assert resp.status_code == 200


@pytest.mark.parametrize("email", ["lab@pi.local", "ops@box.lan", "root@localhost", "x@y"])
async def test_create_permissive_email(client: Any, admin_headers: dict[str, str], email: str) -> None:
    resp = await client.post(USERS, json=user_body(email=email), headers=admin_headers)
    body = await expect_ok(resp, 201, "User successfully created.")
    assert (await get_user(client, admin_headers, body["public_id"]))["email"] == email


async def test_create_email_255_chars(client: Any, admin_headers: dict[str, str]) -> None:
    domain = "@lab.local"
    email = "a" * (255 - len(domain)) + domain
    assert len(email) == 255
    resp = await client.post(USERS, json=user_body(email=email), headers=admin_headers)
    await expect_ok(resp, 201, "User successfully created.")
    resp = await client.post(USERS, json=user_body(email="b" + email), headers=admin_headers)
    await expect_422(resp, ["body", "email"])


@pytest.mark.parametrize(
    "email",
    ["plain", "a@@b", "a@b@c", "@lab.local", "user@", "us er@lab.local", "user@lab .local", " a@b.c", 7],
)
async def test_create_bad_email(client: Any, admin_headers: dict[str, str], email: Any) -> None:
    resp = await client.post(USERS, json=user_body(email=email), headers=admin_headers)
    await expect_422(resp, ["body", "email"])


@pytest.mark.parametrize("username", ["", "a", "x" * 51, 42])
async def test_create_bad_username(client: Any, admin_headers: dict[str, str], username: Any) -> None:
    resp = await client.post(USERS, json=user_body(username=username), headers=admin_headers)
    await expect_422(resp, ["body", "username"])


@pytest.mark.parametrize("username", ["ab", "y" * 50])
async def test_create_username_bounds_ok(client: Any, admin_headers: dict[str, str], username: str) -> None:
    resp = await client.post(USERS, json=user_body(username=username), headers=admin_headers)
    body = await expect_ok(resp, 201, "User successfully created.")
    assert (await get_user(client, admin_headers, body["public_id"]))["username"] == username


@pytest.mark.parametrize(
    "password",
    ["", "short12", "x" * 73, "é" * 37, "🔑" * 19],  # 0 chars, 7 chars, 73 bytes, 74 bytes, 76 bytes
)
async def test_create_bad_password_not_echoed(
    client: Any, admin_headers: dict[str, str], password: str
) -> None:
    resp = await client.post(USERS, json=user_body(password=password), headers=admin_headers)
    detail = await expect_422(resp, ["body", "password"])
    assert_password_not_echoed(detail, await resp.get_data(as_text=True), password)


@pytest.mark.parametrize("password", ["eight888", "p" * 72, "é" * 36, "🔑" * 18])
async def test_create_password_bounds_ok(client: Any, admin_headers: dict[str, str], password: str) -> None:
    body = user_body(password=password)
    resp = await client.post(USERS, json=body, headers=admin_headers)
    await expect_ok(resp, 201, "User successfully created.")
    token = await login(client, body["email"], password)
    assert (await client.get(ME, headers=bearer(token))).status_code == 200


async def test_create_password_not_echoed_when_other_field_bad(
    client: Any, admin_headers: dict[str, str]
) -> None:
    secret = "Very-Secret-Pass-42"
    resp = await client.post(USERS, json=user_body(email="broken", password=secret), headers=admin_headers)
    await expect_422(resp, ["body", "email"])
    assert secret not in await resp.get_data(as_text=True)


async def test_create_password_wrong_type(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.post(USERS, json=user_body(password=123456789), headers=admin_headers)
    detail = await expect_422(resp, ["body", "password"])
    for item in detail:
        if item["loc"] == ["body", "password"]:
            assert item.get("input") != 123456789


async def test_create_bad_admin_flag(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.post(USERS, json=user_body(admin="yes"), headers=admin_headers)
    await expect_422(resp, ["body", "admin"])


async def test_create_missing_fields(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.post(USERS, json={}, headers=admin_headers)
    await expect_422(resp, ["body", "email"], ["body", "username"], ["body", "password"])


async def test_create_not_an_object(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.post(USERS, json=["a"], headers=admin_headers)
    await expect_422(resp)


async def test_create_duplicate_email_after_domain_lowercasing(
    client: Any, admin_headers: dict[str, str]
) -> None:
    await create_user(client, admin_headers, email="Dup@Lab.Local")
    for email in ("Dup@Lab.Local", "Dup@lab.local", "Dup@LAB.LOCAL"):
        resp = await client.post(USERS, json=user_body(email=email), headers=admin_headers)
        await expect_detail(resp, 409, CONFLICT)
    resp = await client.post(USERS, json=user_body(email="admin@WebMACS.IO"), headers=admin_headers)
    await expect_detail(resp, 409, CONFLICT)
    # The local part is compared exactly: a different local part is a different address.
    resp = await client.post(USERS, json=user_body(email="dup@lab.local"), headers=admin_headers)
    await expect_ok(resp, 201, "User successfully created.")


async def test_create_duplicate_username(client: Any, admin_headers: dict[str, str]) -> None:
    await create_user(client, admin_headers, username="taken")
    resp = await client.post(USERS, json=user_body(username="taken"), headers=admin_headers)
    await expect_detail(resp, 409, CONFLICT)
    resp = await client.post(USERS, json=user_body(username="admin"), headers=admin_headers)
    await expect_detail(resp, 409, CONFLICT)


async def test_conflicting_create_does_not_write(client: Any, admin_headers: dict[str, str]) -> None:
    await create_user(client, admin_headers, username="solo")
    before = (await (await client.get(USERS, headers=admin_headers)).get_json())["total"]
    body = user_body(username="solo")
    resp = await client.post(USERS, json=body, headers=admin_headers)
    await expect_detail(resp, 409, CONFLICT)
    after = (await (await client.get(USERS, headers=admin_headers)).get_json())["total"]
    assert after == before
    resp = await client.post(LOGIN, json={"email": body["email"], "password": body["password"]})
    assert resp.status_code == 401


# ---------------------------------------------------------------- admin-only


async def test_non_admin_cannot_list_create_or_delete(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    other = await create_user(client, admin_headers)
    await expect_detail(await client.get(USERS, headers=user["headers"]), 403, FORBIDDEN)
    await expect_detail(await client.get(USERS + "/", headers=user["headers"]), 403, FORBIDDEN)
    body = user_body()
    await expect_detail(await client.post(USERS, json=body, headers=user["headers"]), 403, FORBIDDEN)
    resp = await client.post(LOGIN, json={"email": body["email"], "password": body["password"]})
    assert resp.status_code == 401  # nothing was created
    resp = await client.delete(f"{USERS}/{other['public_id']}", headers=user["headers"])
    await expect_detail(resp, 403, FORBIDDEN)
    await get_user(client, admin_headers, other["public_id"])  # still there
    resp = await client.delete(f"{USERS}/{user['public_id']}", headers=user["headers"])
    await expect_detail(resp, 403, FORBIDDEN)
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        resp = await client.delete(f"{USERS}/{unknown}", headers=user["headers"])
        await expect_detail(resp, 403, FORBIDDEN)


async def test_non_admin_create_invalid_body_is_403(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    resp = await client.post(USERS, json={"email": "bad"}, headers=user["headers"])
    await expect_detail(resp, 403, FORBIDDEN)


async def test_admin_rights_read_from_database(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    url = f"{USERS}/{user['public_id']}"
    await expect_detail(await client.get(USERS, headers=user["headers"]), 403, FORBIDDEN)
    await expect_ok(
        await client.put(url, json={"admin": True}, headers=admin_headers), 200, "User successfully updated."
    )
    # The same token now has admin rights.
    assert (await client.get(USERS, headers=user["headers"])).status_code == 200
    assert (await client.get(ME, headers=user["headers"])).status_code == 200
    await expect_ok(
        await client.put(url, json={"admin": False}, headers=admin_headers), 200, "User successfully updated."
    )
    await expect_detail(await client.get(USERS, headers=user["headers"]), 403, FORBIDDEN)


# ---------------------------------------------------------------- self-service and 403 before 404


async def test_self_get(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers, username="selfie")
    data = await get_user(client, user["headers"], user["public_id"])
    assert_user_shape(data)
    assert data["public_id"] == user["public_id"]
    assert data["username"] == "selfie"
    assert data["email"] == user["email"]
    assert data["admin"] is False


async def test_self_put(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    url = f"{USERS}/{user['public_id']}"
    new_email = f"Self{uuid.uuid4().hex[:6]}@Home.LAN"
    resp = await client.put(url, json={"username": "newname", "email": new_email}, headers=user["headers"])
    body = await expect_ok(resp, 200, "User successfully updated.")
    assert "public_id" not in body
    data = await get_user(client, user["headers"], user["public_id"])
    assert data["username"] == "newname"
    local, domain = new_email.split("@")
    assert data["email"] == f"{local}@{domain.lower()}"
    token = await login(client, data["email"], user["password"])
    assert (await client.get(ME, headers=bearer(token))).status_code == 200
    resp = await client.post(LOGIN, json={"email": user["email"], "password": user["password"]})
    assert resp.status_code == 401


async def test_non_admin_get_or_put_other_user_forbidden(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    other = await create_user(client, admin_headers, username=f"other{uuid.uuid4().hex[:6]}")
    admin_id = await my_id(client, admin_headers)
    for target in (other["public_id"], admin_id):
        await expect_detail(await client.get(f"{USERS}/{target}", headers=user["headers"]), 403, FORBIDDEN)
        resp = await client.put(f"{USERS}/{target}", json={"username": "hijack"}, headers=user["headers"])
        await expect_detail(resp, 403, FORBIDDEN)
        resp = await client.put(
            f"{USERS}/{target}", json={"password": "hijacked-pw"}, headers=user["headers"]
        )
        await expect_detail(resp, 403, FORBIDDEN)
    # Nothing changed.
    assert (await get_user(client, admin_headers, other["public_id"]))["username"] == other["username"]
    assert (await client.get(ME, headers=other["headers"])).status_code == 200
    await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.mark.parametrize("unknown", ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "1"])
async def test_non_admin_unknown_id_is_403_not_404(
    client: Any, admin_headers: dict[str, str], unknown: str
) -> None:
    user = await create_user(client, admin_headers)
    await expect_detail(await client.get(f"{USERS}/{unknown}", headers=user["headers"]), 403, FORBIDDEN)
    resp = await client.put(f"{USERS}/{unknown}", json={"username": "whoever"}, headers=user["headers"])
    await expect_detail(resp, 403, FORBIDDEN)


async def test_non_admin_cannot_change_own_admin_flag(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    url = f"{USERS}/{user['public_id']}"
    resp = await client.put(url, json={"admin": True, "username": "sneaky"}, headers=user["headers"])
    await expect_detail(resp, 403, FORBIDDEN)
    data = await get_user(client, user["headers"], user["public_id"])
    assert data["admin"] is False
    assert data["username"] == user["username"]  # the whole request was refused
    await expect_detail(await client.get(USERS, headers=user["headers"]), 403, FORBIDDEN)
    # Sending the current value is fine.
    resp = await client.put(url, json={"admin": False, "username": "honest"}, headers=user["headers"])
    await expect_ok(resp, 200, "User successfully updated.")
    data = await get_user(client, user["headers"], user["public_id"])
    assert data["admin"] is False
    assert data["username"] == "honest"


async def test_admin_can_update_other_user(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    url = f"{USERS}/{user['public_id']}"
    resp = await client.put(
        url, json={"username": "renamed", "email": "Moved@Pi.Local", "admin": True}, headers=admin_headers
    )
    await expect_ok(resp, 200, "User successfully updated.")
    data = await get_user(client, admin_headers, user["public_id"])
    assert data["username"] == "renamed"
    assert data["email"] == "Moved@pi.local"
    assert data["admin"] is True
    assert (
        data["registered_on"]
        == (await (await client.get(ME, headers=user["headers"])).get_json())["registered_on"]
    )


async def test_put_null_and_omitted_fields_unchanged(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers, admin=True)
    url = f"{USERS}/{user['public_id']}"
    before = await get_user(client, admin_headers, user["public_id"])
    resp = await client.put(
        url, json={"email": None, "username": None, "password": None, "admin": None}, headers=admin_headers
    )
    await expect_ok(resp, 200, "User successfully updated.")
    resp = await client.put(url, json={}, headers=admin_headers)
    await expect_ok(resp, 200, "User successfully updated.")
    resp = await client.put(url, json={"unknown_field": "ignored"}, headers=admin_headers)
    await expect_ok(resp, 200, "User successfully updated.")
    assert await get_user(client, admin_headers, user["public_id"]) == before
    await login(client, user["email"], user["password"])


async def test_update_to_own_current_values_is_not_conflict(
    client: Any, admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers, email="Same@Lab.Local")
    url = f"{USERS}/{user['public_id']}"
    resp = await client.put(
        url, json={"email": "Same@LAB.local", "username": user["username"]}, headers=user["headers"]
    )
    await expect_ok(resp, 200, "User successfully updated.")
    assert (await get_user(client, admin_headers, user["public_id"]))["email"] == "Same@lab.local"


async def test_update_conflicts(client: Any, admin_headers: dict[str, str]) -> None:
    first = await create_user(client, admin_headers, email="First@Lab.Local", username="first")
    second = await create_user(client, admin_headers)
    url = f"{USERS}/{second['public_id']}"
    for body in (
        {"email": "First@LAB.LOCAL"},
        {"email": "First@lab.local"},
        {"username": "first"},
        {"username": "admin"},
        {"email": ADMIN_EMAIL},
    ):
        await expect_detail(await client.put(url, json=body, headers=admin_headers), 409, CONFLICT)
        await expect_detail(await client.put(url, json=body, headers=second["headers"]), 409, CONFLICT)
    data = await get_user(client, admin_headers, second["public_id"])
    assert data["email"] == second["email"]
    assert data["username"] == second["username"]
    assert (await get_user(client, admin_headers, first["public_id"]))["username"] == "first"


async def test_update_validation(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    url = f"{USERS}/{user['public_id']}"
    await expect_422(await client.put(url, json={"email": "nope"}, headers=admin_headers), ["body", "email"])
    await expect_422(await client.put(url, json={"email": "a b@c"}, headers=admin_headers), ["body", "email"])
    await expect_422(
        await client.put(url, json={"username": "z"}, headers=admin_headers), ["body", "username"]
    )
    await expect_422(
        await client.put(url, json={"username": "z" * 51}, headers=admin_headers), ["body", "username"]
    )
    await expect_422(await client.put(url, json={"admin": "true"}, headers=admin_headers), ["body", "admin"])
    await expect_422(await client.put(url, json=[1, 2], headers=admin_headers))
    for password in ("seven77", "q" * 73, "é" * 37):
        resp = await client.put(url, json={"password": password}, headers=user["headers"])
        detail = await expect_422(resp, ["body", "password"])
        assert_password_not_echoed(detail, await resp.get_data(as_text=True), password)
    # Nothing changed and the token was not revoked by the failed password updates.
    assert (await client.get(ME, headers=user["headers"])).status_code == 200
    await login(client, user["email"], user["password"])


# ---------------------------------------------------------------- 404


@pytest.mark.parametrize(
    "unknown",
    [
        "00000000-0000-4000-8000-000000000000",
        "not-a-uuid",
        "1",
        "0" * 40,
        "00000000-0000-0000-0000-00000000000g",
    ],
)
async def test_unknown_user_404(client: Any, admin_headers: dict[str, str], unknown: str) -> None:
    detail = f"User '{unknown}' not found."
    await expect_detail(await client.get(f"{USERS}/{unknown}", headers=admin_headers), 404, detail)
    resp = await client.put(f"{USERS}/{unknown}", json={"username": "ghost"}, headers=admin_headers)
    await expect_detail(resp, 404, detail)
    await expect_detail(await client.delete(f"{USERS}/{unknown}", headers=admin_headers), 404, detail)


async def test_unknown_user_404_trailing_slash(client: Any, admin_headers: dict[str, str]) -> None:
    unknown = str(uuid.uuid4())
    resp = await client.get(f"{USERS}/{unknown}/", headers=admin_headers)
    await expect_detail(resp, 404, f"User '{unknown}' not found.")


# ---------------------------------------------------------------- delete


async def test_delete_user(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers, email="Gone@Lab.Local", username="gone")
    url = f"{USERS}/{user['public_id']}"
    body = await expect_ok(await client.delete(url, headers=admin_headers), 200, "User successfully deleted.")
    assert "public_id" not in body
    await expect_detail(
        await client.get(url, headers=admin_headers), 404, f"User '{user['public_id']}' not found."
    )
    await expect_detail(
        await client.delete(url, headers=admin_headers), 404, f"User '{user['public_id']}' not found."
    )
    resp = await client.get(ME, headers=user["headers"])
    await expect_detail(resp, 401, "User not found.")
    resp = await client.post(LOGIN, json={"email": "Gone@lab.local", "password": user["password"]})
    await expect_detail(resp, 401, "Invalid email or password.")
    # Email and username are free again.
    resp = await client.post(
        USERS, json=user_body(email="Gone@lab.local", username="gone"), headers=admin_headers
    )
    await expect_ok(resp, 201, "User successfully created.")


async def test_admin_may_delete_self(client: Any, admin_headers: dict[str, str]) -> None:
    """Unless they are the last admin: then nobody could manage users any more (as the CLI)."""
    admin_id = await my_id(client, admin_headers)
    resp = await client.delete(f"{USERS}/{admin_id}", headers=admin_headers)
    await expect_detail(resp, 409, "The last admin cannot be demoted or deleted.")
    await create_user(client, admin_headers, admin=True)
    resp = await client.delete(f"{USERS}/{admin_id}", headers=admin_headers)
    await expect_ok(resp, 200, "User successfully deleted.")
    await expect_detail(await client.get(USERS, headers=admin_headers), 401, "User not found.")


async def test_delete_keeps_events(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    event_id = await create_event(client, user["headers"])
    resp = await client.get(f"/api/v1/events/{event_id}", headers=admin_headers)
    assert resp.status_code == 200
    assert (await resp.get_json())["user_public_id"] == user["public_id"]
    resp = await client.delete(f"{USERS}/{user['public_id']}", headers=admin_headers)
    await expect_ok(resp, 200, "User successfully deleted.")
    resp = await client.get(f"/api/v1/events/{event_id}", headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    event = await resp.get_json()
    assert event["public_id"] == event_id
    assert event["user_public_id"] is None
    assert "user_public_id" in event


async def test_delete_keeps_datapoints_experiments_and_logs(
    client: Any, admin_headers: dict[str, str]
) -> None:
    user = await create_user(client, admin_headers)
    event_id = await create_event(client, user["headers"])
    resp = await client.post(
        "/api/v1/experiments", json={"name": f"exp-{uuid.uuid4().hex[:6]}"}, headers=user["headers"]
    )
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    experiment_id = (await resp.get_json())["public_id"]
    resp = await client.post(
        "/api/v1/datapoints", json={"event_public_id": event_id, "value": 1.5}, headers=user["headers"]
    )
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    datapoint_id = (await resp.get_json())["public_id"]
    resp = await client.post("/api/v1/logging", json={"content": "written by user"}, headers=user["headers"])
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    log_id = (await resp.get_json())["public_id"]

    resp = await client.delete(f"{USERS}/{user['public_id']}", headers=admin_headers)
    await expect_ok(resp, 200, "User successfully deleted.")

    resp = await client.get(f"/api/v1/experiments/{experiment_id}", headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert (await resp.get_json())["user_public_id"] is None
    resp = await client.get(f"/api/v1/logging/{log_id}", headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert (await resp.get_json())["user_public_id"] is None
    resp = await client.get(f"/api/v1/datapoints/{datapoint_id}", headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert (await resp.get_json())["experiment_public_id"] == experiment_id


# ---------------------------------------------------------------- list and pagination


async def test_list_default_page(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.get(USERS, headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    page = await resp.get_json()
    assert page["page"] == 1
    assert page["page_size"] == 25
    assert page["total"] == 1
    assert len(page["data"]) == 1
    admin = page["data"][0]
    assert_user_shape(admin)
    assert admin["email"] == ADMIN_EMAIL
    assert admin["admin"] is True
    assert "$2" not in await resp.get_data(as_text=True)
    resp = await client.get(USERS + "/", headers=admin_headers)
    assert resp.status_code == 200
    assert await resp.get_json() == page


async def test_list_order_and_pages(client: Any, admin_headers: dict[str, str]) -> None:
    created = [await create_user(client, admin_headers, username=f"order{i}") for i in range(4)]
    expected = ["admin", *(u["username"] for u in created)]

    resp = await client.get(USERS, headers=admin_headers, query_string={"page_size": "1000"})
    page = await resp.get_json()
    assert page["page_size"] == 1000
    assert page["total"] == 5
    assert [u["username"] for u in page["data"]] == expected
    stamps = [u["registered_on"] for u in page["data"]]
    assert stamps == sorted(stamps)
    for user in page["data"]:
        assert_user_shape(user)

    seen: list[str] = []
    for number in (1, 2, 3):
        resp = await client.get(
            USERS, headers=admin_headers, query_string={"page": str(number), "page_size": "2"}
        )
        assert resp.status_code == 200
        page = await resp.get_json()
        assert page["page"] == number
        assert page["page_size"] == 2
        assert page["total"] == 5
        seen.extend(u["username"] for u in page["data"])
    assert seen == expected

    resp = await client.get(USERS, headers=admin_headers, query_string={"page": "4", "page_size": "2"})
    assert resp.status_code == 200
    page = await resp.get_json()
    assert page["data"] == []
    assert page["total"] == 5
    resp = await client.get(USERS, headers=admin_headers, query_string={"page": "999999"})
    assert resp.status_code == 200
    assert (await resp.get_json())["data"] == []


async def test_list_total_after_delete(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    assert (await (await client.get(USERS, headers=admin_headers)).get_json())["total"] == 2
    await client.delete(f"{USERS}/{user['public_id']}", headers=admin_headers)
    page = await (await client.get(USERS, headers=admin_headers)).get_json()
    assert page["total"] == 1
    assert [u["public_id"] for u in page["data"]] == [await my_id(client, admin_headers)]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("page", "0"),
        ("page", "-1"),
        ("page", "abc"),
        ("page", "1.5"),
        ("page", "1e3"),
        ("page_size", "0"),
        ("page_size", "-5"),
        ("page_size", "1001"),
        ("page_size", "abc"),
        ("page_size", "2.0"),
    ],
)
async def test_list_pagination_validation(
    client: Any, admin_headers: dict[str, str], name: str, value: str
) -> None:
    resp = await client.get(USERS, headers=admin_headers, query_string={name: value})
    await expect_422(resp, ["query", name])


async def test_list_non_admin_with_query_is_403(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    resp = await client.get(USERS, headers=user["headers"], query_string={"page": "0"})
    assert resp.status_code in (403, 422), await resp.get_data(as_text=True)
    resp = await client.get(USERS, headers=user["headers"], query_string={"page": "1"})
    await expect_detail(resp, 403, FORBIDDEN)


# ---------------------------------------------------------------- races (§1: a conflict at commit is a 409)


async def test_concurrent_creates_with_same_email_and_username(
    client: Any, admin_headers: dict[str, str]
) -> None:
    results: list[tuple[int, str]] = []

    async def create(body: dict[str, Any]) -> None:
        resp = await client.post(USERS, json=body, headers=admin_headers)
        results.append((resp.status_code, await resp.get_data(as_text=True)))

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(create, user_body(email="Race@Lab.Local", username=f"race{i}"))
    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(create, user_body(email=f"race{i}@lab.local", username="samename"))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 201] + [409] * 10, results
    for status, text in results:
        if status == 409:
            assert '"User already exists."' in text
    page = await (await client.get(USERS, headers=admin_headers)).get_json()
    assert page["total"] == 3


async def test_concurrent_renames_to_same_username(client: Any, admin_headers: dict[str, str]) -> None:
    users = [await create_user(client, admin_headers) for _ in range(4)]
    statuses: list[int] = []

    async def rename(user: dict[str, Any]) -> None:
        resp = await client.put(
            f"{USERS}/{user['public_id']}", json={"username": "contested"}, headers=admin_headers
        )
        statuses.append(resp.status_code)

    async with trio.open_nursery() as nursery:
        for user in users:
            nursery.start_soon(rename, user)
    assert sorted(statuses) == [200, 409, 409, 409]
    page = await (
        await client.get(USERS, headers=admin_headers, query_string={"page_size": "100"})
    ).get_json()
    assert [u["username"] for u in page["data"]].count("contested") == 1
