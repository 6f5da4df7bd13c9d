"""Page totals come from per-(event, experiment) counters kept in the ingest transaction; they
must always equal a real count, through inserts, deletes, cascades and a backfill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import legacy_db
import sqlalchemy as sa
from conftest import create_event, create_experiment, make_settings, open_app

from webmacs.settings import Settings

DP = "/api/v1/datapoints"


async def total(client: Any, headers: dict[str, str], **params: str) -> int:
    resp = await client.get(DP, query_string={"page_size": 1, **params}, headers=headers)
    assert resp.status_code == 200
    n: int = (await resp.get_json())["total"]
    return n


def real_count(settings: Settings, where: str = "1=1") -> int:
    engine = sa.create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM datapoints WHERE {where}")).scalar_one())
    finally:
        engine.dispose()


async def post(client: Any, headers: dict[str, str], event: str, n: int) -> list[str]:
    resp = await client.post(f"{DP}/batch", headers=headers,
                             json={"datapoints": [{"value": i, "event_public_id": event} for i in range(n)]})
    assert resp.status_code == 201
    ids = await client.get(DP, query_string={"event_public_id": event, "page_size": 1000}, headers=headers)
    return [d["public_id"] for d in (await ids.get_json())["data"]]


async def test_totals_follow_every_write(
    client: Any, admin_headers: dict[str, str], settings: Settings
) -> None:
    a = await create_event(client, admin_headers)
    b = await create_event(client, admin_headers)
    await post(client, admin_headers, a, 5)  # outside any experiment
    exp = await create_experiment(client, admin_headers)
    a_ids = await post(client, admin_headers, a, 7)
    await post(client, admin_headers, b, 3)
    assert await total(client, admin_headers) == 15 == real_count(settings)
    assert await total(client, admin_headers, event_public_id=a) == 12
    assert await total(client, admin_headers, experiment_public_id=exp) == 10
    assert await total(client, admin_headers, event_public_id=b, experiment_public_id=exp) == 3

    assert (await client.delete(f"{DP}/{a_ids[0]}", headers=admin_headers)).status_code == 200
    assert await total(client, admin_headers) == 14 == real_count(settings)
    assert await total(client, admin_headers, experiment_public_id=exp) == 9

    assert (await client.delete(f"/api/v1/experiments/{exp}", headers=admin_headers)).status_code == 200
    assert await total(client, admin_headers) == 5 == real_count(settings)
    assert await total(client, admin_headers, experiment_public_id=exp) == 0

    assert (await client.delete(f"/api/v1/events/{a}", headers=admin_headers)).status_code == 200
    assert await total(client, admin_headers) == 0 == real_count(settings)


async def test_counters_are_backfilled_for_an_existing_database(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path)
    async with open_app(settings) as app:
        client = app.test_client()
        from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, login

        headers = bearer(await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))
        event = await create_event(client, headers)
        await post(client, headers, event, 4)
    legacy_db.made_before(settings.sqlalchemy_url, "0001_base")  # before the counters existed
    legacy_db.upgrade(settings.sqlalchemy_url)
    async with open_app(settings) as app:
        client = app.test_client()
        headers = bearer(await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))
        assert await total(client, headers) == 4
        assert await total(client, headers, event_public_id=event) == 4


async def test_time_range_totals_match_a_real_count(
    client: Any, admin_headers: dict[str, str], settings: Settings
) -> None:
    from datetime import UTC, datetime, timedelta

    a = await create_event(client, admin_headers)
    b = await create_event(client, admin_headers)
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for event, step in ((a, 0.3), (b, 0.7)):
        items = [{"value": i, "event_public_id": event,
                  "timestamp": (t0 + timedelta(seconds=i * step)).isoformat()} for i in range(60)]
        resp = await client.post(f"{DP}/batch", headers=admin_headers, json={"datapoints": items})
        assert resp.status_code == 201
    ranges = [
        (t0 + timedelta(seconds=1.25), t0 + timedelta(seconds=17.6)),
        (t0 + timedelta(seconds=2), t0 + timedelta(seconds=9)),
        (t0 + timedelta(seconds=3.5), t0 + timedelta(seconds=4.2)),
        (t0 + timedelta(seconds=5.5), None),
        (None, t0 + timedelta(seconds=11.1)),
    ]
    for since, until in ranges:
        params: dict[str, str] = {}
        if since is not None:
            params["since"] = since.isoformat()
        if until is not None:
            params["until"] = until.isoformat()
        expected_all = sum(1 for step in (0.3, 0.7) for i in range(60)
                           if (since is None or t0 + timedelta(seconds=i * step) >= since)
                           and (until is None or t0 + timedelta(seconds=i * step) < until))
        expected_a = sum(1 for i in range(60)
                         if (since is None or t0 + timedelta(seconds=i * 0.3) >= since)
                         and (until is None or t0 + timedelta(seconds=i * 0.3) < until))
        assert await total(client, admin_headers, **params) == expected_all, (since, until)
        assert await total(client, admin_headers, event_public_id=a, **params) == expected_a
    # After a delete the rollups are rebuilt and the totals still agree.
    rows = await client.get(DP, query_string={"event_public_id": a, "page_size": 5}, headers=admin_headers)
    for row in (await rows.get_json())["data"]:
        assert (await client.delete(f"{DP}/{row['public_id']}", headers=admin_headers)).status_code == 200
    since, until = ranges[0]
    assert since is not None and until is not None
    params = {"since": since.isoformat(), "until": until.isoformat()}
    n_a = await total(client, admin_headers, event_public_id=a, **params)
    n_b = await total(client, admin_headers, event_public_id=b, **params)
    assert await total(client, admin_headers, **params) == n_a + n_b
    # The page listed the newest five of ``a`` (i = 55..59), which are gone now.
    assert n_a == sum(1 for i in range(55) if since <= t0 + timedelta(seconds=i * 0.3) < until)
