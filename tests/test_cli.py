"""The command line's shape: help on every command, one-line errors with non-zero exits."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from webmacs.cli import app, main


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", all_commands(app), ids=lambda p: " ".join(p) or "webmacs")
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: webmacs")
    assert len(out.splitlines()) > 3


def test_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "abc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--port" in err and "webmacs serve --help" in err


def test_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_configuration_error_is_one_line_without_traceback(tmp_path: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "webmacs", "serve", "--database-url", "mysql://nowhere/x"],
        capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("webmacs: configuration error:")
    assert "Traceback" not in proc.stderr


def test_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "webmacs", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("webmacs ")
