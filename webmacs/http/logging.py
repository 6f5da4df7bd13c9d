"""``/api/v1/logging`` (alias ``/api/v1/logs``): the operators' journal (§4.5)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from webmacs.http.context import services
from webmacs.http.errors import not_found
from webmacs.http.guards import current_user
from webmacs.http.requests import json_body, pagination
from webmacs.http.responses import json_response, log_entry_json, page_body, success
from webmacs.http.routing import route
from webmacs.storage.records import LOGGING_TYPES, STATUS_TYPES
from webmacs.validation import Fields, is_public_id


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
        user = await current_user()
        fields = Fields(await json_body())
        content = fields.string("content", min_len=1, max_len=500)
        logging_type = fields.choice("logging_type", LOGGING_TYPES, required=False) or "info"
        fields.check()
        assert content is not None
        record = await services().repos.logs.create(content, logging_type, user.public_id)
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
        await current_user()
        fields = Fields(await json_body())
        status_type = fields.choice("status_type", STATUS_TYPES, required=False)
        content = fields.string("content", required=False, min_len=1, max_len=500)
        fields.check()
        repo = services().repos.logs
        if not is_public_id(public_id) or not await repo.update(public_id, status_type, content):
            raise not_found("LogEntry", public_id)
        return success("LogEntry successfully updated.")

    @route(bp, "/<public_id>", ["DELETE"])
    async def delete_entry(public_id: str) -> Any:
        await current_user()
        if not is_public_id(public_id) or not await services().repos.logs.delete(public_id):
            raise not_found("LogEntry", public_id)
        return success("LogEntry successfully deleted.")

    return bp


bp = make_blueprint("logging", "/api/v1/logging")
alias_bp = make_blueprint("logs", "/api/v1/logs")
