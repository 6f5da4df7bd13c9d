"""Idempotent telemetry (§8) without sockets or a database: the sans-IO rules, and the session,
recorder and pruner actors against fakes, in virtual time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing
from test_actors_recorder import Publisher, recorder
from test_actors_session import EV, FakePort, FakeSubmit, ack, dp, err

from webmacs.actors.batching import Batch, FlushPolicy
from webmacs.actors.controller_session import run_controller_session
from webmacs.actors.messages import RecordJob, Stamped, Ticket
from webmacs.actors.ports import Activity
from webmacs.actors.tree import run_pruner
from webmacs.frame_ids import (
    BAD_CONTROLLER_ID,
    SEQ_OUT_OF_RANGE,
    FrameAck,
    FrameKey,
    FrameSpans,
    FrameTag,
    StoreOutcome,
    claim_order,
    controller_id_error,
    first_ack,
    frame_tag,
)
from webmacs.settings import SettingsError, load_settings
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.records import DatapointRecord, NewReading, Rejection
from webmacs.validation import utcnow

TS = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
Row = tuple[NewReading, datetime, tuple[int, str] | None]


# ---------------------------------------------------------------- sans-IO rules


@pytest.mark.parametrize(("values", "problem"), [
    ([], None), (["a"], None), (["Lab-3.reactor_01"], None), (["x" * 64], None),
    ([""], BAD_CONTROLLER_ID), (["x" * 65], BAD_CONTROLLER_ID), (["a b"], BAD_CONTROLLER_ID),
    (["ctl/1"], BAD_CONTROLLER_ID), (["é"], BAD_CONTROLLER_ID), (["a\n"], BAD_CONTROLLER_ID),
    (["a", "b"], "controller_id must be given once"),
])
def test_controller_ids(values: list[str], problem: str | None) -> None:
    assert controller_id_error(values) == problem


def test_frame_tags_need_an_id_and_a_seq_the_store_can_hold() -> None:
    bad = Rejection(1, EV, "nope")
    assert frame_tag(None, 5, []) is None
    assert frame_tag("c", None, []) is None
    assert frame_tag("c", 5, [bad]) == FrameTag(FrameKey("c", 5), (bad,))
    assert frame_tag("c", -(2**63), []) == FrameTag(FrameKey("c", -(2**63)))
    assert frame_tag("c", 2**63, []) == SEQ_OUT_OF_RANGE
    assert frame_tag("c", -(2**63) - 1, []) == SEQ_OUT_OF_RANGE


def test_first_ack_round_trips_through_its_stored_form() -> None:
    tag = FrameTag(FrameKey("c", 1), (Rejection(3, None, "Field required.", field="value"),))
    first = first_ack(tag, [Rejection(0, EV, "Event not found.", input=EV)], 2)
    assert [r.index for r in first.rejected] == [0, 3]
    again = FrameAck.from_row(first.accepted, first.rejected_json())
    assert again.accepted == 2
    # What the ack frame shows (index, event id, detail) survives the database.
    assert [(r.index, r.event_public_id, r.detail) for r in again.rejected] == [
        (0, EV, "Event not found."), (3, None, "Field required.")]


def test_claim_order_sorts_keys_and_points_repeats_to_their_first_job() -> None:
    a, b = FrameTag(FrameKey("b", 2)), FrameTag(FrameKey("a", 9))
    keys, repeats = claim_order([(a, 1), (None, 3), (b, 1), (a, 2), (b, 1)])
    assert keys == [FrameKey("a", 9), FrameKey("b", 2)]
    assert repeats == {3: 0, 4: 2}


def test_batch_passes_frame_ids_only_when_some_job_has_one() -> None:
    item = Stamped(NewReading(0, 1.0, EV, None), TS, None)
    batch = Batch()
    batch.add(RecordJob((item, item), Ticket(1), 0.0))
    assert batch.frames() is None
    tag = FrameTag(FrameKey("c", 1))
    batch.add(RecordJob((item,), Ticket(1), 0.0, frame=tag))
    assert batch.frames() == [(None, 2), (tag, 1)]


# ---------------------------------------------------------------- the recorder


class DedupStore:
    """A store with the database's resend rule: a frame id committed before gets its first ack."""

    def __init__(self) -> None:
        self.committed: dict[FrameKey, FrameAck] = {}
        self.rows: list[float] = []

    async def __call__(self, rows: Sequence[Row], frames: FrameSpans | None = None) -> list[StoreOutcome]:
        await trio.sleep(0.001)
        spans = frames or [(None, len(rows))]
        out: list[StoreOutcome] = []
        pos = 0
        for tag, n in spans:
            part = rows[pos:pos + n]
            pos += n
            if tag is not None and tag.key in self.committed:
                out.extend([self.committed[tag.key]] * n)
                continue
            if tag is not None:
                self.committed[tag.key] = FrameAck(n, tag.rejected)
            self.rows.extend(r.value for r, _, _ in part)
            out.extend(DatapointRecord(f"dp-{len(self.rows)}-{i}", r.value, ts, r.event_public_id, None)
                       for i, (r, ts, _) in enumerate(part))
        return out


