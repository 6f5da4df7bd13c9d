"""The in-memory auth lookups: a sans-IO TTL cache, and what it must never get wrong.

Writes through this process take effect at once; writes made elsewhere (another process on the
same database, simulated here by SQL straight to the tables) within the cache's 1 s.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import trio

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, create_user, login
from webmacs.services import Services
from webmacs.storage.auth_cache import AUTH_CACHE_TTL_S, TtlCache
from webmacs.storage.tables import revoked_tokens, users


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_ttl() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(1.0, 10, clock)
    cache.put("a", 1, cache.generation("a"))
    assert cache.get("a") == (True, 1)
    clock.now = 0.99
    assert cache.get("a") == (True, 1)
    clock.now = 1.0
    assert cache.get("a") == (False, None)


def test_lookup_in_flight_during_invalidation_is_not_stored() -> None:
    """A read that began before a write committed may carry the old row: it must not be cached."""
    cache: TtlCache[str, str] = TtlCache(1.0, 10, Clock())
    generation = cache.generation("u")  # a lookup starts...
    cache.invalidate("u")  # ...a password change commits meanwhile...
    cache.put("u", "old row", generation)  # ...and the lookup returns the old row
    assert cache.get("u") == (False, None)
    cache.put("u", "new row", cache.generation("u"))
    assert cache.get("u") == (True, "new row")


def test_bounded_oldest_evicted() -> None:
    cache: TtlCache[int, int] = TtlCache(10.0, 3, Clock())
    for i in range(5):
        cache.put(i, i, cache.generation(i))
    assert [cache.get(i)[0] for i in range(5)] == [False, False, True, True, True]


async def _me(client: Any, token: str) -> int:
    resp = await client.get("/api/v1/auth/me", headers=bearer(token))
    return int(resp.status_code)


async def test_local_writes_take_effect_at_once(client: Any, admin_headers: dict[str, str]) -> None:
    user = await create_user(client, admin_headers)
    assert await _me(client, user["token"]) == 200  # now cached
    # Logout revokes at once.
    token2 = await login(client, user["email"], user["password"])
    assert await _me(client, token2) == 200
    assert (await client.post("/api/v1/auth/logout", headers=bearer(token2))).status_code == 200
    assert await _me(client, token2) == 401
    # A password change revokes older tokens at once.
    resp = await client.put(f"/api/v1/users/{user['public_id']}", json={"password": "another-pass-1"},
                            headers=admin_headers)
    assert resp.status_code == 200, await resp.get_data(as_text=True)
    assert await _me(client, user["token"]) == 401
    # A deleted user's token fails at once.
    fresh = await login(client, user["email"], "another-pass-1")
    assert await _me(client, fresh) == 200
    deleted = await client.delete(f"/api/v1/users/{user['public_id']}", headers=admin_headers)
    assert deleted.status_code == 200
    assert await _me(client, fresh) == 401


async def test_writes_from_elsewhere_seen_within_the_ttl(client: Any, services: Services) -> None:
    token = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert await _me(client, token) == 200
    claims = services.tokens.decode(token)
    assert claims is not None

    def revoke_elsewhere(conn: sa.Connection) -> None:
        conn.execute(revoked_tokens.insert().values(jti=claims.jti, expires_at=claims.expires_at))

    await services.db.write(revoke_elsewhere)
    await trio.sleep(AUTH_CACHE_TTL_S + 0.1)
    assert await _me(client, token) == 401

    token = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert await _me(client, token) == 200

    def delete_elsewhere(conn: sa.Connection) -> None:
        conn.execute(users.delete().where(users.c.email == ADMIN_EMAIL))

    await services.db.write(delete_elsewhere)
    await trio.sleep(AUTH_CACHE_TTL_S + 0.1)
    assert await _me(client, token) == 401
