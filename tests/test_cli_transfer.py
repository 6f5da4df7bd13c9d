"""``webmacs export`` and ``webmacs import`` against real SQLite files and PostgreSQL databases:
the REST export's exact bytes, an all-or-nothing import that names the bad line, round trips."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import trio
from conftest import PG_ADMIN_DSN, create_event, create_experiment
from instances import fresh_database

from webmacs.cli import main
from webmacs.csv_export import header_line
from webmacs.settings import to_sqlalchemy_url
from webmacs.validation import format_timestamp

H = dict[str, str]
VALUES = [0.0, 1.0, -1.0, 1.5, -0.001, 0.1 + 0.2, 1e-05, 123456789012345.6, 1e15, -1e15,
          1234567890123456.8, 1e16, 1.5e300, 5e-324, 100.0, 12345.678]


def scalar(url: str, sql: str) -> Any:
    engine = sa.create_engine(to_sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def assert_aggregates_consistent(url: str) -> None:
    """The counters and the per-second rollups agree with the rows themselves."""
    rows = scalar(url, "SELECT count(*) FROM datapoints")
    assert scalar(url, "SELECT coalesce(sum(n), 0) FROM datapoint_counts") == rows
    assert scalar(url, "SELECT coalesce(sum(n), 0) FROM datapoint_seconds") == rows
    assert scalar(url, "SELECT count(*) FROM (SELECT d.event_id FROM datapoints d "
                       "JOIN datapoint_counts c ON c.event_id = d.event_id "
                       "AND c.experiment_key = coalesce(d.experiment_id, 0) "
                       "GROUP BY d.event_id, c.experiment_key, c.n HAVING count(*) <> c.n) x") == 0


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database on the same backend."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with fresh_database(PG_ADMIN_DSN) as url:
        yield url


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' working directory (a development secret for a PostgreSQL URL lands there)."""
    monkeypatch.chdir(tmp_path)


async def cli(*argv: str) -> int:
    """The command in a worker thread (it runs its own ``trio.run``)."""
    return await trio.to_thread.run_sync(main, list(argv))


async def http_export(client: Any, headers: H, experiment: str) -> bytes:
    resp = await client.get(f"/api/v1/experiments/{experiment}/export/csv", headers=headers)
    assert resp.status_code == 200
    body: bytes = await resp.get_data()
    return body


async def recorded_experiment(client: Any, headers: H, name: str = "Run 1") -> str:
    """An experiment with rows of two events whose name and unit need CSV quoting."""
    odd = await create_event(client, headers, name='odd, "quoted"\nname', unit="°C")
    plain = await create_event(client, headers, name="pressure", unit="bar")
    experiment = await create_experiment(client, headers, name)
    items = [{"value": v, "event_public_id": odd if i % 2 else plain} for i, v in enumerate(VALUES)]
    resp = await client.post("/api/v1/datapoints/batch", json={"datapoints": items}, headers=headers)
    assert resp.status_code == 201, await resp.get_data(as_text=True)
    resp = await client.put(f"/api/v1/experiments/{experiment}/stop", headers=headers)
    assert resp.status_code == 200
    return experiment


