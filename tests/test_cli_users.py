"""``webmacs users …`` against real SQLite files and PostgreSQL databases, checked through the
REST API of an app on the same database: who can log in, whose tokens stop working."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from click.testing import CliRunner
from conftest import ADMIN_EMAIL, bearer, login

from webmacs.cli import app as cli_app
from webmacs.cli import main

H = dict[str, str]


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' working directory (a development secret for a PostgreSQL URL lands there)."""
    monkeypatch.chdir(tmp_path)


async def cli(*argv: str, stdin: str = "") -> int:
    """The command in a worker thread (it runs its own ``trio.run``), ``stdin`` as its input."""

    def run() -> int:
        saved = sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            return main(list(argv))
        finally:
            sys.stdin = saved

    return await trio.to_thread.run_sync(run)


async def login_status(client: Any, email: str, password: str) -> int:
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    status: int = resp.status_code
    return status


async def test_created_users_log_in_through_the_api(
    client: Any, admin_headers: H, database_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    assert await cli("users", "create", "Ada@LAB.local", "--username", "ada", "--password-stdin",
                     "--database-url", database_url, stdin="correct horse\n") == 0
    assert capsys.readouterr().out == "created operator Ada@lab.local (ada)\n"
    token = await login(client, "Ada@lab.local", "correct horse")
    me = await client.get("/api/v1/users", headers=bearer(token))
    assert me.status_code == 403  # not an admin

    assert await cli("users", "create", "boss@lab.local", "--username", "boss", "--admin",
                     "--password-stdin", "--database-url", database_url, stdin="boss-pass-1\n") == 0
    listed = await client.get("/api/v1/users", headers=bearer(await login(client, "boss@lab.local",
                                                                           "boss-pass-1")))
    assert listed.status_code == 200
    api_users = (await listed.get_json())["data"]
    assert [u["email"] for u in api_users] == [ADMIN_EMAIL, "Ada@lab.local", "boss@lab.local"]

    capsys.readouterr()
    assert await cli("users", "list", "--json", "--database-url", database_url) == 0
    assert orjson.loads(capsys.readouterr().out) == api_users
    assert await cli("users", "list", "--database-url", database_url) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["EMAIL", "USERNAME", "ROLE", "REGISTERED_ON"]
    assert table[3].split()[:3] == ["boss@lab.local", "boss", "admin"]
    assert table[2].split()[:3] == ["Ada@lab.local", "ada", "operator"]


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    (["dup@lab.local", "--username", "admin"], "password123\n",
     "a user with email dup@lab.local or username admin already exists"),
    ([ADMIN_EMAIL, "--username", "other"], "password123\n",
     f"a user with email {ADMIN_EMAIL} or username other already exists"),
    (["no-at-sign", "--username", "x1"], "password123\n", "email: value is not a valid email address."),
    (["x@lab.local", "--username", "x"], "password123\n",
     "username: String should have at least 2 characters."),
    (["x@lab.local", "--username", "xy"], "short\n", "password: String should have at least 8 characters."),
    (["x@lab.local", "--username", "xy"], "é" * 37 + "\n",
     "password: Password must be at most 72 bytes (UTF-8)."),
])
async def test_create_refusals_are_one_line(
    client: Any, admin_headers: H, database_url: str, capsys: pytest.CaptureFixture[str],
    argv: list[str], stdin: str, message: str,
) -> None:
    assert await cli("users", "create", *argv, "--password-stdin", "--database-url", database_url,
                     stdin=stdin) == 1
    assert capsys.readouterr().err == f"webmacs: {message}\n"
    users = await client.get("/api/v1/users", headers=admin_headers)
    assert (await users.get_json())["total"] == 1


