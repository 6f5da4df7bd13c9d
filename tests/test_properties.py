"""Property-based tests (Hypothesis) of everything the server parses.

Sans-IO parsers (strict JSON, telemetry frames, stream client frames, items, values, timestamps,
query integers) never raise an unexpected exception: they return a result or their typed error.
Valid generated inputs round-trip; invalid ones get the documented error. Every REST body (and
the list routes' query strings) fuzzed through the app's test client on SQLite never gets a 5xx.

Examples are derandomized by default (profile ``ci``) so a run is repeatable; set
``HYPOTHESIS_PROFILE=explore`` for fresh random examples. Counts are bounded (``max_examples``)
so the file runs in well under a minute.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, login, make_settings, open_app
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from webmacs.frames import (
    BAD_DATAPOINTS,
    BAD_SEQ,
    MALFORMED,
    NOT_OBJECT,
    FrameError,
    TelemetryFrame,
    ack,
    is_ping,
    parse_telemetry,
)
from webmacs.http.requests import MAX_PAGE, MAX_PAGE_SIZE
from webmacs.jsonparse import INT_MAX, INT_MIN, MalformedJSON, loads_strict
from webmacs.readings import (
    EVENT_ID_INVALID,
    ITEM_INVALID,
    TIMESTAMP_INVALID,
    VALUE_INVALID,
    batch_too_large,
    parse_item,
)
from webmacs.storage.records import NewReading, Rejection
from webmacs.validation import ValidationFailed, parse_timestamp, parse_value, query_int

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", database=None, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SANS_IO = settings(max_examples=200, deadline=None)
REST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- strategies

ints64 = st.integers(min_value=INT_MIN, max_value=INT_MAX)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.none() | st.booleans() | ints64 | finite | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
# Any JSON number literal, including integers far beyond 64 bits and exponents beyond a double.
number_literals = st.from_regex(r"-?(0|[1-9][0-9]{0,400})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,4})?",
                                fullmatch=True)
# Text that is often almost JSON: valid documents with a hostile token spliced in.
hostile_tokens = st.sampled_from(["NaN", "Infinity", "-Infinity", '"\\ud800"', "1e400", "9" * 5000,
                                  "[", "}", ",", "null", '"', "\\", "\x00", "tru"])


@st.composite
def almost_json(draw: st.DrawFn) -> str:
    text = orjson.dumps(draw(json_values)).decode()
    at = draw(st.integers(min_value=0, max_value=len(text)))
    return text[:at] + draw(hostile_tokens) + text[at:]


any_text = st.text(max_size=200) | almost_json()
aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30),
    timezones=st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-23 * 60, 23 * 60)),
)
decimal_strings = st.from_regex(r"[+-]?([0-9]{1,15}(\.[0-9]{0,6})?|\.[0-9]{1,6})([eE][+-]?[0-9]{1,2})?",
                                fullmatch=True)
good_values = finite | st.integers(min_value=-(2**53), max_value=2**53) | decimal_strings


@st.composite
def good_items(draw: st.DrawFn) -> tuple[dict[str, Any], NewReading]:
    """A valid ``DatapointCreate`` and the reading it must parse into (index 0)."""
    value = draw(good_values)
    event = draw(st.text(min_size=1, max_size=40))
    item: dict[str, Any] = {"value": value, "event_public_id": event}
    stamp = draw(st.none() | aware_datetimes)
    if stamp is not None:
        item["timestamp"] = stamp.isoformat()
    return item, NewReading(0, float(value), event, None if stamp is None else stamp.astimezone(UTC))


BAD_VALUES = st.sampled_from([True, False, [], {}, "nan", "inf", "-Infinity", "0x10", "1_000", "", " ",
                              "1e400"]) | st.text(alphabet="abcxyz_", min_size=1, max_size=5)


@st.composite
def bad_items(draw: st.DrawFn) -> tuple[Any, str]:
    """An invalid item and the documented rejection detail it must get."""
    event = draw(st.text(min_size=1, max_size=20))
    kind = draw(st.sampled_from(["not_object", "no_event", "event_type", "no_value", "value", "timestamp"]))
    if kind == "not_object":
        return draw(json_scalars | st.lists(json_scalars, max_size=3)), ITEM_INVALID
    if kind == "no_event":
        return {"value": 1.0}, "Field required."
    if kind == "event_type":
        return {"value": 1.0, "event_public_id": draw(ints64 | st.booleans() | st.just([]))}, EVENT_ID_INVALID
    if kind == "no_value":
        return {"event_public_id": event, "value": None}, "Field required."
    if kind == "value":
        return {"event_public_id": event, "value": draw(BAD_VALUES)}, VALUE_INVALID
    naive = draw(st.datetimes(min_value=datetime(1970, 1, 2))).isoformat()
    stamp = draw(st.sampled_from([naive, "yesterday", "2026-02-30T00:00:00Z", "1700000000"])
                 | st.integers() | st.booleans())
    return {"event_public_id": event, "value": 1.0, "timestamp": stamp}, TIMESTAMP_INVALID


# ---------------------------------------------------------------- strict JSON


def is_json(raw: str | bytes) -> bool:
    """RFC 8259 JSON (no NaN/Infinity, no lone surrogates), judged by the standard library with
    integers of any length."""
    try:
        value = json.loads(raw, parse_constant=_refuse, parse_int=lambda _: 0)
        orjson.dumps(value)
    except (ValueError, RecursionError, orjson.JSONEncodeError):
        return False
    return True


def _refuse(token: str) -> Any:
    raise ValueError(token)


HUGE_VALUE_FRAME = '{"seq": 1, "datapoints": [{"value": %s, "event_public_id": "e"}]}' % ("9" * 4001)


@SANS_IO
@given(any_text | st.binary(max_size=100))
@example(HUGE_VALUE_FRAME)
@example('{"page": %s}' % ("1" * 5000))
def test_loads_strict_takes_all_json_and_refuses_the_rest_with_malformed_json(raw: str | bytes) -> None:
    try:
        value = loads_strict(raw)
    except MalformedJSON:
        assert not is_json(raw)
        return
    assert is_json(raw)
    orjson.dumps(value)  # whatever it returns can be written back (no huge ints, no surrogates)


@SANS_IO
@given(json_values)
def test_loads_strict_round_trips_valid_json(value: Any) -> None:
    assert loads_strict(orjson.dumps(value)) == value


@SANS_IO
@given(number_literals)
@example("9" * 4001)
@example("-" + "9" * 5000)
@example(str(2**64))
@example("1e400")
@example("-0.0e99999")
def test_every_json_number_parses_as_orjson_reads_it(literal: str) -> None:
    value = loads_strict(literal)
    if isinstance(value, int):
        assert INT_MIN <= value <= INT_MAX
        assert value == int(literal)
    else:
        assert value == float(literal)  # ±inf beyond a double, rejected later by validation


# ---------------------------------------------------------------- telemetry frames


@SANS_IO
@given(any_text | st.binary(max_size=50), st.integers(min_value=0, max_value=5))
@example(HUGE_VALUE_FRAME, 5)
def test_parse_telemetry_never_raises_and_its_replies_encode(raw: str | bytes, max_batch: int) -> None:
    parsed = parse_telemetry(raw, max_batch)
    assert isinstance(parsed, TelemetryFrame | FrameError)
    if isinstance(raw, str) and is_json(raw):
        assert parsed != FrameError(None, False, MALFORMED)  # any JSON text is judged, not refused
    if isinstance(parsed, TelemetryFrame):
        assert len(parsed.readings) + len(parsed.rejected) <= max_batch
        if parsed.seq is not None:
            orjson.loads(ack(parsed.seq, len(parsed.readings), parsed.rejected))


@SANS_IO
@given(st.none() | ints64, st.lists(good_items(), max_size=8))
def test_valid_frames_round_trip(seq: int | None, items: list[tuple[dict[str, Any], NewReading]]) -> None:
    body: dict[str, Any] = {"datapoints": [item for item, _ in items]}
    if seq is not None:
        body["seq"] = seq
    parsed = parse_telemetry(orjson.dumps(body).decode(), 10_000)
    assert isinstance(parsed, TelemetryFrame)
    assert (parsed.seq, parsed.has_seq, parsed.rejected) == (seq, seq is not None, [])
    assert parsed.readings == [expected._replace(index=i) for i, (_, expected) in enumerate(items)]


@SANS_IO
@given(st.lists(good_items() | bad_items(), max_size=8))
def test_bad_items_are_rejected_one_by_one_with_the_documented_detail(items: list[Any]) -> None:
    raw = orjson.dumps({"seq": 1, "datapoints": [item for item, _ in items]}).decode()
    parsed = parse_telemetry(raw, 10_000)
    assert isinstance(parsed, TelemetryFrame)
    bad = {r.index: r.detail for r in parsed.rejected}
    good = {r.index for r in parsed.readings}
    for index, (_, expected) in enumerate(items):
        if isinstance(expected, NewReading):
            assert index in good
        else:
            assert bad[index] == expected


whole_frame_errors = st.one_of(
    (json_scalars | st.lists(json_values, max_size=3)).map(
        lambda v: (v, FrameError(None, False, NOT_OBJECT))),
    (finite.filter(lambda f: not f.is_integer()) | st.text(max_size=5) | st.booleans()
     | st.lists(ints64, max_size=2)).map(
        lambda s: ({"seq": s, "datapoints": []}, FrameError(None, True, BAD_SEQ))),
    st.tuples(ints64, json_scalars | st.dictionaries(st.text(max_size=3), json_scalars, max_size=2)).map(
        lambda t: ({"seq": t[0], "datapoints": t[1]}, FrameError(t[0], True, BAD_DATAPOINTS))),
    st.integers(min_value=4, max_value=30).map(
        lambda n: ({"datapoints": [1] * n}, FrameError(None, False, batch_too_large(n, 3)))),
)


@SANS_IO
@given(whole_frame_errors)
def test_frames_unusable_as_a_whole_get_the_documented_error(case: tuple[Any, FrameError]) -> None:
    body, expected = case
    assert parse_telemetry(orjson.dumps(body).decode(), 3) == expected


@SANS_IO
@given(st.binary(max_size=40))
def test_binary_frames_are_malformed(raw: bytes) -> None:
    assert parse_telemetry(raw, 10) == FrameError(None, False, MALFORMED)


# ---------------------------------------------------------------- stream client frames


@SANS_IO
@given(any_text | st.binary(max_size=50))
def test_is_ping_never_raises(raw: str | bytes) -> None:
    assert isinstance(is_ping(raw), bool)


@SANS_IO
@given(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "type"), json_values, max_size=3),
       json_values)
def test_only_type_ping_is_a_ping(extra: dict[str, Any], other: Any) -> None:
    assert is_ping(orjson.dumps({"type": "ping", **extra}))
    assert is_ping(orjson.dumps({**extra, "type": other})) == (other == "ping")


# ---------------------------------------------------------------- items, values, timestamps


@SANS_IO
@given(json_values)
def test_parse_item_returns_a_reading_or_a_rejection(item: Any) -> None:
    parsed = parse_item(0, item)
    assert isinstance(parsed, NewReading | Rejection)
    if isinstance(parsed, NewReading):
        assert math.isfinite(parsed.value)
    else:
        orjson.dumps(parsed.input)  # echoed in a 422: always encodable


@SANS_IO
@given(good_values)
def test_good_values_parse_to_their_float(value: Any) -> None:
    assert parse_value(value) == float(value)


@SANS_IO
@given(aware_datetimes, st.sampled_from(["T", " ", "t"]))
def test_timestamps_with_an_offset_round_trip(stamp: datetime, sep: str) -> None:
    assert parse_timestamp(stamp.isoformat(sep=sep)) == stamp.astimezone(UTC)


@SANS_IO
@given(st.datetimes(min_value=datetime(1970, 1, 2)) | st.text(max_size=40) | json_scalars)
def test_timestamps_without_an_offset_are_refused(raw: Any) -> None:
    parsed = parse_timestamp(raw.isoformat() if isinstance(raw, datetime) else raw)
    assert parsed is None or parsed.tzinfo is UTC


# ---------------------------------------------------------------- query integers


@SANS_IO
@given(st.text(max_size=30) | st.integers().map(str) | st.from_regex(r"[+-]?[0-9]{15,5000}", fullmatch=True))
def test_query_int_is_in_bounds_or_a_422_at_its_parameter(raw: str) -> None:
    try:
        value = query_int({"page": raw}, "page", 1, 1, MAX_PAGE)
    except ValidationFailed as exc:
        assert [e.loc for e in exc.errors] == [("query", "page")]
        assert exc.errors[0].type in ("int_parsing", "greater_than_equal", "less_than_equal")
        return
    assert 1 <= value <= MAX_PAGE


@SANS_IO
@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_query_int_round_trips_integers_in_range(n: int) -> None:
    try:
        value = query_int({"page_size": str(n)}, "page_size", 25, 1, MAX_PAGE_SIZE)
    except ValidationFailed:
        assert not 1 <= n <= MAX_PAGE_SIZE
        return
    assert value == n


# ---------------------------------------------------------------- REST bodies through the app


def field_values(base: Callable[[], st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """A field's plausible values mixed with arbitrary JSON and hostile numbers."""
    return base() | json_values | st.sampled_from([2**64 - 1, -(2**63), 1e308, -0.0, "", "\x00"])


