"""Fixtures: every API test runs against a real SQLite file and a real PostgreSQL database.

PostgreSQL: one fresh database per test run (created here, dropped at the end), emptied between
tests. Without a reachable server the PostgreSQL half is skipped with the reason printed, unless
``WEBMACS_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes it mandatory.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from webmacs.actors.tree import ActorTree, open_actor_tree
from webmacs.http.app import create_app
from webmacs.services import Services, open_services
from webmacs.settings import Settings, load_settings
from webmacs.storage import migrate
from webmacs.storage.tables import ALL_TABLES

PG_ADMIN_DSN = os.environ.get("WEBMACS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("WEBMACS_REQUIRE_POSTGRES", "") in ("1", "true", "yes")

ADMIN_EMAIL = "admin@webmacs.io"
ADMIN_PASSWORD = "admin123"


def _pg_reason() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_DSN}: {exc}"


def skip_unless_required(what: str, reason: str) -> None:
    """Skip ``what`` with the reason printed, or fail where PostgreSQL is mandatory (CI)."""
    if REQUIRE_PG:
        pytest.fail(f"{what} are mandatory here: {reason}")
    print(f"\nSKIPPING {what}: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    reason = _pg_reason()
    if reason is not None:
        skip_unless_required("PostgreSQL tests", reason)
    name = f"webmacs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@functools.cache
def _head() -> str:
    return migrate.head()


def _empty_pg(url: str) -> None:
    """Empty the run's database; one a test left off head (the migration tests rebuild old
    schemas) is wiped instead, so start-up creates it at head again and no failure spreads."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            exists = conn.execute(sa.text("SELECT to_regclass('public.users') IS NOT NULL")).scalar()
            versioned = conn.execute(
                sa.text("SELECT to_regclass('public.alembic_version') IS NOT NULL")).scalar()
            at = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() \
                if versioned else None
            if (exists or versioned) and at != _head():
                conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                conn.execute(sa.text("CREATE SCHEMA public"))
            elif exists:
                names = ", ".join(t.name for t in ALL_TABLES)
                conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'webmacs-test.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    _empty_pg(url)
    return url


def make_settings(database_url: str, tmp_path: Path, **overrides: str) -> Settings:
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "BCRYPT_ROUNDS": "4",
        "INITIAL_ADMIN_EMAIL": ADMIN_EMAIL,
        "INITIAL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        **overrides,
    }
    return load_settings(env, workdir=tmp_path, persist_secret=False)


@asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[Any]:
    """A complete app (services and actor tree) for tests that need their own settings."""
    async with open_services(settings) as svc, open_actor_tree(svc) as actors:
        yield create_app(svc, actors)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings) as svc:
        yield svc


@pytest.fixture
async def tree(services: Services) -> AsyncIterator[ActorTree]:
    async with open_actor_tree(services) as actors:
        yield actors


@pytest.fixture
def app(services: Services, tree: ActorTree) -> Any:
    return create_app(services, tree)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


async def login(client: Any, email: str, password: str) -> str:
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    token: str = (await resp.get_json())["access_token"]
    return token


class FakeClock:
    """A clock for the login throttle that only moves when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin_token(client: Any) -> str:
    return await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def admin_headers(admin_token: str) -> dict[str, str]:
    return bearer(admin_token)


async def create_user(
    client: Any, admin_headers: dict[str, str], *, email: str | None = None,
    username: str | None = None, password: str = "password123", admin: bool = False,
) -> dict[str, Any]:
    """Create a user through the API; returns its public_id, email, password and token."""
    suffix = uuid.uuid4().hex[:8]
    email = email or f"user{suffix}@lab.local"
    username = username or f"user{suffix}"
    resp = await client.post(
        "/api/v1/users",
        json={"email": email, "username": username, "password": password, "admin": admin},
        headers=admin_headers,
    )
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    public_id = (await resp.get_json())["public_id"]
    token = await login(client, email, password)
    return {"public_id": public_id, "email": email, "username": username, "password": password,
            "token": token, "headers": bearer(token)}


async def create_event(
    client: Any, headers: dict[str, str], name: str | None = None, **fields: Any
) -> str:
    body = {"name": name or f"event-{uuid.uuid4().hex[:8]}", "min_value": 0, "max_value": 100,
            "unit": "°C", "type": "sensor", **fields}
    resp = await client.post("/api/v1/events", json=body, headers=headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    public_id: str = (await resp.get_json())["public_id"]
    return public_id


async def create_experiment(client: Any, headers: dict[str, str], name: str | None = None) -> str:
    resp = await client.post(
        "/api/v1/experiments", json={"name": name or f"exp-{uuid.uuid4().hex[:8]}"}, headers=headers
    )
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    public_id: str = (await resp.get_json())["public_id"]
    return public_id


# ---------------------------------------------------------------- a real server process


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """``python -m webmacs serve`` in a subprocess, on a free port, with its output captured."""

    def __init__(self, database_url: str, workdir: Path, *, port: int | None = None,
                 name: str = "server", **env: str) -> None:
        """``port``: reuse one (a restart on the same address); ``name`` names the log file."""
        import subprocess
        import sys
        import time

        self.port = port or _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        full_env = {
            **os.environ, "DATABASE_URL": database_url, "BCRYPT_ROUNDS": "4",
            "INITIAL_ADMIN_EMAIL": ADMIN_EMAIL, "INITIAL_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PORT": str(self.port), "HOST": "127.0.0.1", **env,
        }
        full_env.pop("SECRET_KEY", None)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webmacs", "serve"], cwd=workdir, env=full_env,
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            if "webmacs listening on" in self.output():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int | None = None) -> int:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(database_url, tmp_path)
    try:
        yield server
    finally:
        server.stop()
