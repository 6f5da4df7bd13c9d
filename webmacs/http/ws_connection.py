"""Quart-Trio's WebSocket connection, but a client's last frames are handled, not dropped.

Quart-Trio cancels the whole handler the moment the client's disconnect arrives, with frames
still queued in its receive channel (and one being submitted): a controller that sends its last
frames and closes at once, without waiting for acks, lost them (the reference keeps them). Here
a disconnect ends the receive channel instead: the handler reads what was queued, gets
:class:`~webmacs.actors.ports.ConnectionClosed` after it (see ``QuartPort.receive``), and ends
by itself. A handler that does not end within :data:`DRAIN_GRACE_S` is cancelled as before.
"""

from __future__ import annotations

from typing import Any

import trio
from quart.signals import websocket_received
from quart_trio.asgi import TrioASGIWebsocketConnection

DRAIN_GRACE_S = 10.0


class DrainingWebsocketConnection(TrioASGIWebsocketConnection):
    async def handle_messages(self, nursery: trio.Nursery, receive: Any) -> None:  # type: ignore[override]
        while True:
            event = await receive()
            if event["type"] == "websocket.receive":
                message = event.get("bytes") or event["text"]
                await websocket_received.send_async(
                    message, _sync_wrapper=self.app.ensure_async  # type: ignore[arg-type]
                )
                await self.send_channel.send(message)
            elif event["type"] == "websocket.disconnect":
                break
        await self.send_channel.aclose()  # the handler reads what is queued, then the end
        await trio.sleep(DRAIN_GRACE_S)  # cancelled early when the handler ends by itself
        nursery.cancel_scope.cancel()
