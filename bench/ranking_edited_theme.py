"""What editing one theme costs: relevant items on the demo data with the bundled profile, with one
drug name added to a theme (the seed kept for every other target), and the same edit with the seed
dropped for every target (what spsbot did before it fingerprinted each target).

    .venv/bin/python bench/ranking_edited_theme.py

The demo's 91 records (85 PubMed, 6 trials) are fetched through the local emulators into a
temporary database and ranked three times with the packaged model; the labels of the demo records
are not known, so the figure is the count judged relevant and how far each run's verdicts differ
from the bundled profile's.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import bundled_profile_text, load_config  # noqa: E402
from bot.demo import demo_clock, demo_config, fetch_pubmed, fetch_trials, start_pubmed_server  # noqa: E402
from bot.store import open_db  # noqa: E402
from bot.ranking.stage import rank_items  # noqa: E402
from bot.store.ranking import get_scores  # noqa: E402

DRUG = '"inebilizumab", "tocilizumab"]'


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SPSBOT_CACHE_DIR"] = str(Path(tmp) / "models")
        db = open_db(Path(tmp) / "demo.db")
        with demo_clock(), ExitStack() as stack:
            server = start_pubmed_server(stack)
            base = demo_config(server.url + "/entrez/eutils")
            fetch_pubmed(db, base, progress=False)
            fetch_trials(db, base, progress=False)
        edited_text = bundled_profile_text().replace(DRUG, '"inebilizumab", "tocilizumab", "satralizumab"]')
        (Path(tmp) / "edited.toml").write_text(edited_text, encoding="utf-8")
        (Path(tmp) / "dropped.toml").write_text(edited_text.replace('seed = ""', 'seed = "none"'), encoding="utf-8")
        runs = {"bundled profile": load_config(None, env={}),
                "one drug added to immunomodulation (now)": load_config(Path(tmp) / "edited.toml", env={}),
                "the same, seed dropped for every target (before)": load_config(Path(tmp) / "dropped.toml", env={})}
        verdicts = {}
        for name, config in runs.items():
            t0 = time.perf_counter()
            rank_items(db, config, force=True)
            verdicts[name] = {k: v["relevant"] for k, v in get_scores(db).items()}
            print(f"{name:<50} {sum(verdicts[name].values()):>3} of {len(verdicts[name])} relevant "
                  f"({time.perf_counter() - t0:.0f}s)")
        reference = verdicts["bundled profile"]
        for name, got in verdicts.items():
            if got is not reference:
                flips = sum(got[k] != reference[k] for k in reference)
                print(f"  {name}: {flips} verdict(s) differ from the bundled profile's")


if __name__ == "__main__":
    main()
