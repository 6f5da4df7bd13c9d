"""The actor tree and its facade: what routes and WebSocket shims talk to.

::

    root supervisor (children below; the router decides when recorders start and end)
    ├── hub             permanent  inbox 1024 messages; senders wait when full
    ├── router          permanent  inbox 256 messages; senders wait when full; numbers submissions
    ├── recorder[-]     permanent  inbox 256 jobs; the router waits when full
    ├── recorder[exp]   permanent  one per running experiment, drained and ended at its stop
    ├── publisher       permanent  hands committed rows to the hub and the bus, in submission order
    ├── bus-relay       permanent  bus deliveries (every instance's commits) -> hub fan-out
    ├── export[...]     temporary  one per CSV download; 4 chunks in flight
    ├── loop-monitor    permanent
    ├── token-pruner    permanent  hourly: expired token revocations
    ├── frame-pruner    permanent  hourly: telemetry frame ids past INGEST_FRAME_RETENTION_HOURS
    ├── commander       permanent  stores commands for declared actuators, hands them to the relay
    ├── command-relay   permanent  a bus relay's receiving side (in-process: ends at once)
    ├── control-relay   permanent  other instances' control messages -> router, hub, caches
    ├── command-pruner  permanent  deletes commands past COMMAND_TTL_SECONDS
    ├── token-usage     permanent  writes API tokens' last_used_at every 5 s (one statement)
    └── token-watcher   permanent  closes sockets whose API token or owner no longer qualifies
    connection actors (controller sessions, subscribers) run in Hypercorn's handler tasks,
    counted by the tree so shutdown can close them with 1001 first.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, cast

import trio

from webmacs.actors.batching import FlushPolicy
from webmacs.actors.commander import Commander, LocalRelay, RelayFactory, run_commander
from webmacs.actors.control import (
    EVENT_CREATED,
    EVENT_DELETED,
    EXPERIMENT_DELETED,
    EXPERIMENT_STARTED,
    EXPERIMENT_STOPPED,
    Action,
    Do,
    event_payload,
    experiment_payload,
    run_control_relay,
)
from webmacs.actors.credential_watch import SocketRegistry, run_credential_watcher, run_usage_flusher
from webmacs.actors.exporter import EXPORT_CHUNKS_IN_FLIGHT, ExportOutcome, run_export
from webmacs.actors.hub import (
    EventCreated,
    EventDeleted,
    GetLatest,
    GetSeq,
    Hub,
    HubMessage,
    ReloadLatest,
    StreamFilter,
    Subscribe,
    Subscription,
    run_hub,
    run_relay,
)
from webmacs.actors.loop_monitor import LoopLag, run_loop_monitor
from webmacs.actors.messages import Future, IngestFailed, ShuttingDown, Ticket
from webmacs.actors.outbox import SubscriberOutbox
from webmacs.actors.pacing import FanoutPacer
from webmacs.actors.router import (
    DeleteExperiment,
    Resync,
    Router,
    RouterMessage,
    StartExperiment,
    StopExperiment,
    Submit,
    run_router,
)
from webmacs.actors.sequencing import Sequencer, run_publisher
from webmacs.actors.supervisor import Supervisor
from webmacs.bus import (
    CONTROL_SUFFIX,
    Bus,
    BusClosed,
    ChannelSubscription,
    ControlSubscription,
    open_bus,
)
from webmacs.commands import CommandBook
from webmacs.frame_ids import FrameTag
from webmacs.metrics import Metrics
from webmacs.services import Services
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.records import DatapointRecord, ExperimentRecord, NewReading
from webmacs.validation import utcnow

log = logging.getLogger(__name__)

HUB_INBOX = 1024
ROUTER_INBOX = 256
SHUTDOWN_GRACE_S = 10.0


class ActorTree:
    def __init__(
        self,
        svc: Services,
        supervisor: Supervisor,
        router: Router,
        router_send: trio.MemorySendChannel[RouterMessage],
        hub: Hub,
        hub_send: trio.MemorySendChannel[HubMessage],
        sequencer: Sequencer,
        commander: Commander,
        bus: Bus | None = None,
        control_subject: str = "",
        instruments: Metrics | None = None,
    ) -> None:
        self.svc = svc
        self.bus = bus
        self.control_subject = control_subject
        self.commander = commander
        self.supervisor = supervisor
        self.router = router
        self.sequencer = sequencer
        self.hub = hub
        self._router_send = router_send
        self._hub_send = hub_send
        self.loop_lag = LoopLag()
        self.pacer = hub.pacer  # the stream gives way when the loop falls behind
        self.hub_done = trio.Event()
        self.shutting_down = trio.Event()
        self.connections = 0
        self.connected: dict[str, int] = {}  # open connections by kind (controller, subscriber)
        self._no_connections = trio.Event()
        self._no_connections.set()
        self.sockets = SocketRegistry()  # open sockets by credential (closed with 1008 when unfit)
        # /metrics: its recorder counts are the router's tally (one object, counted once).
        self.instruments = instruments or Metrics()
        self.instruments.watch(self)

    def inbox_depths(self) -> dict[str, int]:
        """Messages waiting per actor (read at scrape time: the actors pay nothing for it)."""
        depths = {"hub": self._hub_send.statistics().current_buffer_used,
                  "router": self._router_send.statistics().current_buffer_used,
                  "publisher": len(self.sequencer.ready),
                  "commander": len(self.commander.queue)}
        for handle in [*self.router.recorders.values(), *self.router.draining]:
            depths[f"recorder[{handle.label or '-'}]"] = handle.recv.statistics().current_buffer_used
        return depths

    def metrics(self) -> dict[str, Any]:
        """Counters for operators and benchmarks (no secrets, cheap to compute)."""
        recorders = [
            {"experiment_public_id": h.label, "batches": h.batches, "rows": h.rows,
             "queued": h.recv.statistics().current_buffer_used}
            for h in self.router.recorders.values()
        ]
        return {
            "loop_lag": self.loop_lag.summary(),
            "recorders": recorders,
            "rows_committed": self.hub.published,
            "hub": {"subscribers": len(self.hub.subscriptions), "published": self.hub.published,
                    "delivered": self.hub.delivered, "missed": self.hub.missed},
            "connections": self.connections,
            "escalated": dict(self.supervisor.escalated),
            "commands": self.commander.metrics(),
        }

    @property
    def healthy(self) -> bool:
        return not self.supervisor.escalated

    # -- ingestion and experiments (through the router)
    async def ingest(
        self, readings: tuple[NewReading, ...], frame: FrameTag | None = None,
        origin: str | None = None,
    ) -> Ticket:
        """``origin``: the controller identity sending the readings (commands for events it
        declared are not echoed back to it)."""
        commander = self.commander
        ticket = Ticket() if origin is None else Ticket(
            on_commit=lambda rows: commander.note_origin(origin, rows))
        tally = self.router.tally
        tally.received += len(readings)
        try:
            await _send(self._router_send, Submit(readings, ticket, frame))
        except ShuttingDown:
            tally.failed += len(readings)
            ticket.expect(1)
            ticket.fail(IngestFailed("Server shutting down."))
        return ticket

    async def _ask_router(self, make: Callable[[Future], RouterMessage]) -> object:
        reply = Future()
        await _send(self._router_send, make(reply))
        return await reply.get()

    async def create_experiment(self, name: str, user_public_id: str | None) -> ExperimentRecord:
        record = cast(ExperimentRecord, await self._ask_router(
            lambda f: StartExperiment(name, user_public_id, f)))
        await self.announce(EXPERIMENT_STARTED, experiment_payload(record.public_id))
        return record

    async def stop_experiment(self, public_id: str) -> ExperimentRecord | None:
        record = cast(ExperimentRecord | None, await self._ask_router(
            lambda f: StopExperiment(public_id, f)))
        if record is not None:
            await self.announce(EXPERIMENT_STOPPED, experiment_payload(public_id))
        return record

    async def delete_experiment(self, public_id: str) -> bool:
        found = bool(await self._ask_router(lambda f: DeleteExperiment(public_id, f)))
        if found:
            await self.announce(EXPERIMENT_DELETED, experiment_payload(public_id))
            await self.reload_latest()
        return found

    # -- CSV exports
    def start_export(self, public_id: str) -> tuple[trio.MemoryReceiveChannel[bytes], ExportOutcome]:
        """Start a temporary export actor for the experiment; its CSV chunks (after the header)
        arrive on the channel, and the outcome says how it ended."""
        send, recv = trio.open_memory_channel[bytes](EXPORT_CHUNKS_IN_FLIGHT)
        outcome = ExportOutcome()
        self.supervisor.start_temporary(
            f"export[{public_id[:8]}]", run_export, self.svc.repos.experiments, public_id, send,
            outcome,
        )
        return recv, outcome

    # -- other instances
    async def announce(self, kind: str, payload: dict[str, Any]) -> None:
        """Tell the other instances what was just committed (fire-and-forget)."""
        if self.bus is not None and self.bus.distributed:
            with contextlib.suppress(BusClosed):
                await self.bus.publish_control(self.control_subject, kind, payload)

    async def apply_control(self, action: Action) -> None:
        """Bring this tree in line with another instance's commit."""
        datapoints = self.svc.repos.datapoints
        if action.do is Do.RESYNC_EXPERIMENTS:
            with contextlib.suppress(ShuttingDown):
                await _send(self._router_send, Resync())
        elif action.do is Do.RELOAD_LATEST:
            await self.reload_latest()
        elif action.do is Do.EVENT_CREATED and action.event_id is not None:
            await self._notify_hub(EventCreated(action.event_id))
        elif action.do is Do.EVENT_DELETED and action.event_id is not None:
            datapoints.forget_event(action.event_id)
            await self._notify_hub(EventDeleted(action.event_id))
        elif action.do is Do.RELOAD_EVENTS:
            datapoints.forget_event()
            for event_id in await self.svc.repos.events.ordered_ids():
                await self._notify_hub(EventCreated(event_id))

    # -- the hub
    async def _ask_hub(self, make: Callable[[Future], HubMessage]) -> object:
        reply = Future()
        await _send(self._hub_send, make(reply))
        return await reply.get()

    async def _notify_hub(self, msg: HubMessage) -> None:
        """A notification after a commit: if the hub is already gone, there is nobody to tell."""
        with contextlib.suppress(ShuttingDown):
            await _send(self._hub_send, msg)

    async def latest(self) -> list[DatapointRecord]:
        return cast(list[DatapointRecord], await self._ask_hub(GetLatest))

    async def reload_latest(self) -> None:
        """After deletes, refresh the hub's latest values from the database, never losing a
        reading committed while the snapshot was being read."""
        try:
            seq = cast(int, await self._ask_hub(GetSeq))
        except ShuttingDown:
            return
        rows = await self.svc.repos.datapoints.latest()
        await self._notify_hub(ReloadLatest(tuple(rows), seq))

    async def event_created(self, event_id: str) -> None:
        await self._notify_hub(EventCreated(event_id))
        await self.announce(EVENT_CREATED, event_payload(event_id))

    async def event_deleted(self, event_id: str) -> None:
        await self._notify_hub(EventDeleted(event_id))
        await self.announce(EVENT_DELETED, event_payload(event_id))

    async def subscribe(self, flt: StreamFilter, stuck_timeout: float = 10.0) -> Subscription:
        sub = Subscription(flt, SubscriberOutbox(stuck_timeout=stuck_timeout))
        await _send(self._hub_send, Subscribe(sub))
        return sub

    @property
    def hub_sender(self) -> trio.MemorySendChannel[Any]:
        return self._hub_send

    # -- connections
    async def run_connection(self, fn: Callable[[], Awaitable[Any]], kind: str = "other") -> None:
        """Run a connection actor, counted so shutdown can wait for its 1001 close (and by
        ``kind`` for /metrics)."""
        self.connections += 1
        self.connected[kind] = self.connected.get(kind, 0) + 1
        self._no_connections = trio.Event() if self.connections == 1 else self._no_connections
        try:
            await fn()
        finally:
            self.connections -= 1
            self.connected[kind] -= 1
            if self.connections == 0:
                self._no_connections.set()

    async def shutdown(self) -> None:
        """Close sockets with 1001 (sessions flush their acks), then drain every recorder."""
        self.shutting_down.set()
        with trio.move_on_after(SHUTDOWN_GRACE_S):
            await self._no_connections.wait()
        self._router_send.close()
        self.router.close()
        with trio.move_on_after(SHUTDOWN_GRACE_S):
            await self.router.drained()
            await self.sequencer.idle()
        # Last, the hub: it answers what is queued (every committed batch is published), then
        # later requests get 503 instead of waiting for an actor that is gone.
        self._hub_send.close()
        with trio.move_on_after(SHUTDOWN_GRACE_S):
            await self.hub_done.wait()
        # The commands of what the hub published are stored (redelivered after the restart).
        with trio.move_on_after(SHUTDOWN_GRACE_S):
            await self.commander.idle()


