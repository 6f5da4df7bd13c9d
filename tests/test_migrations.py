"""Schema revisions: they give exactly ``tables.metadata``, each upgrades a database made by the
previous one (backfills included), databases made before Alembic are recognised, and an outdated
database is refused at start with one line naming ``webmacs db upgrade``.

Each test gets an empty database of its own (conftest's shared PostgreSQL database is at head).
There are no downgrades to test: going back is restoring a backup.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import PG_ADMIN_DSN, _pg_reason, make_settings, skip_unless_required
from instances import fresh_database

from webmacs.cli import main
from webmacs.services import open_services
from webmacs.settings import to_sqlalchemy_url
from webmacs.storage import migrate
from webmacs.storage.backends import StorageError, prepare
from webmacs.storage.database import Database, DatabaseUnavailable
from webmacs.storage.rollups import rebuild_seconds
from webmacs.storage.tables import UTCDateTime, metadata, to_micros
from webmacs.storage.timescale import TimescaleOptions

REVISIONS = migrate.revisions()
HEAD = migrate.head()
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    reason = _pg_reason()
    if reason is not None:
        skip_unless_required("PostgreSQL tests", reason)
    with fresh_database(PG_ADMIN_DSN) as url:
        yield url


@pytest.fixture
def db(fresh_url: str) -> Iterator[Database]:
    database = Database(to_sqlalchemy_url(fresh_url), pool_size=2)
    try:
        yield database
    finally:
        database.dispose()


def upgrade_to(db: Database, target: str) -> tuple[migrate.Status, str]:
    return db.write_sync(lambda conn: migrate.upgrade(conn, target))


def differences(db: Database) -> list[Any]:
    def compare(conn: sa.Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        with warnings.catch_warnings():  # SQLite cannot reflect it: catalog() checks it instead
            warnings.filterwarnings("ignore", ".*expression-based index uq_experiments_one_running")
            warnings.filterwarnings("ignore", ".*expression-based index 'uq_experiments_one_running'")
            return list(compare_metadata(ctx, metadata))

    return db.read_sync(compare)


def catalog(db: Database) -> list[tuple[Any, ...]]:
    """Every table, column, constraint and index as the database itself spells it."""
    if db.dialect == "sqlite":
        sql = ["SELECT type, name, tbl_name, sql FROM sqlite_master "
               "WHERE tbl_name != 'alembic_version'"]
    else:
        sql = [
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name != 'alembic_version'",
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text != 'alembic_version'",
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename != 'alembic_version'",
        ]
    # Whitespace aside: SQLite splices an added column into the stored text as it was written.
    return db.read_sync(lambda conn: sorted(
        tuple(" ".join(str(v).split()) for v in row) for q in sql for row in conn.execute(sa.text(q))))


def drop_everything(db: Database) -> None:
    def drop(conn: sa.Connection) -> None:
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE alembic_version"))

    db.write_sync(drop)


# ---------------------------------------------------------------- the schema the revisions give


def test_replaying_the_revisions_gives_exactly_the_schema_of_tables(db: Database) -> None:
    before, after = upgrade_to(db, HEAD)  # a revision id: replays every revision
    assert before.empty and after == HEAD
    assert differences(db) == []
    replayed = catalog(db)
    # The partial unique index, which Alembic cannot compare on SQLite, is in the catalog.
    assert any("uq_experiments_one_running" in row[1] and "stopped_on IS NULL" in row[-1]
               for row in replayed)
    assert any("ON DELETE SET NULL" in row[-1] for row in replayed)
    drop_everything(db)
    before, after = upgrade_to(db, "head")  # an empty database: create_all and a stamp
    assert before.empty and after == HEAD
    assert db.read_sync(migrate.status) == migrate.Status(HEAD)
    assert catalog(db) == replayed


def test_the_revisions_form_one_line_with_readable_ids() -> None:
    assert REVISIONS[0] == "0001_base" and REVISIONS[-1] == HEAD
    assert [r[:4] for r in REVISIONS] == [f"{i:04d}" for i in range(1, len(REVISIONS) + 1)]
    assert [r for r, _ in migrate.LEGACY_REVISIONS] == REVISIONS[:len(migrate.LEGACY_REVISIONS)]


def test_status_and_refusals_without_a_database() -> None:
    known = set(REVISIONS)
    base = migrate.LEGACY_REVISIONS[0][1]
    assert migrate.Status(None).describe() == "empty" and migrate.Status(None).empty
    assert migrate.Status(None, base).describe() == "unversioned"
    assert migrate.refusal(migrate.Status(None), HEAD, known) is None
    assert migrate.refusal(migrate.Status(HEAD), HEAD, known) is None
    assert "run `webmacs db upgrade`" in (migrate.refusal(migrate.Status("0001_base"), HEAD, known)
                                          or "")
    assert migrate.legacy_revision(base | {"someone_elses_table"}) == "0001_base"
    assert migrate.legacy_revision(base | {"datapoint_counts", "datapoint_seconds"}) == (
        "0003_datapoint_seconds")
    with pytest.raises(migrate.SchemaError, match=r"missing: datapoint_counts\)"):
        migrate.legacy_revision(base | {"datapoint_seconds"})
    with pytest.raises(migrate.SchemaError, match=r"missing: datapoints, events"):
        migrate.legacy_revision({"users", "experiments", "log_entries", "revoked_tokens"})


# ---------------------------------------------------------------- upgrades with data in place


def seed(conn: sa.Connection) -> None:
    """An admin and a non-admin; readings of two events, in and out of an experiment, over a few
    seconds, with two at the same instant (the later id's value is the second's last value). Plain
    SQL on the columns of 0001_base (and, for users, of the revision before 0006), so the seed
    stays valid as the live tables change."""
    ts = sa.bindparam("ts", type_=UTCDateTime())
    if "admin" in {c["name"] for c in sa.inspect(conn).get_columns("users")}:  # before 0006
        for i, (email, admin) in enumerate((("boss@lab.local", True), ("ada@lab.local", False))):
            conn.execute(sa.text(
                "INSERT INTO users (id, public_id, email, username, password_hash, admin, registered_on) "
                "VALUES (:id, :pid, :email, :email, 'x', :admin, :ts)").bindparams(ts),
                {"id": i + 1, "pid": str(uuid.uuid4()), "email": email, "admin": admin, "ts": T0})
    for i, name in enumerate(("temp", "valve")):
        conn.execute(sa.text(
            "INSERT INTO events (id, public_id, name, min_value, max_value, unit, type, created_on) "
            "VALUES (:id, :pid, :name, 0, 100, 'u', 'sensor', :ts)").bindparams(ts),
            {"id": i + 1, "pid": str(uuid.uuid4()), "name": name, "ts": T0})
    conn.execute(sa.text(
        "INSERT INTO experiments (id, public_id, name, started_on) VALUES (7, :pid, 'run', :ts)"
    ).bindparams(ts), {"pid": str(uuid.uuid4()), "ts": T0})
    for i, (event, exp, offset, value) in enumerate(READINGS):
        conn.execute(sa.text(
            "INSERT INTO datapoints (id, public_id, value, timestamp, event_id, experiment_id) "
            "VALUES (:id, :pid, :value, :ts, :event, :exp)").bindparams(ts),
            {"id": i + 1, "pid": str(uuid.uuid4()), "value": value,
             "ts": T0 + timedelta(seconds=offset), "event": event, "exp": exp})


READINGS = [  # (event id, experiment id, seconds after T0, value)
    (1, None, 0.1, 5.0), (1, None, 0.7, -2.0), (1, 7, 0.7, 9.0), (1, 7, 1.25, 3.5),
    (1, 7, 3.999999, 1.0), (2, 7, 0.0, 0.5), (2, None, 2.5, 42.0), (2, None, 2.0, 41.0),
]


def expected_counts() -> list[tuple[int, int, int]]:
    counts: dict[tuple[int, int], int] = {}
    for event, exp, _, _ in READINGS:
        counts[(event, exp or 0)] = counts.get((event, exp or 0), 0) + 1
    return sorted((e, x, n) for (e, x), n in counts.items())


def expected_seconds() -> list[tuple[Any, ...]]:
    acc: dict[tuple[int, int], list[Any]] = {}
    for event, _, offset, value in READINGS:  # in id order: a tie goes to the later row
        ts = T0 + timedelta(seconds=offset)
        key = (event, to_micros(ts) // 1_000_000)
        a = acc.setdefault(key, [0, 0.0, value, value, value, ts])
        a[0] += 1
        a[1] += value
        a[2], a[3] = min(a[2], value), max(a[3], value)
        if ts >= a[5]:
            a[4], a[5] = value, ts
    return sorted((*k, *v) for k, v in acc.items())


def counts_of(db: Database) -> list[tuple[int, int, int]]:
    return db.read_sync(lambda conn: [tuple(r) for r in conn.execute(sa.text(
        "SELECT event_id, experiment_key, n FROM datapoint_counts ORDER BY 1, 2"))])


def roles_of(db: Database) -> list[tuple[str, str]]:
    return db.read_sync(lambda conn: [(r[0], r[1]) for r in conn.execute(sa.text(
        "SELECT email, role FROM users ORDER BY id"))])


def seconds_of(db: Database) -> list[tuple[Any, ...]]:
    query = sa.text("SELECT event_id, second, n, total, lo, hi, last_value, last_ts "
                    "FROM datapoint_seconds ORDER BY 1, 2").columns(last_ts=UTCDateTime())
    return db.read_sync(lambda conn: [tuple(r) for r in conn.execute(query)])


@pytest.mark.parametrize("step", range(1, len(REVISIONS)), ids=lambda i: REVISIONS[i])
def test_each_revision_upgrades_a_database_made_by_the_previous_one(db: Database, step: int) -> None:
    previous, revision = REVISIONS[step - 1], REVISIONS[step]
    upgrade_to(db, previous)
    db.write_sync(seed)
    if revision == "0006_user_roles":  # what the users made must stay theirs
        db.write_sync(lambda conn: conn.execute(sa.text("UPDATE events SET user_id = 2")))
    before, after = upgrade_to(db, revision)
    assert (before.revision, after) == (previous, revision)
    if revision == "0002_datapoint_counts":
        assert counts_of(db) == expected_counts()
    if revision == "0003_datapoint_seconds":
        assert seconds_of(db) == expected_seconds()
    if revision == "0006_user_roles":
        assert roles_of(db) == [("boss@lab.local", "admin"), ("ada@lab.local", "operator")]
        assert db.read_sync(lambda conn: conn.execute(sa.text(
            "SELECT DISTINCT user_id FROM events")).scalars().all()) == [2]
    upgrade_to(db, "head")
    assert differences(db) == []


@pytest.mark.parametrize("era", migrate.LEGACY_REVISIONS[:-1], ids=lambda e: e[0])
def test_a_database_made_before_revisions_is_recognised_and_backfilled(
    db: Database, era: tuple[str, frozenset[str]]
) -> None:
    """As ``create_schema`` left it: the tables of its day, no ``alembic_version``."""
    upgrade_to(db, era[0])
    db.write_sync(lambda conn: conn.execute(sa.text("DROP TABLE alembic_version")))
    db.write_sync(seed)
    if era[0] >= "0002":  # its counters and rollups were kept by the webmacs of its day
        db.write_sync(lambda conn: conn.execute(sa.text(
            "INSERT INTO datapoint_counts (event_id, experiment_key, n) "
            "SELECT event_id, COALESCE(experiment_id, 0), count(*) FROM datapoints GROUP BY 1, 2")))
    if era[0] >= "0003":
        db.write_sync(lambda conn: rebuild_seconds(conn, None, None, None))
    assert db.read_sync(migrate.status).describe() == "unversioned"
    with pytest.raises(StorageError, match=r"unversioned .* run `webmacs db upgrade`"):
        trio_run_prepare(db)

    before, after = upgrade_to(db, "head")
    assert before.describe() == "unversioned" and after == HEAD
    assert counts_of(db) == expected_counts()  # backfilled once, or kept as they were
    assert seconds_of(db) == expected_seconds()
    assert differences(db) == []


def test_a_failed_upgrade_leaves_the_database_as_it_was(
    db: Database, fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One transaction: 0003's table and backfill are undone when 0004 fails (here on a table
    someone created by hand under its name)."""
    upgrade_to(db, "0001_base")
    db.write_sync(seed)
    upgrade_to(db, "0002_datapoint_counts")
    db.write_sync(lambda conn: conn.execute(sa.text("CREATE TABLE ingest_frames (x INTEGER)")))
    with pytest.raises((sa.exc.DBAPIError, DatabaseUnavailable)):  # SQLite: OperationalError
        upgrade_to(db, "head")
    assert db.read_sync(migrate.status) == migrate.Status("0002_datapoint_counts")
    assert not db.read_sync(lambda conn: sa.inspect(conn).has_table("datapoint_seconds"))
    assert counts_of(db) == expected_counts()
    assert main(["db", "upgrade", "--database-url", fresh_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("webmacs: upgrade failed, nothing changed: ") and err.count("\n") == 1
    assert "ingest_frames" in err and "already exists" in err


def trio_run_prepare(db: Database, backend: str = "") -> None:
    import trio

    trio.run(prepare, db, backend)


def test_tables_no_webmacs_made_are_refused(db: Database) -> None:
    upgrade_to(db, "0002_datapoint_counts")
    db.write_sync(lambda conn: conn.execute(sa.text("DROP TABLE alembic_version")))
    db.write_sync(lambda conn: conn.execute(sa.text("DROP TABLE log_entries")))
    with pytest.raises(migrate.SchemaError, match="missing: log_entries"):
        upgrade_to(db, "head")
    with pytest.raises(StorageError, match="missing: log_entries"):
        trio_run_prepare(db)


# ---------------------------------------------------------------- refusals at start-up


def test_start_up_creates_an_empty_database_at_head_and_refuses_any_other_revision(
    db: Database,
) -> None:
    trio_run_prepare(db)  # empty: created
    assert db.read_sync(migrate.status) == migrate.Status(HEAD)
    trio_run_prepare(db)  # at head: nothing to do
    previous = REVISIONS[-2]
    db.write_sync(lambda conn: conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"),
                                            {"v": previous}))
    with pytest.raises(StorageError) as behind:
        trio_run_prepare(db)
    assert str(behind.value) == (f"the database schema is at revision {previous}, this webmacs "
                                 f"needs {HEAD}: run `webmacs db upgrade`")
    db.write_sync(lambda conn: conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"),
                                            {"v": "9999_from_the_future"}))
    with pytest.raises(StorageError, match="at revision 9999_from_the_future, which this webmacs "
                                           "does not know"):
        trio_run_prepare(db)
    with pytest.raises(migrate.SchemaError, match="9999_from_the_future"):
        upgrade_to(db, "head")


