"""The secret that signs the links in e-mails (issue 25): a placeholder from the shipped examples or
a short SPSBOT_SECRET is refused by every command that signs or checks a link (and the example SMTP
password), a key file missing beside a database with links out is refused rather than replaced
(``spsbot rotate-key`` replaces it on purpose), the key is read once per process, and the database,
its WAL/SHM, key and lock files are the owner's alone."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from bot.config import load_config
from bot.digest.send import SendError, SmtpSettings
from bot.digest.subscribers import add_subscriber
from bot.digest.tokens import TokenError, make_token, secret_for, verify_token
from bot.store import open_db
from bot.store.keyfile import MIN_SECRET_BYTES, KeyFileError, SecretError
from conftest import clean_env, spsbot
from maintainer_kit import SCHEDULES

GOOD_SECRET = "q3V0cmFuZG9tLXNlY3JldC1mb3ItdGVzdHMtMDEyMzQ1Njc4OQ"
THEMES = load_config().theme_names


def shipped_examples(name: str) -> list[str]:
    """Every value ``name`` is given in the shipped examples (env file, READMEs, docs)."""
    root = Path(__file__).parents[1]
    found = []
    for path in [SCHEDULES / "env.example", SCHEDULES / "README.md", root / "README.md", *(root / "docs").glob("*.md")]:
        found += re.findall(rf"\b{name}=['\"]?([^'\"\s`]+)", path.read_text())
    return found


def test_the_examples_ship_placeholders_and_each_is_refused(monkeypatch, db):
    secrets_shipped, passwords_shipped = shipped_examples("SPSBOT_SECRET"), shipped_examples("SPSBOT_SMTP_PASSWORD")
    assert "change-me-to-a-long-random-string" in secrets_shipped and "change-me" in passwords_shipped
    for value in secrets_shipped + ["a", "x" * (MIN_SECRET_BYTES - 1)]:
        monkeypatch.setenv("SPSBOT_SECRET", value)
        with pytest.raises(SecretError, match=r"^SPSBOT_SECRET .*import secrets; print\(secrets.token_urlsafe"):
            secret_for(db)
    monkeypatch.setenv("SPSBOT_SECRET", GOOD_SECRET)
    assert secret_for(db) == GOOD_SECRET.encode()
    config = load_config(env={"SPSBOT_SMTP_URL": "smtp+starttls://mail.example.org:587"})
    for value in passwords_shipped:
        with pytest.raises(SendError, match="^SPSBOT_SMTP_PASSWORD is the placeholder"):
            SmtpSettings.from_config(config, env={"SPSBOT_SMTP_PASSWORD": value})


def test_every_command_that_signs_or_checks_a_link_refuses_the_placeholder(tmp_path):
    db_path = tmp_path / "spsbot.db"
    db = open_db(db_path)
    ann, _ = add_subscriber(db, "ann@example.org", valid_themes=THEMES)
    db.close()
    placeholder = shipped_examples("SPSBOT_SECRET")[0]
    forged = make_token(placeholder.encode(), ann["id"], ann["email"])  # what anyone reading the example can do
    env = clean_env(tmp_path, SPSBOT_DB=db_path, SPSBOT_SECRET=placeholder)
    commands = {"unsubscribe": ["unsubscribe", forged], "run": ["run", "--no-fetch", "--no-rank"],
                "dry run": ["run", "--dry-run", "--no-fetch", "--no-rank"],
                "preview": ["digest", "preview", "--to", "ann@example.org", "--out", str(tmp_path)],
                "serve": ["serve", "--port", "0"], "status": ["status"]}
    for name, args in commands.items():
        result = spsbot(*args, env=env, timeout=120)
        assert result.returncode == (8 if name == "status" else 1), (name, result.stdout, result.stderr)
        assert "SPSBOT_SECRET is the placeholder from schedules/env.example" in result.stdout + result.stderr, name
        assert "secrets.token_urlsafe(32)" in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert open_db(db_path)["subscribers"].get(ann["id"])["status"] == "active"  # the forgery did nothing


def test_a_missing_key_beside_a_database_with_subscribers_is_refused_not_replaced(tmp_path, monkeypatch):
    monkeypatch.delenv("SPSBOT_SECRET", raising=False)
    db_path = tmp_path / "spsbot.db"
    db = open_db(db_path)
    ann, _ = add_subscriber(db, "ann@example.org", valid_themes=THEMES)
    mailed = make_token(secret_for(db), ann["id"], ann["email"])
    db.close()
    key = Path(f"{db_path}.key")
    key.rename(tmp_path / "backup.key")           # a restored backup without its key
    env = clean_env(tmp_path, SPSBOT_DB=db_path)
    refused = spsbot("unsubscribe", mailed, env=env)
    assert refused.returncode == 1 and not key.exists()
    line = refused.stderr.strip().splitlines()[-1]
    assert f"the signing key {key} is missing" in line and "restore it from your backup" in line
    assert "spsbot rotate-key" in line and "every link already mailed stops working" in line
    served = spsbot("serve", "--port", "0", env=env, timeout=60)
    assert served.returncode == 1 and "is missing" in served.stderr and not key.exists()

    rotated = spsbot("rotate-key", "--yes", env=env)
    assert rotated.returncode == 0 and "every link already mailed stops working" in rotated.stdout
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert spsbot("unsubscribe", mailed, env=env).returncode == 1   # the old link: invalid now, as said
    (tmp_path / "backup.key").replace(key)                          # the backup restored: it works again
    assert spsbot("unsubscribe", mailed, env=env).returncode == 0


def test_the_key_is_read_once_per_process(tmp_path, monkeypatch):
    """Deleting the key file under a running process changes nothing there; the next start refuses."""
    monkeypatch.delenv("SPSBOT_SECRET", raising=False)
    db = open_db(tmp_path / "spsbot.db")
    ann, _ = add_subscriber(db, "ann@example.org", valid_themes=THEMES)
    token = make_token(secret_for(db), ann["id"], ann["email"])
    Path(f"{tmp_path / 'spsbot.db'}.key").unlink()
    assert verify_token(db, token)["id"] == ann["id"]              # same key, no new one minted
    assert not Path(f"{tmp_path / 'spsbot.db'}.key").exists()
    result = spsbot("unsubscribe", token, env=clean_env(tmp_path))
    assert result.returncode == 1 and "is missing" in result.stderr


def test_a_database_without_links_out_still_gets_its_key_quietly(tmp_path, monkeypatch):
    """An older spsbot's database with no key file and nobody mailed yet: a key is made, no refusal."""
    monkeypatch.delenv("SPSBOT_SECRET", raising=False)
    db = open_db(tmp_path / "spsbot.db")
    Path(f"{tmp_path / 'spsbot.db'}.key").unlink()
    db.close()
    db = open_db(tmp_path / "spsbot.db")
    assert len(secret_for(db)) == 64
    add_subscriber(db, "ann@example.org", valid_themes=THEMES)
    db.close()
    Path(f"{tmp_path / 'spsbot.db'}.key").unlink()
    with pytest.raises(KeyFileError):  # this process read the key once: a fresh read (another process) refuses
        from bot.store import keyfile
        monkeypatch.setattr(keyfile, "_cache", {})
        keyfile.check_signing_secret(open_db(tmp_path / "spsbot.db"))


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_database_wal_shm_key_and_lock_files_are_created_owner_only(tmp_path, monkeypatch):
    monkeypatch.delenv("SPSBOT_SECRET", raising=False)
    old = os.umask(0o022)  # the usual umask, under which SQLite made the database 0644
    try:
        db_path = tmp_path / "spsbot.db"
        result = spsbot("subscribers", "add", "ann@example.org", env=clean_env(tmp_path, SPSBOT_DB=db_path))
        assert result.returncode == 0, result.stderr
        db = open_db(db_path)
        db["subscribers"].update(1, {"name": "Ann"})  # WAL and SHM exist while it is open
        from bot.lock import db_lock, lock_path
        with db_lock(db_path):
            files = [db_path, f"{db_path}-wal", f"{db_path}-shm", f"{db_path}.key", lock_path(db_path)]
            assert {str(f): _mode(f) for f in files} == {str(f): 0o600 for f in files}
        db.close()
    finally:
        os.umask(old)


