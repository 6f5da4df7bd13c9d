"""JSON responses (orjson) and the presenters that turn records into the contract's shapes."""

from __future__ import annotations

from typing import Any

import orjson
from quart import Response

from webmacs.storage.records import (
    DatapointRecord,
    EventRecord,
    ExperimentRecord,
    LogEntryRecord,
    Page,
    UserRecord,
)
from webmacs.validation import format_timestamp


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def success(message: str, status: int = 200, **extra: Any) -> Response:
    return json_response({"status": "success", "message": message, **extra}, status)


def page_body(page: Page[Any], number: int, size: int, present: Any) -> dict[str, Any]:
    return {"page": number, "page_size": size, "total": page.total,
            "data": [present(item) for item in page.items]}


def user_json(u: UserRecord) -> dict[str, Any]:
    return {"public_id": u.public_id, "email": u.email, "username": u.username, "admin": u.admin,
            "role": u.role.label, "registered_on": format_timestamp(u.registered_on)}


def event_json(e: EventRecord) -> dict[str, Any]:
    return {"public_id": e.public_id, "name": e.name, "min_value": e.min_value,
            "max_value": e.max_value, "unit": e.unit, "type": e.type,
            "user_public_id": e.user_public_id}


def experiment_json(x: ExperimentRecord) -> dict[str, Any]:
    return {"public_id": x.public_id, "name": x.name, "started_on": format_timestamp(x.started_on),
            "stopped_on": None if x.stopped_on is None else format_timestamp(x.stopped_on),
            "user_public_id": x.user_public_id}


def datapoint_json(d: DatapointRecord) -> dict[str, Any]:
    return {"public_id": d.public_id, "value": d.value, "timestamp": format_timestamp(d.timestamp),
            "event_public_id": d.event_public_id, "experiment_public_id": d.experiment_public_id}


def log_entry_json(entry: LogEntryRecord) -> dict[str, Any]:
    return {"public_id": entry.public_id, "content": entry.content,
            "logging_type": entry.logging_type, "status_type": entry.status_type,
            "user_public_id": entry.user_public_id, "created_on": format_timestamp(entry.created_on)}
