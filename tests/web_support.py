"""Helpers for the web front's tests: the real app on a real waitress server on 127.0.0.1, and
small readers for the pages (CSRF tokens, links in e-mails)."""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from pathlib import Path

from bot.config import load_config


def web_config(tmp_path, extra: str = "", *, smtp_url: str | None = None):
    """The bundled profile with a [web] section for tests (tight timeouts), plus ``extra`` TOML."""
    path = tmp_path / "web.toml"
    email = f'[email]\nsmtp_url = "{smtp_url}"\nfrom = "SPS digest <digest@example.org>"\n' if smtp_url else ""
    path.write_text(f"{email}[web]\nchannel_timeout = 1\nrequest_timeout = 1\n{extra}", encoding="utf-8")
    return load_config(path)


@contextmanager
def running(app, web: dict | None = None):
    """Serve ``app`` on a free port; yields the base URL."""
    from bot.web.server import make_server, serve_in_thread, stop_server
    server = make_server(app, "127.0.0.1", 0, web or {})
    thread = serve_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop_server(server)  # the thread's poll() returns within a second; no need to wait for it
        del thread


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no hidden field {name!r}"
    return html.unescape(match.group(1))


def links(text: str, path: str) -> list[str]:
    """Every URL in ``text`` (an e-mail part) whose path is ``path`` (e.g. "/confirm")."""
    return [html.unescape(u) for u in re.findall(r'https?://[^\s"<>]+' + re.escape(path) + r'\?[^\s"<>]+', text)]


def web_store(path: Path, items: list[dict], *, ann_themes: list[str]) -> Path:
    """A store at ``path`` on the tests' clock: ``items`` seeded and Ann subscribed to ``ann_themes``
    (a module's template, built once and copied by each test)."""
    import pytest

    from bot.digest.subscribers import add_subscriber
    from bot.store import open_db
    from digest_support import NOW, seed
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPSBOT_NOW", NOW)
        db = open_db(path)
        seed(db, items)
        add_subscriber(db, "ann@example.org", valid_themes=ann_themes, name="Ann")
        db.close()
    return path