async def _send(channel: trio.MemorySendChannel[Any], msg: object) -> None:
    """Send to an actor's inbox; a closed inbox means the tree is shutting down."""
    try:
        await channel.send(msg)
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        raise ShuttingDown from None


PRUNE_INTERVAL_S = 3600.0


async def run_pruner(
    prune: Callable[[datetime], Awaitable[int]], what: str, keep: timedelta = timedelta(0),
    interval: float = PRUNE_INTERVAL_S,
) -> None:
    """Every ``interval``, delete the rows older than ``keep`` with ``prune(cutoff)``: expired
    token revocations (they fail on ``exp`` first), telemetry frame ids past their retention.
    A database outage skips a round (crashing would use up the supervisor's restarts)."""
    while True:
        try:
            removed = await prune(utcnow() - keep)
        except DatabaseUnavailable:
            log.warning("database unavailable: %s not pruned this round", what)
        else:
            if removed:
                log.info("pruned %d %s", removed, what)
        await trio.sleep(interval)


def command_prune_interval(ttl: timedelta) -> float:
    """Expired commands are never sent (redelivery skips them): pruning only bounds the table,
    so once per TTL, at least hourly and at most once a minute."""
    return min(PRUNE_INTERVAL_S, max(60.0, ttl.total_seconds()))


