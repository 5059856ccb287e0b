"""Weak labels from NLM's MeSH indexing: a topic with no human-labelled seed states the precision
and recall of its relevance decisions on the records in its store whose major MeSH topics are (or
lack) its heading. Nothing learns from them (bench/weak_labels.py: learning lowered AUC), so each is
a held-out check, and a store that grows changes the statement, not the model."""

import re

from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_config
from bot.ranking import stage
from bot.ranking import weak as W
from bot.ranking.scorer import Ranker
from bot.sources.pubmed import parse_efetch
from bot.store import save_items
from bot.status import ranker_seed_state
from bot.store.ranking import get_scores, mesh_indexed_items
from conftest import FIXTURES, FakeEmbedder

MG = """[topic]
name = "Myasthenia gravis"
acronyms = ["MG"]
pubmed_query = '"Myasthenia Gravis"[mh] OR "myasthenia gravis"[tiab]'
ctgov_condition = "Myasthenia Gravis"
description = "Myasthenia gravis, an autoimmune disease of the neuromuscular junction"
examples = ["efgartigimod in generalized myasthenia gravis", "thymectomy for myasthenia gravis"]
negatives = ["Lambert-Eaton myasthenic syndrome", "multiple sclerosis"]
"""
DRUGS = ["efgartigimod", "rozanolixizumab", "eculizumab", "ravulizumab", "zilucoplan"]
OTHERS = [("Multiple Sclerosis", "multiple sclerosis"), ("Neuromyelitis Optica", "neuromyelitis optica"),
          ("Polyradiculoneuropathy, Chronic Inflammatory Demyelinating", "chronic inflammatory demyelinating "
                                                                          "polyneuropathy")]


def _paper(n, title, abstract, mesh, major):
    extra = {"mesh_major": major} if major is not None else {}
    return {"kind": "paper", "source": "pubmed", "pmid": str(30000000 + n), "title": title, "abstract": abstract,
            "mesh": mesh, "pub_types": ["Journal Article"], "extra": extra}


def _about_mg(n):
    drug = DRUGS[n % len(DRUGS)]
    return _paper(n, f"{drug.capitalize()} in generalized myasthenia gravis: a cohort of {20 + n} patients",
                  f"Patients with acetylcholine receptor antibody positive myasthenia gravis (MG) received {drug}. "
                  f"MG-ADL and QMG scores improved over {n + 4} weeks.",
                  ["Humans", "Myasthenia Gravis", "Receptors, Cholinergic"], ["Myasthenia Gravis"])


def _not_mg(n):
    heading, name = OTHERS[n % len(OTHERS)]
    drug = DRUGS[n % len(DRUGS)]
    passing = " Unlike in myasthenia gravis, the response was slow." if n % 2 else ""
    return _paper(100 + n, f"{drug.capitalize()} in {name}: outcomes of {30 + n} patients",
                  f"Patients with {name} received {drug} for {n + 6} months; relapse rates fell.{passing}",
                  ["Humans", heading], [heading])


def _store(db, positives=25, negatives=25):
    records = [_about_mg(n) for n in range(positives)] + [_not_mg(n) for n in range(negatives)]
    records.append(_paper(900, "Thymoma surgery outcomes", "Thymoma resected; myasthenia gravis was present in some.",
                          ["Thymoma", "Myasthenia Gravis"], ["Thymoma"]))          # MG a minor topic: no label
    records.append(_paper(901, "Efgartigimod in ocular myasthenia gravis", "A case series.", [], None))  # not indexed
    save_items(db, records)


def _config(tmp_path):
    path = tmp_path / "mg.toml"
    path.write_text(MG, encoding="utf-8")
    return load_config(path)


