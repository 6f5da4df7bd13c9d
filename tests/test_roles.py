"""Roles through the users API: ``role`` in and out, v2's ``admin`` flag still understood, a role
change applied at the next request, and never a database without an admin. Who may call which
route is the authorization matrix's (test_authz_matrix.py)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import bearer, create_user, login

from webmacs.roles import ROLE_CONFLICT, Role, RoleConflict, requested_role

USERS = "/api/v1/users"
H = dict[str, str]
LAST_ADMIN = "The last admin cannot be demoted or deleted."
EVENT = {"name": "probe", "min_value": 0, "max_value": 1, "unit": "V", "type": "sensor"}


@pytest.mark.parametrize(("role", "admin", "current", "expected"), [
    (None, None, Role.VIEWER, None),
    (Role.VIEWER, None, Role.ADMIN, Role.VIEWER),
    (Role.ADMIN, True, None, Role.ADMIN),
    (Role.OPERATOR, False, Role.ADMIN, Role.OPERATOR),
    (None, True, Role.VIEWER, Role.ADMIN),
    (None, False, None, Role.OPERATOR),  # a new user
    (None, False, Role.ADMIN, Role.OPERATOR),  # demoted
    (None, False, Role.VIEWER, Role.VIEWER),  # "not an admin": already so, kept
    (None, False, Role.OPERATOR, Role.OPERATOR),
])
def test_requested_role(role: Role | None, admin: bool | None, current: Role | None,
                        expected: Role | None) -> None:
    assert requested_role(role, admin, current) is expected


@pytest.mark.parametrize(("role", "admin"), [(Role.ADMIN, False), (Role.VIEWER, True),
                                             (Role.OPERATOR, True)])
def test_requested_role_refuses_disagreement(role: Role, admin: bool) -> None:
    with pytest.raises(RoleConflict, match=ROLE_CONFLICT):
        requested_role(role, admin, None)


def test_role_labels() -> None:
    assert [r.label for r in Role] == ["viewer", "operator", "admin"]
    assert Role.parse("operator") is Role.OPERATOR
    assert [Role.parse(t) for t in ("Admin", "root", "", "1", "admin ")] == [Role.ADMIN, None, None,
                                                                            None, None]


async def user_of(client: Any, headers: H, public_id: str) -> dict[str, Any]:
    resp = await client.get(f"{USERS}/{public_id}", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    body: dict[str, Any] = await resp.get_json()
    return body


async def created(client: Any, headers: H, **fields: Any) -> dict[str, Any]:
    """Create a user with ``fields`` added to the body; the user as GET returns them."""
    suffix = uuid.uuid4().hex[:8]
    body = {"email": f"r{suffix}@lab.local", "username": f"r{suffix}", "password": "password123",
            **fields}
    resp = await client.post(USERS, json=body, headers=headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    return await user_of(client, headers, (await resp.get_json())["public_id"])


async def test_seeded_admin_and_me_carry_the_role(client: Any, admin_headers: H) -> None:
    me = await (await client.get("/api/v1/auth/me", headers=admin_headers)).get_json()
    assert (me["role"], me["admin"]) == ("admin", True)
    listed = await (await client.get(USERS, headers=admin_headers)).get_json()
    assert [(u["role"], u["admin"]) for u in listed["data"]] == [("admin", True)]


@pytest.mark.parametrize(("fields", "role"), [
    ({}, "operator"), ({"admin": False}, "operator"), ({"admin": True}, "admin"),
    ({"role": "viewer"}, "viewer"), ({"role": "operator"}, "operator"), ({"role": "admin"}, "admin"),
    ({"role": "admin", "admin": True}, "admin"), ({"role": "viewer", "admin": False}, "viewer"),
    ({"role": None, "admin": None}, "operator"),
])
async def test_create_with_role_or_admin_flag(client: Any, admin_headers: H, fields: dict[str, Any],
                                              role: str) -> None:
    user = await created(client, admin_headers, **fields)
    assert (user["role"], user["admin"]) == (role, role == "admin")


@pytest.mark.parametrize(("fields", "loc", "msg"), [
    ({"role": "superuser"}, ["body", "role"], "Input should be one of 'viewer', 'operator', 'admin'."),
    ({"role": "Admin"}, ["body", "role"], "Input should be one of 'viewer', 'operator', 'admin'."),
    ({"role": 3}, ["body", "role"], "Input should be one of 'viewer', 'operator', 'admin'."),
    ({"role": "viewer", "admin": True}, ["body"], ROLE_CONFLICT),
    ({"role": "admin", "admin": False}, ["body"], ROLE_CONFLICT),
])
async def test_bad_roles_are_422_naming_the_field(client: Any, admin_headers: H,
                                                  fields: dict[str, Any], loc: list[str], msg: str) -> None:
    body = {"email": "bad@lab.local", "username": "bad", "password": "password123", **fields}
    for method, path in (("post", USERS), ("put", f"{USERS}/{await my_id(client, admin_headers)}")):
        resp = await getattr(client, method)(path, json=body, headers=admin_headers)
        assert resp.status_code == 422, await resp.get_data(as_text=True)
        assert [(e["loc"], e["msg"]) for e in (await resp.get_json())["detail"]] == [(loc, msg)]
    listed = await (await client.get(USERS, headers=admin_headers)).get_json()
    assert listed["total"] == 1  # nothing created, nothing changed
    assert listed["data"][0]["username"] != "bad"


async def my_id(client: Any, headers: H) -> str:
    me = await (await client.get("/api/v1/auth/me", headers=headers)).get_json()
    public_id: str = me["public_id"]
    return public_id


async def test_a_role_change_applies_at_the_next_request(client: Any, admin_headers: H) -> None:
    user = await create_user(client, admin_headers)
    url, headers = f"{USERS}/{user['public_id']}", user["headers"]
    assert (await client.post("/api/v1/events", json=EVENT, headers=headers)).status_code == 201

    resp = await client.put(url, json={"role": "viewer"}, headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    resp = await client.post("/api/v1/events", json={**EVENT, "name": "p2"}, headers=headers)
    assert (resp.status_code, await resp.get_json()) == (403, {"detail": "Operator role required."})
    assert (await client.get("/api/v1/events", headers=headers)).status_code == 200  # still reads

    # v2's form sends ``admin: false`` with every edit: a viewer stays a viewer.
    resp = await client.put(url, json={"username": "renamed", "admin": False}, headers=admin_headers)
    assert resp.status_code == 200
    assert (await user_of(client, admin_headers, user["public_id"]))["role"] == "viewer"

    assert (await client.put(url, json={"admin": True}, headers=admin_headers)).status_code == 200
    listed = await client.get(USERS, headers=headers)  # the same token, now an admin's
    assert listed.status_code == 200
    assert (await client.put(url, json={"admin": False}, headers=admin_headers)).status_code == 200
    assert (await user_of(client, admin_headers, user["public_id"]))["role"] == "operator"


async def test_the_last_admin_is_kept(client: Any, admin_headers: H) -> None:
    admin_id = await my_id(client, admin_headers)
    url = f"{USERS}/{admin_id}"
    for change in ({"role": "operator"}, {"role": "viewer"}, {"admin": False}):
        resp = await client.put(url, json=change, headers=admin_headers)
        assert (resp.status_code, await resp.get_json()) == (409, {"detail": LAST_ADMIN}), change
    resp = await client.delete(url, headers=admin_headers)
    assert (resp.status_code, await resp.get_json()) == (409, {"detail": LAST_ADMIN})
    # Restating the role is no demotion; other fields of a refused request are not applied.
    assert (await client.put(url, json={"role": "admin"}, headers=admin_headers)).status_code == 200
    resp = await client.put(url, json={"role": "viewer", "username": "nobody"}, headers=admin_headers)
    assert resp.status_code == 409
    assert (await user_of(client, admin_headers, admin_id))["username"] == "admin"

    # With a second admin, the first may step down; then the second is the last.
    second = await create_user(client, admin_headers, admin=True)
    assert (await client.put(url, json={"role": "viewer"}, headers=admin_headers)).status_code == 200
    assert (await client.get(USERS, headers=admin_headers)).status_code == 403
    second_url = f"{USERS}/{second['public_id']}"
    resp = await client.put(second_url, json={"role": "operator"}, headers=second["headers"])
    assert (resp.status_code, await resp.get_json()) == (409, {"detail": LAST_ADMIN})
    resp = await client.delete(second_url, headers=second["headers"])
    assert resp.status_code == 409


async def test_viewers_and_operators_keep_to_their_own_profile(client: Any, admin_headers: H) -> None:
    viewer = await created(client, admin_headers, role="viewer")
    token = await login(client, viewer["email"], "password123")
    own = f"{USERS}/{viewer['public_id']}"
    resp = await client.put(own, json={"password": "another-password"}, headers=bearer(token))
    assert resp.status_code == 200
    resp = await client.put(own, json={"role": "operator"}, headers=bearer(
        await login(client, viewer["email"], "another-password")))
    assert (resp.status_code, await resp.get_json()) == (403, {"detail": "Admin privileges required."})
    assert (await user_of(client, admin_headers, viewer["public_id"]))["role"] == "viewer"
