"""Schemathesis over our own ``/openapi.json``, against a real server on a socket (defect 8).

Every documented operation is fuzzed, authenticated as the seeded admin, with schema-valid
(positive) and schema-invalid (negative) requests. The server must never answer 5xx, and every
answer must be documented for its operation: status code, content type and body schema.

Schema-valid requests must also be *accepted*, or refused for a documented reason: a 2xx, a
401/403/404/409 that depends on state, or a 422 whose every ``msg`` is quoted in the operation's
documented 422 (the cross-field rules JSON Schema cannot state). That is what keeps the schema's
limits honest: a limit the server enforces but the schema does not state fails here.

Negative requests are checked for 5xx and conformance only: the server deliberately ignores unknown
query parameters and accepts more timestamp spellings than RFC 3339, so "rejects every
schema-invalid request" is not the contract.

The app runs under Trio (Quart-Trio on Hypercorn's trio worker), which schemathesis' ASGI
transport cannot drive, so a real ``webmacs serve`` is started on a free port (``LiveServer``).

Kept out of the run, on purpose: the admin's own id as a path parameter. Deleting the admin, or
changing its password, would revoke the credentials of every later case; both are covered by
tests/test_users.py. Item operations get either a generated id or the id of a real object (the
ordinary user for ``/users``), and ``POST /auth/logout`` logs in afresh for every case, because it
revokes the token it is called with.
"""

from __future__ import annotations

import contextlib
import os
import re
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from webmacs import __version__
from webmacs.http.openapi import openapi_document

# Per operation and generation mode; WEBMACS_FUZZ_EXAMPLES raises it for a longer local hunt.
MAX_EXAMPLES = int(os.environ.get("WEBMACS_FUZZ_EXAMPLES", "20"))
DOC = openapi_document(__version__)
ACCEPTABLE = {401, 403, 404, 409}  # state, not shape: wrong credentials, rights, unknown ids, conflicts


def documented_422(path: str, method: str) -> str:
    response = DOC["paths"][path][method]["responses"].get("422", {})
    if "$ref" in response:
        response = DOC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return str(response.get("description", ""))


def refused_only_for_documented_reasons(ctx: Any, response: Any, case: Any) -> None:
    """A schema-valid request is accepted, or refused for state or a documented cross-field rule."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    status = response.status_code
    if status < 300 or status in ACCEPTABLE:
        return
    assert status == 422, f"schema-valid request answered {status}: {response.text[:300]}"
    documented = documented_422(case.operation.path, case.operation.method.lower())
    undocumented = [d["msg"] for d in response.json()["detail"] if f"`{d['msg']}`" not in documented]
    assert not undocumented, f"schema-valid request refused for undocumented reasons: {undocumented}"


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, refused_only_for_documented_reasons]


class Api:
    """Plain HTTP calls for the set-up: log in, create the objects item operations aim at."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.headers = self.login(ADMIN_EMAIL, ADMIN_PASSWORD)

    def login(self, email: str, password: str) -> dict[str, str]:
        resp = self.http.post(f"{self.base_url}/api/v1/auth/login",
                              json={"email": email, "password": password}, timeout=30)
        assert resp.status_code == 200, resp.text
        return {"Authorization": f"Bearer {resp.json()['access_token']}"}

    def create(self, path: str, body: dict[str, Any]) -> str:
        resp = self.http.post(f"{self.base_url}/api/v1/{path}", json=body, headers=self.headers, timeout=30)
        assert resp.status_code == 201, resp.text
        public_id: str = resp.json()["public_id"]
        return public_id

    def real_ids(self) -> dict[str, str]:
        """One real object per collection, by the path prefix of its item operations."""
        user = self.create("users", {"email": "fuzz@lab.local", "username": "fuzz",
                                     "password": "fuzz-password"})
        event = self.create("events", {"name": "fuzz", "min_value": 0, "max_value": 10, "unit": "V",
                                       "type": "sensor"})
        return {
            "/api/v1/users/": user,
            "/api/v1/events/": event,
            "/api/v1/experiments/": self.create("experiments", {"name": "fuzz"}),
            "/api/v1/datapoints/": self.create("datapoints", {"value": 1, "event_public_id": event}),
            "/api/v1/logging/": self.create("logging", {"content": "fuzz"}),
            "/api/v1/logs/": self.create("logging", {"content": "fuzz via logs"}),
        }