TARGETS = [{"id": "new", "title": "Zilucoplan for myasthenia gravis in the elderly",
            "text": "Older patients with MG received zilucoplan; MG-ADL improved."},
           {"id": "passing", "title": "Rozanolixizumab in neuromyelitis optica",
            "text": "Patients with neuromyelitis optica received rozanolixizumab; unlike myasthenia gravis, relapses "
                    "persisted."},
           {"id": "unnamed", "title": "Eculizumab in multiple sclerosis",
            "text": "Patients with multiple sclerosis received eculizumab for six months."}]


def test_the_parser_keeps_mesh_major_topics_beside_mesh():
    records = parse_efetch((FIXTURES / "pubmed" / "efetch_biopython_pubmed2_two_articles_mesh.xml").read_bytes())
    # Sperm Motility is starred itself; the others through a starred qualifier ("Spermatozoa/ultrastructure*").
    assert records[0]["extra"]["mesh_major"] == ["Cryopreservation", "Sea Bream", "Semen Preservation",
                                                 "Sperm Motility", "Spermatozoa"]
    assert len(records[0]["mesh"]) == 11 and "Animals" in records[0]["mesh"]   # the mesh field is unchanged
    assert "mesh_major" not in records[1]["extra"] and records[1]["mesh"] == []


def test_weak_labels_are_found_in_the_store(db, tmp_path):
    config = _config(tmp_path)
    _store(db)
    examples = W.weak_examples(mesh_indexed_items(db), config)
    assert W.counts(examples) == (25, 25)
    titles = {ex["title"] for ex in examples}
    assert "Thymoma surgery outcomes" not in titles                      # heading only as a minor topic
    assert "Efgartigimod in ocular myasthenia gravis" not in titles       # no MeSH yet
    assert all(ex["relevant"] for ex in examples if "generalized myasthenia gravis" in ex["title"])


def test_weak_labels_state_how_well_relevance_does_and_change_no_score(db, tmp_path):
    config = _config(tmp_path)
    _store(db)
    stored = stage.make_ranker(db, config, FakeEmbedder())
    without = Ranker(config, FakeEmbedder(), models_dir=tmp_path / "plain")
    assert "weak labels" not in without.seed_warning       # `spsbot score` has no store to count them in
    assert stored.score(TARGETS) == without.score(TARGETS)   # a check, not a teacher
    assert stored.fingerprint() == without.fingerprint()
    stage.rank_items(db, config, embedder=FakeEmbedder())
    decided = {i: s["relevant"] for i, s in get_scores(db).items()}
    examples = W.weak_examples(mesh_indexed_items(db), config)
    called = [ex for ex in examples if decided[ex["id"]]]
    precision = sum(ex["relevant"] for ex in called) / len(called)
    recall = sum(1 for ex in called if ex["relevant"]) / sum(ex["relevant"] for ex in examples)
    state = ranker_seed_state(db)
    assert state["weak_labels"] == {"positive": 25, "negative": 25}
    assert (f"(25 records with Myasthenia gravis as a major topic, 25 indexed without it; nothing learns from them):"
            f" precision {precision:.2f}, recall {recall:.2f} of its decisions on them") in state["warning"]
    assert state["relevance_quality"] in state["warning"]
    assert "expected mean theme AP" in state["warning"] or "themes come from" in state["warning"]


def test_too_few_weak_labels_are_said_and_the_statement_follows_the_store(db, tmp_path):
    config = _config(tmp_path)
    _store(db, positives=19)
    few = stage.make_ranker(db, config, FakeEmbedder())
    assert "too few weak labels" in few.seed_warning and "(19 records with Myasthenia gravis" in few.seed_warning
    stage.rank_items(db, config, embedder=FakeEmbedder())
    assert "too few weak labels" in ranker_seed_state(db)["relevance_quality"]
    save_items(db, [_about_mg(19)])
    stage.rank_items(db, config, embedder=FakeEmbedder())
    assert "(20 records with Myasthenia gravis as a major topic" in ranker_seed_state(db)["relevance_quality"]
    assert stage.make_ranker(db, config, FakeEmbedder()).fingerprint() == few.fingerprint()  # no new model


