"""``webmacs tokens …`` against real SQLite files and PostgreSQL databases, checked through the
REST API of an app on the same database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from conftest import ADMIN_EMAIL, bearer, create_user
from test_cli_users import cli

from webmacs.api_tokens import parse_lifetime
from webmacs.validation import parse_timestamp

H = dict[str, str]


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


async def test_create_list_revoke(
    client: Any, admin_headers: H, database_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    db = ("--database-url", database_url)
    assert await cli("tokens", "create", "--user", ADMIN_EMAIL, "--name", "reactor", "--role", "operator",
                     "--scope", "telemetry", "--expires", "30d", *db) == 0
    out = capsys.readouterr()
    first, secret = out.out.splitlines()
    assert first.startswith("created token ") and "(reactor, operator, telemetry)" in first
    assert secret.startswith("wm_") and "shown once" in out.err
    public_id = first.split()[2]
    # the token works through the API, within its scope
    assert (await client.get("/api/v1/events", headers=bearer(secret))).status_code == 200
    assert (await client.get("/api/v1/users", headers=bearer(secret))).status_code == 403

    assert await cli("tokens", "list", "--json", *db) == 0
    listed = orjson.loads(capsys.readouterr().out)
    api = (await (await client.get("/api/v1/tokens", headers=admin_headers)).get_json())["data"]
    assert listed == api and [t["public_id"] for t in listed] == [public_id]
    assert secret not in str(listed)
    assert await cli("tokens", "list", *db) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["PUBLIC_ID", "NAME", "ROLE", "SCOPES"]
    assert table[1].split()[:5] == [public_id, "reactor", "operator", "telemetry", ADMIN_EMAIL]

    assert await cli("tokens", "revoke", public_id, *db) == 0
    assert capsys.readouterr().out == f"revoked token {public_id}\n"
    await trio.sleep(1.1)  # the app's lookup cache (1 s): a revocation made elsewhere
    assert (await client.get("/api/v1/events", headers=bearer(secret))).status_code == 401


async def test_refusals_are_one_line(
    client: Any, admin_headers: H, database_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    user = await create_user(client, admin_headers)
    db = ("--database-url", database_url)
    cases = [
        (["create", "--user", user["email"], "--name", "x", "--role", "admin"],
         f"role admin is above {user['email']}'s own (operator)"),
        (["create", "--user", "nobody@lab.local", "--name", "x"], "no user with email nobody@lab.local"),
        (["create", "--user", ADMIN_EMAIL, "--name", ""], "name: String should have at least 1 character."),
        (["create", "--user", ADMIN_EMAIL, "--name", "x", "--expires", "soon"],
         "--expires: not a timestamp with an offset or a lifetime like 30d: 'soon'"),
        (["create", "--user", ADMIN_EMAIL, "--name", "x", "--expires", "2001-01-01T00:00:00Z"],
         "--expires: must be in the future"),
        (["revoke", "00000000-0000-4000-8000-000000000000"], "no token 00000000-0000-4000-8000-000000000000"),
        (["revoke", "nope"], "no token nope"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert await cli("tokens", *argv, *db) == 1, argv
        assert capsys.readouterr().err == f"webmacs: {message}\n"
    assert (await (await client.get("/api/v1/tokens", headers=admin_headers)).get_json())["total"] == 0


def test_lifetimes() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    assert parse_lifetime("30d", now, parse_timestamp) == now + timedelta(days=30)
    assert parse_lifetime("12h", now, parse_timestamp) == now + timedelta(hours=12)
    assert parse_lifetime("2w", now, parse_timestamp) == now + timedelta(weeks=2)
    assert parse_lifetime("2027-01-01T00:00:00Z", now, parse_timestamp) == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in ("0d", "5y", "-3d", "2027-01-01T00:00:00", ""):
        assert parse_lifetime(bad, now, parse_timestamp) is None, bad
