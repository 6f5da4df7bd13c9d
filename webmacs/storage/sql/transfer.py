"""What ``webmacs export`` and ``webmacs import`` ask of the database beyond the repositories.

An import is one transaction from the first check to the last row (all or nothing), so it
cannot go through the repositories, which each commit on their own; its rows go through the
ingest path's own write (:func:`write_rows`), which keeps the counters and rollups with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.csv_transfer import EventInFile, Row
from webmacs.storage.sql.datapoints import write_rows
from webmacs.storage.tables import datapoint_counts, datapoints, events, experiments
from webmacs.validation import format_timestamp, is_public_id, new_public_id, utcnow

CREATED_EVENT_TYPE = "sensor"


class ImportRefused(Exception):
    """The database refuses the file as a whole, or one of its lines (``line``)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def experiment_public_id(conn: Connection, name_or_id: str) -> str | None:
    """The experiment with this public id, else the one with this name."""
    if is_public_id(name_or_id):
        found = conn.execute(sa.select(experiments.c.public_id)
                             .where(experiments.c.public_id == name_or_id)).scalar()
        if found is not None:
            return str(found)
    found = conn.execute(sa.select(experiments.c.public_id)
                         .where(experiments.c.name == name_or_id)).scalar()
    return None if found is None else str(found)


def counted_rows(conn: Connection, public_id: str) -> int:
    """An experiment's datapoints, by the counters (no count over its rows)."""
    exp_id = sa.select(experiments.c.id).where(experiments.c.public_id == public_id).scalar_subquery()
    query = sa.select(sa.func.coalesce(sa.func.sum(datapoint_counts.c.n), 0)).where(
        datapoint_counts.c.experiment_key == exp_id)
    return int(conn.execute(query).scalar_one())


@attrs.frozen
class ImportPlan:
    """A checked file: the experiment to create, the file's events and its time range."""

    name: str
    events: Mapping[str, EventInFile]
    first: datetime
    last: datetime
    create_events: bool


def import_experiment(conn: Connection, plan: ImportPlan, batches: Iterable[Sequence[Row]]) -> int:
    """Create the experiment and store every batch into it; returns the number of rows.

    The experiment spans the rows' time range (``[first, last]``, stopped): experiments never
    overlap, because stamping takes the one that started last as the only candidate for a time,
    so a range that overlaps an existing experiment is refused."""
    if conn.execute(sa.select(experiments.c.id).where(experiments.c.name == plan.name)).first():
        raise ImportRefused(f"experiment {plan.name!r} already exists")
    started, stopped = plan.first, plan.last + timedelta(microseconds=1)
    overlap = conn.execute(
        sa.select(experiments.c.name).where(
            experiments.c.started_on < stopped,
            sa.or_(experiments.c.stopped_on.is_(None), experiments.c.stopped_on > started))
        .limit(1)).scalar()
    if overlap is not None:
        raise ImportRefused(
            f"the file's rows ({format_timestamp(plan.first)} to {format_timestamp(plan.last)}) "
            f"overlap experiment {overlap!r}; experiments cannot overlap")
    event_ids = _resolve_events(conn, plan.events, plan.create_events)
    exp_id = conn.execute(experiments.insert().values(
        public_id=new_public_id(), name=plan.name, started_on=started, stopped_on=stopped,
        user_id=None).returning(experiments.c.id)).scalar_one()
    stored = 0
    for batch in batches:
        _refuse_known_ids(conn, batch)
        write_rows(conn, [(r.public_id, r.value, r.timestamp, event_ids[r.event_name], exp_id)
                          for r in batch])
        stored += len(batch)
    return stored


def _resolve_events(conn: Connection, wanted: Mapping[str, EventInFile],
                    create: bool) -> dict[str, int]:
    """Event row ids by name: the database's events of those names (same unit), the others
    created with the file's id (if still free), unit and range of values, when ``create``."""
    found = {name: (int(row_id), unit) for name, row_id, unit in conn.execute(
        sa.select(events.c.name, events.c.id, events.c.unit).where(events.c.name.in_(list(wanted))))}
    ids: dict[str, int] = {}
    for event in sorted(wanted.values(), key=lambda e: e.line):
        if event.name in found:
            row_id, unit = found[event.name]
            if unit != event.unit:
                raise ImportRefused(f"event {event.name!r} has unit {unit!r} in the database, "
                                    f"{event.unit!r} in the file", event.line)
            ids[event.name] = row_id
            continue
        if not create:
            raise ImportRefused(f"event {event.name!r} is not in the database "
                                "(--create-events creates it)", event.line)
        taken = conn.execute(sa.select(events.c.id).where(events.c.public_id == event.public_id))
        ids[event.name] = conn.execute(events.insert().values(
            public_id=new_public_id() if taken.first() else event.public_id, name=event.name,
            min_value=event.lo, max_value=event.hi, unit=event.unit, type=CREATED_EVENT_TYPE,
            user_id=None, created_on=utcnow()).returning(events.c.id)).scalar_one()
    return ids


def _refuse_known_ids(conn: Connection, batch: Sequence[Row]) -> None:
    """Datapoint ids are kept from the file: one already stored means the file was imported."""
    if not batch:
        return
    query = sa.select(datapoints.c.public_id).where(
        datapoints.c.public_id.in_([str(r.public_id) for r in batch])).limit(1)
    known = conn.execute(query).scalar()
    if known is not None:
        line = next(r.line for r in batch if str(r.public_id) == str(known))
        raise ImportRefused(f"datapoint id {known} is already in the database "
                            "(was this file imported before?)", line)
