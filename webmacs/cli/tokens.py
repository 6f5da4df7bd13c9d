"""``webmacs tokens …``: API tokens straight in the database, with the rules of the REST API
(role at most the owner's, scopes, an expiry in the future). A revocation made here reaches
running servers' open sockets through their credential watchers (within a second)."""

from __future__ import annotations

import click
import orjson

from webmacs.api_tokens import new_secret, parse_lifetime
from webmacs.cli.common import CliError, settings_from
from webmacs.cli.database import run_on_database
from webmacs.cli.users import DATABASE_URL, PAGE, known_email, user_by_email
from webmacs.http.bodies import TOKEN_CREATE
from webmacs.http.tokens import token_json
from webmacs.roles import SCOPES, Role
from webmacs.storage.backends import Repositories
from webmacs.storage.database import Database
from webmacs.storage.records import ApiTokenRecord
from webmacs.validation import Fields, format_timestamp, is_public_id, parse_timestamp, utcnow

SHOWN_ONCE = "This secret is shown once and cannot be recovered; store it now."


@click.group()
def tokens() -> None:
    """Create, list and revoke API tokens (for controllers and scripts)."""


def _checked_name(name: str) -> str:
    fields = Fields({"name": name})
    value: str | None = fields.read(TOKEN_CREATE.field("name"), required=True)
    if fields.errors or value is None:
        raise CliError(f"name: {fields.errors[0].msg}")
    return value


@tokens.command()
@click.option("--user", "email", required=True, help="The owner's email.")
@click.option("--name", required=True, help="What the token is for (1 to 100 characters).")
@click.option("--role", type=click.Choice([r.label for r in Role]),
              help="At most the owner's role (default: the owner's role).")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(sorted(SCOPES)),
              help="Narrow the token: telemetry = send telemetry, receive commands, read events.")
@click.option("--expires", help="2027-01-01T00:00:00Z, or a lifetime such as 12h, 30d, 2w (default: never).")
@DATABASE_URL
def create(email: str, name: str, role: str | None, scopes: tuple[str, ...], expires: str | None,
           database_url: str | None) -> None:
    """Create a token for the user with EMAIL and print its secret (once)."""
    settings = settings_from({"DATABASE_URL": database_url})
    address = known_email(email)
    name = _checked_name(name)
    expires_at = None
    if expires is not None:
        expires_at = parse_lifetime(expires, utcnow(), parse_timestamp)
        if expires_at is None:
            raise CliError(f"--expires: not a timestamp with an offset or a lifetime like 30d: {expires!r}")
        if expires_at <= utcnow():
            raise CliError("--expires: must be in the future")
    secret = new_secret()

    async def work(_db: Database, repos: Repositories) -> ApiTokenRecord:
        owner = await user_by_email(repos, address)
        own = owner.role
        wanted = own if role is None else Role.parse(role)
        assert wanted is not None  # a click choice
        if wanted > own:
            raise CliError(f"role {wanted.label} is above {address}'s own ({own.label})")
        record = await repos.api_tokens.create(owner.public_id, name, wanted.label, frozenset(scopes),
                                               expires_at, secret)
        if record is None:
            raise CliError(f"no user with email {address}")
        return record

    record = run_on_database(settings, work)
    click.echo(f"created token {record.public_id} ({record.name}, {record.role}"
               f"{', ' + ' '.join(sorted(record.scopes)) if record.scopes else ''}) for {address}")
    click.echo(secret)
    click.echo(SHOWN_ONCE, err=True)


@tokens.command("list")
@click.option("--user", "email", help="Only this user's tokens.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, as GET /api/v1/tokens lists them.")
@DATABASE_URL
def list_tokens(email: str | None, as_json: bool, database_url: str | None) -> None:
    """List tokens, newest first (never their secrets)."""
    settings = settings_from({"DATABASE_URL": database_url})
    address = None if email is None else known_email(email)

    async def work(_db: Database, repos: Repositories) -> list[ApiTokenRecord]:
        owner = None if address is None else (await user_by_email(repos, address)).public_id
        found: list[ApiTokenRecord] = []
        while True:
            page = await repos.api_tokens.page(len(found), PAGE, owner)
            found += page.items
            if not page.items or len(found) >= page.total:
                return found

    found = run_on_database(settings, work)
    if as_json:
        click.echo(orjson.dumps([token_json(t) for t in found], option=orjson.OPT_INDENT_2).decode())
        return
    never = "-"
    table = [("PUBLIC_ID", "NAME", "ROLE", "SCOPES", "OWNER", "EXPIRES_AT", "LAST_USED_AT")] + [
        (t.public_id, t.name, t.role, " ".join(sorted(t.scopes)) or never, t.owner_email,
         format_timestamp(t.expires_at) if t.expires_at else never,
         format_timestamp(t.last_used_at) if t.last_used_at else never)
        for t in found
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@tokens.command()
@click.argument("public_id")
@DATABASE_URL
def revoke(public_id: str, database_url: str | None) -> None:
    """Revoke the token PUBLIC_ID: running servers refuse it and close its sockets within a second."""
    settings = settings_from({"DATABASE_URL": database_url})
    if not is_public_id(public_id):
        raise CliError(f"no token {public_id}")

    async def work(_db: Database, repos: Repositories) -> None:
        if not await repos.api_tokens.delete(public_id):
            raise CliError(f"no token {public_id}")

    run_on_database(settings, work)
    click.echo(f"revoked token {public_id}")
