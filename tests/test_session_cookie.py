"""The session cookie on login and logout (contract §8), and REST ignoring it."""

from __future__ import annotations

from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, make_settings, open_app

from webmacs.http.session_cookie import SESSION_COOKIE, cookie_secure

LOGIN = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}


def session_cookie(resp: Any) -> tuple[str, dict[str, str], str]:
    """The value and attributes (lower-case names) of the one Set-Cookie for the session."""
    headers = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith(f"{SESSION_COOKIE}=")]
    assert len(headers) == 1, resp.headers.getlist("Set-Cookie")
    raw = headers[0]
    morsel = SimpleCookie(raw)[SESSION_COOKIE]
    pairs = (part.strip().partition("=") for part in raw.split(";")[1:])
    flags = {name.lower(): value for name, _, value in pairs}
    return morsel.value, flags, raw


async def test_login_sets_an_httponly_strict_cookie_with_the_token(client: Any) -> None:
    resp = await client.post("/api/v1/auth/login", json=LOGIN)
    assert resp.status_code == 200
    value, flags, raw = session_cookie(resp)
    assert value == (await resp.get_json())["access_token"]
    assert "httponly" in flags, raw
    assert flags["samesite"] == "Strict", raw
    assert flags["path"] == "/", raw
    assert flags["max-age"] == str(1440 * 60), raw
    assert "secure" not in flags, raw  # plain HTTP, SESSION_COOKIE_SECURE=auto
    assert "domain" not in flags, raw  # host-only


async def test_a_failed_login_sets_no_cookie(client: Any) -> None:
    resp = await client.post("/api/v1/auth/login", json={**LOGIN, "password": "wrong-password"})
    assert resp.status_code == 401
    assert not resp.headers.getlist("Set-Cookie")


async def test_secure_follows_tls_or_the_setting(database_url: str, tmp_path: Path) -> None:
    assert cookie_secure(None, "https") and cookie_secure(None, "wss")
    assert not cookie_secure(None, "http") and not cookie_secure(False, "https")
    assert cookie_secure(True, "http")
    settings = make_settings(database_url, tmp_path, ACCESS_TOKEN_EXPIRE_MINUTES="15")
    async with open_app(settings) as app:
        resp = await app.test_client().post("/api/v1/auth/login", json=LOGIN, scheme="https")
        _, flags, raw = session_cookie(resp)
        assert "secure" in flags, raw
        assert flags["max-age"] == str(15 * 60), raw
    settings = make_settings(database_url, tmp_path, SESSION_COOKIE_SECURE="true")
    async with open_app(settings) as app:
        resp = await app.test_client().post("/api/v1/auth/login", json=LOGIN)
        _, flags, raw = session_cookie(resp)
        assert "secure" in flags, raw  # behind a TLS-terminating proxy the request looks like HTTP


async def test_logout_revokes_the_token_and_clears_the_cookie(client: Any) -> None:
    token = (await (await client.post("/api/v1/auth/login", json=LOGIN)).get_json())["access_token"]
    resp = await client.post("/api/v1/auth/logout", headers=bearer(token))
    assert resp.status_code == 200
    value, flags, raw = session_cookie(resp)
    assert value == ""
    assert flags["max-age"] == "0", raw
    assert flags["path"] == "/" and "httponly" in flags and flags["samesite"] == "Strict", raw
    resp = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert (await resp.get_json()) == {"detail": "Token has been revoked."}


async def test_logout_without_a_bearer_token_is_401_and_still_clears_the_cookie(client: Any) -> None:
    token = (await (await client.post("/api/v1/auth/login", json=LOGIN)).get_json())["access_token"]
    resp = await client.post("/api/v1/auth/logout", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    assert resp.status_code == 401
    assert await resp.get_json() == {"detail": "Authentication required."}
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    value, flags, _ = session_cookie(resp)
    assert value == "" and flags["max-age"] == "0"
    # The cookie alone revoked nothing: the token still works as a Bearer.
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200


async def test_rest_ignores_the_cookie(client: Any) -> None:
    token = (await (await client.post("/api/v1/auth/login", json=LOGIN)).get_json())["access_token"]
    cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
    for method, path in (("GET", "/api/v1/auth/me"), ("GET", "/api/v1/events"),
                         ("GET", "/api/v1/datapoints/latest"), ("POST", "/api/v1/events")):
        resp = await client.open(path, method=method, headers=cookie,
                                 json={"name": "x", "min_value": 0, "max_value": 1, "unit": "u",
                                       "type": "sensor"} if method == "POST" else None)
        assert resp.status_code == 401, (method, path)
        assert await resp.get_json() == {"detail": "Authentication required."}
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200
