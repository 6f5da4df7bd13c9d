"""Commands pushed to controllers (contract §8): store, redeliver, ack, prune."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.commands import COMMAND_EVENT_TYPES, Candidate, CommandRecord
from webmacs.storage.sql.common import SqlRepository
from webmacs.storage.tables import commands, events
from webmacs.validation import new_public_id

CHUNK = 500  # ids per IN (...): well inside SQLite's bound-parameter limit


def _chunks(items: Sequence[str]) -> list[list[str]]:
    return [list(items[i:i + CHUNK]) for i in range(0, len(items), CHUNK)]


class SqlCommandRepository(SqlRepository):
    async def create(
        self, candidates: Sequence[Candidate], now: datetime, ttl: timedelta
    ) -> list[CommandRecord]:
        """Store one command per candidate row and target, for rows whose event is (still) an
        actuator or a range; the stored commands, in candidate order."""

        def run(conn: Connection) -> list[CommandRecord]:
            wanted = list(dict.fromkeys(c.row.event_public_id for c in candidates))
            ids: dict[str, int] = {}
            for chunk in _chunks(wanted):
                rows = conn.execute(
                    sa.select(events.c.public_id, events.c.id).where(
                        events.c.public_id.in_(chunk), events.c.type.in_(COMMAND_EVENT_TYPES))
                )
                ids.update({str(pid): int(eid) for pid, eid in rows})
            records: list[CommandRecord] = []
            params = []
            for cand in candidates:
                event_id = ids.get(cand.row.event_public_id)
                if event_id is None:
                    continue
                for target in cand.targets:
                    record = CommandRecord(new_public_id(), target, cand.row.event_public_id,
                                           cand.row.value, cand.row.timestamp, now + ttl)
                    records.append(record)
                    params.append({
                        "public_id": record.public_id, "target": target, "event_id": event_id,
                        "value": record.value, "timestamp": record.timestamp,
                        "created_at": now, "expires_at": now + ttl,
                    })
            if params:
                conn.execute(commands.insert(), params)
            return records

        # (An event deleted meanwhile fails the foreign key: once more, and it is not found.)
        return await self.write_retrying(run)

    async def pending(
        self, target: str, event_ids: Sequence[str], now: datetime, limit: int = 1000
    ) -> list[CommandRecord]:
        """The target's unacked, unexpired commands for these events: the newest ``limit``,
        oldest first."""

        def run(conn: Connection) -> list[CommandRecord]:
            found: list[tuple[int, CommandRecord]] = []
            for chunk in _chunks(event_ids):
                rows = conn.execute(
                    sa.select(commands.c.id, commands.c.public_id, events.c.public_id,
                              commands.c.value, commands.c.timestamp, commands.c.expires_at)
                    .select_from(commands.join(events, events.c.id == commands.c.event_id))
                    .where(commands.c.target == target, events.c.public_id.in_(chunk),
                           commands.c.expires_at > now)
                    .order_by(commands.c.id.desc())
                    .limit(limit)
                )
                found.extend(
                    (int(row_id), CommandRecord(str(pid), target, str(ev), float(value), ts, exp))
                    for row_id, pid, ev, value, ts, exp in rows)
            found.sort(key=lambda item: item[0])
            return [record for _, record in found[-limit:]]

        return await self.db.read(run) if event_ids else []

    async def ack(self, target: str, command_id: str) -> bool:
        """The target has the command: forget it. Another target's command id changes nothing."""

        def run(conn: Connection) -> bool:
            stmt = commands.delete().where(commands.c.public_id == command_id,
                                           commands.c.target == target)
            return int(conn.execute(stmt).rowcount) > 0

        return await self.db.write(run)

    async def prune(self, before: datetime) -> int:
        """Delete the commands that expired before ``before``: they are never sent again."""

        def run(conn: Connection) -> int:
            return int(conn.execute(commands.delete().where(commands.c.expires_at < before)).rowcount)

        return await self.db.write(run)

    async def count(self, target: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(commands)
        if target is not None:
            query = query.where(commands.c.target == target)
        return await self.db.read(lambda c: int(c.execute(query).scalar_one()))
