"""Sans-IO demo signals: pure functions of time, always inside an event's ``[lo, hi]``.

They are functions of time rather than stateful generators so that a reading sent late (after a
reconnect, or when the loop lagged) has the value it would have had at its own timestamp, and a
test can check a shape at any instant without running a clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import attrs

Shape = Literal["sine", "sawtooth", "step"]
SHAPES: tuple[Shape, ...] = ("sine", "sawtooth", "step")


def _clamp(value: float, lo: float, hi: float) -> float:
    """Rounding (``lo + (hi - lo) * x``) can step a hair outside the range: never report that."""
    return min(hi, max(lo, value))


def _fraction(t: float, period: float, phase: float) -> float:
    """Where ``t`` is within its period, in ``[0, 1)``; ``phase`` is a fraction of a period."""
    return (t / period + phase) % 1.0


def sine(t: float, lo: float, hi: float, period: float, phase: float = 0.0) -> float:
    """Starts at the middle of the range, rising (with ``phase`` 0)."""
    mid, amp = (lo + hi) / 2, (hi - lo) / 2
    return _clamp(mid + amp * math.sin(2 * math.pi * _fraction(t, period, phase)), lo, hi)


def sawtooth(t: float, lo: float, hi: float, period: float, phase: float = 0.0) -> float:
    """Ramps from ``lo`` towards ``hi`` over one period, then drops back to ``lo``."""
    return _clamp(lo + (hi - lo) * _fraction(t, period, phase), lo, hi)


def step(t: float, lo: float, hi: float, period: float, phase: float = 0.0) -> float:
    """``lo`` for the first half of each period, ``hi`` for the second (an on/off actuator)."""
    return lo if _fraction(t, period, phase) < 0.5 else hi


SIGNALS: dict[Shape, Callable[[float, float, float, float, float], float]] = {
    "sine": sine, "sawtooth": sawtooth, "step": step,
}


@attrs.frozen
class Signal:
    """One event's waveform: its shape, range, period (seconds) and phase (fraction of a period)."""

    shape: Shape
    lo: float
    hi: float
    period: float
    phase: float = 0.0

    def __attrs_post_init__(self) -> None:
        if not self.lo <= self.hi:
            raise ValueError(f"empty range [{self.lo}, {self.hi}]")
        if not self.period > 0:
            raise ValueError(f"period must be positive, not {self.period}")

    def at(self, t: float) -> float:
        return SIGNALS[self.shape](t, self.lo, self.hi, self.period, self.phase)
