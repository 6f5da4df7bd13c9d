"""Plain, frozen records that cross the storage boundary (no SQLAlchemy rows leak out)."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, NamedTuple, TypeVar

import attrs

from webmacs.roles import Role

T = TypeVar("T")

EVENT_TYPES = ("sensor", "actuator", "range", "cmd_button", "cmd_opened", "cmd_closed")
LOGGING_TYPES = ("info", "warning", "error")
STATUS_TYPES = ("read", "unread")


@attrs.frozen
class Page(Generic[T]):
    items: list[T]
    total: int


@attrs.frozen
class UserRecord:
    public_id: str
    email: str
    username: str
    role: Role
    registered_on: datetime
    password_hash: str
    tokens_valid_after: datetime | None

    @property
    def admin(self) -> bool:
        """What v2 clients know as ``admin``: derived, the role is the one source of truth."""
        return self.role is Role.ADMIN


@attrs.frozen
class EventRecord:
    public_id: str
    name: str
    min_value: float
    max_value: float
    unit: str
    type: str
    user_public_id: str | None


@attrs.frozen
class ExperimentRecord:
    public_id: str
    name: str
    started_on: datetime
    stopped_on: datetime | None
    user_public_id: str | None


class DatapointRecord(NamedTuple):
    """Per-reading values are NamedTuples, not attrs classes: immutable just the same, and
    several times cheaper to build (attrs' frozen ``__init__`` was 16% of the event loop's busy
    time while ingesting)."""

    public_id: str
    value: float
    timestamp: datetime
    event_public_id: str
    experiment_public_id: str | None


@attrs.frozen
class LogEntryRecord:
    public_id: str
    content: str
    logging_type: str
    status_type: str
    user_public_id: str | None
    created_on: datetime


@attrs.frozen
class DatapointFilter:
    event_public_id: str | None = None
    experiment_public_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


# -- write inputs


@attrs.frozen
class UserChanges:
    email: str | None = None
    username: str | None = None
    password_hash: str | None = None
    role: Role | None = None


@attrs.frozen
class EventFields:
    name: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    unit: str | None = None
    type: str | None = None


class NewReading(NamedTuple):
    """A validated reading waiting to be stored: its event is known only by public id."""

    index: int  # type: ignore[assignment]  # (shadows tuple.index, which nothing here uses)
    value: float
    event_public_id: str
    timestamp: datetime | None


@attrs.frozen
class Rejection:
    """A batch item that was not written, with the reason the client sees."""

    index: int
    event_public_id: str | None
    detail: str
    field: str = "event_public_id"
    type: str = "event_not_found"
    input: object = None


@attrs.frozen
class IngestResult:
    stored: list[DatapointRecord]
    rejected: list[Rejection]
    first_accepted: int | None = None  # a resent frame: nothing stored now; its first ack's count

    @property
    def accepted(self) -> int:
        return len(self.stored) if self.first_accepted is None else self.first_accepted


@attrs.frozen
class ApiTokenRecord:
    """An API token as listed (never its secret or hash); ``owner_*`` name its user."""

    public_id: str
    name: str
    role: str
    scopes: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    owner_public_id: str
    owner_email: str


@attrs.frozen
class OpenSocketCredential:
    """What the credential watcher reads for an API token behind an open socket: its role and
    expiry, and its owner's current role (``None``: the token or its owner is gone)."""

    public_id: str
    role: str
    expires_at: datetime | None
    owner_public_id: str
    owner_role: str


@attrs.frozen
class LoginState:
    """What the credential watcher reads for sockets opened with login tokens: each owner's
    current role and ``tokens_valid_after`` (a password change; an owner missing here is
    deleted), and which of the sockets' token ids were revoked (a logout)."""

    owners: dict[str, tuple[Role, datetime | None]]
    revoked: frozenset[str]
