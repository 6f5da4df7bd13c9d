"""Reading requests: the JSON body rules of §2.2 and pagination of §2.4."""

from __future__ import annotations

import json
from typing import Any

import orjson
from quart import request

from webmacs.http.errors import ApiError
from webmacs.validation import FieldError, ValidationFailed, query_int

MALFORMED = FieldError(("body",), "Malformed JSON body.", "json_invalid")
MISSING_BODY = FieldError(("body",), "Field required.", "missing")
MAX_PAGE_SIZE = 1000


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON token {token}")


def parse_json(raw: bytes) -> Any:
    """Strict JSON: NaN/Infinity tokens are malformed. orjson first (fast); the stdlib parser
    only for what orjson refuses but JSON allows (numbers beyond double or 64-bit range), so
    that such a value is rejected by field validation rather than as a malformed body."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
        orjson.dumps(value)  # lone surrogates ("\ud800") are no text: refuse them here
    except (ValueError, RecursionError, TypeError, orjson.JSONEncodeError):
        raise ValidationFailed([MALFORMED]) from None
    return value


def is_json_type(content_type: str | None) -> bool:
    if content_type is None or content_type.strip() == "":
        return True
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


async def json_body(required: bool = True) -> Any:
    """The parsed body; 415 for a non-JSON type with content, 422 when malformed or missing."""
    raw = await request.get_data(as_text=False)
    assert isinstance(raw, bytes)
    if raw and not is_json_type(request.headers.get("Content-Type")):
        raise ApiError(415, "Content-Type must be application/json.")
    if not raw.strip():
        if required:
            raise ValidationFailed([MISSING_BODY])
        return None
    return parse_json(raw)


def pagination() -> tuple[int, int]:
    page = query_int(request.args, "page", 1, 1)
    size = query_int(request.args, "page_size", 25, 1, MAX_PAGE_SIZE)
    return page, size
