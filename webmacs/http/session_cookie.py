"""The session cookie (contract §8): the login token again, for browsers' WebSocket upgrades.

Browsers cannot put a header on ``new WebSocket(…)``, and the v2 frontend sends no ``?token=``.
So login also sets this cookie. It is HttpOnly (page scripts never see it) and SameSite=Strict,
and only the two WebSocket upgrades read it, after an ``Origin`` check; REST ignores it, so no
request can be forged with it cross-site.
"""

from __future__ import annotations

from quart import Response

SESSION_COOKIE = "webmacs_session"


def cookie_secure(setting: bool | None, request_scheme: str) -> bool:
    """``SESSION_COOKIE_SECURE``: true/false as configured; auto (None) follows the request's TLS."""
    if setting is not None:
        return setting
    return request_scheme.lower() in ("https", "wss")


def set_session_cookie(response: Response, token: str, max_age: int, secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", secure=secure,
                        httponly=True, samesite="Strict")


def clear_session_cookie(response: Response, secure: bool) -> None:
    # Same name, path and attributes as when set, so every browser replaces and drops it.
    response.set_cookie(SESSION_COOKIE, "", max_age=0, expires=0, path="/", secure=secure,
                        httponly=True, samesite="Strict")
