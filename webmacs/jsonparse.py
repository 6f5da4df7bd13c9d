"""Strict JSON for every input path (REST bodies and WebSocket frames).

``NaN``/``Infinity`` tokens and lone surrogates are malformed. orjson parses first (fast); the
standard library is the fallback only for what orjson refuses but JSON allows (numbers beyond a
double or 64 bits, e.g. ``1e400``), so such a value is rejected by field validation, item by
item, instead of failing the whole body or frame.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class MalformedJSON(ValueError):
    pass


def _reject_constant(token: str) -> Any:
    raise MalformedJSON(f"non-standard JSON token {token}")


def loads_strict(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
        orjson.dumps(value)  # lone surrogates ("\ud800") are no text: refuse them here
    except (ValueError, RecursionError, TypeError, orjson.JSONEncodeError):
        raise MalformedJSON("malformed JSON") from None
    return value
