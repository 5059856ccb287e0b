"""Errors meant for the user (``bot.errors.UserError``) are converted once, at the CLI's top
(``bot.cli.base.ScrubbingGroup``): one line on stderr, the error's exit code, secrets scrubbed, no
traceback. Anything else is a bug and is not disguised as a user mistake."""

from __future__ import annotations

import sqlite3
import sys

import click
import pytest
from click.testing import CliRunner

import bot.cli
from bot.cli import cli
from bot.cli.base import ScrubbingGroup, exit_with
from bot.config import ConfigError
from bot.digest.send import SendError
from bot.digest.subscribers import SubscriberError
from bot.digest.tokens import TokenError
from bot.errors import UserError, one_line
from bot.lock import LockBusy
from bot.ranking.model_files import ModelFilesError
from bot.ranking.records import RecordError
from bot.search.hybrid import SearchError
from bot.sources.feeds import FeedError
from bot.sources.http import SourceError
from bot.store import DatabaseOpenError, open_db
from bot.store.keyfile import KeyFileError
from bot.store.schema import SchemaError


class NeedsAnotherCode(UserError):
    exit_code = 5


def _group(error: BaseException) -> click.Group:
    """A group built like ``spsbot``'s whose one command raises ``error`` from 'library' code."""
    @click.group(cls=ScrubbingGroup)
    def group() -> None:
        pass

    @group.group()
    def sub() -> None:
        pass

    def library_call():
        raise error

    @sub.command()
    def boom() -> None:
        library_call()
    return group


def test_every_domain_error_is_a_user_error_and_keeps_its_old_base():
    for error, old_base in [(ConfigError, ValueError), (SearchError, ValueError), (TokenError, ValueError),
                            (SubscriberError, ValueError), (SendError, RuntimeError), (SourceError, RuntimeError),
                            (FeedError, SourceError), (KeyFileError, RuntimeError), (SchemaError, RuntimeError),
                            (ModelFilesError, RuntimeError), (LockBusy, RuntimeError), (RecordError, ValueError),
                            (DatabaseOpenError, sqlite3.DatabaseError)]:
        assert issubclass(error, UserError) and issubclass(error, old_base), error


@pytest.mark.parametrize("error, code", [(SubscriberError("invalid e-mail address: 'x'"), 1),
                                         (FeedError("feed 'news': HTTP 503"), 1),
                                         (NeedsAnotherCode("stale source"), 5),
                                         (UserError("with its own code", exit_code=7), 7)])
def test_a_user_error_in_a_nested_command_is_one_line_and_its_exit_code(error, code):
    result = CliRunner().invoke(_group(error), ["sub", "boom"])
    assert result.exit_code == code
    assert result.stderr == f"Error: {error}\n" and result.stdout == ""
    assert isinstance(result.exception, SystemExit)  # handled: no traceback, no exception object left


def test_a_user_errors_line_is_scrubbed_of_secrets(monkeypatch):
    monkeypatch.setenv("SPSBOT_SMTP_PASSWORD", "hunter2-very-secret")
    result = CliRunner().invoke(_group(SendError("login refused for ann:hunter2-very-secret@smtp")), ["sub", "boom"])
    assert result.exit_code == 1 and "hunter2-very-secret" not in result.stderr
    assert result.stderr.startswith("Error: login refused for ann:") and "<redacted>" in result.stderr


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch, capsys):
    bug = KeyError("items")
    result = CliRunner().invoke(_group(bug), ["sub", "boom"])
    assert result.exception is bug and result.exit_code == 1   # the exception itself, not an "Error:" line
    assert "Error:" not in result.stderr

    # Through the console script's entry point a bug names its type (a user error does not).
    for error, line in [(bug, "Error: KeyError: 'items'"), (TokenError("the link has expired"),
                                                            "Error: the link has expired")]:
        monkeypatch.setattr(bot.cli, "cli", _group(error))
        monkeypatch.setattr(sys, "argv", ["spsbot", "sub", "boom"])
        with pytest.raises(SystemExit) as exit_:
            bot.cli.main()
        assert exit_.value.code == 1 and capsys.readouterr().err.strip() == line


def test_a_real_command_turns_a_domain_error_into_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_DB", str(tmp_path / "spsbot.db"))
    result = CliRunner().invoke(cli, ["unsubscribe", "not-a-token"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "TokenError" not in lines[0]


def test_an_unusable_database_file_is_a_user_error_naming_it(tmp_path):
    garbage = tmp_path / "not-a-db.db"
    garbage.write_bytes(b"this is not an SQLite database\x00" * 64)
    with pytest.raises(DatabaseOpenError, match=r"cannot open database .*not-a-db\.db: file is not a database"):
        open_db(garbage)


def test_one_line_names_the_type_and_keeps_only_the_first_line():
    assert one_line(ValueError("bad value\n  in line 2")) == "ValueError: bad value"
    assert one_line(KeyError()) == "KeyError: "


def test_exit_with_prints_a_scrubbed_error_line_then_exits_with_the_code(monkeypatch, capsys):
    monkeypatch.setenv("SPSBOT_SMTP_PASSWORD", "hunter2-very-secret")
    with pytest.raises(SystemExit) as exit_:
        exit_with(4, "2 deliveries refused (auth hunter2-very-secret)")
    assert exit_.value.code == 4
    assert capsys.readouterr().err == "Error: 2 deliveries refused (auth <redacted>)\n"
    with pytest.raises(SystemExit) as exit_:
        exit_with(3)
    assert exit_.value.code == 3 and capsys.readouterr().err == ""
