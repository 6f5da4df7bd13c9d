"""API tokens as plain values (no I/O): the secret, its hash, what a scope allows, and the
batch of "last used" times written every few seconds instead of once per request.

A secret is ``wm_`` + 32 random bytes (43 URL-safe characters). Only its SHA-256 is stored: a
256-bit random secret cannot be guessed or brute-forced from its hash, so a slow password hash
(bcrypt) would only cost time on every request without adding safety. A hash also makes the
lookup one indexed equality, with no per-user salt to find first.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from webmacs.roles import TELEMETRY_SCOPE

PREFIX = "wm_"
SECRET_BYTES = 32

# What a ``telemetry``-scoped credential may reach (endpoint names, without the ``_slash``
# twins): send telemetry and receive commands on its WebSocket, read events.
TELEMETRY_ENDPOINTS = frozenset({
    ("websockets.controller_telemetry", "GET"),
    ("events.list_events", "GET"),
    ("events.get_event", "GET"),
})
SCOPE_REFUSED = "Token scope does not allow this."


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def is_api_token(token: str) -> bool:
    """Whether ``token`` is meant as an API token (a JWT never starts with ``wm_``)."""
    return token.startswith(PREFIX)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def scope_allows(scopes: frozenset[str], endpoint: str | None, method: str) -> bool:
    """Whether a credential with ``scopes`` (empty: unrestricted) may call ``endpoint``."""
    if not scopes:
        return True
    if endpoint is None:
        return False
    endpoint = endpoint.removesuffix("_slash")
    return TELEMETRY_SCOPE in scopes and (endpoint, method.upper()) in TELEMETRY_ENDPOINTS


def parse_scopes(text: str) -> frozenset[str]:
    """Scopes as stored: space-separated, '' for unrestricted."""
    return frozenset(text.split())


def format_scopes(scopes: frozenset[str]) -> str:
    return " ".join(sorted(scopes))


_DURATION = re.compile(r"([1-9][0-9]{0,4})([hdw])")
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_lifetime(text: str, now: datetime,
                   parse_timestamp: Callable[[str], datetime | None]) -> datetime | None:
    """``30d``/``12h``/``2w`` from ``now``, or an ISO 8601 timestamp with an offset; None if
    neither (the CLI's ``--expires``)."""
    match = _DURATION.fullmatch(text.strip())
    if match is not None:
        return now + int(match.group(1)) * _UNIT[match.group(2)]
    return parse_timestamp(text)


class UsageBatch:
    """Sans-IO: the latest use of each token since the last flush.

    Every authentication records here (a dict write); an actor takes the batch every few seconds
    and writes it in one statement, so a busy controller costs no write per request."""

    def __init__(self) -> None:
        self._pending: dict[str, datetime] = {}

    def record(self, public_id: str, when: datetime) -> None:
        last = self._pending.get(public_id)
        if last is None or when > last:
            self._pending[public_id] = when

    def take(self) -> dict[str, datetime]:
        """What to write now; the batch starts empty again."""
        pending, self._pending = self._pending, {}
        return pending

    def restore(self, taken: dict[str, datetime]) -> None:
        """Put back what could not be written (newer uses recorded meanwhile win)."""
        for public_id, when in taken.items():
            self.record(public_id, when)

    def __len__(self) -> int:
        return len(self._pending)
