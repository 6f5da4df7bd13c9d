"""An export actor (one per CSV download): runs the repository's streaming export in a worker
thread and hands bounded chunks to the HTTP response. If the export fails half-way, the response
must not look complete: the outcome tells the route to abort the transfer instead of ending it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import attrs
import trio

from webmacs.storage.protocols import ExperimentRepository

log = logging.getLogger(__name__)

EXPORT_CHUNKS_IN_FLIGHT = 4  # 256 KiB each: the export's whole footprint in this process


@attrs.define
class ExportOutcome:
    """Decided when the export actor ends. The repository closes the chunk channel itself, and
    a closing channel lets the reader run before the actor's own cleanup: so the response waits
    for the decision instead of reading ``failed`` the moment the channel ends."""

    failed: bool = False
    decided: trio.Event = attrs.field(factory=trio.Event)


class ExportAborted(Exception):
    """Raised inside the response body so the server aborts it (no final chunk is sent)."""


async def run_export(
    repo: ExperimentRepository, public_id: str, send: trio.MemorySendChannel[bytes],
    outcome: ExportOutcome,
) -> None:
    finished = False
    try:
        await repo.export_csv(public_id, send)
        finished = True
    except Exception:
        log.exception("export of experiment %s failed", public_id)
    finally:
        if not finished:  # failed, or cancelled by the server's shutdown: never look complete
            outcome.failed = True
            send.close()
        outcome.decided.set()


async def stream_body(
    header: bytes, chunks: trio.MemoryReceiveChannel[bytes], outcome: ExportOutcome
) -> AsyncIterator[bytes]:
    async with chunks:
        yield header
        async for chunk in chunks:
            yield chunk
    await outcome.decided.wait()
    if outcome.failed:
        raise ExportAborted("the export failed before its end")
