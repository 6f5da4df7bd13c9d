"""The live page: ``/`` (``index.html``) and its files under ``/ui/``.

Public like ``/docs``: the files hold no data, everything they show comes from the API with the
user's token. Only the file types the page uses are served, with explicit content types (the
system's MIME table varies between hosts), and nothing outside the static directory (Quart's
``safe_join``: ``..`` and absolute paths are 404).

Caching: ``index.html`` and the page's own files are ``no-cache`` (revalidated by ETag, so an
upgrade of webmacs is picked up at once); vendored files carry their version in the path and
are cached for a year.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint
from quart.helpers import send_from_directory
from werkzeug.exceptions import NotFound

from webmacs.web import STATIC_DIR

bp = Blueprint("web", __name__)

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
# The page loads only its own files and talks only to its own origin (REST and WebSockets).
PAGE_POLICY = ("default-src 'self'; connect-src 'self'; img-src 'self' data:; "
               "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


async def _send(name: str, cache_control: str) -> Any:
    dot = name.rfind(".")
    content_type = CONTENT_TYPES.get(name[dot:]) if dot > name.rfind("/") else None
    if content_type is None:
        raise NotFound()
    response = await send_from_directory(STATIC_DIR, name, mimetype=content_type)
    response.headers["Content-Type"] = content_type
    response.headers["Cache-Control"] = cache_control
    response.headers.pop("Expires", None)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if content_type.startswith("text/html"):
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/", methods=["GET"])
async def index() -> Any:
    return await _send("index.html", REVALIDATE)


@bp.route("/ui/<path:filename>", methods=["GET"], merge_slashes=False)  # no redirect, a 404
async def static_file(filename: str) -> Any:
    return await _send(filename, IMMUTABLE if filename.startswith("vendor/") else REVALIDATE)
