"""Sans-IO input validation shared by REST routes and WebSocket frames.

Errors are collected as :class:`FieldError` items in the contract's 422 shape
(``{"loc": [...], "msg": ..., "type": ...}``) so a client sees every problem at once.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs

_MISSING: Any = object()


@attrs.frozen
class FieldError:
    loc: tuple[str | int, ...]
    msg: str
    type: str
    input: Any = _MISSING

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loc": list(self.loc), "msg": self.msg, "type": self.type}
        if self.input is not _MISSING:
            out["input"] = self.input
        return out


class ValidationFailed(Exception):
    """Raised with every :class:`FieldError` of a request; rendered as a 422."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors)
        self.errors = errors


def normalise_email(value: str) -> str | None:
    """The contract's permissive rule: one ``@``, both sides non-empty, <= 255 chars, no whitespace.

    The domain is lower-cased; the local part is kept as given. Returns None when invalid.
    """
    if not isinstance(value, str) or len(value) > 255 or value.count("@") != 1:
        return None
    if any(ch.isspace() for ch in value) or "\x00" in value:
        return None
    local, domain = value.split("@")
    if not local or not domain:
        return None
    return f"{local}@{domain.lower()}"


def is_public_id(value: str) -> bool:
    """Whether ``value`` can be one of our ids (a lower-case UUID); anything else is simply unknown."""
    if len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def new_public_id() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- numbers and times

_DECIMAL = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def parse_value(raw: Any) -> float | None:
    """A datapoint value: a JSON number or a string holding a finite decimal; None if unusable."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        try:
            value = float(raw)
        except OverflowError:
            return None
    elif isinstance(raw, float):
        value = raw
    elif isinstance(raw, str):
        if not _DECIMAL.fullmatch(raw):
            return None
        value = float(raw)
    else:
        return None
    return value if math.isfinite(value) else None


_TS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s?(?:([Zz])|([+-])(\d{2}):?(\d{2}))"
)


def parse_timestamp(raw: Any) -> datetime | None:
    """ISO 8601 *with* an offset (``Z`` or ``±hh:mm``) into an aware UTC datetime; None otherwise.

    A space before the offset digits is accepted because an unencoded ``+`` in a query string
    arrives as a space.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    m = _TS.fullmatch(text)
    if m is None:
        # "2026-01-01T00:00:00 00:00" is what "+00:00" becomes in a query string.
        m2 = re.fullmatch(r"(.*\d) (\d{2}:?\d{2})", text)
        if m2 is None:
            return None
        m = _TS.fullmatch(f"{m2.group(1)}+{m2.group(2)}")
        if m is None:
            return None
    year, month, day, hour, minute, second, frac, zulu, sign, oh, om = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        tz: timezone = UTC
        if not zulu:
            offset = timedelta(hours=int(oh), minutes=int(om))
            if offset >= timedelta(hours=24):
                return None
            tz = timezone(offset if sign == "+" else -offset)
        dt = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tzinfo=tz
        )
    except ValueError:
        return None
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        return None


