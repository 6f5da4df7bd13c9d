"""Sans-IO frames of the controller side of ``/ws/controller/telemetry`` (docs/protocol.md).

Encoding what a controller sends and reading what the server answers, with no socket: the
simulator's shell and its tests share these, and they are the shortest statement of the protocol.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import attrs
import orjson

# Error frames after which the same frame, resent unchanged, can succeed.
TRANSIENT_ERRORS = frozenset({"Database unavailable.", "Server shutting down."})


def telemetry_url(base_url: str, token: str, controller_id: str) -> str:
    """``http(s)://host[:port][/prefix]`` → ``ws(s)://…/ws/controller/telemetry?token=…&controller_id=…``."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + "/ws/controller/telemetry"
    query = urlencode({"token": token, "controller_id": controller_id})
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def timestamp(epoch_seconds: float) -> str:
    """The contract's timestamp form: UTC, ``+00:00``, microseconds."""
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="microseconds")


def telemetry(seq: int, datapoints: list[dict[str, Any]]) -> str:
    return orjson.dumps({"seq": seq, "datapoints": datapoints}).decode()


def hello(event_ids: list[str]) -> str:
    return orjson.dumps({"type": "hello", "events": event_ids}).decode()


def command_ack(command_id: str) -> str:
    return orjson.dumps({"type": "command_ack", "id": command_id}).decode()


@attrs.frozen
class Ack:
    seq: int
    accepted: int
    rejected: tuple[str, ...]  # the detail of each rejected item


@attrs.frozen
class ErrorReply:
    seq: int | None
    detail: str


@attrs.frozen
class Command:
    id: str
    event_public_id: str
    value: float
    timestamp: str


@attrs.frozen
class Unknown:
    """A reply this client does not know: ignored (the server may add types, contract §1)."""

    raw: str | bytes


Reply = Ack | ErrorReply | Command | Unknown


def parse_reply(raw: str | bytes) -> Reply:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Unknown(raw)
    if not isinstance(body, dict):
        return Unknown(raw)
    kind = body.get("type")
    try:
        if kind == "ack":
            rejected = tuple(str(r.get("detail")) for r in body.get("rejected") or ())
            return Ack(int(body["seq"]), int(body["accepted"]), rejected)
        if kind == "error":
            seq = body.get("seq")
            return ErrorReply(None if seq is None else int(seq), str(body.get("detail")))
        if kind == "command":
            return Command(str(body["id"]), str(body["event_public_id"]), float(body["value"]),
                           str(body.get("timestamp")))
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    return Unknown(raw)
