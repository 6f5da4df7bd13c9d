"""The sans-IO parts of API tokens: the socket registry's decisions, the usage batch, and the
two actors driven by a fake clock (``autojump_clock``): no sockets, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import trio
import trio.testing

from webmacs.actors.credential_watch import (
    ROLE_TOO_LOW,
    TOKEN_EXPIRED,
    TOKEN_REVOKED,
    USER_GONE,
    OpenSocket,
    SocketRegistry,
    run_closable,
    run_credential_watcher,
    run_usage_flusher,
)
from webmacs.api_tokens import UsageBatch, hash_secret, is_api_token, new_secret, scope_allows
from webmacs.roles import Role
from webmacs.storage.database import DatabaseUnavailable
from webmacs.storage.records import LoginState, OpenSocketCredential

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def add(reg: SocketRegistry, closed: list[tuple[str, str]], name: str, owner: str = "u1",
        token: str | None = "t1", role: Role = Role.ADMIN, needs: Role = Role.OPERATOR,
        jti: str | None = None, issued_at: datetime | None = None) -> None:
    reg.add(OpenSocket(owner, token, role, needs, jti, issued_at),
            lambda why: closed.append((name, why)))


def cred(token: str = "t1", role: str = "admin", owner: str = "admin",
         expires: datetime | None = None) -> OpenSocketCredential:
    return OpenSocketCredential(token, role, expires, "u1", owner)


def test_secrets_and_scopes() -> None:
    secret = new_secret()
    assert is_api_token(secret) and len(secret) == 46 and secret != new_secret()
    assert len(hash_secret(secret)) == 64
    assert scope_allows(frozenset(), "users.list_users", "GET")
    assert scope_allows(frozenset({"telemetry"}), "events.get_event_slash", "GET")
    assert scope_allows(frozenset({"telemetry"}), "websockets.controller_telemetry", "GET")
    assert not scope_allows(frozenset({"telemetry"}), "events.create_event", "POST")
    assert not scope_allows(frozenset({"telemetry"}), "websockets.datapoint_stream", "GET")
    assert not scope_allows(frozenset({"telemetry"}), None, "GET")


def test_registry_closes_by_token_owner_and_role() -> None:
    closed: list[tuple[str, str]] = []
    reg = SocketRegistry()
    add(reg, closed, "a")
    add(reg, closed, "b", token="t2")
    add(reg, closed, "stream", token=None, needs=Role.VIEWER)
    assert reg.api_tokens() == {"t1", "t2"}
    assert reg.token_revoked("t1") == 1 and closed == [("a", TOKEN_REVOKED)]
    assert reg.user_role_is("u1", Role.VIEWER) == 1 and closed[-1] == ("b", ROLE_TOO_LOW)
    assert reg.user_role_is("u1", Role.VIEWER) == 0  # the stream needs only viewer
    assert reg.user_deleted("u1") == 1 and closed[-1] == ("stream", USER_GONE) and len(reg) == 0


def test_judge_closes_what_no_longer_qualifies() -> None:
    closed: list[tuple[str, str]] = []
    reg = SocketRegistry()
    for name in ("gone", "expired", "demoted", "viewer", "weak", "fine"):
        add(reg, closed, name, token=name)
    found = {
        "expired": cred("expired", expires=NOW),
        "demoted": cred("demoted", owner="operator"),  # still enough for telemetry
        "viewer": cred("viewer", owner="viewer"),  # the owner became a viewer
        "weak": cred("weak", role="viewer"),
        "fine": cred("fine", expires=NOW + timedelta(days=1)),
    }
    add(reg, closed, "opened meanwhile", token="new")  # not asked about: judged next time
    assert reg.judge({"gone", "expired", "demoted", "viewer", "weak", "fine"}, found, NOW) == 4
    assert sorted(closed) == [("expired", TOKEN_EXPIRED), ("gone", TOKEN_REVOKED), ("viewer", ROLE_TOO_LOW),
                              ("weak", ROLE_TOO_LOW)]
    assert reg.api_tokens() == {"demoted", "fine", "new"}


def test_judge_logins_closes_deleted_demoted_logged_out_and_password_changed() -> None:
    closed: list[tuple[str, str]] = []
    reg = SocketRegistry()
    before, after = NOW - timedelta(minutes=5), NOW + timedelta(minutes=5)
    add(reg, closed, "deleted", owner="gone", token=None, jti="j1", issued_at=NOW)
    add(reg, closed, "demoted", owner="op", token=None, jti="j2", issued_at=NOW)
    add(reg, closed, "viewer stream", owner="op", token=None, needs=Role.VIEWER, jti="j3",
        issued_at=NOW)
    add(reg, closed, "logged out", owner="u1", token=None, jti="out", issued_at=NOW)
    add(reg, closed, "old password", owner="pw", token=None, jti="j4", issued_at=before)
    add(reg, closed, "new password", owner="pw", token=None, jti="j5", issued_at=after)
    add(reg, closed, "api token", owner="gone")  # judged by its token, not here
    assert reg.logins() == ({"gone", "op", "u1", "pw"}, {"j1", "j2", "j3", "out", "j4", "j5"})
    state = LoginState({"op": (Role.VIEWER, None), "u1": (Role.ADMIN, None),
                        "pw": (Role.OPERATOR, NOW)}, frozenset({"out"}))
    add(reg, closed, "opened meanwhile", owner="new", token=None, jti="j6", issued_at=NOW)
    assert reg.judge_logins({"gone", "op", "u1", "pw"}, state) == 4
    assert sorted(closed) == [("deleted", USER_GONE), ("demoted", ROLE_TOO_LOW),
                              ("logged out", TOKEN_REVOKED), ("old password", TOKEN_REVOKED)]
    assert reg.logins() == ({"op", "pw", "new"}, {"j3", "j5", "j6"})
    assert reg.api_tokens() == {"t1"}


async def test_the_watcher_queries_only_while_sockets_are_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reg = SocketRegistry()
    lookups: list[set[str]] = []
    closed: list[str] = []

    async def lookup(ids: Any) -> dict[str, OpenSocketCredential]:
        lookups.append(set(ids))
        return {}

    async def login_lookup(owners: Any, jtis: Any) -> LoginState:
        lookups.append({*owners, *jtis})
        return LoginState({}, frozenset())

    async def session() -> None:
        await trio.sleep_forever()

    async def close(code: int, reason: str) -> None:
        closed.append(f"{code} {reason}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_credential_watcher, reg, lookup, login_lookup, 0.5)
        await trio.sleep(2)
        assert lookups == []  # nothing open, nothing read
        start = trio.current_time()
        await run_closable(reg, OpenSocket("u1", "t1", Role.ADMIN, Role.OPERATOR), session, close)
        assert trio.current_time() - start <= 0.5  # closed at the watcher's next look
        assert closed == [f"1008 {TOKEN_REVOKED}"] and lookups == [{"t1"}] and len(reg) == 0
        # A login-token socket whose user is gone (deleted on another instance, or by the CLI).
        await run_closable(reg, OpenSocket("u2", None, Role.ADMIN, Role.VIEWER, "j1", NOW),
                           session, close)
        assert closed[-1] == f"1008 {USER_GONE}" and lookups[-1] == {"u2", "j1"}
        await trio.sleep(2)
        assert len(lookups) == 2  # closed: nothing read any more
        nursery.cancel_scope.cancel()


async def test_the_watcher_rides_out_a_database_outage(autojump_clock: trio.testing.MockClock) -> None:
    """While the database is unavailable nothing is judged and the watcher does not crash (a
    crash every 0.5 s would exhaust its supervisor's restarts: /health 503 for good); once the
    database is back, what no longer qualifies is closed."""
    reg = SocketRegistry()
    closed: list[tuple[str, str]] = []
    add(reg, closed, "ctl", token="t1")
    add(reg, closed, "page", token=None, jti="j1", issued_at=NOW)
    down_until = trio.current_time() + 5

    def check() -> None:
        if trio.current_time() < down_until:
            raise DatabaseUnavailable("down")

    async def lookup(ids: Any) -> dict[str, OpenSocketCredential]:
        check()
        return {}  # the token was revoked meanwhile

    async def login_lookup(owners: Any, jtis: Any) -> LoginState:
        check()
        return LoginState({}, frozenset())  # and the user deleted

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_credential_watcher, reg, lookup, login_lookup, 0.5)
        await trio.sleep(4.9)
        assert closed == [] and len(reg) == 2
        await trio.sleep(0.6)
        assert sorted(closed) == [("ctl", TOKEN_REVOKED), ("page", USER_GONE)]
        nursery.cancel_scope.cancel()


async def test_uses_the_database_missed_are_written_with_the_next_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    batch = UsageBatch()
    writes: list[dict[str, datetime]] = []

    async def write(used: dict[str, datetime]) -> None:
        if not writes:
            writes.append({})  # the first attempt: the database is down
            raise DatabaseUnavailable("down")
        writes.append(used)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_usage_flusher, batch, write, 5.0)
        batch.record("t1", NOW)
        batch.record("t2", NOW)
        await trio.sleep(5.5)  # the failed write
        batch.record("t1", NOW + timedelta(seconds=1))  # newer than the one kept
        await trio.sleep(5)
        assert writes == [{}, {"t1": NOW + timedelta(seconds=1), "t2": NOW}]
        nursery.cancel_scope.cancel()


async def test_usage_is_written_at_most_once_per_interval(autojump_clock: trio.testing.MockClock) -> None:
    batch = UsageBatch()
    writes: list[dict[str, datetime]] = []

    async def write(used: dict[str, datetime]) -> None:
        writes.append(used)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_usage_flusher, batch, write, 5.0)
        for i in range(1000):  # 1000 requests over 20 s
            batch.record("t1" if i % 2 else "t2", NOW + timedelta(milliseconds=i))
            await trio.sleep(0.02)
        await trio.sleep(5)
        assert 4 <= len(writes) <= 5  # one per interval, never one per request
        assert writes[-1]["t1"] == NOW + timedelta(milliseconds=999)
        batch.record("t1", NOW + timedelta(days=1))
        nursery.cancel_scope.cancel()
    assert writes[-1] == {"t1": NOW + timedelta(days=1)}  # flushed at the end
