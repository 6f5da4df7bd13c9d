"""``webmacs users …``: manage accounts straight in the database (e.g. before the first login,
or to let an admin back in), with the rules and effects of the REST API."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from webmacs.cli.common import CliError, settings_from
from webmacs.cli.database import run_on_database
from webmacs.http.bodies import USER_CREATE
from webmacs.http.responses import user_json
from webmacs.roles import ROLE_LABELS, Role
from webmacs.security import PasswordHasher
from webmacs.storage.backends import Repositories
from webmacs.storage.database import Database
from webmacs.storage.protocols import Conflict
from webmacs.storage.records import UserChanges, UserRecord
from webmacs.storage.sql.users import LAST_ADMIN
from webmacs.validation import Fields, format_timestamp, normalise_email

PAGE = 1000
DATABASE_URL = click.option("--database-url", help="sqlite:///file or postgresql://… (env DATABASE_URL).")
ROLE = click.Choice(ROLE_LABELS)
PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.")


def checked(**values: str) -> dict[str, Any]:
    """The values read by the REST API's own field rules; the first problem as a CliError."""
    fields = Fields(values)
    out = {name: fields.read(USER_CREATE.field(name), required=True) for name in values}
    if fields.errors:
        error = fields.errors[0]
        raise CliError(f"{error.loc[-1]}: {error.msg}")
    return out


def read_password(from_stdin: bool) -> str:
    """The new password: a line of stdin for scripts, else typed twice without echo."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    result: str = checked(password=password)["password"]
    return result


def known_email(email: str) -> str:
    normal = normalise_email(email)
    if normal is None:
        raise CliError(f"email: not a valid email address: {email!r}")
    return normal


async def all_users(repos: Repositories) -> list[UserRecord]:
    """Every user, oldest first (a few thousand at most: paged through the repository)."""
    found: list[UserRecord] = []
    while True:
        page = await repos.users.page(len(found), PAGE)
        found += page.items
        if not page.items or len(found) >= page.total:
            return found


async def user_by_email(repos: Repositories, email: str) -> UserRecord:
    user = await repos.users.get_by_email(email)
    if user is None:
        raise CliError(f"no user with email {email}")
    return user


def last_admin(address: str, exc: Conflict) -> CliError:
    """The repository's refusal to leave no admin, in the CLI's words (other conflicts as they are)."""
    if exc.detail == LAST_ADMIN:
        return CliError(f"{address} is the last admin; make another user admin first")
    return CliError(exc.detail)


@click.group()
def users() -> None:
    """Create, list, change and delete user accounts (straight in the database)."""


@users.command()
@click.argument("email")
@click.option("--username", required=True, help="2 to 50 characters, unique.")
@click.option("--role", "role_label", type=ROLE, help="viewer, operator (default) or admin.")
@click.option("--admin", is_flag=True, help="Same as --role admin.")
@PASSWORD_STDIN
@DATABASE_URL
def create(email: str, username: str, role_label: str | None, admin: bool, password_stdin: bool,
           database_url: str | None) -> None:
    """Create a user who can log in with EMAIL and the password given."""
    if admin and role_label not in (None, "admin"):
        raise CliError(f"--admin and --role {role_label} disagree")
    role = Role.ADMIN if admin else Role.parse(role_label or "operator") or Role.OPERATOR
    settings = settings_from({"DATABASE_URL": database_url})
    fields = checked(email=email, username=username)
    password = read_password(password_stdin)
    hasher = PasswordHasher(settings.bcrypt_rounds)

    async def work(_db: Database, repos: Repositories) -> None:
        try:
            await repos.users.create(fields["email"], fields["username"],
                                     await hasher.hash(password), role)
        except Conflict:
            raise CliError(
                f"a user with email {fields['email']} or username {fields['username']} already exists"
            ) from None

    run_on_database(settings, work)
    click.echo(f"created {role.label} {fields['email']} ({fields['username']})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, as GET /api/v1/users lists them.")
@DATABASE_URL
def list_users(as_json: bool, database_url: str | None) -> None:
    """List every user, oldest first."""
    settings = settings_from({"DATABASE_URL": database_url})

    async def work(_db: Database, repos: Repositories) -> list[UserRecord]:
        return await all_users(repos)

    found = run_on_database(settings, work)
    if as_json:
        click.echo(orjson.dumps([user_json(u) for u in found], option=orjson.OPT_INDENT_2).decode())
        return
    table = [("EMAIL", "USERNAME", "ROLE", "REGISTERED_ON")] + [
        (u.email, u.username, u.role.label, format_timestamp(u.registered_on))
        for u in found
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        click.echo("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[3]]))


@users.command("set-password")
@click.argument("email")
@PASSWORD_STDIN
@DATABASE_URL
def set_password(email: str, password_stdin: bool, database_url: str | None) -> None:
    """Set the password of the user with EMAIL; the tokens issued to them before stop working."""
    settings = settings_from({"DATABASE_URL": database_url})
    address = known_email(email)
    password = read_password(password_stdin)
    hasher = PasswordHasher(settings.bcrypt_rounds)

    async def work(_db: Database, repos: Repositories) -> None:
        user = await user_by_email(repos, address)
        # The same change as the REST password change: it also sets tokens_valid_after.
        changes = UserChanges(password_hash=await hasher.hash(password))
        if not await repos.users.update(user.public_id, changes):
            raise CliError(f"no user with email {address}")

    run_on_database(settings, work)
    click.echo(f"password changed for {address}; their earlier tokens are revoked")


@users.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@DATABASE_URL
def delete(email: str, yes: bool, database_url: str | None) -> None:
    """Delete the user with EMAIL (never the last admin)."""
    settings = settings_from({"DATABASE_URL": database_url})
    address = known_email(email)
    if not yes:
        click.confirm(f"Delete user {address}?", abort=True, err=True)

    async def work(_db: Database, repos: Repositories) -> None:
        user = await user_by_email(repos, address)
        try:
            deleted = await repos.users.delete(user.public_id)
        except Conflict as exc:
            raise last_admin(address, exc) from None
        if not deleted:
            raise CliError(f"no user with email {address}")

    run_on_database(settings, work)
    click.echo(f"deleted user {address}")


@users.command("set-role")
@click.argument("email")
@click.argument("role_label", metavar="ROLE", type=ROLE)
@DATABASE_URL
def set_role(email: str, role_label: str, database_url: str | None) -> None:
    """Give the user with EMAIL the ROLE viewer, operator or admin (never demoting the last admin).

    A running server applies it at the user's next request (within a second)."""
    settings = settings_from({"DATABASE_URL": database_url})
    address = known_email(email)
    role = Role.parse(role_label) or Role.VIEWER

    async def work(_db: Database, repos: Repositories) -> None:
        user = await user_by_email(repos, address)
        try:
            updated = await repos.users.update(user.public_id, UserChanges(role=role))
        except Conflict as exc:
            raise last_admin(address, exc) from None
        if not updated:
            raise CliError(f"no user with email {address}")

    run_on_database(settings, work)
    click.echo(f"{address} is now {role.label}")
