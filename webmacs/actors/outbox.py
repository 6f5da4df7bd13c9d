"""Sans-IO per-subscriber outbox: bounded, drop-oldest, with lag and stuck bookkeeping.

The hub offers encoded readings without ever waiting; the subscriber's writer takes whatever is
pending as one ``datapoints_batch`` frame per send. When more than ``max_items`` readings are
pending, the oldest are dropped and counted, and a ``lag`` frame precedes the next data frame.
A subscriber with data pending and no completed send for ``stuck_timeout`` seconds is stuck.

The hub may also write a frame itself when the outbox is :attr:`~SubscriberOutbox.idle`
(:meth:`~SubscriberOutbox.written`); a frame the socket took only in part leaves its rest
here (:meth:`~SubscriberOutbox.unfinished`) for the writer to finish before anything else.
Readings this instance never received from the bus (a gap) are reported the same way, in the
same ``lag`` frame, since the subscriber misses them all the same.
"""

from __future__ import annotations

from collections import deque

import orjson

DATA_PREFIX = b'{"type":"datapoints_batch","datapoints":['
DATA_SUFFIX = b"]}"


def batch_payload(encoded: list[bytes]) -> bytes:
    """One ``datapoints_batch`` frame of already-encoded readings."""
    return DATA_PREFIX + b",".join(encoded) + DATA_SUFFIX


class SubscriberOutbox:
    def __init__(
        self, max_items: int = 10_000, max_frame_items: int = 1_000, stuck_timeout: float = 10.0
    ) -> None:
        self.max_items = max_items
        self.max_frame_items = max_frame_items
        self.stuck_timeout = stuck_timeout
        self._items: deque[bytes] = deque()
        self._control: deque[bytes] = deque()
        self.dropped_pending = 0
        self.dropped_total = 0
        self.missed_total = 0
        self.sending = False
        self.last_progress = 0.0
        self.closed = False
        self._rest: bytes = b""

    @property
    def pending(self) -> int:
        return len(self._items) + len(self._control)

    def _became_busy(self, now: float) -> None:
        if not self._items and not self._control and not self.sending:
            self.last_progress = now  # the stuck clock starts when work appears

    @property
    def idle(self) -> bool:
        """Nothing queued (a pending ``lag`` included) and nothing being sent: a frame written
        now keeps the order."""
        return not (self._items or self._control or self.dropped_pending or self.sending
                    or self.closed)

    def written(self, now: float) -> None:
        """The hub wrote a whole frame to the socket itself."""
        self.last_progress = now

    def unfinished(self, rest: bytes, now: float) -> None:
        """The hub started a frame the socket did not take whole: the writer sends ``rest``
        (and nothing may be sent before it)."""
        self.last_progress = now
        self._rest = rest
        self.sending = True

    def take_rest(self) -> bytes:
        """The unsent end of a frame the hub started (empty if none); the writer owns it now."""
        rest, self._rest = self._rest, b""
        return rest

    def offer(self, items: list[bytes], now: float) -> None:
        """Queue encoded readings; never blocks, drops the oldest beyond ``max_items``."""
        if not items or self.closed:
            return
        self._became_busy(now)
        self._items.extend(items)
        overflow = len(self._items) - self.max_items
        if overflow > 0:
            for _ in range(overflow):
                self._items.popleft()
            self.dropped_pending += overflow
            self.dropped_total += overflow

    def missed(self, count: int, now: float) -> None:
        """``count`` readings never reached this instance (a bus gap): the next ``lag`` counts them."""
        if count <= 0 or self.closed:
            return
        self._became_busy(now)
        self.dropped_pending += count
        self.missed_total += count

    def control(self, frame: bytes, now: float) -> None:
        """A small frame (pong, connected) sent before any data; bounded by the reader's pace."""
        self._became_busy(now)
        self._control.append(frame)

    def shed(self, keep: int) -> None:
        """Drop all but the newest ``keep`` pending readings, counted for the next ``lag`` frame
        (the loop is behind: a browser gets the latest values and learns what it missed)."""
        overflow = len(self._items) - keep
        if overflow > 0:
            for _ in range(overflow):
                self._items.popleft()
            self.dropped_pending += overflow
            self.dropped_total += overflow

    def take(self) -> list[bytes]:
        """The frames for the next send(s): control frames, then ``lag``, then one data frame."""
        frames = list(self._control)
        self._control.clear()
        if self.dropped_pending:
            frames.append(orjson.dumps({"type": "lag", "dropped": self.dropped_pending}))
            self.dropped_pending = 0
        if self._items:
            n = min(len(self._items), self.max_frame_items)
            chunk = [self._items.popleft() for _ in range(n)]
            frames.append(batch_payload(chunk))
        self.sending = bool(frames)
        return frames

    def sent(self, now: float) -> None:
        self.sending = False
        self.last_progress = now

    def stuck(self, now: float) -> bool:
        busy = self.sending or bool(self._items) or bool(self._control)
        return busy and now - self.last_progress >= self.stuck_timeout

    def stuck_at(self, now: float) -> float:
        """The earliest time :meth:`stuck` could become true, as things stand at ``now`` (work
        appearing later starts its clock then, so it can only be later)."""
        busy = self.sending or bool(self._items) or bool(self._control)
        return (self.last_progress if busy else now) + self.stuck_timeout
