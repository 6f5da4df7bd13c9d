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

import attrs
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.logging import Logger as HyperLogger
from hypercorn.trio import serve as hypercorn_serve

from webmacs.actors.tree import ActorTree, open_actor_tree
from webmacs.http import tcp_guard, ws_activity
from webmacs.http.access_log import claim_line
from webmacs.http.app import create_app
from webmacs.http.connection_limits import ConnectionLimiter, ReadTimeouts
from webmacs.http.metrics_listener import run_metrics_listener
from webmacs.http.request_id import REQUEST_ID_KEY
from webmacs.metrics import HttpMetrics
from webmacs.services import Services, open_services
from webmacs.settings import Settings, startup_warnings

log = logging.getLogger("webmacs")

_TOKEN_IN_QUERY = re.compile(r"(?i)((?:^|[?&])token=)[^&\s]*")
TCP_USER_TIMEOUT_MS = 10_000  # the stream's stuck timeout (§5.3)
ACCESS_LOG_FORMAT = '%(h)s "%(R)s" %(s)s %(b)s %(L)ss'


def redact(text: str) -> str:
    """Tokens in URLs end up in logs: never write the ``token`` query value (§5.1)."""
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class ServerConfig(tcp_guard.GuardedConfig):
    http_metrics: HttpMetrics | None = None  # counted where the access line is written