def test_rank_and_status_state_the_expected_quality(tmp_path, monkeypatch, env_isolated):
    from bot.store import open_db
    config_path = tmp_path / "mg.toml"
    config_path.write_text(MG, encoding="utf-8")
    database = open_db(tmp_path / "mg.db")
    _store(database)
    database.close()
    monkeypatch.setattr(stage, "profile_embedder", lambda _config: FakeEmbedder())
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "mg.db"), "--config", str(config_path), "rank"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "expected quality: relevance checked against NLM's MeSH indexing (25 records" in result.output
    assert re.search(r"precision \d\.\d\d, recall \d\.\d\d of its decisions on them", result.output)
    status = CliRunner().invoke(cli, ["--db", str(tmp_path / "mg.db"), "--config", str(config_path), "status"],
                                catch_exceptions=False)
    assert "relevance checked against NLM's MeSH indexing (25 records" in status.output   # status says it too


NMOSD = MG.replace('name = "Myasthenia gravis"', 'name = "Neuromyelitis optica spectrum disorder"').replace(
    '"Myasthenia Gravis"[mh] OR "myasthenia gravis"[tiab]', '"NMOSD"[tiab]')


def _nmosd(tmp_path, mesh_line=""):
    path = tmp_path / "nmosd.toml"
    path.write_text(NMOSD.replace('acronyms = ["MG"]', f'acronyms = ["NMOSD"]\n{mesh_line}'), encoding="utf-8")
    return load_config(path)


def test_a_declared_mesh_heading_finds_what_the_name_does_not(db, tmp_path):
    _store(db, positives=0, negatives=30)       # 10 of them have Neuromyelitis Optica as a major topic
    items = mesh_indexed_items(db)
    by_name = W.weak_examples(items, _nmosd(tmp_path))
    assert W.topic_headings(_nmosd(tmp_path)) == ["Neuromyelitis optica spectrum disorder", "NMOSD"]
    assert W.counts(by_name) == (0, 31)                              # the name is not NLM's heading
    declared = _nmosd(tmp_path, 'mesh = ["Neuromyelitis  optica"]')  # case and spacing do not matter
    assert W.counts(W.weak_examples(items, declared)) == (10, 21)
    assert W.weak_examples(items, _nmosd(tmp_path, "mesh = []")) == []   # no heading: no label either way
    assert W.topic_headings(load_config()) == ["Stiff-Person Syndrome"]  # the bundled profile declares its own


def test_rank_and_status_say_when_no_record_has_the_heading(tmp_path, monkeypatch, env_isolated):
    from bot.store import open_db
    config_path = tmp_path / "nmosd.toml"
    config_path.write_text(NMOSD.replace('acronyms = ["MG"]', 'acronyms = ["NMOSD"]\nmesh = ["NMO"]'), encoding="utf-8")
    database = open_db(tmp_path / "nmosd.db")
    _store(database)
    database.close()
    monkeypatch.setattr(stage, "profile_embedder", lambda _config: FakeEmbedder())
    args = ["--db", str(tmp_path / "nmosd.db"), "--config", str(config_path)]
    ranked = CliRunner().invoke(cli, [*args, "rank"], catch_exceptions=False)
    note = "none of the 51 MeSH-indexed records in the store has NMO as a major topic"
    assert ranked.exit_code == 0 and f"check: {note}" in ranked.output
    assert "check [topic] mesh against https://meshb.nlm.nih.gov/" in ranked.output
    status = CliRunner().invoke(cli, [*args, "status"], catch_exceptions=False)
    assert note in status.output
    config_path.write_text(MG, encoding="utf-8")                          # a heading the store has: no note
    ranked = CliRunner().invoke(cli, [*args, "rank"], catch_exceptions=False)
    assert "none of the" not in ranked.output
    assert "none of the" not in CliRunner().invoke(cli, [*args, "status"], catch_exceptions=False).output
