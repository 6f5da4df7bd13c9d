"""The pool checks a connection only after it sat idle (no round trip per request under load)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
import trio

from webmacs.storage import database
from webmacs.storage.database import Database


def backend_pid(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


async def test_an_idle_connection_killed_by_the_server_is_replaced_unseen(
    pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", 0.2)
    db = Database(pg_database_url, pool_size=1)
    pings: list[Any] = []
    original = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda c: pings.append(c) or original(c))
    try:
        first = await db.read(backend_pid)
        second = await db.read(backend_pid)  # used a moment ago: no ping, same connection
        assert second == first and len(pings) == 1  # only the new connection's first checkout
        with sa.create_engine(pg_database_url).connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await trio.sleep(0.3)  # idle past the limit: checked, found dead, replaced
        third = await db.read(backend_pid)
        assert third != first and len(pings) >= 2
    finally:
        db.dispose()
