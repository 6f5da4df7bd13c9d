"""A small supervisor: runs named child actors in a nursery with a restart policy.

*Permanent* children are restarted with exponential backoff after a crash, up to
``max_restarts`` within ``window`` seconds, after which the failure escalates (the supervisor
itself raises). *Temporary* children are never restarted: their crash is logged and ends only
themselves. Every crash is logged with the actor's name.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

import attrs
import trio

log = logging.getLogger(__name__)

ActorFn = Callable[..., Awaitable[Any]]


class Restart(Enum):
    PERMANENT = "permanent"
    TEMPORARY = "temporary"


class Escalation(Exception):
    """A permanent child crashed more often than its policy allows."""


@attrs.frozen
class RestartPolicy:
    max_restarts: int = 5
    window: float = 60.0
    initial_backoff: float = 0.1
    max_backoff: float = 5.0


class RestartTracker:
    """Sans-IO bookkeeping of a child's crashes: whether to restart and after what delay."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._crashes: deque[float] = deque()

    def crashed(self, now: float) -> float | None:
        """Record a crash at ``now``; the backoff before restarting, or None to escalate."""
        self._crashes.append(now)
        while self._crashes and self._crashes[0] <= now - self.policy.window:
            self._crashes.popleft()
        n = len(self._crashes)
        if n > self.policy.max_restarts:
            return None
        return float(min(self.policy.initial_backoff * 2 ** (n - 1), self.policy.max_backoff))


    def over_limit(self, now: float) -> bool:
        """More crashes than allowed within the window that ends ``now`` (heals with time)."""
        recent = sum(1 for t in self._crashes if t > now - self.policy.window)
        return recent > self.policy.max_restarts


class Supervisor:
    """Owns a nursery; ``start`` launches a child under a policy. Use via :func:`open_supervisor`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        name: str = "root",
        on_escalation: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self._nursery = nursery
        self.name = name
        # The root of the tree must never take the server down: it reports the escalation
        # (health turns "degraded") and keeps retrying at the longest backoff instead.
        self._on_escalation = on_escalation
        self._trackers: dict[str, RestartTracker] = {}
        self._last_error: dict[str, str] = {}

    @property
    def escalated(self) -> dict[str, str]:
        """Children currently past their restart limit, with their last error."""
        now = trio.current_time()
        return {name: self._last_error[name] for name, tracker in self._trackers.items()
                if tracker.over_limit(now)}

    @property
    def cancel_scope(self) -> trio.CancelScope:
        return self._nursery.cancel_scope

    def start_temporary(self, name: str, fn: ActorFn, *args: Any) -> None:
        self._nursery.start_soon(self._run_temporary, name, fn, *args, name=name)

    def start_permanent(
        self, name: str, fn: ActorFn, *args: Any, policy: RestartPolicy | None = None
    ) -> None:
        self._nursery.start_soon(
            self._run_permanent, name, fn, args, policy or RestartPolicy(), name=name
        )

    async def _run_temporary(self, name: str, fn: ActorFn, *args: Any) -> None:
        try:
            await fn(*args)
        except Exception:
            log.exception("actor %s crashed (temporary: not restarted)", name)

    async def _run_permanent(
        self, name: str, fn: ActorFn, args: tuple[Any, ...], policy: RestartPolicy
    ) -> None:
        tracker = self._trackers[name] = RestartTracker(policy)
        while True:
            try:
                await fn(*args)
                return  # a clean return ends the child
            except Exception as exc:
                self._last_error[name] = repr(exc)
                delay = tracker.crashed(trio.current_time())
                if delay is None:
                    log.error("actor %s crashed too often; escalating", name, exc_info=exc)
                    if self._on_escalation is None:
                        raise Escalation(f"actor {name} exceeded its restart limit") from exc
                    self._on_escalation(name, exc)
                    delay = policy.max_backoff
                else:
                    log.exception("actor %s crashed; restarting in %.2fs", name, delay)
                await trio.sleep(delay)
