"""Only the commands that set a database up create one (issue 25's follow-up). `status`,
`unsubscribe` and every other command that reads or changes existing rows, pointed at a missing
file (a wrong --db / SPSBOT_DB, or a hand-typed command on a systemd install), used to make a new
empty database and key: "0 subscribers" instead of an error, and a second database from then on.
They now refuse with one line naming the path and the next step, exit 1, and leave nothing."""

import shutil
import time

import pytest
from click.testing import CliRunner

from bot.cli import cli
from conftest import SmtpServer

REFUSING = [
    ["status"], ["status", "--json"], ["unsubscribe", "not-a-token"],
    ["subscribers", "list"], ["subscribers", "remove", "ann@example.org"],
    ["digest", "build"], ["digest", "send"], ["digest", "--dry-run"],
    ["digest", "preview", "--to", "ann@example.org", "--out", "{tmp}/preview"],
    ["archive", "build", "{tmp}/site"], ["export"], ["rank"], ["label", "pmid:1", "relevant"], ["label", "--review"],
    ["trials"], ["changes"], ["feedback", "list"], ["rotate-key", "--yes"], ["search", "rituximab", "--no-semantic"],
]


def _invoke(tmp_path, args, **env):
    database = tmp_path / "state" / "spsbot.db"
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = CliRunner().invoke(cli, ["--db", str(database), *args], env=env)
    return database, result


def _left_behind(tmp_path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("args", REFUSING, ids=" ".join)
def test_a_command_that_only_reads_or_changes_rows_refuses_a_missing_database(env_isolated, tmp_path, args):
    database, result = _invoke(tmp_path, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines == [f"Error: no database at {database}: check --db / SPSBOT_DB (on a systemd install run commands "
                     "as the units do, `spsbot_admin` in schedules/README.md), or create it with `spsbot run`"]
    # no database, -wal, -shm, .key or .lock, not even its folder (nor the command's own output)
    assert [p for p in _left_behind(tmp_path) if not p.startswith("cli.db")] == []


def test_an_empty_file_is_no_database_and_is_left_as_it_was(env_isolated, tmp_path):
    database = tmp_path / "state" / "spsbot.db"
    database.parent.mkdir()
    database.touch()
    _, result = _invoke(tmp_path, ["status"])
    assert result.exit_code == 1 and "no database at" in result.output
    assert _left_behind(tmp_path) == ["state", "state/spsbot.db"] and database.stat().st_size == 0


def test_the_commands_that_set_a_database_up_still_create_it(env_isolated, tmp_path):
    database, result = _invoke(tmp_path, ["subscribers", "add", "ann@example.org"])
    assert result.exit_code == 0, result.output
    assert f"created a new database at {database}" in result.output  # a mistyped path is seen at once
    assert database.stat().st_size > 0 and database.with_name("spsbot.db.key").exists()
    # and from then on the others work on it
    _, listed = _invoke(tmp_path, ["subscribers", "list"])
    assert listed.exit_code == 0 and "ann@example.org" in listed.output

    other = tmp_path / "other"
    other.mkdir()
    (other / "people.csv").write_text("email\nbob@example.org\n")
    imported, result = _invoke(other, ["subscribers", "import", str(other / "people.csv")])
    assert result.exit_code == 0 and imported.stat().st_size > 0, result.output


def test_a_dry_run_of_the_first_run_creates_nothing(env_isolated, tmp_path):
    """`run --dry-run` leaves the database as it was, and "none yet" is a state too."""
    with SmtpServer() as smtp:
        database, result = _invoke(tmp_path, ["run", "--dry-run", "--no-fetch", "--no-rank"],
                                   SPSBOT_SMTP_URL=smtp.url)
    assert result.exit_code == 3, result.output  # nothing would be sent
    assert f"no database at {database} yet: working on an empty one in memory" in result.output
    assert ": ok (nothing sent)" in result.output
    assert [p for p in _left_behind(tmp_path) if not p.startswith("cli.db")] == []


def test_the_web_front_never_makes_a_second_database_after_its_start(env_isolated, tmp_path, caplog):
    """`serve` makes the database before listening; one moved or deleted under it is a one-line
    error and a 503 (nothing "saved"), never a new empty database taking sign-ups, nor a write into
    the deleted file a worker thread still holds open; one put back is used again."""
    from bot.store import open_db
    from bot.web.app import create_app
    from conftest import FakeEmbedder
    from web_support import web_config
    database = tmp_path / "state" / "web.db"
    open_db(database).close()
    app = create_app(web_config(tmp_path), str(database), embedder=FakeEmbedder())
    backup = shutil.copy(database, tmp_path / "backup.db")
    client = app.test_client()
    assert client.get("/healthz").status_code == 200  # this thread now holds a connection to the file
    for each in database.parent.iterdir():
        if each.name.startswith("web.db") and not each.name.endswith(".key"):
            each.unlink()
    answer = client.get("/healthz")  # not answered from the deleted file the connection still holds
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert sorted(p.name for p in database.parent.iterdir()) == ["web.db.key"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"web: GET /healthz: the database {database} is gone (moved or deleted while serving): put it "
                      "back and restart `spsbot serve`"]
    assert not any(r.exc_info for r in caplog.records)
    shutil.copy(backup, database)  # put back: picked up without a restart
    assert client.get("/healthz").status_code == 200


def test_the_sign_up_mailer_never_makes_a_database(env_isolated, tmp_path, caplog):
    from bot.config import load_config
    from bot.web.mailer import SignupMailer
    database = tmp_path / "state" / "web.db"
    mailer = SignupMailer(str(database), load_config(None), "http://127.0.0.1:8080", interval=0.05).start()
    try:
        for _ in range(200):  # a few passes, each looking for the database
            if sum("sign-up e-mails: MissingDatabaseError" in r.getMessage() for r in caplog.records) >= 2:
                break
            mailer.wake()  # as a sign-up does: the next pass now, whatever the timer (a loaded CI worker)
            time.sleep(0.05)
    finally:
        mailer.stop()
    assert sum("sign-up e-mails: MissingDatabaseError" in r.getMessage() for r in caplog.records) >= 2  # alive
    assert not (tmp_path / "state").exists()
