"""``/api/v1/users``: admin-managed accounts, self-service on one's own profile (§4.1)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from webmacs.http.bodies import USER_CREATE, USER_UPDATE
from webmacs.http.context import services
from webmacs.http.errors import ApiError, not_found
from webmacs.http.guards import ADMIN_REQUIRED, Principal, current_admin, current_principal
from webmacs.http.requests import json_body, pagination
from webmacs.http.responses import json_response, page_body, success, user_json
from webmacs.http.routing import route
from webmacs.roles import Role, RoleConflict, requested_role
from webmacs.storage.records import UserChanges
from webmacs.validation import FieldError, ValidationFailed, is_public_id, read_body

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")


def body_role(body: dict[str, Any], current: Role | None) -> Role | None:
    """The role a read body asks for (see :func:`requested_role`), or the 422 of a conflict."""
    role = None if body["role"] is None else Role.parse(body["role"])
    try:
        return requested_role(role, body["admin"], current)
    except RoleConflict as exc:
        raise ValidationFailed([FieldError(("body",), str(exc), "value_error")]) from None


async def admin_or_self(public_id: str) -> Principal:
    """The caller, if an admin or the user ``public_id`` themself; checked before existence, so
    that a 403 never tells whether an id exists."""
    caller = await current_principal()
    if not caller.at_least(Role.ADMIN) and caller.user.public_id != public_id:
        raise ApiError(403, ADMIN_REQUIRED)
    return caller


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
    role = body_role(body, None) or Role.OPERATOR
    svc = services()
    record = await svc.repos.users.create(
        body["email"], body["username"], await svc.passwords.hash(body["password"]), role
    )
    return success("User successfully created.", 201, public_id=record.public_id)


@route(bp, "/<public_id>", ["GET"])
async def get_user(public_id: str) -> Any:
    await admin_or_self(public_id)
    user = await services().repos.users.get(public_id) if is_public_id(public_id) else None
    if user is None:
        raise not_found("User", public_id)
    return json_response(user_json(user))


@route(bp, "/<public_id>", ["PUT"])
async def update_user(public_id: str) -> Any:
    caller = await admin_or_self(public_id)
    body = read_body(USER_UPDATE, await json_body())
    svc = services()
    role = None
    if body["role"] is not None or body["admin"] is not None:
        target = await svc.repos.users.get(public_id) if is_public_id(public_id) else None
        if target is None:
            raise not_found("User", public_id)
        role = body_role(body, target.role)
        if role is not None and not caller.at_least(Role.ADMIN) and role is not caller.role:
            raise ApiError(403, ADMIN_REQUIRED)
    password = body["password"]
    changes = UserChanges(
        email=body["email"], username=body["username"], role=role,
        password_hash=None if password is None else await svc.passwords.hash(password),
    )
    if not is_public_id(public_id) or not await svc.repos.users.update(public_id, changes):
        raise not_found("User", public_id)
    return success("User successfully updated.")


@route(bp, "/<public_id>", ["DELETE"])
async def delete_user(public_id: str) -> Any:
    await current_admin()
    if not is_public_id(public_id) or not await services().repos.users.delete(public_id):
        raise not_found("User", public_id)
    return success("User successfully deleted.")
