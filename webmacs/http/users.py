"""``/api/v1/users``: admin-managed accounts, self-service on one's own profile (§4.1)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from webmacs.http.bodies import USER_CREATE, USER_UPDATE
from webmacs.http.context import services, tree
from webmacs.http.errors import ApiError, not_found
from webmacs.http.guards import ADMIN_REQUIRED, current_admin, current_user
from webmacs.http.requests import json_body, pagination
from webmacs.http.responses import json_response, page_body, success, user_json
from webmacs.http.routing import route
from webmacs.roles import Role
from webmacs.storage.records import UserChanges
from webmacs.validation import is_public_id, read_body

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")


@route(bp, "", ["GET"])
async def list_users() -> Any:
    await current_admin()
    number, size = pagination()
    page = await services().repos.users.page((number - 1) * size, size)
    return json_response(page_body(page, number, size, user_json))


@route(bp, "", ["POST"])
async def create_user() -> Any:
    await current_admin()
    body = read_body(USER_CREATE, await json_body())
    svc = services()
    record = await svc.repos.users.create(
        body["email"], body["username"], await svc.passwords.hash(body["password"]), bool(body["admin"])
    )
    return success("User successfully created.", 201, public_id=record.public_id)


@route(bp, "/<public_id>", ["GET"])
async def get_user(public_id: str) -> Any:
    caller = await current_user()
    if not caller.admin and caller.public_id != public_id:
        raise ApiError(403, ADMIN_REQUIRED)  # authorisation before existence: no enumeration
    user = await services().repos.users.get(public_id) if is_public_id(public_id) else None
    if user is None:
        raise not_found("User", public_id)
    return json_response(user_json(user))


@route(bp, "/<public_id>", ["PUT"])
async def update_user(public_id: str) -> Any:
    caller = await current_user()
    if not caller.admin and caller.public_id != public_id:
        raise ApiError(403, ADMIN_REQUIRED)
    body = read_body(USER_UPDATE, await json_body())
    admin, password = body["admin"], body["password"]
    if admin is not None and not caller.admin and admin != caller.admin:
        raise ApiError(403, ADMIN_REQUIRED)
    svc = services()
    changes = UserChanges(
        email=body["email"], username=body["username"], admin=admin,
        password_hash=None if password is None else await svc.passwords.hash(password),
    )
    if not is_public_id(public_id) or not await svc.repos.users.update(public_id, changes):
        raise not_found("User", public_id)
    if admin is not None:  # a demoted user's sockets here close at once (elsewhere: the watcher)
        tree().sockets.user_role_is(public_id, Role.of_admin_flag(admin))
    return success("User successfully updated.")


@route(bp, "/<public_id>", ["DELETE"])
async def delete_user(public_id: str) -> Any:
    await current_admin()
    if not is_public_id(public_id) or not await services().repos.users.delete(public_id):
        raise not_found("User", public_id)
    tree().sockets.user_deleted(public_id)
    return success("User successfully deleted.")
