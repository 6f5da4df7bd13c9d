"""``METRICS_BIND``: ``/metrics`` on its own address, without authentication.

For a Prometheus on a private network that should hold no webmacs token. It is a second
Hypercorn server in the process's nursery with a bare ASGI app (no Quart, no database): Hypercorn
already parses HTTP, keeps connections alive, and enforces our read timeouts and connection caps
(``webmacs.http.tcp_guard``), so nothing here handles a socket by hand.
"""

from __future__ import annotations

import logging

import orjson
import trio
from hypercorn.trio import serve as hypercorn_serve

from webmacs.http import tcp_guard
from webmacs.http.access_log import AsgiApp, Receive, Scope, Send
from webmacs.http.connection_limits import ConnectionLimiter, ReadTimeouts
from webmacs.metrics import CONTENT_TYPE, Metrics

TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64  # a few scrapers, never a crowd
JSON = b"application/json"


def worker_bind(bind: str, worker: int) -> str:
    """Worker ``worker`` (0-based) of ``--workers N`` listens on the port plus its number: each
    process has its own counts, so Prometheus scrapes each (port 0 stays 0: any free port)."""
    host, _, port = bind.rpartition(":")
    number = int(port)
    if number == 0:
        return bind
    if number + worker > 65535:
        raise ValueError(f"METRICS_BIND port {number} + worker {worker} is beyond 65535.")
    return f"{host}:{number + worker}"


def metrics_app(metrics: Metrics) -> AsgiApp:
    """``GET /metrics``; anything else gets 404 or 405 with a JSON ``detail``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        headers: list[tuple[bytes, bytes]] = []
        if scope["path"] not in ("/metrics", "/metrics/"):
            status, ctype, body = 404, JSON, orjson.dumps({"detail": "Not Found"})
        elif scope["method"] not in ("GET", "HEAD"):
            status, ctype, body = 405, JSON, orjson.dumps({"detail": "Method Not Allowed"})
            headers.append((b"allow", b"GET, HEAD"))
        else:
            status, ctype, body = 200, CONTENT_TYPE.encode(), metrics.render()
        headers += [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    return app


async def run_metrics_listener(
    metrics: Metrics, bind: str, stop: trio.Event,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``stop`` is set; ``task_status`` receives the bound URLs."""
    config = tcp_guard.GuardedConfig()
    config.bind = [bind]
    config.accesslog = None  # a scrape every 15 s is not worth a line
    config.errorlog = logging.getLogger("webmacs.http")
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = TIMEOUT_S
    config.read_timeouts = ReadTimeouts(keep_alive=TIMEOUT_S, header=TIMEOUT_S, body=TIMEOUT_S)
    config.connection_limiter = ConnectionLimiter(per_address=MAX_CONNECTIONS, total=MAX_CONNECTIONS)
    await hypercorn_serve(metrics_app(metrics), config, shutdown_trigger=stop.wait,  # type: ignore[arg-type]
                          task_status=task_status)
