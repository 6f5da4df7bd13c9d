"""Telemetry frame ids inside the ingest transaction: claim the new ones, replay the others (§8).

The claim is ``INSERT … ON CONFLICT DO NOTHING RETURNING``: only the ids inserted now come back.
On PostgreSQL a second transaction inserting an id that a first one holds uncommitted waits for
it, then sees the conflict (first committed: a duplicate) or inserts it (first rolled back), so
exactly one commit stores a frame's rows. On SQLite writers take turns anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from webmacs.frame_ids import FrameAck, FrameKey, FrameSpans, claim_order, first_ack, job_ranges
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.records import Rejection
from webmacs.storage.sql.common import SqlRepository
from webmacs.storage.tables import ingest_frames

LOOKUP_CHUNK = 500  # keys per SELECT: well inside SQLite's bound-parameter limit


def settle_frames(
    conn: Connection, spans: FrameSpans, rejected: Sequence[Rejection | None], now: datetime
) -> dict[int, FrameAck]:
    """Claim the batch's frame ids, recording the ack each new frame gets (``rejected``: per row
    of the batch, its store-time rejection or None). Returns, per job index, the ack to replay
    for the jobs not to store: their id was committed before, or an earlier job of this batch
    carries it. Jobs absent from the answer are stored as usual."""
    keys, repeats = claim_order(spans)
    if not keys:
        return {}
    acks: dict[FrameKey, FrameAck] = {}
    for tag, rows in job_ranges(spans):
        if tag is not None and tag.key not in acks:
            bad = [r for i in rows if (r := rejected[i]) is not None]
            acks[tag.key] = first_ack(tag, bad, len(rows) - len(bad))
    new = _claim(conn, keys, acks, now)
    old = _stored_acks(conn, [k for k in keys if k not in new])
    replay: dict[int, FrameAck] = {}
    for job, (tag, _) in enumerate(spans):
        if tag is None:
            continue
        if tag.key not in new:
            replay[job] = old[tag.key]
        elif job in repeats:
            replay[job] = acks[tag.key]
    return replay


def _claim(
    conn: Connection, keys: list[FrameKey], acks: dict[FrameKey, FrameAck], now: datetime
) -> set[FrameKey]:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(ingest_frames).on_conflict_do_nothing().returning(
        ingest_frames.c.controller_id, ingest_frames.c.seq
    )
    params = [
        {"controller_id": k.controller_id, "seq": k.seq, "accepted": acks[k].accepted,
         "rejected": acks[k].rejected_json(), "committed_at": now}
        for k in keys
    ]
    return {FrameKey(str(c), int(s)) for c, s in conn.execute(stmt, params)}


def _stored_acks(conn: Connection, keys: list[FrameKey]) -> dict[FrameKey, FrameAck]:
    found: dict[FrameKey, FrameAck] = {}
    cols = ingest_frames.c
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start:start + LOOKUP_CHUNK]
        rows = conn.execute(
            sa.select(cols.controller_id, cols.seq, cols.accepted, cols.rejected)
            .where(sa.tuple_(cols.controller_id, cols.seq).in_([tuple(k) for k in chunk]))
        )
        for cid, seq, accepted, rejected in rows:
            found[FrameKey(str(cid), int(seq))] = FrameAck.from_row(int(accepted), str(rejected))
    if len(found) < len(keys):
        # The conflicting id was pruned between our insert and this read: try the batch again.
        raise DatabaseUnavailable("a frame id vanished during its claim")
    return found


class SqlIngestFrameRepository(SqlRepository):
    async def prune(self, before: datetime) -> int:
        """Forget frame ids committed before ``before``: their resends would be stored again."""

        def run(conn: Connection) -> int:
            stmt = ingest_frames.delete().where(ingest_frames.c.committed_at < before)
            return int(conn.execute(stmt).rowcount)

        return await self.db.write(run)

    async def count(self) -> int:
        return await self.db.read(
            lambda c: int(c.execute(sa.select(sa.func.count()).select_from(ingest_frames)).scalar_one())
        )
