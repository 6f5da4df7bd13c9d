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
from webmacs.storage.records import OpenSocketCredential

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def socket(closed: list[tuple[str, str]], name: str, owner: str = "u1", token: str | None = "t1",
           role: Role = Role.ADMIN, needs: Role = Role.OPERATOR) -> OpenSocket:
    return OpenSocket(owner, token, role, needs, lambda why: closed.append((name, why)))


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
    reg.add(socket(closed, "a"))
    reg.add(socket(closed, "b", token="t2"))
    reg.add(socket(closed, "stream", token=None, needs=Role.VIEWER))
    assert reg.api_tokens() == {"t1", "t2"}
    assert reg.token_revoked("t1") == 1 and closed == [("a", TOKEN_REVOKED)]
    assert reg.user_role_is("u1", Role.VIEWER) == 1 and closed[-1] == ("b", ROLE_TOO_LOW)
    assert reg.user_role_is("u1", Role.VIEWER) == 0  # the stream needs only viewer
    assert reg.user_deleted("u1") == 1 and closed[-1] == ("stream", USER_GONE) and len(reg) == 0


def test_judge_closes_what_no_longer_qualifies() -> None:
    closed: list[tuple[str, str]] = []
    reg = SocketRegistry()
    for name in ("gone", "expired", "demoted", "viewer", "weak", "fine"):
        reg.add(socket(closed, name, token=name))
    found = {
        "expired": cred("expired", expires=NOW),
        "demoted": cred("demoted", owner="operator"),  # still enough for telemetry
        "viewer": cred("viewer", owner="viewer"),  # the owner became a viewer
        "weak": cred("weak", role="viewer"),
        "fine": cred("fine", expires=NOW + timedelta(days=1)),
    }
    assert reg.judge(found, NOW) == 4
    assert sorted(closed) == [("expired", TOKEN_EXPIRED), ("gone", TOKEN_REVOKED), ("viewer", ROLE_TOO_LOW),
                              ("weak", ROLE_TOO_LOW)]
    assert reg.api_tokens() == {"demoted", "fine"}


async def test_the_watcher_queries_only_while_token_sockets_are_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reg = SocketRegistry()
    lookups: list[set[str]] = []
    closed: list[str] = []

    async def lookup(ids: Any) -> dict[str, OpenSocketCredential]:
        lookups.append(set(ids))
        return {}

    async def session() -> None:
        await trio.sleep_forever()

    async def close(code: int, reason: str) -> None:
        closed.append(f"{code} {reason}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_credential_watcher, reg, lookup, 0.5)
        await trio.sleep(2)
        assert lookups == []  # nothing open, nothing read
        start = trio.current_time()
        await run_closable(reg, "u1", "t1", Role.ADMIN, Role.OPERATOR, session, close)
        assert trio.current_time() - start <= 0.5  # closed at the watcher's next look
        assert closed == [f"1008 {TOKEN_REVOKED}"] and lookups == [{"t1"}] and len(reg) == 0
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
