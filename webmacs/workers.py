"""When the workers of ``webmacs serve --workers N`` (re)start, and when to give up: sans-IO.

The process shell (:mod:`webmacs.worker_shell`) spawns, polls and signals processes; every
decision is made here, against a clock the caller passes in, so it is tested without processes.

A worker that exits while the pool is not stopping is restarted. One that ran less than
``min_uptime`` seconds failed *at startup* (bad settings, database down, port taken): its slot
waits ``first_backoff`` doubled on each consecutive early failure (capped at ``max_backoff``),
and after ``max_startup_failures`` in a row the whole pool gives up, so a broken deployment
exits non-zero instead of restarting forever. A worker that had been up for ``min_uptime``
died of something else: its slot's count starts again and it is restarted after
``first_backoff``.
"""

from __future__ import annotations

import attrs


@attrs.define
class _Slot:
    running_since: float | None = None
    restart_at: float = 0.0
    early_failures: int = 0


@attrs.frozen
class Exited:
    """What :meth:`WorkerPolicy.exited` decided, for the log line."""

    slot: int
    returncode: int
    uptime: float
    early: bool
    restart_in: float | None  # None: not restarted (stopping, or the pool gave up)


class WorkerPolicy:
    def __init__(
        self, workers: int, *, min_uptime: float = 10.0, first_backoff: float = 0.5,
        max_backoff: float = 30.0, max_startup_failures: int = 5,
    ) -> None:
        if workers < 1:
            raise ValueError("at least one worker")
        self.min_uptime = min_uptime
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.max_startup_failures = max_startup_failures
        self._slots = [_Slot() for _ in range(workers)]
        self.stopping = False
        self.gave_up: str | None = None  # why, once the pool gave up

    @property
    def running(self) -> list[int]:
        return [i for i, s in enumerate(self._slots) if s.running_since is not None]

    def due(self, now: float) -> list[int]:
        """The slots to spawn now."""
        if self.stopping or self.gave_up is not None:
            return []
        return [i for i, s in enumerate(self._slots)
                if s.running_since is None and s.restart_at <= now]

    def next_due(self) -> float | None:
        """When the next waiting slot becomes due (None: none is waiting)."""
        if self.stopping or self.gave_up is not None:
            return None
        waiting = [s.restart_at for s in self._slots if s.running_since is None]
        return min(waiting, default=None)

    def started(self, slot: int, now: float) -> None:
        self._slots[slot].running_since = now

    def exited(self, slot: int, returncode: int, now: float) -> Exited:
        s = self._slots[slot]
        uptime = now - (s.running_since if s.running_since is not None else now)
        s.running_since = None
        early = uptime < self.min_uptime
        if self.stopping or self.gave_up is not None:
            return Exited(slot, returncode, uptime, early, None)
        s.early_failures = s.early_failures + 1 if early else 0
        if s.early_failures >= self.max_startup_failures:
            self.gave_up = (f"worker {slot} failed {s.early_failures} times in a row at startup "
                            f"(last exit status {returncode})")
            return Exited(slot, returncode, uptime, early, None)
        delay = min(self.max_backoff, self.first_backoff * 2 ** max(0, s.early_failures - 1))
        s.restart_at = now + delay
        return Exited(slot, returncode, uptime, early, delay)

    def stop(self) -> None:
        """No more (re)starts: the shell signals the running workers and waits for them."""
        self.stopping = True


def refusal(workers: int, storage_backend: str, bus_url: str | None, port: int) -> str | None:
    """Why ``--workers N`` cannot run with these settings (one line), or None.

    Several processes need PostgreSQL (SQLite allows one writing process) and a bus (without
    one, each worker's subscribers would see only that worker's readings); a random port
    (``PORT=0``) would give each worker a different one."""
    if workers == 1:
        return None
    missing = []
    if storage_backend == "sqlite":
        missing.append("PostgreSQL (DATABASE_URL=postgresql://…; SQLite allows one writing process)")
    if bus_url is None:
        missing.append("a bus (WEBMACS_BUS_URL=nats://…) so every worker's subscribers see every "
                       "worker's readings")
    if port == 0:
        missing.append("a fixed PORT (0 would give each worker another port)")
    if not missing:
        return None
    return f"--workers {workers} needs " + " and ".join(missing)
