"""``/api/v1/auth``: login, logout, me."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from webmacs.http.bodies import LOGIN
from webmacs.http.context import services
from webmacs.http.errors import ApiError
from webmacs.http.guards import authenticate, bearer_token
from webmacs.http.requests import json_body
from webmacs.http.responses import json_response, success, user_json
from webmacs.http.routing import route
from webmacs.validation import read_body

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")
INVALID_LOGIN = "Invalid email or password."


@route(bp, "/login", ["POST"])
async def login() -> Any:
    # No length cap on the password: an over-long one can never match, but is no malformed request.
    body = read_body(LOGIN, await json_body())
    email, password = body["email"], body["password"]
    svc = services()
    user = await svc.repos.users.get_by_email(email)
    if user is None:
        await svc.passwords.verify_dummy(password)  # same work, same timing
        raise ApiError(401, INVALID_LOGIN)
    if not await svc.passwords.verify(password, user.password_hash):
        raise ApiError(401, INVALID_LOGIN)
    token = svc.tokens.issue(user.public_id)
    return json_response({"status": "success", "message": "Successfully logged in.",
                          "access_token": token, "public_id": user.public_id,
                          "username": user.username})


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
