"""``POST /api/v1/datapoints/series``: downsampled series by time buckets (issue 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import create_event

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


async def test_requires_a_token(client: Any) -> None:
    resp = await client.post(SERIES, json={"event_public_ids": ["x"], "minutes": 5})
    assert resp.status_code == 401


def test_timescale_sql_uses_time_bucket_and_last() -> None:
    assert series_sql("postgresql", timescale=True) is TIMESCALE_SERIES
    assert "time_bucket(" in TIMESCALE_SERIES and "last(d.value, d.timestamp)" in TIMESCALE_SERIES
    assert "time_bucket" not in series_sql("postgresql", timescale=False)