def tagged_job(seq: int, values: Sequence[float], rejected: tuple[Rejection, ...] = ()) -> RecordJob:
    items = tuple(Stamped(NewReading(i, v, EV, None), TS, None) for i, v in enumerate(values))
    return RecordJob(items, Ticket(1), trio.current_time(),
                     frame=FrameTag(FrameKey("c", seq), rejected))


async def test_a_resent_job_completes_with_the_first_result_and_publishes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, publish = DedupStore(), Publisher()
    bad = Rejection(2, EV, "Input should be a finite number or a string holding one.")
    async with recorder(store, FlushPolicy(window=0.005), publish) as handle:  # type: ignore[arg-type]
        original = tagged_job(1, [1.0, 2.0], (bad,))
        await handle.send.send(original)
        first = await original.ticket.wait()
        # Resent twice in one later batch, next to a new frame.
        resends = [tagged_job(1, [1.0, 2.0], (bad,)), tagged_job(1, [1.0, 2.0], (bad,))]
        new = tagged_job(2, [3.0])
        for j in (*resends, new):
            await handle.send.send(j)
        for j in resends:
            again = await j.ticket.wait()
            assert (again.accepted, again.stored, again.rejected) == (2, [], [bad])
        assert (await new.ticket.wait()).accepted == 1
    assert (first.accepted, first.first_accepted) == (2, None)
    assert store.rows == [1.0, 2.0, 3.0]
    assert publish.values() == [[1.0, 2.0], [3.0]]
    assert handle.rows == 3


# ---------------------------------------------------------------- the controller session


async def test_session_tags_frames_with_its_controller_id_and_replays_first_acks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    port, submit, shutdown = FakePort(), FakeSubmit(), trio.Event()
    tags: list[object] = []
    plain_call = FakeSubmit.__call__

    async def recording_submit(readings: tuple[NewReading, ...], frame: object = None) -> Ticket:
        tags.append(frame)
        return await plain_call(submit, readings)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: run_controller_session(
            port, recording_submit, Activity(), 30.0, shutdown, 10, controller_id="ctl-7"))
        body = {"seq": 5, "datapoints": [dp(1.0), {"value": "abc", "event_public_id": EV}]}
        for raw in (orjson.dumps(body).decode(), orjson.dumps({"seq": 2**63, "datapoints": [dp()]}).decode(),
                    orjson.dumps(body).decode(), orjson.dumps({"datapoints": [dp()]}).decode()):
            await port.incoming.send(raw)
        await trio.sleep(0.01)
        parse_bad = tags[0].rejected if isinstance(tags[0], FrameTag) else ()
        assert tags == [FrameTag(FrameKey("ctl-7", 5), parse_bad), FrameTag(FrameKey("ctl-7", 5), parse_bad),
                        None]
        assert [r.index for r in parse_bad] == [1]
        submit.complete(0)
        # The resend: the store says "committed before", with the first ack (whatever the
        # session added to this ticket, the first ack is the answer).
        submit.submitted[1][1].replay(FrameAck(1, parse_bad))
        submit.complete(2)
        await trio.sleep(0.01)
        first = ack(5, 1, [{"index": 1, "event_public_id": EV,
                            "detail": "Input should be a finite number or a string holding one."}])
        assert port.frames() == [first, err(2**63, SEQ_OUT_OF_RANGE), first]
        port.incoming.close()


# ---------------------------------------------------------------- pruning


async def test_pruner_forgets_ids_older_than_the_retention_every_hour(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cutoffs: list[tuple[float, datetime]] = []

    async def prune(before: datetime) -> int:
        cutoffs.append((trio.current_time(), before))
        return 3

    t0 = trio.current_time()
    with trio.move_on_after(3 * 3600 + 1):
        await run_pruner(prune, "telemetry frame ids", timedelta(hours=48))
    assert [t - t0 for t, _ in cutoffs] == [0, 3600, 7200, 10800]
    for _, before in cutoffs:
        assert abs((utcnow() - before) - timedelta(hours=48)) < timedelta(minutes=1)


async def test_a_database_outage_skips_a_pruning_round_without_crashing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A crash per round would use up the supervisor's restarts and mark the server unhealthy
    for good; a round during an outage is skipped instead."""
    rounds: list[float] = []

    async def prune(before: datetime) -> int:
        rounds.append(trio.current_time())
        if len(rounds) == 2:
            raise DatabaseUnavailable("down")
        return 0

    t0 = trio.current_time()
    with trio.move_on_after(2 * 3600 + 1):
        await run_pruner(prune, "telemetry frame ids", timedelta(hours=48))
    assert [t - t0 for t in rounds] == [0, 3600, 7200]


def test_retention_setting_defaults_to_48_hours_and_never_below_24(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    assert load_settings(env, workdir=tmp_path, persist_secret=False).ingest_frame_retention_hours == 48
    env["INGEST_FRAME_RETENTION_HOURS"] = "24"
    assert load_settings(env, workdir=tmp_path, persist_secret=False).ingest_frame_retention_hours == 24
    env["INGEST_FRAME_RETENTION_HOURS"] = "23"
    with pytest.raises(SettingsError, match="INGEST_FRAME_RETENTION_HOURS"):
        load_settings(env, workdir=tmp_path, persist_secret=False)