@asynccontextmanager
async def open_actor_tree(
    svc: Services, policy: FlushPolicy | None = None, relay: RelayFactory = LocalRelay,
    bus: Bus | None = None,
) -> AsyncIterator[ActorTree]:
    """Start hub, router and recorders; on exit shut down gracefully and stop them. Without a
    ``bus``, the tree opens the one ``WEBMACS_BUS_URL`` names (in-process if unset).
    ``relay`` builds the command relay for the tree's book (in-process by default)."""
    async with contextlib.AsyncExitStack() as stack:
        if bus is None:
            bus = await stack.enter_async_context(open_bus(svc.settings.bus_url))
        delivered = await bus.subscribe(svc.settings.bus_subject)
        stack.push_async_callback(delivered.aclose)
        control = await bus.subscribe_control(svc.settings.bus_subject + CONTROL_SUFFIX)
        stack.push_async_callback(control.aclose)
        async with _open_tree(svc, policy, relay, bus, delivered, control) as tree:
            yield tree


@asynccontextmanager
async def _open_tree(
    svc: Services, policy: FlushPolicy | None, relay: RelayFactory, bus: Bus,
    delivered: ChannelSubscription, control: ControlSubscription,
) -> AsyncIterator[ActorTree]:
    repos = svc.repos
    # Other instances may share the database: stamp at commit, serialized with their changes.
    repos.datapoints.stamp_at_commit = bus.distributed
    repos.experiments.serialize_with_stamping = bus.distributed
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(
            nursery, "root",
            on_escalation=lambda name, exc: log.critical("actor %s keeps failing: %r", name, exc),
        )
        hub = Hub(origin=bus.instance_id, pacer=FanoutPacer())
        hub.latest.load(await repos.events.ordered_ids(), await repos.datapoints.latest())
        hub_send, hub_recv = trio.open_memory_channel[HubMessage](HUB_INBOX)
        policy = policy or FlushPolicy(
            window=svc.settings.ingest_flush_window,
            # SQLite takes one writer at a time; PostgreSQL overlaps a commit with the next COPY.
            writers=2 if svc.db.dialect == "postgresql" else 1,
        )
        sequencer = Sequencer()
        instruments = Metrics()
        supervisor.start_permanent("publisher", run_publisher, sequencer,
                                   cast(trio.MemorySendChannel[Any], hub_send), bus,
                                   svc.settings.bus_subject)
        supervisor.start_permanent("bus-relay", run_relay, delivered, hub_send)
        router = Router(supervisor, repos.experiments, repos.datapoints, sequencer, policy,
                        tally=instruments.tally)
        await router.load()
        router_send, router_recv = trio.open_memory_channel[RouterMessage](ROUTER_INBOX)
        supervisor.start_permanent("router", run_router, router_recv, router)
        book = CommandBook()
        ttl = timedelta(seconds=svc.settings.command_ttl_seconds)
        commander = Commander(book, repos.commands, relay(book), ttl)
        hub.on_publish = commander.on_publish
        tree = ActorTree(svc, supervisor, router, router_send, hub, hub_send, sequencer, commander,
                         bus, control.subject, instruments)

        async def hub_actor() -> None:
            await run_hub(hub_recv, hub)
            tree.hub_done.set()

        supervisor.start_permanent("hub", hub_actor)
        supervisor.start_permanent("loop-monitor", run_loop_monitor, tree.loop_lag, 0.01, tree.pacer)
        supervisor.start_permanent("token-pruner", run_pruner, repos.tokens.prune,
                                   "expired token revocations")
        supervisor.start_permanent("frame-pruner", run_pruner, repos.frames.prune,
                                   "telemetry frame ids",
                                   timedelta(hours=svc.settings.ingest_frame_retention_hours))
        supervisor.start_permanent("commander", run_commander, commander)
        supervisor.start_permanent("command-relay", commander.relay.run)
        supervisor.start_permanent("control-relay", run_control_relay, control, bus.instance_id,
                                   tree.apply_control)
        supervisor.start_permanent("command-pruner", run_pruner, repos.commands.prune,
                                   "expired commands", timedelta(0), command_prune_interval(ttl))
        supervisor.start_permanent("token-usage", run_usage_flusher, svc.token_usage, repos.api_tokens.touch)
        supervisor.start_permanent("token-watcher", run_credential_watcher, tree.sockets,
                                   repos.api_tokens.credentials, repos.users.login_state)
        try:
            yield tree
        finally:
            with trio.CancelScope(shield=True):
                await tree.shutdown()
            nursery.cancel_scope.cancel()
