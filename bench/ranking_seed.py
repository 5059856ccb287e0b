"""Build the bundled SPS seed set (and its vectors) from the labelled dev set.

    .venv/bin/python bench/ranking_seed.py [/work/shared/eval/dev.jsonl]

Writes ``bot/profiles/sps_seed.jsonl`` (only what the ranker learns from: id, kind, title, text,
pub_types, relevant_to_sps, themes) and ``bot/profiles/sps_seed.vectors.npz`` (float16 vectors of
every seed sentence under the packaged model, keyed by sha256 of the sentence), so the first
ranking on a fresh install does not embed ~3,000 sentences.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.ranking.embedder import load_embedder  # noqa: E402
from bot.ranking.text import record_sentences  # noqa: E402
from bot.store import open_db  # noqa: E402
from bot.store.ranking import cached_encode, text_hash  # noqa: E402

FIELDS = ("id", "kind", "title", "text", "pub_types", "relevant_to_sps", "themes")


def main(path: str = "/work/shared/eval/dev.jsonl", cache: str = "/tmp/spsbot-bench-embeddings.db") -> None:
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    seed = [{k: r.get(k) for k in FIELDS} for r in records]
    out = ROOT / "bot" / "profiles"
    with open(out / "sps_seed.jsonl", "w", encoding="utf-8") as f:
        for r in seed:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    embedder = load_embedder()
    texts = list(dict.fromkeys(s for r in seed for s in record_sentences(r)))
    vectors = cached_encode(open_db(cache), embedder, texts)
    np.savez_compressed(out / "sps_seed.vectors.npz", model=np.array(embedder.model_name),
                        hashes=np.array([text_hash(t) for t in texts]), vectors=vectors.astype(np.float16))
    print(f"{len(seed)} seed records, {len(texts)} sentences -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