def test_an_existing_world_readable_database_is_tightened_with_a_warning(tmp_path, caplog):
    db_path = tmp_path / "spsbot.db"
    open_db(db_path).close()
    os.chmod(db_path, 0o644)
    with caplog.at_level("WARNING"):
        open_db(db_path).close()
    assert _mode(db_path) == 0o600
    assert any("readable by other users (mode 644)" in r.getMessage() for r in caplog.records)


def test_the_example_smtp_password_is_refused_before_anything_runs(tmp_path):
    placeholder = shipped_examples("SPSBOT_SMTP_PASSWORD")[0]
    env = clean_env(tmp_path, SPSBOT_SECRET=GOOD_SECRET, SPSBOT_SMTP_PASSWORD=placeholder,
                    SPSBOT_EUTILS_URL="http://127.0.0.1:9/never-asked", SPSBOT_CTGOV_URL="http://127.0.0.1:9/never")
    run = spsbot("run", env=env)
    assert run.returncode == 1 and "Error: SPSBOT_SMTP_PASSWORD is the placeholder" in run.stderr
    assert "127.0.0.1:9" not in run.stderr  # refused before any fetch was tried
    status = spsbot("status", env=env)
    assert status.returncode == 8 and "SPSBOT_SMTP_PASSWORD is the placeholder" in status.stdout


def test_a_secret_that_overrides_a_different_key_file_is_said_once(tmp_path, monkeypatch, caplog):
    from bot.store import keyfile
    db_path = tmp_path / "spsbot.db"
    monkeypatch.delenv("SPSBOT_SECRET", raising=False)
    db = open_db(db_path)
    ann, _ = add_subscriber(db, "ann@example.org", valid_themes=THEMES)
    old = make_token(secret_for(db), ann["id"], ann["email"])   # mailed while the key file signed
    monkeypatch.setattr(keyfile, "_warned", set())
    monkeypatch.setenv("SPSBOT_SECRET", GOOD_SECRET)
    with caplog.at_level("WARNING", logger="bot.store.keyfile"):
        assert secret_for(db) == GOOD_SECRET.encode()
        secret_for(db)
    shadowed = [r for r in caplog.records if "holds another key" in r.getMessage()]
    assert len(shadowed) == 1 and str(db_path) in shadowed[0].getMessage()
    with pytest.raises(TokenError):                             # what the warning is about
        verify_token(db, old)
    assert (tmp_path / "spsbot.db.key").read_text().strip() not in caplog.text  # the key is never echoed
    # The same secret in both places: nothing to say.
    caplog.clear()
    monkeypatch.setattr(keyfile, "_warned", set())
    monkeypatch.setenv("SPSBOT_SECRET", (tmp_path / "spsbot.db.key").read_text().strip())
    with caplog.at_level("WARNING", logger="bot.store.keyfile"):
        secret_for(db)
    assert "holds another key" not in caplog.text
