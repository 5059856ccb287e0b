"""`spsbot run` end to end: the real PubMed fetch against the local E-utilities emulator serving the
bundled demo records, the real ranker (the packaged model's vectors, computed once per session by
``ranked_demo_db`` and pre-filled into the embedding cache), digests, and a real SMTP server. Each
subscriber gets exactly one correct e-mail per period, re-runs included."""

import json
from contextlib import ExitStack

from click.testing import CliRunner

from bot.cli import cli
from bot.demo import start_pubmed_server
from bot.store import open_db
from conftest import SmtpServer, prewarm_embeddings


def test_run_delivers_one_digest_per_subscriber_per_period(env_isolated, monkeypatch, ranked_demo_db):
    prewarm_embeddings(env_isolated / "cli.db", ranked_demo_db)
    config = env_isolated / "spsbot.toml"
    config.write_text("[sources.clinicaltrials]\nenabled = false\n", encoding="utf-8")
    monkeypatch.setenv("SPSBOT_CONFIG", str(config))
    monkeypatch.setenv("SPSBOT_NOW", "2026-11-21T06:00:00+00:00")  # the demo records end on 2026-11-20
    runner = CliRunner()
    with ExitStack() as stack:
        eutils = start_pubmed_server(stack)
        monkeypatch.setenv("SPSBOT_EUTILS_URL", eutils.url + "/entrez/eutils")
        smtp = stack.enter_context(SmtpServer())
        monkeypatch.setenv("SPSBOT_SMTP_URL", smtp.url)
        for args in (["all@example.org"], ["bio@example.org", "--themes", "biomarkers"]):
            assert runner.invoke(cli, ["subscribers", "add", *args]).exit_code == 0
        first = runner.invoke(cli, ["run"])
        assert first.exit_code == 0, first.output
        assert sorted(smtp.recipients()) == ["all@example.org", "bio@example.org"]
        again = runner.invoke(cli, ["run"])  # same day: nothing due, nothing new
        assert again.exit_code == 3, again.output
        monkeypatch.setenv("SPSBOT_NOW", "2026-11-28T06:00:00+00:00")  # next week: no new records
        later = runner.invoke(cli, ["run"])
        assert later.exit_code == 3, later.output
        assert len(smtp.messages) == 2
    db = open_db(env_isolated / "cli.db")
    data = {row["email"]: json.loads(row["data"]) for row in db.query(
        "select s.email, d.data from digests d join subscribers s on s.id = d.subscriber_id")}
    assert {s["theme"] for s in data["bio@example.org"]["sections"]} == {"biomarkers"}
    everyone = data["all@example.org"]
    assert len({s["theme"] for s in everyone["sections"]}) > 1
    sent = [r["item_id"] for r in db.query("select item_id from sent_items where subscriber_id = 1")]
    assert sent and len(sent) == len(set(sent))
    # every item shown was indexed in the last week (no back-catalogue flood)
    placeholders = ",".join("?" * len(sent))
    dates = [r["entrez_date"] for r in db.query(f"select entrez_date from items where id in ({placeholders})", sent)]
    assert all("2026-11-14" <= d <= "2026-11-21" for d in dates), dates
    assert db["items"].count > len(sent)
    message = next(m for m in smtp.messages if m["To"] == "bio@example.org")
    assert message["Subject"].startswith("SPS digest — ")
    assert "pubmed.ncbi.nlm.nih.gov" in message.get_body(("html",)).get_content()
