"""``/health``, ``/openapi.json`` and ``/docs``: public, unauthenticated."""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, Response

from webmacs import __version__
from webmacs.http.context import services
from webmacs.http.openapi import docs_page, openapi_document
from webmacs.http.responses import json_response
from webmacs.http.routing import route

bp = Blueprint("health", __name__)


@route(bp, "/health", ["GET"])
async def health() -> Any:
    svc = services()
    ok = await svc.db.ping(timeout=2.0)
    body = {"status": "healthy" if ok else "degraded", "version": __version__,
            "database": "ok" if ok else "error",
            "uptime_seconds": round(time.time() - svc.started_at, 3)}
    return json_response(body, 200 if ok else 503)


@route(bp, "/openapi.json", ["GET"])
async def openapi() -> Any:
    return json_response(openapi_document(__version__))


@route(bp, "/docs", ["GET"])
async def docs() -> Any:
    return Response(docs_page(), content_type="text/html; charset=utf-8")
