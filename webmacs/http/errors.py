"""Every failure becomes a JSON body with ``detail``: client mistakes are 4xx, never 500."""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from webmacs.actors.messages import ActorFailed, ShuttingDown
from webmacs.http.responses import json_response
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.protocols import Conflict, InvalidRange
from webmacs.validation import FieldError, ValidationFailed

log = logging.getLogger(__name__)

RANGE_ERROR = FieldError(("body",), "min_value must be less than or equal to max_value", "value_error")


class ApiError(Exception):
    """An error answer with a string ``detail`` (401, 403, 404, 409, 413, 415 …)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def error_response(exc: ApiError) -> Any:
    return json_response({"detail": exc.detail}, exc.status, exc.headers)


def not_found(entity: str, public_id: str) -> ApiError:
    return ApiError(404, f"{entity} '{public_id}' not found.")


def validation_response(errors: list[FieldError]) -> Any:
    return json_response({"detail": [e.to_json() for e in errors]}, 422)


def install_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def _api_error(exc: ApiError) -> Any:
        return error_response(exc)

    @app.errorhandler(ValidationFailed)
    async def _validation(exc: ValidationFailed) -> Any:
        return validation_response(exc.errors)

    @app.errorhandler(InvalidRange)
    async def _range(_exc: InvalidRange) -> Any:
        return validation_response([RANGE_ERROR])

    @app.errorhandler(Conflict)
    async def _conflict(exc: Conflict) -> Any:
        return json_response({"detail": exc.detail}, 409)

    @app.errorhandler(ShuttingDown)
    async def _shutting_down(_exc: ShuttingDown) -> Any:
        return json_response({"detail": "Server shutting down."}, 503)

    @app.errorhandler(ActorFailed)
    async def _actor_failed(exc: ActorFailed) -> Any:
        return json_response({"detail": exc.detail}, 503, {"Retry-After": "1"})

    @app.errorhandler(DatabaseUnavailable)
    async def _unavailable(_exc: DatabaseUnavailable) -> Any:
        return json_response({"detail": "Database unavailable."}, 503)

    @app.errorhandler(RequestEntityTooLarge)
    async def _too_large(_exc: RequestEntityTooLarge) -> Any:
        return json_response({"detail": "Request body too large."}, 413)

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException) -> Any:
        status = exc.code or 500
        headers: dict[str, str] = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers["Allow"] = ", ".join(sorted(set(exc.valid_methods) | {"OPTIONS"}))
        detail = {404: "Not Found", 405: "Method Not Allowed"}.get(status, exc.name)
        return json_response({"detail": detail}, status, headers)

    @app.errorhandler(Exception)
    async def _bug(exc: Exception) -> Any:
        log.exception("unhandled error", exc_info=exc)
        return json_response({"detail": "Internal server error."}, 500)
