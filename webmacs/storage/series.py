"""Downsampled series for charts, computed in the database by time buckets.

Each bucket reports min, max, mean and last (the value with the latest timestamp, ties to the
row stored last) and a count, so a chart still shows a spike that striding would skip.
Buckets are ``width = (until - since) / max_points`` wide, so there are at most ``max_points``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.storage.rollups import ROLLUP_SERIES, second_of
from webmacs.storage.tables import events, from_micros, to_micros
from webmacs.validation import is_public_id


@attrs.frozen
class SeriesPoint:
    bucket: int
    min: float
    max: float
    mean: float
    last: float
    count: int
    last_timestamp: datetime


@attrs.frozen
class SeriesQuery:
    event_ids: tuple[str, ...]
    since: datetime
    until: datetime
    max_points: int
    step_seconds: int | None = None  # whole-second buckets (the rollup path); None: exact width

    @property
    def width(self) -> timedelta:
        if self.step_seconds is not None:
            return timedelta(seconds=self.step_seconds)
        return (self.until - self.since) / self.max_points

    def on_whole_seconds(self, force: bool = False) -> SeriesQuery | None:
        """The same request on the per-second rollups: the window widened to whole seconds and
        the width rounded up to whole seconds (still at most ``max_points`` buckets). None when
        buckets would be narrower than a second, unless ``force``d (then they are one second
        wide, and there are fewer of them)."""
        first = second_of(self.since)
        last = -(-to_micros(self.until) // 1_000_000)  # ceiling
        step = -(-(last - first) // self.max_points)
        if not force and (self.until - self.since) / self.max_points < timedelta(seconds=1):
            return None
        try:
            since, until = from_micros(first * 1_000_000), from_micros(last * 1_000_000)
        except OverflowError:
            return None  # at the edge of the calendar: aggregate the raw rows
        return attrs.evolve(self, since=since, until=until, step_seconds=max(1, step))

    def bucket_start(self, bucket: int) -> datetime:
        return self.since + self.width * bucket


# date_bin() buckets in C; the bucket index is derived per group, not per row. (PostgreSQL 14+.)
POSTGRES_SERIES = """
WITH buckets AS (
  SELECT d.event_id, date_bin(make_interval(secs => :width_s), d.timestamp, :since) AS start,
         min(d.value) AS min, max(d.value) AS max, avg(d.value) AS mean, count(*) AS n,
         max(d.timestamp) AS last_ts
  FROM datapoints d
  WHERE d.event_id = ANY(:event_ids) AND d.timestamp >= :since AND d.timestamp < :until
  GROUP BY 1, 2
)
SELECT b.event_id, round(extract(epoch FROM (b.start - :since)) / :width_s)::int AS bucket,
       b.min, b.max, b.mean, b.n, b.last_ts,
       (SELECT x.value FROM datapoints x
        WHERE x.event_id = b.event_id AND x.timestamp = b.last_ts
        ORDER BY x.id DESC LIMIT 1) AS last
FROM buckets b
ORDER BY b.event_id, b.start
"""

TIMESCALE_SERIES = """
SELECT d.event_id,
       floor(extract(epoch FROM (time_bucket(make_interval(secs => :width_s), d.timestamp, :since)
                                 - :since)) / :width_s)::int AS bucket,
       min(d.value) AS min, max(d.value) AS max, avg(d.value) AS mean, count(*) AS n,
       max(d.timestamp) AS last_ts, last(d.value, d.timestamp) AS last
FROM datapoints d
WHERE d.event_id = ANY(:event_ids) AND d.timestamp >= :since AND d.timestamp < :until
GROUP BY 1, 2
ORDER BY 1, 2
"""

SQLITE_SERIES = """
WITH buckets AS (
  SELECT d.event_id, (d.timestamp - :since) / :width_us AS bucket,
         min(d.value) AS min, max(d.value) AS max, avg(d.value) AS mean, count(*) AS n,
         max(d.timestamp) AS last_ts
  FROM datapoints d
  WHERE d.event_id IN (SELECT value FROM json_each(:event_ids))
    AND d.timestamp >= :since AND d.timestamp < :until
  GROUP BY 1, 2
)
SELECT b.event_id, b.bucket, b.min, b.max, b.mean, b.n, b.last_ts,
       (SELECT x.value FROM datapoints x
        WHERE x.event_id = b.event_id AND x.timestamp = b.last_ts
        ORDER BY x.id DESC LIMIT 1) AS last
