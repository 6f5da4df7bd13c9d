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
