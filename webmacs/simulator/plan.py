"""Sans-IO plan of a simulation: which events each controller feeds, and when it samples them."""

from __future__ import annotations

import math
import re

import attrs

from webmacs.simulator.signals import Shape, Signal

EventType = str  # one of the contract's EventType values (§4.2)


@attrs.frozen
class EventSpec:
    """An event as ``POST /api/v1/events`` creates it, and the signal the simulator feeds it."""

    name: str
    unit: str
    type: EventType
    signal: Signal

    def create_body(self) -> dict[str, object]:
        return {"name": self.name, "min_value": self.signal.lo, "max_value": self.signal.hi,
                "unit": self.unit, "type": self.type}


# The kinds a controller cycles through: (suffix, unit, event type, shape, lo, hi, period s).
KINDS: tuple[tuple[str, str, EventType, Shape, float, float, float], ...] = (
    ("temperature", "°C", "sensor", "sine", 15.0, 85.0, 60.0),
    ("pressure", "bar", "sensor", "sawtooth", 0.5, 4.0, 20.0),
    ("valve", "open", "actuator", "step", 0.0, 1.0, 10.0),
)


def controller_events(k: int, count: int = len(KINDS), prefix: str = "sim") -> list[EventSpec]:
    """Controller ``k``'s events: ``sim<k>_temperature``, ``sim<k>_pressure``, ``sim<k>_valve``,
    then ``sim<k>_temperature_2`` and so on. Phases differ per controller and event, so the
    dashboard's curves do not lie on top of each other."""
    specs = []
    for i in range(count):
        suffix, unit, type_, shape, lo, hi, period = KINDS[i % len(KINDS)]
        round_ = i // len(KINDS)
        name = f"{prefix}{k}_{suffix}" + (f"_{round_ + 1}" if round_ else "")
        phase = ((k - 1) * 0.13 + i * 0.29) % 1.0
        specs.append(EventSpec(name, unit, type_, Signal(shape, lo, hi, period, phase)))
    return specs


_NOT_ID = re.compile(r"[^A-Za-z0-9._-]+")


def controller_id(prefix: str, k: int) -> str:
    """A ``controller_id`` the server accepts (1–64 of ``A-Z a-z 0-9 . _ -``): stable across runs,
    so commands for its actuators follow the simulator across restarts."""
    return _NOT_ID.sub("-", f"{prefix}-{k}")[-64:].strip("-") or f"sim-{k}"


@attrs.define
class Sampler:
    """Sample instants ``n / rate`` seconds after the start, handed out once each.

    Computed from the sample index, not by adding up sleeps, so a late wake-up produces every
    missed sample (with its own time) instead of drifting or skipping."""

    rate: float
    taken: int = 0

    def __attrs_post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number, not {self.rate}")

    def due(self, elapsed: float, limit: int | None = None) -> list[float]:
        """The instants (seconds since the start) not yet taken, up to ``elapsed``, at most ``limit``."""
        upto = math.floor(elapsed * self.rate + 1e-9) + 1  # the sample at t=0 included
        if limit is not None:
            upto = min(upto, self.taken + limit)
        times = [n / self.rate for n in range(self.taken, upto)]
        self.taken = max(self.taken, upto)
        return times

    def next_at(self) -> float:
        """When the next sample is due (seconds since the start)."""
        return self.taken / self.rate
