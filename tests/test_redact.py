"""bot.redact.scrub: every shape of a secret goes, nothing else does."""

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from bot.redact import REDACTED, register_secret, scrub

SECRET = "p@ss w/rd+S3CRET"


@pytest.mark.parametrize("user", ["", "a", "ab", "digest"])   # every base64 alignment of the secret
def test_base64_of_any_text_holding_the_secret_is_removed(user):
    for payload in (f"\0{user}\0{SECRET}", f"{user}{SECRET}", f"{user}{SECRET} and more"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            echoed = f"535 5.7.8 bad credentials {encode(payload.encode()).decode()} end"
            assert scrub(echoed, [SECRET]) == f"535 5.7.8 bad credentials {REDACTED} end"


@pytest.mark.parametrize("form", [SECRET, quote(SECRET, safe=""), quote(SECRET), quote_plus(SECRET),
                                  quote(SECRET, safe="").lower(), json.dumps(SECRET)[1:-1]])
def test_plain_percent_encoded_and_escaped_forms_are_removed(form):
    assert scrub(f"GET /x?key={form}&y=1", [SECRET]) == f"GET /x?key={REDACTED}&y=1"


def test_text_without_a_secret_is_unchanged_and_registered_secrets_count(monkeypatch):
    text = "HTTP 503 AHVzZXIAcGFzcw== Service Unavailable"
    assert scrub(text, [SECRET]) == text
    monkeypatch.setenv("SPSBOT_SMTP_PASSWORD", "env-secret-123")
    register_secret("file-key-456")
    assert scrub("env-secret-123 / file-key-456") == f"{REDACTED} / {REDACTED}"
