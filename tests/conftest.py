"""Shared test fixtures: fixture files, a fresh database, a CLI runner, local servers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
# The shared labelled evaluation set sits beside the repository (../shared/eval/dev.jsonl).
DEV_JSONL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"

# Tests never reach the network, and never a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# The store's clock in every test: the day after the bundled demo records end. Nothing a test
# asserts may depend on the day it runs (the suite went red once when the calendar moved on).
# A test that needs the real clock says so with ``@pytest.mark.real_clock``.
FIXED_NOW = "2026-11-21T06:00:00+00:00"


def pytest_configure(config):
    config.addinivalue_line("markers", "real_clock: the test runs on the real clock, not the pinned SPSBOT_NOW")
    config.addinivalue_line("markers", "needs_chromium: renders in headless Chromium (skipped where it is missing)")
    config.addinivalue_line("markers", "needs_dev_set: reads ../shared/eval/dev.jsonl (skipped where it is missing)")


# --- skips: only for a missing optional resource, and never in CI ------------------------------
# On a machine with only Python, the Chromium screenshot test and the dev-set tests skip with one
# line saying why. In CI (CI=true) Chromium is installed and ../shared is beside the clone, so a
# skip there means a test did not run: it is reported as a failure. Any other skip is a failure
# everywhere (a skipped test must never stand in for a missing feature).
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromedriver_path() -> str | None:
    return shutil.which("chromedriver")


def _missing_resource(item) -> str | None:
    if item.get_closest_marker("needs_chromium") and not chromium_path():
        return "headless Chromium is not installed (apt-get install chromium; CI installs it)"
    if (item.get_closest_marker("needs_chromium") and getattr(item.module, "NEEDS_CHROMEDRIVER", False)
            and not chromedriver_path()):
        return "chromedriver is not installed (apt-get install chromium-driver; CI installs it)"
    if item.get_closest_marker("needs_dev_set") and not DEV_JSONL.is_file():
        return f"the labelled dev set is not beside the clone ({DEV_JSONL})"
    return None


def pytest_runtest_setup(item):
    reason = _missing_resource(item)
    if reason:
        if IN_CI:
            pytest.fail(f"CI must run this test, but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and _missing_resource(item) is None:
        why = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped ({why}), but only a missing Chromium or dev set may skip a test"


@pytest.fixture(autouse=True)
def store_clock(request, monkeypatch) -> str | None:
    """Pin ``bot.store.now_iso`` (env ``SPSBOT_NOW``, inherited by subprocesses) for every test."""
    if request.node.get_closest_marker("real_clock"):
        monkeypatch.delenv("SPSBOT_NOW", raising=False)
        return None
    monkeypatch.setenv("SPSBOT_NOW", FIXED_NOW)
    return FIXED_NOW


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
        if name.startswith(("SPSBOT_", "NCBI_")) and name != "SPSBOT_NOW":  # the pinned clock stays
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPSBOT_DB", str(tmp_path / "cli.db"))
    return tmp_path
