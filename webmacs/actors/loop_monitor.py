"""Event-loop lag: how late a 10 ms sleep wakes up, i.e. how long Trio's thread was stalled
(by CPU work on it, or by the GIL held by a worker thread). Reported by ``/api/v1/metrics``."""

from __future__ import annotations

import time
from collections import deque

import trio

from webmacs.actors.pacing import FanoutPacer


class LoopLag:
    """Sans-IO rolling window of lag samples (seconds)."""

    def __init__(self, window: int = 6000) -> None:
        self.samples: deque[float] = deque(maxlen=window)
        self.max_ever = 0.0

    def add(self, lag: float) -> None:
        self.samples.append(lag)
        self.max_ever = max(self.max_ever, lag)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "max_ever_ms": 0.0}
        ordered = sorted(self.samples)

        def pct(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)

        return {"p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": round(ordered[-1] * 1000, 3),
                "max_ever_ms": round(self.max_ever * 1000, 3)}

    def reset(self) -> None:
        self.samples.clear()
        self.max_ever = 0.0


async def run_loop_monitor(
    lag: LoopLag, interval: float = 0.01, pacer: FanoutPacer | None = None
) -> None:
    while True:
        start = time.perf_counter()
        await trio.sleep(interval)
        late = max(0.0, time.perf_counter() - start - interval)
        lag.add(late)
        if pacer is not None:
            pacer.observe(late)
