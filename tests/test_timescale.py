"""STORAGE_BACKEND=timescale: the SQL it emits, and the refusal without the extension.

The TimescaleDB extension cannot be installed on our machines, so the hypertable path itself is
checked by the statements it would run (the revisions' SQL: tests/test_migrations.py); the refusal
runs against the real PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_settings

from webmacs.services import open_services
from webmacs.settings import SettingsError, load_settings
from webmacs.storage.backends import StorageError
from webmacs.storage.timescale import TimescaleOptions, policy_statements


def test_no_policies_by_default() -> None:
    # The hypertable itself is made by revision 0001_base (tests/test_migrations.py checks its SQL).
    assert policy_statements(TimescaleOptions()) == []


def test_compression_and_retention_policies() -> None:
    sql = policy_statements(TimescaleOptions("6 hours", "7 days", "365 days"))
    assert any("timescaledb.compress_segmentby = 'event_id'" in s for s in sql)
    assert any("add_compression_policy('datapoints', INTERVAL '7 days'" in s for s in sql)
    assert any("add_retention_policy('datapoints', INTERVAL '365 days'" in s for s in sql)
    assert all("if_not_exists => TRUE" in s for s in sql if s.startswith("SELECT"))


def test_policy_settings_are_validated(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://x@h/db", "STORAGE_BACKEND": "timescale",
           "TIMESCALE_COMPRESS_AFTER": "7 days", "TIMESCALE_RETENTION": "52 weeks"}
    settings = load_settings(env, workdir=tmp_path, persist_secret=False)
    assert settings.timescale == TimescaleOptions("1 day", "7 days", "52 weeks")
    with pytest.raises(SettingsError, match="TIMESCALE_RETENTION"):
        load_settings({**env, "TIMESCALE_RETENTION": "forever'; DROP TABLE x"}, workdir=tmp_path,
                      persist_secret=False)


@pytest.fixture
def pg_url(pg_database_url: str) -> str:
    return pg_database_url


async def test_refuses_to_start_without_the_extension(pg_url: str, tmp_path: Path) -> None:
    settings = make_settings(pg_url, tmp_path, STORAGE_BACKEND="timescale")
    with pytest.raises(StorageError, match="timescaledb extension is not installed"):
        async with open_services(settings):
            pass


def test_serve_refuses_with_one_clear_line(pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": pg_url, "STORAGE_BACKEND": "timescale"}
    proc = subprocess.run([sys.executable, "-m", "webmacs", "serve"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "webmacs: STORAGE_BACKEND=timescale but the timescaledb extension is not installed")
    assert "Traceback" not in proc.stderr
