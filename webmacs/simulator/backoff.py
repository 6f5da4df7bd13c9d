"""Sans-IO reconnect delays: exponential with jitter, so N controllers cut off together by one
server restart do not all knock again in the same millisecond."""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs


@attrs.define
class Backoff:
    """``delay()`` grows ``first``, ``2*first``, … up to ``cap``, each scaled by a random factor in
    ``[1 - jitter, 1]``; ``reset()`` once a connection works again."""

    first: float = 0.1
    cap: float = 5.0
    jitter: float = 0.5
    uniform: Callable[[float, float], float] = random.uniform
    attempts: int = 0

    def delay(self) -> float:
        base = min(self.cap, self.first * 2.0 ** min(self.attempts, 62))
        self.attempts += 1
        return base * self.uniform(1.0 - self.jitter, 1.0)

    def reset(self) -> None:
        self.attempts = 0
