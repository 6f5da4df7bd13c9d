"""Who may open a WebSocket without presenting a token: origins and networks (sans-IO).

A session cookie and a source address are *ambient* credentials: a browser attaches the cookie to
an upgrade that any page opens, and a page inside a trusted network shares its address. So a
cookie only counts from the server's own origin or a listed one, and token-less telemetry only
from listed networks. These checks are plain functions over strings, tested without sockets.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from webmacs.client_address import Network, in_networks, parse_ip, parse_networks

__all__ = ["Network", "address_in", "origin_allowed", "parse_networks"]


# A WebSocket upgrade arrives as ws/wss; the page that opened it has an http/https origin.
_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_DEFAULT_PORT = {"http": 80, "https": 443}


def normalise_origin(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) origin, or None for anything else (``null``, junk)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORT or not host:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        return None  # an origin is scheme://host[:port], nothing more
    return scheme, host, port if port is not None else _DEFAULT_PORT[scheme]


def own_origin(request_scheme: str, host_header: str) -> tuple[str, str, int] | None:
    """The origin of the server as the request addressed it (its scheme and ``Host``)."""
    scheme = _HTTP_SCHEME.get(request_scheme.lower())
    if scheme is None or not host_header.strip():
        return None
    return normalise_origin(f"{scheme}://{host_header.strip()}")


def origin_allowed(
    origin: str | None, request_scheme: str, host_header: str, allowed: Iterable[str]
) -> bool:
    """True when ``origin`` is the server's own or one of ``allowed`` (``CORS_ORIGINS``).

    A missing origin is refused: browsers always send one on a WebSocket upgrade, so a cookie
    without it did not come from a page we can vouch for. ``*`` in ``allowed`` is ignored here:
    it opens REST to any page (harmless, REST needs a Bearer token), not the cookie.
    """
    if origin is None:
        return False
    seen = normalise_origin(origin)
    if seen is None:
        return False
    if seen == own_origin(request_scheme, host_header):
        return True
    return any(seen == normalise_origin(entry) for entry in allowed if entry != "*")


def address_in(address: str | None, networks: Iterable[Network]) -> bool:
    """True when the peer ``address`` (an IP address as the socket reports it) lies in one of
    ``networks``; see :func:`~webmacs.client_address.parse_ip` for IPv4 on dual-stack sockets."""
    return in_networks(parse_ip(address) if address else None, networks)
