"""The long-lived things a running webmacs owns, opened and closed in one place."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs

from webmacs.api_tokens import UsageBatch
from webmacs.login_throttle import LoginThrottle
from webmacs.security import PasswordHasher, TokenCodec
from webmacs.settings import Settings
from webmacs.storage.backends import Repositories, build_repositories, prepare
from webmacs.storage.database import Database

log = logging.getLogger(__name__)


@attrs.frozen
class Services:
    settings: Settings
    db: Database
    repos: Repositories
    passwords: PasswordHasher
    tokens: TokenCodec
    started_at: float
    login_throttle: LoginThrottle
    token_usage: UsageBatch = attrs.field(factory=UsageBatch)  # API tokens' last uses, batched


@asynccontextmanager
async def open_services(
    settings: Settings, *, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[Services]:
    """Open the database, create the schema, seed the admin; dispose of the engine at the end.

    ``clock`` drives the login throttle (tests pass one they can move forward)."""
    db = Database(settings.sqlalchemy_url, settings.db_pool_size)
    try:
        repos = build_repositories(db, settings.storage_backend)
        passwords = PasswordHasher(settings.bcrypt_rounds)
        admin_hash = await passwords.hash(settings.initial_admin_password)
        # Processes starting at once on one PostgreSQL database (--workers N, replicas) take
        # turns here: the first creates the schema and seeds, the others find both done.
        async with db.startup_lock():
            await prepare(db, settings.storage_backend, settings.timescale)
            seeded = await repos.users.seed_admin(
                settings.initial_admin_email, settings.initial_admin_username, admin_hash
            )
        if seeded:
            log.info("seeded admin user %s", settings.initial_admin_email)
        yield Services(
            settings=settings,
            db=db,
            repos=repos,
            passwords=passwords,
            tokens=TokenCodec(settings.secret_key, settings.access_token_expire_minutes),
            started_at=time.time(),
            login_throttle=LoginThrottle(settings.login_throttle, clock),
        )
    finally:
        db.dispose()
