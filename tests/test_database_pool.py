"""The pool checks a connection only after it sat idle (no round trip per request under load)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
import trio
import trio.testing

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


async def test_recent_ping_shares_one_check_and_reuses_it_for_a_second(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ping.db'}", pool_size=2)
    calls: list[float] = []
    answers = iter([True, False])

    async def ping(timeout: float = 2.0) -> bool:
        calls.append(trio.current_time())
        await trio.sleep(0.5)  # a slow check: callers meanwhile share it
        return next(answers)

    monkeypatch.setattr(db, "ping", ping)
    try:
        results: list[bool] = []

        async def probe() -> None:
            results.append(await db.recent_ping(max_age=1.0))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(probe)
        assert results == [True] * 5 and len(calls) == 1
        await trio.sleep(0.9)
        assert await db.recent_ping(max_age=1.0) and len(calls) == 1  # 0.9 s old: reused
        await trio.sleep(0.2)
        assert not await db.recent_ping(max_age=1.0) and len(calls) == 2  # too old: checked again
    finally:
        db.dispose()
