"""``webmacs serve``: the process's supervisor nursery, with Hypercorn's trio worker inside it.

SIGINT and SIGTERM trigger a graceful shutdown (Hypercorn stops accepting, finishes in-flight
requests within its grace period) and the process exits 0.
"""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Mapping
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.logging import Logger as HyperLogger
from hypercorn.trio import serve as hypercorn_serve

from webmacs.actors.supervisor import Supervisor
from webmacs.http.app import create_app
from webmacs.services import open_services
from webmacs.settings import Settings, startup_warnings

log = logging.getLogger("webmacs")

_TOKEN_IN_QUERY = re.compile(r"(?i)((?:^|[?&])token=)[^&\s]*")
GRACEFUL_TIMEOUT_S = 10.0


def redact(text: str) -> str:
    """Tokens in URLs end up in logs: never write the ``token`` query value (§5.1)."""
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class RedactingLogger(HyperLogger):
    def atoms(self, request: Any, response: Any, request_time: float) -> Mapping[str, str]:
        atoms = dict(super().atoms(request, response, request_time))
        for key in ("R", "Uq", "q"):
            if key in atoms and isinstance(atoms[key], str):
                atoms[key] = redact(atoms[key])
        return atoms


def hypercorn_config(settings: Settings, access_log: bool) -> HyperConfig:
    config = HyperConfig()
    config.bind = [f"[{settings.host}]:{settings.port}" if ":" in settings.host
                   else f"{settings.host}:{settings.port}"]
    config.logger_class = RedactingLogger
    # Hand Hypercorn our loggers so its lines share the process's format and handlers.
    config.accesslog = logging.getLogger("webmacs.access") if access_log else None
    config.access_log_format = '%(h)s "%(R)s" %(s)s %(b)s %(L)ss'
    config.errorlog = logging.getLogger("webmacs.http")
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    config.websocket_max_message_size = 2 * 1024 * 1024
    return config


async def _wait_for_signal(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            shutdown.set()
            return


async def serve(
    settings: Settings,
    *,
    access_log: bool = True,
    install_signal_handlers: bool = True,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the services, run the actor tree and the HTTP server until asked to stop."""
    shutdown = shutdown or trio.Event()
    for note in startup_warnings(settings):
        log.warning(note)
    async with open_services(settings) as svc, trio.open_nursery() as nursery:
        supervisor = Supervisor(nursery, "root")
        if install_signal_handlers:
            supervisor.start_temporary("signals", _wait_for_signal, shutdown)
        app = create_app(svc)
        binds: list[str] = await nursery.start(
            _run_http, app, hypercorn_config(settings, access_log), shutdown
        )
        print(f"webmacs {settings.storage_backend} storage: {_safe_url(settings.database_url)}",
              flush=True)
        for bind in binds:
            print(f"webmacs listening on {bind}  (API {bind}/api/v1, docs {bind}/docs)", flush=True)
        print(f"log in as {settings.initial_admin_email} (seeded admin; password from "
              f"INITIAL_ADMIN_PASSWORD, default admin123, if this database was new)", flush=True)
        task_status.started(binds)
        await shutdown.wait()
    log.info("webmacs stopped")


async def _run_http(
    app: Any, config: HyperConfig, shutdown: trio.Event,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await hypercorn_serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)
    shutdown.set()


def _safe_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
