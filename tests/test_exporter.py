"""The export actor's outcome (docs: a CSV download cut off by shutdown is aborted, never ended)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from webmacs.actors.exporter import ExportAborted, ExportOutcome, run_export, stream_body


class StuckExport:
    """A repository export that sends one chunk and then waits (a long export in progress)."""

    async def export_csv(self, public_id: str, send: trio.MemorySendChannel[bytes]) -> None:
        async with send:
            await send.send(b"row 1\r\n")
            await trio.sleep_forever()


class QuickExport:
    async def export_csv(self, public_id: str, send: trio.MemorySendChannel[bytes]) -> None:
        async with send:
            await send.send(b"row 1\r\n")


async def read_all(body: Any, got: list[bytes]) -> None:
    async for chunk in body:
        got.append(chunk)


async def test_an_export_cancelled_by_shutdown_aborts_its_response() -> None:
    send, recv = trio.open_memory_channel[bytes](4)
    outcome = ExportOutcome()
    tree = trio.CancelScope()  # the actor tree's nursery, cancelled at shutdown

    async def export_actor() -> None:
        with tree:
            await run_export(StuckExport(), "x", send, outcome)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(export_actor)
        body = stream_body(b"header\r\n", recv, outcome)
        assert await body.__anext__() == b"header\r\n"
        assert await body.__anext__() == b"row 1\r\n"
        tree.cancel()
        with pytest.raises(ExportAborted):  # the server aborts the response: no final chunk
            await body.__anext__()
    assert outcome.failed


async def test_a_finished_export_ends_its_response() -> None:
    send, recv = trio.open_memory_channel[bytes](4)
    outcome = ExportOutcome()
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_export, QuickExport(), "x", send, outcome)
        await read_all(stream_body(b"header\r\n", recv, outcome), got)
    assert got == [b"header\r\n", b"row 1\r\n"]
    assert not outcome.failed
