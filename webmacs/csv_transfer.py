"""Sans-IO parts of ``webmacs export`` and ``webmacs import``: counting exported records, and
checking CSV records in the export format (§4.3) line by line.

The import reads a file twice: once to check every line and learn what spans lines (its events,
its time range) before anything is written, once more to store the rows. Both passes use
:class:`RecordChecker`, so the second cannot accept what the first refused.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import attrs

from webmacs.csv_export import HEADER
from webmacs.validation import parse_timestamp, parse_value

NAME_MAX_LEN = 255  # events' name and unit, experiments' name (the REST API's limits)
_EXPORT_FILE = re.compile(r"experiment_(.+)_[0-9a-f]{8}")


class BadLine(Exception):
    """A line of the file that cannot be imported; nothing is stored."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@attrs.frozen
class Row:
    line: int
    timestamp: datetime
    event_name: str
    value: float
    public_id: uuid.UUID


@attrs.define
class EventInFile:
    """An event as the file names it, where it first appears, and the range of its values."""

    name: str
    public_id: str
    unit: str
    line: int
    lo: float
    hi: float


@attrs.define
class Summary:
    rows: int = 0
    first: datetime | None = None
    last: datetime | None = None
    events: dict[str, EventInFile] = attrs.Factory(dict)


def _timestamp(raw: str) -> datetime | None:
    """The export's own form (UTC, microseconds) parses in C, 40 times faster; any other by the
    REST API's rule."""
    if len(raw) == 32 and raw[10] == "T" and raw.endswith("+00:00") and raw.isascii():
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            pass
    return parse_timestamp(raw)


def _text(raw: str, what: str, line: int) -> str:
    if not 1 <= len(raw) <= NAME_MAX_LEN or "\x00" in raw:
        raise BadLine(line, f"{what} must be 1 to {NAME_MAX_LEN} characters without NUL")
    return raw


def _uuid(raw: str, what: str, line: int) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadLine(line, f"{what} {raw!r} is not a UUID") from None


class RecordChecker:
    """Checks records ``(line number, fields)`` in file order: the header first, then rows."""

    def __init__(self) -> None:
        self.summary = Summary()
        self._header_seen = False
        self._ids: set[int] = set()
        self._names_by_id: dict[str, str] = {}

    def feed(self, line: int, fields: list[str]) -> Row | None:
        """The row on this line (None for the header or a blank line), or :class:`BadLine`."""
        if not self._header_seen:
            if tuple(fields) != HEADER:
                raise BadLine(line, f"expected the export header {','.join(HEADER)}")
            self._header_seen = True
            return None
        if not fields:
            return None
        if len(fields) != len(HEADER):
            raise BadLine(line, f"expected {len(HEADER)} columns, found {len(fields)}")
        ts_raw, name_raw, event_raw, value_raw, unit_raw, id_raw = fields
        ts = _timestamp(ts_raw)
        if ts is None:
            raise BadLine(line, f"timestamp {ts_raw!r} is not an ISO 8601 time with a UTC offset")
        name = _text(name_raw, "event name", line)
        event_id = str(_uuid(event_raw, "event id", line))
        value = parse_value(value_raw)
        if value is None:
            raise BadLine(line, f"value {value_raw!r} is not a number")
        unit = _text(unit_raw, "unit", line)
        public_id = _uuid(id_raw, "datapoint id", line)
        if public_id.int in self._ids:
            raise BadLine(line, f"datapoint id {public_id} appears twice in the file")
        self._ids.add(public_id.int)
        self._note_event(line, name, event_id, unit, value)
        s = self.summary
        s.rows += 1
        s.first = ts if s.first is None or ts < s.first else s.first
        s.last = ts if s.last is None or ts > s.last else s.last
        return Row(line, ts, name, value, public_id)

    def _note_event(self, line: int, name: str, event_id: str, unit: str, value: float) -> None:
        seen = self.summary.events.get(name)
        if seen is None:
            other = self._names_by_id.get(event_id)
            if other is not None:
                raise BadLine(line, f"event id {event_id} is named {name!r} here but {other!r} "
                                    f"on line {self.summary.events[other].line}")
            self._names_by_id[event_id] = name
            self.summary.events[name] = EventInFile(name, event_id, unit, line, value, value)
            return
        if unit != seen.unit:
            raise BadLine(line, f"event {name!r} has unit {unit!r} here but {seen.unit!r} "
                                f"on line {seen.line}")
        if event_id != seen.public_id:
            raise BadLine(line, f"event {name!r} has id {event_id} here but {seen.public_id} "
                                f"on line {seen.line}")
        seen.lo, seen.hi = min(seen.lo, value), max(seen.hi, value)

    def finish(self, lines: int) -> Summary:
        """The summary once every record was fed; ``lines``: the file's last line number."""
        if not self._header_seen:
            raise BadLine(max(lines, 1), f"empty file; expected the export header {','.join(HEADER)}")
        return self.summary


def experiment_name_from(filename: str) -> str:
    """The name an exported file suggests: ``experiment_<name>_<id8>.csv`` gives ``<name>``
    (as the export's file name shows it: spaces became ``_``), any other file its stem."""
    stem = filename.rsplit("/", 1)[-1].removesuffix(".csv")
    match = _EXPORT_FILE.fullmatch(stem)
    return match.group(1) if match else stem


class RecordCounter:
    """Counts CSV records in a stream of chunks: a CRLF ends a record unless it is inside quotes
    (a quoted field may hold line breaks; its quotes, doubled or not, come in pairs). The
    exporter's chunks end at line breaks, so no CRLF is split between two chunks."""

    def __init__(self) -> None:
        self.records = 0
        self._quoted = False  # an odd number of quotes so far: inside a quoted field

    def feed(self, chunk: bytes) -> int:
        """Count the records ``chunk`` ends; returns how many."""
        if b'"' not in chunk and not self._quoted:
            ended = chunk.count(b"\r\n")
        else:
            ended = 0
            parts = chunk.split(b"\r\n")
            for part in parts[:-1]:
                self._quoted ^= part.count(b'"') % 2 == 1
                ended += not self._quoted
            self._quoted ^= parts[-1].count(b'"') % 2 == 1
        self.records += ended
        return ended
