"""The sans-IO core of commands (webmacs/commands.py): control frames, the per-session outbox,
the book of declarations (targets, no echo), the queue of candidates. No sockets, clocks or DB."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from webmacs.commands import (
    BAD_COMMAND_ID,
    BAD_EVENTS,
    MAX_HELLO_EVENTS,
    TOO_MANY_EVENTS,
    Candidate,
    CommandAck,
    CommandBook,
    CommandOutbox,
    CommandQueue,
    CommandRecord,
    ControlError,
    Hello,
    controller_identity,
    encode_command,
    is_control,
    parse_control,
)
from webmacs.frames import FrameError, TelemetryFrame, parse_controller_frame
from webmacs.storage.records import DatapointRecord

A, B, C = (str(uuid.uuid4()) for _ in range(3))
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def row(event: str, value: float = 1.0, public_id: str | None = None) -> DatapointRecord:
    return DatapointRecord(public_id or str(uuid.uuid4()), value, T0, event, None)


# ---------------------------------------------------------------- frames


@pytest.mark.parametrize(("body", "parsed"), [
    ({"type": "hello", "events": [A, B, A]}, Hello((A, B))),
    ({"type": "hello", "events": []}, Hello(())),
    ({"type": "hello"}, ControlError(BAD_EVENTS)),
    ({"type": "hello", "events": A}, ControlError(BAD_EVENTS)),
    ({"type": "hello", "events": [A, None]}, ControlError(BAD_EVENTS)),
    ({"type": "hello", "events": [A.upper()]}, ControlError(BAD_EVENTS)),
    ({"type": "hello", "events": [str(uuid.uuid4()) for _ in range(MAX_HELLO_EVENTS + 1)]},
     ControlError(TOO_MANY_EVENTS)),
    ({"type": "command_ack", "id": A}, CommandAck(A)),
    ({"type": "command_ack"}, ControlError(BAD_COMMAND_ID)),
    ({"type": "command_ack", "id": ["x"]}, ControlError(BAD_COMMAND_ID)),
    ({"type": "command_ack", "id": "nope"}, ControlError(BAD_COMMAND_ID)),
])
def test_parse_control(body: dict[str, Any], parsed: object) -> None:
    assert is_control(body)
    assert parse_control(body) == parsed


def test_only_hello_and_command_ack_are_control_frames() -> None:
    for body in ({"type": "ping"}, {"datapoints": []}, [1], "hello", {"type": None}):
        assert not is_control(body)


def test_control_frames_are_telemetry_where_commands_are_off() -> None:
    raw = orjson.dumps({"type": "hello", "events": [A]}).decode()
    assert parse_controller_frame(raw, 10, control=True) == Hello((A,))
    assert parse_controller_frame(raw, 10, control=False) == FrameError(
        None, False, "Field 'datapoints' must be a list.")
    telemetry = '{"seq":1,"datapoints":[]}'
    assert parse_controller_frame(telemetry, 10, control=True) == TelemetryFrame(1, True, [], [])


def test_command_frame_and_identity() -> None:
    cmd = CommandRecord(A, "c:rig", B, 1.0, T0)
    assert orjson.loads(encode_command(cmd)) == {
        "type": "command", "id": A, "event_public_id": B, "value": 1.0,
        "timestamp": "2026-12-03T12:00:00.000000+00:00"}
    assert controller_identity("rig-1", "conn") == "c:rig-1"
    assert controller_identity(None, "conn") == "s:conn"


# ---------------------------------------------------------------- outbox


def test_outbox_is_bounded_drop_oldest_and_one_entry_per_id() -> None:
    box = CommandOutbox(max_items=2)
    assert box.offer("1", b"one")
    assert not box.offer("1", b"one again")
    assert box.offer("2", b"two")
    assert box.offer("3", b"three")
    assert (len(box), box.dropped) == (2, 1)
    box.discard("2")  # acked before it was sent
    assert box.take() == [b"three"]
    assert box.take() == []
    assert box.offer("1", b"one")  # taken: may be queued again (a later hello)


def test_outbox_never_hands_out_an_expired_command() -> None:
    box = CommandOutbox()
    box.offer("old", b"old", T0)
    box.offer("new", b"new", T0 + timedelta(seconds=1))
    box.offer("forever", b"forever")
    assert box.take(T0) == [b"new", b"forever"]
    assert box.expired == 1


# ---------------------------------------------------------------- book


def test_targets_follow_declarations_replacement_and_detach() -> None:
    book = CommandBook()
    one = book.attach("c:one", CommandOutbox())
    two = book.attach("c:two", CommandOutbox())
    anon = book.attach("s:x", CommandOutbox())
    assert book.candidates([row(A)]) == []  # nothing declared: the fast path
    book.declare(one, [A, B])
    book.declare(two, [A])
    book.declare(anon, [C])
    assert book.targets(A) == {"c:one", "c:two"}
    book.declare(one, [B])  # a later hello replaces the earlier one
    assert book.targets(A) == {"c:two"}
    assert book.declared_events == 3
    book.detach(two)
    assert book.targets(A) == set()
    assert book.declared_events == 2
    assert sorted(book.sessions) == sorted([one.key, anon.key])


def test_candidates_exclude_the_writer_of_a_row() -> None:
    book = CommandBook()
    one, one_again = book.attach("c:one", CommandOutbox()), book.attach("c:one", CommandOutbox())
    two = book.attach("c:two", CommandOutbox())
    for entry in (one, one_again, two):
        book.declare(entry, [A])
    own, rest = row(A, 0.0), row(A, 1.0)
    undeclared = row(B)
    book.note_origin("c:one", [own, undeclared])  # B: not declared by c:one, not noted
    assert book.candidates([own, rest, undeclared]) == [
        Candidate(own, ("c:two",)), Candidate(rest, ("c:one", "c:two"))]
    # Noted once: a later row with the same id (none exists) would not be excluded again.
    assert book.candidates([own]) == [Candidate(own, ("c:one", "c:two"))]
    # A row written by the only declaring controller commands nobody.
    book.detach(two)
    mine = row(A)
    book.note_origin("c:one", [mine])
    assert book.candidates([mine]) == []


def test_route_goes_to_the_targets_sessions_that_declare_the_event() -> None:
    book = CommandBook()
    one, one_again = book.attach("c:one", CommandOutbox()), book.attach("c:one", CommandOutbox())
    two = book.attach("c:two", CommandOutbox())
    book.declare(one, [A])
    book.declare(one_again, [B])
    book.declare(two, [A])
    cmd = CommandRecord(C, "c:one", A, 1.0, T0)
    assert book.route(cmd) == [one]


def test_origins_are_bounded() -> None:
    book = CommandBook(max_origins=2)
    book.declare(book.attach("c:one", CommandOutbox()), [A])
    book.declare(book.attach("c:two", CommandOutbox()), [A])
    rows = [row(A) for _ in range(3)]
    book.note_origin("c:one", rows)
    # The oldest note was forgotten: that row goes to its writer too.
    assert [c.targets for c in book.candidates(rows)] == [
        ("c:one", "c:two"), ("c:two",), ("c:two",)]


# ---------------------------------------------------------------- queue


def test_queue_is_bounded_and_done_removes_only_what_is_still_queued() -> None:
    queue = CommandQueue(max_items=3)
    items = [Candidate(row(A, float(i)), ("c:x",)) for i in range(5)]
    queue.extend(items[:2])
    taken = queue.peek(10)
    assert taken == items[:2]
    queue.extend(items[2:])  # over the bound while the first two were being stored
    assert (len(queue), queue.dropped) == (3, 2)
    queue.done(taken)  # both were dropped meanwhile: nothing else goes
    assert queue.peek(10) == items[2:]
    queue.done(queue.peek(2))
    assert queue.peek(10) == items[4:]
