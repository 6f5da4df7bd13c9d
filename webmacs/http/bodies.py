"""The request bodies of §3–§4.5, declared once: routes read them, ``/openapi.json`` renders them."""

from __future__ import annotations

from webmacs.fieldspec import BodySpec, FieldSpec
from webmacs.http.errors import RANGE_ERROR
from webmacs.roles import ROLE_CONFLICT, ROLE_LABELS
from webmacs.storage.records import EVENT_TYPES, LOGGING_TYPES, STATUS_TYPES
from webmacs.validation import PASSWORD_MAX_BYTES
from webmacs.validation import PASSWORD_TOO_LONG as PASSWORD_MSG

EMAIL = FieldSpec("email", "email")
USERNAME = FieldSpec("username", "text", 2, 50)
PASSWORD = FieldSpec(
    "password", "password", 8, max_bytes=PASSWORD_MAX_BYTES,
    description=f"At least 8 characters and at most {PASSWORD_MAX_BYTES} bytes of UTF-8 (bcrypt's "
                "limit). Never echoed back, not even in a 422.")

LOGIN = BodySpec(
    "LoginRequest",
    (EMAIL, FieldSpec("password", "password", 1,
                      description="No upper limit: an over-long password simply never matches.")),
    ("email", "password"), example={"email": "admin@webmacs.io", "password": "admin123"})

USER_CREATE = BodySpec(
    "UserCreate",
    (EMAIL, USERNAME, PASSWORD,
     FieldSpec("admin", "boolean", description="v2's flag: `true` is the role `admin`, `false` is not "
                                               "an admin (a new user: `operator`)."),
     FieldSpec("role", "choice", options=ROLE_LABELS,
               description="`viewer` < `operator` < `admin`; default `operator`.")),
    ("email", "username", "password"),
    rules=(PASSWORD_MSG, ROLE_CONFLICT),
    description="`role` and `admin` given together must agree (`admin` is true exactly for `admin`).",
    example={"email": "operator@lab.local", "username": "operator", "password": "change-me-123",
             "role": "operator"})
USER_UPDATE = USER_CREATE.updating(
    "UserUpdate", {"username": "operator2"},
    "`role` (and `admin`) may be changed by admins only; a non-admin sending a role other than "
    "their own gets 403. `admin: false` demotes an admin to `operator` and leaves other roles as "
    "they are. Demoting the last admin gives 409. A password change revokes the user's earlier "
    "tokens.")

EVENT_CREATE = BodySpec(
    "EventCreate",
    (FieldSpec("name", "text", 1, 255, description="Unique (exact match)."),
     FieldSpec("min_value", "number", description="Finite; at most `max_value`."),
     FieldSpec("max_value", "number", description="Finite; at least `min_value`."),
     FieldSpec("unit", "text", 1, 255),
     FieldSpec("type", "choice", options=EVENT_TYPES)),
    ("name", "min_value", "max_value", "unit", "type"),
    rules=(RANGE_ERROR.msg,),
    description="`min_value` > `max_value` → 422 with `loc` `[\"body\"]`.",
    example={"name": "Temperature Reactor", "min_value": 0, "max_value": 150, "unit": "°C",
             "type": "sensor"})
EVENT_UPDATE = EVENT_CREATE.updating(
    "EventUpdate", {"unit": "K"},
    "`min_value` ≤ `max_value` is checked on the merged values (422 with `loc` `[\"body\"]`).")

EXPERIMENT_CREATE = BodySpec(
    "ExperimentCreate", (FieldSpec("name", "text", 1, 255, description="Unique."),), ("name",),
    example={"name": "Run 42"})
EXPERIMENT_UPDATE = EXPERIMENT_CREATE.updating(
    "ExperimentUpdate", {"name": "Run 42 (calibration)"},
    "Renames; other fields (e.g. `stopped_on`) are ignored.")

LOG_CONTENT = FieldSpec("content", "text", 1, 500)
LOG_CREATE = BodySpec(
    "LogEntryCreate",
    (LOG_CONTENT, FieldSpec("logging_type", "choice", options=LOGGING_TYPES)),
    ("content",), example={"content": "Heater replaced.", "logging_type": "info"})
LOG_UPDATE = BodySpec(
    "LogEntryUpdate",
    (FieldSpec("status_type", "choice", options=STATUS_TYPES), LOG_CONTENT),
    example={"status_type": "read"})

BODIES = (LOGIN, USER_CREATE, USER_UPDATE, EVENT_CREATE, EVENT_UPDATE, EXPERIMENT_CREATE,
          EXPERIMENT_UPDATE, LOG_CREATE, LOG_UPDATE)
