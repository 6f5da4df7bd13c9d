"""The simulator's I/O shell: log in, make sure the events exist, then run N controllers.

Each controller samples its signals at ``rate`` readings/s per event, coalesces the readings of
``batch_window`` seconds into one frame, and streams them over ``/ws/controller/telemetry`` with
a ``controller_id`` and ``seq`` (exactly-once, docs/protocol.md). The bookkeeping lives in
:class:`~webmacs.simulator.unacked.FrameBook`; this module only moves frames between it and a
socket, reconnects with backoff, and acks ``command`` frames for its actuator events.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Sequence
from typing import Any

import attrs
import httpx
import trio
import trio_websocket

from webmacs.cli.common import first_leaf
from webmacs.simulator import protocol
from webmacs.simulator.backoff import Backoff
from webmacs.simulator.plan import EventSpec, Sampler, controller_events, controller_id
from webmacs.simulator.signals import Signal
from webmacs.simulator.unacked import FrameBook, Tally

log = logging.getLogger("webmacs.simulator")

MAX_FRAME_READINGS = 1000  # well under MAX_BATCH; a long lag becomes several frames
WS_MAX_MESSAGE = 16 * 1024 * 1024
COMMANDED_TYPES = ("actuator", "range")


CONNECTION_FAILURES = (trio_websocket.HandshakeError, trio_websocket.ConnectionClosed, OSError,
                       trio.BrokenResourceError)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class SimulatorError(Exception):
    """A refusal that ends the run (bad credentials, unreachable server): one line for the CLI."""


class Unreachable(SimulatorError):
    """No answer over HTTP: fatal at the start, retried when renewing a token mid-run."""


def default_id_prefix() -> str:
    return f"sim-{socket.gethostname()}"


@attrs.frozen
class SimConfig:
    url: str = "http://127.0.0.1:8000"
    email: str = "admin@webmacs.io"
    password: str = "admin123"
    token: str | None = None  # an API token (wm_…) instead of email and password
    controllers: int = 3
    rate: float = 10.0  # readings per second per event
    duration: float | None = None  # None: until stopped
    batch_window: float = 0.1  # seconds of readings per frame
    events_per_controller: int = 3
    name_prefix: str = "sim"  # events sim1_temperature, …
    id_prefix: str = attrs.field(factory=default_id_prefix)  # controller ids <id_prefix>-1, …
    window: int = 8  # frames on the wire unacked
    drain_timeout: float = 5.0  # after stop: how long to wait for the last acks


@attrs.frozen
class Result:
    controller_id: str
    tally: Tally


# ---------------------------------------------------------------- REST: login and events


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else f"HTTP {resp.status_code}"


class Auth:
    """The token, renewed on demand (a 401 at a handshake: logged out, password changed). An API
    token given up front is used as it is; refused, it cannot be renewed: the run stops."""

    def __init__(self, http: httpx.AsyncClient, email: str, password: str,
                 api_token: str | None = None) -> None:
        self._http, self._email, self._password = http, email, password
        self._api_token = api_token
        self.token = ""
        self._lock = trio.Lock()

    async def login(self, stale: str | None = None) -> str:
        async with self._lock:
            if stale is None or self.token == stale:  # one renewal for all controllers
                self.token = await self._login()
            return self.token

    async def _login(self) -> str:
        if self._api_token is not None:
            if self.token:
                raise SimulatorError("the API token was refused (revoked or expired)")
            return self._api_token
        try:
            resp = await self._http.post(
                "/api/v1/auth/login", json={"email": self._email, "password": self._password})
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach {self._http.base_url}: {exc or type(exc).__name__}") from None
        if resp.status_code != 200:
            raise SimulatorError(f"login failed: {_detail(resp)}")
        token: str = resp.json()["access_token"]
        return token


async def _events_by_name(http: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        resp = await http.get("/api/v1/events", params={"page": page, "page_size": 1000}, headers=headers)
        if resp.status_code != 200:
            raise SimulatorError(f"cannot list events: {_detail(resp)}")
        body = resp.json()
        found.update({e["name"]: e for e in body["data"]})
        if page * 1000 >= body["total"] or not body["data"]:
            return found
        page += 1


async def ensure_events(http: httpx.AsyncClient, token: str, specs: Sequence[EventSpec]
                        ) -> list[tuple[str, EventSpec]]:
    """Each spec's event id, creating the missing ones. An existing event (same name) is reused
    as it is: its signal is fitted to that event's own min/max."""
    headers = {"Authorization": f"Bearer {token}"}
    existing = await _events_by_name(http, headers)
    out = []
    for spec in specs:
        event = existing.get(spec.name)
        if event is None:
            resp = await http.post("/api/v1/events", json=spec.create_body(), headers=headers)
            if resp.status_code == 201:
                out.append((resp.json()["public_id"], spec))
                log.info("created event %s (%s, %s)", spec.name, spec.type, spec.signal.shape)
                continue
            if resp.status_code == 409:  # another simulator created it just now
                event = (await _events_by_name(http, headers)).get(spec.name)
            if event is None:
                raise SimulatorError(f"cannot create event {spec.name}: {_detail(resp)}")
        lo, hi = float(event["min_value"]), float(event["max_value"])
        out.append((event["public_id"], attrs.evolve(
            spec, type=event["type"], signal=attrs.evolve(spec.signal, lo=lo, hi=hi))))
    return out


