"""Defect 6: login throttling through the app (contract §8), on SQLite and PostgreSQL.

The throttle's clock is a fake moved by the test, so windows pass without sleeping. Client
addresses are set in the ASGI scope as a server would (``client``); one test runs a real server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, FakeClock, LiveServer, make_settings

from webmacs.actors.tree import open_actor_tree
from webmacs.http.app import create_app
from webmacs.services import Services, open_services

LOGIN = "/api/v1/auth/login"
THROTTLED = {"detail": "Too many failed logins; try again later."}


class Harness:
    def __init__(self, app: Any, svc: Services, clock: FakeClock) -> None:
        self.client = app.test_client()
        self.svc = svc
        self.clock = clock
        self.bcrypt_calls = 0

    async def login(self, email: str, password: str, peer: str = "192.0.2.10",
                    xff: str | None = None) -> Any:
        headers = {"X-Forwarded-For": xff} if xff is not None else {}
        return await self.client.post(LOGIN, json={"email": email, "password": password},
                                      headers=headers, scope_base={"client": (peer, 40000)})

    async def fail(self, times: int, email: str = ADMIN_EMAIL, **kw: Any) -> None:
        for _ in range(times):
            resp = await self.login(email, "wrong-password", **kw)
            assert resp.status_code == 401, await resp.get_data(as_text=True)


async def expect_throttled(resp: Any) -> int:
    assert resp.status_code == 429, await resp.get_data(as_text=True)
    assert await resp.get_json() == THROTTLED
    retry_after = resp.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1, retry_after
    return int(retry_after)


@pytest.fixture
async def harness(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    settings = make_settings(database_url, tmp_path, TRUSTED_PROXIES="10.0.0.0/8")
    clock = FakeClock()
    async with open_services(settings, clock=clock) as svc, open_actor_tree(svc) as actors:
        h = Harness(create_app(svc, actors), svc, clock)
        # Count bcrypt checks (known and unknown emails) without changing what they do.
        for name in ("verify", "verify_dummy"):
            real = getattr(svc.passwords, name)

            async def counted(*args: Any, _real: Any = real) -> Any:
                h.bcrypt_calls += 1
                return await _real(*args)

            monkeypatch.setattr(svc.passwords, name, counted)
        yield h


async def test_failures_then_429_with_retry_after(harness: Harness) -> None:
    await harness.fail(5)
    assert await expect_throttled(await harness.login(ADMIN_EMAIL, "wrong-password")) == 30


async def test_unknown_email_is_throttled_identically(harness: Harness) -> None:
    await harness.fail(5, email="ghost@webmacs.io")
    await harness.fail(5, email=ADMIN_EMAIL, peer="192.0.2.11")
    ghost = await harness.login("ghost@webmacs.io", "x", peer="192.0.2.12")
    known = await harness.login(ADMIN_EMAIL, "x", peer="192.0.2.12")
    assert await expect_throttled(ghost) == await expect_throttled(known)
    assert ghost.headers.get("WWW-Authenticate") == known.headers.get("WWW-Authenticate")


async def test_throttled_request_runs_no_bcrypt(harness: Harness) -> None:
    await harness.fail(5, email="ghost@webmacs.io")
    await harness.fail(5, email=ADMIN_EMAIL)
    assert harness.bcrypt_calls == 10
    for email in (ADMIN_EMAIL, "ghost@webmacs.io"):
        await expect_throttled(await harness.login(email, ADMIN_PASSWORD, peer="192.0.2.99"))
    assert harness.bcrypt_calls == 10


async def test_concurrent_guesses_get_no_more_checks_than_sequential_ones(harness: Harness) -> None:
    statuses: list[int] = []

    async def guess(i: int) -> None:
        resp = await harness.login(ADMIN_EMAIL, f"guess-{i}", peer=f"198.51.100.{i}")
        statuses.append(resp.status_code)

    async with trio.open_nursery() as nursery:
        for i in range(30):
            nursery.start_soon(guess, i)
    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) <= 5
    assert harness.bcrypt_calls == statuses.count(401)
    await expect_throttled(await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD, peer="203.0.113.5"))


async def test_concurrent_correct_logins_are_queued_not_refused(harness: Harness) -> None:
    """Eight dashboards opening at once (or a load generator at concurrency 8) log in to one
    account: more than the per-account limit are checked at a time, yet none gets a 429."""
    statuses: list[int] = []

    async def login() -> None:
        statuses.append((await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(12):
            nursery.start_soon(login)
    assert statuses == [200] * 12


async def test_correct_password_while_throttled_is_429(harness: Harness) -> None:
    await harness.fail(5)
    resp = await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    await expect_throttled(resp)
    assert "access_token" not in await resp.get_data(as_text=True)


async def test_login_works_after_the_lock_and_clears_the_account(harness: Harness) -> None:
    await harness.fail(5)
    retry_after = await expect_throttled(await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD))
    harness.clock.advance(retry_after - 1)
    await expect_throttled(await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD))
    harness.clock.advance(1)
    assert (await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200
    # The success cleared the account: four new failures do not lock it.
    await harness.fail(4)
    assert (await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


async def test_second_lock_is_longer(harness: Harness) -> None:
    await harness.fail(5)
    harness.clock.advance(30)
    await harness.fail(1)
    assert await expect_throttled(await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD)) == 60


async def test_per_address_limit_spares_other_addresses(harness: Harness) -> None:
    for i in range(20):
        await harness.fail(1, email=f"spray{i}@webmacs.io", peer="198.51.100.7")
    # That address is throttled even for an account it never tried, with the right password …
    await expect_throttled(await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD, peer="198.51.100.7"))
    # … another address is not.
    assert (await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD, peer="198.51.100.8")).status_code == 200


async def test_account_lock_follows_the_account_to_other_addresses(harness: Harness) -> None:
    await harness.fail(5, peer="198.51.100.7")
    await expect_throttled(await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD, peer="203.0.113.1"))
    resp = await harness.login("ghost@webmacs.io", "x", peer="203.0.113.1")
    assert resp.status_code == 401


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(harness: Harness) -> None:
    # Forging a fresh X-Forwarded-For per request does not escape the per-address limit.
    for i in range(20):
        await harness.fail(1, email=f"spray{i}@webmacs.io", peer="198.51.100.7", xff=f"203.0.113.{i}")
    await expect_throttled(await harness.login("new@webmacs.io", "x", peer="198.51.100.7",
                                               xff="203.0.113.200"))


async def test_forwarded_for_is_honoured_from_a_trusted_proxy(harness: Harness) -> None:
    for i in range(20):
        await harness.fail(1, email=f"spray{i}@webmacs.io", peer="10.0.0.2",
                           xff=f"6.6.6.{i}, 198.51.100.7")
    # The client behind the proxy is throttled, whatever it forges on the left …
    await expect_throttled(await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD, peer="10.0.0.3",
                                               xff="1.2.3.4, 198.51.100.7"))
    # … while another client behind the same proxy is not.
    resp = await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD, peer="10.0.0.2", xff="198.51.100.8")
    assert resp.status_code == 200


async def test_malformed_login_is_422_not_a_failure(harness: Harness) -> None:
    for _ in range(10):
        resp = await harness.client.post(LOGIN, json={"email": "bad", "password": ""},
                                         scope_base={"client": ("192.0.2.10", 1)})
        assert resp.status_code == 422
    assert (await harness.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


async def test_real_server_throttles_by_socket_peer(tmp_path: Path) -> None:
    """A real socket: the peer address is used, and a forged header alone changes nothing."""
    server = LiveServer(f"sqlite:///{tmp_path / 'live.db'}", tmp_path,
                        LOGIN_MAX_FAILURES_PER_ADDRESS="3")
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            for i in range(3):
                resp = await http.post(LOGIN, json={"email": f"u{i}@lab.local", "password": "nope"},
                                       headers={"X-Forwarded-For": f"203.0.113.{i}"})
                assert resp.status_code == 401
            resp = await http.post(LOGIN, json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                                   headers={"X-Forwarded-For": "203.0.113.99"})
            assert resp.status_code == 429
            assert resp.json() == THROTTLED
            assert resp.headers["Retry-After"] == "30"
    finally:
        server.stop()
