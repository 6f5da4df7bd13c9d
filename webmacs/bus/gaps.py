"""Sans-IO gap detection: which readings a receiver missed, per publishing instance.

Every batch on the bus carries its publisher's instance id, a per-instance sequence number
(``seq``, one per message) and ``first``, how many readings that instance had published before
this batch. A receiver expecting ``seq`` n that gets n+k lost k messages (NATS restarted, a slow
consumer, a full local buffer); ``first`` minus what it expected says how many readings those
messages held, which is what a subscriber's ``lag`` frame reports. A gap is noticed when the
next batch of that publisher arrives, not before.
"""

from __future__ import annotations


class GapDetector:
    """Per origin, the next expected ``seq`` and reading offset."""

    def __init__(self) -> None:
        self._next: dict[str, tuple[int, int]] = {}
        self.missed_total = 0

    def check(self, origin: str, seq: int, first: int, count: int) -> int | None:
        """Readings missed from ``origin`` just before this batch (0: none). None: the batch
        is older than one already seen (a duplicate); drop it. The first batch seen from an
        origin sets its baseline: what it published before we listened is not a gap."""
        expected = self._next.get(origin)
        if expected is not None and seq < expected[0]:
            return None
        missed = 0 if expected is None else max(0, first - expected[1])
        self._next[origin] = (seq + 1, first + count)
        self.missed_total += missed
        return missed
