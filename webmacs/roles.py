"""Roles and scopes: who may do what, as plain values (no I/O).

``viewer`` < ``operator`` < ``admin``: viewers read, operators also write the lab's data and
send telemetry, admins also manage users and tokens. A scope narrows a credential further:
``telemetry`` is what a controller needs (send telemetry, receive commands, read events).
"""

from __future__ import annotations

import enum

TELEMETRY_SCOPE = "telemetry"
SCOPES = frozenset({TELEMETRY_SCOPE})


class Role(enum.IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role | None:
        """The role named ``text`` (``viewer``, ``operator``, ``admin``), or None."""
        try:
            return cls[text.upper()] if text.isalpha() else None
        except KeyError:
            return None

    @classmethod
    def of_admin_flag(cls, admin: bool) -> Role:
        """What a v2 client's ``admin: true/false`` means: admin, or operator."""
        return cls.ADMIN if admin else cls.OPERATOR


ROLE_LABELS = tuple(r.label for r in Role)
ROLE_CONFLICT = "role and admin disagree"


class RoleConflict(ValueError):
    """``role`` and ``admin`` were both given and say different things."""


def requested_role(role: Role | None, admin: bool | None, current: Role | None) -> Role | None:
    """The role a users request asks for (None: no change), from the new ``role`` and v2's
    ``admin`` flag. ``admin: false`` means "not an admin": an admin (or a new user) becomes an
    operator, a viewer or operator keeps their role, so a v2 client that sends its form's
    ``admin: false`` with every edit never changes a viewer into an operator. ``current`` is the
    user's role (None: a new user)."""
    if role is not None:
        if admin is not None and admin != (role is Role.ADMIN):
            raise RoleConflict(ROLE_CONFLICT)
        return role
    if admin is None:
        return None
    if admin:
        return Role.ADMIN
    return current if current is not None and current is not Role.ADMIN else Role.OPERATOR
