"""Open WebSockets whose credential stops being good enough are closed with 1008 (contract §5.1).

A socket is authenticated once, at its handshake. Afterwards its token may be revoked, expire,
or its owner may be deleted or demoted, here, on another instance or from the CLI. So:

- :class:`SocketRegistry` (sans-IO) knows each open socket's credential and what it needs;
- the instance that makes a change closes its own sockets at once (the routes call it);
- :func:`run_credential_watcher` covers every other writer without any message: while sockets
  authenticated by API tokens are open, it reads their tokens and owners in one query every
  ``interval`` (0.5 s) and closes those that no longer qualify. Login-token sockets are closed
  at once by the instance that deletes or demotes their user (a login token lives a day at most).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime

import attrs
import trio

from webmacs.api_tokens import UsageBatch
from webmacs.roles import Role
from webmacs.storage.records import OpenSocketCredential
from webmacs.validation import utcnow

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
WATCH_INTERVAL_S = 0.5
USAGE_FLUSH_INTERVAL_S = 5.0

TOKEN_REVOKED = "Token has been revoked."
TOKEN_EXPIRED = "Token has expired."
USER_GONE = "User not found."
ROLE_TOO_LOW = "Role no longer allows this connection."


@attrs.frozen
class OpenSocket:
    owner: str  # the user's public id
    api_token: str | None  # the API token's public id, None for a login token
    role: Role  # the credential's role at the handshake
    needs: Role  # what this endpoint requires
    close: Callable[[str], None]  # asks the socket to close with 1008 and this reason


class SocketRegistry:
    """Sans-IO: the open sockets by credential, and which of them to close after a change."""

    def __init__(self) -> None:
        self._open: dict[int, OpenSocket] = {}
        self._keys = itertools.count()

    def add(self, socket: OpenSocket) -> int:
        key = next(self._keys)
        self._open[key] = socket
        return key

    def remove(self, key: int) -> None:
        self._open.pop(key, None)

    def __len__(self) -> int:
        return len(self._open)

    def api_tokens(self) -> set[str]:
        return {s.api_token for s in self._open.values() if s.api_token is not None}

    def _close(self, reason: str, which: Callable[[OpenSocket], bool]) -> int:
        doomed = [k for k, s in self._open.items() if which(s)]
        for key in doomed:
            self._open.pop(key).close(reason)
        return len(doomed)

    def token_revoked(self, public_id: str) -> int:
        return self._close(TOKEN_REVOKED, lambda s: s.api_token == public_id)

    def user_deleted(self, owner: str) -> int:
        return self._close(USER_GONE, lambda s: s.owner == owner)

    def user_role_is(self, owner: str, role: Role) -> int:
        """The owner's role is now ``role``: close its sockets that need more."""
        return self._close(ROLE_TOO_LOW, lambda s: s.owner == owner and min(s.role, role) < s.needs)

    def judge(self, found: dict[str, OpenSocketCredential], now: datetime) -> int:
        """Close the API-token sockets whose token is gone or expired, or whose effective role
        (token's and owner's, the lower) is below what the socket needs."""

        def reason(s: OpenSocket) -> str | None:
            if s.api_token is None:
                return None
            cred = found.get(s.api_token)
            if cred is None:
                return TOKEN_REVOKED
            if cred.expires_at is not None and cred.expires_at <= now:
                return TOKEN_EXPIRED
            token_role = Role.parse(cred.role) or Role.VIEWER
            if min(token_role, Role.parse(cred.owner_role) or Role.VIEWER) < s.needs:
                return ROLE_TOO_LOW
            return None

        closed = 0
        for key, s in list(self._open.items()):
            why = reason(s)
            if why is not None:
                del self._open[key]
                s.close(why)
                closed += 1
        return closed


async def run_closable(
    registry: SocketRegistry, owner: str, api_token: str | None, role: Role, needs: Role,
    session: Callable[[], Awaitable[object]], close: Callable[[int, str], Awaitable[None]],
) -> None:
    """Run a socket's ``session`` registered under its credential; if the registry closes it,
    the session is cancelled and the socket closed with 1008 and the reason."""
    reasons: list[str] = []
    with trio.CancelScope() as scope:

        def stop(reason: str) -> None:
            reasons.append(reason)
            scope.cancel()

        key = registry.add(OpenSocket(owner, api_token, role, needs, stop))
        try:
            await session()
        finally:
            registry.remove(key)
    if reasons:
        log.info("closing a socket of user %s: %s", owner, reasons[0])
        await close(POLICY_VIOLATION, reasons[0])


async def run_credential_watcher(
    registry: SocketRegistry,
    lookup: Callable[[Collection[str]], Awaitable[dict[str, OpenSocketCredential]]],
    interval: float = WATCH_INTERVAL_S,
) -> None:
    """Every ``interval``, while API-token sockets are open: one lookup, then close the unfit."""
    while True:
        await trio.sleep(interval)
        ids = registry.api_tokens()
        if ids:
            closed = registry.judge(await lookup(ids), utcnow())
            if closed:
                log.info("closed %d socket(s) whose API token no longer qualifies", closed)


async def run_usage_flusher(
    batch: UsageBatch,
    write: Callable[[dict[str, datetime]], Awaitable[None]],
    interval: float = USAGE_FLUSH_INTERVAL_S,
) -> None:
    """Every ``interval``, write the tokens' latest uses (one statement); once more at the end."""
    try:
        while True:
            await trio.sleep(interval)
            pending = batch.take()
            if pending:
                await write(pending)
    finally:
        pending = batch.take()
        if pending:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await write(pending)
