"""Searching the store and the live sources (``spsbot search``, the web front's search box).

- ``hybrid``: ``search(db, query, filters)``, SQLite FTS5 (BM25) fused with embedding similarity
  over the store, and the query language (words, "phrases", -exclusions, OR, prefix*).
- ``live``: ``live_records`` asks PubMed and ClinicalTrials.gov now; ``merge_live`` fuses their
  answers with the store's; ``save_live`` stores them.

No SQL here: the queries are ``bot.store.search``'s.
"""
