"""Per-second rollups of datapoints: maintained with every batch, rebuilt from raw rows after
deletes, and read by chart series whose buckets are whole seconds.

A row per (event, epoch second) holds count, sum, min, max and the last value (latest timestamp;
ties go to the row stored last). Merging two rollups of the same second is exact, so each batch
upserts its own aggregates; a delete cannot un-merge a min or max, so the affected seconds are
recomputed from the remaining rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.storage.tables import UTCDateTime, to_micros

_MERGE = {
    "postgresql": """
INSERT INTO datapoint_seconds AS s (event_id, second, n, total, lo, hi, last_value, last_ts)
VALUES (:e, :s, :n, :t, :lo, :hi, :lv, :lt)
ON CONFLICT (event_id, second) DO UPDATE SET
  n = s.n + excluded.n, total = s.total + excluded.total,
  lo = LEAST(s.lo, excluded.lo), hi = GREATEST(s.hi, excluded.hi),
  last_value = CASE WHEN excluded.last_ts >= s.last_ts THEN excluded.last_value ELSE s.last_value END,
  last_ts = GREATEST(s.last_ts, excluded.last_ts)
""",
    "sqlite": """
INSERT INTO datapoint_seconds (event_id, second, n, total, lo, hi, last_value, last_ts)
VALUES (:e, :s, :n, :t, :lo, :hi, :lv, :lt)
ON CONFLICT (event_id, second) DO UPDATE SET
  n = datapoint_seconds.n + excluded.n, total = datapoint_seconds.total + excluded.total,
  lo = min(datapoint_seconds.lo, excluded.lo), hi = max(datapoint_seconds.hi, excluded.hi),
  last_value = CASE WHEN excluded.last_ts >= datapoint_seconds.last_ts
                    THEN excluded.last_value ELSE datapoint_seconds.last_value END,
  last_ts = max(datapoint_seconds.last_ts, excluded.last_ts)
""",
}


def second_of(ts: datetime) -> int:
    return to_micros(ts) // 1_000_000


def add_seconds(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Merge a batch's rows ``(_, value, timestamp, event_id, _)`` into the rollups."""
    stmt = sa.text(_MERGE[conn.dialect.name]).bindparams(sa.bindparam("lt", type_=UTCDateTime()))
    conn.execute(stmt, [
        {"e": e, "s": sec, "n": a[0], "t": a[1], "lo": a[2], "hi": a[3], "lv": a[4], "lt": a[5]}
        for (e, sec), a in second_rollups(rows)
    ])


def second_rollups(rows: Sequence[tuple[Any, ...]]) -> list[tuple[tuple[int, int], list[Any]]]:
    """A batch's own rollups: ``((event_id, second), [n, total, lo, hi, last_value, last_ts])``
    in key order (the order writers lock the rollup rows in)."""
    acc: dict[tuple[int, int], list[Any]] = {}
    for _, value, ts, event_id, _exp in rows:
        key = (event_id, second_of(ts))
        a = acc.get(key)
        if a is None:
            acc[key] = [1, value, value, value, value, ts]
            continue
        a[0] += 1
        a[1] += value
        if value < a[2]:
            a[2] = value
        if value > a[3]:
            a[3] = value
        if ts >= a[5]:  # ties: the later row of the batch is the one stored last
            a[4], a[5] = value, ts
    return sorted(acc.items())


def _second_expr(dialect: str) -> str:
    if dialect == "sqlite":
        return "(d.timestamp / 1000000)"  # integer micros since the epoch
    return "floor(extract(epoch FROM d.timestamp))::bigint"


def rebuild_seconds(
    conn: Connection, event_id: int | None, first: int | None, last: int | None
) -> None:
    """Recompute the rollups of seconds ``[first, last]`` (all if None) for one or all events."""
    dialect = conn.dialect.name
    sec = _second_expr(dialect)
    where_r, where_d, params = ["1=1"], ["1=1"], {}
    if event_id is not None:
        where_r.append("event_id = :event_id")
        where_d.append("d.event_id = :event_id")
        params["event_id"] = event_id
    if first is not None and last is not None:
        where_r.append("second >= :first AND second <= :last")
        where_d.append(f"{sec} >= :first AND {sec} <= :last")
        params.update(first=first, last=last)
    conn.execute(sa.text(f"DELETE FROM datapoint_seconds WHERE {' AND '.join(where_r)}"), params)
    conn.execute(sa.text(f"""
INSERT INTO datapoint_seconds (event_id, second, n, total, lo, hi, last_value, last_ts)
SELECT d.event_id, {sec}, count(*), sum(d.value), min(d.value), max(d.value), NULL,
       max(d.timestamp)
FROM datapoints d WHERE {' AND '.join(where_d)}
GROUP BY d.event_id, {sec}
"""), params)
    conn.execute(sa.text(f"""
UPDATE datapoint_seconds SET last_value = (
  SELECT d.value FROM datapoints d
  WHERE d.event_id = datapoint_seconds.event_id AND d.timestamp = datapoint_seconds.last_ts
  ORDER BY d.id DESC LIMIT 1)
WHERE last_value IS NULL AND {' AND '.join(where_r)}
"""), params)


ROLLUP_SERIES = """
WITH b AS (
  SELECT r.event_id, (r.second - :s0) / :w AS bucket, min(r.lo) AS lo, max(r.hi) AS hi,
         sum(r.total) AS total, sum(r.n) AS n, max(r.second) AS last_second
  FROM datapoint_seconds r
  WHERE r.event_id IN :event_ids AND r.second >= :s0 AND r.second < :s1
  GROUP BY 1, 2
)
SELECT b.event_id, b.bucket, b.lo, b.hi, b.total / b.n AS mean, b.n, x.last_ts, x.last_value
FROM b JOIN datapoint_seconds x ON x.event_id = b.event_id AND x.second = b.last_second
ORDER BY 1, 2
"""
