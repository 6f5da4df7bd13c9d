"""Experiments: create = start, at most one running, idempotent stop, streamed export."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import trio
from sqlalchemy.engine import Connection

from webmacs.storage.protocols import Conflict
from webmacs.storage.records import ExperimentRecord, Page
from webmacs.storage.rollups import rebuild_seconds, second_of
from webmacs.storage.sql.common import SqlRepository, creator_id, fetch_page
from webmacs.storage.sql.datapoints import lock_stamping
from webmacs.storage.sql.export import export_postgresql, export_sqlite
from webmacs.storage.tables import datapoint_counts, datapoints, experiments, users
from webmacs.validation import new_public_id, utcnow

EXPERIMENT_EXISTS = "Experiment already exists."
_SELECT = sa.select(
    experiments.c.public_id, experiments.c.name, experiments.c.started_on,
    experiments.c.stopped_on, users.c.public_id,
).select_from(experiments.outerjoin(users, users.c.id == experiments.c.user_id))


def _experiment(row: Any) -> ExperimentRecord:
    return ExperimentRecord(*row)


def still_running(name: str) -> str:
    return f"Experiment '{name}' is still running; stop it first."


def _name_taken(conn: Connection, name: str, except_id: str | None = None) -> bool:
    query = sa.select(experiments.c.id).where(experiments.c.name == name)
    if except_id is not None:
        query = query.where(experiments.c.public_id != except_id)
    return conn.execute(query.limit(1)).first() is not None


class SqlExperimentRepository(SqlRepository):
    # Instances sharing the database: changes take the stamping lock exclusively, so a
    # datapoint batch stamped at commit sees each change wholly or not at all.
    serialize_with_stamping = False

    def _serialize(self, conn: Connection) -> None:
        if self.serialize_with_stamping and conn.dialect.name == "postgresql":
            lock_stamping(conn)

    async def page(self, offset: int, limit: int) -> Page[ExperimentRecord]:
        query = _SELECT.order_by(experiments.c.started_on.desc(), experiments.c.id.desc())
        count = sa.select(sa.func.count()).select_from(experiments)
        return await self.db.read(lambda c: fetch_page(c, query, count, offset, limit, _experiment))

    async def get(self, public_id: str) -> ExperimentRecord | None:
        query = _SELECT.where(experiments.c.public_id == public_id)
        row = await self.db.read(lambda c: c.execute(query).first())
        return None if row is None else _experiment(row)

    async def intervals(self) -> list[tuple[int, str, datetime, datetime | None]]:
        """Every experiment's (row id, public id, started_on, stopped_on), for stamping."""
        query = sa.select(
            experiments.c.id, experiments.c.public_id, experiments.c.started_on,
            experiments.c.stopped_on,
        ).order_by(experiments.c.started_on, experiments.c.id)
        rows = await self.db.read(lambda c: c.execute(query).all())
        return [(int(r[0]), str(r[1]), r[2], r[3]) for r in rows]

    async def running(self) -> ExperimentRecord | None:
        query = _SELECT.where(experiments.c.stopped_on.is_(None))
        row = await self.db.read(lambda c: c.execute(query).first())
        return None if row is None else _experiment(row)

    async def create(self, name: str, user_public_id: str | None) -> ExperimentRecord:
        def run(conn: Connection) -> ExperimentRecord:
            self._serialize(conn)
            # Running first, name second: under READ COMMITTED each statement sees a newer
            # snapshot, so a rival that is running by the first check is named by the second,
            # and the name conflict wins when both apply (§4.3).
            running = conn.execute(
                sa.select(experiments.c.name).where(experiments.c.stopped_on.is_(None))
            ).first()
            if _name_taken(conn, name):
                raise Conflict(EXPERIMENT_EXISTS)
            if running is not None:
                raise Conflict(still_running(running.name))
            record = ExperimentRecord(new_public_id(), name, utcnow(), None, user_public_id)
            conn.execute(
                experiments.insert().values(
                    public_id=record.public_id, name=name, started_on=record.started_on,
                    stopped_on=None, user_id=creator_id(user_public_id),
                )
            )
            return record

        return await self.write_retrying(run)

    async def rename(self, public_id: str, name: str | None) -> bool:
        def run(conn: Connection) -> bool:
            where = experiments.c.public_id == public_id
            if conn.execute(sa.select(experiments.c.id).where(where)).first() is None:
                return False
            if name is not None:
                if _name_taken(conn, name, public_id):
                    raise Conflict(EXPERIMENT_EXISTS)
                conn.execute(experiments.update().where(where).values(name=name))
            return True

        return await self.write_retrying(run)

    async def stop(self, public_id: str) -> ExperimentRecord | None:
        """Set ``stopped_on`` once; later calls keep the first value (idempotent)."""

        def run(conn: Connection) -> ExperimentRecord | None:
            self._serialize(conn)
            conn.execute(
                experiments.update()
                .where(experiments.c.public_id == public_id, experiments.c.stopped_on.is_(None))
                .values(stopped_on=utcnow())
            )
            row = conn.execute(_SELECT.where(experiments.c.public_id == public_id)).first()
            return None if row is None else _experiment(row)

        return await self.db.write(run)

    async def delete(self, public_id: str) -> bool:
        # ON DELETE CASCADE removes the experiment's datapoints within the same statement.
        def run(conn: Connection) -> bool:
            self._serialize(conn)
            found = conn.execute(
                sa.select(experiments.c.id).where(experiments.c.public_id == public_id)
            ).first()
            if found is None:
                return False
            span = conn.execute(
                sa.select(sa.func.min(datapoints.c.timestamp), sa.func.max(datapoints.c.timestamp))
                .where(datapoints.c.experiment_id == found.id)
            ).first()
            conn.execute(experiments.delete().where(experiments.c.id == found.id))
            conn.execute(datapoint_counts.delete().where(datapoint_counts.c.experiment_key == found.id))
            if span is not None and span[0] is not None:
                rebuild_seconds(conn, None, second_of(span[0]), second_of(span[1]))
            return True

        return await self.db.write(run)

    async def export_csv(self, public_id: str, send: trio.MemorySendChannel[bytes]) -> None:
        """Stream the export's CSV body (without header) into ``send``, then close it."""

        def emit(chunk: bytes) -> None:
            trio.from_thread.run(send.send, chunk)

        worker = export_postgresql if self.db.dialect == "postgresql" else export_sqlite
        # If the client goes away, the worker stops at its next chunk (the channel is closed).
        async with send:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await trio.to_thread.run_sync(worker, self.db, public_id, emit, limiter=self.db.limiter)
