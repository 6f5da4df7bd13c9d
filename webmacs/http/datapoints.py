"""``/api/v1/datapoints``: REST ingestion (single, batch, bulk), filtered pages, latest (§4.4)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from quart import Blueprint, request

from webmacs.actors.messages import IngestFailed, Ticket
from webmacs.http.context import services, tree
from webmacs.http.errors import ApiError, not_found
from webmacs.http.guards import current_operator, current_user
from webmacs.http.requests import json_body, pagination
from webmacs.http.responses import datapoint_json, json_response, page_body, success
from webmacs.http.routing import route
from webmacs.readings import batch_too_large, parse_item, parse_items, rejection_json
from webmacs.storage.records import DatapointFilter, IngestResult, NewReading, Rejection
from webmacs.storage.series import SeriesQuery
from webmacs.validation import (
    TIMESTAMP_MSG,
    FieldError,
    Fields,
    ValidationFailed,
    format_timestamp,
    is_public_id,
    parse_timestamp,
    utcnow,
)

bp = Blueprint("datapoints", __name__, url_prefix="/api/v1/datapoints")


def _rejection_error(r: Rejection, prefix: tuple[str | int, ...]) -> FieldError:
    loc = (*prefix, r.field) if r.field else prefix
    return FieldError(loc, r.detail, r.type, r.input)


async def committed(ticket: Ticket) -> IngestResult:
    """Wait for the recorder's commit: a 2xx is only ever sent for committed rows."""
    try:
        return await ticket.wait()
    except IngestFailed as exc:
        raise ApiError(503, exc.detail) from None


@route(bp, "", ["POST"])
async def create_datapoint() -> Any:
    await current_operator()
    parsed = parse_item(0, await json_body())
    if isinstance(parsed, Rejection):
        raise ValidationFailed([_rejection_error(parsed, ("body",))])
    result = await committed(await tree().ingest((parsed,)))
    if not result.stored:
        raise ApiError(404, "Event not found.")
    return success("Datapoint successfully created.", 201, public_id=result.stored[0].public_id)


async def _create_batch() -> Any:
    await current_operator()
    body = await json_body()
    items = body.get("datapoints") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValidationFailed(
            [FieldError(("body", "datapoints"), "Field 'datapoints' must be a list.", "list_type")]
        )
    limit = services().settings.max_batch
    if len(items) > limit:
        raise ApiError(413, batch_too_large(len(items), limit))
    if not items:
        return success("0 datapoints successfully created.", 201, accepted=0, rejected=[])
    good: list[NewReading]
    good, rejected = parse_items(items)
    result = await committed(await tree().ingest(tuple(good))) if good else IngestResult([], [])
    rejected = sorted([*rejected, *result.rejected], key=lambda r: r.index)
    if not result.stored:
        raise ValidationFailed([_rejection_error(r, ("body", "datapoints", r.index)) for r in rejected])
    n = len(result.stored)
    return success(
        f"{n} datapoints successfully created.", 201, accepted=n,
        rejected=[rejection_json(r) for r in rejected],
    )


@route(bp, "/batch", ["POST"])
async def create_batch() -> Any:
    return await _create_batch()


@route(bp, "/bulk", ["POST"])
async def create_bulk() -> Any:
    return await _create_batch()


MAX_SERIES_EVENTS = 100
MAX_SERIES_POINTS = 10_000
DEFAULT_SERIES_POINTS = 1000
MAX_SERIES_MINUTES = 10 * 366 * 24 * 60
SERIES_WINDOW_MISSING = "Give 'minutes' or 'since'."
SERIES_EMPTY_WINDOW = "'since' must be before 'until'."
SERIES_BEFORE_YEAR_1 = "'until' minus 'minutes' is before the year 1."
SERIES_RULES = (SERIES_WINDOW_MISSING, SERIES_EMPTY_WINDOW, SERIES_BEFORE_YEAR_1)


