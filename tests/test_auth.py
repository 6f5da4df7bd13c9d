"""Authentication: contract §3 (login, logout, /auth/me, JWT claims, revocation, token failures)."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, create_user, login, make_settings, open_app

from webmacs.settings import Settings

LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")
OTHER_KEY = "a-completely-different-secret-key-0123456789abcdef"

AUTH_REQUIRED = "Authentication required."
INVALID_TOKEN = "Invalid or expired token."
REVOKED = "Token has been revoked."
USER_NOT_FOUND = "User not found."
BAD_LOGIN = "Invalid email or password."


# ---------------------------------------------------------------- helpers


async def json_of(resp: Any) -> Any:
    return await resp.get_json()


async def expect_detail(resp: Any, status: int, detail: str) -> dict[str, Any]:
    text = await resp.get_data(as_text=True)
    assert resp.status_code == status, text
    data = await resp.get_json()
    assert isinstance(data, dict), text
    assert data.get("detail") == detail, text
    return data


async def expect_401(resp: Any, detail: str) -> None:
    await expect_detail(resp, 401, detail)
    www = resp.headers.get("WWW-Authenticate")
    assert www is not None, "401 without WWW-Authenticate header"
    assert www.startswith("Bearer"), www


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


def sign(claims: dict[str, Any], key: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def claims_for(
    sub: str, *, iat: int | None = None, exp_in: int = 3600, jti: str | None = None
) -> dict[str, Any]:
    now = int(time.time())
    issued = now if iat is None else iat
    return {"sub": sub, "jti": jti or uuid.uuid4().hex, "iat": issued, "exp": now + exp_in}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def admin_public_id(client: Any) -> str:
    resp = await client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert resp.status_code == 200
    public_id: str = (await resp.get_json())["public_id"]
    return public_id


def is_public_id(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return str(parsed) == value and parsed.version == 4


# ---------------------------------------------------------------- login


async def test_login_success_body_shape(client: Any) -> None:
    resp = await client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    body = await resp.get_json()
    assert body["status"] == "success"
    assert body["message"] == "Successfully logged in."
    assert isinstance(body["access_token"], str)
    assert body["access_token"].count(".") == 2
    assert body["username"] == "admin"
    assert is_public_id(body["public_id"])
    # The token works and names the same user.
    me = await client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert (await me.get_json())["public_id"] == body["public_id"]


async def test_login_token_claims(client: Any, settings: Settings) -> None:
    resp = await client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    body = await resp.get_json()
    token = body["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, settings.secret_key, algorithms=["HS256"])
    for name in ("sub", "jti", "iat", "exp"):
        assert name in claims, claims
    assert claims["sub"] == body["public_id"]
    assert isinstance(claims["jti"], str)
    assert claims["jti"]
    assert abs(claims["exp"] - claims["iat"] - 1440 * 60) < 2
    assert abs(claims["iat"] - time.time()) < 120
    # No internal integer ids in the token.
    for key, value in claims.items():
        if key in ("iat", "exp", "nbf"):
            continue
        assert not (isinstance(value, int) and not isinstance(value, bool)), (key, value)


async def test_login_jti_unique_per_login(client: Any, settings: Settings) -> None:
    t1 = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    t2 = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    c1 = jwt.decode(t1, settings.secret_key, algorithms=["HS256"])
    c2 = jwt.decode(t2, settings.secret_key, algorithms=["HS256"])
    assert c1["jti"] != c2["jti"]


async def test_token_lifetime_follows_setting(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, ACCESS_TOKEN_EXPIRE_MINUTES="5")
    async with open_app(settings) as app:
        client = app.test_client()
        token = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    claims = jwt.decode(token, settings.secret_key, algorithms=["HS256"])
    assert abs(claims["exp"] - claims["iat"] - 300) < 2


async def test_login_unknown_email(client: Any) -> None:
    resp = await client.post(LOGIN, json={"email": "nobody@webmacs.io", "password": ADMIN_PASSWORD})
    data = await expect_detail(resp, 401, BAD_LOGIN)
    assert "access_token" not in data


async def test_login_wrong_password(client: Any) -> None:
    resp = await client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": "wrong-password"})
    data = await expect_detail(resp, 401, BAD_LOGIN)
    assert "access_token" not in data


async def test_login_one_char_wrong_password_is_401_not_422(client: Any) -> None:
    resp = await client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": "x"})
    await expect_detail(resp, 401, BAD_LOGIN)


async def test_login_unknown_and_wrong_password_identical(client: Any) -> None:
    r1 = await client.post(LOGIN, json={"email": "ghost@webmacs.io", "password": "whatever1"})
    r2 = await client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": "whatever1"})
    assert r1.status_code == r2.status_code == 401
    assert await r1.get_json() == await r2.get_json()


@pytest.mark.parametrize(
    "email",
    [
        "no-at-sign",
        "two@@signs.io",
        "a@b@c.io",
        "@webmacs.io",
        "admin@",
        "@",
        "",
        "ad min@webmacs.io",
        "admin@web macs.io",
        " admin@webmacs.io",
        "admin@webmacs.io ",
        "admin\t@webmacs.io",
        "admin@webmacs.io\n",
        "a" * 250 + "@x.io1",  # 256 characters
    ],
)
async def test_login_malformed_email_422(client: Any, email: str) -> None:
    resp = await client.post(LOGIN, json={"email": email, "password": ADMIN_PASSWORD})
    await expect_422(resp, ["body", "email"])


async def test_login_email_wrong_type_422(client: Any) -> None:
    resp = await client.post(LOGIN, json={"email": 12, "password": ADMIN_PASSWORD})
    await expect_422(resp, ["body", "email"])


async def test_login_missing_fields_422(client: Any) -> None:
    resp = await client.post(LOGIN, json={})
    await expect_422(resp, ["body", "email"], ["body", "password"])
    resp = await client.post(LOGIN, json={"email": ADMIN_EMAIL})
    await expect_422(resp, ["body", "password"])
    resp = await client.post(LOGIN, json={"password": ADMIN_PASSWORD})
    await expect_422(resp, ["body", "email"])


async def test_login_empty_password_422(client: Any) -> None:
    resp = await client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": ""})
    await expect_422(resp, ["body", "password"])


async def test_login_password_wrong_type_422(client: Any) -> None:
    resp = await client.post(LOGIN, json={"email": ADMIN_EMAIL, "password": 12345678})
    detail = await expect_422(resp, ["body", "password"])
    for item in detail:
        if item["loc"] == ["body", "password"]:
            assert item.get("input") != 12345678


async def test_login_password_not_echoed(client: Any) -> None:
    secret = "Sup3r-Secret-Passw0rd"
    resp = await client.post(LOGIN, json={"email": "not-an-email", "password": secret})
    await expect_422(resp, ["body", "email"])
    assert secret not in await resp.get_data(as_text=True)


async def test_login_body_not_object_422(client: Any) -> None:
    resp = await client.post(LOGIN, json=[ADMIN_EMAIL, ADMIN_PASSWORD])
    await expect_422(resp)


async def test_login_malformed_json(client: Any) -> None:
    resp = await client.post(
        LOGIN, data='{"email": "admin@webmacs.io", "password": ', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code in (400, 422), await resp.get_data(as_text=True)
    assert isinstance((await resp.get_json())["detail"], list | str)


async def test_login_wrong_content_type_415(client: Any) -> None:
    payload = json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    resp = await client.post(LOGIN, data=payload, headers={"Content-Type": "text/plain"})
    await expect_detail(resp, 415, "Content-Type must be application/json.")


async def test_login_domain_is_case_insensitive(client: Any) -> None:
    for email in ("admin@WEBMACS.IO", "admin@WebMacs.io"):
        resp = await client.post(LOGIN, json={"email": email, "password": ADMIN_PASSWORD})
        assert resp.status_code == 200, (email, await resp.get_data(as_text=True))


async def test_login_local_part_is_exact(client: Any) -> None:
    resp = await client.post(LOGIN, json={"email": "ADMIN@webmacs.io", "password": ADMIN_PASSWORD})
    await expect_detail(resp, 401, BAD_LOGIN)


@pytest.mark.parametrize("email", ["lab@pi.local", "ops@box.lan", "root@localhost"])
async def test_login_permissive_email_rule(client: Any, admin_headers: dict[str, str], email: str) -> None:
    user = await create_user(client, admin_headers, email=email)  # create_user logs in
    me = await client.get(ME, headers=user["headers"])
    assert me.status_code == 200
    assert (await me.get_json())["email"] == email


async def test_login_mixed_case_domain_user(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.post(
        "/api/v1/users",
        json={"email": "Lab.User@PI.Local", "username": "labuser", "password": "password123"},
        headers=admin_headers,
    )
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    for email in ("Lab.User@pi.local", "Lab.User@PI.LOCAL", "Lab.User@PI.Local"):
        token = await login(client, email, "password123")
        me = await client.get(ME, headers=bearer(token))
        assert (await me.get_json())["email"] == "Lab.User@pi.local"
    resp = await client.post(LOGIN, json={"email": "lab.user@pi.local", "password": "password123"})
    await expect_detail(resp, 401, BAD_LOGIN)


async def test_seeded_admin_with_dotless_domain(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, INITIAL_ADMIN_EMAIL="Root@LocalHost")
    async with open_app(settings) as app:
        client = app.test_client()
        token = await login(client, "Root@localhost", ADMIN_PASSWORD)
        me = await client.get(ME, headers=bearer(token))
        body = await me.get_json()
        assert body["email"] == "Root@localhost"
        assert body["admin"] is True


async def test_login_over_72_byte_password_never_matches(client: Any, admin_headers: dict[str, str]) -> None:
    password = "p" * 72
    user = await create_user(client, admin_headers, password=password)
    resp = await client.post(LOGIN, json={"email": user["email"], "password": password + "extra"})
    assert resp.status_code in (401, 422), await resp.get_data(as_text=True)
    assert "access_token" not in await resp.get_data(as_text=True)


async def test_login_trailing_slash(client: Any) -> None:
    resp = await client.post(LOGIN + "/", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    token = (await resp.get_json())["access_token"]
    me = await client.get(ME + "/", headers=bearer(token))
    assert me.status_code == 200


# ---------------------------------------------------------------- logout


async def test_logout_revokes_token(client: Any) -> None:
    token = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert (await client.get(ME, headers=bearer(token))).status_code == 200
    resp = await client.post(LOGOUT, headers=bearer(token))
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    body = await resp.get_json()
    assert body["status"] == "success"
    assert body["message"] == "Successfully logged out."
    await expect_401(await client.get(ME, headers=bearer(token)), REVOKED)
    await expect_401(await client.post(LOGOUT, headers=bearer(token)), REVOKED)
    await expect_401(await client.get("/api/v1/users", headers=bearer(token)), REVOKED)


async def test_logout_only_revokes_presented_token(client: Any) -> None:
    t1 = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    t2 = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert (await client.post(LOGOUT, headers=bearer(t1))).status_code == 200
    await expect_401(await client.get(ME, headers=bearer(t1)), REVOKED)
    assert (await client.get(ME, headers=bearer(t2))).status_code == 200
    # A fresh login still works after a logout.
    t3 = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert (await client.get(ME, headers=bearer(t3))).status_code == 200


async def test_logout_requires_token(client: Any) -> None:
    await expect_401(await client.post(LOGOUT), AUTH_REQUIRED)
    await expect_401(await client.post(LOGOUT, headers=bearer("garbage")), INVALID_TOKEN)


async def test_logout_of_non_admin(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    assert (await client.post(LOGOUT, headers=user["headers"])).status_code == 200
    await expect_401(await client.get(ME, headers=user["headers"]), REVOKED)
    assert (await client.get(ME, headers=admin_headers)).status_code == 200


# ---------------------------------------------------------------- /auth/me


async def test_me_admin_shape(client: Any, admin_headers: dict[str, str]) -> None:
    resp = await client.get(ME, headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    body = await resp.get_json()
    for key in ("public_id", "email", "username", "admin", "registered_on"):
        assert key in body, body
    assert is_public_id(body["public_id"])
    assert body["email"] == ADMIN_EMAIL
    assert body["username"] == "admin"
    assert body["admin"] is True
    assert TIMESTAMP_RE.match(body["registered_on"]), body["registered_on"]
    for forbidden in ("password", "password_hash", "hash", "id", "tokens_valid_after"):
        assert forbidden not in body, body
    text = await resp.get_data(as_text=True)
    assert "$2" not in text  # no bcrypt hash anywhere


async def test_me_non_admin(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers, email="Tech@Lab.Local", username="tech")
    resp = await client.get(ME, headers=user["headers"])
    assert resp.status_code == 200
    body = await resp.get_json()
    assert body["public_id"] == user["public_id"]
    assert body["email"] == "Tech@lab.local"
    assert body["username"] == "tech"
    assert body["admin"] is False
    assert TIMESTAMP_RE.match(body["registered_on"]), body["registered_on"]
    assert "password" not in body


# ---------------------------------------------------------------- token failures (§3.4)


async def test_missing_authorization_header(client: Any) -> None:
    await expect_401(await client.get(ME), AUTH_REQUIRED)


@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT", "Bearer:", "Bearerx"])
async def test_wrong_scheme(client: Any, admin_token: str, scheme: str) -> None:
    resp = await client.get(ME, headers={"Authorization": f"{scheme} {admin_token}"})
    await expect_401(resp, AUTH_REQUIRED)


async def test_token_without_scheme(client: Any, admin_token: str) -> None:
    resp = await client.get(ME, headers={"Authorization": admin_token})
    await expect_401(resp, AUTH_REQUIRED)


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer    ", ""])
async def test_empty_credentials(client: Any, value: str) -> None:
    resp = await client.get(ME, headers={"Authorization": value})
    await expect_401(resp, AUTH_REQUIRED)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
async def test_bearer_scheme_case_insensitive(client: Any, admin_token: str, scheme: str) -> None:
    resp = await client.get(ME, headers={"Authorization": f"{scheme} {admin_token}"})
    assert resp.status_code == 200, await resp.get_data(as_text=True)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.", "....", "Bearer"])
async def test_garbage_token(client: Any, token: str) -> None:
    await expect_401(await client.get(ME, headers=bearer(token)), INVALID_TOKEN)


async def test_token_signed_with_other_key(client: Any) -> None:
    sub = await admin_public_id(client)
    token = sign(claims_for(sub), OTHER_KEY)
    await expect_401(await client.get(ME, headers=bearer(token)), INVALID_TOKEN)


async def test_self_signed_token_with_server_key_is_accepted(client: Any, settings: Settings) -> None:
    """Positive control for the forged-token tests: same claims, right key → accepted."""
    sub = await admin_public_id(client)
    token = sign(claims_for(sub), settings.secret_key)
    resp = await client.get(ME, headers=bearer(token))
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert (await resp.get_json())["public_id"] == sub


async def test_tampered_payload_rejected(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    admin_id = (await (await client.get(ME, headers=admin_headers)).get_json())["public_id"]
    header, payload, signature = user["token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = admin_id
    forged = ".".join([header, b64url(json.dumps(claims).encode()), signature])
    await expect_401(await client.get(ME, headers=bearer(forged)), INVALID_TOKEN)


async def test_alg_none_rejected(client: Any) -> None:
    sub = await admin_public_id(client)
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims_for(sub)).encode())
    token = f"{header}.{payload}."
    await expect_401(await client.get(ME, headers=bearer(token)), INVALID_TOKEN)


async def test_expired_token(client: Any, settings: Settings) -> None:
    sub = await admin_public_id(client)
    now = int(time.time())
    token = sign(
        {"sub": sub, "jti": uuid.uuid4().hex, "iat": now - 7200, "exp": now - 60}, settings.secret_key
    )
    await expect_401(await client.get(ME, headers=bearer(token)), INVALID_TOKEN)


@pytest.mark.parametrize("missing", ["sub", "jti", "iat", "exp"])
async def test_missing_claim(client: Any, settings: Settings, missing: str) -> None:
    sub = await admin_public_id(client)
    claims = claims_for(sub)
    del claims[missing]
    token = sign(claims, settings.secret_key)
    await expect_401(await client.get(ME, headers=bearer(token)), INVALID_TOKEN)


async def test_token_for_unknown_user(client: Any, settings: Settings) -> None:
    token = sign(claims_for(str(uuid.uuid4())), settings.secret_key)
    await expect_401(await client.get(ME, headers=bearer(token)), USER_NOT_FOUND)


@pytest.mark.parametrize("sub", ["1", "admin", "admin@webmacs.io"])
async def test_token_sub_must_be_public_id(client: Any, settings: Settings, sub: str) -> None:
    """Internal ids, usernames or emails in `sub` never authenticate anyone."""
    token = sign(claims_for(sub), settings.secret_key)
    resp = await client.get(ME, headers=bearer(token))
    assert resp.status_code == 401, await resp.get_data(as_text=True)
    assert (await resp.get_json())["detail"] in (USER_NOT_FOUND, INVALID_TOKEN)
    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")


async def test_long_jti_never_500(client: Any, settings: Settings) -> None:
    """A validly signed token whose jti is longer than ours: logout either revokes it or refuses it."""
    sub = await admin_public_id(client)
    token = sign(claims_for(sub, jti="j" * 300), settings.secret_key)
    resp = await client.post(LOGOUT, headers=bearer(token))
    assert resp.status_code in (200, 401), await resp.get_data(as_text=True)
    if resp.status_code == 200:
        await expect_401(await client.get(ME, headers=bearer(token)), REVOKED)


async def test_deleted_user_token(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    assert (await client.get(ME, headers=user["headers"])).status_code == 200
    resp = await client.delete(f"/api/v1/users/{user['public_id']}", headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    await expect_401(await client.get(ME, headers=user["headers"]), USER_NOT_FOUND)
    await expect_401(await client.post(LOGOUT, headers=user["headers"]), USER_NOT_FOUND)


async def test_secret_key_change_invalidates_tokens(database_url: str, tmp_path: Path) -> None:
    first = make_settings(database_url, tmp_path)
    async with open_app(first) as app:
        token = await login(app.test_client(), ADMIN_EMAIL, ADMIN_PASSWORD)
    second = make_settings(database_url, tmp_path, SECRET_KEY=OTHER_KEY)
    async with open_app(second) as app:
        client = app.test_client()
        await expect_401(await client.get(ME, headers=bearer(token)), INVALID_TOKEN)
        fresh = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        assert (await client.get(ME, headers=bearer(fresh))).status_code == 200


# ---------------------------------------------------------------- check order (§3.4)


async def test_order_scheme_before_token(client: Any) -> None:
    # A garbage token under the wrong scheme is "Authentication required.", not "Invalid".
    resp = await client.get(ME, headers={"Authorization": "Basic garbage"})
    await expect_401(resp, AUTH_REQUIRED)


async def test_order_invalid_before_user_lookup(client: Any) -> None:
    # Bad signature AND unknown user → the token check wins.
    token = sign(claims_for(str(uuid.uuid4())), OTHER_KEY)
    await expect_401(await client.get(ME, headers=bearer(token)), INVALID_TOKEN)


async def test_order_expired_before_revoked(client: Any, settings: Settings) -> None:
    sub = await admin_public_id(client)
    jti = uuid.uuid4().hex
    live = sign(claims_for(sub, jti=jti), settings.secret_key)
    assert (await client.post(LOGOUT, headers=bearer(live))).status_code == 200
    await expect_401(await client.get(ME, headers=bearer(live)), REVOKED)
    now = int(time.time())
    expired = sign({"sub": sub, "jti": jti, "iat": now - 7200, "exp": now - 60}, settings.secret_key)
    await expect_401(await client.get(ME, headers=bearer(expired)), INVALID_TOKEN)


async def test_order_revoked_before_user_not_found(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    assert (await client.post(LOGOUT, headers=user["headers"])).status_code == 200
    resp = await client.delete(f"/api/v1/users/{user['public_id']}", headers=admin_headers)
    assert resp.status_code == 200
    await expect_401(await client.get(ME, headers=user["headers"]), REVOKED)


async def test_401_before_403_and_404(client: Any) -> None:
    await expect_401(await client.get("/api/v1/users"), AUTH_REQUIRED)
    await expect_401(await client.post("/api/v1/users", json={}), AUTH_REQUIRED)
    await expect_401(await client.get(f"/api/v1/users/{uuid.uuid4()}"), AUTH_REQUIRED)
    await expect_401(await client.get("/api/v1/users/not-a-uuid"), AUTH_REQUIRED)
    await expect_401(await client.put(f"/api/v1/users/{uuid.uuid4()}", json={}), AUTH_REQUIRED)
    await expect_401(await client.delete(f"/api/v1/users/{uuid.uuid4()}"), AUTH_REQUIRED)
    await expect_401(await client.get("/api/v1/users", headers=bearer("garbage")), INVALID_TOKEN)


# ---------------------------------------------------------------- password change (§3.3)


async def test_own_password_change_revokes_older_tokens(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers, password="old-password-1")
    other_session = await login(client, user["email"], "old-password-1")
    resp = await client.put(
        f"/api/v1/users/{user['public_id']}", json={"password": "new-password-2"}, headers=user["headers"]
    )
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert (await resp.get_json())["message"] == "User successfully updated."
    # The caller's own token and every other older token are revoked.
    await expect_401(await client.get(ME, headers=user["headers"]), REVOKED)
    await expect_401(await client.get(ME, headers=bearer(other_session)), REVOKED)
    # Old password no longer logs in; the new one does, and its token works right away.
    old = await client.post(LOGIN, json={"email": user["email"], "password": "old-password-1"})
    await expect_detail(old, 401, BAD_LOGIN)
    fresh = await login(client, user["email"], "new-password-2")
    me = await client.get(ME, headers=bearer(fresh))
    assert me.status_code == 200, await me.get_data(as_text=True)
    assert (await me.get_json())["public_id"] == user["public_id"]
    # And it keeps working on later requests.
    assert (await client.get(f"/api/v1/users/{user['public_id']}", headers=bearer(fresh))).status_code == 200


async def test_admin_password_change_revokes_target_only(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    resp = await client.put(
        f"/api/v1/users/{user['public_id']}", json={"password": "brand-new-pass"}, headers=admin_headers
    )
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    await expect_401(await client.get(ME, headers=user["headers"]), REVOKED)
    assert (await client.get(ME, headers=admin_headers)).status_code == 200
    fresh = await login(client, user["email"], "brand-new-pass")
    assert (await client.get(ME, headers=bearer(fresh))).status_code == 200


async def test_admin_own_password_change(client: Any, admin_headers: dict[str, str]) -> None:
    admin_id = (await (await client.get(ME, headers=admin_headers)).get_json())["public_id"]
    resp = await client.put(
        f"/api/v1/users/{admin_id}", json={"password": "another-admin-pw"}, headers=admin_headers
    )
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    await expect_401(await client.get("/api/v1/users", headers=admin_headers), REVOKED)
    fresh = await login(client, ADMIN_EMAIL, "another-admin-pw")
    assert (await client.get("/api/v1/users", headers=bearer(fresh))).status_code == 200


async def test_repeated_password_changes(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers, password="first-password")
    url = f"/api/v1/users/{user['public_id']}"
    assert (
        await client.put(url, json={"password": "second-password"}, headers=admin_headers)
    ).status_code == 200
    t2 = await login(client, user["email"], "second-password")
    assert (await client.get(ME, headers=bearer(t2))).status_code == 200
    assert (await client.put(url, json={"password": "third-password"}, headers=bearer(t2))).status_code == 200
    await expect_401(await client.get(ME, headers=bearer(t2)), REVOKED)
    t3 = await login(client, user["email"], "third-password")
    assert (await client.get(ME, headers=bearer(t3))).status_code == 200


async def test_token_issued_before_password_change_is_revoked(
    client: Any, admin_headers: dict[str, str], settings: Settings
) -> None:
    user = await create_user(client, admin_headers)
    url = f"/api/v1/users/{user['public_id']}"
    assert (
        await client.put(url, json={"password": "changed-password"}, headers=admin_headers)
    ).status_code == 200
    old = sign(claims_for(user["public_id"], iat=int(time.time()) - 120), settings.secret_key)
    await expect_401(await client.get(ME, headers=bearer(old)), REVOKED)


async def test_update_without_password_keeps_tokens(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    url = f"/api/v1/users/{user['public_id']}"
    resp = await client.put(
        url, json={"username": f"renamed-{uuid.uuid4().hex[:6]}"}, headers=user["headers"]
    )
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    resp = await client.put(
        url, json={"email": f"moved{uuid.uuid4().hex[:6]}@lab.local"}, headers=admin_headers
    )
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    resp = await client.put(url, json={"password": None}, headers=user["headers"])
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert (await client.get(ME, headers=user["headers"])).status_code == 200
