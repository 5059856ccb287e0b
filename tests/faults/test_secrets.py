"""Secrets: the SMTP password and the NCBI API key never appear in logs (even -vv), stderr,
stdout, exceptions and their tracebacks, ``spsbot status`` (text or JSON), or the database
file's bytes (main file, -wal and -shm), even when failures are provoked that tempt a leak:
NCBI's rate-limit body echoing the key, a 400 quoting the request, an SMTP server that repeats
the password in its refusal, as plain text, as the base64 of the AUTH PLAIN payload
(``\0user\0password``) and of AUTH LOGIN's, and percent-encoded.
"""

from __future__ import annotations

import base64
import traceback
from pathlib import Path
from urllib.parse import quote

import pytest
from aiosmtpd.smtp import AuthResult

from bot.config import load_config
from bot.digest.send import SendError, send_pending
from bot.fetch import fetch_all
from bot.replay import LocalServer, Response
from bot.sources import pubmed
from bot.sources.http import SourceError
from bot.store import open_db
from conftest import SmtpServer, clean_env, spsbot
from digest_support import NOW
from faults.helpers import queue_digests

SMTP_PASSWORD = "pw-S3CRET/smtp+7781"
NCBI_KEY = "key-S3CRET-ncbi-4242"
SECRETS = (SMTP_PASSWORD, NCBI_KEY)


def encodings(secret: str, user: str = "digest") -> list[str]:
    """Every shape a hostile server can echo a secret in."""
    return [secret, quote(secret, safe=""),
            base64.b64encode(f"\0{user}\0{secret}".encode()).decode(),   # AUTH PLAIN payload
            base64.b64encode(secret.encode()).decode()]                    # AUTH LOGIN password line


def leaky_eutils(request):
    """An E-utilities server that quotes back everything it was sent, in the ways NCBI can."""
    key = request.param("api_key") or ""
    if request.path.endswith("esearch.fcgi") and request.param("retmax") == "0":
        # the real rate-limit body, with the key echoed (NCBI echoes the api-key it was given)
        return Response(429, f'{{"error":"API rate limit exceeded","api-key":"{key}","count":"11","limit":"10"}}',
                        "application/json", headers={"Retry-After": "0"})
    return Response(400, f"Bad Request: cannot parse request api_key={key}&term=x", "text/plain")


def _echo_password(server, session, envelope, mechanism, auth_data):
    login, password = auth_data.login.decode(), auth_data.password.decode()
    echoed = " ".join(encodings(password, login))  # plain, %-encoded, both base64 payloads
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad credentials {echoed}")


class EchoingSmtp(SmtpServer):
    """aiosmtpd requiring AUTH, whose refusal repeats the password it was given (a hostile relay)."""

    def __init__(self):
        super().__init__(authenticator=_echo_password)

    @property
    def url(self) -> str:
        return f"smtp://digest@127.0.0.1:{self.port}"


def assert_clean(text: str | bytes, where: str) -> None:
    for secret in SECRETS:
        for form in encodings(secret):
            needle = form.encode() if isinstance(text, bytes) else form
            assert needle not in text, f"{secret[:6]}… leaked in {where} (as {form[:10]}…)"


def plaintext_relay_config(tmp_path) -> Path:
    """The test relay is plain SMTP on 127.0.0.1: AUTH over it needs allow_plaintext_auth."""
    config = tmp_path / "spsbot.toml"
    config.write_text("[sources.clinicaltrials]\nmin_interval = 0.0\n[email]\nallow_plaintext_auth = true\n",
                      encoding="utf-8")
    return config


