"""The command line around the web front: ``spsbot serve`` (the real console script, as a
subprocess), ``subscribers add --curator`` and ``feedback list``."""

import json
import os
import signal
import subprocess
import time
import urllib.request

from click.testing import CliRunner

from bot.cli import cli
from bot.store import open_db
from bot.store.ranking import save_feedback
from bot.store.subscribers import save_vote
from conftest import free_port, spsbot_path
from digest_support import paper, seed


def test_serve_answers_and_stops_cleanly_on_sigterm(env_isolated):
    config = env_isolated / "serve.toml"
    config.write_text("[web]\nsemantic_search = false\n", encoding="utf-8")  # no model load in this test
    port = free_port()
    env = {**os.environ, "SPSBOT_CONFIG": str(config), "SPSBOT_SECRET": "serve-secret-0123456789abcdef-0123456789"}
    process = subprocess.Popen([spsbot_path(), "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline, page = time.monotonic() + 30, None
        while page is None and time.monotonic() < deadline:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
            except OSError:
                time.sleep(0.1)
        assert page and "Subscribe" in page
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read() == b"ok\n"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert f"listening on http://127.0.0.1:{port}" in stderr and "spsbot serve: stopped" in stderr
    assert "base_url is not set" in stderr  # the maintainer is told where e-mail links will point
    assert "Traceback" not in stderr


def test_serve_refuses_the_example_smtp_password_before_listening(env_isolated):
    """Like `run` and `status`: the web front sends the sign-up e-mails, and with the env.example
    placeholder it used to listen anyway, tell every visitor "check your inbox" and never send."""
    config = env_isolated / "serve.toml"
    config.write_text("[web]\nsemantic_search = false\n", encoding="utf-8")
    env = {**os.environ, "SPSBOT_CONFIG": str(config), "SPSBOT_SECRET": "serve-secret-0123456789abcdef-0123456789",
           "SPSBOT_SMTP_PASSWORD": "change-me"}
    port = free_port()
    process = subprocess.Popen([spsbot_path(), "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # still listening: the placeholder was accepted
            process.kill()
            process.communicate()
    assert process.returncode == 1
    assert stderr.strip().splitlines()[-1].startswith("Error: SPSBOT_SMTP_PASSWORD is the placeholder")
    assert "listening" not in stderr and "Traceback" not in stderr


def test_serve_unsubscribe_is_an_alias_of_serve():
    help_text = CliRunner().invoke(cli, ["serve-unsubscribe", "--help"]).output
    assert "Alias of `spsbot serve`" in help_text and "--port" in help_text


def test_curators_are_marked_and_listed(env_isolated):
    runner = CliRunner()
    assert runner.invoke(cli, ["subscribers", "add", "ann@example.org"]).exit_code == 0
    marked = runner.invoke(cli, ["subscribers", "add", "cur@example.org", "--curator"])
    assert marked.exit_code == 0 and "(curator)" in marked.output
    rows = [json.loads(line) for line in runner.invoke(cli, ["subscribers", "list", "--json"]).output.splitlines()]
    assert {r["email"]: r["curator"] for r in rows} == {"ann@example.org": False, "cur@example.org": True}
    # re-adding without the flag keeps it; --no-curator removes it
    runner.invoke(cli, ["subscribers", "add", "cur@example.org", "--name", "Cy"])
    assert "\tcurator" in runner.invoke(cli, ["subscribers", "list"]).output
    runner.invoke(cli, ["subscribers", "add", "cur@example.org", "--no-curator"])
    assert "\tcurator" not in runner.invoke(cli, ["subscribers", "list"]).output


def test_feedback_list_shows_curator_labels_and_vote_counts(env_isolated):
    runner = CliRunner()
    for address in ("a@example.org", "b@example.org", "c@example.org"):
        runner.invoke(cli, ["subscribers", "add", address])
    db = open_db(env_isolated / "cli.db")
    seed(db, [paper(1, "Rituximab in SPS"), paper(2, "Baclofen pump")])
    save_vote(db, 1, "pmid:1", "irrelevant")
    save_vote(db, 2, "pmid:1", "irrelevant")
    save_vote(db, 3, "pmid:1", "relevant")
    save_feedback(db, "pmid:2", "relevant")
    save_feedback(db, "pmid:2", "irrelevant", theme="diagnosis")
    db.close()
    listed = runner.invoke(cli, ["feedback", "list"])
    assert listed.exit_code == 0, listed.output
    lines = {line.split("\t")[0]: line for line in listed.output.splitlines()}
    assert "curator: -\tvotes: +1 -2\tRituximab in SPS" in lines["pmid:1"]
    assert "curator: relevant, irrelevant (diagnosis)\tvotes: +0 -0\tBaclofen pump" in lines["pmid:2"]
    rows = [json.loads(line) for line in runner.invoke(cli, ["feedback", "list", "--json"]).output.splitlines()]
    assert {r["item_id"]: (r["votes_relevant"], r["votes_irrelevant"]) for r in rows} == {
        "pmid:1": (1, 2), "pmid:2": (0, 0)}
    bad = runner.invoke(cli, ["feedback", "list", "--since", "yesterday"])
    assert bad.exit_code == 1 and "not a date" in bad.output