def format_timestamp(dt: datetime) -> str:
    """Output form everywhere: UTC, ``+00:00``, microseconds."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- body reader


STRING_MSG = "Input should be a valid string."
TIMESTAMP_MSG = "Input should be an ISO 8601 timestamp with a UTC offset."


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


class Fields:
    """Reads typed fields out of a JSON object, collecting errors instead of raising at the first."""

    def __init__(self, data: Any, loc: tuple[str | int, ...] = ("body",)) -> None:
        self.loc = loc
        self.errors: list[FieldError] = []
        if isinstance(data, Mapping):
            self.data: Mapping[str, Any] = data
        else:
            self.data = {}
            self.errors.append(FieldError(loc, "Input should be a valid JSON object.", "dict_type"))

    def error(self, name: str | None, msg: str, type_: str, value: Any = _MISSING) -> None:
        loc = self.loc if name is None else (*self.loc, name)
        self.errors.append(FieldError(loc, msg, type_, value))

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name)
        if value is None and required:
            self.error(name, "Field required.", "missing")
        return value

    def _typed(
        self, name: str, required: bool, ok: Callable[[Any], bool], msg: str, type_: str,
        echo: bool = True,
    ) -> Any:
        """The field if present and of the right type; None (with an error if due) otherwise."""
        value = self._get(name, required)
        if value is None:
            return None
        if not ok(value):
            self.error(name, msg, type_, value if echo else _MISSING)
            return None
        return value

    def string(
        self, name: str, *, required: bool = True, min_len: int = 0, max_len: int | None = None
    ) -> str | None:
        value: str | None = self._typed(name, required, _is_str, STRING_MSG, "string_type")
        if value is None:
            return None
        if "\x00" in value:
            self.error(name, "String must not contain NUL characters.", "string_nul", value)
            return None
        if len(value) < min_len:
            self.error(
                name, f"String should have at least {min_len} character{'s' * (min_len != 1)}.",
                "string_too_short", value,
            )
            return None
        if max_len is not None and len(value) > max_len:
            self.error(
                name, f"String should have at most {max_len} characters.", "string_too_long", value
            )
            return None
        return value

    def password(
        self, name: str, *, required: bool = True, min_len: int = 8, max_bytes: int | None = 72
    ) -> str | None:
        """Like :meth:`string` but never echoes the input; bcrypt takes at most 72 bytes."""
        value: str | None = self._typed(name, required, _is_str, STRING_MSG, "string_type", echo=False)
        if value is None:
            return None
        if len(value) < min_len:
            self.error(name, f"String should have at least {min_len} characters.", "string_too_short")
            return None
        if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
            self.error(name, "Password must be at most 72 bytes (UTF-8).", "string_too_long")
            return None
        return value

    def email(self, name: str, *, required: bool = True) -> str | None:
        value: str | None = self._typed(name, required, _is_str, STRING_MSG, "string_type")
        if value is None:
            return None
        email = normalise_email(value)
        if email is None:
            self.error(name, "value is not a valid email address.", "value_error", value)
        return email

    def number(self, name: str, *, required: bool = True) -> float | None:
        value = self._typed(
            name, required, lambda v: not isinstance(v, bool) and isinstance(v, int | float),
            "Input should be a valid number.", "float_type",
        )
        if value is None:
            return None
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            self.error(name, "Input should be a finite number.", "finite_number", str(value))
            return None
        return number

    def timestamp(self, name: str, *, required: bool = True) -> datetime | None:
        value = self._get(name, required)
        if value is None:
            return None
        parsed = parse_timestamp(value)
        if parsed is None:
            self.error(name, TIMESTAMP_MSG, "datetime_parsing", value)
        return parsed

    def boolean(self, name: str, *, required: bool = True) -> bool | None:
        value: bool | None = self._typed(
            name, required, lambda v: isinstance(v, bool), "Input should be a valid boolean.",
            "bool_type",
        )
        return value

    def choice(self, name: str, options: tuple[str, ...], *, required: bool = True) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str) or value not in options:
            quoted = ", ".join(f"'{o}'" for o in options)
            self.error(name, f"Input should be one of {quoted}.", "enum", value)
            return None
        return value

    def check(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)


_QUERY_INT = re.compile(r"[+-]?[0-9]+")


def query_int(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A bounded integer query parameter, raising a 422 ``["query", name]`` when off.

    Only ASCII digits with an optional sign count (no ``1_000``, no other scripts' digits). A
    literal far beyond the bounds is judged by its length, never converted: a 10,000-digit page
    number is out of range, not a 500 from Python's int-string conversion limit.
    """
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not _QUERY_INT.fullmatch(text):
        raise ValidationFailed(
            [FieldError(("query", name), "Input should be a valid integer.", "int_parsing", raw)]
        )
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > len(str(max(abs(low), abs(high)))):
        value = low - 1 if text.startswith("-") else high + 1
    else:
        value = int(text)
    if value < low:
        raise ValidationFailed(
            [FieldError(("query", name), f"Input should be greater than or equal to {low}.",
                        "greater_than_equal", raw)]
        )
    if value > high:
        raise ValidationFailed(
            [FieldError(("query", name), f"Input should be less than or equal to {high}.",
                        "less_than_equal", raw)]
        )
    return value
