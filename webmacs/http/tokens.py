"""``/api/v1/tokens``: API tokens for controllers and scripts (contract §8).

Anyone logged in may create tokens for themselves, at most with their own role; the secret is in
the 201 only. Everyone lists and revokes their own tokens; admins list and revoke everyone's.
Creating needs a login token: a token minting tokens would let a leaked one outlive its revocation.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from webmacs.api_tokens import new_secret
from webmacs.http.bodies import EXPIRES_IN_PAST, TOKEN_CREATE
from webmacs.http.context import services, tree
from webmacs.http.errors import ApiError, not_found
from webmacs.http.guards import USER_NOT_FOUND, AuthFailed, current_principal
from webmacs.http.requests import json_body, pagination
from webmacs.http.responses import json_response, page_body
from webmacs.http.routing import route
from webmacs.roles import Role
from webmacs.storage.records import ApiTokenRecord
from webmacs.validation import FieldError, ValidationFailed, format_timestamp, read_body, utcnow

bp = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens")

ROLE_ABOVE_OWN = "A token's role cannot be above your own."
TOKENS_NEED_LOGIN = "API tokens are created with a login token, not with another API token."


def token_json(t: ApiTokenRecord) -> dict[str, Any]:
    """A token as listed: never its secret or hash."""
    return {"public_id": t.public_id, "name": t.name, "role": t.role, "scopes": sorted(t.scopes),
            "created_at": format_timestamp(t.created_at),
            "expires_at": None if t.expires_at is None else format_timestamp(t.expires_at),
            "last_used_at": None if t.last_used_at is None else format_timestamp(t.last_used_at),
            "owner_public_id": t.owner_public_id, "owner_email": t.owner_email}


@route(bp, "", ["POST"])
async def create_token() -> Any:
    principal = await current_principal()
    if principal.api_token is not None:
        raise ApiError(403, TOKENS_NEED_LOGIN)
    body = read_body(TOKEN_CREATE, await json_body())
    expires_at = body["expires_at"]
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed([FieldError(("body", "expires_at"), EXPIRES_IN_PAST, "value_error",
                                           format_timestamp(expires_at))])
    role = Role.parse(body["role"]) if body["role"] is not None else principal.role
    assert role is not None  # a choice among the role names
    if role > principal.role:
        raise ApiError(403, ROLE_ABOVE_OWN)
    secret = new_secret()
    record = await services().repos.api_tokens.create(
        principal.user.public_id, body["name"], role.label, frozenset(body["scopes"] or ()), expires_at,
        secret)
    if record is None:  # the owner was deleted meanwhile
        raise AuthFailed(USER_NOT_FOUND)
    return json_response({**token_json(record), "token": secret}, 201)


@route(bp, "", ["GET"])
async def list_tokens() -> Any:
    principal = await current_principal()
    number, size = pagination()
    owner = None if principal.at_least(Role.ADMIN) else principal.user.public_id
    page = await services().repos.api_tokens.page((number - 1) * size, size, owner)
    return json_response(page_body(page, number, size, token_json))


@route(bp, "/<public_id>", ["DELETE"])
async def revoke_token(public_id: str) -> Any:
    principal = await current_principal()
    repo = services().repos.api_tokens
    token = await repo.get(public_id)
    mine = token is not None and token.owner_public_id == principal.user.public_id
    if token is None or not (mine or principal.at_least(Role.ADMIN)) or not await repo.delete(public_id):
        raise not_found("Token", public_id)  # others' tokens look like unknown ones
    tree().sockets.token_revoked(public_id)
    return Response("", status=204)
