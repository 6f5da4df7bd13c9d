"""The application factory: a Quart-Trio app wired to an already-open :class:`Services`.

The app owns no resources: the process (or a test) opens the services, runs the actor tree, and
hands both to the app, which stays a thin layer of routes.
"""

from __future__ import annotations

from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from webmacs.actors.tree import ActorTree
from webmacs.http import auth, datapoints, events, experiments, health, logging, tokens, users, websockets
from webmacs.http.access_log import MarkResponseEnd
from webmacs.http.context import EXTENSION_KEY, TREE_KEY
from webmacs.http.errors import install_error_handlers
from webmacs.http.metrics import bp as metrics_bp
from webmacs.http.metrics import install_route_labels
from webmacs.http.request_id import RequestIds
from webmacs.http.routing import PublicIdConverter
from webmacs.http.web import bp as web_bp
from webmacs.http.ws_connection import DrainingWebsocketConnection
from webmacs.services import Services

CORS_MAX_AGE = "600"
# What a browser script may read of a cross-origin response: the CSV download's file name, the
# login throttle's wait, and the request id to quote in a problem report.
EXPOSED_HEADERS = "Content-Disposition, Retry-After, X-Request-ID"


def create_app(svc: Services, tree: ActorTree) -> QuartTrio:
    app = QuartTrio("webmacs")
    app.asgi_websocket_class = DrainingWebsocketConnection
    app.config["MAX_CONTENT_LENGTH"] = svc.settings.max_body_bytes
    app.config["BODY_TIMEOUT"] = 120
    app.config["RESPONSE_TIMEOUT"] = 120
    app.extensions[EXTENSION_KEY] = svc
    app.extensions[TREE_KEY] = tree
    app.url_map.converters["datapoint_id"] = PublicIdConverter
    app.url_map.strict_slashes = True
    install_route_labels(app)  # first of the before-request hooks
    for bp in (health.bp, auth.bp, users.bp, events.bp, experiments.bp, datapoints.bp,
               logging.bp, logging.alias_bp, tokens.bp, websockets.bp):
        app.register_blueprint(bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(web_bp)  # the live page at / (webmacs/web/static)
    install_error_handlers(app)
    install_cors(app, frozenset(svc.settings.cors_origins))
    app.asgi_app = MarkResponseEnd(app.asgi_app)  # type: ignore[assignment,arg-type]
    app.asgi_app = RequestIds(app.asgi_app)  # type: ignore[assignment,arg-type]
    return app


def install_cors(app: QuartTrio, origins: frozenset[str]) -> None:
    """Credentials allowed, all methods and headers, for the configured origins only.
    Preflights are answered before routing and never need a token."""

    def allowed(origin: str | None) -> bool:
        return origin is not None and (origin in origins or "*" in origins)

    @app.before_request
    async def _preflight() -> Any:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            response = Response("", status=204)
            if allowed(origin):
                assert origin is not None
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Allow-Credentials"] = "true"
                response.headers["Access-Control-Allow-Methods"] = (
                    "GET, POST, PUT, PATCH, DELETE, OPTIONS"
                )
                response.headers["Access-Control-Allow-Headers"] = request.headers.get(
                    "Access-Control-Request-Headers", "*"
                )
                response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
                response.headers["Vary"] = "Origin"
            return response
        return None

    @app.after_request
    async def _cors_headers(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if allowed(origin) and "Access-Control-Allow-Origin" not in response.headers:
            assert origin is not None
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers.add("Vary", "Origin")
        return response
