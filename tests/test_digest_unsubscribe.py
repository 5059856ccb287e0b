"""Signed unsubscribe tokens: valid, forged, moved to another subscriber, expired; the CLI and the
one-click HTTP endpoint."""

import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_config
from bot.digest.subscribers import add_subscriber
from bot.digest.tokens import TokenError, apply_unsubscribe, make_token, secret_for, verify_token
from bot.store import open_db
from bot.store.digests import get_setting
from bot.web.app import create_app
from web_support import running

THEMES = load_config().theme_names
NOW = "2026-11-23T06:00:00+00:00"


@pytest.fixture
def two(db, monkeypatch):
    monkeypatch.delenv("SPSBOT_SECRET", raising=False)
    ann, _ = add_subscriber(db, "ann@example.org", valid_themes=THEMES)
    bob, _ = add_subscriber(db, "bob@example.org", valid_themes=THEMES)
    return ann, bob


def test_valid_token_unsubscribes_once_and_is_idempotent(db, two):
    ann, bob = two
    token = make_token(secret_for(db), ann["id"], ann["email"], NOW)
    assert verify_token(db, token, NOW)["email"] == "ann@example.org"
    apply_unsubscribe(db, token, NOW)
    apply_unsubscribe(db, token, NOW)
    status = {r["email"]: r["status"] for r in db["subscribers"].rows}
    assert status == {"ann@example.org": "unsubscribed", "bob@example.org": "active"}


def test_secret_generated_once_and_kept_beside_the_database_not_in_it(db, two, tmp_path):
    first = secret_for(db)
    assert first == secret_for(db) and len(first) == 64
    assert get_setting(db, "unsubscribe_secret") is None  # anyone who can read the DB could forge tokens
    key_file = tmp_path / "test.db.key"
    assert key_file.read_text().strip() == first.decode() and (key_file.stat().st_mode & 0o777) == 0o600


def test_env_secret_takes_precedence(db, two, monkeypatch):
    ann, _ = two
    token = make_token(secret_for(db), ann["id"], ann["email"], NOW)
    deployment = "a-deployment-secret-0123456789abcdef"
    monkeypatch.setenv("SPSBOT_SECRET", deployment)
    with pytest.raises(TokenError):
        verify_token(db, token, NOW)  # signed with the stored secret, checked with the env one
    assert verify_token(db, make_token(deployment.encode(), ann["id"], ann["email"], NOW), NOW)["id"] == ann["id"]


@pytest.mark.parametrize("forge", [
    lambda t, ann, bob: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),       # tampered signature
    lambda t, ann, bob: f"{bob['id']}" + t[t.index("."):],                        # moved to another subscriber
    lambda t, ann, bob: t.split(".")[0] + ".99999." + t.split(".")[2],             # another day
    lambda t, ann, bob: make_token(b"guessed secret", ann["id"], ann["email"], NOW),  # wrong key
    lambda t, ann, bob: "", lambda t, ann, bob: "1.2", lambda t, ann, bob: "x.y.z",
    lambda t, ann, bob: "999." + t.split(".", 1)[1],                               # unknown subscriber
])
def test_forged_tokens_rejected_and_change_nothing(db, two, forge):
    ann, bob = two
    token = make_token(secret_for(db), ann["id"], ann["email"], NOW)
    with pytest.raises(TokenError):
        apply_unsubscribe(db, forge(token, ann, bob), NOW)
    assert {r["status"] for r in db["subscribers"].rows} == {"active"}


def test_expired_token_rejected(db, two):
    ann, _ = two
    token = make_token(secret_for(db), ann["id"], ann["email"], "2024-01-01T00:00:00+00:00")
    with pytest.raises(TokenError, match="expired"):
        verify_token(db, token, NOW)


def test_cli_unsubscribe(env_isolated, monkeypatch):
    monkeypatch.setenv("SPSBOT_SECRET", "cli-secret-0123456789abcdef-0123456789")
    runner = CliRunner()
    assert runner.invoke(cli, ["subscribers", "add", "ann@example.org"]).exit_code == 0
    token = make_token(b"cli-secret-0123456789abcdef-0123456789", 1, "ann@example.org")
    bad = runner.invoke(cli, ["unsubscribe", token[:-1] + ("x" if token[-1] != "x" else "y")])
    assert bad.exit_code == 1 and "invalid unsubscribe token" in bad.output
    good = runner.invoke(cli, ["unsubscribe", token])
    assert good.exit_code == 0 and "unsubscribed ann@example.org" in good.output


def test_one_click_http_endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_SECRET", "http-secret-0123456789abcdef-0123456789")
    path = tmp_path / "http.db"
    db = open_db(path)
    add_subscriber(db, "ann@example.org", valid_themes=THEMES)
    db.close()
    token = make_token(b"http-secret-0123456789abcdef-0123456789", 1, "ann@example.org")
    with running(create_app(load_config(), str(path))) as url:
        base = f"{url}/unsubscribe?token="
        page = urllib.request.urlopen(base + token, timeout=10).read().decode()
        assert '<form method="post"' in page  # a GET only asks: link scanners must not unsubscribe
        check = open_db(path)
        assert check["subscribers"].get(1)["status"] == "active"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(base + "1.1.forged", data=b"List-Unsubscribe=One-Click"),
                                   timeout=10)
        assert e.value.code == 400
        answer = urllib.request.urlopen(urllib.request.Request(base + token, data=b"List-Unsubscribe=One-Click"),
                                        timeout=10)
        assert answer.status == 200
        assert check["subscribers"].get(1)["status"] == "unsubscribed"
        check.close()
