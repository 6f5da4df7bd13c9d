"""Strict JSON for every input path (REST bodies and WebSocket frames).

``NaN``/``Infinity`` tokens and lone surrogates are malformed. orjson parses first (fast); the
standard library is the fallback only for what orjson refuses but JSON allows (numbers beyond a
double, e.g. ``1e400`` or a 4,001-digit integer), so such a value is rejected by field validation,
item by item, instead of failing the whole body or frame.

The fallback reads integers the way orjson does: within 64 bits (``-2**63 .. 2**64-1``) they stay
integers, beyond that they become floats (``inf`` past double range). So a parsed body never holds
an integer orjson cannot write back (an echoed ``page`` or ``seq``), nor one whose ``str()`` trips
Python's 4,300-digit conversion limit.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_MAX_INT_DIGITS = len(str(INT_MAX))


class MalformedJSON(ValueError):
    pass


def _reject_constant(token: str) -> Any:
    raise MalformedJSON(f"non-standard JSON token {token}")


def _parse_int(literal: str) -> int | float:
    """An integer literal as orjson reads it: an int within 64 bits, else a float (maybe ``inf``)."""
    if len(literal.lstrip("-")) <= _MAX_INT_DIGITS:
        value = int(literal)
        if INT_MIN <= value <= INT_MAX:
            return value
    return float(literal)


def loads_strict(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_int=_parse_int)
        orjson.dumps(value)  # lone surrogates ("\ud800") are no text: refuse them here
    except (ValueError, RecursionError, TypeError, orjson.JSONEncodeError):
        raise MalformedJSON("malformed JSON") from None
    return value
