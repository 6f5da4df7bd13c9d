"""Supervisor and RestartTracker: restart policy, backoff and escalation, in virtual time."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from webmacs.actors.supervisor import Escalation, RestartPolicy, RestartTracker, Supervisor

# -- RestartTracker (sans-IO)


def test_backoff_doubles_up_to_max_then_escalates() -> None:
    tracker = RestartTracker(RestartPolicy(max_restarts=5, window=60.0, initial_backoff=0.1, max_backoff=1.0))
    delays = [tracker.crashed(float(t)) for t in range(6)]
    assert delays[:5] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    assert delays[5] is None


def test_default_policy() -> None:
    policy = RestartPolicy()
    assert (policy.max_restarts, policy.window) == (5, 60.0)
    assert (policy.initial_backoff, policy.max_backoff) == (0.1, 5.0)
    tracker = RestartTracker(policy)
    assert [tracker.crashed(0.0) for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, None])


def test_escalation_persists_while_crashes_stay_in_window() -> None:
    tracker = RestartTracker(RestartPolicy(max_restarts=2, window=10.0, initial_backoff=1.0, max_backoff=8.0))
    assert tracker.crashed(0.0) == 1.0
    assert tracker.crashed(1.0) == 2.0
    assert tracker.crashed(2.0) is None
    assert tracker.crashed(3.0) is None


def test_crashes_leave_the_window() -> None:
    tracker = RestartTracker(RestartPolicy(max_restarts=2, window=10.0, initial_backoff=1.0, max_backoff=8.0))
    assert tracker.crashed(0.0) == 1.0
    assert tracker.crashed(1.0) == 2.0
    # The crash at 0 is exactly one window old: it no longer counts.
    assert tracker.crashed(10.0) == 2.0
    assert tracker.crashed(10.5) is None  # 1.0, 10.0, 10.5 are within the window
    # Long quiet: every earlier crash has left the window, backoff starts over.
    assert tracker.crashed(30.0) == 1.0
    assert tracker.crashed(30.5) == 2.0


def test_backoff_never_exceeds_max() -> None:
    policy = RestartPolicy(max_restarts=50, window=1000.0, initial_backoff=0.5, max_backoff=3.0)
    tracker = RestartTracker(policy)
    delays = [tracker.crashed(float(t)) for t in range(20)]
    assert delays[:3] == [0.5, 1.0, 2.0]
    assert all(d == 3.0 for d in delays[3:])


# -- Supervisor (virtual time)


class Flaky:
    """A child that crashes ``crashes`` times (or forever), recording the time of every start."""

    def __init__(self, crashes: int | None = None) -> None:
        self.crashes = crashes
        self.starts: list[float] = []

    async def __call__(self) -> None:
        self.starts.append(trio.current_time())
        await trio.sleep(0)
        if self.crashes is None or len(self.starts) <= self.crashes:
            raise RuntimeError(f"boom {len(self.starts)}")


def rel(times: list[float], t0: float) -> list[float]:
    return [t - t0 for t in times]


async def test_permanent_child_restarted_with_exponential_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = Flaky(crashes=4)
    policy = RestartPolicy(max_restarts=10, window=60.0, initial_backoff=1.0, max_backoff=3.0)
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        Supervisor(nursery, "test").start_permanent("flaky", child, policy=policy)
    # Delays 1, 2, 3 (4 capped at 3), 3; the fifth run returns cleanly.
    assert rel(child.starts, t0) == pytest.approx([0.0, 1.0, 3.0, 6.0, 9.0])
    assert trio.current_time() - t0 == pytest.approx(9.0)


async def test_arguments_are_passed_again_on_restart(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[int, str]] = []

    async def child(a: int, b: str) -> None:
        seen.append((a, b))
        if len(seen) < 3:
            raise ValueError("again")

    async with trio.open_nursery() as nursery:
        Supervisor(nursery).start_permanent("args", child, 1, "x", policy=RestartPolicy(initial_backoff=0.5))
    assert seen == [(1, "x")] * 3


async def test_clean_return_is_not_restarted(autojump_clock: trio.testing.MockClock) -> None:
    child = Flaky(crashes=0)
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        Supervisor(nursery).start_permanent("clean", child)
    assert rel(child.starts, t0) == [0.0]
    assert trio.current_time() == t0


async def test_escalation_raises_without_handler(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    child = Flaky()
    sibling_cancelled = trio.Event()

    async def sibling() -> None:
        try:
            await trio.sleep_forever()
        finally:
            sibling_cancelled.set()

    policy = RestartPolicy(max_restarts=2, window=60.0, initial_backoff=1.0, max_backoff=4.0)
    t0 = trio.current_time()
    expected = pytest.RaisesExc(Escalation, match="actor flaky exceeded its restart limit")
    with pytest.RaisesGroup(expected) as info:
        async with trio.open_nursery() as nursery:
            sup = Supervisor(nursery, "test")
            sup.start_permanent("sibling", sibling)
            sup.start_permanent("flaky", child, policy=policy)
    # Two restarts (after 1 s and 2 s), the third crash escalates at once.
    assert rel(child.starts, t0) == pytest.approx([0.0, 1.0, 3.0])
    assert trio.current_time() - t0 == pytest.approx(3.0)
    escalation = info.value.exceptions[0]
    assert isinstance(escalation.__cause__, RuntimeError)
    assert str(escalation.__cause__) == "boom 3"
    assert sibling_cancelled.is_set()
    assert "actor flaky crashed too often; escalating" in caplog.text


async def test_escalation_with_handler_keeps_retrying_at_max_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = Flaky()
    escalations: list[tuple[str, str, float]] = []

    def on_escalation(name: str, exc: BaseException) -> None:
        escalations.append((name, str(exc), trio.current_time()))

    policy = RestartPolicy(max_restarts=2, window=60.0, initial_backoff=1.0, max_backoff=4.0)
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, "root", on_escalation=on_escalation)
        sup.start_permanent("flaky", child, policy=policy)
        await trio.sleep(20.0)
        assert sup.escalated == {"flaky": repr(RuntimeError(f"boom {len(child.starts)}"))}
        nursery.cancel_scope.cancel()
    # 0, +1, +2, then every max_backoff (4 s) while the crashes stay within the window.
    assert rel(child.starts, t0) == pytest.approx([0.0, 1.0, 3.0, 7.0, 11.0, 15.0, 19.0])
    assert [(n, m) for n, m, _ in escalations] == [("flaky", f"boom {i}") for i in range(3, 8)]
    assert rel([t for _, _, t in escalations], t0) == pytest.approx([3.0, 7.0, 11.0, 15.0, 19.0])


async def test_escalated_child_that_recovers_keeps_running(autojump_clock: trio.testing.MockClock) -> None:
    child = Flaky(crashes=4)
    calls: list[str] = []
    policy = RestartPolicy(max_restarts=2, window=60.0, initial_backoff=1.0, max_backoff=4.0)
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, "root", on_escalation=lambda name, exc: calls.append(name))
        sup.start_permanent("flaky", child, policy=policy)
    assert rel(child.starts, t0) == pytest.approx([0.0, 1.0, 3.0, 7.0, 11.0])
    assert calls == ["flaky", "flaky"]
    assert "flaky" in sup.escalated


async def test_restart_after_quiet_period_starts_backoff_over(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []

    async def child() -> None:
        starts.append(trio.current_time())
        if len(starts) == 3:
            await trio.sleep(100.0)  # healthy for longer than the window
        if len(starts) < 5:
            raise RuntimeError("boom")

    policy = RestartPolicy(max_restarts=2, window=10.0, initial_backoff=1.0, max_backoff=8.0)
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        Supervisor(nursery).start_permanent("child", child, policy=policy)
    # Crash at 0 (+1), 1 (+2), then 103: the old crashes left the window, so +1 again, then +2.
    assert rel(starts, t0) == pytest.approx([0.0, 1.0, 3.0, 104.0, 106.0])


async def test_temporary_crash_logged_not_restarted_siblings_unaffected(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="webmacs.actors.supervisor")
    crasher = Flaky()
    ticks: list[float] = []
    done: list[str] = []

    async def ticker() -> None:
        for _ in range(5):
            await trio.sleep(1.0)
            ticks.append(trio.current_time())
        done.append("ticker")

    async def temp_sibling() -> None:
        await trio.sleep(3.0)
        done.append("temporary")

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, "test")
        sup.start_permanent("ticker", ticker)
        sup.start_temporary("temp-sibling", temp_sibling)
        sup.start_temporary("session-7", crasher)
    assert len(crasher.starts) == 1
    assert sorted(done) == ["temporary", "ticker"]
    assert rel(ticks, t0) == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])
    records = [r for r in caplog.records if r.name == "webmacs.actors.supervisor"]
    assert len(records) == 1
    assert records[0].getMessage() == "actor session-7 crashed (temporary: not restarted)"
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], RuntimeError)
    assert sup.escalated == {}


async def test_permanent_crash_logged_with_name_and_delay(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="webmacs.actors.supervisor")
    async with trio.open_nursery() as nursery:
        Supervisor(nursery).start_permanent(
            "recorder[3]", Flaky(crashes=1), policy=RestartPolicy(initial_backoff=0.25)
        )
    messages = [r.getMessage() for r in caplog.records if r.name == "webmacs.actors.supervisor"]
    assert messages == ["actor recorder[3] crashed; restarting in 0.25s"]


async def test_cancellation_is_not_a_crash(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="webmacs.actors.supervisor")
    starts: list[float] = []

    async def forever() -> None:
        starts.append(trio.current_time())
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery)
        sup.start_permanent("p", forever)
        sup.start_temporary("t", forever)
        await trio.sleep(5.0)
        sup.cancel_scope.cancel()
    assert len(starts) == 2
    assert [r for r in caplog.records if r.name == "webmacs.actors.supervisor"] == []
