"""``/health``, ``/openapi.json`` and ``/docs``: public, unauthenticated."""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, Response, request

from webmacs import __version__
from webmacs.http.context import services, tree
from webmacs.http.guards import current_user
from webmacs.http.openapi import docs_page, openapi_document
from webmacs.http.responses import json_response
from webmacs.http.routing import route

bp = Blueprint("health", __name__)
HEALTH_MAX_AGE_S = 1.0  # /health reports a database check at most this old


@route(bp, "/health", ["GET"])
async def health() -> Any:
    svc = services()
    ok = await svc.db.recent_ping(max_age=HEALTH_MAX_AGE_S, timeout=2.0)
    actors_ok = tree().healthy
    body = {"status": "healthy" if ok and actors_ok else "degraded", "version": __version__,
            "database": "ok" if ok else "error", "actors": "ok" if actors_ok else "degraded",
            "uptime_seconds": round(time.time() - svc.started_at, 3)}
    return json_response(body, 200 if ok and actors_ok else 503)


@route(bp, "/api/v1/metrics", ["GET"])
async def metrics() -> Any:
    """Loop lag, recorder and hub counters (any authenticated user). ``?reset=1`` (admin) returns
    the figures, then clears the loop-lag window, so a benchmark can read the lag of its own run."""
    user = await current_user()
    actors = tree()
    body = {"version": __version__, "uptime_seconds": round(time.time() - services().started_at, 3),
            **actors.metrics()}
    if request.args.get("reset") in ("1", "true") and user.admin:
        actors.loop_lag.reset()  # after reading: the answer covers the window just ended
    return json_response(body)


@route(bp, "/openapi.json", ["GET"])
async def openapi() -> Any:
    return json_response(openapi_document(__version__))


@route(bp, "/docs", ["GET"])
async def docs() -> Any:
    return Response(docs_page(), content_type="text/html; charset=utf-8")
