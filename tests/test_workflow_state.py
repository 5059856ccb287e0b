"""The GitHub workflow's state artifact is encrypted (issue 25's follow-up): anyone who can see a
public repository can download its artifacts, so the database (every subscriber's address) and
its key file (the means to forge their links) must never be uploaded in the clear. These tests run
the workflow's own `run:` scripts on a real spsbot database, with a .key and a -wal beside it."""

import shutil
import sqlite3
from pathlib import Path

import pytest

from maintainer_kit import run_workflow_step, workflow, workflow_step

PASSPHRASE = "a-state-passphrase-of-at-least-32-characters"
SQLITE_HEADER = b"SQLite format 3"


def _state(workspace: Path) -> Path:
    """A real spsbot database in ``workspace``/state, its last commits still in the -wal file
    (as a killed run leaves them) and the key file spsbot makes beside a new database."""
    from bot.store import open_db
    db = open_db(workspace / "state" / "spsbot.db")
    db.execute("PRAGMA wal_autocheckpoint = 0")  # the subscriber stays in the -wal file
    db["subscribers"].insert({"email": "ann@example.org", "status": "active"})
    db.conn.commit()
    return db


def _env(workspace: Path, passphrase: str = PASSPHRASE, **extra) -> dict:
    return {"SPSBOT_DB": str(workspace / "state" / "spsbot.db"), "SPSBOT_STATE_KEY": passphrase, **extra}


def _encrypted(tmp_path, monkeypatch) -> tuple[Path, bytes]:
    """Run "Encrypt the state" on a fresh state; returns the uploaded file and the key's bytes."""
    monkeypatch.delenv("SPSBOT_SECRET", raising=False)
    workspace = tmp_path / "first"
    db = _state(workspace)
    try:
        state = workspace / "state"
        assert (state / "spsbot.db-wal").stat().st_size > 0 and (state / "spsbot.db.key").exists()
        result = run_workflow_step("Encrypt the state", workspace, _env(workspace))
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        db.close()
    upload = workspace / workflow_step("Keep the state for the next run")["with"]["path"]
    return upload, (state / "spsbot.db.key").read_bytes()


def _downloaded(upload: Path, workspace: Path) -> Path:
    """What "Download the state" leaves in a new run's workspace: the artifact's one file."""
    folder = workspace / workflow_step("Download the state")["with"]["path"]
    folder.mkdir(parents=True)
    shutil.copy(upload, folder)
    return workspace


def test_only_the_encrypted_state_is_uploaded(tmp_path, monkeypatch):
    upload, key = _encrypted(tmp_path, monkeypatch)
    uploaded = [upload] if upload.is_file() else sorted(p for p in upload.rglob("*") if p.is_file())
    assert [p.name for p in uploaded] == ["spsbot-state.tar.enc"]
    data = upload.read_bytes()
    assert data.startswith(b"Salted__")  # openssl's salted format: a random salt per upload
    assert SQLITE_HEADER not in data and key.strip() not in data and b"ann@example.org" not in data
    assert b"spsbot.db" not in data  # not even the file names


def test_the_state_comes_back_intact_with_the_right_passphrase(tmp_path, monkeypatch):
    upload, key = _encrypted(tmp_path, monkeypatch)
    workspace = _downloaded(upload, tmp_path / "next")
    restored = run_workflow_step("Decrypt the state", workspace, _env(workspace))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    state = workspace / "state"
    assert (state / "spsbot.db.key").read_bytes() == key
    assert not list(state.glob("*-shm"))  # rebuilt by SQLite, never carried
    verified = run_workflow_step("Verify the state", workspace, _env(workspace, FIRST_RUN=""))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "state restored: 1 subscribers, 0 digests" in verified.stdout  # the -wal's commit came too
    assert sqlite3.connect(state / "spsbot.db").execute("select email from subscribers").fetchall() == [
        ("ann@example.org",)]


@pytest.mark.parametrize("passphrase", ["another-passphrase-of-at-least-32-characters", ""])
def test_a_wrong_passphrase_stops_the_run_and_creates_no_database(tmp_path, monkeypatch, passphrase):
    upload, _ = _encrypted(tmp_path, monkeypatch)
    workspace = _downloaded(upload, tmp_path / "next")
    result = run_workflow_step("Decrypt the state", workspace, _env(workspace, passphrase))
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error::")]
    assert len(errors) == 1 and "SPSBOT_STATE_KEY" in errors[0], result.stdout + result.stderr
    assert sorted(p.name for p in workspace.iterdir()) == ["encrypted-state"]  # no state, no partial one
    # and the next step, were it reached, would refuse rather than start over
    verify = run_workflow_step("Verify the state", workspace, _env(workspace, FIRST_RUN=""))
    assert verify.returncode != 0 and not (workspace / "state").exists()


@pytest.mark.parametrize("passphrase", ["", "too-short"])
def test_the_job_stops_first_without_a_usable_passphrase(tmp_path, passphrase):
    steps = [s.get("name") for s in workflow()["jobs"]["run"]["steps"]]
    assert steps[0] == "Check the secrets"
    result = run_workflow_step("Check the secrets", tmp_path, {"SPSBOT_STATE_KEY": passphrase})
    assert result.returncode != 0
    assert result.stdout.count("::error::") == 1 and "SPSBOT_STATE_KEY" in result.stdout
    assert run_workflow_step("Check the secrets", tmp_path, {"SPSBOT_STATE_KEY": PASSPHRASE}).returncode == 0


def test_an_older_unencrypted_artifact_is_taken_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("SPSBOT_SECRET", raising=False)
    old = tmp_path / "old"
    _state(old).close()
    workspace = tmp_path / "next"
    shutil.copytree(old / "state", workspace / "encrypted-state")  # what the older workflow uploaded
    refused = run_workflow_step("Decrypt the state", workspace, _env(workspace, PLAINTEXT_STATE="false"))
    assert refused.returncode != 0 and "plaintext_state = true" in refused.stdout
    assert not (workspace / "state").exists()
    taken = run_workflow_step("Decrypt the state", workspace, _env(workspace, PLAINTEXT_STATE="true"))
    assert taken.returncode == 0 and "::warning::" in taken.stdout, taken.stdout + taken.stderr
    verified = run_workflow_step("Verify the state", workspace, _env(workspace, FIRST_RUN=""))
    assert "state restored: 1 subscribers" in verified.stdout, verified.stdout + verified.stderr
