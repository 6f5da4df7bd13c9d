"""Datapoints: the one ingestion transaction, filtered pages, and the latest value per event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.stamping import Interval, Stamper
from webmacs.storage.records import (
    DatapointFilter,
    DatapointRecord,
    IngestResult,
    NewReading,
    Page,
    Rejection,
)
from webmacs.storage.sql.common import SqlRepository, fetch_page
from webmacs.storage.tables import datapoints, events, experiments
from webmacs.validation import is_public_id, new_public_id

EVENT_NOT_FOUND = "Event not found."

_FROM = datapoints.join(events, events.c.id == datapoints.c.event_id).outerjoin(
    experiments, experiments.c.id == datapoints.c.experiment_id
)
_SELECT = sa.select(
    datapoints.c.public_id, datapoints.c.value, datapoints.c.timestamp, events.c.public_id,
    experiments.c.public_id,
).select_from(_FROM)


def _datapoint(row: Any) -> DatapointRecord:
    return DatapointRecord(*row)


def _where(flt: DatapointFilter) -> list[Any] | None:
    """SQL conditions for a filter; None when it can match nothing (an id that is no UUID)."""
    conds: list[Any] = []
    if flt.event_public_id is not None:
        if not is_public_id(flt.event_public_id):
            return None
        conds.append(
            datapoints.c.event_id
            == sa.select(events.c.id).where(events.c.public_id == flt.event_public_id).scalar_subquery()
        )
    if flt.experiment_public_id is not None:
        if not is_public_id(flt.experiment_public_id):
            return None
        conds.append(
            datapoints.c.experiment_id
            == sa.select(experiments.c.id)
            .where(experiments.c.public_id == flt.experiment_public_id)
            .scalar_subquery()
        )
    if flt.since is not None:
        conds.append(datapoints.c.timestamp >= flt.since)
    if flt.until is not None:
        conds.append(datapoints.c.timestamp < flt.until)
    return conds


class SqlDatapointRepository(SqlRepository):
    async def page(self, flt: DatapointFilter, offset: int, limit: int) -> Page[DatapointRecord]:
        conds = _where(flt)
        if conds is None:
            return Page([], 0)
        query = _SELECT.where(*conds).order_by(datapoints.c.timestamp.desc(), datapoints.c.id.desc())
        count = sa.select(sa.func.count()).select_from(datapoints).where(*conds)
        return await self.db.read(lambda c: fetch_page(c, query, count, offset, limit, _datapoint))

    async def get(self, public_id: str) -> DatapointRecord | None:
        query = _SELECT.where(datapoints.c.public_id == public_id)
        row = await self.db.read(lambda c: c.execute(query).first())
        return None if row is None else _datapoint(row)

    async def delete(self, public_id: str) -> bool:
        def run(conn: Connection) -> bool:
            stmt = datapoints.delete().where(datapoints.c.public_id == public_id)
            return conn.execute(stmt).rowcount > 0

        return await self.db.write(run)

    async def latest(self) -> list[DatapointRecord]:
        """One row per event: the largest timestamp, ties to the row stored last.

        A correlated ``LIMIT 1`` per event walks the (event_id, timestamp, id) index backwards,
        so the cost is O(events), never a scan of the datapoints table.
        """
        newest = (
            sa.select(datapoints.c.id)
            .where(datapoints.c.event_id == events.c.id)
            .order_by(datapoints.c.timestamp.desc(), datapoints.c.id.desc())
            .limit(1)
            .correlate(events)
            .scalar_subquery()
        )
        query = (
            sa.select(
                datapoints.c.public_id, datapoints.c.value, datapoints.c.timestamp,
                events.c.public_id, experiments.c.public_id,
            )
            .select_from(
                events.join(datapoints, datapoints.c.id == newest).outerjoin(
                    experiments, experiments.c.id == datapoints.c.experiment_id
                )
            )
            .order_by(events.c.created_on, events.c.id)
        )
        rows = await self.db.read(lambda c: c.execute(query).all())
        return [_datapoint(r) for r in rows]

    async def ingest(self, readings: Sequence[NewReading], now: datetime) -> IngestResult:
        """Resolve events, stamp experiments and insert every good reading in one transaction."""
        if not readings:
            return IngestResult([], [])

        def run(conn: Connection) -> IngestResult:
            wanted = {r.event_public_id for r in readings if is_public_id(r.event_public_id)}
            event_ids: dict[str, int] = {}
            if wanted:
                found = conn.execute(
                    sa.select(events.c.public_id, events.c.id).where(events.c.public_id.in_(wanted))
                )
                event_ids = {pid: eid for pid, eid in found}
            good: list[tuple[NewReading, datetime]] = []
            rejected: list[Rejection] = []
            for r in readings:
                if r.event_public_id in event_ids:
                    good.append((r, r.timestamp or now))
                else:
                    rejected.append(
                        Rejection(r.index, r.event_public_id, EVENT_NOT_FOUND, input=r.event_public_id)
                    )
            if not good:
                return IngestResult([], rejected)
            first = min(ts for _, ts in good)
            last = max(ts for _, ts in good)
            found_intervals = conn.execute(
                sa.select(
                    experiments.c.id, experiments.c.public_id, experiments.c.started_on,
                    experiments.c.stopped_on,
                ).where(
                    experiments.c.started_on <= last,
                    sa.or_(experiments.c.stopped_on.is_(None), experiments.c.stopped_on > first),
                )
            ).all()
            stamper = Stamper(
                [Interval((row.id, row.public_id), row.started_on, row.stopped_on) for row in found_intervals]
            )
            rows: list[dict[str, Any]] = []
            stored: list[DatapointRecord] = []
            for reading, ts in good:
                exp = stamper.stamp(ts)
                public_id = new_public_id()
                rows.append({
                    "public_id": public_id, "value": reading.value, "timestamp": ts,
                    "event_id": event_ids[reading.event_public_id],
                    "experiment_id": None if exp is None else exp[0],
                })
                stored.append(DatapointRecord(
                    public_id, reading.value, ts, reading.event_public_id,
                    None if exp is None else exp[1],
                ))
            conn.execute(datapoints.insert(), rows)
            return IngestResult(stored, rejected)

        return await self.db.write(run)
