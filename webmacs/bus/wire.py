"""A batch on the wire: one orjson document per message, encoded once by the publisher.

``{"o": origin, "s": seq, "f": first, "r": [[public_id, value, µs since epoch, event, experiment],
...]}``. Timestamps travel as integer microseconds (exact, and cheaper to decode than text).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from webmacs.bus.base import Batch, Control
from webmacs.storage.records import DatapointRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class BadMessage(ValueError):
    """Not a batch (another publisher on the subject, or a newer format)."""


def encode(batch: Batch) -> bytes:
    return orjson.dumps({
        "o": batch.origin, "s": batch.seq, "f": batch.first,
        "r": [[r.public_id, r.value, (r.timestamp - EPOCH) // _US, r.event_public_id,
               r.experiment_public_id] for r in batch.rows],
    })


def decode(data: bytes) -> Batch:
    try:
        doc = orjson.loads(data)
        rows = tuple(
            DatapointRecord(pid, float(value), EPOCH + timedelta(microseconds=us), event, exp)
            for pid, value, us, event, exp in doc["r"]
        )
        origin, seq, first = doc["o"], doc["s"], doc["f"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadMessage(str(exc)) from None
    if not (isinstance(origin, str) and isinstance(seq, int) and isinstance(first, int)):
        raise BadMessage("bad header")
    return Batch(origin, seq, first, rows)


def encode_control(msg: Control) -> bytes:
    """``{"o": origin, "k": kind, "p": payload}``."""
    return orjson.dumps({"o": msg.origin, "k": msg.kind, "p": msg.payload})


def decode_control(data: bytes) -> Control:
    try:
        doc: Any = orjson.loads(data)
        origin, kind, payload = doc["o"], doc["k"], doc["p"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadMessage(str(exc)) from None
    if not (isinstance(origin, str) and isinstance(kind, str) and isinstance(payload, dict)):
        raise BadMessage("bad control message")
    return Control(origin, kind, payload)
