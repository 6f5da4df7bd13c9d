"""Route registration: every REST path answers with and without a trailing slash (§2.1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint
from werkzeug.routing import BaseConverter

RESERVED_SEGMENTS = ("latest", "batch", "bulk", "series")


class PublicIdConverter(BaseConverter):
    """A datapoint id: any segment except the reserved words (§4.4), never taken for an id."""

    regex = r"(?!(?:" + "|".join(RESERVED_SEGMENTS) + r")(?:/|$))[^/]+"


def route(bp: Blueprint, rule: str, methods: list[str]) -> Callable[[Any], Any]:
    """Register ``rule`` and ``rule + '/'`` for the same view, both answered directly."""

    def decorator(view: Any) -> Any:
        endpoint = view.__name__
        bp.add_url_rule(rule, endpoint, view, methods=methods, strict_slashes=True)
        bp.add_url_rule(rule + "/", endpoint + "_slash", view, methods=methods, strict_slashes=True)
        return view

    return decorator
