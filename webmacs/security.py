"""Passwords (bcrypt, in worker threads) and access tokens (HS256 JWTs with a ``jti``)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

import attrs
import bcrypt
import jwt
import trio

REQUIRED_CLAIMS = ("sub", "jti", "iat", "exp")


class PasswordHasher:
    """bcrypt costs ~0.35 s at 12 rounds: always off the Trio thread, at most one per core."""

    def __init__(self, rounds: int = 12) -> None:
        self.rounds = rounds
        self._limiter = trio.CapacityLimiter(2)
        self._dummy_hash: bytes | None = None

    @staticmethod
    def _encode(password: str) -> bytes:
        # bcrypt 5 refuses over 72 bytes; validation rejects those on write, so on login
        # they can only be wrong, but must still cost the same work.
        return password.encode("utf-8")[:72]

    def hash_sync(self, password: str) -> str:
        return bcrypt.hashpw(self._encode(password), bcrypt.gensalt(self.rounds)).decode("ascii")

    async def hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(self.hash_sync, password, limiter=self._limiter)

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
        return await trio.to_thread.run_sync(
            self._check, self._encode(password), hashed.encode("ascii"), limiter=self._limiter
        )

    async def verify_dummy(self, password: str) -> None:
        """Do the same work as a real check, for an unknown email (no timing oracle)."""
        if self._dummy_hash is None:
            self._dummy_hash = (await self.hash(secrets.token_urlsafe(16))).encode("ascii")
        await trio.to_thread.run_sync(
            self._check, self._encode(password), self._dummy_hash, limiter=self._limiter
        )


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

    def __init__(self, secret: str, expire_minutes: int) -> None:
        self._secret = secret
        self._lifetime = expire_minutes * 60

    def issue(self, user_public_id: str, now: float | None = None) -> str:
        iat = time.time() if now is None else now
        payload = {"sub": user_public_id, "jti": secrets.token_hex(16), "iat": iat,
                   "exp": int(iat) + self._lifetime}
        return jwt.encode(payload, self._secret, algorithm="HS256")

    def decode(self, token: str) -> Claims | None:
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
