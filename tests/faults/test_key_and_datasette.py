"""The unsubscribe signing key is never in the database (a 0600 file beside it, or SPSBOT_SECRET),
an older database's key is moved out without breaking the links already sent, and the Datasette
metadata ``spsbot datasette-metadata`` prints serves no subscriber's address."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_config
from bot.digest.subscribers import add_subscriber
from bot.digest.tokens import make_token, secret_for, verify_token
from bot.store import open_db
from bot.store.schema import MIGRATIONS
from digest_support import NOW, paper, seed

THEMES = load_config().theme_names


def _file_bytes(db_path: Path) -> bytes:
    return b"".join(Path(str(db_path) + s).read_bytes() for s in ("", "-wal", "-shm")
                    if Path(str(db_path) + s).exists())


def test_a_new_databases_key_lives_in_a_0600_file_beside_it_never_inside(tmp_path, monkeypatch):
    monkeypatch.delenv("SPSBOT_SECRET", raising=False)
    db_path = tmp_path / "spsbot.db"
    db = open_db(db_path)
    ann, _ = add_subscriber(db, "ann@example.org", valid_themes=THEMES)
    key = secret_for(db)
    token = make_token(key, ann["id"], ann["email"], NOW)
    db.close()
    key_file = tmp_path / "spsbot.db.key"
    assert key_file.read_bytes().strip() == key and key_file.stat().st_mode & 0o777 == 0o600
    assert key not in _file_bytes(db_path)
    db = open_db(db_path)                                  # a later run signs and checks with the same key
    assert verify_token(db, token, NOW)["email"] == "ann@example.org"
    db.close()


def _old_database(db_path: Path, key: str) -> None:
    """A database as spsbot before migration 007 left it: the key in ``settings``."""
    import sqlite_utils
    db = sqlite_utils.Database(str(db_path))
    db.enable_wal()
    db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    for name, migrate in MIGRATIONS:
        if name.startswith("007"):
            break
        with db.atomic():
            migrate(db)
            db["_migrations"].insert({"name": name, "applied_at": NOW})
    with db.atomic():
        db["settings"].insert({"key": "unsubscribe_secret", "value": key, "updated_at": NOW})
    db.close()


def test_migration_007_moves_an_old_key_out_and_old_links_keep_working(tmp_path, monkeypatch):
    monkeypatch.delenv("SPSBOT_SECRET", raising=False)
    db_path = tmp_path / "spsbot.db"
    key = secrets.token_hex(32)
    _old_database(db_path, key)
    assert key.encode() in _file_bytes(db_path)            # (the leak being fixed)
    import sqlite_utils
    old = sqlite_utils.Database(str(db_path))
    old["subscribers"].insert({"email": "ann@example.org", "status": "active"})
    old.close()
    link_already_sent = make_token(key.encode(), 1, "ann@example.org", NOW)

    db = open_db(db_path)                                  # the upgrade: migrations 007…
    assert db.execute("select count(*) from settings").fetchone()[0] == 0
    assert verify_token(db, link_already_sent, NOW)["email"] == "ann@example.org"
    db.close()
    assert (tmp_path / "spsbot.db.key").read_text().strip() == key
    assert (tmp_path / "spsbot.db.key").stat().st_mode & 0o777 == 0o600
    assert key.encode() not in _file_bytes(db_path)        # wiped from the pages and the WAL


def _datasette_pages(db_path: Path, metadata: dict | None, urls: list[str]) -> dict:
    from datasette import app as datasette_app

    async def fetch():
        ds = datasette_app.Datasette([str(db_path)], metadata=metadata)
        return {url: await ds.client.get(url) for url in urls}
    return asyncio.run(fetch())


def test_datasette_metadata_serves_the_literature_and_no_subscriber_address(tmp_path, monkeypatch):
    db_path = tmp_path / "spsbot.db"
    monkeypatch.setenv("SPSBOT_DB", str(db_path))
    db = open_db(db_path)
    seed(db, [paper(1, "Rituximab in stiff person syndrome")])
    add_subscriber(db, "ann.private@example.org", valid_themes=THEMES, name="Ann Private")
    with db.atomic():   # a web sign-up not confirmed yet
        db["signups"].insert({"email": "ann.private@example.org", "name": "Ann Private", "created_at": NOW})
    db.close()
    result = CliRunner().invoke(cli, ["datasette-metadata"])
    assert result.exit_code == 0, result.output
    metadata = json.loads(result.output)
    private = ["/spsbot/subscribers.json?_shape=array", "/spsbot/subscribers",
               "/spsbot.json?sql=select+email,name+from+subscribers",
               "/spsbot/items.json?_where=1%3D1+union+select+email+from+subscribers",
               "/spsbot/runs.json", "/spsbot/digests.json", "/spsbot/signups.json", "/spsbot/votes.json"]
    public = ["/spsbot.json", "/spsbot/items.json?_shape=array", "/spsbot/relevant_papers.json?_shape=array"]

    # Without the metadata, anyone browsing the store reads the addresses (what the test must catch) …
    bare = _datasette_pages(db_path, None, private[:1])
    assert "ann.private@example.org" in bare[private[0]].text
    # … with it, every route to them is closed and the literature stays open.
    pages = _datasette_pages(db_path, metadata, private + public)
    for url in private:
        assert pages[url].status_code in (400, 403), (url, pages[url].status_code)
    for url in public:
        assert pages[url].status_code == 200, (url, pages[url].status_code)
    assert "Rituximab in stiff person syndrome" in pages["/spsbot/items.json?_shape=array"].text
    tables = {t["name"] for t in pages["/spsbot.json"].json()["tables"]}
    assert "subscribers" not in tables and "items" in tables
    for url, page in pages.items():
        assert "ann.private@example.org" not in page.text and "Ann Private" not in page.text, url