def shaped(fields: dict[str, Callable[[], st.SearchStrategy[Any]]]) -> st.SearchStrategy[Any]:
    """Objects with some of the endpoint's own fields (plausible or not), or any JSON at all."""
    return st.fixed_dictionaries({}, optional={k: field_values(v) for k, v in fields.items()}) | json_values


def texts() -> st.SearchStrategy[Any]:
    return st.text(min_size=0, max_size=60)


def emails() -> st.SearchStrategy[Any]:
    return st.emails() | st.builds(lambda a, b: f"{a}@{b}", st.text(max_size=8), st.text(max_size=8))


def numbers() -> st.SearchStrategy[Any]:
    return finite | ints64


def choices(*options: str) -> Callable[[], st.SearchStrategy[Any]]:
    return lambda: st.sampled_from(options)


def stamps() -> st.SearchStrategy[Any]:
    return aware_datetimes.map(lambda d: d.isoformat()) | st.text(max_size=30)


def datapoint_items() -> st.SearchStrategy[Any]:
    return st.lists(good_items().map(lambda t: t[0]) | bad_items().map(lambda t: t[0]), max_size=5)


EVENT_FIELDS = {"name": texts, "min_value": numbers, "max_value": numbers, "unit": texts,
                "type": choices("sensor", "actuator", "range", "bogus")}
