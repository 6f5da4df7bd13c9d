"""Sans-IO parsing of datapoint items, shared by REST (single, batch) and WebSocket frames.

Items are judged one by one: a bad item is set aside with its reason, the good ones go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from webmacs.storage.records import NewReading, Rejection
from webmacs.validation import TIMESTAMP_MSG, parse_timestamp, parse_value

VALUE_INVALID = "Input should be a finite number or a string holding one."
EVENT_ID_INVALID = "Input should be a valid string."
EVENT_NOT_FOUND = "Event not found."
TIMESTAMP_INVALID = TIMESTAMP_MSG
ITEM_INVALID = "Input should be a valid JSON object."


def parse_item(index: int, item: Any) -> NewReading | Rejection:
    """One ``DatapointCreate``: ``value``, ``event_public_id`` and an optional ``timestamp``."""
    if not isinstance(item, dict):
        return Rejection(index, None, ITEM_INVALID, field="", type="dict_type", input=None)
    event_id = item.get("event_public_id")
    shown_id = event_id if isinstance(event_id, str) else None
    if not isinstance(event_id, str):
        kind = "missing" if event_id is None else "string_type"
        msg = "Field required." if event_id is None else EVENT_ID_INVALID
        return Rejection(index, None, msg, field="event_public_id", type=kind, input=event_id)
    if "value" not in item or item["value"] is None:
        return Rejection(index, shown_id, "Field required.", field="value", type="missing")
    value = parse_value(item["value"])
    if value is None:
        raw = item["value"]
        shown = raw if isinstance(raw, str | bool) else str(raw)
        return Rejection(index, shown_id, VALUE_INVALID, field="value", type="finite_number", input=shown)
    raw_ts = item.get("timestamp")
    timestamp = None
    if raw_ts is not None:
        timestamp = parse_timestamp(raw_ts)
        if timestamp is None:
            return Rejection(
                index, shown_id, TIMESTAMP_INVALID, field="timestamp", type="datetime_parsing",
                input=raw_ts,
            )
    return NewReading(index, value, event_id, timestamp)


def parse_items(items: Sequence[Any]) -> tuple[list[NewReading], list[Rejection]]:
    good: list[NewReading] = []
    bad: list[Rejection] = []
    for index, item in enumerate(items):
        parsed = parse_item(index, item)
        (good if isinstance(parsed, NewReading) else bad).append(parsed)  # type: ignore[arg-type]
    return good, bad


def rejection_json(r: Rejection) -> dict[str, Any]:
    return {"index": r.index, "event_public_id": r.event_public_id, "detail": r.detail}


def batch_too_large(n: int, limit: int) -> str:
    return f"Batch too large: {n} datapoints (limit {limit})."
