"""The OpenAPI 3.1 description of the REST API (contract §3–§4.6) and a self-contained HTML page
that renders it (``/docs``, no external scripts: the lab machines have no internet).

The document is built from small helpers for the shapes that repeat (envelopes, pages, errors,
CRUD collections) and computed once per version: it is static. Callers must not mutate it.
WebSockets have no OpenAPI operations; they are described in ``info.description``.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from webmacs.api_tokens import SCOPE_REFUSED
from webmacs.csv_export import HEADER as CSV_HEADER
from webmacs.fieldspec import BodySpec, FieldSpec
from webmacs.http.auth import INVALID_LOGIN
from webmacs.http.bodies import BODIES
from webmacs.http.datapoints import (
    DEFAULT_SERIES_POINTS,
    MAX_SERIES_EVENTS,
    MAX_SERIES_MINUTES,
    MAX_SERIES_POINTS,
    SERIES_RULES,
    alias_conflict,
)
from webmacs.http.guards import (
    ADMIN_REQUIRED,
    AUTH_REQUIRED,
    INVALID_TOKEN,
    OPERATOR_REQUIRED,
    REVOKED,
    USER_NOT_FOUND,
)
from webmacs.http.requests import MAX_PAGE, MAX_PAGE_SIZE
from webmacs.http.tokens import ROLE_ABOVE_OWN, TOKENS_NEED_LOGIN
from webmacs.login_throttle import TOO_MANY_LOGINS
from webmacs.readings import EVENT_NOT_FOUND, VALUE_INVALID
from webmacs.roles import ROLE_LABELS, SCOPES
from webmacs.storage.records import EVENT_TYPES, LOGGING_TYPES, STATUS_TYPES
from webmacs.storage.sql.users import LAST_ADMIN
from webmacs.validation import (
    DECIMAL_PATTERN,
    EMAIL_MAX_LEN,
    EMAIL_PATTERN,
    NO_NUL_PATTERN,
    TIMESTAMP_MSG,
)

Schema = dict[str, Any]

API = "/api/v1"
JSON = "application/json"
BEARER_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]
EXAMPLE_ID = "3f2a9c1d-5b7e-4c1a-9d2e-8a6b4c0f1e23"
EXAMPLE_TS = "2026-02-10T20:44:08.123456+00:00"

DESCRIPTION = """\
REST API of webmacs, a WebMACS v2 compatible monitoring and control backend.

### Conventions

- Every path also answers with a trailing slash (`/api/v1/events/`): same status and body, never a redirect.
- Aliases (marked deprecated): `/api/v1/logs…` ≡ `/api/v1/logging…`; \
`POST /api/v1/datapoints/bulk` ≡ `POST /api/v1/datapoints/batch`.
- Bodies are JSON (`application/json`, any `+json` type, or no `Content-Type`); another type → 415. \
Unknown fields are ignored. In a PUT body an omitted or `null` field is left unchanged.
- Timestamps are returned in UTC with `+00:00` and microseconds (`2026-02-10T20:44:08.123456+00:00`). \
Input timestamps need an offset (`Z` or `±hh:mm`).
- Objects are addressed by `public_id`, a lower-case UUID4. \
Path ids are opaque: an unknown id gives 404, never 422.
- Errors carry a JSON `detail`: a human-readable string, or for 422 a list of `{loc, msg, type}` items.
- Authentication: `Authorization: Bearer <access_token>` from `POST /api/v1/auth/login`. \
Every route needs it except login, `/health`, `/openapi.json` and `/docs`.
- Roles: `viewer` < `operator` < `admin`. Every role reads (and opens the stream); creating, changing, \
stopping and deleting events, experiments, datapoints and log entries, and sending telemetry, need \
`operator` (else 403 `Operator role required.`); users are the admins' (403 `Admin privileges required.`), \
except one's own profile.
- Lists are pages `{page, page_size, total, data}` (`page` ≥ 1, `page_size` 1..1000, default 25) \
with a stable order; `/datapoints/latest` is a bare array.

### WebSockets

OpenAPI cannot describe WebSockets, so here they are in words. Both take the token as `?token=<jwt>` \
or as an `Authorization: Bearer` header; without either, the `webmacs_session` cookie set by login counts, \
but only when the upgrade's `Origin` is the server's own or one of `CORS_ORIGINS`. It is checked before the \
upgrade: a missing, invalid, revoked or orphaned token gets a plain HTTP 401 with a `detail` (the strings of \
the REST 401), a cookie from a foreign or missing `Origin` a 403 `Origin not allowed.`, a viewer's \
telemetry upgrade a 403 `Operator role required.`, an invalid \
`controller_id` a 422; never an accepted-then-closed socket. During shutdown the handshake gets 503 \
`Server shutting down.`, and beyond the connection caps 503.

- `/ws/controller/telemetry` (controller → server): send `{"seq": 42, "datapoints": [DatapointCreate, …]}` \
(`seq` optional). With `seq`, the server replies after commit with \
`{"type": "ack", "seq": 42, "accepted": 1, "rejected": []}`; \
bad items are rejected by name like a REST batch. \
An unusable frame gets `{"type": "error", "seq": 42, "detail": "…"}` and the connection stays open. \
Frames hold at most `MAX_BATCH` items and 2 MiB (larger → close 1009). \
With `?controller_id=<1-64 of A-Z a-z 0-9 . _ ->` a frame is identified by (controller_id, seq): \
a resend of a committed frame is not stored again and gets its first ack (exactly-once); \
an invalid id is refused before the upgrade with 422.
- `/ws/datapoints/stream` (server → browser): first `{"type": "connected", …}`, then \
`{"type": "datapoints_batch", "datapoints": [DatapointResponse, …]}` for every committed datapoint, and \
`{"type": "lag", "dropped": N}` after drops. `{"type": "ping"}` is answered with `{"type": "pong"}`. \
Optional filters: `event_public_id` (repeatable) and `experiment_public_id`.
- The server pings every `WS_HEARTBEAT_INTERVAL` seconds; a peer silent for two intervals is closed (1011). \
Close codes: 1000 normal end, 1001 shutdown, 1009 frame too big, \
1008 credential no longer valid (token revoked, logged out or expired, password changed, \
user deleted or demoted), \
1011 heartbeat timeout or internal error, 1013 stuck subscriber.
"""

TAGS = [
    {"name": "auth", "description": "Log in, log out, who am I (§3)."},
    {"name": "users", "description": "Accounts: admin-managed, self-service on one's own profile (§4.1)."},
    {"name": "events", "description": "Sensor and actuator channels (§4.2)."},
    {"name": "experiments", "description": "Create = start; idempotent stop; streamed CSV export (§4.3)."},
    {"name": "datapoints",
     "description": "Readings: single, batch, filtered pages, latest per event (§4.4)."},
    {"name": "logging", "description": "The operators' journal, newest first (§4.5). "
                                       "`/api/v1/logs` is a deprecated alias."},
    {"name": "tokens", "description": "API tokens for controllers and scripts (§8)."},
    {"name": "system", "description": "Health probe and this API description (§4.6). Public."},
]

# ------------------------------------------------------------------------------ schema helpers


def ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def string(min_len: int | None = None, max_len: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if min_len is not None:
        schema["minLength"] = min_len
    if max_len is not None:
        schema["maxLength"] = max_len
    return schema


def integer(minimum: int | None = None, maximum: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "integer", **extra}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def enum(values: tuple[str, ...], description: str) -> Schema:
    return {"type": "string", "enum": list(values), "description": description}


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null`` (JSON Schema 2020-12, as OpenAPI 3.1 uses it)."""
    if "$ref" in schema or "enum" in schema or "const" in schema or "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


