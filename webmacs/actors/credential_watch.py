"""Open WebSockets whose credential stops being good enough are closed with 1008 (contract §5.1).

A socket is authenticated once, at its handshake. Afterwards its token may be revoked, expire,
or its owner may be deleted or demoted, here, on another instance or from the CLI. So:

- :class:`SocketRegistry` (sans-IO) knows each open socket's credential and what it needs;
- the instance that makes a change closes its own sockets at once (the routes call it);
- :func:`run_credential_watcher` covers every other writer (another instance, the CLI) without
  any message: while sockets are open, it reads what their credentials depend on every
  ``interval`` (0.5 s) and closes those that no longer qualify: for API tokens the token and its
  owner (one query), for login tokens the owner's role and password-change time and whether the
  token was logged out (one transaction).
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
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.records import LoginState, OpenSocketCredential
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
    """An open socket's credential: who, which token, what it had and what it needs."""

    owner: str  # the user's public id
    api_token: str | None  # the API token's public id, None for a login token
    role: Role  # the credential's role at the handshake
    needs: Role  # what this endpoint requires
    jti: str | None = None  # a login token's id (a logout revokes it)
    issued_at: datetime | None = None  # a login token's issue time (a password change)


@attrs.frozen
class _Registered:
    socket: OpenSocket
    close: Callable[[str], None]  # asks the socket to close with 1008 and this reason


class SocketRegistry:
    """Sans-IO: the open sockets by credential, and which of them to close after a change."""

    def __init__(self) -> None:
        self._open: dict[int, _Registered] = {}
        self._keys = itertools.count()

    def add(self, socket: OpenSocket, close: Callable[[str], None]) -> int:
        key = next(self._keys)
        self._open[key] = _Registered(socket, close)
        return key

    def remove(self, key: int) -> None:
        self._open.pop(key, None)

    def __len__(self) -> int:
        return len(self._open)

    def api_tokens(self) -> set[str]:
        return {r.socket.api_token for r in self._open.values() if r.socket.api_token is not None}

    def logins(self) -> tuple[set[str], set[str]]:
        """The owners and token ids of the sockets opened with login tokens."""
        sockets = [r.socket for r in self._open.values() if r.socket.api_token is None]
        return {s.owner for s in sockets}, {s.jti for s in sockets if s.jti is not None}

    def _close_where(self, reason: Callable[[OpenSocket], str | None]) -> int:
        doomed = [(k, why) for k, r in self._open.items() if (why := reason(r.socket)) is not None]
        for key, why in doomed:
            self._open.pop(key).close(why)
        return len(doomed)

    def _close(self, reason: str, which: Callable[[OpenSocket], bool]) -> int:
        return self._close_where(lambda s: reason if which(s) else None)

    def token_revoked(self, public_id: str) -> int:
        return self._close(TOKEN_REVOKED, lambda s: s.api_token == public_id)

    def login_revoked(self, jti: str) -> int:
        """A login token was logged out: the sockets it opened close."""
        return self._close(TOKEN_REVOKED, lambda s: s.api_token is None and s.jti == jti)

    def user_deleted(self, owner: str) -> int:
        return self._close(USER_GONE, lambda s: s.owner == owner)

    def user_role_is(self, owner: str, role: Role) -> int:
        """The owner's role is now ``role``: close its sockets that need more."""
        return self._close(ROLE_TOO_LOW, lambda s: s.owner == owner and min(s.role, role) < s.needs)

    def judge(
        self, asked: Collection[str], found: dict[str, OpenSocketCredential], now: datetime
    ) -> int:
        """Of the API-token sockets whose tokens were ``asked`` about, close those whose token
        is gone or expired, or whose effective role (token's and owner's, the lower) is below
        what the socket needs. (A socket opened while the lookup ran waits for the next one:
        its token is not missing, only not asked about.)"""

        def reason(s: OpenSocket) -> str | None:
            if s.api_token is None or s.api_token not in asked:
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

        return self._close_where(reason)

    def judge_logins(self, asked: Collection[str], state: LoginState) -> int:
        """Of the login-token sockets whose owners were ``asked`` about, close those whose
        owner is gone or now below what the socket needs, whose token was logged out, or that a
        password change revoked."""

        def reason(s: OpenSocket) -> str | None:
            if s.api_token is not None or s.owner not in asked:
                return None
            owner = state.owners.get(s.owner)
            if owner is None:
                return USER_GONE
            role, valid_after = owner
            if s.jti is not None and s.jti in state.revoked:
                return TOKEN_REVOKED
            if valid_after is not None and s.issued_at is not None and s.issued_at < valid_after:
                return TOKEN_REVOKED
            if role < s.needs:
                return ROLE_TOO_LOW
            return None

        return self._close_where(reason)


async def run_closable(
    registry: SocketRegistry, credential: OpenSocket,
    session: Callable[[], Awaitable[object]], close: Callable[[int, str], Awaitable[None]],
) -> None:
    """Run a socket's ``session`` registered under its credential; if the registry closes it,
    the session is cancelled and the socket closed with 1008 and the reason."""
    reasons: list[str] = []
    with trio.CancelScope() as scope:

        def stop(reason: str) -> None:
            reasons.append(reason)
            scope.cancel()

        key = registry.add(credential, stop)
        try:
            await session()
        finally:
            registry.remove(key)
    if reasons:
        log.info("closing a socket of user %s: %s", credential.owner, reasons[0])
        await close(POLICY_VIOLATION, reasons[0])


async def run_credential_watcher(
    registry: SocketRegistry,
    lookup: Callable[[Collection[str]], Awaitable[dict[str, OpenSocketCredential]]],
    login_lookup: Callable[[Collection[str], Collection[str]], Awaitable[LoginState]],
    interval: float = WATCH_INTERVAL_S,
) -> None:
    """Every ``interval``, while sockets are open: a lookup per kind of credential in use (API
    tokens, login tokens), then close the unfit. Nothing is read while no socket is open. While
    the database is unavailable nothing is judged (and nothing crashes: a crash per interval
    would exhaust the supervisor's restarts and mark the server unhealthy for good)."""
    unavailable = False
    while True:
        await trio.sleep(interval)
        try:
            ids = registry.api_tokens()
            if ids:
                closed = registry.judge(ids, await lookup(ids), utcnow())
                if closed:
                    log.info("closed %d socket(s) whose API token no longer qualifies", closed)
            owners, jtis = registry.logins()
            if owners:
                closed = registry.judge_logins(owners, await login_lookup(owners, jtis))
                if closed:
                    log.info("closed %d socket(s) whose login no longer qualifies", closed)
        except DatabaseUnavailable:
            if not unavailable:
                log.warning("database unavailable: open sockets' credentials are checked again "
                            "once it is back")
            unavailable = True
            continue
        if unavailable:
            log.info("database back: checking open sockets' credentials again")
            unavailable = False


async def run_usage_flusher(
    batch: UsageBatch,
    write: Callable[[dict[str, datetime]], Awaitable[None]],
    interval: float = USAGE_FLUSH_INTERVAL_S,
) -> None:
    """Every ``interval``, write the tokens' latest uses (one statement); once more at the end.
    What the database was unavailable for is kept and written with the next batch."""
    try:
        while True:
            await trio.sleep(interval)
            pending = batch.take()
            if pending:
                try:
                    await write(pending)
                except DatabaseUnavailable:
                    batch.restore(pending)
    finally:
        pending = batch.take()
        if pending:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                try:
                    await write(pending)
                except DatabaseUnavailable:
                    log.warning("database unavailable: the last uses of %d API token(s) "
                                "were not recorded", len(pending))
