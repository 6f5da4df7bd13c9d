"""The ingest router: stamps readings with their experiment and hands them to recorders.

It owns the experiment intervals and the recorders' lifecycle. Starting, stopping and deleting
an experiment pass through it, so the intervals it stamps with always match what is committed:
while it commits a stop, no reading is routed, and every reading that arrived before the stop
is already queued for the experiment's recorder.

With several instances on one database (a distributed bus) another instance's changes reach
the router as :class:`Resync` (a control message), a little late: its intervals then decide
only which recorder a submission goes to, and the stamp itself is resolved by the database at
commit (``storage/sql/datapoints.py``).

Recorders: one for readings outside any experiment (``None``, permanent), one per running
experiment (started with it, drained and ended when it stops). Readings a controller buffered
during an outage that belong to an already stopped experiment are stamped with it and written
by the ``None`` recorder.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

import attrs
import trio

from webmacs.actors.batching import FlushPolicy
from webmacs.actors.messages import (
    Future,
    IngestFailed,
    RecordJob,
    ShuttingDown,
    Stamped,
    Ticket,
    answer_crash,
)
from webmacs.actors.recorder import RecorderHandle, run_recorder
from webmacs.actors.sequencing import Sequencer
from webmacs.actors.supervisor import RestartPolicy, Supervisor
from webmacs.actors.tally import IngestTally
from webmacs.frame_ids import FrameTag
from webmacs.stamping import Interval, Stamper
from webmacs.storage.protocols import DatapointRepository, ExperimentRepository
from webmacs.storage.records import NewReading
from webmacs.validation import utcnow

log = logging.getLogger(__name__)

ExperimentKey = tuple[int, str]


@attrs.frozen
class Submit:
    readings: tuple[NewReading, ...]
    ticket: Ticket
    frame: FrameTag | None = None


@attrs.frozen
class StartExperiment:
    name: str
    user_public_id: str | None
    reply: Future


@attrs.frozen
class StopExperiment:
    public_id: str
    reply: Future


@attrs.frozen
class DeleteExperiment:
    public_id: str
    reply: Future


@attrs.frozen
class Resync:
    """Another instance changed the experiments: reload the intervals and fit the recorders."""


RouterMessage = Submit | StartExperiment | StopExperiment | DeleteExperiment | Resync


class Router:
    """State and behaviour of the router actor (its loop is :func:`run_router`)."""

    def __init__(
        self,
        supervisor: Supervisor,
        experiments: ExperimentRepository,
        datapoints: DatapointRepository,
        sequencer: Sequencer,
        policy: FlushPolicy,
        recorder_capacity: int = 256,
        tally: IngestTally | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.experiments = experiments
        self.datapoints = datapoints
        self.sequencer = sequencer
        self.policy = policy
        self.recorder_capacity = recorder_capacity
        self.tally = tally or IngestTally()  # every recorder's counts, for /metrics
        self.stamper: Stamper[ExperimentKey] = Stamper([])
        self.running: ExperimentKey | None = None
        self.recorders: dict[int | None, RecorderHandle] = {}
        self.draining: set[RecorderHandle] = set()  # stopped experiments' recorders, finishing

    # -- lifecycle
    async def load(self) -> None:
        self._start_recorder(None)
        await self.sync()

    async def _reload_intervals(self) -> None:
        rows = await self.experiments.intervals()
        self.stamper = Stamper([Interval((r[0], r[1]), r[2], r[3]) for r in rows])
        running = [r for r in rows if r[3] is None]
        self.running = (running[0][0], running[0][1]) if running else None

    def _start_recorder(self, key: int | None, label: str | None = None) -> RecorderHandle:
        handle = RecorderHandle(key, self.recorder_capacity, label, self.tally)
        self.recorders[key] = handle
        name = "recorder[-]" if key is None else f"recorder[{key}]"
        self.supervisor.start_permanent(
            name, run_recorder, handle, self.datapoints.store, self.sequencer, self.policy,
            policy=RestartPolicy(max_restarts=10, window=60.0),
        )
        return handle

    async def _end_recorder(self, key: int) -> None:
        handle = self.recorders.pop(key, None)
        if handle is not None:
            handle.close()
            await handle.finished.wait()

    async def _forget_when_done(self, handle: RecorderHandle) -> None:
        await handle.finished.wait()
        self.draining.discard(handle)

    def close(self) -> None:
        for handle in self.recorders.values():
            handle.close()

    async def drained(self) -> None:
        for handle in [*self.recorders.values(), *self.draining]:
            await handle.finished.wait()

    # -- ingestion
    async def submit(self, msg: Submit) -> None:
        """Stamp every reading and queue the whole submission on *one* recorder, so its good
        readings commit in one transaction: the running experiment's recorder if any reading
        belongs to it, else the ``None`` recorder (which also writes late readings of stopped
        experiments, with their stamps)."""
        msg.ticket.expect(1)
        # Numbered in routing order, which is arrival order: the sequencer publishes in it.
        number = self.sequencer.take()
        try:
            now = utcnow()
            running = self.running
            items = []
            to_running = False
            for reading in msg.readings:
                ts = reading.timestamp or now
                exp = running if reading.timestamp is None else self.stamper.stamp(ts)
                to_running = to_running or (exp is not None and exp == running)
                items.append(Stamped(reading, ts, exp))
            key = running[0] if to_running and running is not None else None
            handle = self.recorders.get(key) or self.recorders.get(None)
            if handle is None:
                raise trio.ClosedResourceError
            await handle.send.send(RecordJob(tuple(items), msg.ticket, trio.current_time(), number,
                                             msg.frame))
        except BaseException as exc:
            # Not queued (a closed recorder, cancelled while its inbox was full, a bug): the
            # job ends here, answered and resolved, so neither its sender nor a later
            # submission's publication waits for it.
            closed = isinstance(exc, trio.ClosedResourceError | trio.BrokenResourceError)
            msg.ticket.fail(IngestFailed("Server shutting down." if closed or not isinstance(
                exc, Exception) else "Not stored: internal error; try again."))
            self.sequencer.resolve(number)
            if not closed:
                raise

    async def flush(self) -> None:
        """Wait until everything queued so far is committed: a barrier job through every live
        recorder (jobs complete in order), and the end of every recorder still draining."""
        barriers = []
        for handle in list(self.recorders.values()):
            ticket = Ticket(1)
            try:
                await handle.send.send(RecordJob((), ticket, trio.current_time()))
                barriers.append(ticket)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass
        for ticket in barriers:
            with contextlib.suppress(IngestFailed):
                await ticket.wait()
        for handle in list(self.draining):
            await handle.finished.wait()

    # -- experiments
    async def _change(self, reply: Future, action: Callable[[], Awaitable[object]]) -> None:
        """Run one experiment change and answer it, then bring the router in line with what was
        committed. If that resync fails, the router crashes and resyncs when it restarts."""
        try:
            result = await action()
        except Exception as exc:
            reply.fail(exc)
            return
        except BaseException:
            reply.fail(ShuttingDown())
            raise
        reply.set(result)
        await self.sync()

    async def start_experiment(self, msg: StartExperiment) -> None:
        await self._change(msg.reply, lambda: self.experiments.create(msg.name, msg.user_public_id))

    async def stop_experiment(self, msg: StopExperiment) -> None:
        await self._change(msg.reply, lambda: self.experiments.stop(msg.public_id))

    async def delete_experiment(self, msg: DeleteExperiment) -> None:
        # Commit everything queued first (its own recorder, a stopped one still draining, late
        # readings on the None recorder): what was acked is then deleted with the rest, and
        # nothing stamped with the experiment is written after it is gone.
        async def delete() -> bool:
            if self.running is not None and self.running[1] == msg.public_id:
                await self._end_recorder(self.running[0])
            await self.flush()
            return await self.experiments.delete(msg.public_id)

        await self._change(msg.reply, delete)

    async def sync(self) -> None:
        """Reload the intervals and fit the recorders to them: a stopped experiment's recorder
        drains and ends, the running one's exists. Idempotent (after a change, or a restart)."""
        previous = self.running
        await self._reload_intervals()
        if previous is not None and previous != self.running:
            # Stopped: its recorder writes what is queued (stamped before the stop), then ends.
            handle = self.recorders.pop(previous[0], None)
            if handle is not None:
                handle.close()
                self.draining.add(handle)
                self.supervisor.start_temporary(
                    f"drain[{previous[0]}]", self._forget_when_done, handle
                )
        if self.running is not None and self.running[0] not in self.recorders:
            self._start_recorder(*self.running)


async def run_router(inbox: trio.MemoryReceiveChannel[RouterMessage], router: Router) -> None:
    """Handle messages one at a time: routing order is submission order. A (re)start first
    resyncs, so a crash between a committed change and its resync leaves nothing stale. A crash
    while handling a message answers that message's caller with an error first."""
    await router.sync()
    async for msg in inbox:
        try:
            if isinstance(msg, Submit):
                await router.submit(msg)
            elif isinstance(msg, StartExperiment):
                await router.start_experiment(msg)
            elif isinstance(msg, StopExperiment):
                await router.stop_experiment(msg)
            elif isinstance(msg, DeleteExperiment):
                await router.delete_experiment(msg)
            elif isinstance(msg, Resync):
                await router.sync()
        except BaseException as exc:
            answer_crash(msg, exc)  # a submission answers its own ticket (see submit)
            raise

