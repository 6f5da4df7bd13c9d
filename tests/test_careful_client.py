"""The careful client's bookkeeping (sans-IO): window, resend with the same seq, audit."""

from __future__ import annotations

import orjson
import pytest
from careful_client import Backoff, Ledger, audit, frame_values


def ack(seq: int, accepted: int = 2) -> bytes:
    return orjson.dumps({"type": "ack", "seq": seq, "accepted": accepted, "rejected": []})


def error(seq: int | None, detail: str = "Database unavailable.") -> bytes:
    return orjson.dumps({"type": "error", "seq": seq, "detail": detail})


def test_keeps_at_most_window_frames_unacked() -> None:
    ledger = Ledger(frames=10, per_frame=2, window=3)
    assert ledger.take_due(0.0) == [0, 1, 2]
    assert ledger.take_due(0.0) == []
    ledger.on_reply(ack(1), 0.0)
    assert ledger.take_due(0.0) == [3]
    assert ledger.acked == {1: 2}
    assert set(ledger.unacked) == {0, 2, 3}


def test_after_a_disconnect_every_unacked_frame_goes_again_with_its_seq_before_new_ones() -> None:
    ledger = Ledger(frames=10, per_frame=2, window=3)
    ledger.take_due(0.0)
    ledger.on_reply(ack(0), 0.0)
    ledger.on_disconnect(1.0)
    assert ledger.take_due(1.0) == [1, 2, 3]
    assert ledger.resends == 2
    assert ledger.sends == 6


def test_an_error_frame_makes_that_frame_due_again_later() -> None:
    ledger = Ledger(frames=2, per_frame=1, window=2, retry_after=0.5)
    ledger.take_due(0.0)
    ledger.on_reply(error(0), 1.0)
    assert ledger.take_due(1.2) == []
    assert ledger.next_wakeup() == 1.5
    assert ledger.take_due(1.5) == [0]
    assert ledger.errors == ["Database unavailable."]


def test_pace_spaces_new_frames() -> None:
    ledger = Ledger(frames=5, per_frame=1, window=5, pace=0.1)
    assert ledger.take_due(0.0) == [0]
    assert ledger.take_due(0.05) == []
    assert ledger.next_wakeup() == pytest.approx(0.1)
    assert ledger.take_due(0.1) == [1]


def test_a_deaf_ledger_drops_replies_and_a_stray_error_is_a_failure() -> None:
    ledger = Ledger(frames=2, per_frame=1, window=2)
    ledger.take_due(0.0)
    ledger.deaf = True
    ledger.on_reply(ack(0), 0.0)
    assert ledger.acked == {} and ledger.dropped_replies == 1
    ledger.deaf = False
    with pytest.raises(AssertionError):
        ledger.on_reply(error(None, "Malformed JSON frame."), 0.0)


def test_done_once_every_frame_is_acked() -> None:
    ledger = Ledger(frames=2, per_frame=1, window=2)
    ledger.take_due(0.0)
    ledger.on_reply(ack(1, 1), 0.0)
    assert not ledger.done
    ledger.on_reply(ack(0, 1), 0.0)
    assert ledger.done
    ledger.on_reply(ack(0, 1), 0.0)
    assert ledger.stray_acks == 1


def test_audit_counts_duplicates_missing_and_invented_readings() -> None:
    ledger = Ledger(frames=3, per_frame=2, window=3)
    ledger.take_due(0.0)
    ledger.on_reply(ack(0), 0.0)
    ledger.on_reply(ack(1), 0.0)
    f0, f1, f2 = (frame_values(seq, 2) for seq in range(3))
    stored = [*f0, *f0, f1[0], f2[0], 999_999.0]
    result = audit(ledger, stored)
    assert (result.frames_sent, result.frames_acked) == (3, 2)
    assert (result.readings_sent, result.readings_acked, result.rows_stored) == (6, 4, 7)
    assert result.duplicates == 2
    assert result.missing_acked == 1  # f1[1]
    assert result.never_sent == 1


def test_values_are_unique_across_frames() -> None:
    values = [v for seq in range(50) for v in frame_values(seq, 1000)]
    assert len(set(values)) == len(values)
    with pytest.raises(ValueError):
        Ledger(frames=1, per_frame=1001)


def test_backoff_doubles_to_a_cap_and_resets() -> None:
    backoff = Backoff(first=0.05, cap=0.2)
    assert [backoff.delay() for _ in range(5)] == [0.0, 0.05, 0.1, 0.2, 0.2]
    backoff.reset()
    assert backoff.delay() == 0.0