async def test_export_is_the_rest_export_byte_for_byte(
    client: Any, admin_headers: H, database_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    experiment = await recorded_experiment(client, admin_headers)
    expected = await http_export(client, admin_headers, experiment)
    by_id, by_name = tmp_path / "by-id.csv", tmp_path / "by-name.csv"
    assert await cli("export", experiment, "--out", str(by_id), "--database-url", database_url) == 0
    assert capsys.readouterr().err == f"exported {len(VALUES)} rows to {by_id}\n"
    assert by_id.read_bytes() == expected
    assert await cli("export", "Run 1", "--out", str(by_name), "--quiet",
                     "--database-url", database_url) == 0
    assert by_name.read_bytes() == expected


async def test_export_to_standard_output(client: Any, admin_headers: H, database_url: str) -> None:
    experiment = await recorded_experiment(client, admin_headers)
    expected = await http_export(client, admin_headers, experiment)
    proc = await trio.run_process(
        [sys.executable, "-m", "webmacs", "export", experiment, "--out", "-",
         "--database-url", database_url], capture_stdout=True, capture_stderr=True)
    assert proc.stdout == expected
    assert proc.stderr == f"exported {len(VALUES)} rows to standard output\n".encode()


async def test_export_of_an_empty_or_unknown_experiment(
    client: Any, admin_headers: H, database_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await create_experiment(client, admin_headers, "empty")
    out = tmp_path / "empty.csv"
    assert await cli("export", "empty", "--out", str(out), "--database-url", database_url) == 0
    assert out.read_bytes() == header_line()
    capsys.readouterr()
    missing = tmp_path / "missing.csv"
    assert await cli("export", "nope", "--out", str(missing), "--database-url", database_url) == 1
    assert capsys.readouterr().err == "webmacs: no experiment named or with id 'nope'\n"
    assert not missing.exists() and not Path(f"{missing}.partial").exists()


async def test_round_trip_into_a_fresh_database(
    client: Any, admin_headers: H, database_url: str, fresh_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    experiment = await recorded_experiment(client, admin_headers)
    first = tmp_path / "first.csv"
    assert await cli("export", experiment, "--out", str(first), "--database-url", database_url) == 0
    capsys.readouterr()

    # Without --create-events a fresh database refuses the file: its events are unknown there.
    assert await cli("import", str(first), "--database-url", fresh_url) == 1
    err = capsys.readouterr().err
    assert err == f"webmacs: {first} line 2: event 'pressure' is not in the database " \
                  "(--create-events creates it)\n"
    assert scalar(fresh_url, "SELECT count(*) FROM experiments") == 0

    assert await cli("import", str(first), "--experiment", "Copy", "--create-events",
                     "--database-url", fresh_url) == 0
    assert capsys.readouterr().out == f"imported {len(VALUES)} rows into experiment Copy\n"
    again = tmp_path / "again.csv"
    assert await cli("export", "Copy", "--out", str(again), "--database-url", fresh_url) == 0
    assert again.read_bytes() == first.read_bytes()
    assert_aggregates_consistent(fresh_url)
    # The experiment spans its rows and is stopped; the events got the file's ids and units.
    rows = first.read_bytes().decode().split("\r\n")
    assert scalar(fresh_url, "SELECT count(*) FROM experiments WHERE stopped_on IS NULL") == 0
    assert scalar(fresh_url, "SELECT unit FROM events WHERE name = 'pressure'") == "bar"
    stored = scalar(fresh_url, "SELECT public_id FROM events WHERE name = 'pressure'")
    assert uuid.UUID(rows[1].split(",")[2]) == uuid.UUID(str(stored))

    # The same file again: its time range is taken by the copy now.
    assert await cli("import", str(first), "--experiment", "Copy 2",
                     "--database-url", fresh_url) == 1
    assert "overlap experiment 'Copy'" in capsys.readouterr().err
    assert scalar(fresh_url, "SELECT count(*) FROM datapoints") == len(VALUES)


def _row(ts: datetime, event: str, event_id: str, value: str, unit: str = "K") -> str:
    return f"{format_timestamp(ts)},{event},{event_id},{value},{unit},{uuid.uuid4()}\r\n"


def write_file(path: Path, rows: list[str]) -> Path:
    path.write_bytes(header_line() + "".join(rows).encode())
    return path


T0 = datetime(2020, 1, 1, tzinfo=UTC)
EVENT = str(uuid.uuid4())


@pytest.mark.parametrize(("line", "bad", "message"), [
    (17, _row(T0, "temp", EVENT, "abc"), "value 'abc' is not a number"),
    (5, _row(T0, "temp", EVENT, "nan"), "value 'nan' is not a number"),
    (3, "2020-01-01T00:00:00,temp," + EVENT + ",1.0,K," + str(uuid.uuid4()) + "\r\n",
     "timestamp '2020-01-01T00:00:00' is not an ISO 8601 time with a UTC offset"),
    (9, _row(T0, "temp", EVENT, "1.0", unit="°F"), "event 'temp' has unit '°F' here but 'K' on line 2"),
    (2, "a,b\r\n", "expected 6 columns, found 2"),
    (4, _row(T0, "temp", "not-an-id", "1"), "event id 'not-an-id' is not a UUID"),
])
def test_a_bad_line_is_named_and_nothing_is_stored(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: int, bad: str,
    message: str,
) -> None:
    assert main(["users", "list", "--database-url", database_url]) == 0  # creates the schema
    rows = [_row(T0 + timedelta(seconds=i), "temp", EVENT, f"{i}.5") for i in range(30)]
    rows[line - 2] = bad
    path = write_file(tmp_path / "bad.csv", rows)
    assert main(["import", str(path), "--create-events", "--database-url", database_url]) == 1
    assert capsys.readouterr().err == f"webmacs: {path} line {line}: {message}\n"
    for table in ("experiments", "events", "datapoints", "datapoint_counts", "datapoint_seconds"):
        assert scalar(database_url, f"SELECT count(*) FROM {table}") == 0, table


def test_whole_file_checks(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert main(["import", str(empty), "--database-url", database_url]) == 1
    assert capsys.readouterr().err.startswith(f"webmacs: {empty} line 1: empty file; expected the")
    only_header = write_file(tmp_path / "header.csv", [])
    assert main(["import", str(only_header), "--database-url", database_url]) == 1
    assert capsys.readouterr().err == f"webmacs: {only_header}: no rows to import\n"
    wrong = tmp_path / "wrong.csv"
    wrong.write_bytes(b"time,value\r\n")
    assert main(["import", str(wrong), "--database-url", database_url]) == 1
    assert capsys.readouterr().err == (f"webmacs: {wrong} line 1: expected the export header "
                                       "timestamp,event_name,event_public_id,value,unit,"
                                       "datapoint_public_id\n")
    twice = str(uuid.uuid4())
    dup = write_file(tmp_path / "dup.csv", [
        f"{format_timestamp(T0)},temp,{EVENT},1.0,K,{twice}\r\n",
        f"{format_timestamp(T0)},temp,{EVENT},2.0,K,{twice}\r\n"])
    assert main(["import", str(dup), "--database-url", database_url]) == 1
    assert capsys.readouterr().err == (f"webmacs: {dup} line 3: datapoint id {twice} "
                                       "appears twice in the file\n")


async def test_refusals_from_the_database_store_nothing(
    client: Any, admin_headers: H, database_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    temp = await create_event(client, admin_headers, name="temp", unit="K")
    await create_experiment(client, admin_headers, "taken")
    # A reading outside any experiment (the one above is running; stamped at 2019, before it).
    resp = await client.post("/api/v1/datapoints", headers=admin_headers, json={
        "value": 1.0, "event_public_id": temp, "timestamp": "2019-06-01T00:00:00+00:00"})
    assert resp.status_code == 201
    stored = (await resp.get_json())["public_id"]
    before = scalar(database_url, "SELECT count(*) FROM datapoints")

    rows = [_row(T0 + timedelta(seconds=i), "temp", EVENT, "1") for i in range(3)]
    path = write_file(tmp_path / "experiment_taken_0123abcd.csv", rows)
    assert await cli("import", str(path), "--database-url", database_url) == 1
    assert capsys.readouterr().err == f"webmacs: {path}: experiment 'taken' already exists\n"

    kelvin_as_celsius = write_file(tmp_path / "c.csv", [_row(T0, "temp", EVENT, "1", unit="°C")])
    assert await cli("import", str(kelvin_as_celsius), "--database-url", database_url) == 1
    assert capsys.readouterr().err == (f"webmacs: {kelvin_as_celsius} line 2: event 'temp' has unit "
                                       "'K' in the database, '°C' in the file\n")

    # The running experiment started now: rows from now on overlap it.
    now = write_file(tmp_path / "now.csv", [_row(datetime.now(UTC) + timedelta(hours=1), "temp",
                                                 EVENT, "1")])
    assert await cli("import", str(now), "--database-url", database_url) == 1
    assert "overlap experiment 'taken'; experiments cannot overlap" in capsys.readouterr().err

    reused = write_file(tmp_path / "reused.csv", [
        *rows, f"{format_timestamp(T0)},temp,{EVENT},2.0,K,{stored}\r\n"])
    assert await cli("import", str(reused), "--database-url", database_url) == 1
    assert capsys.readouterr().err == (f"webmacs: {reused} line 5: datapoint id {stored} is already "
                                       "in the database (was this file imported before?)\n")

    assert scalar(database_url, "SELECT count(*) FROM datapoints") == before
    assert scalar(database_url, "SELECT count(*) FROM experiments") == 1
    # The file name of an export names the experiment; an existing event is matched by name.
    ok = write_file(tmp_path / "experiment_Run_2_89abcdef.csv", rows)
    assert await cli("import", str(ok), "--database-url", database_url) == 0
    assert capsys.readouterr().out == "imported 3 rows into experiment Run_2\n"
    assert_aggregates_consistent(database_url)


def test_fifty_thousand_rows(database_url: str, tmp_path: Path) -> None:
    events = [(f"sensor {k}", str(uuid.uuid4())) for k in range(4)]
    lines = []
    for i in range(50_000):
        name, event_id = events[i % 4]
        lines.append(_row(T0 + timedelta(milliseconds=7 * i), name, event_id, repr(i / 7)))
    path = write_file(tmp_path / "big.csv", lines)
    assert main(["import", str(path), "--experiment", "big", "--create-events", "--quiet",
                 "--database-url", database_url]) == 0
    assert scalar(database_url, "SELECT count(*) FROM datapoints") == 50_000
    assert scalar(database_url, "SELECT count(*) FROM events") == 4
    assert_aggregates_consistent(database_url)
    out = tmp_path / "big-out.csv"
    assert main(["export", "big", "--out", str(out), "--quiet", "--database-url", database_url]) == 0
    assert out.read_bytes() == path.read_bytes()

    # A reader that stops early (``| head``): one line, no traceback.
    proc = subprocess.Popen([sys.executable, "-m", "webmacs", "export", "big", "--out", "-",
                             "--database-url", database_url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(100).startswith(header_line())
    proc.stdout.close()
    assert proc.wait(timeout=60) == 1
    assert proc.stderr.read() == b"webmacs: standard output was closed before the end of the export\n"
    proc.stderr.close()


def run_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webmacs", *argv], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_errors_are_one_line_without_traceback(database_url: str, tmp_path: Path) -> None:
    bad = write_file(tmp_path / "bad.csv", [_row(T0, "temp", EVENT, "abc")])
    cases = [
        (["import", str(bad), "--database-url", database_url], 1),
        (["import", str(tmp_path / "absent.csv"), "--database-url", database_url], 2),
        (["export", "nope", "--out", str(tmp_path / "x.csv"), "--database-url", database_url], 1),
        (["export", "nope", "--out", str(tmp_path / "x.csv"),
          "--database-url", "postgresql://postgres@127.0.0.1:1/none"], 1),
        (["export", "nope", "--out", str(tmp_path / "x.csv"),
          "--database-url", f"sqlite:///{tmp_path}/no/such/dir/x.db"], 1),
    ]
    for argv, code in cases:
        proc = run_cli(*argv, cwd=tmp_path)
        assert proc.returncode == code, (argv, proc.stderr)
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("webmacs"), (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
