"""Out-of-range numbers never cost a 500 (issue 7, defect 7).

(a) Pagination values beyond every bound (2**64, 10,000-digit strings, …) on every list route
get a 422 at ``["query", <param>]``. (b) A huge integer in a body or telemetry frame is a number
beyond double range, like ``1e400``: only its field or item fails, never the whole body or frame.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import create_event
from test_websockets import recv_json, running_server

from webmacs.frames import BAD_SEQ, FrameError, TelemetryFrame, ack, parse_telemetry
from webmacs.http.requests import MAX_PAGE, MAX_PAGE_SIZE
from webmacs.jsonparse import loads_strict
from webmacs.readings import EVENT_ID_INVALID, VALUE_INVALID
from webmacs.storage.records import NewReading
from webmacs.validation import ValidationFailed, query_int

H = dict[str, str]
API = "/api/v1"
LIST_ROUTES = ["/users", "/events", "/experiments", "/datapoints", "/logging", "/logs"]
HUGE = "9" * 10_000
OUT_OF_RANGE = {
    "page": ["0", "-1", str(2**64), str(2**63), str(MAX_PAGE + 1), HUGE, "-" + HUGE],
    "page_size": ["0", "-1", str(MAX_PAGE_SIZE + 1), str(2**64), str(2**63), HUGE, "-" + HUGE],
}
NOT_INTEGERS = ["abc", "1.5", "1e3", "1_0", "٣", "0x10", "+", "--1", "nan"]
EV = "3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23"
BIG_INTS = [str(2**64), "1" + "0" * 400, "9" * 4001, "-" + "9" * 4001, "1" * 5000]


# ---------------------------------------------------------------- (a) query integers, sans-IO


@pytest.mark.parametrize("raw", [*OUT_OF_RANGE["page"], *NOT_INTEGERS])
def test_query_int_refuses_everything_off_with_a_422_error(raw: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        query_int({"page": raw}, "page", 1, 1, MAX_PAGE)
    [err] = info.value.errors
    assert err.loc == ("query", "page")
    assert err.type in ("int_parsing", "greater_than_equal", "less_than_equal")
    assert err.input == raw


@pytest.mark.parametrize(("raw", "value"), [(None, 1), ("", 1), ("7", 7), (" 7 ", 7), ("+7", 7),
                                            ("007", 7), (str(MAX_PAGE), MAX_PAGE)])
def test_query_int_accepts_in_range_integers(raw: str | None, value: int) -> None:
    args = {} if raw is None else {"page": raw}
    assert query_int(args, "page", 1, 1, MAX_PAGE) == value


# ---------------------------------------------------------------- (a) every list route, both databases


@pytest.mark.parametrize("route", LIST_ROUTES)
async def test_every_list_route_answers_422_for_out_of_range_pagination(
    client: Any, admin_headers: H, route: str
) -> None:
    for param, values in OUT_OF_RANGE.items():
        for raw in [*values, *NOT_INTEGERS]:
            resp = await client.get(f"{API}{route}", query_string={param: raw}, headers=admin_headers)
            assert resp.status_code == 422, (param, raw[:30], resp.status_code)
            [item] = (await resp.get_json())["detail"]
            assert item["loc"] == ["query", param], (param, raw[:30])


@pytest.mark.parametrize("route", LIST_ROUTES)
async def test_the_largest_page_is_an_empty_page_not_an_overflow(
    client: Any, admin_headers: H, route: str
) -> None:
    resp = await client.get(
        f"{API}{route}", query_string={"page": str(MAX_PAGE), "page_size": str(MAX_PAGE_SIZE)},
        headers=admin_headers,
    )
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    body = await resp.get_json()
    assert body["page"] == MAX_PAGE
    assert body["page_size"] == MAX_PAGE_SIZE
    assert body["data"] == []


# ---------------------------------------------------------------- (b) huge integers, sans-IO


@pytest.mark.parametrize("literal", BIG_INTS)
def test_huge_integers_parse_like_orjson_reads_them(literal: str) -> None:
    value = loads_strict(f'{{"v": {literal}}}')["v"]
    assert isinstance(value, float)
    assert value == float(literal)  # beyond double range: ±inf, like 1e400


def with_number(body: Any, literal: str) -> str:
    """``body`` as JSON with the number ``literal`` written where ``"@@"`` stands."""
    return json.dumps(body).replace('"@@"', literal)


def two_items(first: str) -> str:
    return with_number({"seq": 1, "datapoints": [{"value": "@@", "event_public_id": EV},
                                                  {"value": 2, "event_public_id": EV}]}, first)


@pytest.mark.parametrize("literal", BIG_INTS)
def test_a_huge_integer_value_rejects_only_its_item_like_1e400(literal: str) -> None:
    big = parse_telemetry(two_items(literal), 10)
    overflow = parse_telemetry(two_items("-1e400" if literal.startswith("-") else "1e400"), 10)
    assert isinstance(big, TelemetryFrame)
    assert isinstance(overflow, TelemetryFrame)
    if math.isinf(float(literal)):
        assert big.readings == overflow.readings == [NewReading(1, 2.0, EV, None)]
        assert big.rejected == overflow.rejected
        assert [(r.index, r.detail, r.field) for r in big.rejected] == [(0, VALUE_INVALID, "value")]
    else:  # within double range (2**64 ≈ 1.8e19): a value like any other
        assert [r.value for r in big.readings] == [float(literal), 2.0]


@pytest.mark.parametrize("literal", [str(2**64), "-" + str(2**63 + 1), "9" * 4001])
def test_a_seq_beyond_64_bits_is_not_an_integer(literal: str) -> None:
    raw = with_number({"seq": "@@", "datapoints": []}, literal)
    assert parse_telemetry(raw, 10) == FrameError(None, True, BAD_SEQ)


def test_a_huge_integer_event_id_rejects_only_its_item_and_the_ack_encodes() -> None:
    raw = with_number({"seq": 1, "datapoints": [{"value": 1, "event_public_id": "@@"},
                                                 {"value": 2, "event_public_id": EV}]}, "9" * 4001)
    parsed = parse_telemetry(raw, 10)
    assert isinstance(parsed, TelemetryFrame)
    assert [r.index for r in parsed.readings] == [1]
    assert [(r.index, r.event_public_id, r.detail) for r in parsed.rejected] == [
        (0, None, EVENT_ID_INVALID)]
    assert orjson.loads(ack(1, 1, parsed.rejected))["rejected"] == [
        {"index": 0, "event_public_id": None, "detail": EVENT_ID_INVALID}]


def test_a_64_bit_seq_stays_an_integer() -> None:
    for seq in (2**64 - 1, -(2**63)):
        parsed = parse_telemetry(json.dumps({"seq": seq, "datapoints": []}), 10)
        assert isinstance(parsed, TelemetryFrame)
        assert parsed.seq == seq


# ---------------------------------------------------------------- (b) REST bodies, both databases


async def post_raw(client: Any, path: str, raw: str, headers: H) -> Any:
    return await client.post(
        f"{API}{path}", data=raw.encode(), headers={**headers, "Content-Type": "application/json"}
    )


async def test_a_huge_integer_value_is_a_422_on_a_single_datapoint_and_one_rejection_in_a_batch(
    client: Any, admin_headers: H
) -> None:
    event = await create_event(client, admin_headers)
    big = "9" * 4001
    resp = await post_raw(client, "/datapoints", with_number({"value": "@@", "event_public_id": event}, big),
                          admin_headers)
    assert resp.status_code == 422
    [item] = (await resp.get_json())["detail"]
    assert (item["loc"], item["msg"], item["type"]) == (["body", "value"], VALUE_INVALID, "finite_number")
    items = [{"value": "@@", "event_public_id": event}, {"value": 2, "event_public_id": event}]
    resp = await post_raw(client, "/datapoints/batch", with_number({"datapoints": items}, big),
                          admin_headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    body = await resp.get_json()
    assert body["accepted"] == 1
    assert body["rejected"] == [{"index": 0, "event_public_id": event, "detail": VALUE_INVALID}]


EVENT = {"name": "e", "type": "sensor", "unit": "u", "min_value": 0, "max_value": 1}
SERIES = {"event_public_ids": [EV], "minutes": 5}
LOG = {"content": "c", "logging_type": "info", "status_type": "read"}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/events", {**EVENT, "min_value": "@@"}, "min_value"),
    ("/events", {**EVENT, "max_value": "@@"}, "max_value"),
    ("/datapoints/series", {**SERIES, "minutes": "@@"}, "minutes"),
    ("/datapoints/series", {**SERIES, "max_points": "@@"}, "max_points"),
    ("/datapoints/series", {**SERIES, "page": "@@"}, None),
    ("/logging", {**LOG, "page": "@@"}, None),
])
@pytest.mark.parametrize("literal", [str(2**64), "9" * 4001, "-" + "9" * 5000])
async def test_huge_integers_in_other_body_fields_never_cost_a_500(
    client: Any, admin_headers: H, path: str, body: Any, field: str | None, literal: str
) -> None:
    resp = await post_raw(client, path, with_number(body, literal), admin_headers)
    if field is None:  # an unknown field is ignored, whatever its size
        assert resp.status_code in (200, 201), await resp.get_data(as_text=True)
        return
    if not math.isinf(float(literal)) and path == "/events":
        assert resp.status_code in (201, 422), await resp.get_data(as_text=True)  # 2**64 is a number
        return
    assert resp.status_code == 422, await resp.get_data(as_text=True)
    assert [d["loc"] for d in (await resp.get_json())["detail"]] == [["body", field]]


# ---------------------------------------------------------------- (b) a real telemetry socket


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_huge_integer_in_a_telemetry_frame_rejects_only_its_item(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        async with server.telemetry() as ws:
            items = [{"value": "@@", "event_public_id": event}, {"value": 2.0, "event_public_id": event}]
            await ws.send_message(with_number({"seq": 1, "datapoints": items}, "9" * 4001))
            assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": 1, "rejected": [
                {"index": 0, "event_public_id": event, "detail": VALUE_INVALID}]}
            await ws.send_message('{"seq": %s, "datapoints": []}' % (2**64))
            assert await recv_json(ws) == {"type": "error", "seq": None, "detail": BAD_SEQ}
        assert [r["value"] for r in await server.datapoints(event_public_id=event)] == [2.0]
