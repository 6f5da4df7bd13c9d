"""Commands pushed to controllers (contract §8) over real WebSockets, on SQLite and PostgreSQL:
hello, command, command_ack, redelivery on reconnect and after a restart, no echo of a
controller's own writes, error frames for bad control frames, v2 clients unaffected."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio_websocket
from test_websockets import (
    DP,
    TELEMETRY,
    RawWebSocket,
    Server,
    frame,
    readings,
    recv_json,
    running_server,
)

from webmacs.commands import BAD_COMMAND_ID, BAD_EVENTS
from webmacs.validation import is_public_id


class Controller:
    """A controller on /ws/controller/telemetry whose reader sorts what the server sends."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.commands: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []  # acks and errors, in order
        self.changed = trio.Event()
        self.seq = 0

    async def run(self) -> None:
        try:
            while True:
                msg = json.loads(await self.ws.get_message())
                (self.commands if msg.get("type") == "command" else self.replies).append(msg)
                self.changed.set()
                self.changed = trio.Event()
        except trio_websocket.ConnectionClosed:
            pass

    async def wait(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not done():
                await self.changed.wait()

    async def sync(self) -> dict[str, Any]:
        """A ``seq`` frame and its ack: every frame sent before it has been handled."""
        self.seq += 1
        seq = self.seq
        await self.ws.send_message(frame([], seq))
        await self.wait(lambda: any(r.get("seq") == seq and r["type"] == "ack" for r in self.replies))
        return next(r for r in self.replies if r.get("seq") == seq)

    async def hello(self, *events: str) -> None:
        await self.ws.send_message(json.dumps({"type": "hello", "events": list(events)}))
        await self.sync()

    async def ack(self, command_id: str) -> None:
        await self.ws.send_message(json.dumps({"type": "command_ack", "id": command_id}))
        await self.sync()

    async def wait_commands(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        await self.wait(lambda: len(self.commands) >= n, timeout)
        return self.commands


@asynccontextmanager
async def controller(server: Server, controller_id: str | None = None) -> AsyncIterator[Controller]:
    query = {} if controller_id is None else {"controller_id": controller_id}
    async with server.telemetry(**query) as ws, trio.open_nursery() as nursery:
        ctl = Controller(ws)
        nursery.start_soon(ctl.run)
        yield ctl
        nursery.cancel_scope.cancel()


async def event(server: Server, kind: str) -> str:
    resp = await server.http.post("/api/v1/events", headers=server.headers, json={
        "name": f"{kind}-{uuid.uuid4().hex[:8]}", "min_value": 0, "max_value": 100, "unit": "%",
        "type": kind})
    assert resp.status_code == 201, resp.text
    public_id: str = resp.json()["public_id"]
    return public_id


async def post(server: Server, event_id: str, value: Any) -> None:
    resp = await server.http.post(DP, headers=server.headers,
                                  json={"event_public_id": event_id, "value": value})
    assert resp.status_code == 201, resp.text


async def stored_for(server: Server, target: str) -> int:
    return await server.running.services.repos.commands.count(target)


async def test_rest_writes_to_declared_actuators_are_pushed_acked_and_redelivered_until_acked(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        act, rng, sensor = [await event(server, k) for k in ("actuator", "range", "sensor")]
        other = await event(server, "actuator")
        async with controller(server, "rig-1") as ctl:
            await ctl.hello(act, rng, sensor)
            await post(server, act, "1.0")  # the v2 rule loop's string form
            resp = await server.http.post(f"{DP}/batch", headers=server.headers, json={"datapoints": [
                {"event_public_id": rng, "value": 42.5}, {"event_public_id": sensor, "value": 3},
                {"event_public_id": other, "value": 1}]})
            assert resp.status_code == 201, resp.text
            first, second = await ctl.wait_commands(2)
            rows = {d["event_public_id"]: d for d in await server.datapoints()}
            for cmd, ev, value in ((first, act, 1.0), (second, rng, 42.5)):
                assert set(cmd) == {"type", "id", "event_public_id", "value", "timestamp"}
                assert is_public_id(cmd["id"])
                assert (cmd["event_public_id"], cmd["value"]) == (ev, value)
                assert cmd["timestamp"] == rows[ev]["timestamp"]  # the datapoint's, +00:00
            await ctl.ack(first["id"])
            assert await stored_for(server, "c:rig-1") == 1
            # Neither the sensor nor the undeclared actuator was commanded.
            assert len(ctl.commands) == 2

        # Reconnect: the unacked command comes again, with its id; the acked one does not.
        async with controller(server, "rig-1") as ctl:
            await ctl.hello(act, rng)
            assert await ctl.wait_commands(1) == [second]
            await ctl.ack(second["id"])
            await ctl.ack(second["id"])  # twice, or an id it does not know: harmless
            await ctl.ack(str(uuid.uuid4()))
            assert [r["type"] for r in ctl.replies] == ["ack"] * 4
        assert await stored_for(server, "c:rig-1") == 0

        # Polling controllers keep working.
        latest = (await server.http.get(f"{DP}/latest", headers=server.headers)).json()
        assert {(d["event_public_id"], d["value"]) for d in latest} >= {(act, 1.0), (rng, 42.5)}


async def test_a_controllers_own_write_is_not_echoed_but_commands_the_others(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        act = await event(server, "actuator")
        async with controller(server, "rig-1") as one, controller(server, "rig-2") as two, \
                controller(server) as anonymous, controller(server, "rig-3") as v2:
            for ctl in (one, two, anonymous):
                await ctl.hello(act)
            await v2.sync()  # says no hello: never commanded
            await one.ws.send_message(frame(readings(act, [0.0]), 7))
            await one.wait(lambda: any(r.get("seq") == 7 for r in one.replies))
            (cmd,) = await two.wait_commands(1)
            assert (cmd["event_public_id"], cmd["value"]) == (act, 0.0)
            (anon,) = await anonymous.wait_commands(1)
            assert anon["id"] != cmd["id"]  # one command per target
            assert await stored_for(server, "c:rig-1") == 0
            assert await stored_for(server, "c:rig-2") == 1
            assert await stored_for(server, "c:rig-3") == 0
            # The same controller's other connection is the same controller: no echo there.
            async with controller(server, "rig-2") as two_again:
                await two_again.hello(act)
                assert await two_again.wait_commands(1) == [cmd]  # pending: redelivered
                await two_again.ws.send_message(frame(readings(act, [1.0]), 1))
                await two_again.sync()
                await one.wait_commands(1)
            assert one.commands[0]["value"] == 1.0
            await one.sync()
            await two.sync()
            assert len(two.commands) == 1 and len(v2.commands) == 0
            assert [r for r in v2.replies if r["type"] != "ack"] == []


async def test_bad_control_frames_get_error_frames_and_the_connection_stays_open(
    database_url: str, tmp_path: Path
) -> None:
    async with running_server(database_url, tmp_path) as server:
        act = await event(server, "actuator")
        async with server.telemetry() as ws:
            bad = [
                ({"type": "hello"}, BAD_EVENTS),
                ({"type": "hello", "events": act}, BAD_EVENTS),
                ({"type": "hello", "events": [act, 3]}, BAD_EVENTS),
                ({"type": "hello", "events": ["not-an-id"]}, BAD_EVENTS),
                ({"type": "command_ack"}, BAD_COMMAND_ID),
                ({"type": "command_ack", "id": 5}, BAD_COMMAND_ID),
                ({"type": "command_ack", "id": "x"}, BAD_COMMAND_ID),
            ]
            for body, _ in bad:  # no seq ever sent: control frames still earn replies
                await ws.send_message(json.dumps(body))
            for _, detail in bad:
                assert await recv_json(ws) == {"type": "error", "seq": None, "detail": detail}
            await ws.send_message(json.dumps({"type": "hello", "events": [act]}))
            await ws.send_message(frame(readings(act, [5.0]), 1))
            assert await recv_json(ws) == {"type": "ack", "seq": 1, "accepted": 1, "rejected": []}


async def test_pending_commands_survive_a_restart(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path) as server:
        act = await event(server, "range")
        async with controller(server, "rig-9") as ctl:
            await ctl.hello(act)
            await post(server, act, 12.5)
            (cmd,) = await ctl.wait_commands(1)
    async with running_server(database_url, tmp_path) as server:
        async with controller(server, "rig-9") as ctl:
            await ctl.hello(act)
            assert await ctl.wait_commands(1) == [cmd]
            await ctl.ack(cmd["id"])
        assert await stored_for(server, "c:rig-9") == 0


async def test_a_controller_that_never_reads_delays_no_one(database_url: str, tmp_path: Path) -> None:
    async with running_server(database_url, tmp_path) as server, trio.open_nursery() as nursery:
        act = await event(server, "range")
        raw = await RawWebSocket.connect(
            server.host, server.port, f"{TELEMETRY}?token={server.token}&controller_id=stuck",
            rcvbuf=4096)
        await raw.send_text(json.dumps({"type": "hello", "events": [act]}))

        async def keep_alive() -> None:  # it talks (no heartbeat close), it just never reads
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while True:
                    await raw.send_text('{"datapoints":[]}')
                    await trio.sleep(0.2)

        nursery.start_soon(keep_alive)
        async with controller(server, "healthy") as ctl:
            await ctl.hello(act)
            with trio.fail_after(10):
                while server.running.tree.commander.book.declared_events < 1 or len(
                        server.running.tree.commander.book.sessions) < 2:
                    await trio.sleep(0.01)
            values = [float(i) for i in range(3000)]
            for start in range(0, len(values), 500):
                resp = await server.http.post(f"{DP}/batch", headers=server.headers, json={
                    "datapoints": [{"event_public_id": act, "value": v}
                                   for v in values[start:start + 500]]})
                assert resp.status_code == 201, resp.text
            commands = await ctl.wait_commands(len(values), timeout=30)
            assert [c["value"] for c in commands] == values  # all of them, in submission order
        assert await stored_for(server, "c:stuck") == len(values)  # kept for its next hello
        nursery.cancel_scope.cancel()
        await raw.aclose()