def test_cli_failures_never_print_or_store_a_secret(tmp_path):
    db_path = tmp_path / "spsbot.db"
    queue_digests(db_path)
    config = plaintext_relay_config(tmp_path)
    with LocalServer(leaky_eutils) as eutils, EchoingSmtp() as smtp:
        env = clean_env(tmp_path, SPSBOT_DB=db_path, SPSBOT_CONFIG=config, SPSBOT_NOW=NOW,
                        SPSBOT_EUTILS_URL=eutils.url + "/entrez/eutils", SPSBOT_CTGOV_URL=eutils.url,
                        SPSBOT_SMTP_URL=smtp.url, SPSBOT_SMTP_PASSWORD=SMTP_PASSWORD, NCBI_API_KEY=NCBI_KEY)
        outputs = {
            "fetch -vv": spsbot("-vv", "fetch", env=env),
            "digest send -vv": spsbot("-vv", "digest", "send", env=env),
            "run -vv --no-fetch --no-rank": spsbot("-vv", "run", "--no-fetch", "--no-rank", env=env),
            "status": spsbot("status", env=env),
            "status --json": spsbot("status", "--json", env=env),
        }
        # the key reached the server (so the echo really carried it back) …
        assert any(r.param("api_key") == NCBI_KEY for r in eutils.requests)
    # … and the failures really happened
    assert outputs["fetch -vv"].returncode in (1, 4) and "FAILED" in outputs["fetch -vv"].stderr
    assert "authentication failed" in outputs["digest send -vv"].stderr
    assert outputs["digest send -vv"].returncode == 1 and outputs["run -vv --no-fetch --no-rank"].returncode == 1
    for name, result in outputs.items():
        assert "Traceback" not in result.stderr, name
        assert_clean(result.stdout, f"{name} stdout")
        assert_clean(result.stderr, f"{name} stderr")
    assert_clean(outputs["status --json"].stdout, "status --json")
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(db_path) + suffix)
        if path.exists():
            assert_clean(path.read_bytes(), f"database file {path.name}")
    db = open_db(db_path)
    errors = " ".join(str(r[0]) for r in db.execute("select error from runs where error is not null"))
    assert "rate limit" in errors or "HTTP" in errors  # the failures were recorded, minus the secrets
    assert_clean(errors, "runs.error")
    # the echoed refusal itself was recorded and shown, with every encoding of the password cut out
    assert "bad credentials <redacted>" in errors and "bad credentials <redacted>" in outputs["status"].stdout


def test_exceptions_and_tracebacks_never_carry_a_secret(tmp_path, monkeypatch, caplog):
    """In-process, the exceptions themselves (str, repr, chained causes, formatted traceback)."""
    caplog.set_level("DEBUG")
    db_path = tmp_path / "spsbot.db"
    queue_digests(db_path)
    with LocalServer(leaky_eutils) as eutils, EchoingSmtp() as smtp:
        monkeypatch.setenv("SPSBOT_SMTP_PASSWORD", SMTP_PASSWORD)
        config = load_config(plaintext_relay_config(tmp_path),
                             env={"SPSBOT_EUTILS_URL": eutils.url + "/entrez/eutils", "SPSBOT_SMTP_URL": smtp.url})
        client = pubmed.configured_client(config, env={"NCBI_API_KEY": NCBI_KEY}, min_interval=0, backoff=0,
                                          max_retries=1)
        with pytest.raises(SourceError) as fetch_error:
            pubmed.esearch(client, "stiff person syndrome", "2026/01/01", "2026/11/20")
        with pytest.raises(SourceError) as other_error:
            client.request("efetch.fcgi", method="POST", data={"db": "pubmed", "id": "1"})
        db = open_db(db_path)
        result = fetch_all(db, config, ["pubmed"], pubmed={"client": client})
        with pytest.raises(SendError) as send_error:
            send_pending(db, config)
    assert "rate limit" in str(fetch_error.value) and "HTTP 400" in str(other_error.value)
    assert "authentication failed" in str(send_error.value)
    for info in (fetch_error, other_error, send_error):
        text = "".join(traceback.format_exception(info.value))
        assert_clean(text + repr(info.value), f"{type(info.value).__name__} traceback")
    assert_clean(" ".join(result.errors.values()), "FetchResult.errors")
    # spsbot's own log records (the test SMTP server's "mail.log" chatter is the server's, not ours)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith(("bot", "spsbot", "urllib3", "requests"))]
    assert any("rate limit" in m or "HTTP" in m for m in ours)
    assert_clean("\n".join(ours), "log records")
    assert_clean(repr(send_error.value.__context__ or ""), "exception context")


# --- the signing secret and its key file (issue 25) -----------------------------------------------

import os  # noqa: E402
import re  # noqa: E402
import stat  # noqa: E402

from bot.digest.subscribers import add_subscriber  # noqa: E402
from bot.digest.tokens import make_token, secret_for, verify_token  # noqa: E402
from bot.store.keyfile import MIN_SECRET_BYTES, KeyFileError, SecretError  # noqa: E402
from maintainer_kit import SCHEDULES  # noqa: E402

GOOD_SECRET = "q3V0cmFuZG9tLXNlY3JldC1mb3ItdGVzdHMtMDEyMzQ1Njc4OQ"
THEMES = load_config().theme_names


def shipped_examples(name: str) -> list[str]:
    """Every value ``name`` is given in the shipped examples (env file, READMEs, docs)."""
    found = []
    for path in [SCHEDULES / "env.example", SCHEDULES / "README.md", Path("README.md"),
                 *Path("docs").glob("*.md")]:
        found += re.findall(rf"\b{name}=['\"]?([^'\"\s`]+)", (Path(__file__).parents[2] / path).read_text())
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
            from bot.digest.send import SmtpSettings
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