def strategy(operation: Any, mode: GenerationMode, real_ids: dict[str, str]) -> Any:
    """Generated ids, and for item operations also the id of a real object (never the admin's)."""
    generated = operation.as_strategy(generation_mode=mode)
    real = next((pid for prefix, pid in real_ids.items() if operation.path.startswith(prefix)), None)
    if real is None or "{public_id}" not in operation.path:
        return generated
    return st.one_of(generated, operation.as_strategy(generation_mode=mode,
                                                      path_parameters={"public_id": real}))


def fuzz(operation: Any, mode: GenerationMode, cases: Any, headers: Callable[[], dict[str, str]],
         base_url: str, failures: list[str]) -> int:
    """Run up to MAX_EXAMPLES cases; record failures instead of stopping at the first."""
    ran = 0

    @given(case=cases)
    @hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                         suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case: Any) -> None:
        nonlocal ran
        ran += 1
        try:
            case.call_and_validate(base_url=base_url, headers=headers(), checks=CHECKS, timeout=30)
        except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])

    # Unsatisfiable: nothing to make invalid (no parameters, no body); the positive run covers it.
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()
    return ran


def test_fuzz_every_operation(database_url: str, tmp_path: Path) -> None:
    server = LiveServer(database_url, tmp_path)
    try:
        api = Api(server.base_url)
        real_ids = api.real_ids()
        # The served document (from_url would leave out the operation that serves it).
        served = api.http.get(f"{server.base_url}/openapi.json", timeout=30).json()
        # Every case carries the admin's token: no generated Authorization values.
        config = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
        schema = schemathesis.openapi.from_dict(served, config=config)
        failures: list[str] = []
        operations: set[str] = set()
        cases = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations.add(operation.label)
            if operation.path == "/api/v1/auth/logout":
                def headers() -> dict[str, str]:
                    return api.login(ADMIN_EMAIL, ADMIN_PASSWORD)  # logout revokes it
            else:
                def headers() -> dict[str, str]:
                    return api.headers
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                cases += fuzz(operation, mode, strategy(operation, mode, real_ids), headers,
                              server.base_url, failures)
        print(f"\nschemathesis: {len(operations)} operations, {cases} cases, {len(failures)} failures")
        (tmp_path / "fuzz-failures.txt").write_text("\n\n".join(failures))
        assert not failures, "\n\n".join(failures)
        assert operations == {f"{m.upper()} {p}" for p, item in DOC["paths"].items() for m in item}
        # Still the admin's session: nothing in the run revoked it.
        assert api.http.get(f"{server.base_url}/api/v1/auth/me", headers=api.headers,
                            timeout=30).status_code == 200
    finally:
        server.stop()
    output = server.output()
    assert "unhandled error" not in output and not re.search(r"Traceback", output), output[-5000:]


def fake(status: int, path: str, method: str, detail: Any = None, positive: bool = True) -> tuple[Any, Any]:
    mode = types.SimpleNamespace(is_positive=positive)
    case = types.SimpleNamespace(meta=types.SimpleNamespace(generation=types.SimpleNamespace(mode=mode)),
                                 operation=types.SimpleNamespace(path=path, method=method))
    response = types.SimpleNamespace(status_code=status, text=str(detail), json=lambda: {"detail": detail})
    return response, case


def test_the_acceptance_check_itself() -> None:
    """The custom check fails exactly when a schema-valid request is refused for an unstated reason."""
    check = refused_only_for_documented_reasons
    for status in (200, 201, 404, 409):
        check(None, *fake(status, "/api/v1/events", "POST"))
    check(None, *fake(422, "/api/v1/events", "POST",
                      [{"msg": "min_value must be less than or equal to max_value"}]))
    check(None, *fake(422, "/api/v1/events", "POST", [{"msg": "anything"}], positive=False))
    with pytest.raises(AssertionError, match="undocumented"):
        check(None, *fake(422, "/api/v1/events", "POST", [{"msg": "Input should be a valid string."}]))
    with pytest.raises(AssertionError, match="undocumented"):  # documented for events, not for logs
        check(None, *fake(422, "/api/v1/logging", "POST",
                          [{"msg": "min_value must be less than or equal to max_value"}]))
    with pytest.raises(AssertionError, match="answered 400"):
        check(None, *fake(400, "/api/v1/events", "POST"))
