"""``GET /metrics`` on the main port (admin token), and the route label of every request.

With ``METRICS_BIND`` set, the metrics are served by their own listener instead
(``webmacs.server``) and this route answers 404, so they are exposed in one place only.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Quart, Response, request, websocket
from werkzeug.exceptions import NotFound

from webmacs.http.context import services, tree
from webmacs.http.guards import current_admin
from webmacs.http.routing import route
from webmacs.metrics import CONTENT_TYPE, ROUTE_KEY, route_label

bp = Blueprint("metrics", __name__)


@route(bp, "/metrics", ["GET"])
async def prometheus_metrics() -> Any:
    """Prometheus text format; admins only (a scraper uses an admin token)."""
    settings = services().settings
    if not settings.metrics_enabled or settings.metrics_bind is not None:
        raise NotFound()
    await current_admin()
    return Response(tree().instruments.render(), content_type=CONTENT_TYPE)


def install_route_labels(app: Quart) -> None:
    """Note each request's URL rule in its scope for ``webmacs_http_requests_total``. Registered
    before any other hook, so a CORS preflight answered by a hook is labelled too."""

    @app.before_request
    async def _label_request() -> None:
        _label(request)

    @app.before_websocket
    async def _label_websocket() -> None:
        _label(websocket)


def _label(incoming: Any) -> None:
    """``incoming``: Quart's ``request`` or ``websocket``, routed (no rule: unmatched)."""
    rule = incoming.url_rule
    if rule is not None:
        scope: dict[str, Any] = incoming.scope
        scope[ROUTE_KEY] = route_label(rule.rule)