def obj(props: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": props, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def page_of(item: str) -> Schema:
    return obj({"page": integer(1, MAX_PAGE), "page_size": integer(1, MAX_PAGE_SIZE),
                "total": integer(0, description="Every matching row, filters applied."),
                "data": {"type": "array", "items": ref(item)}},
               ("page", "page_size", "total", "data"))


def detail_error(description: str, detail: Schema, headers: dict[str, Schema] | None = None) -> Schema:
    """An error response whose body is ``{"detail": <string>}``."""
    response: Schema = {"description": description,
                        "content": {JSON: {"schema": obj({"detail": detail}, ("detail",))}}}
    if headers:
        response["headers"] = headers
    return response


def header(description: str, schema: Schema | None = None) -> Schema:
    return {"description": description, "schema": schema or {"type": "string"}}


def json_ok(description: str, schema: Schema, example: Any = None) -> Schema:
    media: Schema = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {JSON: media}}


def written(message: str, created: bool = False) -> dict[str, Schema]:
    """The write envelope (§2.3): 201 with ``public_id`` for creates, 200 otherwise."""
    example: Schema = {"status": "success", "message": message}
    if created:
        example["public_id"] = EXAMPLE_ID
        return {"201": json_ok("Created and committed.", ref("Created"), example)}
    return {"200": json_ok("Done and committed.", ref("WriteResult"), example)}


# ------------------------------------------------------------------------------ components

ENUMS = {EVENT_TYPES: "EventType", LOGGING_TYPES: "LoggingType", STATUS_TYPES: "StatusType"}
TIMESTAMP_INPUT = ("ISO 8601 with an offset (`Z` or `±hh:mm`), seconds 00..59, years 0001..9999 also "
                   "once converted to UTC. Fractions beyond microseconds are truncated.")


def field_schema(spec: FieldSpec) -> Schema:
    """The JSON Schema of one request field, from the declaration the validator reads."""
    schema: Schema
    if spec.kind == "text":
        schema = string(spec.min_len or None, spec.max_len, pattern=NO_NUL_PATTERN)
    elif spec.kind == "password":
        # More characters than bytes is impossible, so the byte cap also bounds the length.
        schema = string(spec.min_len or None, spec.max_len or spec.max_bytes)
    elif spec.kind == "email":
        schema = ref("Email")
    elif spec.kind == "number":
        schema = {"type": "number"}
    elif spec.kind == "boolean":
        schema = {"type": "boolean"}
    elif spec.kind == "choice":
        schema = ref(ENUMS[spec.options]) if spec.options in ENUMS else {"enum": list(spec.options)}
    elif spec.kind == "choices":
        schema = {"type": "array", "items": {"enum": list(spec.options)}, "uniqueItems": True}
    else:
        schema = string(format="date-time", description=TIMESTAMP_INPUT)
    return {**schema, "description": spec.description} if spec.description else schema


def rules_text(rules: tuple[str, ...]) -> str:
    """Cross-field rules in words, each with the exact ``msg`` of its 422."""
    return "Also refused with 422, for rules JSON Schema cannot state: " + "; ".join(
        f"`{rule}`" for rule in rules)


def body_schema(spec: BodySpec) -> Schema:
    """A request body: required fields as declared; optional ones also take ``null`` (= absent)."""
    props = {f.name: field_schema(f) if f.name in spec.required else nullable(field_schema(f))
             for f in spec.fields}
    description = " ".join(filter(None, (spec.description, rules_text(spec.rules) if spec.rules else "")))
    extra: Schema = {"description": description} if description else {}
    if spec.example is not None:
        extra["examples"] = [dict(spec.example)]
    return obj(props, spec.required, **extra)


DATAPOINT_CREATE = obj(
    {"value": ref("DatapointValue"), "event_public_id": string(description="The event's public_id."),
     "timestamp": nullable(string(format="date-time",
                                  description=f"Measurement time. {TIMESTAMP_INPUT} Default (also for "
                                              "null): arrival time."))},
    ("value", "event_public_id"),
    description=rules_text((VALUE_INVALID, TIMESTAMP_MSG)) + ": a value beyond double range (`1e400`, "
                "also when written as a string), a timestamp outside years 0001..9999 in UTC.",
    examples=[{"value": 21.5, "event_public_id": EXAMPLE_ID}],
)