USER_FIELDS = {"email": emails, "username": texts, "password": texts, "admin": st.booleans}
LOG_FIELDS = {"content": texts, "logging_type": choices("info", "warning", "error", "x"),
              "status_type": choices("read", "unread", "x")}
DATAPOINT_FIELDS = {"value": lambda: good_values, "event_public_id": texts, "timestamp": stamps}
SERIES_FIELDS = {"event_public_ids": lambda: st.lists(texts(), max_size=3), "minutes": numbers,
                 "since": stamps, "until": stamps, "max_points": numbers}

# (method, path; "{event}" etc. are filled with a real id of that kind, body strategy)
ENDPOINTS: dict[str, tuple[str, str, st.SearchStrategy[Any]]] = {
    "login": ("POST", "/api/v1/auth/login", shaped({"email": emails, "password": texts})),
    "users_create": ("POST", "/api/v1/users", shaped(USER_FIELDS)),
    "users_update": ("PUT", "/api/v1/users/{user}", shaped(USER_FIELDS)),
    "events_create": ("POST", "/api/v1/events", shaped(EVENT_FIELDS)),
    "events_update": ("PUT", "/api/v1/events/{event}", shaped(EVENT_FIELDS)),
    "experiments_create": ("POST", "/api/v1/experiments", shaped({"name": texts})),
    "experiments_update": ("PUT", "/api/v1/experiments/{experiment}", shaped({"name": texts})),
    "datapoint": ("POST", "/api/v1/datapoints", shaped(DATAPOINT_FIELDS)),
    "datapoints_batch": ("POST", "/api/v1/datapoints/batch", shaped({"datapoints": datapoint_items})),
    "datapoints_bulk": ("POST", "/api/v1/datapoints/bulk", shaped({"datapoints": datapoint_items})),
    "series": ("POST", "/api/v1/datapoints/series", shaped(SERIES_FIELDS)),
    "logging_create": ("POST", "/api/v1/logging", shaped(LOG_FIELDS)),
    "logging_update": ("PUT", "/api/v1/logs/{log}", shaped(LOG_FIELDS)),
}


