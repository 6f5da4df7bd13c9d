"""Faults against a real ``webmacs serve`` process, with a careful controller streaming to it.

Each test runs ``python -m webmacs serve`` (``LiveServer``), streams uniquely valued readings with
:class:`careful_client.CarefulController` (acks, a window of unacked frames, resend with the same
``seq`` after any failure), breaks something mid-ingest, lets the client finish, and then reads the
values straight from the database: every acked reading must be there exactly once, and nothing the
client never sent. The figures of each run are printed (``pytest -s``) as one ``FAULT …`` line.

- database outage (PostgreSQL only, on a cluster the test creates and drops): ~10 s down;
- ``kill -9`` mid-ingest, then a restart on the same database and port;
- SIGTERM under load (graceful), then a restart.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import psycopg
import pytest
import sqlalchemy as sa
import trio
from careful_client import Audit, CarefulController, Ledger, audit
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer, _free_port, skip_unless_required

OUTAGE_S = 10.0
FINISH_WITHIN_S = 90.0


# ---------------------------------------------------------------- helpers


def telemetry_url(server: LiveServer, token: str, controller_id: str) -> str:
    ws_base = server.base_url.replace("http://", "ws://", 1)
    return f"{ws_base}/ws/controller/telemetry?token={token}&controller_id={controller_id}"


async def login_and_create_event(server: LiveServer) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        login = await http.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        token: str = login.json()["access_token"]
        event = await http.post(
            "/api/v1/events",
            json={"name": "fault-probe", "min_value": 0, "max_value": 1e9, "unit": "u",
                  "type": "sensor"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert event.status_code == 201, event.text
        return token, event.json()["public_id"]


async def health_status(server: LiveServer, expect: int) -> int:
    """``/health``'s status once it is ``expect`` (its database check may be up to 1 s old),
    or whatever it says after 5 s."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        with trio.move_on_after(5):
            while (status := (await http.get("/health")).status_code) != expect:
                await trio.sleep(0.1)
        return status


async def post_batch(server: LiveServer, token: str, event_id: str, value: float) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        return await http.post(
            "/api/v1/datapoints/batch",
            json={"datapoints": [{"value": value, "event_public_id": event_id}]},
            headers={"Authorization": f"Bearer {token}"},
        )


def stored_values(database_url: str) -> list[float]:
    """Every datapoint value, read straight from the database (not through webmacs)."""
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            values = [float(v) for v in conn.execute(sa.text("SELECT value FROM datapoints")).scalars()]
            count = conn.execute(sa.text("SELECT count(*) FROM datapoints")).scalar_one()
    finally:
        engine.dispose()
    assert count == len(values)
    return values


async def restart(database_url: str, workdir: Path, port: int, name: str) -> LiveServer:
    """A new server on the same database and port; in a thread, so the client keeps retrying."""
    return await trio.to_thread.run_sync(lambda: LiveServer(database_url, workdir, port=port, name=name))


def judge(label: str, ledger: Ledger, database_url: str) -> Audit:
    """Exactly-once, checked against the database: every acked reading stored once, nothing
    stored that the client never sent (contract §8, idempotent telemetry with controller_id)."""
    result = audit(ledger, stored_values(database_url))
    print(f"\nFAULT {result.line(label)}")
    assert ledger.done, "the client did not get every frame acked"
    assert set(ledger.acked.values()) == {ledger.per_frame}, "an ack did not accept every reading"
    assert result.missing_acked == 0, "an acked reading is not in the database"
    assert result.never_sent == 0, "the database holds a reading the client never sent"
    assert result.readings_acked == result.readings_sent
    assert result.rows_stored == result.readings_sent + result.duplicates
    assert result.duplicates == 0, "a resent frame was stored twice"
    return result


def careful_client(server_ref: list[LiveServer], token: str, event_id: str,
                   ledger: Ledger) -> CarefulController:
    """A client that always dials the current server of ``server_ref`` (restarts replace it)."""
    controller_id = f"fault-{uuid.uuid4().hex[:8]}"
    return CarefulController(lambda: telemetry_url(server_ref[0], token, controller_id), event_id,
                             ledger)


# ---------------------------------------------------------------- kill -9 and SIGTERM


