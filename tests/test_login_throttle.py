"""The sans-IO login throttle and client-address rules, with a fake clock and no sockets."""

from __future__ import annotations

import ipaddress

import pytest
from conftest import FakeClock

from webmacs.client_address import client_address, parse_networks
from webmacs.login_throttle import Attempt, Busy, LoginThrottle, Refused, ThrottlePolicy
from webmacs.settings import SettingsError, load_settings


def make(**policy: float) -> tuple[LoginThrottle, FakeClock]:
    clock = FakeClock()
    return LoginThrottle(ThrottlePolicy(**policy), clock), clock  # type: ignore[arg-type]


def attempt(throttle: LoginThrottle, account: str = "a@x.io", address: str = "192.0.2.1") -> Attempt:
    result = throttle.begin(account, address)
    assert isinstance(result, Attempt), result
    return result


def fail(throttle: LoginThrottle, times: int, account: str = "a@x.io", address: str = "192.0.2.1") -> None:
    for _ in range(times):
        throttle.failed(attempt(throttle, account, address))


def refused(throttle: LoginThrottle, account: str = "a@x.io", address: str = "192.0.2.1") -> int:
    result = throttle.begin(account, address)
    assert isinstance(result, Refused), result
    return result.retry_after


def busy(throttle: LoginThrottle, account: str = "a@x.io", address: str = "192.0.2.1") -> bool:
    return isinstance(throttle.begin(account, address), Busy)


# ---------------------------------------------------------------- per account


def test_account_locks_after_threshold_with_retry_after() -> None:
    throttle, _ = make()
    fail(throttle, 4)
    fifth = attempt(throttle)  # the 5th may still try
    throttle.failed(fifth)
    assert refused(throttle) == 30


def test_lock_backs_off_exponentially_up_to_the_cap() -> None:
    throttle, clock = make(window=10_000)
    fail(throttle, 5)
    waits = []
    for _ in range(7):
        wait = refused(throttle)
        waits.append(wait)
        clock.advance(wait)
        fail(throttle, 1)  # one try after each lock, wrong again
    assert waits == [30, 60, 120, 240, 480, 900, 900]


def test_retry_after_counts_down_and_is_whole_seconds() -> None:
    throttle, clock = make()
    fail(throttle, 5)
    clock.advance(10.5)
    assert refused(throttle) == 20  # 19.5 rounded up
    clock.advance(19.4)
    assert refused(throttle) == 1
    clock.advance(0.1)
    attempt(throttle)


def test_failures_older_than_the_window_do_not_count() -> None:
    throttle, clock = make(window=900)
    fail(throttle, 4)
    clock.advance(900)
    fail(throttle, 4)  # 4 in this window, 8 overall
    attempt(throttle)


def test_success_clears_the_account() -> None:
    throttle, _ = make()
    fail(throttle, 4)
    throttle.succeeded(attempt(throttle))
    fail(throttle, 4)
    attempt(throttle)


def test_success_does_not_clear_the_address() -> None:
    throttle, _ = make(address_failures=3)
    fail(throttle, 2, account="victim@x.io")
    throttle.succeeded(attempt(throttle, account="mine@x.io"))
    fail(throttle, 1, account="other@x.io")
    refused(throttle, account="fresh@x.io")


def test_refused_attempt_is_not_counted_and_does_not_extend_the_lock() -> None:
    throttle, clock = make()
    fail(throttle, 5)
    for _ in range(50):
        refused(throttle)
    clock.advance(30)
    attempt(throttle)


def test_correct_password_while_locked_is_refused_too() -> None:
    # The route asks begin() before it checks anything: a refusal is final for this request.
    throttle, _ = make()
    fail(throttle, 5)
    assert isinstance(throttle.begin("a@x.io", "198.51.100.9"), Refused)


def test_unknown_and_known_accounts_are_the_same_to_the_throttle() -> None:
    throttle, _ = make()
    fail(throttle, 5, account="ghost@x.io", address="192.0.2.1")
    fail(throttle, 5, account="admin@x.io", address="192.0.2.2")
    assert refused(throttle, "ghost@x.io", "192.0.2.3") == refused(throttle, "admin@x.io", "192.0.2.3")


# ---------------------------------------------------------------- per address


def test_address_locks_after_its_threshold_across_accounts() -> None:
    throttle, _ = make(address_failures=20)
    for i in range(20):
        fail(throttle, 1, account=f"user{i}@x.io")
    assert refused(throttle, account="new@x.io") == 30
    attempt(throttle, account="new@x.io", address="192.0.2.99")  # another address is free


def test_account_lock_applies_from_every_address() -> None:
    throttle, _ = make()
    fail(throttle, 5, address="192.0.2.1")
    refused(throttle, address="203.0.113.7")
    attempt(throttle, account="b@x.io", address="203.0.113.7")


# ---------------------------------------------------------------- concurrency


def test_pending_attempts_count_against_the_limit() -> None:
    throttle, _ = make()
    in_flight = [attempt(throttle) for _ in range(5)]
    assert busy(throttle)  # wait for the five being checked (queued, not refused)
    for a in in_flight:
        throttle.failed(a)
    assert refused(throttle) == 30


