"""The OpenAPI 3 description of the REST API and a self-contained HTML page that renders it."""

from __future__ import annotations

import html
from typing import Any

import orjson


def openapi_document(version: str) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "webmacs", "version": version}, "paths": {}}


def docs_page() -> str:
    doc = orjson.dumps(openapi_document("")).decode()
    return f"<!doctype html><html><head><title>webmacs API</title></head><body>" \
           f"<pre>{html.escape(doc)}</pre></body></html>"
