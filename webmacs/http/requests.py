"""Reading requests: the JSON body rules of §2.2 and pagination of §2.4."""

from __future__ import annotations

from typing import Any

from quart import request

from webmacs.http.errors import ApiError
from webmacs.jsonparse import MalformedJSON, loads_strict
from webmacs.validation import FieldError, ValidationFailed, query_int

MALFORMED = FieldError(("body",), "Malformed JSON body.", "json_invalid")
MISSING_BODY = FieldError(("body",), "Field required.", "missing")
MAX_PAGE_SIZE = 1000
# Offsets and page numbers must fit the database's and the JSON encoder's 64-bit integers.
MAX_PAGE = (2**63 - 1) // MAX_PAGE_SIZE


def parse_json(raw: bytes) -> Any:
    try:
        return loads_strict(raw)
    except MalformedJSON:
        raise ValidationFailed([MALFORMED]) from None


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
    page = query_int(request.args, "page", 1, 1, MAX_PAGE)
    size = query_int(request.args, "page_size", 25, 1, MAX_PAGE_SIZE)
    return page, size
