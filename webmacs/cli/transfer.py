"""``webmacs export`` and ``webmacs import``: an experiment's datapoints as CSV, straight from and
into the database, in the format of ``GET /api/v1/experiments/{id}/export/csv``."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import click
import psycopg
import sqlalchemy as sa
import trio

from webmacs.cli.common import CliError, first_leaf, settings_from
from webmacs.cli.database import run_on_database
from webmacs.csv_export import header_line
from webmacs.csv_transfer import (
    NAME_MAX_LEN,
    BadLine,
    RecordChecker,
    RecordCounter,
    Row,
    Summary,
    experiment_name_from,
)
from webmacs.storage.backends import Repositories
from webmacs.storage.database import Database
from webmacs.storage.sql.transfer import (
    ImportPlan,
    ImportRefused,
    counted_rows,
    experiment_public_id,
    import_experiment,
)

BATCH_ROWS = 5000
PROGRESS_EVERY_ROWS = 1000
DATABASE_URL = click.option("--database-url", help="sqlite:///file or postgresql://… (env DATABASE_URL).")
QUIET = click.option("--quiet", is_flag=True, help="No progress bar.")


class _NoBar:
    def update(self, n_steps: int) -> None:
        pass


@contextlib.contextmanager
def progress(length: int, label: str, quiet: bool) -> Iterator[Any]:
    """A click progress bar on stderr when someone is watching it, else nothing."""
    if quiet or not sys.stderr.isatty():
        yield _NoBar()
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar


@contextlib.contextmanager
def output(out: str) -> Iterator[IO[bytes]]:
    """Standard output for ``-``; else a file written beside its name and renamed when complete,
    so a failed export never leaves a truncated file under the name asked for."""
    if out == "-":
        try:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        except* BrokenPipeError:
            # The reader went away (``| head``): no flush at exit either, which would fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise CliError("standard output was closed before the end of the export") from None
        return
    partial = f"{out}.partial"
    try:
        with open(partial, "wb") as sink:
            yield sink
        os.replace(partial, out)
    except* OSError as group:  # written inside a nursery: arrives in a group
        exc = first_leaf(group)
        raise CliError(f"cannot write {out}: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


@click.command("export")
@click.argument("experiment")
@click.option("--out", required=True, help="The CSV file to write; - for standard output.")
@QUIET
@DATABASE_URL
def export(experiment: str, out: str, quiet: bool, database_url: str | None) -> None:
    """Write EXPERIMENT's datapoints (EXPERIMENT: its name or public id) as CSV, byte for byte
    what the REST API's CSV export sends."""
    settings = settings_from({"DATABASE_URL": database_url})

    async def work(db: Database, repos: Repositories) -> int:
        public_id = await db.read(lambda conn: experiment_public_id(conn, experiment))
        if public_id is None:
            raise CliError(f"no experiment named or with id {experiment!r}")
        total = await db.read(lambda conn: counted_rows(conn, public_id))
        counter = RecordCounter()
        send, recv = trio.open_memory_channel[bytes](1)
        with output(out) as sink, progress(total, "exporting", quiet) as bar:
            sink.write(header_line())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(repos.experiments.export_csv, public_id, send)
                async for chunk in recv:
                    sink.write(chunk)
                    bar.update(counter.feed(chunk))
        return counter.records

    rows = run_on_database(settings, work)
    click.echo(f"exported {rows} rows to {'standard output' if out == '-' else out}", err=True)


def _records(path: Path, on_bytes: Callable[[int], None]) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of each CSV record; ``on_bytes`` hears of the bytes read."""
    try:
        raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    with raw, io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, strict=True)
        done = 0
        try:
            for fields in reader:
                yield reader.line_num, fields
                if reader.line_num % PROGRESS_EVERY_ROWS == 0:
                    now = raw.tell()
                    on_bytes(now - done)
                    done = now
        except UnicodeDecodeError:
            raise BadLine(reader.line_num + 1, "not UTF-8 text") from None
        except csv.Error as exc:
            raise BadLine(reader.line_num, f"not CSV: {exc}") from None
        on_bytes(raw.tell() - done)


def check_file(path: Path, quiet: bool) -> Summary:
    """The first pass: every line checked, nothing stored."""
    checker = RecordChecker()
    last = 0
    with progress(path.stat().st_size, "checking", quiet) as bar:
        for last, fields in _records(path, bar.update):
            checker.feed(last, fields)
    return checker.finish(last)


def batches(path: Path, on_bytes: Callable[[int], None]) -> Iterator[list[Row]]:
    """The second pass: the rows again, checked again, in batches of :data:`BATCH_ROWS`."""
    checker = RecordChecker()
    batch: list[Row] = []
    for line, fields in _records(path, on_bytes):
        row = checker.feed(line, fields)
        if row is not None:
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                yield batch
                batch = []
    if batch:
        yield batch


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--experiment", help="Name of the new experiment (default: from the file name, "
                                   "experiment_<name>_<id>.csv as exported).")
@click.option("--create-events", is_flag=True,
              help="Create the events the database does not have (default: refuse the file).")
@QUIET
@DATABASE_URL
def import_(file: Path, experiment: str | None, create_events: bool, quiet: bool,
            database_url: str | None) -> None:
    """Store FILE, CSV in the export format, as a new experiment: all rows or none."""
    settings = settings_from({"DATABASE_URL": database_url})
    name = experiment if experiment is not None else experiment_name_from(file.name)
    if not 1 <= len(name) <= NAME_MAX_LEN or "\x00" in name:
        raise CliError(f"experiment name must be 1 to {NAME_MAX_LEN} characters without NUL")
    try:
        summary = check_file(file, quiet)
        if summary.rows == 0 or summary.first is None or summary.last is None:
            raise CliError(f"{file}: no rows to import")
        plan = ImportPlan(name, summary.events, summary.first, summary.last, create_events)

        async def work(db: Database, _repos: Repositories) -> int:
            def store(conn: sa.Connection) -> int:
                with progress(file.stat().st_size, "importing", quiet) as bar:
                    return import_experiment(conn, plan, batches(file, bar.update))

            return await db.write(store)

        rows = run_on_database(settings, work)
    except BadLine as exc:
        raise CliError(f"{file} {exc}") from None
    except ImportRefused as exc:
        where = f"{file} line {exc.line}" if exc.line is not None else str(file)
        raise CliError(f"{where}: {exc.message}") from None
    except (sa.exc.IntegrityError, psycopg.IntegrityError):
        # What the checks saw free was taken by a concurrent writer before the commit.
        raise CliError(f"{file}: the experiment name or a datapoint id was stored meanwhile by "
                       "someone else; nothing imported") from None
    click.echo(f"imported {rows} rows into experiment {name}")
