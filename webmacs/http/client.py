"""The requesting client's address, read from the ASGI scope (never from a header the client
could set, unless its peer is a trusted proxy)."""

from __future__ import annotations

from collections.abc import Sequence

from quart import request

from webmacs.client_address import Network, client_address


def requester_address(trusted_proxies: Sequence[Network]) -> str:
    peer = request.scope.get("client")
    return client_address(peer[0] if peer else None, request.headers.getlist("X-Forwarded-For"),
                          trusted_proxies)