def _schemas() -> dict[str, Schema]:
    nullable_id = nullable(ref("PublicId"))
    success = {"type": "string", "const": "success"}
    return {
        "PublicId": string(format="uuid", description="A lower-case UUID4 made by the server.",
                           examples=[EXAMPLE_ID]),
        "Timestamp": string(format="date-time", description="UTC, `+00:00` offset, microseconds.",
                            examples=[EXAMPLE_TS]),
        "Email": string(3, EMAIL_MAX_LEN, pattern=EMAIL_PATTERN,
                        description=f"Exactly one `@`, both sides non-empty, no whitespace and no NUL, "
                                    f"at most {EMAIL_MAX_LEN} characters. No dot needed (`root@localhost` "
                                    "is valid). The domain is lower-cased; the local part is kept as given.",
                        examples=["admin@webmacs.io"]),
        "EventType": enum(EVENT_TYPES, "The kind of channel."),
        "LoggingType": enum(LOGGING_TYPES, "Severity; default `info`."),
        "StatusType": enum(STATUS_TYPES, "A new entry is `unread`."),
        "ValidationErrorItem": obj(
            {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                     "examples": [["body", "datapoints", 3, "value"]]},
             "msg": string(), "type": string(examples=["missing"]),
             "input": {"description": "The offending value (never a password)."},
             "ctx": {"type": "object"}},
            ("loc", "msg", "type")),
        "ValidationError": obj({"detail": {"type": "array", "items": ref("ValidationErrorItem")}},
                               ("detail",)),
        "WriteResult": obj({"status": success, "message": string()}, ("status", "message")),
        "Created": obj({"status": success, "message": string(), "public_id": ref("PublicId")},
                       ("status", "message", "public_id")),
        **{spec.name: body_schema(spec) for spec in BODIES},
        "LoginResponse": obj(
            {"status": success, "message": string(), "access_token": string(description="A JWT."),
             "public_id": ref("PublicId"), "username": string()},
            ("status", "message", "access_token", "public_id", "username")),
        "UserResponse": obj(
            {"public_id": ref("PublicId"), "email": string(), "username": string(),
             "admin": {"type": "boolean", "description": "v2's flag: true exactly for the role `admin`."},
             "role": {"type": "string", "enum": list(ROLE_LABELS)}, "registered_on": ref("Timestamp")},
            ("public_id", "email", "username", "admin", "role", "registered_on")),
        "EventResponse": obj(
            {"public_id": ref("PublicId"), "name": string(), "min_value": {"type": "number"},
             "max_value": {"type": "number"}, "unit": string(), "type": ref("EventType"),
             "user_public_id": {**nullable_id, "description": "The creator, or null."}},
            ("public_id", "name", "min_value", "max_value", "unit", "type", "user_public_id")),
        "ApiTokenResponse": obj(
            {"public_id": ref("PublicId"), "name": string(), "role": enum(ROLE_LABELS, "At most the "
                                                                          "owner's role at creation."),
             "scopes": {"type": "array", "items": {"enum": sorted(SCOPES)}},
             "created_at": ref("Timestamp"), "expires_at": nullable(ref("Timestamp")),
             "last_used_at": {**nullable(ref("Timestamp")),
                              "description": "Written in batches: up to a few seconds behind."},
             "owner_public_id": ref("PublicId"), "owner_email": string()},
            ("public_id", "name", "role", "scopes", "created_at", "expires_at", "last_used_at",
             "owner_public_id", "owner_email")),
        "ApiTokenCreated": {"allOf": [ref("ApiTokenResponse"), obj(
            {"token": string(46, pattern="^wm_[A-Za-z0-9_-]{43,}$",
                             description="The secret: shown here once, stored only as a hash.")},
            ("token",))]},
        "ExperimentResponse": obj(
            {"public_id": ref("PublicId"), "name": string(), "started_on": ref("Timestamp"),
             "stopped_on": {**nullable(ref("Timestamp")), "description": "null while running."},
             "user_public_id": nullable_id},
            ("public_id", "name", "started_on", "stopped_on", "user_public_id")),
        "DatapointValue": {
            "oneOf": [{"type": "number"},
                      string(pattern=DECIMAL_PATTERN,
                             description="A finite decimal number as text (v2 controllers send these): "
                                         "ASCII digits, optional sign, fraction and exponent, surrounding "
                                         "whitespace allowed.")],
            "description": "A finite number. NaN, infinities, overflow (`1e400`), booleans and null → 422.",
            "examples": [21.5, "1.0"]},
        "DatapointCreate": DATAPOINT_CREATE,
        "DatapointBatch": obj(
            {"datapoints": {"type": "array", "items": ref("DatapointCreate"),
                            "description": "0..`MAX_BATCH` items (default 10000); more → 413."}},
            ("datapoints",),
            examples=[{"datapoints": [{"value": 21.5, "event_public_id": EXAMPLE_ID},
                                      {"value": "1.0", "event_public_id": EXAMPLE_ID,
                                       "timestamp": EXAMPLE_TS}]}]),
        "BatchRejection": obj(
            {"index": integer(0), "event_public_id": nullable(string()), "detail": string()},
            ("index", "event_public_id", "detail")),
        "BatchResult": obj(
            {"status": success, "message": string(examples=["3 datapoints successfully created."]),
             "accepted": integer(0, description="Items committed (also the message's leading number)."),
             "rejected": {"type": "array", "items": ref("BatchRejection"),
                          "description": "Items not written, by index, with the reason."}},
            ("status", "message", "accepted")),
        "SeriesRequest": obj(
            {"event_public_ids": {"type": "array", "items": string(), "minItems": 1,
                                  "maxItems": MAX_SERIES_EVENTS},
             "minutes": nullable({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SERIES_MINUTES,
                                  "description": "Window ending at `until` (default now), at most ten "
                                                 "years; or give `since`."}),
             "since": nullable(string(format="date-time", description=TIMESTAMP_INPUT)),
             "until": nullable(string(format="date-time", description=f"{TIMESTAMP_INPUT} Default: now.")),
             "max_points": nullable(integer(1, MAX_SERIES_POINTS, default=DEFAULT_SERIES_POINTS))},
            ("event_public_ids",), description=rules_text(SERIES_RULES),
            examples=[{"event_public_ids": [EXAMPLE_ID], "minutes": 60, "max_points": 1000}]),
        "SeriesPoint": obj(
            {"timestamp": ref("Timestamp"), "min": {"type": "number"}, "max": {"type": "number"},
             "mean": {"type": "number"}, "last": {"type": "number"}, "count": integer(1),
             "last_timestamp": ref("Timestamp")},
            ("timestamp", "min", "max", "mean", "last", "count", "last_timestamp")),
        "SeriesResponse": obj(
            {"since": ref("Timestamp"), "until": ref("Timestamp"), "bucket_seconds": {"type": "number"},
             "max_points": integer(1),
             "series": {"type": "array", "items": obj(
                 {"event_public_id": string(),
                  "points": {"type": "array", "items": ref("SeriesPoint")}},
                 ("event_public_id", "points"))}},
            ("since", "until", "bucket_seconds", "max_points", "series")),
        "DatapointResponse": obj(
            {"public_id": ref("PublicId"), "value": {"type": "number"}, "timestamp": ref("Timestamp"),
             "event_public_id": ref("PublicId"),
             "experiment_public_id": {**nullable_id,
                                      "description": "The experiment running at `timestamp`, or null."}},
            ("public_id", "value", "timestamp", "event_public_id", "experiment_public_id")),
        "LogEntryResponse": obj(
            {"public_id": ref("PublicId"), "content": string(), "logging_type": ref("LoggingType"),
             "status_type": ref("StatusType"),
             "user_public_id": {**nullable_id, "description": "The author, or null."},
             "created_on": ref("Timestamp")},
            ("public_id", "content", "logging_type", "status_type", "user_public_id", "created_on")),
        "Health": obj(
            {"status": enum(("healthy", "degraded"), "`degraded` when the database probe fails."),
             "version": string(), "database": enum(("ok", "error"), "Result of a trivial query."),
             "actors": enum(("ok", "degraded"),
                            "`degraded` when an actor of the tree keeps crashing past its limit."),
             "uptime_seconds": {"type": "number"}},
            ("status", "version", "database")),
        **{f"{name}Page": page_of(f"{name}Response")
           for name in ("User", "Event", "Experiment", "Datapoint", "LogEntry")},
    }


