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

from webmacs.fieldspec import BodySpec, FieldSpec

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


# Python's str.isspace() set, spelled out so that Python and ECMA-262 (the regex dialect of JSON
# Schema, which the API description shares) read the patterns below alike.
SPACE_CLASS = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_NOT_IN_EMAIL = rf"@\x00{SPACE_CLASS}"
EMAIL_PATTERN = rf"^[^{_NOT_IN_EMAIL}]+@[^{_NOT_IN_EMAIL}]+$"
EMAIL_MAX_LEN = 255
_EMAIL = re.compile(EMAIL_PATTERN.removeprefix("^").removesuffix("$"))
NO_NUL_PATTERN = r"^[^\x00]*$"


def normalise_email(value: str) -> str | None:
    """The contract's permissive rule: one ``@``, both sides non-empty, <= 255 chars, no whitespace.

    The domain is lower-cased; the local part is kept as given. Returns None when invalid.
    """
    if not isinstance(value, str) or len(value) > EMAIL_MAX_LEN or not _EMAIL.fullmatch(value):
        return None
    local, domain = value.split("@")
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

# ASCII digits only; surrounding whitespace is allowed and stripped before float() (which itself
# refuses \x1c-\x1f although they are whitespace).
DECIMAL_PATTERN = rf"^[{SPACE_CLASS}]*([+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?)[{SPACE_CLASS}]*$"
_DECIMAL = re.compile(DECIMAL_PATTERN.removeprefix("^").removesuffix("$"))


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
        match = _DECIMAL.fullmatch(raw)
        if match is None:
            return None
        value = float(match.group(1))
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
    if dt.tzinfo is not UTC:  # stored and stamped times are UTC already: skip the conversion
        dt = dt.astimezone(UTC)
    return dt.isoformat(timespec="microseconds")


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- body reader


STRING_MSG = "Input should be a valid string."
PASSWORD_MAX_BYTES = 72  # bcrypt's limit
PASSWORD_TOO_LONG = f"Password must be at most {PASSWORD_MAX_BYTES} bytes (UTF-8)."
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
        self, name: str, *, required: bool = True, min_len: int = 8,
        max_bytes: int | None = PASSWORD_MAX_BYTES,
    ) -> str | None:
        """Like :meth:`string` but never echoes the input; bcrypt takes at most 72 bytes."""
        value: str | None = self._typed(name, required, _is_str, STRING_MSG, "string_type", echo=False)
        if value is None:
            return None
        if len(value) < min_len:
            self.error(name, f"String should have at least {min_len} characters.", "string_too_short")
            return None
        if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
            self.error(name, f"Password must be at most {max_bytes} bytes (UTF-8).", "string_too_long")
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

    def choices(self, name: str, options: tuple[str, ...], *, required: bool = True) -> list[str] | None:
        """A list of distinct values, each one of ``options``."""
        value = self._get(name, required)
        if value is None:
            return None
        if (not isinstance(value, list) or not all(isinstance(v, str) and v in options for v in value)
                or len(set(value)) != len(value)):
            quoted = ", ".join(f"'{o}'" for o in options)
            self.error(name, f"Input should be a list of distinct values among {quoted}.", "list_type",
                       value)
            return None
        return value

    def read(self, spec: FieldSpec, *, required: bool) -> Any:
        """The field ``spec`` describes, by its kind and limits."""
        name = spec.name
        if spec.kind == "text":
            return self.string(name, required=required, min_len=spec.min_len, max_len=spec.max_len)
        if spec.kind == "password":
            return self.password(name, required=required, min_len=spec.min_len, max_bytes=spec.max_bytes)
        if spec.kind == "email":
            return self.email(name, required=required)
        if spec.kind == "number":
            return self.number(name, required=required)
        if spec.kind == "boolean":
            return self.boolean(name, required=required)
        if spec.kind == "choice":
            return self.choice(name, spec.options, required=required)
        if spec.kind == "choices":
            return self.choices(name, spec.options, required=required)
        return self.timestamp(name, required=required)

    def check(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)


def read_body(spec: BodySpec, data: Any) -> dict[str, Any]:
    """Every field of ``spec`` (None when absent), or a 422 listing every problem."""
    fields = Fields(data)
    values = {f.name: fields.read(f, required=f.name in spec.required) for f in spec.fields}
    fields.check()
    return values


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
