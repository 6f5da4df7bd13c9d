"""Sans-IO rules of exactly-once telemetry (contract §8, "Idempotent telemetry").

A controller that connects with ``?controller_id=ID`` names each frame ``(controller_id, seq)``.
The store commits that id in the same transaction as the frame's rows, with the ack the frame
got; a frame whose id is already committed is not stored again and is answered with that first
ack. Everything here is plain data: the SQL lives in :mod:`webmacs.storage.sql.ingest_frames`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import attrs
import orjson

from webmacs.readings import rejection_json
from webmacs.storage.records import DatapointRecord, Rejection

CONTROLLER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
BAD_CONTROLLER_ID = "controller_id must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
SEQ_MIN, SEQ_MAX = -(2**63), 2**63 - 1  # the database column is a signed 64-bit integer
SEQ_OUT_OF_RANGE = "Field 'seq' must be a 64-bit signed integer when a controller_id is given."


def controller_id_error(values: Sequence[str]) -> str | None:
    """Why the ``controller_id`` query values are unusable (None: fine, or not given at all).
    Given twice is refused too: which id would the frames belong to?"""
    if not values:
        return None
    if len(values) > 1:
        return "controller_id must be given once"
    return None if CONTROLLER_ID.fullmatch(values[0]) else BAD_CONTROLLER_ID


class FrameKey(NamedTuple):
    controller_id: str
    seq: int


@attrs.frozen
class FrameTag:
    """A frame's id, and the items rejected while parsing it (part of its first ack)."""

    key: FrameKey
    rejected: tuple[Rejection, ...] = ()


def frame_tag(
    controller_id: str | None, seq: int | None, rejected: Sequence[Rejection]
) -> FrameTag | str | None:
    """The tag of a frame with ``seq`` on a connection with a controller id, None when it has
    no id (at-least-once as before), or the error detail for a ``seq`` the store cannot hold."""
    if controller_id is None or seq is None:
        return None
    if not SEQ_MIN <= seq <= SEQ_MAX:
        return SEQ_OUT_OF_RANGE
    return FrameTag(FrameKey(controller_id, seq), tuple(rejected))


class FrameAck(NamedTuple):
    """The ack a frame got when it was first committed, replayed for its resends."""

    accepted: int
    rejected: tuple[Rejection, ...]

    def rejected_json(self) -> str:
        return orjson.dumps([rejection_json(r) for r in self.rejected]).decode()

    @classmethod
    def from_row(cls, accepted: int, rejected_json: str) -> FrameAck:
        items = orjson.loads(rejected_json)
        return cls(accepted, tuple(
            Rejection(r["index"], r["event_public_id"], r["detail"]) for r in items
        ))


def first_ack(tag: FrameTag, store_rejected: Sequence[Rejection], accepted: int) -> FrameAck:
    """The ack of a frame stored now: its parse-time and store-time rejections, by index."""
    rejected = sorted([*tag.rejected, *store_rejected], key=lambda r: r.index)
    return FrameAck(accepted, tuple(rejected))


StoreOutcome = DatapointRecord | Rejection | FrameAck  # one per row of a batch, in order
FrameSpans = Sequence[tuple[FrameTag | None, int]]  # per job of a batch: its tag, its row count


def job_ranges(spans: FrameSpans) -> Iterator[tuple[FrameTag | None, range]]:
    """Each job's tag and the positions of its rows in the batch."""
    pos = 0
    for tag, n in spans:
        yield tag, range(pos, pos + n)
        pos += n


def claim_order(spans: FrameSpans) -> tuple[list[FrameKey], dict[int, int]]:
    """The distinct keys to claim, sorted (so concurrent transactions lock them in one order and
    cannot deadlock), and for each later job that repeats a key in the same batch, the job that
    claims it (its ack is the first one's, computed in this very transaction)."""
    first: dict[FrameKey, int] = {}
    repeats: dict[int, int] = {}
    for job, (tag, _) in enumerate(spans):
        if tag is None:
            continue
        if tag.key in first:
            repeats[job] = first[tag.key]
        else:
            first[tag.key] = job
    return sorted(first), repeats
