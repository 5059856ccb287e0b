"""A dry run changes nothing in the database (every table's checksum is the same after it), and
the next real run sends exactly what the dry run said it would."""

from contextlib import ExitStack

import pytest
from click.testing import CliRunner

from bot.cli import cli
from conftest import SmtpServer
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
