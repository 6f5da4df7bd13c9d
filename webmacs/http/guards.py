"""Authentication and authorisation (§3.4): one token check for REST and both WebSockets."""

from __future__ import annotations

import attrs
from quart import request

from webmacs.http.context import services
from webmacs.http.errors import ApiError
from webmacs.roles import Role
from webmacs.services import Services
from webmacs.storage.records import UserRecord

BEARER = {"WWW-Authenticate": "Bearer"}
AUTH_REQUIRED = "Authentication required."
INVALID_TOKEN = "Invalid or expired token."
REVOKED = "Token has been revoked."
USER_NOT_FOUND = "User not found."
ADMIN_REQUIRED = "Admin privileges required."  # v2's words, kept for the admin routes
OPERATOR_REQUIRED = "Operator role required."
REFUSALS = {Role.VIEWER: "Viewer role required.", Role.OPERATOR: OPERATOR_REQUIRED,
            Role.ADMIN: ADMIN_REQUIRED}


@attrs.frozen
class Principal:
    """Who is calling, and with what rights: the user behind the credential, the credential's
    effective role (never above its owner's) and scopes (empty: unrestricted)."""

    user: UserRecord
    role: Role
    scopes: frozenset[str] = frozenset()
    jti: str | None = None  # a login token's id (what logout revokes)
    api_token: str | None = None  # an API token's public id

    def at_least(self, role: Role) -> bool:
        return self.role >= role


class AuthFailed(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, dict(BEARER))


def bearer_token(header: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer`` header (scheme case-insensitive)."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


async def authenticate(svc: Services, token: str | None) -> Principal:
    """Who ``token`` belongs to, or :class:`AuthFailed` in §3.4's order."""
    if not token:
        raise AuthFailed(AUTH_REQUIRED)
    claims = svc.tokens.decode(token)
    if claims is None:
        raise AuthFailed(INVALID_TOKEN)
    if await svc.repos.tokens.is_revoked(claims.jti):
        raise AuthFailed(REVOKED)
    user = await svc.repos.users.get(claims.sub)
    if (
        user is not None
        and user.tokens_valid_after is not None
        and claims.issued_at < user.tokens_valid_after
    ):
        raise AuthFailed(REVOKED)
    if user is None:
        raise AuthFailed(USER_NOT_FOUND)
    # The role is read from the (briefly cached) user at every request: a change applies at once.
    return Principal(user, user.role, jti=claims.jti)


async def current_principal() -> Principal:
    return await authenticate(services(), bearer_token(request.headers.get("Authorization")))


def require(principal: Principal, role: Role) -> Principal:
    """``principal`` if its role is at least ``role``, else the 403 naming the role needed."""
    if not principal.at_least(role):
        raise ApiError(403, REFUSALS[role])
    return principal


async def current_user() -> UserRecord:
    """Any authenticated user (every role reads): the routes that only read."""
    return (await current_principal()).user


async def current_operator() -> UserRecord:
    """Operators and admins: the routes that write the lab's data."""
    return require(await current_principal(), Role.OPERATOR).user


async def current_admin() -> UserRecord:
    """Admins: users (and tokens)."""
    return require(await current_principal(), Role.ADMIN).user
