"""The ``--workers`` policy (restart, backoff, give up) and refusal, without processes."""

from __future__ import annotations

from webmacs.workers import WorkerPolicy, refusal


def test_all_slots_start_at_once_and_only_once() -> None:
    policy = WorkerPolicy(3)
    assert policy.due(0.0) == [0, 1, 2]
    for slot in range(3):
        policy.started(slot, 0.0)
    assert policy.due(0.0) == [] and policy.running == [0, 1, 2]
    assert policy.next_due() is None


def test_a_worker_that_dies_after_running_a_while_is_restarted_after_the_first_backoff() -> None:
    policy = WorkerPolicy(2, min_uptime=10, first_backoff=0.5)
    policy.started(0, 0.0)
    policy.started(1, 0.0)
    exited = policy.exited(1, -9, 100.0)
    assert (exited.early, exited.restart_in) == (False, 0.5)
    assert policy.due(100.2) == [] and policy.next_due() == 100.5
    assert policy.due(100.5) == [1]


def test_startup_failures_back_off_exponentially_then_the_pool_gives_up() -> None:
    policy = WorkerPolicy(1, min_uptime=10, first_backoff=0.5, max_backoff=1.5,
                          max_startup_failures=4)
    now, delays = 0.0, []
    while policy.gave_up is None:
        [slot] = policy.due(now)
        policy.started(slot, now)
        now += 1.0
        exited = policy.exited(slot, 1, now)
        assert exited.early
        if exited.restart_in is not None:
            delays.append(exited.restart_in)
            now += exited.restart_in
    assert delays == [0.5, 1.0, 1.5]  # doubled, capped
    assert "failed 4 times in a row at startup" in policy.gave_up
    assert policy.due(now + 100) == []


def test_a_good_run_resets_the_count_of_startup_failures() -> None:
    policy = WorkerPolicy(1, min_uptime=10, first_backoff=0.5, max_startup_failures=2)
    policy.started(0, 0.0)
    assert policy.exited(0, 1, 1.0).restart_in == 0.5  # one early failure
    policy.started(0, 2.0)
    assert policy.exited(0, 1, 50.0).restart_in == 0.5  # ran long: not a startup failure
    policy.started(0, 51.0)
    assert policy.exited(0, 1, 52.0).restart_in == 0.5
    assert policy.gave_up is None


def test_nothing_restarts_while_stopping() -> None:
    policy = WorkerPolicy(2)
    policy.started(0, 0.0)
    policy.started(1, 0.0)
    policy.stop()
    assert policy.exited(0, 0, 1.0).restart_in is None
    assert policy.due(10.0) == [] and policy.running == [1]


def test_refusal_names_what_is_missing_in_one_line() -> None:
    assert refusal(1, "sqlite", None, 8000) is None
    assert refusal(2, "postgresql", "nats://x:4222", 8000) is None
    both = refusal(2, "sqlite", None, 8000)
    assert both is not None and "PostgreSQL" in both and "a bus" in both and "\n" not in both
    assert "a bus" not in (refusal(2, "sqlite", "nats://x", 8000) or "")
    assert "PORT" in (refusal(3, "timescale", "nats://x", 0) or "")
