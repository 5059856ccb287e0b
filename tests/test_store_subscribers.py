"""The subscriber store functions the digest rules call (bot.store.subscribers)."""

from bot.store import subscribers as store
from bot.store.digests import sent_keys, store_digest


def _subscriber(db, email: str) -> dict:
    return store.insert_subscriber(db, {"email": email, "name": None, "themes": None, "frequency": "weekly",
                                        "max_items": 20, "send_empty": 0, "status": "active", "bounces": 0})


def _digest(db, subscriber_id: int, key: str) -> int:
    row = {"subscriber_id": subscriber_id, "period_start": "2026-11-14T06:00:00+00:00",
           "period_end": "2026-11-21T06:00:00+00:00", "subject": "s", "html": "h", "text": "t", "item_count": 1,
           "data": "{}"}
    return store_digest(db, row, [{"key": key, "section": "theme", "theme": None, "position": 1}], f"<{key}@x>")


def test_insert_and_update_stamp_times_and_return_the_stored_row(db):
    ann = _subscriber(db, "ann@example.org")
    assert ann["id"] and ann["created_at"] == ann["updated_at"] == "2026-11-21T06:00:00+00:00"
    changed = store.update_subscriber(db, ann["id"], {"status": "unsubscribed"})
    assert changed["status"] == "unsubscribed" and changed["email"] == "ann@example.org"
    assert store.find_subscriber(db, "ANN@example.org")["id"] == ann["id"]
    assert [s["email"] for s in store.subscribers_by_address(db, "unsubscribed")] == ["ann@example.org"]
    assert store.subscribers_by_address(db, "active") == [] and store.active_subscribers(db) == []
    assert store.subscriber_counts(db) == {"unsubscribed": 1}


def test_purge_deletes_every_trace_of_one_subscriber_and_nothing_of_another(db):
    ann, bob = _subscriber(db, "ann@example.org"), _subscriber(db, "bob@example.org")
    _digest(db, ann["id"], "pmid:1")
    kept = _digest(db, bob["id"], "pmid:2")
    store.purge_subscriber(db, ann["id"])
    assert store.get_subscriber(db, ann["id"]) is None
    assert sent_keys(db, ann["id"]) == set() and sent_keys(db, bob["id"]) == {"pmid:2"}
    assert [r["id"] for r in db["digests"].rows] == [kept]
    assert [r["digest_id"] for r in db["digest_items"].rows] == [kept]
    assert [r["subscriber_id"] for r in db["deliveries"].rows] == [bob["id"]]
