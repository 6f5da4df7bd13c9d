"""``POST /api/v1/datapoints/series``: downsampled series by time buckets (issue 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import legacy_db
import pytest
from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    bearer,
    create_event,
    create_experiment,
    login,
    make_settings,
    open_app,
)

from webmacs.storage.series import TIMESCALE_SERIES, series_sql

SERIES = "/api/v1/datapoints/series"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


async def post_readings(client: Any, headers: dict[str, str], event: str,
                        values: list[tuple[datetime, float]]) -> None:
    items = [{"value": v, "event_public_id": event, "timestamp": iso(ts)} for ts, v in values]
    resp = await client.post("/api/v1/datapoints/batch", json={"datapoints": items}, headers=headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)


async def test_buckets_keep_spikes_and_last(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers)
    other = await create_event(client, admin_headers)
    # 600 readings, one a second, over 10 minutes; a single spike that striding would miss.
    values = [(T0 + timedelta(seconds=i), float(i % 10)) for i in range(600)]
    values[333] = (values[333][0], 1000.0)
    await post_readings(client, admin_headers, event, values)
    await post_readings(client, admin_headers, other, [(T0, 5.0)])
    resp = await client.post(SERIES, headers=admin_headers, json={
        "event_public_ids": [event, other, "unknown-id"], "since": iso(T0),
        "until": iso(T0 + timedelta(minutes=10)), "max_points": 10,
    })
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    body = await resp.get_json()
    assert body["bucket_seconds"] == 60.0 and body["max_points"] == 10
    series = {s["event_public_id"]: s["points"] for s in body["series"]}
    assert list(series) == [event, other, "unknown-id"]
    points = series[event]
    assert len(points) == 10
    assert [p["timestamp"] for p in points] == [
        (T0 + timedelta(minutes=i)).isoformat(timespec="microseconds") for i in range(10)
    ]
    assert all(p["count"] == 60 for p in points)
    assert points[5]["max"] == 1000.0  # the spike at second 333 is in bucket 5
    assert [p["max"] for i, p in enumerate(points) if i != 5] == [9.0] * 9
    assert all(p["min"] == 0.0 for p in points)
    assert points[0]["last"] == 9.0 and points[0]["last_timestamp"].startswith("2026-03-01T12:00:59")
    assert points[0]["mean"] == pytest.approx(4.5)
    assert series[other] == [{
        "timestamp": T0.isoformat(timespec="microseconds"), "min": 5.0, "max": 5.0, "mean": 5.0,
        "last": 5.0, "count": 1, "last_timestamp": T0.isoformat(timespec="microseconds"),
    }]
    assert series["unknown-id"] == []


async def test_last_ties_go_to_the_row_stored_last(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers)
    await post_readings(client, admin_headers, event, [(T0, 1.0), (T0, 2.0)])
    await post_readings(client, admin_headers, event, [(T0, 3.0)])
    resp = await client.post(SERIES, headers=admin_headers, json={
        "event_public_ids": [event], "since": iso(T0), "until": iso(T0 + timedelta(seconds=1)),
        "max_points": 1,
    })
    (point,) = (await resp.get_json())["series"][0]["points"]
    assert point["last"] == 3.0 and point["count"] == 3


async def test_minutes_window_ends_now(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers)
    resp = await client.post("/api/v1/datapoints", json={"value": 7, "event_public_id": event},
                             headers=admin_headers)
    assert resp.status_code == 201
    resp = await client.post(SERIES, headers=admin_headers,
                             json={"event_public_ids": [event], "minutes": 5})
    body = await resp.get_json()
    assert body["max_points"] == 1000
    (point,) = body["series"][0]["points"]
    assert point["last"] == 7.0


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"minutes": 5}, ["body", "event_public_ids"]),
        ({"event_public_ids": [], "minutes": 5}, ["body", "event_public_ids"]),
        ({"event_public_ids": [1], "minutes": 5}, ["body", "event_public_ids"]),
        ({"event_public_ids": ["x"], "minutes": 0}, ["body", "minutes"]),
        ({"event_public_ids": ["x"], "minutes": "5"}, ["body", "minutes"]),
        ({"event_public_ids": ["x"], "since": "yesterday"}, ["body", "since"]),
        ({"event_public_ids": ["x"], "minutes": 5, "max_points": 0}, ["body", "max_points"]),
        ({"event_public_ids": ["x"], "minutes": 5, "max_points": 10001}, ["body", "max_points"]),
        ({"event_public_ids": ["x"], "minutes": 5, "max_points": True}, ["body", "max_points"]),
        ({"event_public_ids": ["x"], "minutes": 5, "max_points": 1.5}, ["body", "max_points"]),
        # a window reaching before the year 1 was a 500 (OverflowError), found by the fuzzer
        ({"event_public_ids": ["x"], "minutes": 10, "until": "0001-01-01T00:00:00Z"},
         ["body", "minutes"]),
        ({"event_public_ids": ["x"]}, ["body"]),
        ({"event_public_ids": ["x"], "since": "2026-01-02T00:00:00Z",
          "until": "2026-01-01T00:00:00Z"}, ["body", "since"]),
    ],
)
async def test_bad_requests_are_422(
    client: Any, admin_headers: dict[str, str], payload: dict[str, Any], loc: list[str]
) -> None:
    resp = await client.post(SERIES, headers=admin_headers, json=payload)
    assert resp.status_code == 422
    assert [d["loc"] for d in (await resp.get_json())["detail"]] == [loc]


@pytest.mark.parametrize("max_points", [466.0, None])
async def test_max_points_may_be_an_integral_float_or_null(
    client: Any, admin_headers: dict[str, str], max_points: float | None
) -> None:
    """JSON Schema counts ``466.0`` as an integer, and an optional field may be null (= default)."""
    resp = await client.post(SERIES, headers=admin_headers,
                             json={"event_public_ids": ["x"], "minutes": 5, "max_points": max_points})
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert (await resp.get_json())["max_points"] == (466 if max_points else 1000)


async def test_requires_a_token(client: Any) -> None:
    resp = await client.post(SERIES, json={"event_public_ids": ["x"], "minutes": 5})
    assert resp.status_code == 401


def test_timescale_sql_uses_time_bucket_and_last() -> None:
    assert series_sql("postgresql", timescale=True) is TIMESCALE_SERIES
    assert "time_bucket(" in TIMESCALE_SERIES and "last(d.value, d.timestamp)" in TIMESCALE_SERIES
    assert "time_bucket" not in series_sql("postgresql", timescale=False)


# ---------------------------------------------------------------- the per-second rollups


def expected_buckets(values: list[tuple[datetime, float]], since: datetime, width: float,
                     n: int) -> list[dict[str, Any]]:
    """What the buckets must hold, computed from the raw readings (in storage order)."""
    out: dict[int, dict[str, Any]] = {}
    for ts, v in values:
        b = int((ts - since).total_seconds() // width)
        if not 0 <= b < n:
            continue
        cur = out.setdefault(b, {"min": v, "max": v, "sum": 0.0, "count": 0, "last": v, "ts": ts})
        cur["min"], cur["max"] = min(cur["min"], v), max(cur["max"], v)
        cur["sum"] += v
        cur["count"] += 1
        if ts >= cur["ts"]:
            cur["last"], cur["ts"] = v, ts
    return [{"timestamp": (since + timedelta(seconds=width * b)).isoformat(timespec="microseconds"),
             "min": c["min"], "max": c["max"], "mean": pytest.approx(c["sum"] / c["count"]),
             "last": c["last"], "count": c["count"],
             "last_timestamp": c["ts"].isoformat(timespec="microseconds")}
            for b, c in sorted(out.items())]


async def series_of(client: Any, headers: dict[str, str], event: str, since: datetime,
                    until: datetime, points: int) -> dict[str, Any]:
    resp = await client.post(SERIES, headers=headers, json={
        "event_public_ids": [event], "since": iso(since), "until": iso(until), "max_points": points})
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    body: dict[str, Any] = await resp.get_json()
    return body


async def test_whole_second_buckets_match_the_raw_readings_through_deletes(
    client: Any, admin_headers: dict[str, str]
) -> None:
    event = await create_event(client, admin_headers)
    # Readings at fractional times over 100 s, several per second, with ties on a timestamp.
    values = [(T0 + timedelta(seconds=i * 0.37), float((i * 7919) % 101) - 50.0) for i in range(270)]
    values.append((values[100][0], 99.0))  # same timestamp as reading 100, stored later: it is last
    await post_readings(client, admin_headers, event, values[:150])
    await post_readings(client, admin_headers, event, values[150:])
    until = T0 + timedelta(seconds=100)
    body = await series_of(client, admin_headers, event, T0, until, 10)
    assert body["bucket_seconds"] == 10.0
    assert body["series"][0]["points"] == expected_buckets(values, T0, 10.0, 10)

    # Delete the reading that is both a bucket's maximum and its last: the rollup is rebuilt.
    listing = await client.get("/api/v1/datapoints", headers=admin_headers,
                               query_string={"event_public_id": event, "page_size": 1000})
    rows = (await listing.get_json())["data"]
    spike = next(r for r in rows if r["value"] == 99.0)
    assert (await client.delete(f"/api/v1/datapoints/{spike['public_id']}",
                                headers=admin_headers)).status_code == 200
    values.pop()
    body = await series_of(client, admin_headers, event, T0, until, 10)
    assert body["series"][0]["points"] == expected_buckets(values, T0, 10.0, 10)


async def test_unaligned_windows_are_widened_to_whole_seconds(
    client: Any, admin_headers: dict[str, str]
) -> None:
    event = await create_event(client, admin_headers)
    values = [(T0 + timedelta(seconds=i), float(i)) for i in range(30)]
    await post_readings(client, admin_headers, event, values)
    since = T0 + timedelta(seconds=2, milliseconds=500)
    body = await series_of(client, admin_headers, event, since, T0 + timedelta(seconds=22.2), 7)
    # [12:00:02.5, 12:00:22.2) -> [12:00:02, 12:00:23): 21 s in at most 7 buckets of 3 s.
    assert body["since"] == (T0 + timedelta(seconds=2)).isoformat(timespec="microseconds")
    assert body["until"] == (T0 + timedelta(seconds=23)).isoformat(timespec="microseconds")
    assert body["bucket_seconds"] == 3.0
    points = body["series"][0]["points"]
    assert len(points) == 7 and [p["count"] for p in points] == [3] * 7
    assert points[0]["min"] == 2.0 and points[-1]["last"] == 22.0


async def test_deleting_an_experiment_removes_its_readings_from_series(
    client: Any, admin_headers: dict[str, str]
) -> None:
    event = await create_event(client, admin_headers)
    experiment = await create_experiment(client, admin_headers)
    resp = await client.post("/api/v1/datapoints/batch", headers=admin_headers, json={
        "datapoints": [{"value": float(v), "event_public_id": event} for v in range(5)]})
    assert resp.status_code == 201
    stop = await client.put(f"/api/v1/experiments/{experiment}/stop", headers=admin_headers)
    assert stop.status_code == 200
    resp = await client.post(SERIES, headers=admin_headers,
                             json={"event_public_ids": [event], "minutes": 60, "max_points": 60})
    assert sum(p["count"] for p in (await resp.get_json())["series"][0]["points"]) == 5
    assert (await client.delete(f"/api/v1/experiments/{experiment}",
                                headers=admin_headers)).status_code == 200
    resp = await client.post(SERIES, headers=admin_headers,
                             json={"event_public_ids": [event], "minutes": 60, "max_points": 60})
    assert (await resp.get_json())["series"][0]["points"] == []


async def test_rollups_are_built_for_an_existing_database(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path)
    values = [(T0 + timedelta(seconds=i * 0.5), float(i % 7)) for i in range(40)]
    async with open_app(settings) as app:
        client = app.test_client()
        headers = bearer(await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))
        event = await create_event(client, headers)
        await post_readings(client, headers, event, values)
        before = await series_of(client, headers, event, T0, T0 + timedelta(seconds=20), 4)
    legacy_db.made_before(settings.sqlalchemy_url, "0002_datapoint_counts")  # before the rollups
    legacy_db.upgrade(settings.sqlalchemy_url)
    async with open_app(settings) as app:
        client = app.test_client()
        headers = bearer(await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))
        after = await series_of(client, headers, event, T0, T0 + timedelta(seconds=20), 4)
    assert after == before
    assert before["series"][0]["points"] == expected_buckets(values, T0, 5.0, 4)


async def test_sub_second_buckets_over_too_many_rows_fall_back_to_seconds(
    client: Any, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import webmacs.storage.series as series_module

    event = await create_event(client, admin_headers)
    values = [(T0 + timedelta(seconds=i * 0.25), float(i)) for i in range(40)]
    await post_readings(client, admin_headers, event, values)
    until = T0 + timedelta(seconds=10)
    exact = await series_of(client, admin_headers, event, T0, until, 1000)
    assert exact["bucket_seconds"] == 0.01 and len(exact["series"][0]["points"]) == 40
    monkeypatch.setattr(series_module, "RAW_ROWS_MAX", 39)  # as if the window held too many
    coarse = await series_of(client, admin_headers, event, T0, until, 1000)
    assert coarse["bucket_seconds"] == 1.0
    assert coarse["series"][0]["points"] == expected_buckets(values, T0, 1.0, 10)


async def test_calendar_edges_are_not_500(client: Any, admin_headers: dict[str, str]) -> None:
    event = await create_event(client, admin_headers)
    for body in ({"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999999Z"},
                 {"since": "9999-12-31T23:00:00.5Z", "until": "9999-12-31T23:59:59.5Z"}):
        resp = await client.post(SERIES, headers=admin_headers,
                                 json={"event_public_ids": [event], "max_points": 10, **body})
        assert resp.status_code == 200, await resp.get_data(as_text=True)
        assert (await resp.get_json())["series"][0]["points"] == []
