"""Authentication and authorisation (§3.4): one token check for REST and both WebSockets."""

from __future__ import annotations

from quart import request

from webmacs.http.context import services
from webmacs.http.errors import ApiError
from webmacs.services import Services
from webmacs.storage.records import UserRecord

BEARER = {"WWW-Authenticate": "Bearer"}
AUTH_REQUIRED = "Authentication required."
INVALID_TOKEN = "Invalid or expired token."
REVOKED = "Token has been revoked."
USER_NOT_FOUND = "User not found."
ADMIN_REQUIRED = "Admin privileges required."


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


async def authenticate(svc: Services, token: str | None) -> tuple[UserRecord, str]:
    """The user behind ``token`` and the token's jti, or :class:`AuthFailed` in §3.4's order."""
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
    return user, claims.jti


async def current_user() -> UserRecord:
    user, _ = await authenticate(services(), bearer_token(request.headers.get("Authorization")))
    return user


async def current_admin() -> UserRecord:
    user = await current_user()
    require_admin(user)
    return user


def require_admin(user: UserRecord) -> None:
    if not user.admin:
        raise ApiError(403, ADMIN_REQUIRED)
