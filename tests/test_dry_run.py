"""A dry run changes nothing in the database (every table's checksum is the same after it), and
the next real run sends exactly what the dry run said it would."""

import sqlite3
from contextlib import ExitStack

import pytest
from click.testing import CliRunner

from bot.cli import cli
from conftest import SmtpServer, free_port
from maintainer_kit import newest_demo_articles, start_pubmed, table_checksums, use_fake_model


@pytest.fixture
def live(env_isolated, monkeypatch):
    """The CLI against the local E-utilities emulator (bundled demo records) and a real SMTP server."""
    config = env_isolated / "spsbot.toml"
    config.write_text("[sources.clinicaltrials]\nenabled = false\n", encoding="utf-8")
    monkeypatch.setenv("SPSBOT_CONFIG", str(config))
    monkeypatch.setenv("SPSBOT_CACHE_DIR", str(env_isolated / "models"))
    monkeypatch.setenv("NCBI_API_KEY", "test-key")  # 10 requests/s: shorter spacing on loopback
    use_fake_model(monkeypatch)
    with ExitStack() as stack:
        eutils = start_pubmed(stack, newest_demo_articles(8))
        monkeypatch.setenv("SPSBOT_EUTILS_URL", eutils.url + "/entrez/eutils")
        smtp = stack.enter_context(SmtpServer())
        monkeypatch.setenv("SPSBOT_SMTP_URL", smtp.url)
        runner = CliRunner()
        assert runner.invoke(cli, ["subscribers", "add", "ann@example.org"]).exit_code == 0
        yield runner, smtp, env_isolated / "cli.db"


def test_run_dry_run_changes_no_table_and_the_real_run_sends_it(live):
    runner, smtp, db_path = live
    before = table_checksums(db_path)
    dry = runner.invoke(cli, ["run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would send to ann@example.org: SPS digest" in dry.output
    assert "1 message(s) would be sent; nothing was stored or sent" in dry.output
    assert table_checksums(db_path) == before  # no items, scores, digests, deliveries, runs, secret …
    assert smtp.messages == []
    real = runner.invoke(cli, ["run"])
    assert real.exit_code == 0, real.output
    assert smtp.recipients() == ["ann@example.org"]
    subject = dry.output.split("would send to ann@example.org: ", 1)[1].split("\n", 1)[0].rsplit(" (", 1)[0]
    assert smtp.messages[0]["Subject"] == subject
    after_send = table_checksums(db_path)
    again = runner.invoke(cli, ["run", "--dry-run"])  # same day: nothing would go out
    assert again.exit_code == 3 and "0 message(s) would be sent" in again.output
    assert table_checksums(db_path) == after_send


def test_digest_dry_run_builds_nothing(live):
    runner, smtp, db_path = live
    assert runner.invoke(cli, ["fetch"]).exit_code == 0
    assert runner.invoke(cli, ["rank"]).exit_code == 0
    before = table_checksums(db_path)
    dry = runner.invoke(cli, ["digest", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would send to ann@example.org" in dry.output
    assert table_checksums(db_path) == before
    assert "queued 1 digest(s)" in runner.invoke(cli, ["digest", "build"]).output  # the build is still due
    assert "Usage:" in runner.invoke(cli, ["digest"]).output  # bare `digest` only shows its help


# --- issue 25: the dry run tries the SMTP server, says why nothing goes out, logs one line -------

def _run_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " spsbot: run" in line and " started " in line]


def test_dry_run_checks_the_smtp_server_without_sending(live, monkeypatch, env_isolated):
    runner, smtp, db_path = live
    logins = []

    def check(server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"right password", handled=False)

    config = env_isolated / "spsbot.toml"
    config.write_text("[sources.clinicaltrials]\nenabled = false\n[email]\nallow_plaintext_auth = true\n")
    with SmtpServer(authenticator=check) as authed:
        monkeypatch.setenv("SPSBOT_SMTP_URL", authed.url.replace("smtp://", "smtp://digest@"))
        monkeypatch.setenv("SPSBOT_SMTP_PASSWORD", "right password")
        ok = runner.invoke(cli, ["run", "--dry-run"])
        assert ok.exit_code == 0, ok.output
        assert f"SMTP smtp://127.0.0.1:{authed.port}: connected, logged in: ok (nothing sent)" in ok.output
        assert logins == [("digest", "right password")] and authed.messages == []
        monkeypatch.setenv("SPSBOT_SMTP_PASSWORD", "wrong password")
        refused = runner.invoke(cli, ["run", "--dry-run", "--no-fetch"])
        assert refused.exit_code == 1 and "SMTP authentication failed for 'digest'" in refused.output
        assert authed.messages == []
    monkeypatch.setenv("SPSBOT_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.delenv("SPSBOT_SMTP_PASSWORD")
    config.write_text("[sources.clinicaltrials]\nenabled = false\n")
    dead = runner.invoke(cli, ["run", "--dry-run", "--no-fetch"])
    assert dead.exit_code == 1, dead.output
    error = dead.output.strip().splitlines()[-1]
    assert error.startswith("Error: the real run would fail: cannot connect to smtp://127.0.0.1:")
    assert "Connection refused" in error and "set SPSBOT_SMTP_URL" in error
    assert smtp.messages == []


def test_a_dry_run_that_sends_nothing_says_why_and_announces_no_key(live):
    runner, smtp, db_path = live
    assert runner.invoke(cli, ["run"]).exit_code == 0  # today's digest went out
    again = runner.invoke(cli, ["run", "--dry-run", "--no-fetch"])
    assert again.exit_code == 3, again.output
    assert "dry run: 0 message(s) would be sent (1 not due); nothing was stored or sent" in again.output
    assert "signing key" not in again.output and "spsbot-dry-run" not in again.output


def test_the_log_has_one_line_per_run_with_its_stages_and_exit_code_and_true_counts(live):
    runner, smtp, db_path = live
    first = runner.invoke(cli, ["run"])
    assert first.exit_code == 0, first.output
    [line] = _run_lines(first.output)
    assert "run started 2026-11-21T06:00:00+00:00, exit 0: fetch ok" in line
    assert all(f"; {stage} " in line for stage in ("rank", "digest", "send")) and "send 1 sent" in line
    second = runner.invoke(cli, ["run", "--no-fetch"])
    assert second.exit_code == 3
    [line] = _run_lines(second.output)
    relevant = sqlite3.connect(db_path).execute("select count(*) from scores where relevant = 1").fetchone()[0]
    assert relevant > 0 and "exit 3:" in line
    assert f"rank 0 scored now (0 of them relevant), 8 unchanged; {relevant} relevant in the store" in line
