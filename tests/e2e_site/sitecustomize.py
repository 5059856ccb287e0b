"""Loaded (via PYTHONPATH) by the `spsbot` processes tests/test_first_week.py starts: the ranker's
embedding model becomes the tests' hashed bag-of-words embedder, so no process loads torch or the
model (seconds each). Nothing else changes: the console script, the database, HTTP and SMTP are real."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for conftest

import bot.ranking.embedder  # noqa: E402
from conftest import FakeEmbedder  # noqa: E402

bot.ranking.embedder.load_embedder = lambda model="": FakeEmbedder()
