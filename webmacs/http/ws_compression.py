"""permessage-deflate that leaves small messages uncompressed.

Browsers and the v2 controller offer permessage-deflate, and Hypercorn accepts it for every
WebSocket. Compressing a one-reading stream frame (~200 bytes) or an ack (~60 bytes) costs more
CPU than anything else on the delivery path (~12 % of the server's samples under ``fanout``) and
saves a few dozen bytes on a LAN. RFC 7692 lets a sender choose per message: a message sent with
RSV1 clear is uncompressed, and every client that negotiated the extension must accept it. So
messages under :data:`COMPRESS_MIN_BYTES` go out as they are; larger ones (coalesced stream
frames, exports of many readings) are still compressed. Inbound messages are decompressed as the
client chose.
"""

from __future__ import annotations

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameDecoder, FrameProtocol, Opcode, RsvBits

COMPRESS_MIN_BYTES = 1024


class SmallMessagesUncompressed(PerMessageDeflate):
    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        # Only a whole message in one frame: a fragmented one is compressed throughout.
        if fin and opcode in (Opcode.TEXT, Opcode.BINARY) and len(data) < COMPRESS_MIN_BYTES:
            return rsv, data
        return super().frame_outbound(proto, opcode, rsv, data, fin)
