"""§4.6: ``/openapi.json`` describes every REST route of §3–§4.6 and ``/docs`` renders it.

The document is checked structurally (no external validator: every ``$ref`` resolves, every operation
has responses, path parameters match their templates), against the routes the app really registers,
against the validation rules in code, and against live responses: each answer the app gives in the
scenarios below must be documented for that operation and match the documented schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import bearer, create_event, create_user, login

from webmacs import __version__
from webmacs.fieldspec import BodySpec, FieldSpec
from webmacs.http.bodies import BODIES
from webmacs.http.errors import RANGE_ERROR
from webmacs.http.openapi import docs_page, openapi_document
from webmacs.http.requests import MAX_PAGE, MAX_PAGE_SIZE
from webmacs.storage.records import EVENT_TYPES, LOGGING_TYPES, STATUS_TYPES
from webmacs.validation import Fields

DOC = openapi_document(__version__)
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
PUBLIC = {("/api/v1/auth/login", "post"), ("/health", "get"), ("/openapi.json", "get"), ("/docs", "get")}
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


# ---------------------------------------------------------------------------- helpers


def operations(doc: dict[str, Any] = DOC) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield path, method, op


def resolve(pointer: str, doc: dict[str, Any] = DOC) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = doc
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def deref(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(node["$ref"])
    return node


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def violations(schema: dict[str, Any], value: Any, at: str = "$") -> list[str]:
    """The subset of JSON Schema 2020-12 the document uses; an empty list means valid."""
    schema = deref(schema)
    if "anyOf" in schema and not any(not violations(s, value, at) for s in schema["anyOf"]):
        return [f"{at}: matches no anyOf alternative: {value!r}"]
    if "oneOf" in schema:
        matches = sum(not violations(s, value, at) for s in schema["oneOf"])
        if matches != 1:
            return [f"{at}: matches {matches} oneOf alternatives: {value!r}"]
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](value) for t in types):
            return [f"{at}: {value!r} is not {types}"]
    errors: list[str] = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{at}: {value!r} != const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{at}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{at}: length of {value!r} out of bounds")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{at}: {value!r} does not match {schema['pattern']}")
    if TYPES["number"](value) and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        errors.append(f"{at}: {value!r} out of bounds")
    if isinstance(value, dict):
        errors += [f"{at}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += violations(sub, value[key], f"{at}.{key}")
    if isinstance(value, list) and schema.get("uniqueItems") and len({repr(v) for v in value}) < len(value):
        errors.append(f"{at}: {value!r} has duplicates")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += violations(schema["items"], item, f"{at}[{i}]")
    return errors


async def call(client: Any, method: str, template: str, expect: int, *, ids: dict[str, str] | None = None,
               query: dict[str, str] | None = None, headers: dict[str, str] | None = None,
               **kwargs: Any) -> Any:
    """Send a request to ``template`` (a documented path) and check the answer against the document:
    the status is documented for the operation, and the body and headers match what it says."""
    url = template.format(**(ids or {}))
    resp = await client.open(url, method=method.upper(), query_string=query, headers=headers, **kwargs)
    raw = await resp.get_data(as_text=True)
    assert resp.status_code == expect, (method, url, resp.status_code, raw)
    op = DOC["paths"][template][method]
    assert str(expect) in op["responses"], f"{method.upper()} {template} answered undocumented {expect}"
    documented = deref(op["responses"][str(expect)])
    for name in documented.get("headers", {}):
        assert name in resp.headers, f"{method.upper()} {template} {expect} lacks header {name}"
    media, spec = next(iter(documented["content"].items()))
    assert resp.mimetype == media, (method, url, resp.mimetype, media)
    body: Any = json.loads(raw) if media == "application/json" else raw
    errors = violations(spec["schema"], body)
    assert not errors, (method, url, errors)
    return body


# ---------------------------------------------------------------------------- structure


def test_the_checker_itself() -> None:
    schema = DOC["components"]["schemas"]["ExperimentResponse"]
    ok = {"public_id": UNKNOWN_ID, "name": "x", "started_on": "t", "stopped_on": None,
          "user_public_id": None}
    assert violations(schema, ok) == []
    assert violations(schema, {**ok, "stopped_on": 3})
    assert violations(schema, {k: v for k, v in ok.items() if k != "name"})
    assert violations({"type": "integer", "minimum": 1}, 0)
    assert violations({"type": "integer"}, True)


def test_document_header_and_websockets_in_description() -> None:
    assert DOC["openapi"] == "3.1.0"
    assert DOC["info"]["title"] == "webmacs" and DOC["info"]["version"] == __version__
    description = DOC["info"]["description"]
    for text in ("/ws/controller/telemetry", "/ws/datapoints/stream", "?token=", '"type": "ack"',
                 "datapoints_batch", "1009", "1013"):
        assert text in description, text
    assert openapi_document(__version__) is DOC  # computed once


def test_every_operation_is_complete() -> None:
    tags = {t["name"] for t in DOC["tags"]}
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for path, method, op in operations():
        where = f"{method.upper()} {path}"
        assert path.startswith("/") and not path.endswith("/"), where
        assert op["summary"] and set(op["tags"]) <= tags, where
        assert op["responses"], where
        assert any(code.startswith("2") for code in op["responses"]), where
        for code, response in op["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", code), (where, code)
            assert deref(response)["description"], (where, code)
        if "requestBody" in op:
            assert op["requestBody"]["required"] is True
            assert set(op["requestBody"]["content"]) == {"application/json"}, where


def test_every_ref_resolves_and_every_component_is_used() -> None:
    used: set[str] = set()
    for node in walk(DOC):
        if "$ref" in node:
            assert isinstance(resolve(node["$ref"]), dict), node["$ref"]
            used.add(node["$ref"])
    for kind, components in DOC["components"].items():
        if kind == "securitySchemes":
            continue
        for name in components:
            assert f"#/components/{kind}/{name}" in used, f"unused component {kind}/{name}"


def test_path_parameters_match_templates() -> None:
    for path, method, op in operations():
        in_template = set(re.findall(r"\{([^}]+)\}", path))
        params = [deref(p) for p in op.get("parameters", [])]
        declared = {p["name"] for p in params if p["in"] == "path"}
        assert declared == in_template, (method, path)
        assert all(p["required"] for p in params if p["in"] == "path")
        assert len({(p["name"], p["in"]) for p in params}) == len(params), (method, path)


def test_examples_match_their_schemas() -> None:
    checked = 0
    for node in walk(DOC):
        if isinstance(node.get("examples"), list) and ("type" in node or "oneOf" in node):
            for example in node["examples"]:
                assert not violations(node, example), (example, violations(node, example))
                checked += 1
        if "example" in node and "schema" in node:
            assert not violations(node["schema"], node["example"]), node["example"]
            checked += 1
    assert checked > 20


def test_bearer_security_everywhere_except_public_routes() -> None:
    scheme = DOC["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert DOC["security"] == [{"bearerAuth": []}]
    for path, method, op in operations():
        responses = {code: deref(r) for code, r in op["responses"].items()}
        if (path, method) in PUBLIC:
            assert op["security"] == [], (method, path)
            assert "WWW-Authenticate" not in responses.get("401", {}).get("headers", {})
        else:
            assert op["security"] == [{"bearerAuth": []}], (method, path)
            assert "WWW-Authenticate" in responses["401"]["headers"], (method, path)


def test_error_responses() -> None:
    for path, method, op in operations():
        codes = set(op["responses"])
        assert "405" in codes and "Allow" in deref(op["responses"]["405"])["headers"]
        if path.startswith("/api/"):
            assert "503" in codes, (method, path)
        if "requestBody" in op:
            assert {"413", "415", "422"} <= codes, (method, path)
        if "422" in codes:
            schema = deref(deref(op["responses"]["422"])["content"]["application/json"]["schema"])
            item = deref(schema["properties"]["detail"]["items"])
            assert schema["properties"]["detail"]["type"] == "array"
            assert set(item["required"]) == {"loc", "msg", "type"}
    users = DOC["paths"]["/api/v1/users/{public_id}"]
    assert {"403", "404", "409"} <= set(users["put"]["responses"])
    assert "403" in DOC["paths"]["/api/v1/users"]["get"]["responses"]
    assert "409" in DOC["paths"]["/api/v1/events"]["post"]["responses"]
    assert "409" not in DOC["paths"]["/api/v1/logging"]["post"]["responses"]


def test_pagination_and_datapoint_filters() -> None:
    pages = 0
    for path, _method, op in operations():
        ok = deref(op["responses"].get("200", {}))
        schema = ok.get("content", {}).get("application/json", {}).get("schema", {})
        if not schema.get("$ref", "").endswith("Page"):
            continue
        params = {p["name"]: p for p in op["parameters"]}
        assert params["page"]["schema"] == {
            "type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}, path
        assert params["page_size"]["schema"] == {
            "type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 25}, path
        assert "422" in op["responses"]
        pages += 1
    assert pages == 6  # users, events, experiments, datapoints, logging and logs
    params = {p["name"]: p for p in DOC["paths"]["/api/v1/datapoints"]["get"]["parameters"]}
    assert set(params) == {"page", "page_size", "event_public_id", "event_id", "experiment_public_id",
                           "experiment_id", "since", "until"}
    assert params["event_id"]["deprecated"] and params["experiment_id"]["deprecated"]
    assert params["since"]["schema"]["format"] == "date-time"
    assert all(p["in"] == "query" and not p["required"] for p in params.values())


def test_request_schemas_follow_the_validation_rules() -> None:
    schemas = DOC["components"]["schemas"]

    def prop(schema: str, name: str) -> dict[str, Any]:
        return deref(schemas[schema]["properties"][name])

    assert schemas["EventType"]["enum"] == list(EVENT_TYPES)
    assert schemas["LoggingType"]["enum"] == list(LOGGING_TYPES)
    assert schemas["StatusType"]["enum"] == list(STATUS_TYPES)
    assert set(schemas["EventCreate"]["required"]) == {"name", "min_value", "max_value", "unit", "type"}
    def bounds(schema: str, name: str) -> tuple[int, int]:
        return prop(schema, name)["minLength"], prop(schema, name)["maxLength"]

    assert bounds("EventCreate", "name") == bounds("EventCreate", "unit") == (1, 255)
    assert bounds("UserCreate", "username") == (2, 50)
    assert prop("UserCreate", "password")["minLength"] == 8
    assert prop("LoginRequest", "password")["minLength"] == 1
    assert prop("LogEntryCreate", "content")["maxLength"] == 500
    assert prop("ExperimentCreate", "name")["maxLength"] == 255
    assert set(schemas["DatapointCreate"]["required"]) == {"value", "event_public_id"}
    email = schemas["Email"]
    for good in ("lab@pi.local", "root@localhost", "ops@box.lan"):
        assert not violations(email, good)
    for bad in ("a@b@c", "@x", "x@", "a b@c"):
        assert violations(email, bad), bad
    value = schemas["DatapointValue"]
    for good in (1, 21.5, "1.0", "-2.5e3"):
        assert not violations(value, good), good
    for bad in ("abc", "NaN", True, None):
        assert violations(value, bad), bad
    # PUT bodies: nothing required, null accepted (= unchanged)
    for name in ("UserUpdate", "EventUpdate", "ExperimentUpdate", "LogEntryUpdate"):
        assert "required" not in schemas[name]
        assert all(not violations(s, None) for s in schemas[name]["properties"].values()), name
    batch = schemas["BatchResult"]
    assert {"accepted", "rejected"} <= set(batch["properties"])
    assert set(deref(batch["properties"]["rejected"]["items"])["required"]) == {
        "index", "event_public_id", "detail"}


def test_aliases_are_deprecated_copies() -> None:
    paths = DOC["paths"]
    for path in ("/api/v1/logging", "/api/v1/logging/{public_id}"):
        alias = path.replace("/logging", "/logs")
        assert set(paths[alias]) == set(paths[path])
        for method, op in paths[alias].items():
            assert op["deprecated"] is True and not paths[path][method].get("deprecated")
            assert op["responses"] == paths[path][method]["responses"]
    batch, bulk = paths["/api/v1/datapoints/batch"]["post"], paths["/api/v1/datapoints/bulk"]["post"]
    assert bulk["deprecated"] is True and "deprecated" not in batch
    assert bulk["requestBody"] == batch["requestBody"] and bulk["responses"] == batch["responses"]


# ---------------------------------------------------------------------------- against the app


def _rule_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


async def test_every_app_route_is_documented_and_nothing_else(app: Any) -> None:
    registered: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("web.") or getattr(rule, "websocket", False):
            continue
        path = _rule_path(rule.rule)
        if path.endswith("/") and path != "/":
            continue  # the trailing-slash twin of a documented path (§2.1)
        registered |= {(path, m.lower()) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    documented = {(path, method) for path, method, _ in operations()}
    assert registered - documented == set(), "routes missing from /openapi.json"
    assert documented - registered == set(), "documented operations the app does not serve"
    # every documented path also answers with a trailing slash
    slashed = {_rule_path(r.rule) for r in app.url_map.iter_rules()}
    assert {f"{p}/" for p, _ in documented} <= slashed


async def test_served_document_and_docs_page(client: Any) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert json.loads(await resp.get_data(as_text=True)) == json.loads(json.dumps(DOC))
    resp = await client.get("/docs/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = await resp.get_data(as_text=True)
    assert page == docs_page()
    assert len(page.encode()) < 15_000
    assert re.search(r"<script>.*fetch\(\"/openapi\.json\"\).*</script>", page, re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "no external resources"
    assert "<link" not in page and "@import" not in page and "localStorage" in page


async def test_live_answers_match_the_document(client: Any, admin_headers: dict[str, str]) -> None:
    h = admin_headers
    # auth
    await call(client, "post", "/api/v1/auth/login", 401, json={"email": "no@body", "password": "x"})
    await call(client, "post", "/api/v1/auth/login", 422, json={"email": "bad", "password": ""})
    await call(client, "get", "/api/v1/auth/me", 401)
    me = await call(client, "get", "/api/v1/auth/me", 200, headers=h)
    # users
    user = await create_user(client, h)
    uid = {"public_id": user["public_id"]}
    await call(client, "get", "/api/v1/users", 200, headers=h, query={"page_size": "1"})
    await call(client, "get", "/api/v1/users", 422, headers=h, query={"page": "0"})
    await call(client, "get", "/api/v1/users", 403, headers=user["headers"])
    await call(client, "post", "/api/v1/users", 201, headers=h,
               json={"email": "new@lab.local", "username": "newbie", "password": "password123"})
    await call(client, "post", "/api/v1/users", 409, headers=h,
               json={"email": "new@lab.local", "username": "newbie2", "password": "password123"})
    await call(client, "get", "/api/v1/users/{public_id}", 200, headers=h, ids=uid)
    await call(client, "get", "/api/v1/users/{public_id}", 403, headers=user["headers"],
               ids={"public_id": me["public_id"]})
    await call(client, "put", "/api/v1/users/{public_id}", 200, headers=h, ids=uid, json={"username": "u2"})
    await call(client, "delete", "/api/v1/users/{public_id}", 404, headers=h, ids={"public_id": "x"})
    # events
    eid = {"public_id": await create_event(client, h)}
    await call(client, "get", "/api/v1/events", 200, headers=h)
    await call(client, "get", "/api/v1/events/{public_id}", 200, headers=h, ids=eid)
    await call(client, "post", "/api/v1/events", 422, headers=h,
               json={"name": "e", "min_value": 0, "max_value": 1, "unit": "V", "type": "debug"})
    await call(client, "post", "/api/v1/events", 415, headers={**h, "Content-Type": "text/plain"},
               data="name=e")
    await call(client, "put", "/api/v1/events/{public_id}", 200, headers=h, ids=eid, json={"unit": "K"})
    await call(client, "post", "/api/v1/users", 201, headers=h, json={
        "email": "viewer@lab.local", "username": "viewer", "password": "password123", "role": "viewer"})
    viewer = bearer(await login(client, "viewer@lab.local", "password123"))
    await call(client, "delete", "/api/v1/events/{public_id}", 403, headers=viewer, ids=eid)
    # experiments
    xp = await call(client, "post", "/api/v1/experiments", 201, headers=h, json={"name": "Run \"A\" €"})
    xid = {"public_id": xp["public_id"]}
    await call(client, "post", "/api/v1/experiments", 409, headers=h, json={"name": "other"})
    await call(client, "get", "/api/v1/experiments/{public_id}", 200, headers=h, ids=xid)
    await call(client, "put", "/api/v1/experiments/{public_id}", 200, headers=h, ids=xid, json={"name": "B"})
    # datapoints
    dp = await call(client, "post", "/api/v1/datapoints", 201, headers=h,
                    json={"value": "1.5", "event_public_id": eid["public_id"]})
    await call(client, "post", "/api/v1/datapoints", 404, headers=h,
               json={"value": 1, "event_public_id": UNKNOWN_ID})
    good = {"value": 2, "event_public_id": eid["public_id"], "timestamp": "2026-01-01T00:00:00Z"}
    bad = {"value": 3, "event_public_id": UNKNOWN_ID}
    result = await call(client, "post", "/api/v1/datapoints/batch", 201, headers=h,
                        json={"datapoints": [good, bad]})
    assert result["accepted"] == 1 and result["rejected"][0]["index"] == 1
    await call(client, "post", "/api/v1/datapoints/bulk", 201, headers=h, json={"datapoints": []})
    await call(client, "post", "/api/v1/datapoints/batch", 422, headers=h, json={"datapoints": [bad]})
    await call(client, "post", "/api/v1/datapoints/batch", 413, headers=h,
               json={"datapoints": [good] * 10_001})
    latest = await call(client, "get", "/api/v1/datapoints/latest", 200, headers=h)
    assert len(latest) == 1
    await call(client, "get", "/api/v1/datapoints", 200, headers=h,
               query={"event_id": eid["public_id"], "since": "2025-01-01T00:00:00+00:00"})
    await call(client, "get", "/api/v1/datapoints", 422, headers=h, query={"until": "yesterday"})
    did = {"public_id": dp["public_id"]}
    await call(client, "get", "/api/v1/datapoints/{public_id}", 200, headers=h, ids=did)
    await call(client, "delete", "/api/v1/datapoints/{public_id}", 200, headers=h, ids=did)
    await call(client, "get", "/api/v1/datapoints/{public_id}", 404, headers=h, ids=did)
    await call(client, "get", "/api/v1/experiments/{public_id}/export/csv", 200, headers=h, ids=xid)
    await call(client, "put", "/api/v1/experiments/{public_id}/stop", 200, headers=h, ids=xid)
    await call(client, "get", "/api/v1/experiments", 200, headers=h)
    await call(client, "delete", "/api/v1/experiments/{public_id}", 200, headers=h, ids=xid)
    await call(client, "delete", "/api/v1/events/{public_id}", 200, headers=h, ids=eid)
    # logging and its alias
    entry = await call(client, "post", "/api/v1/logging", 201, headers=h, json={"content": "hello"})
    lid = {"public_id": entry["public_id"]}
    await call(client, "post", "/api/v1/logs", 422, headers=h, json={"content": "x", "logging_type": "debug"})
    await call(client, "get", "/api/v1/logs/{public_id}", 200, headers=h, ids=lid)
    await call(client, "put", "/api/v1/logging/{public_id}", 200, headers=h, ids=lid,
               json={"status_type": "read"})
    await call(client, "get", "/api/v1/logging", 200, headers=h)
    await call(client, "delete", "/api/v1/logging/{public_id}", 200, headers=h, ids=lid)
    # system
    await call(client, "get", "/health", 200)
    await call(client, "get", "/openapi.json", 200)
    await call(client, "get", "/docs", 200)
    # the token of a deleted user, and a wrong method on a reserved segment
    await call(client, "delete", "/api/v1/users/{public_id}", 200, headers=h, ids=uid)
    body = await call(client, "get", "/api/v1/events", 401, headers=bearer(user["token"]))
    assert body == {"detail": "User not found."}
    resp = await client.get("/api/v1/datapoints/batch", headers=h)
    assert resp.status_code == 405
    not_allowed = deref(DOC["paths"]["/api/v1/datapoints/batch"]["post"]["responses"]["405"])
    assert not violations(not_allowed["content"]["application/json"]["schema"], await resp.get_json())


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/datapoints/latest", "/api/v1/logs"])
async def test_401_is_documented_with_its_header(client: Any, path: str) -> None:
    await call(client, "get", path, 401, headers={"Authorization": "Bearer garbage"})


# ---------------------------------------------------------------------------- one source of limits


def probes(spec: FieldSpec) -> list[Any]:
    """Values around each limit of a field, plus the wrong types."""
    if spec.kind in ("text", "password"):
        low, high = spec.min_len, spec.max_len or spec.max_bytes or 80
        return ["", "x" * max(low - 1, 0), "x" * low, "x" * high, "x" * (high + 1),
                "a\x00" + "x" * low, "é" * (high // 2 + 1), "😀" * low, 5, None]
    if spec.kind == "email":
        return ["a@b", "root@localhost", "a b@c", "a@\x1c", "a@\u3000", "a@b@c", "@x", "x@", "a@b\x00",
                "a@\ufeff", "x" * 253 + "@b", "x" * 254 + "@b", 7, None]
    if spec.kind == "number":
        return [1.5, -3, 1e308, "1", True, None]
    if spec.kind == "boolean":
        return [True, False, 1, "true", None]
    if spec.kind == "timestamp":
        return ["2027-01-01T00:00:00Z", "2027-01-01T00:00:00", "soon", 5, None]
    if spec.kind == "choices":
        return [list(spec.options), [], ["nope"], [*spec.options, *spec.options], spec.options[0], [1], None]
    assert spec.kind == "choice"
    return [*spec.options, "nope", 1, None]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.name)
def test_body_schemas_and_validators_agree(body: BodySpec) -> None:
    """Each body is rendered from the declaration the validator reads, so both judge every probe
    alike, except for the cross-field rules, which the schema quotes instead."""
    schema = DOC["components"]["schemas"][body.name]
    assert list(schema["properties"]) == [f.name for f in body.fields]
    assert schema.get("required", []) == list(body.required)
    for rule in body.rules:
        assert f"`{rule}`" in schema["description"], rule
    for spec in body.fields:
        prop = schema["properties"][spec.name]
        required = spec.name in body.required
        for value in probes(spec):
            fields = Fields({spec.name: value})
            fields.read(spec, required=required)
            refused = [e.msg for e in fields.errors]
            invalid = violations(prop, value)
            if refused and not invalid:
                assert set(refused) <= set(body.rules), (body.name, spec.name, value, refused)
            else:
                assert bool(refused) == bool(invalid), (body.name, spec.name, value, refused, invalid)


def test_cross_field_rules_are_quoted_in_the_422s() -> None:
    paths = DOC["paths"]
    for path, method, rule in [
        ("/api/v1/events", "post", RANGE_ERROR.msg),
        ("/api/v1/events/{public_id}", "put", RANGE_ERROR.msg),
        ("/api/v1/users", "post", "Password must be at most 72 bytes (UTF-8)."),
        ("/api/v1/datapoints/series", "post", "'since' must be before 'until'."),
        ("/api/v1/datapoints/series", "post", "Give 'minutes' or 'since'."),
        ("/api/v1/datapoints", "get", "'event_id' and 'event_public_id' disagree; send one of them."),
        ("/api/v1/datapoints/batch", "post", "Event not found."),
    ]:
        assert f"`{rule}`" in deref(paths[path][method]["responses"]["422"])["description"], (path, rule)


def test_websocket_text_says_what_the_server_does() -> None:
    """Credential refusals are 401, a foreign Origin with the cookie 403, and 1008 only for a
    credential that stops qualifying on an open socket (tests/test_websockets.py,
    tests/test_ws_cookie.py and tests/test_api_tokens.py check the server)."""
    description = DOC["info"]["description"]
    assert "plain HTTP 401" in description and "403 `Origin not allowed.`" in description
    assert "401 (or 403)" not in description
    assert "1008 credential no longer valid" in description
