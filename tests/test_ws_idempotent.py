"""Exactly-once telemetry over real WebSockets, on SQLite and PostgreSQL (contract §8): frames
sent with ``?controller_id=`` and ``seq`` and resent after a reconnect or a server restart get
their first ack again and are stored, and streamed, once."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio
import trio_websocket
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from test_websockets import (
    STREAM,
    TELEMETRY,
    UNKNOWN,
    Server,
    StreamReader,
    assert_silent,
    frame,
    readings,
    recv_json,
    running_server,
)

from webmacs.frame_ids import BAD_CONTROLLER_ID

BAD_VALUE = {"value": "abc"}


def frames_to_send(event: str) -> dict[int, str]:
    """Five frames; frame 3 has an item bad at parsing and one of an unknown event."""
    out = {seq: frame(readings(event, [seq * 10.0, seq * 10.0 + 1]), seq) for seq in (1, 2, 4, 5)}
    out[3] = frame([{"value": 30.0, "event_public_id": event}, {**BAD_VALUE, "event_public_id": event},
                    {"value": 31.0, "event_public_id": UNKNOWN}], 3)
    return dict(sorted(out.items()))


async def send_all(server: Server, sent: dict[int, str], controller_id: str | None) -> list[Any]:
    query = {} if controller_id is None else {"controller_id": controller_id}
    async with server.telemetry(**query) as ws:
        for raw in sent.values():
            await ws.send_message(raw)
        return [await recv_json(ws) for _ in sent]


async def count_rows(server: Server, event: str) -> int:
    return len(await server.datapoints(event_public_id=event))


async def test_resends_after_reconnect_and_restart_get_the_first_acks_and_store_nothing(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        event = await server.event()
        sent = frames_to_send(event)
        async with trio.open_nursery() as nursery, server.ws(STREAM, server.token) as sub:
            assert (await recv_json(sub))["type"] == "connected"
            stream = StreamReader(sub)
            nursery.start_soon(stream.run)

            first = await send_all(server, sent, "ctl-A")
            assert [a["seq"] for a in first] == [1, 2, 3, 4, 5]
            assert [a["accepted"] for a in first] == [2, 2, 1, 2, 2]
            assert [(r["index"], r["detail"]) for r in first[2]["rejected"]] == [
                (1, "Input should be a finite number or a string holding one."), (2, "Event not found.")]
            assert await count_rows(server, event) == 9

            # Reconnect and resend everything (a controller that never saw its acks would).
            assert await send_all(server, sent, "ctl-A") == first
            assert await count_rows(server, event) == 9

            # The same seq twice on one connection, pipelined: one commit, the same ack twice.
            async with server.telemetry(controller_id="ctl-A") as ws:
                six = frame(readings(event, [60.0]), 6)
                await ws.send_message(six)
                await ws.send_message(six)
                acks = [await recv_json(ws), await recv_json(ws)]
            assert acks == [{"type": "ack", "seq": 6, "accepted": 1, "rejected": []}] * 2
            assert await count_rows(server, event) == 10

            rows = await stream.wait_for(10)
            await trio.sleep(0.5)
            assert sorted(r["value"] for r in stream.rows) == sorted(
                [10.0, 11.0, 20.0, 21.0, 30.0, 40.0, 41.0, 50.0, 51.0, 60.0])
            assert len(rows) == 10  # each reading streamed once, resends never
            nursery.cancel_scope.cancel()

        # Another controller's seq 1 is another frame; without a controller_id, seq only orders
        # acks and a resend is stored again (at-least-once, unchanged).
        await send_all(server, {1: sent[1]}, "ctl-B")
        await send_all(server, {1: sent[1]}, None)
        await send_all(server, {1: sent[1]}, None)
        assert await count_rows(server, event) == 16

    async with running_server(database_url, tmp_path) as server:  # a new process, same database
        assert await send_all(server, sent, "ctl-A") == first
        assert await count_rows(server, event) == 16


async def test_a_resend_while_the_original_is_in_flight_is_stored_once(
    database_url: str, tmp_path: Path
) -> None:
    # A 1 s flush window holds the original uncommitted while the controller reconnects.
    async with running_server(database_url, tmp_path, INGEST_FLUSH_WINDOW_MS="1000") as server:
        event = await server.event()
        raw = frame(readings(event, [1.0, 2.0, 3.0]), 9)
        async with server.telemetry(controller_id="ctl-C") as old:
            await old.send_message(raw)
        async with server.telemetry(controller_id="ctl-C") as new:
            await new.send_message(raw)
            assert await recv_json(new) == {"type": "ack", "seq": 9, "accepted": 3, "rejected": []}
            await assert_silent(new, 0.2)
        assert await count_rows(server, event) == 3


async def test_after_kill_9_resending_unacked_frames_creates_no_duplicates(
    database_url: str, tmp_path: Path
) -> None:
    """The defect as found: a server killed with acks in flight, a controller that resends every
    frame it has no ack for, and no row stored twice."""
    frames = 30

    async def connect(server: LiveServer) -> tuple[str, str]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            login = await http.post("/api/v1/auth/login",
                                    json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            token = login.json()["access_token"]
            if not event:
                made = await http.post("/api/v1/events", headers={"Authorization": f"Bearer {token}"},
                                       json={"name": "T", "min_value": 0, "max_value": 100,
                                             "unit": "C", "type": "sensor"})
                event.append(made.json()["public_id"])
        url = f"ws://127.0.0.1:{server.port}{TELEMETRY}?token={token}&controller_id=rig-1"
        return url, token

    event: list[str] = []
    server = LiveServer(database_url, tmp_path)
    try:
        url, _ = await connect(server)
        sent = {seq: frame(readings(event[0], [seq, seq + 0.5]), seq) for seq in range(1, frames + 1)}
        acked: dict[int, Any] = {}
        async with trio_websocket.open_websocket_url(url) as ws:
            for raw in sent.values():
                await ws.send_message(raw)
            while len(acked) < 10:
                reply = await recv_json(ws)
                acked[reply["seq"]] = reply
            server.stop(signal.SIGKILL)
    finally:
        server.stop()

    server = LiveServer(database_url, tmp_path)
    try:
        url, token = await connect(server)
        async with trio_websocket.open_websocket_url(url) as ws:
            for seq, raw in sent.items():
                if seq not in acked:
                    await ws.send_message(raw)
            # A careless resend of an acked frame is harmless too.
            await ws.send_message(sent[1])
            replies = [await recv_json(ws) for _ in range(frames - len(acked) + 1)]
        assert [r["seq"] for r in replies] == [s for s in sent if s not in acked] + [1]
        assert all(r["accepted"] == 2 for r in replies)
        assert replies[-1] == acked[1]
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            page = await http.get("/api/v1/datapoints", params={"page_size": 1000},
                                  headers={"Authorization": f"Bearer {token}"})
        values = sorted(d["value"] for d in page.json()["data"])
        assert values == sorted(v for seq in sent for v in (seq, seq + 0.5))
    finally:
        server.stop()


def telemetry_url(server: Server, query: str) -> str:
    return f"{server.ws_base}{TELEMETRY}?token={server.token}&{query}"


REFUSED: list[tuple[str, Any]] = [
    ("controller_id=", ""),
    ("controller_id=" + "x" * 65, "x" * 65),
    ("controller_id=" + quote("lab one"), "lab one"),
    ("controller_id=" + quote("ctl/1"), "ctl/1"),
    ("controller_id=" + quote("réacteur"), "réacteur"),
    ("controller_id=a&controller_id=b", ["a", "b"]),
]


async def test_an_invalid_controller_id_is_refused_before_the_upgrade(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        for query, shown in REFUSED:
            with pytest.raises(trio_websocket.ConnectionRejected) as info:
                async with trio_websocket.open_websocket_url(telemetry_url(server, query)):
                    pass
            detail = json.loads(info.value.body or b"null")["detail"]
            assert info.value.status_code == 422, query
            problem = "controller_id must be given once" if isinstance(shown, list) else BAD_CONTROLLER_ID
            assert detail == [{"loc": ["query", "controller_id"], "msg": problem,
                               "type": "string_pattern_mismatch", "input": shown}]
            # A bad token is still told first.
            with pytest.raises(trio_websocket.ConnectionRejected) as info:
                async with trio_websocket.open_websocket_url(
                        f"{server.ws_base}{TELEMETRY}?token=nope&{query}"):
                    pass
            assert info.value.status_code == 401
        assert server.running.tree.connections == 0
        async with trio_websocket.open_websocket_url(
                telemetry_url(server, "controller_id=Lab-3.reactor_01")) as ws:
            await ws.send_message(frame([], 1))
            assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": 0, "rejected": []}
