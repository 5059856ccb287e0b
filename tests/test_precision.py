"""The model's arithmetic ([ranking] precision): float32, bfloat16, int8, or "auto" (bfloat16 where the
CPU does it in hardware, else int8 where AVX2 runs its kernels). bfloat16 must be a faster way of
computing the same vectors: the same cache key, vectors within cosine 0.999, scores within 0.01.
int8 vectors move, so they are another space (own cache key, own bundled seed), still about the same
text. Real model on a few short real records: emulated bfloat16 (a CPU without AMX) is slow, and the
whole dev set's figures are bench/precision.py's."""

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

ALL_RECORDS = [json.loads(line) for line in
               (Path(__file__).parent / "fixtures" / "search" / "dev_subset.jsonl").read_text(encoding="utf-8")
               .splitlines() if line.strip()]
# The 12 shortest (171-300 characters), relevant and not: a real-model pass over them takes seconds
# even where bfloat16 is emulated.
RECORDS = sorted(ALL_RECORDS, key=lambda r: len(r["title"]) + len(r.get("text") or ""))[:12]


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


@pytest.mark.parametrize("amx, avx2, expected", [(True, True, "bfloat16"), (False, True, "int8"),
                                                   (False, False, "float32")])
def test_auto_is_bfloat16_only_where_the_cpu_does_it_in_hardware(monkeypatch, amx, avx2, expected):
    monkeypatch.setattr(E, "native_bfloat16", lambda: amx)
    monkeypatch.setattr(E, "fast_int8", lambda: avx2)
    choice, why = E.choose_precision("auto")
    assert choice == E.resolve_precision("auto") == E.Embedder().compute == expected
    assert ("AMX" in why) and (("AVX2" in why) or amx)
    # A choice made in the configuration is kept whatever the CPU.
    for precision in ("float32", "bfloat16", "int8"):
        assert E.choose_precision(precision) == (precision, "as configured")


def test_auto_keeps_float32_for_a_profile_without_a_labelled_seed(monkeypatch, tmp_path):
    """int8 holds quality through its own seed; a profile with none ranks on similarities alone
    (MG, zero labels: AUC 0.991 in float32, 0.988 in int8), so "auto" does not pick int8 for it."""
    from bot.config import load_config
    monkeypatch.setattr(E, "native_bfloat16", lambda: False)
    monkeypatch.setattr(E, "fast_int8", lambda: True)
    choice, why = E.choose_precision("auto", labelled=False)
    assert choice == "float32" and "no labelled seed" in why
    assert E.choose_precision("int8", labelled=False) == ("int8", "as configured")   # a choice made is kept
    other = tmp_path / "mg.toml"
    other.write_text("[topic]\nname = 'Myasthenia gravis'\npubmed_query = 'myasthenia[tiab]'\n", encoding="utf-8")
    seeded = tmp_path / "seeded.toml"
    seeded.write_text(other.read_text(encoding="utf-8") + "[ranking]\nseed = 'seed.jsonl'\n", encoding="utf-8")
    assert E.profile_embedder(load_config()).compute == "int8"                 # the bundled SPS seed
    assert E.profile_embedder(load_config(other)).compute == "float32"         # no labels
    assert E.profile_embedder(load_config(seeded)).compute == "int8"           # its own seed file
    monkeypatch.setattr(E, "native_bfloat16", lambda: True)
    assert E.profile_embedder(load_config(other)).compute == "bfloat16"        # the same vectors as float32


def test_this_cpus_flags_are_read_without_torch():
    flags = E.cpu_flags()
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        assert ("avx2" in flags) == (" avx2" in f.read())
    assert E.native_bfloat16() == (("amx_tile" in flags and "amx_bf16" in flags) or "avx512_bf16" in flags)


def test_the_cache_key_depends_on_the_arithmetic_only_for_int8(monkeypatch):
    # Vectors cached (and the bundled seed computed) in float32 stay valid under bfloat16; int8
    # vectors are another space, with its own cache rows and bundled seed.
    spaces = {p: E.Embedder(precision=p).passage_space for p in ("float32", "bfloat16", "int8")}
    assert spaces["float32"] == spaces["bfloat16"] == f"{E.DEFAULT_MODEL}#passage{E.P.DEFAULT_WINDOW}"
    assert spaces["int8"] == f"{E.DEFAULT_MODEL}#int8#passage{E.P.DEFAULT_WINDOW}"
    assert E.Embedder(precision="int8").text_space == f"{E.DEFAULT_MODEL}#int8"
    assert E.Embedder(precision="float32").text_space == E.DEFAULT_MODEL
    for amx, avx2, same_as in [(True, True, "float32"), (False, True, "int8"), (False, False, "float32")]:
        monkeypatch.setattr(E, "native_bfloat16", lambda amx=amx: amx)
        monkeypatch.setattr(E, "fast_int8", lambda avx2=avx2: avx2)
        assert E.Embedder(precision="auto").passage_space == spaces[same_as]