def _responses() -> dict[str, Schema]:
    return {
        "Unauthorized": detail_error(
            "Missing, invalid, expired or revoked token, or its user no longer exists.",
            {"type": "string", "enum": [AUTH_REQUIRED, INVALID_TOKEN, REVOKED, USER_NOT_FOUND]},
            {"WWW-Authenticate": header("Always `Bearer`.", {"type": "string", "const": "Bearer"})}),
        "Forbidden": detail_error("Authenticated, but the caller's role is not enough: writes need "
                                  "`operator`, users `admin`.",
                                  {"type": "string", "enum": [OPERATOR_REQUIRED, ADMIN_REQUIRED]}),
        "NotFound": detail_error("No object with this id: `<Entity> '<public_id>' not found.`",
                                 string(examples=[f"Event '{EXAMPLE_ID}' not found."])),
        "MethodNotAllowed": detail_error(
            "This path does not take that method (also for reserved segments such as "
            "`GET /api/v1/datapoints/batch`).", {"type": "string", "const": "Method Not Allowed"},
            {"Allow": header("The methods this path takes.", string(examples=["GET, OPTIONS, POST"]))}),
        "Conflict": detail_error("Duplicate or state conflict.",
                                 string(examples=["Event already exists."])),
        "PayloadTooLarge": detail_error("The body is over the server's limit.",
                                        string(examples=["Request body too large."])),
        "UnsupportedMediaType": detail_error("A non-empty body that is not JSON.",
                                             {"type": "string",
                                              "const": "Content-Type must be application/json."}),
        "ValidationFailed": {
            "description": "Validation failure: malformed JSON, a missing or invalid field, or a bad "
                           "query parameter. `detail` lists every problem.",
            "content": {JSON: {"schema": ref("ValidationError"), "example": {"detail": [
                {"loc": ["body", "name"], "msg": "Field required.", "type": "missing"}]}}}},
        "ServiceUnavailable": detail_error("The database is unreachable or busy past its timeout.",
                                           {"type": "string", "const": "Database unavailable."}),
        "LoginFailed": detail_error("Unknown email or wrong password (indistinguishable).",
                                    {"type": "string", "const": INVALID_LOGIN}),
        "TooManyLogins": detail_error(
            "Too many failed logins for this email or from this address; the password was not "
            "checked. The same answer for known and unknown emails.",
            {"type": "string", "const": TOO_MANY_LOGINS},
            {"Retry-After": header("Whole seconds until a new attempt is allowed.",
                                   {"type": "string", "pattern": "^[1-9][0-9]*$"})}),
    }


def _parameters() -> dict[str, Schema]:
    """Shared parameters by name."""
    return _parameter_table() | {"ResetLag": {
        "name": "reset", "in": "query", "required": False, "schema": string(examples=["1"]),
        "description": "`1` or `true`: admins clear the loop-lag window after reading it. Other values, "
                       "and the parameter from non-admins, are ignored."}}


def _parameter_table() -> dict[str, Schema]:
    """Parameters by key, inlined into the operations (simple clients need not resolve them)."""

    def query(name: str, schema: Schema, description: str, **extra: Any) -> Schema:
        return {"name": name, "in": "query", "required": False, "schema": schema,
                "description": description, **extra}

    ts = string(format="date-time")
    return {
        "PublicId": {"name": "public_id", "in": "path", "required": True, "schema": string(),
                     "description": "The object's `public_id`. Opaque: an unknown id gives 404."},
        "Page": query("page", integer(1, MAX_PAGE, default=1), "Page number, from 1. Beyond the last "
                                                              "page: 200 with `data` empty."),
        "PageSize": query("page_size", integer(1, MAX_PAGE_SIZE, default=25),
                          f"Items per page, 1..{MAX_PAGE_SIZE}."),
        "EventPublicId": query("event_public_id", string(), "Only this event's datapoints."),
        "EventId": query("event_id", string(), "Alias of `event_public_id`; if both are sent they "
                                               "must agree (else 422).", deprecated=True),
        "ExperimentPublicId": query("experiment_public_id", string(), "Only this experiment's datapoints."),
        "ExperimentId": query("experiment_id", string(), "Alias of `experiment_public_id`; if both are "
                                                         "sent they must agree (else 422).", deprecated=True),
        "Since": query("since", ts, "Inclusive lower bound on `timestamp`, ISO 8601 with an offset."),
        "Until": query("until", ts, "Exclusive upper bound on `timestamp`, ISO 8601 with an offset."),
    }


# ------------------------------------------------------------------------------ operations

ERROR_RESPONSES = {"401": "Unauthorized", "403": "Forbidden", "404": "NotFound", "405": "MethodNotAllowed",
                   "409": "Conflict", "413": "PayloadTooLarge", "415": "UnsupportedMediaType",
                   "422": "ValidationFailed", "503": "ServiceUnavailable"}
PARAMETERS = _parameters()
PAGING = ("Page", "PageSize")
ID = ("PublicId",)


# A timestamp valid as RFC 3339 text may still fall outside years 1..9999 in UTC (or name second 60).
BODY_RULES = {spec.name: spec.rules for spec in BODIES} | {
    "DatapointCreate": (VALUE_INVALID, TIMESTAMP_MSG),
    "DatapointBatch": (EVENT_NOT_FOUND, VALUE_INVALID, TIMESTAMP_MSG),
    "SeriesRequest": (*SERIES_RULES, TIMESTAMP_MSG)}


def validation_failed(rules: tuple[str, ...]) -> Schema:
    """The 422 of an operation with cross-field rules: the shared one, plus those rules in words."""
    shared = _responses()["ValidationFailed"]
    return {**shared, "description": f"{shared['description']} {rules_text(rules)}"}


def op(op_id: str, tag: str, summary: str, responses: dict[str, Schema], *, errors: str = "",
       params: tuple[str, ...] = (), body: str | None = None, public: bool = False, db: bool = True,
       description: str = "", deprecated: bool = False, rules: tuple[str, ...] = ()) -> Schema:
    """One operation. Errors implied by its shape are added: 401 unless public, 413/415/422 with a
    body, 422 with query parameters, 503 when it touches the database, 405 always. ``rules`` (and
    those of the body) are the 422s that no JSON Schema keyword states; the 422 names them."""
    codes = {"405", *errors.split()}
    codes |= set() if public else {"401"}
    codes |= {"413", "415", "422"} if body else set()
    codes |= {"422"} if any(p not in ID for p in params) else set()
    codes |= {"503"} if db else set()
    merged = {code: ref(ERROR_RESPONSES[code], "responses") for code in codes} | responses
    rules = (*BODY_RULES.get(body or "", ()), *rules)
    if rules:
        merged["422"] = validation_failed(rules)
    operation: Schema = {"tags": [tag], "summary": summary, "operationId": op_id}
    if description:
        operation["description"] = description
    if params:
        operation["parameters"] = [PARAMETERS[p] for p in params]
    if body:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(body)}}}
    operation["responses"] = dict(sorted(merged.items()))
    operation["security"] = [] if public else BEARER_SECURITY
    if deprecated:
        operation["deprecated"] = True
    return operation