# ---------------------------------------------------------------- one controller


class Controller:
    """One simulated controller: a producer of frames and a connection that sends them."""

    def __init__(self, cid: str, events: list[tuple[str, EventSpec]], config: SimConfig,
                 auth: Auth) -> None:
        self.id = cid
        self.events = events
        self.config = config
        self.auth = auth
        # Seqs start from the clock (µs): never reused for this controller_id by a later run.
        self.book = FrameBook(first_seq=time.time_ns() // 1000, window=config.window)
        self.backoff = Backoff()
        self.connects = 0
        self._changed = trio.Event()

    @property
    def tally(self) -> Tally:
        return self.book.tally

    async def run(self, stop: trio.Event) -> None:
        """Produce until ``stop``, then wait up to ``drain_timeout`` for the last acks."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._connection_loop)
            await self._produce(stop)
            with trio.move_on_after(self.config.drain_timeout):
                while self.book.unacked_frames:
                    await self._wait_change(None)
            nursery.cancel_scope.cancel()

    async def _produce(self, stop: trio.Event) -> None:
        sampler = Sampler(self.config.rate)
        t0, wall0 = trio.current_time(), time.time()
        batch = max(self.config.batch_window, 1 / self.config.rate)
        signals: list[tuple[str, Signal]] = [(eid, spec.signal) for eid, spec in self.events]
        while not stop.is_set():
            per_frame = max(1, MAX_FRAME_READINGS // len(signals))
            while times := sampler.due(trio.current_time() - t0, limit=per_frame):
                self.book.add([
                    {"value": signal.at(t), "event_public_id": eid,
                     "timestamp": protocol.timestamp(wall0 + t)}
                    for t in times for eid, signal in signals
                ])
            self._notify()
            with trio.move_on_at(t0 + max(sampler.next_at(), trio.current_time() - t0 + batch)):
                await stop.wait()

    async def _connection_loop(self) -> None:
        token = self.auth.token
        while True:
            url = protocol.telemetry_url(self.config.url, token, self.id)
            refused: trio_websocket.ConnectionRejected | None = None
            try:
                async with trio_websocket.open_websocket_url(
                    url, connect_timeout=10, disconnect_timeout=2, max_message_size=WS_MAX_MESSAGE
                ) as ws:
                    self.connects += 1
                    if self.connects > 1:
                        log.info("%s: reconnected; resending %d unacked frames", self.id,
                                 self.book.unacked_frames)
                    await self._session(ws)
            except* trio_websocket.ConnectionRejected as group:
                leaf = first_leaf(group)
                assert isinstance(leaf, trio_websocket.ConnectionRejected)
                refused = leaf
            except* CONNECTION_FAILURES as group:
                log.warning("%s: connection lost (%s); reconnecting", self.id, _describe(first_leaf(group)))
            if refused is not None and refused.status_code == 401:
                try:
                    token = await self.auth.login(stale=token)  # revoked or expired: log in again
                except Unreachable as exc:
                    log.warning("%s: %s; retrying", self.id, exc)
            elif refused is not None:
                body = (refused.body or b"").decode(errors="replace")
                raise SimulatorError(f"{self.id}: telemetry refused: HTTP {refused.status_code} {body}")
            self.book.on_disconnect()
            await trio.sleep(self.backoff.delay())

    async def _session(self, ws: trio_websocket.WebSocketConnection) -> None:
        commanded = [eid for eid, spec in self.events if spec.type in COMMANDED_TYPES]
        if commanded:
            await ws.send_message(protocol.hello(commanded))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive, ws)
            try:
                while True:
                    for frame in self.book.take(trio.current_time()):
                        await ws.send_message(frame.text)
                    await self._wait_change(self.book.next_retry())
            except trio_websocket.ConnectionClosed:
                # Acks the server sent before it closed (1001 on shutdown) are still queued:
                # the receiver reads them all before it fails and ends the session. Dropping
                # them would resend frames that were stored (harmless, but not the point).
                await trio.sleep_forever()

    async def _receive(self, ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            reply = protocol.parse_reply(await ws.get_message())
            if isinstance(reply, protocol.Ack):
                self.book.on_ack(reply)
                self.backoff.reset()
            elif isinstance(reply, protocol.ErrorReply):
                if self.book.on_error(reply, trio.current_time()):
                    log.warning("%s: frame seq=%s not stored: %s", self.id, reply.seq, reply.detail)
                else:
                    log.warning("%s: error frame: %s", self.id, reply.detail)
            elif isinstance(reply, protocol.Command):
                await self._command(ws, reply)
            self._notify()

    async def _command(self, ws: trio_websocket.WebSocketConnection, cmd: protocol.Command) -> None:
        """A set-point for one of our actuators: a real controller would apply it; we log it."""
        name = next((spec.name for eid, spec in self.events if eid == cmd.event_public_id),
                    cmd.event_public_id)
        log.info("%s: command %s = %g (id %s); acking", self.id, name, cmd.value, cmd.id)
        self.tally.commands += 1
        await ws.send_message(protocol.command_ack(cmd.id))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_change(self, deadline: float | None) -> None:
        changed = self._changed
        with trio.move_on_at(math.inf if deadline is None else deadline):
            await changed.wait()


# ---------------------------------------------------------------- the whole run


class Simulation:
    """N controllers against one server. ``controllers`` is filled by :meth:`run` once the login
    and the events worked, so a caller cancelled mid-run can still report their tallies."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.controllers: list[Controller] = []

    async def run(self, stop: trio.Event | None = None) -> list[Result]:
        """Run until ``stop`` is set or ``duration`` has passed, drain, and return each
        controller's tally. Raises :class:`SimulatorError` (perhaps inside an exception group,
        from a controller) for a refusal: login, events, handshake."""
        config, stop = self.config, stop if stop is not None else trio.Event()
        async with httpx.AsyncClient(base_url=config.url, timeout=10) as http:
            auth = Auth(http, config.email, config.password, config.token)
            await auth.login()
            for k in range(1, config.controllers + 1):
                specs = controller_events(k, config.events_per_controller, config.name_prefix)
                events = await ensure_events(http, auth.token, specs)
                self.controllers.append(Controller(controller_id(config.id_prefix, k), events, config, auth))
            log.info("%d controllers streaming %d events each at %g readings/s to %s",
                     config.controllers, config.events_per_controller, config.rate, config.url)
            async with trio.open_nursery() as nursery:
                for controller in self.controllers:
                    nursery.start_soon(controller.run, stop)
                if config.duration is not None:
                    with trio.move_on_after(config.duration):
                        await stop.wait()
                    stop.set()
        return self.results()

    def results(self) -> list[Result]:
        for c in self.controllers:
            c.tally.unacked = c.book.unacked_readings
        return [Result(c.id, c.tally) for c in self.controllers]


def summary(results: Sequence[Result]) -> list[str]:
    """One line per controller and a total: ``<id>: sent N, acked N, resent N, rejected N``."""
    total = Tally()
    for r in results:
        total.add(r.tally)
    return [*(f"{r.controller_id}: {r.tally.line()}" for r in results), f"total: {total.line()}"]
