"""The ``webmacs`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import trio

from webmacs import __version__
from webmacs.settings import Settings, SettingsError, load_settings
from webmacs.storage.backends import StorageError
from webmacs.storage.database import DatabaseUnavailable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="webmacs", description=__doc__)
    parser.add_argument("--version", action="version", version=f"webmacs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (SQLite file webmacs.db by default)")
    serve.add_argument("--host", help="bind address (env HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="bind port (env PORT, default 8000)")
    serve.add_argument("--database-url", help="sqlite:///file or postgresql://… (env DATABASE_URL)")
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    serve.add_argument("--workers", type=int,
                       help="processes sharing the port (env WORKERS, default 1); more than one "
                            "needs PostgreSQL and WEBMACS_BUS_URL")
    # Set by the parent of --workers N on each worker: bind the port with SO_REUSEPORT.
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    return parser


def first_leaf(error: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A worker of --workers N names itself in every line (the parent sets WEBMACS_WORKER).
    worker = os.environ.get("WEBMACS_WORKER", "") if args.reuse_port else ""
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s " + (f"[worker {worker}] " if worker else "")
        + "%(name)s: %(message)s",
    )
    overrides = {}
    if args.host:
        overrides["HOST"] = args.host
    if args.port is not None:
        overrides["PORT"] = str(args.port)
    if args.database_url:
        overrides["DATABASE_URL"] = args.database_url
    if args.workers is not None:
        overrides["WORKERS"] = str(args.workers)
    try:
        settings = load_settings(overrides=overrides)
    except SettingsError as exc:
        print(f"webmacs: configuration error: {exc}", file=sys.stderr)
        return 2
    if settings.workers > 1 and not args.reuse_port:
        return _run_workers(settings, overrides, args)
    from webmacs.server import serve

    code = 0
    try:
        trio.run(lambda: serve(settings, access_log=not args.no_access_log,
                               reuse_port=args.reuse_port))
    # Start-up failures arrive wrapped in the nurseries' exception groups: one line each.
    except* StorageError as group:
        print(f"webmacs: {first_leaf(group)}", file=sys.stderr)
        code = 1
    except* DatabaseUnavailable as group:
        first = str(first_leaf(group)).splitlines()[0]
        print(f"webmacs: cannot reach the database: {first}", file=sys.stderr)
        code = 1
    except* OSError as group:
        print(f"webmacs: cannot start: {first_leaf(group)}", file=sys.stderr)
        code = 1
    return code


def _run_workers(settings: Settings, overrides: dict[str, str], args: argparse.Namespace) -> int:
    """``--workers N``: refuse in one line what cannot work, else supervise N worker processes."""
    from webmacs.worker_shell import supervise, worker_command
    from webmacs.workers import WorkerPolicy, refusal

    why = refusal(settings.workers, settings.storage_backend, settings.bus_url, settings.port)
    if why is not None:
        print(f"webmacs: {why}", file=sys.stderr)
        return 2
    print(f"webmacs supervising {settings.workers} workers on {settings.host}:{settings.port}",
          flush=True)
    # The workers read the same environment (and .env, and the development secret the
    # parent's load_settings has just persisted), as single processes.
    env = {**os.environ, **overrides, "WORKERS": "1"}
    return supervise(worker_command(args.log_level, not args.no_access_log), env,
                     WorkerPolicy(settings.workers))


if __name__ == "__main__":
    raise SystemExit(main())
