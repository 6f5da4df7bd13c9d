"""The sync SQLAlchemy engine, run from Trio in worker threads behind a CapacityLimiter.

Neither SQLAlchemy's asyncio layer nor psycopg's async API runs under Trio, so every database
call is a plain function executed by :meth:`Database.read` or :meth:`Database.write` in a thread.
The limiter is sized to the connection pool, so a burst of requests queues in Trio (cheaply,
cancellably) instead of blocking threads on the pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, TypeVar

import psycopg
import sqlalchemy as sa
import trio
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

log = logging.getLogger(__name__)

T = TypeVar("T")
Dialect = Literal["sqlite", "postgresql"]

SQLITE_BUSY_TIMEOUT_MS = 10_000
POOL_TIMEOUT_S = 10.0
PING_AFTER_IDLE_S = 1.0
# pg_advisory_lock key held while a process creates the schema and seeds the admin
# (any fixed bigint; this one spells "webmacs" in ASCII).
STARTUP_LOCK_KEY = 0x7765626D616373


class DatabaseUnavailable(Exception):
    """The database cannot be reached or stayed busy past its timeout (rendered as a 503)."""


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa.exc.TimeoutError):  # pool exhausted past its timeout
        return True
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated


def create_engine(url: str, pool_size: int) -> Engine:
    """An engine with the settings webmacs relies on for each dialect."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            poolclass=QueuePool if ":memory:" not in url and url.rstrip("/") != "sqlite+pysqlite:"
            else NullPool,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=POOL_TIMEOUT_S,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _configure_sqlite(engine)
        return engine
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_S,
        # Our statements are short OLTP queries and aggregates: JIT compilation (10-20 ms)
        # costs more than it saves, e.g. on a page's count over a time range.
        connect_args={"connect_timeout": 5, "options": "-c jit=off"},
    )
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Check a pooled connection before use only if it sat idle for :data:`PING_AFTER_IDLE_S`.

    ``pool_pre_ping`` costs a round trip on every checkout, i.e. on every request and commit,
    from a worker thread that then waits for the GIL again. A connection that was in use a
    moment ago is almost surely alive; if the server did go away meanwhile, the statement fails
    as unavailable (503, and recorders retry), and SQLAlchemy then drops the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["webmacs_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("webmacs_idle_since")
        if since is not None and time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # any failure means: discard it and connect afresh
            raise sa.exc.DisconnectionError(str(exc)) from exc
        if not alive:
            raise sa.exc.DisconnectionError("connection failed its ping")


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers, FULL sync so a commit is on disk before we answer, real FKs,
    and explicit BEGINs so writers take the write lock up front instead of failing to upgrade."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("webmacs_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """Owns the engine and the limiter; repositories hand it plain functions of a Connection."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size)
        self.dialect: Dialect = "sqlite" if self.engine.dialect.name == "sqlite" else "postgresql"
        self.limiter = trio.CapacityLimiter(pool_size)
        # SQLite allows one writer at a time: queue writers in Trio rather than in busy-waits.
        self._write_lock = trio.Lock() if self.dialect == "sqlite" else None
        self._checked_at = -float("inf")  # trio time of the last finished ping
        self._checked_ok = False
        self._checking: trio.Event | None = None

    # -- sync helpers (run inside worker threads)
    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            if _is_unavailable(exc):
                log.warning("database unavailable: %s", str(exc).splitlines()[0])
                raise DatabaseUnavailable(str(exc)) from exc
            raise
        except psycopg.OperationalError as exc:
            # Statements run on the raw psycopg cursor (PostgreSQL ingest) raise the driver's
            # own errors, which SQLAlchemy never wraps. A deadlock between concurrent writers
            # (40P01) or a lost connection is transient like its wrapped twin: callers retry.
            log.warning("database unavailable: %s", str(exc).splitlines()[0])
            raise DatabaseUnavailable(str(exc)) from exc

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        with self._translate(), self.engine.connect() as conn, conn.begin():
            return fn(conn)

    def write_sync(self, fn: Callable[[Connection], T]) -> T:
        with (
            self._translate(),
            self.engine.connect().execution_options(webmacs_write=True) as conn,
            conn.begin(),
        ):
            return fn(conn)

    # -- async entry points (Trio side)
    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await trio.to_thread.run_sync(self.read_sync, fn, limiter=self.limiter)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        if self._write_lock is None:
            return await trio.to_thread.run_sync(self.write_sync, fn, limiter=self.limiter)
        async with self._write_lock:
            return await trio.to_thread.run_sync(self.write_sync, fn, limiter=self.limiter)

    @asynccontextmanager
    async def startup_lock(self) -> AsyncIterator[None]:
        """Held around schema creation and admin seeding, so processes starting at once on one
        PostgreSQL database take turns (``CREATE TABLE IF NOT EXISTS`` itself races: two
        creators can both pass the check and one fails on the catalog's unique index).

        A session-level ``pg_advisory_lock`` on a connection of its own, outside the pool (a
        pool of one would otherwise deadlock against the work done under the lock); it is
        released when that connection closes, even if this process dies. SQLite: nothing to do
        (one process per file)."""
        if self.dialect != "postgresql":
            yield
            return
        engine = sa.create_engine(self.engine.url, poolclass=NullPool,
                                  connect_args={"connect_timeout": 5})

        def lock() -> Connection:
            with self._translate():
                conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                try:
                    conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": STARTUP_LOCK_KEY})
                except BaseException:
                    conn.close()
                    raise
                return conn

        conn = await trio.to_thread.run_sync(lock)
        try:
            yield
        finally:
            await trio.to_thread.run_sync(conn.close)  # closing the session releases the lock
            engine.dispose()

    async def ping(self, timeout: float = 2.0) -> bool:
        """A trivial query with a short timeout, for /health."""

        def probe(conn: Connection) -> None:
            conn.execute(sa.text("SELECT 1"))

        with trio.move_on_after(timeout):
            try:
                await trio.to_thread.run_sync(
                    self.read_sync, probe, limiter=self.limiter, abandon_on_cancel=True
                )
                return True
            except (DatabaseUnavailable, sa.exc.SQLAlchemyError):
                return False
        return False

    async def recent_ping(self, max_age: float = 1.0, timeout: float = 2.0) -> bool:
        """:meth:`ping`'s answer, at most ``max_age`` seconds old, one ping at a time.

        ``/health`` is public and polled: a query per call put every probe behind the pool's
        queue (its p99 followed the busiest writer) and let anyone turn requests into database
        work. Concurrent callers share one ping. A caller cancelled while waiting gets
        ``Cancelled``; the ping it started still records its answer for the others."""
        while trio.current_time() - self._checked_at >= max_age:
            if self._checking is not None:
                await self._checking.wait()
                continue
            self._checking = done = trio.Event()
            try:
                with trio.CancelScope(shield=True):
                    self._checked_ok = await self.ping(timeout)
                self._checked_at = trio.current_time()
            finally:
                self._checking = None
                done.set()
        return self._checked_ok

    def dispose(self) -> None:
        self.engine.dispose()
