"""The model's arithmetic ([ranking] precision): float32, bfloat16, or "auto" (bfloat16 where the CPU
does it in hardware). bfloat16 must be a faster way of computing the same vectors: the same cache
key, vectors within cosine 0.999, scores within 0.01 (real model, real records)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from bot.config import ConfigError, load_config
from bot.ranking import embedder as E
from bot.ranking.scorer import Ranker
from bot.ranking.text import record_sentences

RECORDS = [json.loads(line) for line in
           (Path(__file__).parent / "fixtures" / "search" / "dev_subset.jsonl").read_text(encoding="utf-8").splitlines()
           if line.strip()]


def _config_with(tmp_path, precision: str):
    path = tmp_path / "profile.toml"
    path.write_text(f'[ranking]\nprecision = "{precision}"\n', encoding="utf-8")
    return load_config(path)


@pytest.mark.parametrize("precision", E.PRECISIONS)
def test_each_precision_is_accepted_and_reaches_the_embedder(tmp_path, precision):
    config = _config_with(tmp_path, precision)
    assert config.ranking["precision"] == precision
    assert E.embedder_for(config.ranking).precision == precision


def test_the_bundled_profile_asks_for_auto():
    assert load_config().ranking["precision"] == "auto"
    assert E.embedder_for({}).precision == "auto"


def test_an_unknown_precision_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _config_with(tmp_path, "int4")
    message = str(caught.value)
    assert "'precision' in [ranking]" in message and "int4" in message and "\n" not in message.strip()
    with pytest.raises(ValueError):
        E.Embedder(precision="half")


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_is_bfloat16_only_where_the_cpu_does_it_in_hardware(monkeypatch, native, expected):
    monkeypatch.setattr(E, "native_bfloat16", lambda: native)
    assert E.resolve_precision("auto") == expected
    # A choice made in the configuration is kept whatever the CPU.
    assert E.resolve_precision("float32") == "float32" and E.resolve_precision("bfloat16") == "bfloat16"


def test_the_cache_key_does_not_depend_on_the_arithmetic():
    # Vectors cached (and the bundled seed computed) in float32 stay valid under bfloat16.
    spaces = {E.Embedder(precision=p).passage_space for p in E.PRECISIONS}
    assert len(spaces) == 1


def test_bfloat16_sentence_vectors_are_the_float32_ones(real_embedder, caplog):
    passages = [record_sentences(r) for r in RECORDS[:40]]
    exact, fast = E.Embedder(precision="float32"), E.Embedder(precision="bfloat16")
    with caplog.at_level(logging.INFO, logger="bot.ranking.embedder"):
        a, b = exact.encode_passages(passages), fast.encode_passages(passages)
    assert (exact.compute, fast.compute) == ("float32", "bfloat16")
    assert "computes in bfloat16" in caplog.text
    cosines = np.concatenate([(x * y).sum(axis=1) for x, y in zip(a, b)])
    assert cosines.size == sum(map(len, passages)) and cosines.min() > 0.999
    # Not the same numbers, though: the bfloat16 pass really ran.
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b)) > 0
    phrases = [s for p in passages[:5] for s in p]
    assert (exact.encode(phrases) * fast.encode(phrases)).sum(axis=1).min() > 0.999
    assert fast.encode(phrases).dtype == np.float32


def test_scores_under_bfloat16_are_the_float32_scores(real_embedder, tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_CACHE_DIR", str(tmp_path / "models"))
    config = load_config()
    exact = Ranker(config, E.Embedder(precision="float32")).score(RECORDS)
    fast = Ranker(config, E.Embedder(precision="bfloat16")).score(RECORDS)
    assert len(exact) == len(fast) == len(RECORDS) == 164
    for x, y in zip(exact, fast):
        assert abs(x["relevance"] - y["relevance"]) < 0.01
        assert max(abs(x["themes"][k] - y["themes"][k]) for k in x["themes"]) < 0.01
        assert x["relevant"] == y["relevant"] and x["labels"] == y["labels"]
    # The evidence sentence may change where two sentences are nearly tied, rarely.
    same_evidence = sum(x["evidence"] == y["evidence"] for x, y in zip(exact, fast))
    assert same_evidence >= 0.95 * len(RECORDS)
