"""``/api/v1/auth``: login, logout, me."""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, request

from webmacs.http.bodies import LOGIN
from webmacs.http.client import requester_address
from webmacs.http.context import services, tree
from webmacs.http.errors import ApiError, error_response
from webmacs.http.guards import AuthFailed, authenticate, bearer_token, check_scope, current_principal
from webmacs.http.requests import json_body
from webmacs.http.responses import json_response, success, user_json
from webmacs.http.routing import route
from webmacs.http.session_cookie import clear_session_cookie, cookie_secure, set_session_cookie
from webmacs.login_throttle import TOO_MANY_LOGINS, Attempt, Busy, LoginThrottle, Refused
from webmacs.validation import read_body

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")
INVALID_LOGIN = "Invalid email or password."
API_TOKEN_LOGOUT = "An API token is revoked with DELETE /api/v1/tokens/{public_id}, not by logging out."


@route(bp, "/login", ["POST"])
async def login() -> Any:
    # No length cap on the password: an over-long one can never match, but is no malformed request.
    body = read_body(LOGIN, await json_body())
    email, password = body["email"], body["password"]
    svc = services()
    throttle = svc.login_throttle
    attempt = await _begin(throttle, email, requester_address(svc.settings.trusted_proxies))
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
            response = json_response({"status": "success", "message": "Successfully logged in.",
                                      "access_token": token, "public_id": user.public_id,
                                      "username": user.username})
            set_session_cookie(response, token, svc.settings.access_token_expire_minutes * 60,
                               _secure())
            return response
        throttle.failed(attempt)
        raise ApiError(401, INVALID_LOGIN)
    finally:
        throttle.abandoned(attempt)  # a no-op once reported; frees it on errors and cancellation


# How long a login waits behind other attempts for the same account or address still being
# checked (bcrypt, ~0.35 s each on two threads), and how often it looks again.
QUEUE_WAIT_S = 10.0
QUEUE_POLL_S = 0.02


async def _begin(throttle: LoginThrottle, email: str, address: str) -> Attempt | Refused:
    """The throttle's answer, waiting while it says :class:`Busy` (queued, not refused)."""
    deadline = trio.current_time() + QUEUE_WAIT_S
    while isinstance(outcome := throttle.begin(email, address), Busy):
        if trio.current_time() >= deadline:
            return Refused(1)
        await trio.sleep(QUEUE_POLL_S)
    return outcome


def _secure() -> bool:
    return cookie_secure(services().settings.session_cookie_secure, request.scheme)


@route(bp, "/logout", ["POST"])
async def logout() -> Any:
    svc = services()
    token = bearer_token(request.headers.get("Authorization"))
    try:
        principal = await authenticate(svc, token)
    except AuthFailed as exc:
        # REST never reads the cookie, so revocation needs the Bearer token; but a browser asking
        # to log out loses its cookie either way.
        refusal = error_response(exc)
        clear_session_cookie(refusal, _secure())
        return refusal
    check_scope(principal, request.endpoint, request.method)
    if principal.api_token is not None:
        raise ApiError(400, API_TOKEN_LOGOUT)
    assert token is not None
    claims = svc.tokens.decode(token)
    assert claims is not None
    await svc.repos.tokens.revoke(claims.jti, claims.expires_at)
    tree().sockets.login_revoked(claims.jti)  # here at once; elsewhere: the credential watcher
    response = success("Successfully logged out.")
    clear_session_cookie(response, _secure())
    return response


@route(bp, "/me", ["GET"])
async def me() -> Any:
    principal = await current_principal()
    return json_response(user_json(principal.user))
