"""Origins and networks that may open a WebSocket without a token (contract §8): pure functions."""

from __future__ import annotations

import ipaddress

import pytest

from webmacs.ws_trust import address_in, normalise_origin, origin_allowed, own_origin, parse_networks

CORS = ("http://localhost:5173", "https://lab.example")


@pytest.mark.parametrize(("origin", "expected"), [
    ("http://127.0.0.1:8000", ("http", "127.0.0.1", 8000)),
    ("HTTP://Lab.Example", ("http", "lab.example", 80)),
    ("https://lab.example:443", ("https", "lab.example", 443)),
    ("http://[::1]:8000", ("http", "::1", 8000)),
    ("null", None),                      # data: URLs, sandboxed frames, file://
    ("file://", None),
    ("ws://127.0.0.1:8000", None),       # not a page origin
    ("http://127.0.0.1:99999", None),    # bad port
    ("http://127.0.0.1:8000/path", None),
    ("http://user@127.0.0.1", None),
    ("", None),
])
def test_normalise_origin(origin: str, expected: tuple[str, str, int] | None) -> None:
    assert normalise_origin(origin) == expected


def test_own_origin_maps_the_websocket_scheme_to_the_page_scheme() -> None:
    assert own_origin("ws", "127.0.0.1:8000") == ("http", "127.0.0.1", 8000)
    assert own_origin("wss", "lab.example") == ("https", "lab.example", 443)
    assert own_origin("ws", "") is None
    assert own_origin("ftp", "lab.example") is None


@pytest.mark.parametrize(("origin", "scheme", "host", "allowed"), [
    ("http://127.0.0.1:8000", "ws", "127.0.0.1:8000", True),         # same origin
    ("http://127.0.0.1:8000", "ws", "127.0.0.1:8001", False),        # other port
    ("http://localhost:8000", "ws", "127.0.0.1:8000", False),        # other host name
    ("https://127.0.0.1:8000", "ws", "127.0.0.1:8000", False),       # other scheme
    ("https://lab.example", "wss", "lab.example:443", True),         # default port spelled out
    ("http://lab.example", "ws", "lab.example", True),
    ("http://localhost:5173", "ws", "127.0.0.1:8000", True),         # listed in CORS_ORIGINS
    ("https://lab.example", "ws", "backend:8000", True),             # listed (behind a proxy)
    ("http://lab.example", "ws", "backend:8000", False),             # listed only as https
    ("https://evil.example", "ws", "127.0.0.1:8000", False),
    ("null", "ws", "127.0.0.1:8000", False),
    (None, "ws", "127.0.0.1:8000", False),                           # a cookie needs an Origin
])
def test_origin_allowed(origin: str | None, scheme: str, host: str, allowed: bool) -> None:
    assert origin_allowed(origin, scheme, host, CORS) is allowed


def test_a_cors_wildcard_does_not_open_the_cookie_to_every_page() -> None:
    assert not origin_allowed("https://evil.example", "ws", "127.0.0.1:8000", ("*",))
    assert origin_allowed("http://127.0.0.1:8000", "ws", "127.0.0.1:8000", ("*",))


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert parse_networks(" 10.0.0.0/8 , fd00::/8,192.168.1.7") == (
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"),
        ipaddress.ip_network("192.168.1.7/32"))
    # Host bits are forgiven: 192.168.1.10/24 means the /24 it lies in.
    assert parse_networks("192.168.1.10/24") == (ipaddress.ip_network("192.168.1.0/24"),)
    for bad in ("10.0.0.300/8", "10.0.0.0/33", "lab", "10.0.0.0/8;"):
        with pytest.raises(ValueError, match="is not a network"):
            parse_networks(f"127.0.0.0/8,{bad}")


@pytest.mark.parametrize(("address", "inside"), [
    ("127.0.0.1", True),
    ("127.3.4.5", True),
    ("::ffff:127.0.0.1", True),   # an IPv4 peer on a dual-stack socket
    ("10.1.2.3", False),
    ("::1", False),
    ("fd00::5", True),
    ("not-an-address", False),
    ("", False),
    (None, False),
])
def test_address_in(address: str | None, inside: bool) -> None:
    networks = parse_networks("127.0.0.0/8,fd00::/8")
    assert address_in(address, networks) is inside
    assert address_in(address, ()) is False