def _whole_number(value: Any) -> int | None:
    """An integer, also written as an integral float (``466.0``: JSON Schema's integers include it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def read_series_query(body: Any) -> SeriesQuery:
    fields = Fields(body)
    ids = fields.data.get("event_public_ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_SERIES_EVENTS or not all(
        isinstance(i, str) for i in ids
    ):
        fields.error("event_public_ids",
                     f"Input should be a list of 1 to {MAX_SERIES_EVENTS} event ids.", "list_type", ids)
    minutes = fields.number("minutes", required=False)
    if minutes is not None and not 0 < minutes <= MAX_SERIES_MINUTES:
        fields.error("minutes", "Input should be greater than 0 and at most ten years.",
                     "value_error", minutes)
    since = fields.timestamp("since", required=False)
    until = fields.timestamp("until", required=False)
    raw_points = fields.data.get("max_points")
    points = DEFAULT_SERIES_POINTS if raw_points is None else _whole_number(raw_points)
    if points is None or not 1 <= points <= MAX_SERIES_POINTS:
        fields.error("max_points", f"Input should be an integer from 1 to {MAX_SERIES_POINTS}.",
                     "int_range", raw_points)
    fields.check()
    until = until or utcnow()
    if since is None:
        if minutes is None:
            raise ValidationFailed([FieldError(("body",), SERIES_WINDOW_MISSING, "missing")])
        try:
            since = until - timedelta(minutes=minutes)
        except OverflowError:
            raise ValidationFailed(
                [FieldError(("body", "minutes"), SERIES_BEFORE_YEAR_1, "value_error", minutes)]
            ) from None
    if since >= until:
        raise ValidationFailed([FieldError(("body", "since"), SERIES_EMPTY_WINDOW, "value_error")])
    return SeriesQuery(tuple(dict.fromkeys(ids)), since, until, points)  # type: ignore[arg-type]


@route(bp, "/series", ["POST"])
async def series() -> Any:
    """Downsampled series for charts: per event at most ``max_points`` time buckets."""
    await current_user()
    asked = read_series_query(await json_body())
    q, result = await services().repos.datapoints.series(asked)
    return json_response({
        "since": format_timestamp(q.since), "until": format_timestamp(q.until),
        "bucket_seconds": q.width.total_seconds(), "max_points": q.max_points,
        "series": [
            {"event_public_id": pid, "points": [
                {"timestamp": format_timestamp(q.bucket_start(p.bucket)), "min": p.min, "max": p.max,
                 "mean": p.mean, "last": p.last, "count": p.count,
                 "last_timestamp": format_timestamp(p.last_timestamp)}
                for p in points
            ]}
            for pid, points in result.items()
        ],
    })


def alias_conflict(canonical: str, alias: str) -> str:
    return f"'{alias}' and '{canonical}' disagree; send one of them."


def _id_filter(canonical: str, alias: str) -> str | None:
    a, b = request.args.get(canonical), request.args.get(alias)
    if a is not None and b is not None and a != b:
        raise ValidationFailed([FieldError(("query", alias), alias_conflict(canonical, alias),
                                           "value_error", b)])
    return a if a is not None else b


def _time_filter(name: str) -> Any:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    value = parse_timestamp(raw)
    if value is None:
        raise ValidationFailed([FieldError(("query", name), TIMESTAMP_MSG, "datetime_parsing", raw)])
    return value


@route(bp, "", ["GET"])
async def list_datapoints() -> Any:
    await current_user()
    number, size = pagination()
    flt = DatapointFilter(
        event_public_id=_id_filter("event_public_id", "event_id"),
        experiment_public_id=_id_filter("experiment_public_id", "experiment_id"),
        since=_time_filter("since"),
        until=_time_filter("until"),
    )
    page = await services().repos.datapoints.page(flt, (number - 1) * size, size)
    return json_response(page_body(page, number, size, datapoint_json))


@route(bp, "/latest", ["GET"])
async def latest() -> Any:
    await current_user()
    rows = await tree().latest()
    return json_response([datapoint_json(r) for r in rows])


@route(bp, "/<datapoint_id:public_id>", ["GET"])
async def get_datapoint(public_id: str) -> Any:
    await current_user()
    repo = services().repos.datapoints
    record = await repo.get(public_id) if is_public_id(public_id) else None
    if record is None:
        raise not_found("Datapoint", public_id)
    return json_response(datapoint_json(record))


@route(bp, "/<datapoint_id:public_id>", ["DELETE"])
async def delete_datapoint(public_id: str) -> Any:
    await current_operator()
    repo = services().repos.datapoints
    if not is_public_id(public_id) or not await repo.delete(public_id):
        raise not_found("Datapoint", public_id)
    await tree().reload_latest()  # it may have been an event's latest value
    return success("Datapoint successfully deleted.")