async def crash_and_restart(database_url: str, tmp_path: Path, sig: signal.Signals, *,
                            acks_lost: bool = False) -> Ledger:
    """Stream, hit the server with ``sig`` a quarter of the way in, restart it on the same
    database and port, and let the client finish.

    ``acks_lost``: just before the signal the client stops reading replies until the server has
    answered a whole window, so that window is committed but (for the client) unacknowledged,
    as when acks die with the server. Resending it is then what idempotent ingest is for.
    """
    servers = [LiveServer(database_url, tmp_path, name="before")]
    try:
        token, event_id = await login_and_create_event(servers[0])
        ledger = Ledger(frames=600, per_frame=50, window=8)
        client = careful_client(servers, token, event_id, ledger)
        with trio.fail_after(FINISH_WITHIN_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.run)
                await client.wait_until(lambda led: len(led.acked) >= led.frames // 4)
                if acks_lost:
                    ledger.deaf = True
                    await client.wait_until(lambda led: led.dropped_replies >= led.window)
                acked_at_fault = len(ledger.acked)
                status = await trio.to_thread.run_sync(servers[0].stop, sig)
                ledger.deaf = False
                assert status == (-signal.SIGKILL if sig == signal.SIGKILL else 0), servers[0].output()
                servers[0] = await restart(database_url, tmp_path, servers[0].port, "after")
        assert client.connects >= 2, "the fault did not interrupt the stream"
        assert acked_at_fault < ledger.frames
        return ledger
    finally:
        servers[0].stop()


def backend_of(database_url: str) -> str:
    return database_url.split(":", 1)[0]


@pytest.mark.parametrize("acks_lost", [False, True], ids=["in-flight", "acks-lost"])
async def test_kill_9_mid_ingest_then_restart_keeps_every_acked_reading(
    database_url: str, tmp_path: Path, acks_lost: bool
) -> None:
    ledger = await crash_and_restart(database_url, tmp_path, signal.SIGKILL, acks_lost=acks_lost)
    lost = ", acks lost" if acks_lost else ""
    judge(f"kill -9 ({backend_of(database_url)}{lost})", ledger, database_url)


async def test_sigterm_under_load_acks_what_it_read_then_restart_resends_the_rest(
    database_url: str, tmp_path: Path
) -> None:
    ledger = await crash_and_restart(database_url, tmp_path, signal.SIGTERM)
    # A graceful stop commits and acks every frame it read before closing with 1001, and reads
    # no more: what the client resends was never stored (no duplicate even without controller_id).
    judge(f"SIGTERM ({backend_of(database_url)})", ledger, database_url)


# ---------------------------------------------------------------- database outage


@attrs.frozen
class FaultCluster:
    """A PostgreSQL cluster owned by one test (never the shared one at 5432)."""

    version: str
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/webmacs_fault"

    def ctl(self, action: str) -> None:
        _run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action])


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


def _cluster_tools_reason() -> str | None:
    if shutil.which("pg_createcluster") is None or shutil.which("pg_ctlcluster") is None:
        return "pg_createcluster/pg_ctlcluster not installed (Debian postgresql-common)"
    if not os.path.isdir("/etc/postgresql") or not os.listdir("/etc/postgresql"):
        return "no PostgreSQL server version under /etc/postgresql"
    return None


@pytest.fixture
def fault_cluster() -> Iterator[FaultCluster]:
    """A fresh cluster on a free port, trust auth, started; stopped and dropped afterwards."""
    reason = _cluster_tools_reason()
    if reason is not None:
        skip_unless_required("database outage tests", reason)
    version = sorted(os.listdir("/etc/postgresql"), key=lambda v: float(v))[-1]
    cluster = FaultCluster(version, f"webmacs_fault_{uuid.uuid4().hex[:8]}", _free_port())
    _run(["pg_createcluster", version, cluster.name, "-p", str(cluster.port), "--start-conf=manual",
          "--", "--auth=trust"])
    try:
        cluster.ctl("start")
        admin = cluster.url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE webmacs_fault")
        yield cluster
    finally:
        _run(["pg_dropcluster", "--stop", version, cluster.name])


async def test_database_outage_keeps_the_server_up_and_every_acked_reading(
    fault_cluster: FaultCluster, tmp_path: Path
) -> None:
    url = fault_cluster.url
    servers = [LiveServer(url, tmp_path)]
    try:
        token, event_id = await login_and_create_event(servers[0])
        # Paced (~20 s of ingest unless interrupted), so the outage falls in the middle of it.
        ledger = Ledger(frames=1000, per_frame=20, window=8, pace=0.02)
        client = careful_client(servers, token, event_id, ledger)
        with trio.fail_after(FINISH_WITHIN_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.run)
                await client.wait_until(lambda led: len(led.acked) >= 100)
                await trio.to_thread.run_sync(fault_cluster.ctl, "stop")
                acked_at_outage = len(ledger.acked)
                assert await health_status(servers[0], 503) == 503
                # REST during the outage: a clean 503 (not stored), never a 500 or a hang.
                refused = await post_batch(servers[0], token, event_id, -1.0)
                assert refused.status_code == 503, refused.text
                assert refused.json() == {"detail": "Database unavailable."}
                await trio.sleep(OUTAGE_S)
                assert servers[0].proc.poll() is None, servers[0].output()
                await trio.to_thread.run_sync(fault_cluster.ctl, "start")
        assert servers[0].proc.poll() is None, "the server did not survive the outage"
        assert await health_status(servers[0], 200) == 200
        assert acked_at_outage < ledger.frames
        assert ledger.error_frames > 0, "the client never noticed the outage"
        assert set(ledger.errors) == {"Database unavailable."}
        assert client.connects == 1, "the outage should not have cost the connection"
        judge("database outage (postgresql)", ledger, url)
    finally:
        servers[0].stop()