FROM buckets b
ORDER BY b.event_id, b.bucket
"""


def series_sql(dialect: str, timescale: bool) -> str:
    if dialect == "sqlite":
        return SQLITE_SERIES
    return TIMESCALE_SERIES if timescale else POSTGRES_SERIES


RAW_ROWS_MAX = 200_000


def _rows_in_window(conn: Connection, q: SeriesQuery, event_ids: list[int]) -> int:
    stmt = sa.text(
        "SELECT coalesce(sum(n), 0) FROM datapoint_seconds "
        "WHERE event_id IN :event_ids AND second >= :s0 AND second <= :s1"
    ).bindparams(sa.bindparam("event_ids", expanding=True))
    found = conn.execute(stmt, {"event_ids": event_ids, "s0": second_of(q.since),
                                "s1": second_of(q.until)}).scalar()
    return int(found or 0)


def run_series(
    conn: Connection, q: SeriesQuery, dialect: str, timescale: bool
) -> tuple[SeriesQuery, dict[str, list[SeriesPoint]]]:
    """The query as answered and the points per requested event public id (unknown ids get an
    empty list). Buckets of whole seconds come from the per-second rollups (a few thousand rows
    per event and hour); narrower ones, and TimescaleDB (whose retention drops raw chunks behind
    the rollups' back), aggregate raw rows."""
    wanted = [pid for pid in q.event_ids if is_public_id(pid)]
    found = conn.execute(
        sa.select(events.c.id, events.c.public_id).where(events.c.public_id.in_(wanted))
    ).all() if wanted else []
    by_row_id = {int(r[0]): str(r[1]) for r in found}
    out: dict[str, list[SeriesPoint]] = {pid: [] for pid in q.event_ids}
    if not by_row_id:
        return q, out
    rolled = None if timescale else q.on_whole_seconds()
    if rolled is None and not timescale and _rows_in_window(conn, q, list(by_row_id)) > RAW_ROWS_MAX:
        # Sub-second buckets over more raw rows than a chart request may cost: one-second
        # buckets from the rollups instead (fewer than max_points, bounded work).
        rolled = q.on_whole_seconds(force=True)
    if rolled is not None:
        assert rolled.step_seconds is not None
        stmt = sa.text(ROLLUP_SERIES).bindparams(sa.bindparam("event_ids", expanding=True))
        rows = conn.execute(stmt, {
            "s0": second_of(rolled.since), "s1": second_of(rolled.until), "w": rolled.step_seconds,
            "event_ids": list(by_row_id),
        })
        for event_id, bucket, lo, hi, mean, n, last_ts, last in rows:
            ts = from_micros(int(last_ts)) if dialect == "sqlite" else last_ts
            out[by_row_id[int(event_id)]].append(SeriesPoint(
                min(int(bucket), rolled.max_points - 1), float(lo), float(hi), float(mean),
                float(last), int(n), ts,
            ))
        return rolled, out
    params: dict[str, Any]
    if dialect == "sqlite":
        params = {"since": to_micros(q.since), "until": to_micros(q.until),
                  "width_us": max(1, int(q.width / timedelta(microseconds=1))),
                  "event_ids": orjson.dumps(list(by_row_id)).decode()}
    else:
        params = {"since": q.since, "until": q.until, "width_s": q.width.total_seconds(),
                  "event_ids": list(by_row_id)}
    if dialect != "sqlite":
        # JIT compilation costs more than it saves on this short aggregate.
        conn.execute(sa.text("SET LOCAL jit = off"))
    rows = conn.execute(sa.text(series_sql(dialect, timescale)), params)
    for event_id, bucket, lo, hi, mean, n, last_ts, last in rows:
        bucket = min(int(bucket), q.max_points - 1)
        ts = from_micros(int(last_ts)) if dialect == "sqlite" else last_ts
        out[by_row_id[int(event_id)]].append(
            SeriesPoint(bucket, float(lo), float(hi), float(mean), float(last), int(n), ts)
        )
    return q, out