TARGETS = {
    "user": ("/api/v1/users", {"email": "target@lab", "username": "target", "password": "password123"}),
    "event": ("/api/v1/events", {"name": "target", "min_value": 0, "max_value": 1, "unit": "u",
                                 "type": "sensor"}),
    "experiment": ("/api/v1/experiments", {"name": "target"}),
    "log": ("/api/v1/logging", {"content": "target"}),
}


async def make_targets(client: Any, headers: dict[str, str]) -> dict[str, str]:
    """One real object of each kind for the update routes to work on (the experiment stopped)."""
    ids = {}
    for kind, (path, body) in TARGETS.items():
        resp = await client.post(path, json=body, headers=headers)
        assert resp.status_code == 201, await resp.get_data(as_text=True)
        ids[kind] = (await resp.get_json())["public_id"]
    resp = await client.put(f"/api/v1/experiments/{ids['experiment']}/stop", headers=headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    return ids


async def assert_no_5xx(resp: Any) -> None:
    """The contract's error shape: never a 5xx; a 4xx has a JSON ``detail`` (a list for 422)."""
    text = await resp.get_data(as_text=True)
    assert resp.status_code < 500, text
    if resp.status_code >= 400:
        detail = orjson.loads(text)["detail"]
        if resp.status_code == 422:
            assert all({"loc", "msg", "type"} <= set(item) for item in detail), detail
        else:
            assert isinstance(detail, str) and detail


class AppPortal:
    """One app (SQLite) served by its own Trio loop in a thread, for synchronous Hypothesis tests:
    each example runs a request there, so examples do not pay for a fresh app each."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = make_settings(f"sqlite:///{tmp_path / 'fuzz.db'}", tmp_path)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("the fuzzing app did not start")

    async def _main(self) -> None:
        async with open_app(self.settings) as app:
            self.client = app.test_client()
            self.headers = bearer(await login(self.client, ADMIN_EMAIL, ADMIN_PASSWORD))
            self.targets = await make_targets(self.client, self.headers)
            self.token = trio.lowlevel.current_trio_token()
            self.stop = trio.Event()
            self.ready.set()
            await self.stop.wait()

    def request(self, send: Callable[[Any, dict[str, str]], Awaitable[Any]]) -> None:
        async def run() -> None:
            await assert_no_5xx(await send(self.client, self.headers))

        trio.from_thread.run(run, trio_token=self.token)

    def close(self) -> None:
        trio.from_thread.run_sync(self.stop.set, trio_token=self.token)
        self.thread.join(30)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppPortal]:
    app = AppPortal(tmp_path_factory.mktemp("fuzz"))
    try:
        yield app
    finally:
        app.close()


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@REST
@given(data=st.data())
def test_fuzzed_rest_bodies_never_get_a_5xx(portal: AppPortal, endpoint: str, data: st.DataObject) -> None:
    method, template, bodies = ENDPOINTS[endpoint]
    body = data.draw(bodies, label="body")
    hostile = data.draw(st.booleans(), label="with a 4,400-digit number spliced in")

    path = template.format(**portal.targets)

    async def send(client: Any, headers: dict[str, str]) -> Any:
        raw = almost_bytes(body) if hostile else orjson.dumps(body)
        return await client.open(path, method=method, data=raw,
                                 headers={**headers, "Content-Type": "application/json"})

    portal.request(send)


def almost_bytes(body: Any) -> bytes:
    """The body with a hostile token where the first value starts (malformed or huge-numbered)."""
    text = orjson.dumps(body).decode()
    cut = text.find(":") + 1 or len(text) // 2
    return (text[:cut] + "9" * 4400 + text[cut:]).encode()


LIST_ROUTES = ["/users", "/events", "/experiments", "/datapoints", "/logging", "/logs"]
query_values = st.text(max_size=20) | st.integers().map(str) | st.sampled_from(
    [str(2**64), "9" * 5000, "-1", "0", " 1 ", "1e3", "%00"])


QUERY_NAMES = ["page", "page_size", "event_public_id", "event_id", "experiment_public_id",
               "experiment_id", "since", "until"]


@pytest.mark.parametrize("route", LIST_ROUTES)
@REST
@given(query=st.dictionaries(st.sampled_from(QUERY_NAMES), query_values | stamps(), max_size=4))
@example(query={"page": str(2**64)})
@example(query={"page": str(MAX_PAGE), "page_size": str(MAX_PAGE_SIZE)})
@example(query={"page_size": "9" * 5000, "since": "9" * 5000})
def test_fuzzed_list_queries_never_get_a_5xx(portal: AppPortal, route: str, query: dict[str, str]) -> None:
    async def send(client: Any, headers: dict[str, str]) -> Any:
        return await client.get(f"/api/v1{route}", query_string=query, headers=headers)

    portal.request(send)
