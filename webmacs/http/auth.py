"""``/api/v1/auth``: login, logout, me."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from webmacs.http.client import requester_address
from webmacs.http.context import services
from webmacs.http.errors import ApiError
from webmacs.http.guards import authenticate, bearer_token
from webmacs.http.requests import json_body
from webmacs.http.responses import json_response, success, user_json
from webmacs.http.routing import route
from webmacs.login_throttle import TOO_MANY_LOGINS, Refused
from webmacs.validation import Fields

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")
INVALID_LOGIN = "Invalid email or password."


@route(bp, "/login", ["POST"])
async def login() -> Any:
    fields = Fields(await json_body())
    email = fields.email("email")
    # No length cap here: an over-long password can never match, but is no malformed request.
    password = fields.password("password", min_len=1, max_bytes=None)
    fields.check()
    assert email is not None and password is not None
    svc = services()
    throttle = svc.login_throttle
    attempt = throttle.begin(email, requester_address(svc.settings.trusted_proxies))
    if isinstance(attempt, Refused):
        # Before the user lookup and without bcrypt: the same answer for every email.
        raise ApiError(429, TOO_MANY_LOGINS, {"Retry-After": str(attempt.retry_after)})
    try:
        user = await svc.repos.users.get_by_email(email)
        if user is None:
            await svc.passwords.verify_dummy(password)  # same work, same timing
        elif await svc.passwords.verify(password, user.password_hash):
            throttle.succeeded(attempt)
            token = svc.tokens.issue(user.public_id)
            return json_response({"status": "success", "message": "Successfully logged in.",
                                  "access_token": token, "public_id": user.public_id,
                                  "username": user.username})
        throttle.failed(attempt)
        raise ApiError(401, INVALID_LOGIN)
    finally:
        throttle.abandoned(attempt)  # a no-op once reported; frees it on errors and cancellation


@route(bp, "/logout", ["POST"])
async def logout() -> Any:
    svc = services()
    token = bearer_token(request.headers.get("Authorization"))
    await authenticate(svc, token)
    assert token is not None
    claims = svc.tokens.decode(token)
    assert claims is not None
    await svc.repos.tokens.revoke(claims.jti, claims.expires_at)
    return success("Successfully logged out.")


@route(bp, "/me", ["GET"])
async def me() -> Any:
    user, _ = await authenticate(services(), bearer_token(request.headers.get("Authorization")))
    return json_response(user_json(user))
