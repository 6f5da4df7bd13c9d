"""Fan-out gives way when the event loop falls behind.

Ingest, acks and REST share one event loop with the stream. Under a load the loop cannot carry
(hundreds of subscribers, each sent every reading), every task slows together, and acks took
seconds. :class:`FanoutPacer` watches the loop's lag (how late a 10 ms sleep wakes, fed by the
loop monitor) and, while it is behind, tells the stream to send less and less often: the hub
stops writing frames itself, each subscriber's writer pauses after a send (up to a second), and
a send carries only the newest readings, the older ones dropped and announced by a ``lag``
frame. A dashboard then shows the latest values a few times a second and says what it missed,
while ingest, acks and requests get the time back.
"""

from __future__ import annotations

BUSY_LAG_S = 0.03  # a loop this late (smoothed) is behind: start pacing
MAX_PAUSE_S = 1.0  # the longest pause after a send: at least one frame a second per subscriber
BUSY_FRAME_ITEMS = 100  # while behind, a frame carries the newest this many readings at most
SMOOTHING = 0.2  # weight of a new lag sample (the monitor samples every 10 ms)


class FanoutPacer:
    """Sans-IO: lag samples in, a pause per subscriber send out."""

    def __init__(self) -> None:
        self.lag = 0.0  # smoothed, seconds

    def observe(self, lag: float) -> None:
        self.lag += SMOOTHING * (lag - self.lag)

    @property
    def busy(self) -> bool:
        return self.lag > BUSY_LAG_S

    def pause(self) -> float:
        """How long a subscriber's writer waits after a send (0 while the loop keeps up)."""
        return min(MAX_PAUSE_S, 8 * self.lag) if self.busy else 0.0

    def keep(self) -> int | None:
        """How many pending readings a subscriber may send now (None: all, the loop keeps up);
        the older ones are dropped and announced by a ``lag`` frame."""
        return BUSY_FRAME_ITEMS if self.busy else None
