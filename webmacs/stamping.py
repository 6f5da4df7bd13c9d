"""Sans-IO experiment stamping: which experiment a reading belongs to.

A reading belongs to the experiment whose interval ``[started_on, stopped_on)`` contains its
timestamp, so readings a controller buffered during an outage land in the experiment they were
measured in, however late they arrive.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime
from typing import Generic, TypeVar

import attrs

K = TypeVar("K")


@attrs.frozen
class Interval(Generic[K]):
    key: K
    started_on: datetime
    stopped_on: datetime | None

    def contains(self, ts: datetime) -> bool:
        return self.started_on <= ts and (self.stopped_on is None or ts < self.stopped_on)


class Stamper(Generic[K]):
    """Looks up the experiment of many timestamps against a handful of intervals."""

    def __init__(self, intervals: Sequence[Interval[K]]) -> None:
        self._intervals = sorted(intervals, key=lambda i: i.started_on)
        self._starts = [i.started_on for i in self._intervals]

    def stamp(self, ts: datetime) -> K | None:
        # Intervals never overlap (one running experiment at a time, enforced by the database),
        # so the only candidate is the last one started at or before ``ts``.
        pos = bisect_right(self._starts, ts) - 1
        if pos >= 0 and self._intervals[pos].contains(ts):
            return self._intervals[pos].key
        return None
