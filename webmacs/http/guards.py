"""Authentication and authorisation (§3.4): one token check for REST and both WebSockets."""

from __future__ import annotations

from datetime import datetime

import attrs
from quart import request

from webmacs.api_tokens import SCOPE_REFUSED, is_api_token, scope_allows
from webmacs.http.context import services
from webmacs.http.errors import ApiError
from webmacs.roles import Role
from webmacs.services import Services
from webmacs.storage.records import UserRecord
from webmacs.validation import utcnow

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
    issued_at: datetime | None = None  # a login token's ``iat`` (a password change revokes older)
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
    if is_api_token(token):
        return await _authenticate_api_token(svc, token)
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
    return Principal(user, user.role, jti=claims.jti, issued_at=claims.issued_at)


async def _authenticate_api_token(svc: Services, secret: str) -> Principal:
    """An API token: known and unexpired, its owner still there; the role is the lower of the
    token's and the owner's current one. Its use is noted for ``last_used_at`` (batched)."""
    record = await svc.repos.api_tokens.find(secret)
    now = utcnow()
    if record is None or (record.expires_at is not None and record.expires_at <= now):
        raise AuthFailed(INVALID_TOKEN)
    user = await svc.repos.users.get(record.owner_public_id)
    if user is None:
        raise AuthFailed(USER_NOT_FOUND)
    svc.token_usage.record(record.public_id, now)
    role = min(Role.parse(record.role) or Role.VIEWER, user.role)
    return Principal(user, role, record.scopes, api_token=record.public_id)


def check_scope(principal: Principal, endpoint: str | None, method: str) -> None:
    """403 if the credential's scopes do not reach this endpoint (one rule for every route)."""
    if not scope_allows(principal.scopes, endpoint, method):
        raise ApiError(403, SCOPE_REFUSED)


async def current_principal() -> Principal:
    principal = await authenticate(services(), bearer_token(request.headers.get("Authorization")))
    check_scope(principal, request.endpoint, request.method)
    return principal


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
