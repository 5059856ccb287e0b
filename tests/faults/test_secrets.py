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

