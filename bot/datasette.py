"""Datasette metadata that keeps subscribers private: ``spsbot datasette-metadata``.

The README recommends browsing the store with Datasette. Most of it is public literature (items,
trials, scores, links) and safe to publish; some of it is about people: subscribers' addresses
and names, web sign-ups awaiting confirmation, each subscriber's votes, the digests rendered for
each of them (with their unsubscribe links), the outbox, run errors that name a refused address,
curator feedback. The metadata below denies those tables to
every visitor (``"allow": false``; hidden from the table list too) and turns off arbitrary SQL
(``allow_sql``), without which any visitor could ``select email from subscribers``.

Datasette permissions: https://docs.datasette.io/en/stable/authentication.html#access-permissions-in-metadata
"""

from __future__ import annotations

import os
from pathlib import Path

# Tables with personal data (or that lead to it): never served.
PRIVATE_TABLES = ("subscribers", "signups", "votes", "digests", "digest_items", "deliveries", "sent_items",
                  "settings", "runs", "feedback")


def database_name(db_path: str | os.PathLike) -> str:
    """The name Datasette gives a database file: its file name without the extension."""
    return Path(str(db_path)).expanduser().stem


def metadata(db_path: str | os.PathLike) -> dict:
    """Metadata for ``datasette DB --metadata FILE`` that hides and denies ``PRIVATE_TABLES``."""
    private = {"hidden": True, "allow": False}
    return {
        "title": "spsbot literature store",
        "description": "Papers, trials and their scores. Subscriber data is not served.",
        "databases": {
            database_name(db_path): {
                "allow_sql": False,   # custom SQL would reach the private tables
                "tables": {name: dict(private) for name in PRIVATE_TABLES},
            }
        },
    }
