"""Sans-IO tests of the WebSocket frames of §5.2/§5.3 (webmacs/frames.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from webmacs.frames import (
    BAD_DATAPOINTS,
    BAD_SEQ,
    CONNECTED,
    MALFORMED,
    NOT_OBJECT,
    PONG,
    FrameError,
    TelemetryFrame,
    ack,
    error,
    is_ping,
    parse_telemetry,
)
from webmacs.readings import ITEM_INVALID, VALUE_INVALID
from webmacs.storage.records import NewReading, Rejection

EV = "3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23"


def test_v2_frame_without_seq() -> None:
    raw = orjson.dumps({"datapoints": [{"value": 21.5, "event_public_id": EV}]}).decode()
    frame = parse_telemetry(raw, 10)
    assert frame == TelemetryFrame(None, False, [NewReading(0, 21.5, EV, None)], [])


def test_extended_frame_with_seq_and_timestamp() -> None:
    raw = orjson.dumps({"seq": 42, "datapoints": [
        {"value": "1.0", "event_public_id": EV, "timestamp": "2026-02-10T21:44:08.123456+01:00"},
    ]}).decode()
    frame = parse_telemetry(raw, 10)
    assert isinstance(frame, TelemetryFrame)
    assert (frame.seq, frame.has_seq, frame.rejected) == (42, True, [])
    assert frame.readings == [
        NewReading(0, 1.0, EV, datetime(2026, 2, 10, 20, 44, 8, 123456, tzinfo=UTC)),
    ]


def test_seq_null_is_like_absent() -> None:
    assert parse_telemetry('{"seq": null, "datapoints": []}', 10) == TelemetryFrame(None, False, [], [])


def test_seq_zero_and_negative_are_integers() -> None:
    assert parse_telemetry('{"seq": 0, "datapoints": []}', 10) == TelemetryFrame(0, True, [], [])
    assert parse_telemetry('{"seq": -7, "datapoints": []}', 10) == TelemetryFrame(-7, True, [], [])


def test_bad_items_rejected_one_by_one() -> None:
    raw = orjson.dumps({"seq": 1, "datapoints": [
        {"value": 1, "event_public_id": EV},
        3,
        {"value": "abc", "event_public_id": "x"},
        {"value": 2},
        {"value": True, "event_public_id": EV},
        {"value": 4, "event_public_id": EV, "timestamp": "2026-02-10T20:44:08"},
    ]}).decode()
    frame = parse_telemetry(raw, 10)
    assert isinstance(frame, TelemetryFrame)
    assert frame.readings == [NewReading(0, 1.0, EV, None)]
    assert [(r.index, r.event_public_id) for r in frame.rejected] == [
        (1, None), (2, "x"), (3, None), (4, EV), (5, EV),
    ]
    assert frame.rejected[0].detail == ITEM_INVALID
    assert frame.rejected[1].detail == VALUE_INVALID


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not json", FrameError(None, False, MALFORMED)),
        ("", FrameError(None, False, MALFORMED)),
        ('{"datapoints": [{"value": NaN, "event_public_id": "x"}]}', FrameError(None, False, MALFORMED)),
        ('{"seq": 3, "datapoints": [', FrameError(None, False, MALFORMED)),
        ('{"datapoints": [], "x": "\\ud800"}', FrameError(None, False, MALFORMED)),
        (b'{"seq": 1, "datapoints": []}', FrameError(None, False, MALFORMED)),
        ("[]", FrameError(None, False, NOT_OBJECT)),
        ('"text"', FrameError(None, False, NOT_OBJECT)),
        ("42", FrameError(None, False, NOT_OBJECT)),
        ("null", FrameError(None, False, NOT_OBJECT)),
        ('{"seq": "1", "datapoints": []}', FrameError(None, True, BAD_SEQ)),
        ('{"seq": 1.5, "datapoints": []}', FrameError(None, True, BAD_SEQ)),
        ('{"seq": 1.0, "datapoints": []}', FrameError(None, True, BAD_SEQ)),
        ('{"seq": true, "datapoints": []}', FrameError(None, True, BAD_SEQ)),
        ('{"seq": [1], "datapoints": []}', FrameError(None, True, BAD_SEQ)),
        ('{"seq": 5}', FrameError(5, True, BAD_DATAPOINTS)),
        ('{"seq": 5, "datapoints": {}}', FrameError(5, True, BAD_DATAPOINTS)),
        ('{"datapoints": "x"}', FrameError(None, False, BAD_DATAPOINTS)),
        ('{"datapoints": null}', FrameError(None, False, BAD_DATAPOINTS)),
        ("{}", FrameError(None, False, BAD_DATAPOINTS)),
    ],
)
def test_unusable_frames(raw: str | bytes, expected: FrameError) -> None:
    assert parse_telemetry(raw, 10) == expected


def test_batch_too_large_names_the_limit() -> None:
    items = [{"value": i, "event_public_id": EV} for i in range(4)]
    assert parse_telemetry(orjson.dumps({"seq": 9, "datapoints": items}).decode(), 3) == FrameError(
        9, True, "Batch too large: 4 datapoints (limit 3)."
    )
    frame = parse_telemetry(orjson.dumps({"seq": 9, "datapoints": items[:3]}).decode(), 3)
    assert isinstance(frame, TelemetryFrame)
    assert len(frame.readings) == 3


def test_overflowing_number_rejects_only_that_item() -> None:
    raw = (
        '{"seq": 1, "datapoints": [{"value": 1e400, "event_public_id": "%s"}, '
        '{"value": 2, "event_public_id": "%s"}]}'
    )
    frame = parse_telemetry(raw % (EV, EV), 10)
    assert isinstance(frame, TelemetryFrame)
    assert frame.readings == [NewReading(1, 2.0, EV, None)]
    assert [r.index for r in frame.rejected] == [0]


def test_ack_and_error_encoding() -> None:
    assert orjson.loads(ack(42, 1, [])) == {"type": "ack", "seq": 42, "accepted": 1, "rejected": []}
    rejected = [Rejection(3, "x", "Event not found.", input="x")]
    assert orjson.loads(ack(1, 0, rejected)) == {
        "type": "ack", "seq": 1, "accepted": 0,
        "rejected": [{"index": 3, "event_public_id": "x", "detail": "Event not found."}],
    }
    assert orjson.loads(error(None, MALFORMED)) == {"type": "error", "seq": None, "detail": MALFORMED}
    assert orjson.loads(error(7, BAD_DATAPOINTS)) == {"type": "error", "seq": 7, "detail": BAD_DATAPOINTS}


def test_stream_control_frames() -> None:
    assert orjson.loads(CONNECTED) == {"type": "connected", "message": "Subscribed to live datapoint stream."}
    assert orjson.loads(PONG) == {"type": "pong"}
    assert is_ping('{"type": "ping"}')
    assert is_ping(b'{"type":"ping"}')
    for raw in ('{"type": "pong"}', "ping", "[]", '"ping"', "{", '{"type": ["ping"]}'):
        assert not is_ping(raw)
