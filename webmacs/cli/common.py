"""What every command shares: the one-line error, settings from flags, the database."""

from __future__ import annotations

from collections.abc import Mapping

from webmacs.settings import Settings, SettingsError, load_settings


class CliError(Exception):
    """A mistake or a refusal, shown as ``webmacs: <message>`` with a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def first_leaf(error: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def settings_from(overrides: Mapping[str, str | None]) -> Settings:
    """The settings (environment, .env, defaults) with the flags given on the command line."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return load_settings(overrides=given)
    except SettingsError as exc:
        raise CliError(f"configuration error: {exc}", exit_code=2) from None
