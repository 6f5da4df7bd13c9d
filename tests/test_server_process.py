"""The real thing: ``python -m webmacs serve`` in a subprocess, spoken to over a socket."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer


async def test_serves_the_api_over_a_socket_and_stops_cleanly(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as http:
        health = await http.get("/health")
        assert health.status_code == 200
        assert health.json()["database"] == "ok"

        login = await http.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        event = await http.post(
            "/api/v1/events/",
            json={"name": "Temperature", "min_value": 0, "max_value": 100, "unit": "°C",
                  "type": "sensor"},
            headers=headers,
        )
        assert event.status_code == 201
        event_id = event.json()["public_id"]
        batch = await http.post(
            "/api/v1/datapoints/batch",
            json={"datapoints": [{"value": 21.5, "event_public_id": event_id}]}, headers=headers,
        )
        assert batch.status_code == 201 and batch.json()["accepted"] == 1
        latest = await http.get("/api/v1/datapoints/latest", headers=headers)
        assert [(d["event_public_id"], d["value"]) for d in latest.json()] == [(event_id, 21.5)]

        # A token in the query string never reaches the access log.
        await http.get("/api/v1/events", params={"token": "sekrit-token-value"})

    assert live_server.stop(signal.SIGTERM) == 0
    out = live_server.output()
    assert "webmacs listening on" in out and "log in as" in out
    assert "sekrit-token-value" not in out
    assert "token=[redacted]" in out


async def test_sigint_also_exits_zero(live_server: LiveServer) -> None:
    assert live_server.stop(signal.SIGINT) == 0


def test_bad_configuration_stops_with_one_clear_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PORT": "not-a-port", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    proc = subprocess.run(
        [sys.executable, "-m", "webmacs", "serve"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "webmacs: configuration error: PORT must be an integer, got 'not-a-port'."
    ]
    assert "Traceback" not in proc.stderr


def test_unreachable_database_stops_with_one_clear_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    proc = subprocess.run(
        [sys.executable, "-m", "webmacs", "serve"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("webmacs: cannot reach the database")


def test_a_port_in_use_stops_with_one_line_naming_the_cause(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "BCRYPT_ROUNDS": "4",
               "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
        proc = subprocess.run(
            [sys.executable, "-m", "webmacs", "serve"], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("webmacs: cannot start: ") and "Address already in use" in last, last


@pytest.mark.parametrize("flag", ["--port", "--host", "--database-url", "--workers"])
def test_cli_flags_are_documented(flag: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "webmacs", "serve", "--help"],
                          capture_output=True, text=True, timeout=30)
    assert flag in proc.stdout
