"""``spsbot status`` tells a healthy pipeline from a broken one by its exit code: 8 broken config,
6 the last run failed, 7 deliveries failing, 5 stale (the most urgent wins), 0 healthy; and the
read-only commands refuse a broken configuration like every other command (exit 1)."""

import json

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.cli.base import EXIT_CONFIG_INVALID, EXIT_DELIVERIES_FAILING, EXIT_RUN_FAILED, EXIT_STALE
from bot.store import recorded_run
from conftest import SmtpServer
from digest_support import NOW, offline_cli_store, paper


@pytest.fixture
def setup(env_isolated, monkeypatch):
    """One subscriber, this week's papers, sources that succeeded yesterday (nothing stale)."""
    db = offline_cli_store(env_isolated, monkeypatch, [paper(1, "IVIG in SPS")])
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-22T06:00:00+00:00")
    for source in ("pubmed", "clinicaltrials"):
        with recorded_run(db, "fetch", source) as run:
            run.counts["new"] = 1
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    db.close()
    runner = CliRunner()
    assert runner.invoke(cli, ["subscribers", "add", "ann@example.org"]).exit_code == 0
    return runner


def test_healthy_is_0_then_a_failed_send_is_6(setup, monkeypatch):
    assert setup.invoke(cli, ["status"]).exit_code == 0
    with SmtpServer() as server:
        dead = server.url
    monkeypatch.setenv("SPSBOT_SMTP_URL", dead)  # stopped: connection refused
    assert setup.invoke(cli, ["run", "--no-rank"]).exit_code == 1
    status = setup.invoke(cli, ["status"])
    assert status.exit_code == EXIT_RUN_FAILED, status.output
    assert "WARNING: the last `spsbot run`" in status.output and "failed: " in status.output
    assert "OK:" not in status.output
    with SmtpServer() as server:  # the relay is back: the next run sends, status is healthy again
        monkeypatch.setenv("SPSBOT_SMTP_URL", server.url)
        assert setup.invoke(cli, ["run", "--no-rank"]).exit_code == 0
    assert setup.invoke(cli, ["status"]).exit_code == 0


@pytest.mark.parametrize("behaviour, what, problems", [
    ({"defer_rcpt": {1}}, ("1 being retried", "try again later"), ["deliveries_failing"]),
    # every delivery refused: the run itself failed (exit 1), which outranks the failing delivery
    ({"refuse_rcpt": {1}}, ("1 failed or bounced", "mailbox unavailable"), ["run_failed", "deliveries_failing"])])
def test_deferred_or_bounced_deliveries_are_7(setup, monkeypatch, behaviour, what, problems):
    with SmtpServer(**behaviour) as server:
        monkeypatch.setenv("SPSBOT_SMTP_URL", server.url)
        setup.invoke(cli, ["run", "--no-rank"])
    status = setup.invoke(cli, ["status", "--json"])
    code = EXIT_DELIVERIES_FAILING if problems[0] == "deliveries_failing" else EXIT_RUN_FAILED
    assert status.exit_code == code, status.output
    report = json.loads(status.output)
    assert report["problems"] == problems and report["exit_code"] == code
    assert any(all(part in w for part in what) for w in report["warnings"]), report["warnings"]


def test_a_broken_config_is_8_and_still_shows_the_state(setup, monkeypatch, env_isolated):
    (env_isolated / "spsbot.toml").write_text("[digest]\nmax_itemz = 3\n", encoding="utf-8")
    status = setup.invoke(cli, ["status"])
    assert status.exit_code == EXIT_CONFIG_INVALID, status.output
    assert "WARNING: the configuration is invalid" in status.output and "max_itemz" in status.output
    assert "Subscribers: 1 active" in status.output
    monkeypatch.setenv("SPSBOT_NOW", "2026-12-30T06:00:00+00:00")  # stale as well: config still wins
    assert setup.invoke(cli, ["status"]).exit_code == EXIT_CONFIG_INVALID


def test_stale_alone_is_still_5(setup, monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", "2026-12-30T06:00:00+00:00")
    assert setup.invoke(cli, ["status"]).exit_code == EXIT_STALE


@pytest.mark.parametrize("command", [["subscribers", "list"], ["trials"], ["changes"], ["export"]])
def test_read_only_commands_exit_1_on_a_config_error(setup, env_isolated, command):
    (env_isolated / "spsbot.toml").write_text("[digest]\nmax_itemz = 3\n", encoding="utf-8")
    result = setup.invoke(cli, command)
    assert result.exit_code == 1, result.output
    assert "unknown key 'max_itemz' in [digest]" in result.output