def webmacs(*args: str, cwd: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "BCRYPT_ROUNDS": "4"}
    return subprocess.run([sys.executable, "-m", "webmacs", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_serve_refuses_an_outdated_database_and_db_upgrade_brings_it_to_head(
    db: Database, fresh_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = REVISIONS[-2]
    upgrade_to(db, previous)
    served = webmacs("serve", cwd=tmp_path, url=fresh_url)
    assert served.returncode == 1, served.stderr
    assert served.stderr.strip().splitlines()[-1] == (
        f"webmacs: the database schema is at revision {previous}, this webmacs needs {HEAD}: "
        "run `webmacs db upgrade`")
    assert "Traceback" not in served.stderr

    checked = webmacs("db", "check", cwd=tmp_path, url=fresh_url)
    assert checked.returncode == 1 and checked.stderr.count("\n") == 1
    assert "run `webmacs db upgrade`" in checked.stderr

    upgraded = webmacs("db", "upgrade", cwd=tmp_path, url=fresh_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.splitlines()[-1] == f"database schema upgraded from {previous} to {HEAD}"
    assert f"Running upgrade {previous} -> {HEAD}" in upgraded.stdout
    assert main(["db", "current", "--database-url", fresh_url]) == 0
    assert capsys.readouterr().out == f"{HEAD} (head)\n"


def test_db_commands_in_process(fresh_url: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--database-url", fresh_url]
    if fresh_url.startswith("sqlite"):  # looking does not create the file
        assert main(["db", "current", *url]) == 0 and capsys.readouterr().out == "empty\n"
        assert not Path(fresh_url.removeprefix("sqlite:///")).exists()
    assert main(["db", "check", *url]) == 1
    assert capsys.readouterr().err == (
        f"webmacs: the database is empty: `webmacs db upgrade` creates the schema at {HEAD}\n")
    assert main(["db", "upgrade", "--to", "no_such_revision", *url]) == 1
    assert capsys.readouterr().err == (
        "webmacs: cannot upgrade to 'no_such_revision': "
        "Can't locate revision identified by 'no_such_revision'\n")
    assert main(["db", "upgrade", "--to", "0003_datapoint_seconds", *url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "database schema upgraded from empty to 0003_datapoint_seconds")
    assert main(["db", "upgrade", "--to", "0001_base", *url]) == 1
    assert capsys.readouterr().err == (
        "webmacs: the database schema is at 0003_datapoint_seconds, past 0001_base: webmacs does "
        "not downgrade (restore the backup taken before upgrading)\n")
    assert main(["db", "upgrade", *url]) == 0
    assert main(["db", "upgrade", *url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"database schema already at {HEAD}"
    assert main(["db", "check", *url]) == 0
    assert capsys.readouterr().out == f"database schema at {HEAD} (head)\n"


def test_unreachable_database_is_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nowhere"
    for args in (["current"], ["check"], ["upgrade"]):
        assert main(["db", *args, "--database-url", url]) == 1
        err = capsys.readouterr().err
        assert err.startswith("webmacs: cannot reach the database: ") and err.count("\n") == 1


def test_two_processes_upgrading_at_once_take_turns(db: Database, fresh_url: str,
                                                    tmp_path: Path) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite: one process per file")
    upgrade_to(db, "0001_base")
    db.write_sync(seed)
    env = {**os.environ, "DATABASE_URL": fresh_url}
    procs = [subprocess.Popen([sys.executable, "-m", "webmacs", "db", "upgrade"], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    assert [rc for rc, _, _ in results] == [0, 0], results
    last_lines = sorted(out.splitlines()[-1] for _, out, _ in results)
    assert last_lines == [f"database schema already at {HEAD}",
                          f"database schema upgraded from 0001_base to {HEAD}"]
    assert counts_of(db) == expected_counts()  # backfilled once


async def test_services_start_on_an_upgraded_database(db: Database, fresh_url: str,
                                                      tmp_path: Path) -> None:
    upgrade_to(db, HEAD)
    async with open_services(make_settings(fresh_url, tmp_path)) as svc:
        assert await svc.db.read(migrate.status) == migrate.Status(HEAD)


# ---------------------------------------------------------------- TimescaleDB, as SQL


def test_timescale_revision_makes_datapoints_a_hypertable() -> None:
    """The extension cannot be installed here: the revisions' SQL for it is checked instead."""
    out = io.StringIO()
    config = migrate.alembic_config(backend="timescale", timescale=TimescaleOptions("6 hours"))
    config.output_buffer = out
    command.upgrade(config, "head", sql=True)
    sql = out.getvalue()
    assert "PRIMARY KEY (id, timestamp)" in sql
    assert ("SELECT create_hypertable('datapoints', 'timestamp', "
            "chunk_time_interval => INTERVAL '6 hours')") in sql
    assert "CREATE INDEX ix_datapoints_public_id ON datapoints (public_id)" in sql
    assert "ix_datapoints_ts" not in sql  # TimescaleDB indexes the time column itself
    assert "CREATE TABLE datapoint_seconds" in sql and f"'{HEAD}'" in sql
