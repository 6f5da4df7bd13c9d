"""``webmacs serve``: run the server, or supervise ``--workers N`` of it."""

from __future__ import annotations

import os
import sys

import attrs
import click
import trio

from webmacs.cli.common import CliError, first_leaf, settings_from
from webmacs.logs import configure_logging
from webmacs.settings import Settings
from webmacs.storage.backends import StorageError
from webmacs.storage.database import DatabaseUnavailable


@click.command()
@click.option("--host", help="Bind address (env HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Bind port (env PORT, default 8000).")
@click.option("--database-url", help="sqlite:///file or postgresql://… (env DATABASE_URL).")
@click.option("--no-access-log", is_flag=True, help="Do not log each request.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Lowest level logged.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Processes sharing the port (env WORKERS, default 1); more than one needs "
                   "PostgreSQL and WEBMACS_BUS_URL.")
# Set by the parent of --workers N on each worker: bind the port with SO_REUSEPORT.
@click.option("--reuse-port", is_flag=True, hidden=True)
def serve(host: str | None, port: int | None, database_url: str | None, no_access_log: bool,
          log_level: str, workers: int | None, reuse_port: bool) -> int:
    """Run the server (SQLite file webmacs.db by default, an admin seeded at first start)."""
    overrides = {"HOST": host, "PORT": None if port is None else str(port),
                 "DATABASE_URL": database_url,
                 "WORKERS": None if workers is None else str(workers)}
    settings = settings_from(overrides)
    # A worker of --workers N names itself in every line (the parent sets WEBMACS_WORKER).
    worker = os.environ.get("WEBMACS_WORKER", "") if reuse_port else ""
    configure_logging(settings, log_level, worker)
    if worker and settings.metrics_bind is not None:
        settings = _worker_metrics_bind(settings, int(worker))
    if settings.workers > 1 and not reuse_port:
        given = {k: v for k, v in overrides.items() if v is not None}
        return _run_workers(settings, given, log_level, not no_access_log)
    from webmacs.server import serve as run_server

    try:
        trio.run(lambda: run_server(settings, access_log=not no_access_log, reuse_port=reuse_port))
    # Start-up failures arrive wrapped in the nurseries' exception groups: one line each.
    except* StorageError as group:
        raise CliError(str(first_leaf(group))) from None
    except* DatabaseUnavailable as group:
        first = str(first_leaf(group)).splitlines()[0]
        raise CliError(f"cannot reach the database: {first}") from None
    except* OSError as group:
        raise CliError(f"cannot start: {first_leaf(group)}") from None
    return 0


def _worker_metrics_bind(settings: Settings, worker: int) -> Settings:
    from webmacs.http.metrics_listener import worker_bind

    try:
        return attrs.evolve(settings, metrics_bind=worker_bind(str(settings.metrics_bind), worker))
    except ValueError as exc:
        raise CliError(f"configuration error: {exc}", exit_code=2) from None


def _run_workers(settings: Settings, overrides: dict[str, str], log_level: str,
                 access_log: bool) -> int:
    """``--workers N``: refuse in one line what cannot work, else supervise N worker processes."""
    from webmacs.worker_shell import supervise, worker_command
    from webmacs.workers import WorkerPolicy, refusal

    why = refusal(settings.workers, settings.storage_backend, settings.bus_url, settings.port)
    if why is not None:
        raise CliError(why, exit_code=2)
    print(f"webmacs supervising {settings.workers} workers on {settings.host}:{settings.port}",
          flush=True)
    # The workers read the same environment (and .env, and the development secret the
    # parent's load_settings has just persisted), as single processes.
    env = {**os.environ, **overrides, "WORKERS": "1"}
    sys.stdout.flush()
    return supervise(worker_command(log_level, access_log), env, WorkerPolicy(settings.workers))
