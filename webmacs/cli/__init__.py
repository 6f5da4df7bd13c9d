"""The ``webmacs`` command line: one entry point, one module per command group.

Every command prints errors as one line on stderr and exits non-zero (``CliError``); a
traceback means a bug in webmacs, not a mistake of the operator.
"""

from __future__ import annotations

import sys

import click

from webmacs import __version__
from webmacs.cli.common import CliError
from webmacs.cli.db import db
from webmacs.cli.serve import serve
from webmacs.cli.simulate import simulate
from webmacs.cli.tokens import tokens
from webmacs.cli.transfer import export, import_
from webmacs.cli.users import users


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="webmacs", message="%(prog)s %(version)s")
def app() -> None:
    """webmacs: monitoring and control backend for lab experiments and industrial processes."""


app.add_command(serve)
app.add_command(simulate)
app.add_command(users)
app.add_command(export)
app.add_command(import_)
app.add_command(db)
app.add_command(tokens)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (``webmacs`` and ``python -m webmacs`` call this)."""
    try:
        result = app.main(args=argv, prog_name="webmacs", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.Abort:
        print("webmacs: aborted", file=sys.stderr)
        return 130
    except CliError as exc:
        print(f"webmacs: {exc}", file=sys.stderr)
        return exc.exit_code
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "webmacs"
        print(f"{where}: {exc.format_message()} (see {where} --help)", file=sys.stderr)
        return exc.exit_code
    except click.ClickException as exc:
        print(f"webmacs: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("webmacs: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0
