"""A run has a deadline (``[run] deadline_minutes``, or ``spsbot run --deadline MINUTES``): a source
that answers too slowly cannot keep the weekly job, and its writer lock, forever. Once the deadline
has passed no request is made, the run ends with exit 1 and its ``runs`` row says why."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.replay import LocalServer
from bot.replay.eutils import eutils_responder
from bot.store import open_db
from faults.helpers import demo_articles


def _slow_efetch(delay: float):
    inner = eutils_responder(demo_articles())

    def respond(request):
        answer = inner(request)
        if request.path.endswith("efetch.fcgi"):
            answer.delay = delay
        return answer
    return respond


@pytest.mark.parametrize("where", ["--deadline", "[run] deadline_minutes"])
def test_a_slow_source_cannot_outlast_the_runs_deadline(tmp_path, monkeypatch, where):
    config = tmp_path / "spsbot.toml"
    minutes = "0.01"   # 0.6 s (PubMed spacing alone is 0.34 s); the config default is 120 minutes
    config.write_text("[sources.clinicaltrials]\nenabled = false\n[run]\ndeadline_minutes = "
                      + (minutes if where.startswith("[run]") else "60") + "\n", encoding="utf-8")
    db_path = tmp_path / "spsbot.db"
    monkeypatch.setenv("SPSBOT_DB", str(db_path))
    monkeypatch.setenv("SPSBOT_CONFIG", str(config))
    args = ["run", "--no-rank"] + (["--deadline", minutes] if where == "--deadline" else [])
    with LocalServer(_slow_efetch(delay=2.0)) as server:
        monkeypatch.setenv("SPSBOT_EUTILS_URL", server.url)
        result = CliRunner().invoke(cli, args)
        efetches = [r for r in server.requests if r.path.endswith("efetch.fcgi")]
    assert result.exit_code == 1, result.output
    assert len(efetches) == 1            # cut off by the deadline, and never retried after it
    db = open_db(db_path)
    status, error = db.execute("select status, error from runs where command = 'run'").fetchone()
    fetch_error = db.execute("select error from runs where source = 'pubmed'").fetchone()[0]
    db.close()
    print(f"FAULT LINE [run deadline, {where}]: {error}")
    assert status == "failed" and "deadline" in error and "deadline" in fetch_error
