"""Shared test fixtures: fixture files, a fresh database, a CLI runner, local servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
# The shared labelled evaluation set sits beside the repository (../shared/eval/dev.jsonl).
DEV_JSONL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"

# Tests never reach the network, and never a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def db(tmp_path):
    from bot.store import open_db
    database = open_db(tmp_path / "test.db")
    yield database
    database.close()


@pytest.fixture
def env_isolated(tmp_path, monkeypatch):
    """An environment with no SPSBOT_* / NCBI_* settings leaking in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(("SPSBOT_", "NCBI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPSBOT_DB", str(tmp_path / "cli.db"))
    return tmp_path
