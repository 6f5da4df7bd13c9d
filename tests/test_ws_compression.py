"""permessage-deflate that sends small messages uncompressed (RFC 7692 allows it per message)."""

from __future__ import annotations

from typing import Any

import pytest
from hypercorn.protocol import ws_stream
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from webmacs.http import ws_activity
from webmacs.http.ws_compression import COMPRESS_MIN_BYTES, SmallMessagesUncompressed


def _pair() -> tuple[WSConnection, WSConnection]:
    """A server connection that negotiated our extension with a client offering deflate."""
    client = WSConnection(ConnectionType.CLIENT)
    offer = client.send(Request(host="h", target="/", extensions=[PerMessageDeflate()]))
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(offer)
    (request,) = list(server.events())
    assert isinstance(request, Request)
    client.receive_data(server.send(AcceptConnection(extensions=[SmallMessagesUncompressed()])))
    (accepted,) = list(client.events())
    assert isinstance(accepted, AcceptConnection) and accepted.extensions
    return server, client


def _frames(client: WSConnection, raw: bytes) -> list[Any]:
    client.receive_data(raw)
    return [e for e in client.events() if isinstance(e, TextMessage)]


@pytest.mark.parametrize("size", [2, 200, COMPRESS_MIN_BYTES - 1, COMPRESS_MIN_BYTES, 50_000])
def test_small_messages_plain_large_ones_compressed_all_readable(size: int) -> None:
    server, client = _pair()
    text = ('{"value":21.5,"event_public_id":"e"}' * (size // 36 + 1))[:size]
    for _ in range(3):  # with context takeover across messages
        raw = server.send(TextMessage(text))
        rsv1 = bool(raw[0] & 0x40)
        assert rsv1 == (size >= COMPRESS_MIN_BYTES)
        if size >= COMPRESS_MIN_BYTES:
            assert len(raw) < size
        (msg,) = _frames(client, raw)
        assert msg.data == text


def test_interleaved_small_and_large_messages_keep_the_context_intact() -> None:
    server, client = _pair()
    big = "x" * 5000
    for text in ["small", big, "tiny", big + "y", "z"]:
        (msg,) = _frames(client, server.send(TextMessage(text)))
        assert msg.data == text


def test_hypercorn_negotiates_ours() -> None:
    ws_activity.install()
    assert ws_stream.PerMessageDeflate is SmallMessagesUncompressed  # type: ignore[attr-defined]
