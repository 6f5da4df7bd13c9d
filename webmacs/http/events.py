"""``/api/v1/events``: sensor and actuator channels (§4.2)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from webmacs.http.bodies import EVENT_CREATE, EVENT_UPDATE
from webmacs.http.context import services, tree
from webmacs.http.errors import not_found
from webmacs.http.guards import current_operator, current_user
from webmacs.http.requests import json_body, pagination
from webmacs.http.responses import event_json, json_response, page_body, success
from webmacs.http.routing import route
from webmacs.storage.records import EventFields
from webmacs.validation import is_public_id, read_body

bp = Blueprint("events", __name__, url_prefix="/api/v1/events")


def read_event_fields(body: Any, required: bool) -> EventFields:
    return EventFields(**read_body(EVENT_CREATE if required else EVENT_UPDATE, body))


@route(bp, "", ["GET"])
async def list_events() -> Any:
    await current_user()
    number, size = pagination()
    page = await services().repos.events.page((number - 1) * size, size)
    return json_response(page_body(page, number, size, event_json))


@route(bp, "", ["POST"])
async def create_event() -> Any:
    user = await current_operator()
    fields = read_event_fields(await json_body(), required=True)
    record = await services().repos.events.create(fields, user.public_id)
    await tree().event_created(record.public_id)
    return success("Event successfully created.", 201, public_id=record.public_id)


@route(bp, "/<public_id>", ["GET"])
async def get_event(public_id: str) -> Any:
    await current_user()
    event = await services().repos.events.get(public_id) if is_public_id(public_id) else None
    if event is None:
        raise not_found("Event", public_id)
    return json_response(event_json(event))


@route(bp, "/<public_id>", ["PUT"])
async def update_event(public_id: str) -> Any:
    await current_operator()
    fields = read_event_fields(await json_body(), required=False)
    if not is_public_id(public_id) or not await services().repos.events.update(public_id, fields):
        raise not_found("Event", public_id)
    return success("Event successfully updated.")


@route(bp, "/<public_id>", ["DELETE"])
async def delete_event(public_id: str) -> Any:
    await current_operator()
    if not is_public_id(public_id) or not await services().repos.events.delete(public_id):
        raise not_found("Event", public_id)
    await tree().event_deleted(public_id)
    return success("Event successfully deleted.")
