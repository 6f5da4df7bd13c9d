"""Login throttling: failures counted per account and per client address, locks with backoff.

Sans-IO: no sockets, no database, and the clock is injected, so every edge (window, backoff,
eviction, concurrent attempts) is unit-tested with a fake clock. The login route only asks
:meth:`LoginThrottle.begin` before it looks the user up and reports the outcome afterwards.

Why attempts are *reserved* before the password check: bcrypt takes a noticeable time, so an
attacker firing 50 guesses at once would otherwise have all of them checked before the first
failure is recorded. A pending attempt counts against the threshold, so at most ``threshold``
guesses for one key are ever in flight or failed within the window. An attempt beyond that is
told :class:`Busy`, not refused: the route waits for the attempts in flight to settle and asks
again. If they failed, the key is locked and the waiter gets its 429; if they succeeded, it
goes ahead. So legitimate concurrent logins (eight dashboards opening at once) are queued, never
refused, and only failures lead to 429 (contract §8).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable

import attrs

TOO_MANY_LOGINS = "Too many failed logins; try again later."


@attrs.frozen
class ThrottlePolicy:
    """``account_failures`` failures of one email (or ``address_failures`` from one client
    address) within ``window`` seconds lock it for ``lockout`` seconds; each further lock while
    the failures are still remembered doubles, up to ``max_lockout``."""

    account_failures: int = 5
    address_failures: int = 20
    window: float = 900.0
    lockout: float = 30.0
    max_lockout: float = 900.0
    max_entries: int = 10_000


@attrs.define
class _Record:
    """One key's recent failures (at most ``threshold`` kept: only "are there that many" matters)."""

    failures: deque[float]
    strikes: int = 0
    locked_until: float = 0.0
    pending: int = 0

    def last_seen(self) -> float:
        return self.failures[-1] if self.failures else -math.inf


class FailureTable:
    """Failures per key (an email or an address), bounded to ``max_entries`` keys.

    Entries are kept in order of their last failure. A record is forgotten once it has been quiet
    for a whole window and its lock is over; when the table is full the oldest record goes first,
    so a spray of random keys cannot grow memory without bound.
    """

    def __init__(self, threshold: int, policy: ThrottlePolicy) -> None:
        self.threshold = threshold
        self.policy = policy
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def _expired(self, record: _Record, now: float) -> bool:
        return (record.pending == 0 and now >= record.locked_until
                and now - record.last_seen() >= self.policy.window)

    def _live(self, key: str, now: float) -> _Record | None:
        record = self._records.get(key)
        if record is not None and self._expired(record, now):
            del self._records[key]
            return None
        return record

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until ``key``'s lock ends, or None if it is not locked."""
        record = self._live(key, now)
        if record is None or record.locked_until <= now:
            return None
        return record.locked_until - now

    def saturated(self, key: str, now: float) -> bool:
        """The attempts still being checked would reach the limit if they failed: a further
        attempt waits for them. (After a lock, this lets one attempt at a time through.)"""
        record = self._live(key, now)
        if record is None or not record.pending:
            return False
        recent = sum(1 for t in record.failures if now - t < self.policy.window)
        return recent + record.pending >= self.threshold

    def reserve(self, key: str, now: float) -> None:
        record = self._live(key, now) or self._add(key, now)
        record.pending += 1

    def release(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None and record.pending > 0:
            record.pending -= 1

    def fail(self, key: str, now: float) -> None:
        """Release a reservation as a failure; the ``threshold``-th within the window locks."""
        self.release(key)
        record = self._records.get(key) or self._add(key, now)  # evicted meanwhile: start afresh
        while record.failures and now - record.failures[0] >= self.policy.window:
            record.failures.popleft()
        record.failures.append(now)
        self._records.move_to_end(key)
        if len(record.failures) >= self.threshold:
            record.strikes += 1
            backoff = self.policy.lockout * 2.0 ** min(record.strikes - 1, 32)
            record.locked_until = max(record.locked_until, now + min(self.policy.max_lockout, backoff))

    def clear(self, key: str) -> None:
        self._records.pop(key, None)

    def _add(self, key: str, now: float) -> _Record:
        self._make_room(now)
        record = self._records[key] = _Record(deque(maxlen=self.threshold))
        return record

    def _make_room(self, now: float) -> None:
        while self._records:
            oldest = next(iter(self._records.values()))
            if not self._expired(oldest, now):
                break
            self._records.popitem(last=False)
        while len(self._records) >= self.policy.max_entries:
            self._records.popitem(last=False)


@attrs.define
class Attempt:
    """A login allowed to check its password. Report it once with ``succeeded`` or ``failed``;
    ``abandoned`` (safe to call always, e.g. in a ``finally``) frees it if neither happened."""

    account: str
    address: str
    settled: bool = False


@attrs.frozen
class Refused:
    """A throttled login: answer 429 with ``Retry-After: retry_after`` and check nothing."""

    retry_after: int


@attrs.frozen
class Busy:
    """Not locked, but enough attempts for this account or address are being checked that this
    one could pass the limit: wait until one of them settles, then ask again."""


class LoginThrottle:
    """Per-account and per-address throttling of password logins.

    A success clears the account's failures (the address keeps its own: otherwise an attacker
    holding one valid account could reset their address between guesses).
    """

    def __init__(self, policy: ThrottlePolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self.clock = clock
        self.accounts = FailureTable(policy.account_failures, policy)
        self.addresses = FailureTable(policy.address_failures, policy)

    def begin(self, account: str, address: str) -> Attempt | Refused | Busy:
        now = self.clock()
        waits = [w for w in (self.accounts.retry_after(account, now),
                             self.addresses.retry_after(address, now)) if w is not None]
        if waits:
            return Refused(max(1, math.ceil(max(waits))))
        if self.accounts.saturated(account, now) or self.addresses.saturated(address, now):
            return Busy()
        self.accounts.reserve(account, now)
        self.addresses.reserve(address, now)
        return Attempt(account, address)

    def succeeded(self, attempt: Attempt) -> None:
        if not self._settle(attempt):
            return
        self.accounts.clear(attempt.account)
        self.addresses.release(attempt.address)

    def failed(self, attempt: Attempt) -> None:
        if not self._settle(attempt):
            return
        now = self.clock()
        self.accounts.fail(attempt.account, now)
        self.addresses.fail(attempt.address, now)

    def abandoned(self, attempt: Attempt) -> None:
        """Neither outcome (database down, cancelled): free the reservation, count nothing."""
        if not self._settle(attempt):
            return
        self.accounts.release(attempt.account)
        self.addresses.release(attempt.address)

    @staticmethod
    def _settle(attempt: Attempt) -> bool:
        first = not attempt.settled
        attempt.settled = True
        return first