async def test_set_password_revokes_earlier_tokens(
    client: Any, admin_headers: H, database_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    assert await cli("users", "create", "op@lab.local", "--username", "op", "--password-stdin",
                     "--database-url", database_url, stdin="first-password\n") == 0
    old = bearer(await login(client, "op@lab.local", "first-password"))
    assert (await client.get("/api/v1/events", headers=old)).status_code == 200

    assert await cli("users", "set-password", "op@LAB.LOCAL", "--password-stdin",
                     "--database-url", database_url, stdin="second-password\r\n") == 0
    assert capsys.readouterr().out.endswith(
        "password changed for op@lab.local; their earlier tokens are revoked\n")
    await trio.sleep(1.1)  # the app's auth cache sees writes made elsewhere within a second
    assert (await client.get("/api/v1/events", headers=old)).status_code == 401
    assert await login_status(client, "op@lab.local", "first-password") == 401
    new = bearer(await login(client, "op@lab.local", "second-password"))
    assert (await client.get("/api/v1/events", headers=new)).status_code == 200

    assert await cli("users", "set-password", "nobody@lab.local", "--password-stdin",
                     "--database-url", database_url, stdin="whatever-123\n") == 1
    assert capsys.readouterr().err == "webmacs: no user with email nobody@lab.local\n"


async def test_delete_keeps_the_last_admin(
    client: Any, admin_headers: H, database_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    assert await cli("users", "delete", ADMIN_EMAIL, "--yes", "--database-url", database_url) == 1
    assert capsys.readouterr().err == (f"webmacs: {ADMIN_EMAIL} is the last admin; "
                                       "make another user admin first\n")
    assert await login_status(client, ADMIN_EMAIL, "admin123") == 200

    assert await cli("users", "create", "second@lab.local", "--username", "second", "--admin",
                     "--password-stdin", "--database-url", database_url, stdin="password123\n") == 0
    assert await cli("users", "delete", ADMIN_EMAIL, "--yes", "--database-url", database_url) == 0
    assert capsys.readouterr().out.endswith(f"deleted user {ADMIN_EMAIL}\n")
    assert await login_status(client, ADMIN_EMAIL, "admin123") == 401
    assert await cli("users", "delete", ADMIN_EMAIL, "--yes", "--database-url", database_url) == 1
    assert capsys.readouterr().err == f"webmacs: no user with email {ADMIN_EMAIL}\n"


async def test_roles_create_and_set_role(
    client: Any, admin_headers: H, database_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """``--role`` on create, ``set-role`` later: the API sees it at the user's next request."""
    url = ["--database-url", database_url]
    assert await cli("users", "create", "vi@lab.local", "--username", "vi", "--role", "viewer",
                     "--password-stdin", *url, stdin="password123\n") == 0
    assert capsys.readouterr().out == "created viewer vi@lab.local (vi)\n"
    headers = bearer(await login(client, "vi@lab.local", "password123"))
    me = await (await client.get("/api/v1/auth/me", headers=headers)).get_json()
    assert (me["role"], me["admin"]) == ("viewer", False)
    event = {"name": "t", "min_value": 0, "max_value": 1, "unit": "V", "type": "sensor"}
    assert (await client.post("/api/v1/events", json=event, headers=headers)).status_code == 403

    assert await cli("users", "set-role", "vi@LAB.local", "operator", *url) == 0
    assert capsys.readouterr().out == "vi@lab.local is now operator\n"
    await trio.sleep(1.1)  # the app's auth cache sees writes made elsewhere within a second
    assert (await client.post("/api/v1/events", json=event, headers=headers)).status_code == 201

    assert await cli("users", "set-role", ADMIN_EMAIL, "viewer", *url) == 1
    assert capsys.readouterr().err == (f"webmacs: {ADMIN_EMAIL} is the last admin; "
                                       "make another user admin first\n")
    assert await cli("users", "set-role", "vi@lab.local", "admin", *url) == 0
    assert await cli("users", "set-role", ADMIN_EMAIL, "viewer", *url) == 0  # another admin now
    capsys.readouterr()
    assert await cli("users", "list", "--json", *url) == 0
    roles = {u["email"]: (u["role"], u["admin"]) for u in orjson.loads(capsys.readouterr().out)}
    assert roles == {ADMIN_EMAIL: ("viewer", False), "vi@lab.local": ("admin", True)}

    for argv, message in [
        (["set-role", "nobody@lab.local", "viewer"], "webmacs: no user with email nobody@lab.local\n"),
        (["create", "x@lab.local", "--username", "xy", "--admin", "--role", "viewer",
          "--password-stdin"], "webmacs: --admin and --role viewer disagree\n"),
    ]:
        assert await cli("users", *argv, *url, stdin="password123\n") == 1
        assert capsys.readouterr().err == message
    assert await cli("users", "set-role", "vi@lab.local", "superuser", *url) == 2  # click's usage error
    assert "'superuser' is not one of 'viewer', 'operator', 'admin'" in capsys.readouterr().err


def test_prompts_hide_and_confirm(database_url: str) -> None:
    """Without --password-stdin the password is typed twice; delete asks first."""
    runner = CliRunner()
    result = runner.invoke(cli_app, ["users", "create", "p@lab.local", "--username", "pat",
                                     "--database-url", database_url],
                           input="password-one\npassword-two\npassword-one\npassword-one\n")
    assert result.exit_code == 0, result.output
    assert "password-one" not in result.output  # hidden input
    assert "Error: The two entered values do not match." in result.output
    assert "created operator p@lab.local (pat)" in result.output

    result = runner.invoke(cli_app, ["users", "delete", "p@lab.local", "--database-url", database_url],
                           input="n\n")
    assert result.exit_code == 1  # aborted
    listed = runner.invoke(cli_app, ["users", "list", "--json", "--database-url", database_url])
    assert [u["email"] for u in orjson.loads(listed.output)] == ["p@lab.local"]
    result = runner.invoke(cli_app, ["users", "delete", "p@lab.local", "--database-url", database_url],
                           input="y\n")
    assert result.exit_code == 0
    assert "deleted user p@lab.local" in result.output


def test_no_admin_is_seeded(database_url: str) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli_app, ["users", "list", "--json", "--database-url", database_url])
    assert listed.exit_code == 0 and orjson.loads(listed.output) == []


def test_errors_are_one_line_without_traceback(database_url: str, tmp_path: Path) -> None:
    cases = [
        (["users", "create", "a@lab.local", "--username", "ab", "--password-stdin"], "short\n", 1),
        (["users", "delete", "a@lab.local", "--yes"], "", 1),
        (["users", "create", "a@lab.local", "--password-stdin"], "", 2),  # --username missing
    ]
    for argv, stdin, code in cases:
        proc = subprocess.run([sys.executable, "-m", "webmacs", *argv, "--database-url", database_url],
                              input=stdin, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == code, (argv, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("webmacs"), (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "webmacs", "users", "list",
         "--database-url", "postgresql://postgres@127.0.0.1:1/none"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("webmacs: cannot reach the database: ")
    assert proc.stderr.count("\n") == 1
