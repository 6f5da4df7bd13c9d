"""Sans-IO WebSocket frames of §5: telemetry in, acks and errors out, stream control."""

from __future__ import annotations

from typing import Any

import attrs
import orjson

from webmacs.commands import CommandAck, ControlError, Hello, is_control, parse_control
from webmacs.jsonparse import MalformedJSON, loads_strict
from webmacs.readings import batch_too_large, parse_items, rejection_json
from webmacs.storage.records import NewReading, Rejection

MALFORMED = "Malformed JSON frame."
NOT_OBJECT = "Frame must be a JSON object."
BAD_SEQ = "Field 'seq' must be an integer."
BAD_DATAPOINTS = "Field 'datapoints' must be a list."


@attrs.frozen
class TelemetryFrame:
    """A usable frame: its ``seq`` (if any), good readings and per-item rejections."""

    seq: int | None
    has_seq: bool
    readings: list[NewReading]
    rejected: list[Rejection]


@attrs.frozen
class FrameError:
    """A frame unusable as a whole; ``has_seq`` tells whether the client asked for replies."""

    seq: int | None
    has_seq: bool
    detail: str


def parse_telemetry(raw: str | bytes, max_batch: int) -> TelemetryFrame | FrameError:
    parsed = parse_controller_frame(raw, max_batch, control=False)
    assert isinstance(parsed, TelemetryFrame | FrameError)
    return parsed


ControllerFrame = TelemetryFrame | FrameError | Hello | CommandAck | ControlError


def parse_controller_frame(raw: str | bytes, max_batch: int, *, control: bool) -> ControllerFrame:
    """A telemetry frame, or with ``control`` a ``hello``/``command_ack`` frame (§8) too."""
    if isinstance(raw, bytes):
        return FrameError(None, False, MALFORMED)  # binary frames are not JSON text (§5.2)
    try:
        body = loads_strict(raw)
    except MalformedJSON:
        return FrameError(None, False, MALFORMED)
    if control and is_control(body):
        return parse_control(body)
    if not isinstance(body, dict):
        return FrameError(None, False, NOT_OBJECT)
    has_seq = "seq" in body and body["seq"] is not None
    seq = body.get("seq")
    if has_seq and (isinstance(seq, bool) or not isinstance(seq, int)):
        return FrameError(None, True, BAD_SEQ)
    items = body.get("datapoints")
    if not isinstance(items, list):
        return FrameError(seq, has_seq, BAD_DATAPOINTS)
    if len(items) > max_batch:
        return FrameError(seq, has_seq, batch_too_large(len(items), max_batch))
    good, bad = parse_items(items)
    return TelemetryFrame(seq, has_seq, good, bad)


def ack(seq: int, accepted: int, rejected: list[Rejection]) -> bytes:
    return orjson.dumps({"type": "ack", "seq": seq, "accepted": accepted,
                         "rejected": [rejection_json(r) for r in rejected]})


def error(seq: int | None, detail: str) -> bytes:
    return orjson.dumps({"type": "error", "seq": seq, "detail": detail})


CONNECTED = orjson.dumps({"type": "connected", "message": "Subscribed to live datapoint stream."})
PONG = orjson.dumps({"type": "pong"})


def is_ping(raw: str | bytes) -> bool:
    """Whether a stream client's frame is ``{"type":"ping"}``; anything else is ignored."""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and body.get("type") == "ping"