def test_waiting_attempts_go_ahead_when_the_ones_in_flight_succeed() -> None:
    throttle, _ = make()
    in_flight = [attempt(throttle) for _ in range(5)]
    assert busy(throttle)
    throttle.succeeded(in_flight[0])
    attempt(throttle)  # a success freed a place: no 429 for concurrent correct logins


def test_after_a_lock_only_one_attempt_at_a_time() -> None:
    throttle, clock = make()
    fail(throttle, 5)
    clock.advance(30)
    first = attempt(throttle)
    assert busy(throttle)
    throttle.failed(first)
    assert refused(throttle) == 60


def test_abandoned_attempt_counts_nothing_and_settles_once() -> None:
    throttle, _ = make()
    fail(throttle, 4)
    a = attempt(throttle)
    throttle.abandoned(a)
    throttle.failed(a)  # already settled: ignored
    throttle.abandoned(a)
    b = attempt(throttle)
    throttle.succeeded(b)
    throttle.abandoned(b)  # a finally after success changes nothing
    fail(throttle, 4)
    attempt(throttle)


# ---------------------------------------------------------------- memory


def test_quiet_records_are_forgotten() -> None:
    throttle, clock = make()
    fail(throttle, 3)
    clock.advance(900)
    fail(throttle, 1, account="other@x.io", address="192.0.2.50")
    assert len(throttle.accounts) == 1
    assert len(throttle.addresses) == 1


def test_a_spray_of_random_emails_stays_bounded() -> None:
    throttle, _ = make(max_entries=100, address_failures=10**6)
    for i in range(5000):
        fail(throttle, 1, account=f"random{i}@x.io")
    assert len(throttle.accounts) <= 100
    assert len(throttle.addresses) == 1


def test_lock_outlives_the_window_when_longer() -> None:
    throttle, clock = make(window=60, lockout=120, max_lockout=120)
    fail(throttle, 5)
    clock.advance(100)
    assert refused(throttle) == 20


# ---------------------------------------------------------------- client address

TRUSTED = parse_networks("10.0.0.0/8, 2001:db8:ffff::/48")


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("192.0.2.1", [], "192.0.2.1"),
        ("192.0.2.1", ["198.51.100.1"], "192.0.2.1"),  # untrusted peer: header ignored
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # forged left part ignored
        ("10.0.0.5", ["6.6.6.6", "198.51.100.1, 10.0.0.9"], "198.51.100.1"),  # two headers, two proxies
        ("10.0.0.5", ["10.1.1.1, 10.2.2.2"], "10.1.1.1"),  # all trusted: the leftmost
        ("10.0.0.5", ["garbage, 198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["198.51.100.1, garbage"], "garbage"),
        ("10.0.0.5", ["198.51.100.1:5555"], "198.51.100.1"),
        ("10.0.0.5", ["[2001:db8:1:2:3::4]:443"], "2001:db8:1:2::/64"),
        ("2001:db8:1:2::7", [], "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", [], "192.0.2.1"),
        (None, ["198.51.100.1"], "unknown"),
    ],
)
def test_client_address(peer: str | None, xff: list[str], expected: str) -> None:
    assert client_address(peer, xff, TRUSTED) == expected


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_address("10.0.0.5", ["198.51.100.1"], ()) == "10.0.0.5"


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert parse_networks(" 10.0.0.1 ,::1/128") == (ipaddress.ip_network("10.0.0.1/32"),
                                                    ipaddress.ip_network("::1/128"))
    with pytest.raises(ValueError, match="nope"):
        parse_networks("10.0.0.0/8, nope")


# ---------------------------------------------------------------- settings


def settings_from(**env: str):  # type: ignore[no-untyped-def]
    return load_settings({"DATABASE_URL": "sqlite:///x.db", "SECRET_KEY": "k" * 40, **env},
                         persist_secret=False)


def test_settings_defaults() -> None:
    s = settings_from()
    assert s.login_throttle == ThrottlePolicy(5, 20, 900, 30, 900, 10_000)
    assert s.trusted_proxies == ()


def test_settings_from_env() -> None:
    s = settings_from(LOGIN_MAX_FAILURES_PER_ACCOUNT="3", LOGIN_MAX_FAILURES_PER_ADDRESS="50",
                      LOGIN_FAILURE_WINDOW_SECONDS="600", LOGIN_LOCKOUT_SECONDS="10",
                      LOGIN_LOCKOUT_MAX_SECONDS="3600", LOGIN_THROTTLE_MAX_ENTRIES="500",
                      TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8")
    assert s.login_throttle == ThrottlePolicy(3, 50, 600, 10, 3600, 500)
    assert s.trusted_proxies == parse_networks("127.0.0.1/32,10.0.0.0/8")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOGIN_MAX_FAILURES_PER_ACCOUNT": "0"}, "LOGIN_MAX_FAILURES_PER_ACCOUNT"),
        ({"LOGIN_LOCKOUT_SECONDS": "abc"}, "LOGIN_LOCKOUT_SECONDS"),
        ({"LOGIN_LOCKOUT_SECONDS": "60", "LOGIN_LOCKOUT_MAX_SECONDS": "30"}, "LOGIN_LOCKOUT_MAX_SECONDS"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8, proxy.lan"}, "TRUSTED_PROXIES.*proxy.lan"),
    ],
)
def test_settings_rejected(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from(**env)
