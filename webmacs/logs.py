"""The process's log output: JSON lines in production, readable lines in development.

``LOG_FORMAT=json`` (the production default) writes one object per line, for a log shipper:
``ts`` (RFC 3339, UTC), ``level``, ``logger``, ``msg``, ``request_id`` while a request is being
handled, any ``extra`` fields, and a traceback as one ``exc`` string. Access lines carry their
fields separately (``client``, ``method``, ``path``, ``status``, …). ``text`` keeps the
``<time> <LEVEL> <logger>: <message>`` lines, with ``rid=<id>`` appended inside a request.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import orjson

from webmacs.http.request_id import current_request_id
from webmacs.settings import Settings

ACCESS_LOGGER = "webmacs.access"
# Hypercorn's access-log atoms (webmacs.server.RedactingLogger.atoms) -> JSON fields.
ACCESS_FIELDS = {"h": "client", "m": "method", "Uq": "path", "H": "protocol", "s": "status",
                 "b": "bytes", "L": "duration_s"}
_NUMERIC = frozenset({"status", "bytes"})
# LogRecord attributes that are not ``extra`` fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "taskName"}


class RequestIdFilter(logging.Filter):
    """Adds the id of the request being handled (or None) to every record as ``request_id``,
    unless the record brings its own (the access line, written outside the request's task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


def rfc3339(created: float) -> str:
    whole = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((created - whole) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def __init__(self, worker: str = "") -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": rfc3339(record.created), "level": record.levelname,
                               "logger": record.name, "msg": record.getMessage()}
        if self.worker:
            out["worker"] = self.worker
        rid = getattr(record, "request_id", None)
        if rid is not None:
            out["request_id"] = rid
        if record.name == ACCESS_LOGGER and isinstance(record.args, Mapping):
            out.update(access_fields(record.args))
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(out, default=str).decode()
        except TypeError:  # e.g. an int beyond 64 bits in an extra field
            return orjson.dumps({k: v if isinstance(v, str) else str(v) for k, v in out.items()}).decode()


def access_fields(atoms: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for atom, name in ACCESS_FIELDS.items():
        value = atoms.get(atom)
        if value is None:
            continue
        if name in _NUMERIC:
            value = int(value) if str(value).isdigit() else None
        elif name == "duration_s":
            value = float(value)
        fields[name] = value
    return fields


class TextFormatter(logging.Formatter):
    def __init__(self, worker: str = "") -> None:
        super().__init__("%(asctime)s %(levelname)s " + (f"[worker {worker}] " if worker else "")
                         + "%(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        rid = getattr(record, "request_id", None)
        return line if rid is None else f"{line} rid={rid}"


_OURS = "_webmacs_handler"


def configure_logging(settings: Settings, level: str | int = "INFO", worker: str = "",
                      stream: TextIO | None = None) -> logging.Handler:
    """One stderr handler on the root logger in ``settings.log_format``; ``worker`` tags the
    lines of one process of ``--workers N``. Replaces a handler installed here before, leaves
    others (a test harness's) alone."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(worker) if settings.log_format == "json" else TextFormatter(worker))
    handler.addFilter(RequestIdFilter())
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else getattr(logging, level.upper(), logging.INFO))
    return handler
