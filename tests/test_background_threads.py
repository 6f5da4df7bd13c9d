"""bcrypt's threads: results and errors come back, their priority is below the event loop's,
and a cancelled caller leaves the job to finish on its own."""

from __future__ import annotations

import os
import sys
import threading

import pytest
import trio

from webmacs.security import BackgroundThreads, PasswordHasher


async def test_results_errors_and_a_lower_priority() -> None:
    pool = BackgroundThreads(2, "test")

    def priority() -> tuple[int, str]:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), threading.current_thread().name

    def fails() -> None:
        raise ValueError("inside")

    nice, name = await pool.run(priority)
    assert name.startswith("test-")
    if sys.platform == "linux":
        assert nice >= os.getpriority(os.PRIO_PROCESS, 0) + 1  # the event loop's thread stays put
    with pytest.raises(ValueError, match="inside"):
        await pool.run(fails)
    assert await pool.run(sum, [1, 2, 3]) == 6


async def test_a_cancelled_caller_gets_cancelled_and_the_pool_keeps_working() -> None:
    pool = BackgroundThreads(1, "test")
    release, finished = threading.Event(), threading.Event()

    def slow() -> str:
        release.wait(10)
        finished.set()
        return "late"

    with trio.move_on_after(0.05) as scope:
        await pool.run(slow)
    assert scope.cancelled_caught
    release.set()
    assert await pool.run(lambda: "next") == "next"  # runs after the abandoned job, same thread
    assert finished.is_set()


async def test_password_hash_and_verify_round_trip() -> None:
    hasher = PasswordHasher(rounds=4)
    hashed = await hasher.hash("correct horse")
    assert await hasher.verify("correct horse", hashed)
    assert not await hasher.verify("wrong", hashed)
    assert not await hasher.verify("x" * 80, hashed)  # over bcrypt's 72 bytes: never a match
    await hasher.verify_dummy("anything")
