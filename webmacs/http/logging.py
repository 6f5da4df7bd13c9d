"""``/api/v1/logging`` (alias ``/api/v1/logs``): the operators' journal (§4.5)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from webmacs.http.bodies import LOG_CREATE, LOG_UPDATE
from webmacs.http.context import services
from webmacs.http.errors import not_found
from webmacs.http.guards import current_operator, current_user
from webmacs.http.requests import json_body, pagination
from webmacs.http.responses import json_response, log_entry_json, page_body, success
from webmacs.http.routing import route
from webmacs.validation import is_public_id, read_body


def make_blueprint(name: str, prefix: str) -> Blueprint:
    bp = Blueprint(name, __name__, url_prefix=prefix)

    @route(bp, "", ["GET"])
    async def list_entries() -> Any:
        await current_user()
        number, size = pagination()
        page = await services().repos.logs.page((number - 1) * size, size)
        return json_response(page_body(page, number, size, log_entry_json))

    @route(bp, "", ["POST"])
    async def create_entry() -> Any:
        user = await current_operator()
        body = read_body(LOG_CREATE, await json_body())
        record = await services().repos.logs.create(
            body["content"], body["logging_type"] or "info", user.public_id
        )
        return success("Log entry successfully created.", 201, public_id=record.public_id)

    @route(bp, "/<public_id>", ["GET"])
    async def get_entry(public_id: str) -> Any:
        await current_user()
        entry = await services().repos.logs.get(public_id) if is_public_id(public_id) else None
        if entry is None:
            raise not_found("LogEntry", public_id)
        return json_response(log_entry_json(entry))

    @route(bp, "/<public_id>", ["PUT"])
    async def update_entry(public_id: str) -> Any:
        await current_operator()
        body = read_body(LOG_UPDATE, await json_body())
        repo = services().repos.logs
        if not is_public_id(public_id) or not await repo.update(
            public_id, body["status_type"], body["content"]
        ):
            raise not_found("LogEntry", public_id)
        return success("LogEntry successfully updated.")

    @route(bp, "/<public_id>", ["DELETE"])
    async def delete_entry(public_id: str) -> Any:
        await current_operator()
        if not is_public_id(public_id) or not await services().repos.logs.delete(public_id):
            raise not_found("LogEntry", public_id)
        return success("LogEntry successfully deleted.")

    return bp


bp = make_blueprint("logging", "/api/v1/logging")
alias_bp = make_blueprint("logs", "/api/v1/logs")
