"""Measure: spsbot's reading of the PubMed corpora against Biopython's own (issue 21).

For each corpus (tests/pubmed_reference.py: Biopython's Tests/Entrez PubMed files, other
projects' efetch files, one record per DTD generation) and each of spsbot's two ways in
(``spsbot score FILE``: ``parse_efetch``; the fetch path: ``parse_batch``), prints files,
records the library reads, records spsbot drops (a file refused whole drops all of its), and
records whose title, abstract, authors, journal, year, DOI, publication types or MeSH differ
from the library's values beyond flattened markup, with the fields that differ. Figures only.

Usage: .venv/bin/python bench/pubmed_corpus.py
(run it against another checkout with PYTHONPATH=that/checkout to measure "before").
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pubmed_reference import corpora, differences, library_records  # noqa: E402

from bot.sources.pubmed import parse_batch, parse_efetch  # noqa: E402


def score_path(body: bytes) -> list[dict]:
    try:
        return parse_efetch(body)
    except Exception:  # noqa: BLE001 - a file refused whole: all its records are dropped
        return []


def fetch_path(body: bytes) -> list[dict]:
    return parse_batch(body).records


def measure(files, read) -> dict:
    counts = {"files": len(files), "records": 0, "dropped": 0, "changed": 0}
    fields = collections.Counter()
    for _, body in files:
        reference = {r["pmid"]: r for r in library_records(body)}
        mine = {r["pmid"]: r for r in read(body)}
        counts["records"] += len(reference)
        counts["dropped"] += len(set(reference) - set(mine))
        for pmid in set(reference) & set(mine):
            diff = differences(mine[pmid], reference[pmid])
            counts["changed"] += bool(diff)
            fields.update(diff)
    counts["fields"] = dict(fields)
    return counts


def main() -> None:
    import bot
    print(f"spsbot from {Path(bot.__file__).parent.parent}")
    print(f"{'corpus':<24} {'path':<6} files records dropped changed  fields changed")
    for name, files in corpora().items():
        for path, read in (("score", score_path), ("fetch", fetch_path)):
            c = measure(files, read)
            print(f"{name:<24} {path:<6} {c['files']:>5} {c['records']:>7} {c['dropped']:>7} {c['changed']:>7}  "
                  f"{c['fields'] or ''}")


if __name__ == "__main__":
    main()
