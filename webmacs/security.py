"""Passwords (bcrypt, in worker threads) and access tokens (HS256 JWTs with a ``jti``)."""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import bcrypt
import jwt
import outcome
import trio

T = TypeVar("T")

REQUIRED_CLAIMS = ("sub", "jti", "iat", "exp")


class BackgroundThreads:
    """Worker threads that run at a lower CPU priority than the event loop.

    bcrypt holds a core for ~0.35 s per check and releases the GIL; at the same priority, a
    login flood on a small machine takes the CPU from the event loop and every other request
    waits with it. These threads lower their own scheduling priority (``nice`` +10, per thread
    on Linux; best effort elsewhere), so the kernel runs the event loop first and bcrypt in the
    time left. They are dedicated threads, because an unprivileged process cannot raise a
    priority back and trio's thread cache would hand a lowered thread to database work.

    A caller cancelled while waiting gets ``Cancelled``; the job still runs to its end and its
    result is dropped (bcrypt cannot be interrupted).
    """

    NICE = 10

    def __init__(self, threads: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Callable[[outcome.Outcome[Any]], None]]] = (
            queue.SimpleQueue())
        self._threads = threads
        self._name = name
        self._started = 0
        self._lock = threading.Lock()

    def _work(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.NICE)
        while True:
            fn, deliver = self._jobs.get()
            deliver(outcome.capture(fn))

    def _ensure_started(self) -> None:
        with self._lock:
            while self._started < self._threads:
                self._started += 1
                threading.Thread(target=self._work, name=f"{self._name}-{self._started}",
                                 daemon=True).start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        self._ensure_started()
        token = trio.lowlevel.current_trio_token()
        done_send, done_recv = trio.open_memory_channel[outcome.Outcome[T]](1)

        def deliver(result: outcome.Outcome[T]) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done_send.send_nowait, result)

        self._jobs.put((functools.partial(fn, *args), deliver))
        result = await done_recv.receive()
        return result.unwrap()


class PasswordHasher:
    """bcrypt costs ~0.35 s at 12 rounds: always off the Trio thread, at most one per core, at
    a lower priority than the event loop (see :class:`BackgroundThreads`)."""

    def __init__(self, rounds: int = 12) -> None:
        self.rounds = rounds
        self._threads = BackgroundThreads(min(2, os.cpu_count() or 1), "bcrypt")
        self._dummy_hash: bytes | None = None

    @staticmethod
    def _encode(password: str) -> bytes:
        # bcrypt 5 refuses over 72 bytes; validation rejects those on write, so on login
        # they can only be wrong, but must still cost the same work.
        return password.encode("utf-8")[:72]

    def hash_sync(self, password: str) -> str:
        return bcrypt.hashpw(self._encode(password), bcrypt.gensalt(self.rounds)).decode("ascii")

    async def hash(self, password: str) -> str:
        return await self._threads.run(self.hash_sync, password)

    @staticmethod
    def _check(password: bytes, hashed: bytes) -> bool:
        try:
            return bcrypt.checkpw(password, hashed)
        except ValueError:
            return False

    async def verify(self, password: str, hashed: str) -> bool:
        if len(password.encode("utf-8")) > 72:
            # No stored password is that long: never a match, but the same work as one.
            await self.verify_dummy(password)
            return False
        return await self._threads.run(self._check, self._encode(password), hashed.encode("ascii"))

    async def verify_dummy(self, password: str) -> None:
        """Do the same work as a real check, for an unknown email (no timing oracle)."""
        if self._dummy_hash is None:
            self._dummy_hash = (await self.hash(secrets.token_urlsafe(16))).encode("ascii")
        await self._threads.run(self._check, self._encode(password), self._dummy_hash)


@attrs.frozen
class Claims:
    sub: str
    jti: str
    iat: float
    exp: float

    @property
    def issued_at(self) -> datetime:
        return datetime.fromtimestamp(self.iat, UTC)

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


class TokenCodec:
    """Issues and verifies tokens. ``iat`` keeps sub-second precision so that a password change
    revokes a token issued a moment earlier but not one issued a moment later."""

    CACHE_SIZE = 4096

    def __init__(self, secret: str, expire_minutes: int) -> None:
        self._secret = secret
        self._lifetime = expire_minutes * 60
        # Verified tokens, so a client's every request does not verify its signature again
        # (~5 % of a small request). Only expiry can change for a token once verified; revocation
        # is looked up per request elsewhere. Cleared when full: bounded, no bookkeeping.
        self._verified: dict[str, Claims] = {}

    def issue(self, user_public_id: str, now: float | None = None) -> str:
        iat = time.time() if now is None else now
        payload = {"sub": user_public_id, "jti": secrets.token_hex(16), "iat": iat,
                   "exp": int(iat) + self._lifetime}
        return jwt.encode(payload, self._secret, algorithm="HS256")

    def decode(self, token: str) -> Claims | None:
        claims = self._verified.get(token)
        if claims is not None:
            return claims if claims.exp > time.time() else None
        claims = self._decode(token)
        if claims is not None:
            if len(self._verified) >= self.CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    def _decode(self, token: str) -> Claims | None:
        try:
            payload = jwt.decode(
                token, self._secret, algorithms=["HS256"],
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError:
            return None
        sub, jti, iat, exp = (payload.get(k) for k in REQUIRED_CLAIMS)
        if not isinstance(sub, str) or not isinstance(jti, str) or not sub or not 0 < len(jti) <= 64:
            return None
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            return None
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            return None
        return Claims(sub, jti, float(iat), float(exp))