def words(name: str) -> str:
    """``LogEntries`` → ``log entries``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


WRITE_ERRORS = "403"  # a viewer writing


def crud(base: str, tag: str, entity: str, plural: str, *, errors: str = "", conflict: bool = False,
         created_label: str | None = None, notes: dict[str, str] | None = None,
         writes: str = WRITE_ERRORS) -> dict[str, Schema]:
    """List, create, get, update and delete of one collection (users, events, experiments, logging).

    ``entity`` names the schemas (``<entity>Create`` …) and the messages; ``errors`` apply to all five,
    ``writes`` to create, update and delete."""
    notes = notes or {}
    noun, dup = words(entity), " 409" if conflict else ""
    write = f"{errors} {writes}"
    return {
        base: {
            "get": op(f"list{plural}", tag, f"List {words(plural)}",
                      {"200": json_ok("One page.", ref(f"{entity}Page"))}, errors=errors, params=PAGING,
                      description=notes.get("list", "")),
            "post": op(f"create{entity}", tag, f"Create {noun}",
                       written(f"{created_label or entity} successfully created.", created=True),
                       errors=write + dup, body=f"{entity}Create", description=notes.get("create", "")),
        },
        f"{base}/{{public_id}}": {
            "get": op(f"get{entity}", tag, f"Get {noun}",
                      {"200": json_ok(f"The {noun}.", ref(f"{entity}Response"))},
                      errors=errors + " 404", params=ID, description=notes.get("get", "")),
            "put": op(f"update{entity}", tag, f"Update {noun}", written(f"{entity} successfully updated."),
                      errors=write + " 404" + dup, params=ID, body=f"{entity}Update",
                      description=notes.get("update", "")),
            "delete": op(f"delete{entity}", tag, f"Delete {noun}", written(f"{entity} successfully deleted."),
                         errors=write + " 404", params=ID, description=notes.get("delete", "")),
        },
    }


def alias(paths: dict[str, Schema], old: str, new: str, suffix: str) -> dict[str, Schema]:
    """Deprecated copies of ``paths`` under another prefix, with their own operation ids."""
    out: dict[str, Schema] = {}
    for path, item in paths.items():
        copied = copy.deepcopy(item)
        for operation in copied.values():
            operation["operationId"] += suffix
            operation["deprecated"] = True
            operation["description"] = (f"Alias of `{path}`. " + operation.get("description", "")).strip()
        out[new + path.removeprefix(old)] = copied
    return out


def _auth_paths() -> dict[str, Schema]:
    return {
        f"{API}/auth/login": {"post": op(
            "login", "auth", "Log in", {
                "200": json_ok("A fresh access token.", ref("LoginResponse"), {
                    "status": "success", "message": "Successfully logged in.", "access_token": "<jwt>",
                    "public_id": EXAMPLE_ID, "username": "admin"}),
                "401": ref("LoginFailed", "responses"),
                "429": ref("TooManyLogins", "responses")},
            body="LoginRequest", public=True,
            description="Returns a JWT for `Authorization: Bearer`, and sets the same token as the "
                        "HttpOnly, SameSite=Strict `webmacs_session` cookie, which only the WebSocket "
                        "upgrades read. Unknown email and wrong password both give the same 401, "
                        "with equal timing. Repeated failures for one email or from one address "
                        "give 429 with `Retry-After`.")},
        f"{API}/auth/logout": {"post": op(
            "logout", "auth", "Log out", written("Successfully logged out."),
            description="Revokes the presented Bearer token; using it again gives 401 "
                        "`Token has been revoked.` Clears the `webmacs_session` cookie (on a 401 too).")},
        f"{API}/auth/me": {"get": op(
            "me", "auth", "The caller's user", {"200": json_ok("The caller.", ref("UserResponse"))})},
    }


def _experiment_paths() -> dict[str, Schema]:
    paths = crud(f"{API}/experiments", "experiments", "Experiment", "Experiments", conflict=True, notes={
        "list": "Newest first (`started_on` descending).",
        "create": "Creating starts the experiment. At most one runs at a time: 409 "
                  "`Experiment '<name>' is still running; stop it first.`; a duplicate name gives 409 "
                  "`Experiment already exists.`",
        "delete": "Also deletes all its datapoints. Deleting the running experiment is allowed."})
    item = f"{API}/experiments/{{public_id}}"
    disposition = ('attachment; filename="experiment_Run_42_3f2a9c1d.csv"; '
                   "filename*=UTF-8''experiment_Run_42_3f2a9c1d.csv")
    paths[f"{item}/stop"] = {"put": op(
        "stopExperiment", "experiments", "Stop experiment", written("Experiment successfully stopped."),
        errors="403 404", params=ID,
        description="Idempotent: later calls answer 200 and keep the first `stopped_on`. "
                    "Any body is ignored.")}
    paths[f"{item}/export/csv"] = {"get": op(
        "exportExperimentCsv", "experiments", "Export datapoints as CSV", {"200": {
            "description": "Streamed CSV (UTF-8, CRLF, minimal quoting), rows by `timestamp` ascending.",
            "headers": {"Content-Disposition": header("Both `filename` (ASCII) and `filename*` (RFC 5987).",
                                                      string(examples=[disposition]))},
            "content": {"text/csv": {"schema": string(), "example": ",".join(CSV_HEADER) + "\r\n"}}}},
        errors="404", params=ID, description="Allowed while the experiment is running.")}
    return paths


def _datapoint_paths() -> dict[str, Schema]:
    base = f"{API}/datapoints"
    batch_responses = {
        "201": json_ok("The valid items, committed together.", ref("BatchResult"), {
            "status": "success", "message": "1 datapoints successfully created.", "accepted": 1,
            "rejected": [{"index": 1, "event_public_id": EXAMPLE_ID, "detail": "Event not found."}]}),
        "413": detail_error("The body is over the server's limit, or the batch has more than `MAX_BATCH` "
                            "items.", string(examples=["Batch too large: 10001 datapoints (limit 10000)."])),
    }
    batch_note = ("Bad items (invalid field, non-finite value, bad timestamp, unknown event) are rejected "
                  "by index and listed in `rejected`; the good ones are committed. If every item of a "
                  "non-empty list is rejected: 422 with one `detail` item per rejection. More than "
                  "`MAX_BATCH` items: 413 `Batch too large: <n> datapoints (limit <MAX_BATCH>).`")

    def batch(op_id: str, deprecated: bool) -> Schema:
        prefix = "Alias of `POST /api/v1/datapoints/batch`. " if deprecated else ""
        return op(op_id, "datapoints", "Create many datapoints", batch_responses, body="DatapointBatch",
                  errors=WRITE_ERRORS, description=prefix + batch_note, deprecated=deprecated)

    return {
        base: {
            "get": op("listDatapoints", "datapoints", "List datapoints",
                      {"200": json_ok("One page, newest `timestamp` first.", ref("DatapointPage"))},
                      params=(*PAGING, "EventPublicId", "EventId", "ExperimentPublicId", "ExperimentId",
                              "Since", "Until"),
                      rules=(alias_conflict("event_public_id", "event_id"),
                             alias_conflict("experiment_public_id", "experiment_id"), TIMESTAMP_MSG),
                      description="Filters combine with AND. An unknown id gives an empty page."),
            "post": op("createDatapoint", "datapoints", "Create datapoint",
                       written("Datapoint successfully created.", created=True) | {"404": detail_error(
                           "Unknown `event_public_id`.", {"type": "string", "const": "Event not found."})},
                       body="DatapointCreate", errors=WRITE_ERRORS,
                       description="Stamped with the experiment running at its `timestamp`."),
        },
        f"{base}/batch": {"post": batch("createDatapoints", deprecated=False)},
        f"{base}/bulk": {"post": batch("createDatapointsBulk", deprecated=True)},
        f"{base}/series": {"post": op(
            "datapointSeries", "datapoints", "Downsampled series for charts",
            {"200": json_ok("Per requested event, at most `max_points` buckets ascending in time.",
                            ref("SeriesResponse"))},
            body="SeriesRequest",
            description="Computed in the database by time buckets of `(until - since) / max_points`: "
                        "min, max, mean and last (latest timestamp) per bucket, so spikes survive. "
                        "Unknown ids get an empty list.")},
        f"{base}/latest": {"get": op(
            "latestDatapoints", "datapoints", "Latest datapoint per event",
            {"200": json_ok("A bare array: one row per event with data, in event order.",
                            {"type": "array", "items": ref("DatapointResponse")})})},
        f"{base}/{{public_id}}": {
            "get": op("getDatapoint", "datapoints", "Get datapoint",
                      {"200": json_ok("The datapoint.", ref("DatapointResponse"))}, errors="404", params=ID,
                      description="`latest`, `batch`, `bulk` and `series` are reserved, never ids."),
            "delete": op("deleteDatapoint", "datapoints", "Delete datapoint",
                         written("Datapoint successfully deleted."), errors="403 404", params=ID),
        },
    }


def _token_paths() -> dict[str, Schema]:
    forbidden = detail_error("Not allowed for this caller.", {"type": "string", "enum": [
        ROLE_ABOVE_OWN, TOKENS_NEED_LOGIN, SCOPE_REFUSED]})
    return {
        f"{API}/tokens": {
            "get": op("listApiTokens", "tokens", "List API tokens",
                      {"200": json_ok("One page, newest first.", page_of("ApiTokenResponse"))},
                      params=PAGING, description="Your own; admins see everyone's. Never the secrets."),
            "post": op("createApiToken", "tokens", "Create an API token",
                       {"201": json_ok("The token, with its secret (shown only here).",
                                       ref("ApiTokenCreated")), "403": forbidden},
                       body="ApiTokenCreate",
                       description="For yourself, with a login token. Use the secret as `Authorization: "
                                   "Bearer wm_…` or, on the WebSockets, `?token=wm_…`."),
        },
        f"{API}/tokens/{{public_id}}": {"delete": op(
            "revokeApiToken", "tokens", "Revoke an API token",
            {"204": {"description": "Revoked. Its open WebSockets close with 1008."}}, errors="404",
            params=ID, description="Your own; admins any. Another user's token answers 404.")},
    }


def _system_paths() -> dict[str, Schema]:
    health = ref("Health")
    return {
        "/health": {"get": op(
            "health", "system", "Health probe", {
                "200": json_ok("The database answers.", health, {
                    "status": "healthy", "version": "0.1.0", "database": "ok", "uptime_seconds": 12.5}),
                "503": json_ok("The database probe failed.", health, {
                    "status": "degraded", "version": "0.1.0", "database": "error", "uptime_seconds": 12.5})},
            public=True, db=False, description="Runs a trivial query with a 2 s timeout.")},
        "/api/v1/metrics": {"get": op(
            "metrics", "system", "Runtime metrics",
            {"200": json_ok("Event-loop lag (p50/p99/max over the last minute), committed rows per "
                            "recorder, hub subscribers and publishes, open WebSocket connections.",
                            {"type": "object"})},
            params=("ResetLag",),
            description="`?reset=1` (admins) clears the loop-lag window, e.g. before a benchmark.")},
        "/metrics": {"get": op(
            "prometheus_metrics", "system", "Prometheus metrics", {"200": {
                "description": "The Prometheus text exposition format (`text/plain; version=0.0.4`).",
                "content": {"text/plain": {"schema": string()}}}},
            errors="403 404", db=False,
            description="Admins only. 404 when `METRICS_ENABLED=false` or when `METRICS_BIND` serves "
                        "the metrics on a listener of their own.")},
        "/openapi.json": {"get": op(
            "openapi", "system", "This OpenAPI document",
            {"200": json_ok("OpenAPI 3.1.", {"type": "object"})}, public=True, db=False)},
        "/docs": {"get": op(
            "docs", "system", "Interactive API reference", {"200": {
                "description": "A self-contained HTML page that renders `/openapi.json`.",
                "content": {"text/html": {"schema": string()}}}}, public=True, db=False)},
    }


@functools.cache
def openapi_document(version: str) -> dict[str, Any]:
    """The whole document (cached: it is static). Do not mutate the result."""
    logging = crud(f"{API}/logging", "logging", "LogEntry", "LogEntries", created_label="Log entry",
                   notes={"list": "Newest first (`created_on` descending)."})
    paths: dict[str, Schema] = {
        **_auth_paths(),
        **crud(f"{API}/users", "users", "User", "Users", errors="403", conflict=True, writes="409", notes={
            "list": "Admins only.", "create": "Admins only. 409 `User already exists.` for a taken email "
                                              "or username.",
            "get": "Admins, or the user themself (403 otherwise, checked before existence).",
            "update": "Admins, or the user themself. 409 `User already exists.` for a taken email or "
                      f"username; 409 `{LAST_ADMIN}` A password change revokes the user's earlier "
                      "tokens.",
            "delete": "Admins only. The user's events, experiments and log entries are kept, with "
                      f"`user_public_id` set to null. 409 `{LAST_ADMIN}`"}),
        **crud(f"{API}/events", "events", "Event", "Events", conflict=True, notes={
            "create": "409 `Event already exists.` for a duplicate name.",
            "delete": "Also deletes all its datapoints."}),
        **_experiment_paths(),
        **_datapoint_paths(),
        **logging,
        **alias(logging, f"{API}/logging", f"{API}/logs", "ViaLogs"),
        **_token_paths(),
        **_system_paths(),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "webmacs", "version": version, "description": DESCRIPTION,
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "responses": _responses(),
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "The `access_token` from `POST /api/v1/auth/login`."}},
        },
        "security": BEARER_SECURITY,
    }


# ------------------------------------------------------------------------------ /docs

DOCS_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>webmacs API</title>
<style>
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,sans-serif;color:#1c2430;background:#f4f6f9}
header{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;
  padding:10px 24px;background:#1c2430;color:#fff}
header h1{margin:0;font-size:18px;flex:1}
header small{opacity:.7;font-weight:400;font-size:12px}
header input{font:12px ui-monospace,monospace;padding:5px 7px;border:0;border-radius:4px}
#token{width:min(360px,60vw)}
main{max-width:1080px;margin:0 auto;padding:8px 24px 60px}
nav a{margin-right:14px}
h2{margin:26px 0 0;text-transform:capitalize}
.tagd{color:#5a6575}
.tagd p{margin:0 0 8px}
details.op,details.about{background:#fff;border:1px solid #d7dce4;border-radius:6px;margin:6px 0}
details[open].op{box-shadow:0 1px 4px #0002}
summary{cursor:pointer;padding:7px 10px;display:flex;gap:10px;align-items:center;list-style:none}
summary::-webkit-details-marker{display:none}
.m{flex:none;width:64px;padding:2px 0;border-radius:4px;color:#fff;text-align:center;
  font:700 12px ui-monospace,monospace;text-transform:uppercase}
.get{background:#2f74c0}.post{background:#2b8a53}.put{background:#b7791f}
.delete{background:#c53b37}.patch{background:#7b3fa0}
.path{font:600 13px ui-monospace,monospace}
.sum{flex:1;color:#5a6575}
.badge{font-size:11px;border:1px solid;border-radius:3px;padding:0 4px;color:#8a94a3}
.dep .path{text-decoration:line-through}
.in,.about .desc{padding:2px 14px 14px;border-top:1px solid #e5e8ee}
h4{margin:12px 0 4px;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#5a6575}
table{border-collapse:collapse;width:100%}
td{padding:4px 6px;border-top:1px solid #eef0f4;vertical-align:top}
code,pre,.t{font-family:ui-monospace,monospace;font-size:12px}
code{background:#eef1f5;padding:0 3px;border-radius:3px}
.t{color:#7b3fa0}
code.k{background:none;color:#2f74c0;font-weight:600}
.req{color:#c53b37}
.cons{color:#6b7686;font-size:12px}
ul.sc{margin:2px 0;padding-left:18px}
.desc p{margin:6px 0}
.code{font-weight:700;width:46px}
.s2{color:#2b8a53}.s4{color:#b7791f}.s5{color:#c53b37}
form.try{margin-top:12px;padding:8px 10px;background:#f7f9fc;border:1px dashed #c5cdd9;border-radius:6px}
form.try h4{margin-top:0}
form.try label{display:inline-block;margin:0 12px 6px 0;font-size:12px}
form.try input{display:block;width:250px;padding:3px 5px;font:12px ui-monospace,monospace}
textarea{display:block;width:100%;min-height:100px;margin-bottom:6px;font:12px ui-monospace,monospace}
button{padding:3px 14px;cursor:pointer}
pre{background:#1c2430;color:#e8edf3;padding:10px;border-radius:5px;overflow:auto;max-height:380px;
  white-space:pre-wrap}
</style>
</head>
<body>
<header><h1>webmacs API <small id="ver"></small></h1>
<input id="q" type="search" placeholder="Filter operations">
<input id="token" placeholder="Bearer token (kept in this browser)" autocomplete="off">
</header>
<main id="app"><p>Loading <code>/openapi.json</code>…</p></main>
<script>
"use strict";
const KEY = "webmacs.docs.token", $ = id => document.getElementById(id), tok = $("token"), app = $("app");
let D = {};
tok.value = localStorage.getItem(KEY) || "";
tok.oninput = () => localStorage.setItem(KEY, tok.value.trim());

const esc = s => String(s ?? "").replace(/[&<>"']/g, c => "&#" + c.charCodeAt(0) + ";");
const inl = s => esc(s).replace(/`([^`]+)`/g, "<code>$1</code>").replace(/\*\*([^*]+)\*\*/g, "<b>$1</b>");
const md = t => (t || "").trim().split(/\n\s*\n/).map(b =>
  b.startsWith("### ") ? "<h3>" + inl(b.slice(4)) + "</h3>"
  : b.startsWith("- ") ? "<ul><li>" + b.slice(2).split(/\n- /).map(inl).join("</li><li>") + "</li></ul>"
  : "<p>" + inl(b) + "</p>").join("");

// Schemas: follow $ref, summarise a type, list constraints, draw nested properties, make an example.
const res = s => {
  for (let i = 0; s && s.$ref && i < 20; i++)
    s = s.$ref.slice(2).split("/").reduce((o, k) => o && o[k.replace(/~1/g, "/").replace(/~0/g, "~")], D);
  return s || {};
};
const alts = r => r.anyOf || r.oneOf || [];
function ty(s) {
  const n = s.$ref ? s.$ref.split("/").pop() : "", r = res(s);
  const t = alts(r).length ? alts(r).map(ty).join(" | ")
    : r.type === "array" ? ty(r.items || {}).replace(/^(.* \| .*)$/, "($1)") + "[]"
    : [].concat(r.type || "any").join(" | ");
  return n ? (r.properties ? n : n + " (" + t + ")") : t;
}
function facts(s) {
  const r = res(s), o = [];
  if (r.format) o.push(r.format);
  if (r.enum) o.push("one of " + r.enum.map(v => JSON.stringify(v)).join(", "));
  if ("const" in r) o.push("= " + JSON.stringify(r.const));
  const range = (lo, hi) => hi == null ? "≥ " + lo : lo == null ? "≤ " + hi : lo + ".." + hi;
  if (r.minLength != null || r.maxLength != null) o.push(range(r.minLength, r.maxLength) + " chars");
  if (r.minimum != null || r.maximum != null) o.push(range(r.minimum, r.maximum));
  if ("default" in r) o.push("default " + JSON.stringify(r.default));
  if (r.pattern) o.push("pattern " + r.pattern);
  return o.concat(...alts(r).map(facts));
}
function cons(s) {
  const o = facts(s), d = s.description || res(s).description;
  return (o.length ? ' <span class="cons">' + esc(o.join("; ")) + "</span>" : "") + (d ? " — " + inl(d) : "");
}
function inner(s) {
  const r = res(s);
  if (r.properties) return r;
  if (r.items) return inner(r.items);
  for (const a of alts(r)) { const x = inner(a); if (x) return x; }
  return null;
}
function tree(s, d = 0) {
  const o = inner(s), rq = o && o.required || [];
  if (!o || d > 4) return "";
  return '<ul class="sc">' + Object.entries(o.properties).map(([k, v]) =>
    `<li><code class="k">${esc(k)}</code>` + (rq.includes(k) ? '<b class="req" title="required">*</b>' : "")
    + ` <span class="t">${esc(ty(v))}</span>${cons(v)}${tree(v, d + 1)}</li>`).join("") + "</ul>";
}
function ex(s, d = 0) {
  const r = res(s);
  for (const x of [s, r]) { if (x.examples) return x.examples[0]; if ("example" in x) return x.example; }
  if ("default" in r) return r.default;
  if ("const" in r) return r.const;
  if (r.enum) return r.enum[0];
  if (d > 5) return null;
  if (alts(r).length) return ex(alts(r)[0], d + 1);
  if (r.properties)
    return Object.fromEntries(Object.entries(r.properties).map(([k, v]) => [k, ex(v, d + 1)]));
  const t = [].concat(r.type)[0];
  if (t === "array") return [ex(r.items || {}, d + 1)];
  return {string: "", integer: 0, number: 0, boolean: false}[t] ?? null;
}
const shown = m => typeof m.example === "string" ? m.example : JSON.stringify(m.example, null, 2);

// One operation: summary line, description, parameters, body, responses and a "Try it" form.
function opHtml(path, method, op) {
  const auth = (op.security || D.security || []).length > 0, ps = (op.parameters || []).map(res);
  const rb = op.requestBody && res(op.requestBody), bs = rb && Object.values(rb.content || {})[0];
  let h = `<details class="op${op.deprecated ? " dep" : ""}" id="${esc(op.operationId || method + path)}">`
    + `<summary><span class="m ${method}">${method}</span><span class="path">${esc(path)}</span>`
    + `<span class="sum">${esc(op.summary)}</span>`
    + (op.deprecated ? '<span class="badge">deprecated</span>' : "")
    + `<span class="badge" title="${auth ? "Needs a bearer token" : "No token needed"}">`
    + `${auth ? "auth" : "public"}</span></summary>`
    + `<div class="in"><div class="desc">${md(op.description)}</div>`;
  if (ps.length) h += "<h4>Parameters</h4><table>" + ps.map(p =>
    `<tr><td><code class="k">${esc(p.name)}</code>${p.required ? '<b class="req">*</b>' : ""}</td>`
    + `<td>${esc(p.in)}</td><td><span class="t">${esc(ty(p.schema || {}))}</span>`
    + cons(p.schema || {}) + (p.deprecated ? ' <span class="badge">deprecated</span>' : "")
    + (p.description ? " — " + inl(p.description) : "") + "</td></tr>").join("") + "</table>";
  if (bs) h += `<h4>Request body</h4><span class="t">${esc(ty(bs.schema))}</span>`
    + cons(bs.schema) + tree(bs.schema);
  h += "<h4>Responses</h4><table>" + Object.entries(op.responses || {}).map(([c, r]) => {
    r = res(r);
    const [mt, m] = Object.entries(r.content || {})[0] || [];
    return `<tr><td class="code s${c[0]}">${esc(c)}</td><td>${md(r.description)}`
      + Object.entries(r.headers || {}).map(([k, x]) => `<div>Header <code>${esc(k)}</code>`
        + cons(res(x).schema || {}) + ` — ${inl(res(x).description)}</div>`).join("")
      + (m ? `<div><span class="cons">${esc(mt)}</span>`
        + ` <span class="t">${esc(ty(m.schema || {}))}</span></div>`
        + tree(m.schema || {}) + ("example" in m ? "<pre>" + esc(shown(m)) + "</pre>" : "") : "")
      + "</td></tr>";
  }).join("") + "</table>";
  h += `<form class="try" data-path="${esc(path)}" data-method="${method}"${auth ? ' data-auth="1"' : ""}>`
    + "<h4>Try it</h4>" + ps.filter(p => p.in === "path" || p.in === "query").map(p =>
      `<label>${esc(p.name)}${p.required ? " *" : ""}<input data-in="${p.in}" name="${esc(p.name)}"`
      + ` placeholder="${esc((p.schema || {}).default ?? ty(p.schema || {}))}"`
      + `${p.required ? " required" : ""}></label>`).join("")
    + (bs ? '<textarea name="body" spellcheck="false">'
      + esc(JSON.stringify(ex(bs.schema), null, 2)) + "</textarea>" : "")
    + '<div><button>Send</button> <span class="st"></span></div><pre class="out" hidden></pre></form>';
  return h + "</div></details>";
}

function render() {
  const tags = (D.tags || []).map(t => t.name), ops = {};
  for (const [p, item] of Object.entries(D.paths || {}))
    for (const [m, op] of Object.entries(item)) {
      if (!["get", "put", "post", "delete", "patch"].includes(m)) continue;
      const t = (op.tags || ["other"])[0];
      if (!tags.includes(t)) tags.push(t);
      (ops[t] = ops[t] || []).push(opHtml(p, m, op));
    }
  const used = tags.filter(t => ops[t]);
  $("ver").textContent = "v" + D.info.version + " · OpenAPI " + D.openapi;
  document.title = D.info.title + " API";
  app.innerHTML = '<details class="about"><summary><b>About this API</b> — conventions and WebSockets'
    + "</summary>"
    + `<div class="desc">${md(D.info.description)}</div></details><nav>`
    + used.map(t => `<a href="#tag-${esc(t)}">${esc(t)}</a>`).join("") + "</nav>"
    + used.map(t => `<section><h2 id="tag-${esc(t)}">${esc(t)}</h2><div class="tagd">`
      + md(((D.tags || []).find(x => x.name === t) || {}).description)
      + `</div>${ops[t].join("")}</section>`).join("");
  const el = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
}

$("q").oninput = e => {
  const v = e.target.value.toLowerCase();
  for (const d of document.querySelectorAll("details.op"))
    d.hidden = !!v && !d.querySelector("summary").textContent.toLowerCase().includes(v);
};

document.addEventListener("submit", async e => {
  const f = e.target;
  if (!f.matches("form.try")) return;
  e.preventDefault();
  const st = f.querySelector(".st"), out = f.querySelector(".out"), q = new URLSearchParams(), h = {};
  let url = f.dataset.path, body;
  for (const i of f.querySelectorAll("input[data-in]")) {
    if (i.value === "") continue;
    if (i.dataset.in === "path") url = url.replace("{" + i.name + "}", encodeURIComponent(i.value));
    else q.append(i.name, i.value);
  }
  if (String(q)) url += "?" + q;
  if (f.dataset.auth && tok.value.trim()) h.Authorization = "Bearer " + tok.value.trim();
  if (f.elements.body) { h["Content-Type"] = "application/json"; body = f.elements.body.value; }
  st.className = "st"; st.textContent = "…";
  const t0 = performance.now();
  try {
    const r = await fetch(url, {method: f.dataset.method.toUpperCase(), headers: h, body});
    let txt = await r.text();
    try {
      const j = JSON.parse(txt);
      txt = JSON.stringify(j, null, 2);
      if (j && j.access_token) { tok.value = j.access_token; localStorage.setItem(KEY, j.access_token); }
    } catch (_) { /* not JSON: show as is */ }
    st.className = "st code s" + String(r.status)[0];
    const ms = Math.round(performance.now() - t0);
    st.textContent = [r.status, r.statusText, "·", ms, "ms"].filter(x => x !== "").join(" ");
    out.textContent = txt;
    out.hidden = false;
  } catch (err) {
    st.className = "st s5";
    st.textContent = "Network error: " + err.message;
  }
});

fetch("/openapi.json")
  .then(r => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
  .then(d => { D = d; render(); })
  .catch(e => {
    app.innerHTML = "<p>Could not load <code>/openapi.json</code>: " + esc(e.message) + "</p>";
  });
</script>
</body>
</html>
"""


def docs_page() -> str:
    """The interactive reference: plain inline JS and CSS that fetch and render ``/openapi.json``."""
    return DOCS_HTML
