"""Several real ``webmacs serve`` processes on one PostgreSQL database and one NATS bus.

:class:`Instances` starts K processes at once (separate ports, one shared ``SECRET_KEY`` so a
token from one is valid on all, a bus subject of their own), waits until each answers
``/health`` and stops them with SIGTERM. :func:`fresh_database` gives each use an empty
database, so the processes' first start (schema creation, admin seeding) really is concurrent.
Both are plain blocking helpers: tests call them from sync fixtures.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

ADMIN_EMAIL = "admin@webmacs.io"
ADMIN_PASSWORD = "admin123"
SECRET_KEY = "multi-instance-test-secret-key-0123456789abcdef"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def fresh_database(admin_dsn: str) -> Iterator[str]:
    """An empty PostgreSQL database (its URL), dropped afterwards."""
    name = f"webmacs_multi_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_dsn.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Instance:
    """One ``webmacs serve`` process (or a ``--workers N`` parent) with its output in a file."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path, args: list[str]) -> None:
        self.name = name
        self.port = int(env["PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webmacs", "serve", *args], cwd=workdir, env=env,
            stdout=self._log, stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early ({self.proc.returncode}):\n"
                                   f"{self.output()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /health:\n{self.output()}")

    def stop(self, sig: int | None = signal.SIGTERM) -> int:
        """Send ``sig`` (None: it was sent already; a second SIGTERM would kill the process
        outright) and wait for the exit status."""
        if self.proc.poll() is None:
            if sig is not None:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


class Instances:
    """K instances started at once on ``database_url`` and ``bus_url``; ``workers`` > 1 makes
    each a ``--workers`` parent."""

    def __init__(self, k: int, database_url: str, bus_url: str | None, workdir: Path, *,
                 workers: int = 1, **env: str) -> None:
        self.subject = f"test.webmacs.multi.{uuid.uuid4().hex[:12]}"
        base = {
            **os.environ, "DATABASE_URL": database_url, "BCRYPT_ROUNDS": "4",
            "SECRET_KEY": SECRET_KEY, "INITIAL_ADMIN_EMAIL": ADMIN_EMAIL,
            "INITIAL_ADMIN_PASSWORD": ADMIN_PASSWORD, "HOST": "127.0.0.1",
            "WEBMACS_BUS_SUBJECT": self.subject, "WORKERS": str(workers), **env,
        }
        base.pop("WEBMACS_BUS_URL", None)
        if bus_url is not None:
            base["WEBMACS_BUS_URL"] = bus_url
        self.all: list[Instance] = []
        try:
            for i in range(k):
                self.all.append(Instance(f"instance-{i}", {**base, "PORT": str(free_port())},
                                         workdir, ["--no-access-log"]))
            deadline = time.monotonic() + START_TIMEOUT_S
            for instance in self.all:
                instance.wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise

    def __getitem__(self, i: int) -> Instance:
        return self.all[i]

    def stop(self) -> list[int]:
        """SIGTERM to all at once, then their exit statuses."""
        for instance in self.all:
            if instance.proc.poll() is None:
                instance.proc.send_signal(signal.SIGTERM)
        return [instance.stop(None) for instance in self.all]
