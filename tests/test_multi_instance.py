"""Three real ``webmacs serve`` processes sharing PostgreSQL and NATS behave as one service.

Skipped, with the reason printed, without PostgreSQL at 127.0.0.1:5432 or NATS at
127.0.0.1:4222 (``WEBMACS_REQUIRE_POSTGRES=1`` / ``WEBMACS_REQUIRE_NATS=1`` make that a
failure). Waits are bounded; nothing asserts how fast anything is, except the documented
bounds (``/datapoints/latest`` within 1 s, a revoked token refused within the auth cache's 1 s
TTL plus scheduling slack).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import trio
import trio_websocket
from conftest import PG_ADMIN_DSN, _pg_reason, skip_unless_required
from instances import ADMIN_EMAIL, ADMIN_PASSWORD, Instances, free_port, fresh_database
from test_bus import NATS_HOST, NATS_PORT, NATS_URL, need, reachable

READINGS = 40
LATEST_BOUND_S = 1.0
REVOCATION_BOUND_S = 2.5  # the auth cache's 1 s TTL, plus slack for a loaded machine
WAIT_S = 20.0  # the most any delivery is waited for


def _need_pg_and_nats() -> None:
    reason = _pg_reason()
    if reason is not None:
        skip_unless_required("multi-instance tests", reason)
    need(reachable(NATS_HOST, NATS_PORT), f"no NATS server at {NATS_URL}")


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Instances, str]]:
    """Three instances started at the same moment on one fresh database (their first start)."""
    _need_pg_and_nats()
    with fresh_database(PG_ADMIN_DSN) as url:
        instances = Instances(3, url, NATS_URL, tmp_path_factory.mktemp("three"))
        try:
            yield instances, url
        finally:
            codes = instances.stop()
        assert codes == [0, 0, 0], [i.output()[-2000:] for i in instances.all]


def test_simultaneous_first_starts_seed_exactly_one_admin(three: tuple[Instances, str]) -> None:
    _, url = three
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT email, role FROM users").fetchall()
    assert rows == [(ADMIN_EMAIL, "admin")]


async def _login(http: httpx.AsyncClient) -> str:
    resp = await http.post("/api/v1/auth/login",
                           json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


async def _subscriber(url: str, got: list[Any], ready: trio.Event, done: trio.Event) -> None:
    """Collects stream frames (data values and lag frames) until ``done``."""
    async with trio_websocket.open_websocket_url(url) as ws:
        assert orjson.loads(await ws.get_message())["type"] == "connected"
        ready.set()
        with trio.move_on_after(WAIT_S):
            while not done.is_set():
                frame = orjson.loads(await ws.get_message())
                if frame["type"] == "datapoints_batch":
                    got.extend(d["value"] for d in frame["datapoints"])
                    if len(got) >= READINGS:
                        # Anything more (a duplicate) would arrive right behind: look briefly.
                        with trio.move_on_after(0.5):
                            got.append(orjson.loads(await ws.get_message()))
                        return
                elif frame["type"] == "lag":
                    got.append(frame)


async def test_readings_sent_to_one_instance_reach_subscribers_on_all_once_in_order(
    three: tuple[Instances, str],
) -> None:
    instances, _ = three
    a = instances[0]
    async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as http:
        token = await _login(http)
        headers = {"Authorization": f"Bearer {token}"}
        event = await http.post("/api/v1/events", headers=headers, json={
            "name": "multi-temp", "min_value": 0, "max_value": 1000, "unit": "C", "type": "sensor"})
        assert event.status_code == 201, event.text
        event_id = event.json()["public_id"]

        received: list[list[Any]] = [[] for _ in instances.all]
        async with trio.open_nursery() as nursery:
            ready = [trio.Event() for _ in instances.all]
            done = trio.Event()
            for inst, got, r in zip(instances.all, received, ready, strict=True):
                url = f"{inst.ws_url}/ws/datapoints/stream?token={token}&event_public_id={event_id}"
                nursery.start_soon(_subscriber, url, got, r, done)
            for r in ready:
                await r.wait()
            ws_url = f"{a.ws_url}/ws/controller/telemetry?token={token}&controller_id=multi-1"
            async with trio_websocket.open_websocket_url(ws_url) as ctl:
                for n in range(READINGS):
                    await ctl.send_message(orjson.dumps(
                        {"seq": n, "datapoints": [{"value": n, "event_public_id": event_id}]}
                    ).decode())
                acks = [orjson.loads(await ctl.get_message()) for _ in range(READINGS)]
            assert [(x["type"], x["seq"], x["accepted"]) for x in acks] == \
                [("ack", n, 1) for n in range(READINGS)]

        for inst, got in zip(instances.all, received, strict=True):
            assert got == [float(n) for n in range(READINGS)], (inst.name, got)

        # /datapoints/latest on every instance (polled up to the bound).
        for inst in instances.all:
            deadline = time.monotonic() + LATEST_BOUND_S
            async with httpx.AsyncClient(base_url=inst.base_url, timeout=5) as other:
                while True:
                    latest = (await other.get("/api/v1/datapoints/latest", headers=headers)).json()
                    values = [d["value"] for d in latest if d["event_public_id"] == event_id]
                    if values == [float(READINGS - 1)] or time.monotonic() > deadline:
                        break
                    await trio.sleep(0.05)
            assert values == [float(READINGS - 1)], (inst.name, latest)


async def test_logout_on_one_instance_revokes_the_token_on_the_others(
    three: tuple[Instances, str],
) -> None:
    instances, _ = three
    clients = [httpx.AsyncClient(base_url=i.base_url, timeout=5) for i in instances.all]
    try:
        token = await _login(clients[0])
        headers = {"Authorization": f"Bearer {token}"}
        for http in clients:  # warm every instance's auth cache with the valid token
            assert (await http.get("/api/v1/auth/me", headers=headers)).status_code == 200
        assert (await clients[0].post("/api/v1/auth/logout", headers=headers)).status_code in (
            200, 204)
        for http in clients[1:]:
            deadline = time.monotonic() + REVOCATION_BOUND_S
            while True:
                status = (await http.get("/api/v1/auth/me", headers=headers)).status_code
                if status == 401 or time.monotonic() > deadline:
                    break
                await trio.sleep(0.05)
            assert status == 401
    finally:
        for http in clients:
            await http.aclose()


# -- --workers


def _pids(output: str) -> dict[int, int]:
    """slot -> pid of the workers the supervisor started last."""
    return {int(s): int(p) for s, p in re.findall(r"worker (\d+) started \(pid (\d+)\)", output)}


def test_workers_serve_restart_a_killed_worker_and_stop_cleanly(tmp_path: Path) -> None:
    _need_pg_and_nats()
    with fresh_database(PG_ADMIN_DSN) as url:
        pool = Instances(1, url, NATS_URL, tmp_path, workers=2)
        parent = pool[0]
        try:
            for _ in range(10):
                assert httpx.get(f"{parent.base_url}/health", timeout=5).status_code == 200
            login = httpx.post(f"{parent.base_url}/api/v1/auth/login", timeout=5,
                               json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            assert login.status_code == 200
            deadline = time.monotonic() + WAIT_S
            while len(_pids(parent.output())) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            before = _pids(parent.output())
            assert sorted(before) == [0, 1]
            os.kill(before[1], signal.SIGKILL)  # dies unexpectedly: restarted
            while _pids(parent.output())[1] == before[1] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _pids(parent.output())[1] != before[1], parent.output()
            assert "exited with status -9" in parent.output()
            while parent.output().count("webmacs listening on") < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            code = pool.stop()
        out = parent.output()
        assert code == [0], out
        assert out.count("webmacs listening on") == 3  # two workers, one restarted
        assert "worker 0 stopped (status 0)" in out and "worker 1 stopped (status 0)" in out
        assert "Traceback" not in out


@pytest.mark.parametrize(("env", "missing"), [
    ({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "a bus"),
    ({"WEBMACS_BUS_URL": NATS_URL}, "PostgreSQL"),
])
def test_workers_without_a_bus_or_postgresql_are_refused_in_one_line(
    tmp_path: Path, env: dict[str, str], missing: str,
) -> None:
    full = {k: v for k, v in os.environ.items() if k not in ("WEBMACS_BUS_URL", "DATABASE_URL")}
    full.update({"PORT": str(free_port()), **env})
    proc = subprocess.run([sys.executable, "-m", "webmacs", "serve", "--workers", "2"],
                          cwd=tmp_path, env=full, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("webmacs: --workers 2 needs "), proc.stderr
    assert missing in lines[0]


# -- the bus is not on the storage path


def _no_silent_gap(items: list[Any]) -> int:
    """Checks received values (ascending from 0) and lag frames: every missing value is
    announced by lag frames before the next value. Returns how many were missed."""
    expected, announced, missed = 0, 0, 0
    for item in items:
        if isinstance(item, dict):
            assert item["type"] == "lag", item
            announced += int(item["dropped"])
            continue
        gap = int(item) - expected
        assert gap >= 0, f"{item} out of order (expected {expected})"
        assert gap <= announced, f"silent gap: {gap} readings before {item}, {announced} announced"
        announced -= gap
        missed += gap
        expected = int(item) + 1
    return missed


async def test_a_nats_restart_mid_run_keeps_acks_and_never_leaves_a_silent_gap(
    tmp_path: Path,
) -> None:
    from test_bus import NATS_SERVER, PrivateNats

    _need_pg_and_nats()
    need(os.access(NATS_SERVER, os.X_OK), f"{NATS_SERVER} is not installed")
    nats = PrivateNats(tmp_path)
    await nats.start()
    total = 120
    try:
        with fresh_database(PG_ADMIN_DSN) as url:
            pair = Instances(2, url, nats.url, tmp_path)
            try:
                a, b = pair[0], pair[1]
                async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as http:
                    token = await _login(http)
                    event = await http.post(
                        "/api/v1/events", headers={"Authorization": f"Bearer {token}"},
                        json={"name": "restart", "min_value": 0, "max_value": 1000, "unit": "C",
                              "type": "sensor"})
                    event_id = event.json()["public_id"]
                items: list[Any] = []
                acked: list[int] = []
                stream = f"{b.ws_url}/ws/datapoints/stream?token={token}&event_public_id={event_id}"
                telemetry = f"{a.ws_url}/ws/controller/telemetry?token={token}&controller_id=r1"
                async with trio_websocket.open_websocket_url(stream) as sub, \
                        trio_websocket.open_websocket_url(telemetry) as ctl:
                    assert orjson.loads(await sub.get_message())["type"] == "connected"

                    async def read_stream() -> None:
                        with trio.move_on_after(WAIT_S * 2):
                            while not items or items[-1] != float(total - 1):
                                frame = orjson.loads(await sub.get_message())
                                if frame["type"] == "lag":
                                    items.append(frame)
                                elif frame["type"] == "datapoints_batch":
                                    items.extend(d["value"] for d in frame["datapoints"])

                    async def read_acks() -> None:
                        with trio.move_on_after(WAIT_S * 2):
                            while len(acked) < total:
                                ack = orjson.loads(await ctl.get_message())
                                assert ack["type"] == "ack", ack
                                assert (ack["accepted"], ack["rejected"]) == (1, []), ack
                                acked.append(ack["seq"])

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(read_stream)
                        nursery.start_soon(read_acks)
                        for n in range(total):
                            if n == total // 4:
                                nats.stop()  # NATS goes away mid-run ...
                            if n == total // 2:
                                await nats.start()  # ... and comes back on the same port
                            await ctl.send_message(orjson.dumps({"seq": n, "datapoints": [
                                {"value": n, "event_public_id": event_id}]}).decode())
                            await trio.sleep(0.02)
                assert acked == list(range(total))  # ingest and acks never waited for the bus
                assert items and items[-1] == float(total - 1), items  # B is fed again
                missed = _no_silent_gap(items)
                print(f"\nNATS restart: {total} acked, {missed} announced as lag on B")
            finally:
                codes = pair.stop()
            for inst in pair.all:
                assert "NATS bus: reconnected" in inst.output(), inst.output()[-3000:]
            assert codes == [0, 0]
    finally:
        nats.stop()


def test_workers_that_keep_failing_at_startup_make_the_parent_give_up(tmp_path: Path) -> None:
    """An unreachable database: every worker exits at once; after the backoff, exit 1."""
    env = {k: v for k, v in os.environ.items() if k not in ("WEBMACS_BUS_URL", "DATABASE_URL")}
    env.update({"PORT": str(free_port()), "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                "WEBMACS_BUS_URL": NATS_URL})
    proc = subprocess.run([sys.executable, "-m", "webmacs", "serve", "--workers", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "at startup; restarting in" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "webmacs: giving up: worker "), proc.stderr[-3000:]