def test_bfloat16_sentence_vectors_are_the_float32_ones(real_embedder, caplog):
    passages = [record_sentences(r) for r in RECORDS[:6]]
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


# Trained models are shared with the session's other tests (conftest's model_cache_dir): training is
# deterministic, and the float32 and bfloat16 rankers share theirs (same vectors, same fingerprint).
def test_scores_under_bfloat16_are_the_float32_scores(real_embedder):
    config = load_config()
    exact = Ranker(config, E.Embedder(precision="float32")).score(RECORDS)
    fast = Ranker(config, E.Embedder(precision="bfloat16")).score(RECORDS)
    assert len(exact) == len(fast) == len(RECORDS) == 12
    assert {x["relevant"] for x in exact} == {True, False}  # both kinds are among them
    for x, y in zip(exact, fast):
        assert abs(x["relevance"] - y["relevance"]) < 0.01
        assert max(abs(x["themes"][k] - y["themes"][k]) for k in x["themes"]) < 0.01
        assert x["relevant"] == y["relevant"] and x["labels"] == y["labels"]
    # The evidence sentence may change where two sentences are nearly tied, rarely.
    same_evidence = sum(x["evidence"] == y["evidence"] for x, y in zip(exact, fast))
    assert same_evidence >= 0.95 * len(RECORDS)


def test_int8_vectors_are_their_own_space_about_the_same_sentences(real_embedder, monkeypatch, caplog):
    import torch
    passages = [record_sentences(r) for r in RECORDS[:6]]
    exact, small = E.Embedder(precision="float32"), E.Embedder(precision="auto")
    monkeypatch.setattr(E, "native_bfloat16", lambda: False)  # no hardware bfloat16, whatever this CPU has
    monkeypatch.setattr(E, "fast_int8", lambda: True)
    with caplog.at_level(logging.INFO, logger="bot.ranking.embedder"):
        a, b = exact.encode_passages(passages), small.encode_passages(passages)
    assert small.compute == "int8"
    assert "computes in int8 (precision = auto: no bfloat16 in hardware (no AMX" in caplog.text
    # The model's Linear layers really are int8 (and the float32 model is untouched).
    int8_linear = torch.ao.nn.quantized.dynamic.Linear
    assert not any(type(m) is torch.nn.Linear for m in small._model.module.modules())
    assert sum(isinstance(m, int8_linear) for m in small._model.module.modules()) == 6 * 6  # 6 per layer
    assert not any(isinstance(m, int8_linear) for m in exact._model.module.modules())
    cosines = np.concatenate([(x * y).sum(axis=1) for x, y in zip(a, b)])
    assert cosines.size == sum(map(len, passages)) and cosines.mean() > 0.95 and cosines.min() > 0.85
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b)) > 0.01  # they moved: another space
    # Still about the same sentence: of a record's float32 vectors, each int8 vector is nearest its own.
    for x, y in zip(a, b):
        assert ((y @ x.T).argmax(axis=1) == np.arange(len(x))).all()
    assert small.encode(passages[0]).dtype == np.float32
    assert np.allclose(np.linalg.norm(small.encode(passages[0]), axis=1), 1, atol=1e-5)


def test_int8_scores_use_their_own_seed_and_agree_with_float32(real_embedder):
    config = load_config()
    exact_ranker = Ranker(config, E.Embedder(precision="float32"))
    small_ranker = Ranker(config, E.Embedder(precision="int8"))
    # Each has a bundled seed made from its own vectors (no "computed with another model" warning).
    assert exact_ranker.seed_warning is None and small_ranker.seed_warning is None
    assert small_ranker.bundle.model == f"{E.DEFAULT_MODEL}#int8#passage{E.P.DEFAULT_WINDOW}"
    assert exact_ranker.bundle.digest != small_ranker.bundle.digest
    exact, small = exact_ranker.score(RECORDS), small_ranker.score(RECORDS)
    for x, y in zip(exact, small):
        assert x["relevant"] == y["relevant"] and abs(x["relevance"] - y["relevance"]) < 0.15, (x, y)
