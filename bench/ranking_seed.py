"""Build the bundled SPS seed (derived numbers, no texts) from the labelled dev set.

    .venv/bin/python bench/ranking_seed.py [/work/shared/eval/dev.jsonl] [--cache DB] [--precision float32|int8]

The dev set's abstracts may not be republished, so the texts are read here, at build time only.
Writes ``bot/profiles/sps_seed.npz`` (the feature matrix the ranker's training computes for these
records under the bundled profile and the packaged model, their TF-IDF rows with the fitted
vocabulary and idf, the relevance and theme labels, and the fingerprint of what the features depend
on; see ``bot/ranking/seed.py``) and ``bot/profiles/sps_seed.json`` (a readable summary).
With ``--precision int8`` it writes ``sps_seed.int8.npz`` / ``.json`` instead: int8 vectors
are another space, so they have their own bundle (what "auto" uses on a CPU without AMX).
Rerun it whenever the profile's targets, the features or the model change (the ranker ignores a
bundle whose fingerprint no longer matches, and says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import load_config  # noqa: E402
from bot.ranking import model as M  # noqa: E402
from bot.ranking.embedder import embedder_for  # noqa: E402
from bot.ranking.scorer import Ranker, labelled_rows, targets_fingerprint  # noqa: E402
from bot.ranking.stage import store_ranker  # noqa: E402
from bot.ranking.embedder import PRECISIONS  # noqa: E402
from bot.ranking.seed import SeedBundle, bundle_names, read_bundle, save_bundle, sidecar  # noqa: E402
from bot.store import open_db  # noqa: E402

# The shared evaluation set sits beside the repository (../shared/eval/dev.jsonl).
DEFAULT_DEV = str(Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl")
# Only what the ranker reads from a seed record (as the old text seed kept).
FIELDS = ("kind", "title", "text", "pub_types", "relevant_to_sps", "themes")


def build(records: list[dict], ranker: Ranker) -> SeedBundle:
    """The derived seed of ``records`` for ``ranker``'s targets and model."""
    records = [{k: r.get(k) for k in FIELDS} for r in records]
    X, texts = ranker.matrix(ranker.prepare(records))
    vectorizer = M.make_vectorizer()
    T = vectorizer.fit_transform(texts)
    labels, _ = labelled_rows(records, ranker.target_names)
    return SeedBundle(X=X, T=T, vocabulary=vectorizer.get_feature_names_out().tolist(),
                      idf=vectorizer.idf_, labels=labels,
                      fingerprint=targets_fingerprint(ranker.targets, ranker.embedder.passage_space),
                      model=ranker.embedder.passage_space)  # the vectors the rows were made from


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=DEFAULT_DEV)
    parser.add_argument("--cache", default="/tmp/spsbot-bench-embeddings.db",
                        help="SQLite embedding cache, so a rebuild embeds nothing")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="the model's arithmetic: float32 (also bfloat16's bundle) or int8 (its own bundle)")
    args = parser.parse_args(argv)
    with open(args.path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    config = load_config()
    embedder = embedder_for({**config.ranking, "precision": args.precision})
    ranker = store_ranker(open_db(args.cache), config, embedder, seed=[])
    bundle = build(records, ranker)
    out = ROOT / "bot" / "profiles"
    bundle_file, sidecar_file = bundle_names(bundle.model)
    save_bundle(out / bundle_file, bundle)
    check = read_bundle((out / bundle_file).read_bytes())
    assert check.fingerprint == bundle.fingerprint and check.X.shape == bundle.X.shape
    (out / sidecar_file).write_text(sidecar(check, Path(args.path).name), encoding="utf-8")
    for old in ("sps_seed.jsonl", "sps_seed.vectors.npz"):  # the text seed this replaced
        (out / old).unlink(missing_ok=True)
    print(f"{bundle.n} seed records -> X {bundle.X.shape}, T {bundle.T.shape} "
          f"({len(bundle.vocabulary)} terms), fingerprint {bundle.fingerprint} -> {out / bundle_file} "
          f"({(out / bundle_file).stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