class RedactingLogger(HyperLogger):
    """Hypercorn's logger with the token redacted and one line per request (``access_log``),
    carrying the request's id; it also counts the request for ``/metrics`` (with or without
    an access log), reusing the duration Hypercorn measured."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.http_metrics: HttpMetrics | None = getattr(config, "http_metrics", None)

    async def access(self, request: Any, response: Any, request_time: float) -> None:
        if not claim_line(request, response):
            return
        if self.http_metrics is not None:
            self.http_metrics.observe(request, None if response is None else response["status"],
                                      request_time)
        if self.access_logger is not None:
            self.access_logger.info(self.access_log_format, self.atoms(request, response, request_time),
                                    extra={"request_id": request.get(REQUEST_ID_KEY)})

    def atoms(self, request: Any, response: Any, request_time: float) -> Mapping[str, str]:
        """The fields of :data:`ACCESS_LOG_FORMAT`, and the parts of its request line for JSON
        logs (``m``, ``Uq``, ``H``). Hypercorn's own atoms copy every request and response header
        and the whole process environment into a dict per request (~7 % of a small request's
        time), for a line that uses five of them."""
        client = request.get("client")
        if client is None:
            host = "-"
        elif len(client) == 2:
            host = f"{client[0]}:{client[1]}"
        else:
            host = str(client[0])
        method = request["method"] if request["type"] == "http" else "GET"
        query = request["query_string"].decode("latin1")
        target = redact(request["path"] + ("?" + query if query else "")) if query else request["path"]
        protocol = request.get("http_version", "ws")
        status, length = "-", "-"
        if response is not None:
            status = str(response["status"])
            for name, value in response.get("headers", ()):
                if name.lower() == b"content-length":
                    length = value.decode("latin1")
        return {"h": host, "R": f"{method} {target} {protocol}", "s": status, "b": length,
                "L": f"{request_time:.6f}", "m": method, "Uq": target, "H": protocol}


def hypercorn_config(settings: Settings, access_log: bool, reuse_port: bool = False,
                     http_metrics: HttpMetrics | None = None) -> HyperConfig:
    config = ServerConfig()
    config.http_metrics = http_metrics
    config.reuse_port = reuse_port  # one of `webmacs serve --workers N` (webmacs/workers.py)
    # A peer that acknowledges nothing for this long (e.g. a browser that stopped reading and
    # filled its window) is aborted by the kernel: that releases a send Hypercorn cannot cancel.
    config.tcp_user_timeout_ms = TCP_USER_TIMEOUT_MS
    config.bind = [f"[{settings.host}]:{settings.port}" if ":" in settings.host
                   else f"{settings.host}:{settings.port}"]
    config.logger_class = RedactingLogger
    # Hand Hypercorn our loggers so its lines share the process's format and handlers.
    config.accesslog = logging.getLogger("webmacs.access") if access_log else None
    config.access_log_format = ACCESS_LOG_FORMAT
    config.errorlog = logging.getLogger("webmacs.http")
    # After the tree has closed every WebSocket (1001) and flushed, in-flight HTTP requests get
    # this long; idle connections are closed at once (tcp_guard).
    config.graceful_timeout = settings.shutdown_grace_seconds
    config.websocket_max_message_size = 2 * 1024 * 1024  # larger frames: close 1009 (§5.2)
    config.websocket_ping_interval = settings.ws_heartbeat_interval
    # No connection is held for ever: idle, slow-head and stalled-body limits, and caps
    # (webmacs/http/tcp_guard.py; Hypercorn's own keep-alive timer does not run under Quart-Trio).
    config.keep_alive_timeout = settings.http_keep_alive_timeout
    config.read_timeouts = ReadTimeouts(keep_alive=settings.http_keep_alive_timeout,
                                        header=settings.http_header_timeout,
                                        body=settings.http_body_timeout)
    config.connection_limiter = ConnectionLimiter(per_address=settings.max_connections_per_address,
                                                  total=settings.max_connections)
    return config


@attrs.frozen
class Running:
    """A started server, for embedding and for tests that need to reach inside."""

    binds: list[str]
    tree: ActorTree
    services: Services
    metrics_binds: list[str] = attrs.field(factory=list)  # METRICS_BIND's listener


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
    reuse_port: bool = False,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the services, run the actor tree and the HTTP server until ``shutdown`` is set
    (or a signal arrives). ``task_status`` receives the bound URLs and the tree once serving.
    ``reuse_port``: share the port with the other workers of ``--workers N``."""
    if shutdown is None:
        shutdown = trio.Event()
    for note in startup_warnings(settings):
        log.warning(note)
    ws_activity.install()
    tcp_guard.install()
    http_stop, http_done = trio.Event(), trio.Event()
    async with open_services(settings) as svc, trio.open_nursery() as nursery:
        if install_signal_handlers:
            nursery.start_soon(_wait_for_signal, shutdown)
        async with open_actor_tree(svc) as tree:
            app = create_app(svc, tree)
            binds: list[str] = await nursery.start(
                _run_http, app, hypercorn_config(settings, access_log, reuse_port,
                                                 tree.instruments.http), http_stop, shutdown,
                http_done,
            )
            metrics_binds: list[str] = []
            if settings.metrics_enabled and settings.metrics_bind is not None:
                metrics_binds = await nursery.start(run_metrics_listener, tree.instruments,
                                                    settings.metrics_bind, http_stop)
            say = log.info if settings.log_format == "json" else _print  # JSON: every line is JSON
            say(f"webmacs {settings.storage_backend} storage: {_safe_url(settings.database_url)}")
            for bind in binds:
                say(f"webmacs listening on {bind}  (API {bind}/api/v1, docs {bind}/docs)")
            for bind in metrics_binds:
                say(f"webmacs metrics on {bind}/metrics")
            say(f"log in as {settings.initial_admin_email} (seeded admin; password from "
                f"INITIAL_ADMIN_PASSWORD, default admin123, if this database was new)")
            task_status.started(Running(binds, tree, svc, metrics_binds))
            await shutdown.wait()
            # Leaving the tree closes sockets with 1001 and flushes every recorder; then the
            # HTTP server finishes in-flight requests and stops.
        http_stop.set()
        await http_done.wait()
        nursery.cancel_scope.cancel()  # the signal watcher
    log.info("webmacs stopped")


async def _run_http(
    app: Any, config: HyperConfig, stop: trio.Event, shutdown: trio.Event, done: trio.Event,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)
    finally:
        done.set()
        shutdown.set()  # if the HTTP server ended by itself, the process ends too


def _print(line: str) -> None:
    print(line, flush=True)


def _safe_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
