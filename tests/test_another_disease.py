"""A profile for another disease: no SPS themes unless it asks, `spsbot init TOPIC` writes a
starter profile that loads, and the digest of a theme-less profile still reads well."""

import re

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import load_config
from bot.digest.builder import preview_digest
from bot.digest.subscribers import SubscriberError, add_subscriber
from bot.ranking.scorer import Ranker
from bot.starter import slug_for
from digest_support import NOW, paper, seed
from conftest import FakeEmbedder

MG = """[topic]
name = "Myasthenia gravis"
slug = "mg"
pubmed_query = '"Myasthenia Gravis"[mh] OR "myasthenia gravis"[tiab]'
ctgov_condition = "Myasthenia Gravis"
"""
SPS_THEMES = {"immunomodulation", "symptomatic", "registries", "multidisciplinary", "biomarkers", "diagnosis"}


def _profile(tmp_path, text):
    path = tmp_path / "mg.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_another_disease_gets_no_sps_themes_unless_it_asks(tmp_path):
    config = _profile(tmp_path, MG)
    assert config.topic.name == "Myasthenia gravis" and config.themes == ()
    ranker = Ranker(config, FakeEmbedder())
    assert ranker.target_names == ["relevance"] and ranker.bundle is None
    result = ranker.score([{"id": "a", "title": "Efgartigimod in myasthenia gravis", "text": "It helped."}])[0]
    assert result["themes"] == {} and result["labels"] == []
    asked = _profile(tmp_path, MG.replace('slug = "mg"', 'slug = "mg"\nbundled_themes = true'))
    assert set(asked.theme_names) == SPS_THEMES
    own = _profile(tmp_path, MG + '[[themes]]\nname = "thymectomy"\ndescription = "Thymectomy"\n')
    assert own.theme_names == ["thymectomy"]
    assert set(load_config().theme_names) == SPS_THEMES  # the bundled profile is unchanged


def test_a_theme_less_digest_has_one_section_and_subscribers_are_told(db, tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    config = _profile(tmp_path, MG)
    seed(db, [paper(1, "Efgartigimod in generalized myasthenia gravis", themes={})])
    data, subject, html, text, _ = preview_digest(db, config, "ann@example.org")
    assert [s["title"] for s in data["sections"]] == ["New research"]
    assert subject.startswith("MG digest — 1 new paper") and "NEW RESEARCH (1)" in text
    with pytest.raises(SubscriberError, match="none \\(the profile has no \\[\\[themes\\]\\]\\)"):
        add_subscriber(db, "ann@example.org", valid_themes=config.theme_names, themes="immunomodulation")


def test_init_writes_a_starter_profile_that_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["init", "Myasthenia gravis"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "myasthenia-gravis.toml"
    assert f"wrote {path.name}" in result.output and "spsbot label --review" in result.output
    assert "without labels: relevance wants the topic named" in result.output  # what to expect, said up front
    assert "expected mean theme AP 0." in result.output
    config = load_config(path)
    assert (config.topic.name, config.topic.slug, config.topic.ctgov_condition) == ("Myasthenia gravis", "mg",
                                                                                  "Myasthenia gravis")
    assert config.topic.pubmed_query == '"Myasthenia gravis"[tiab]'
    assert config.theme_names == ["treatment", "diagnosis", "cohorts"]
    assert not set(config.themes) & set(load_config().themes)  # none of the SPS theme definitions
    text = path.read_text(encoding="utf-8")
    assert text.count("TODO") >= 4 and "stiff" not in text.lower()
    again = runner.invoke(cli, ["init", "Myasthenia gravis"])
    assert again.exit_code == 1 and "exists; use --force" in again.output
    assert runner.invoke(cli, ["init", "Huntington's disease", "-o", "hd.toml"]).exit_code == 0
    assert load_config(tmp_path / "hd.toml").topic.name == "Huntington's disease"


@pytest.mark.parametrize("topic, slug", [("Myasthenia gravis", "mg"), ("Stiff person syndrome", "sps"),
                                         ("Narcolepsy", "narcolepsy"), ("Huntington's disease", "hd")])
def test_slug_for(topic, slug):
    assert slug_for(topic) == slug


def test_the_slug_is_a_label_and_declared_acronyms_are_names(tmp_path):
    from bot.ranking.features import build_targets
    from bot.ranking.text import find_terms
    plain = build_targets(_profile(tmp_path, MG))[0]
    assert "MG" not in plain.terms and "mg" not in plain.terms  # the slug is never a scoring term
    declared = build_targets(_profile(tmp_path, MG.replace('slug = "mg"', 'slug = "mg"\nacronyms = ["MG"]')))[0]
    found = {text: find_terms(text, declared.terms) for text in (
        "Outcomes in patients with MG after thymectomy", "MG-ADL scores fell", "diazepam 150 MG daily",
        "5 mg/kg of rituximab", "serum Mg2+ levels", "MGUS in the elderly")}
    assert found == {"Outcomes in patients with MG after thymectomy": ["MG"], "MG-ADL scores fell": ["MG"],
                     "diazepam 150 MG daily": [], "5 mg/kg of rituximab": [], "serum Mg2+ levels": [],
                     "MGUS in the elderly": []}
    assert "SPS" in build_targets(load_config())[0].terms  # the bundled profile declares its own


def test_init_takes_the_acronym_it_is_given_and_guesses_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    given = runner.invoke(cli, ["init", "Myasthenia gravis", "--acronym", "MG", "-o", "given.toml"])
    assert given.exit_code == 0 and "acronyms MG" in given.output
    assert load_config(tmp_path / "given.toml").topic.acronyms == ("MG",)
    bracketed = runner.invoke(cli, ["init", "Neuromyelitis optica spectrum disorder (NMOSD)"])
    config = load_config(tmp_path / "neuromyelitis-optica-spectrum-disorder.toml")
    assert bracketed.exit_code == 0 and config.topic.name == "Neuromyelitis optica spectrum disorder"
    assert (config.topic.acronyms, config.topic.slug) == (("NMOSD",), "nmosd")
    # no one to ask (stdin is not a terminal): no acronym rather than the initials 'nosd' or 'mg'
    none = runner.invoke(cli, ["init", "Myasthenia gravis", "-o", "none.toml"], input="")
    assert none.exit_code == 0 and "no acronym" in none.output
    assert load_config(tmp_path / "none.toml").topic.acronyms == ()


def test_init_asks_for_the_acronym_at_a_terminal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("bot.cli.profile.interactive", lambda: True)
    result = CliRunner().invoke(cli, ["init", "Myasthenia gravis", "-o", "asked.toml"], input="MG, gMG\n")
    assert result.exit_code == 0 and "abbreviation papers use for Myasthenia gravis" in result.output
    assert load_config(tmp_path / "asked.toml").topic.acronyms == ("MG", "gMG")


def test_init_survives_quotes_in_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["init", 'Crohn\'s "classic" disease', "--acronym", 'C"D', "-o", "q.toml"])
    assert result.exit_code == 0, result.output
    topic = load_config(tmp_path / "q.toml").topic
    assert (topic.name, topic.acronyms) == ('Crohn\'s "classic" disease', ('C"D',))
    assert topic.pubmed_query == '"Crohn\'s classic disease"[tiab]'  # a quote would end the phrase early


def test_placeholders_left_are_named_by_rank_and_status(db, tmp_path, caplog):
    from bot.starter import starter_profile
    from bot.status import collect_status
    (tmp_path / "new.toml").write_text(starter_profile("Myasthenia gravis", []), encoding="utf-8")
    untouched = load_config(tmp_path / "new.toml")
    with caplog.at_level("WARNING"):
        Ranker(untouched, FakeEmbedder())
    named = [r.getMessage() for r in caplog.records if "placeholders" in r.getMessage()]
    assert len(named) == 1 and "description, pubmed_query, examples, include_terms of treatment" in named[0]
    status = [w for w in collect_status(db, untouched)["warnings"] if "placeholders" in w]
    assert len(status) == 1 and "new.toml" in status[0]
    text = (tmp_path / "new.toml").read_text(encoding="utf-8").replace(
        "its names, causes, main signs and treatments.", "an autoimmune disease of the neuromuscular junction.")
    text = text.replace('"Myasthenia gravis"[tiab]', '"Myasthenia gravis"[tiab] OR myasthenic[tiab]')
    text = text.replace("'a case report of Myasthenia gravis'", "'generalised myasthenia with AChR antibodies'")
    text = text.replace("include_terms = []", "include_terms = ['pyridostigmine']")
    (tmp_path / "new.toml").write_text(text, encoding="utf-8")
    filled = load_config(tmp_path / "new.toml")
    assert not [w for w in collect_status(db, filled)["warnings"] if "placeholders" in w]
    assert not [w for w in collect_status(db, load_config())["warnings"] if "placeholders" in w]


def test_an_abbreviation_the_description_uses_but_does_not_declare_is_named(db, tmp_path, caplog):
    """The MG evaluation profile writes "Myasthenia gravis (MG): …" and declares no acronym: records that
    write only "MG" (a trial of SCIG "in Patients With MG Exacerbation") then never name the topic."""
    from bot.status import collect_status
    described = MG.replace('slug = "mg"', 'slug = "mg"\ndescription = "Myasthenia gravis (MG): fatigable weakness."')
    config = _profile(tmp_path, described)
    with caplog.at_level("WARNING"):
        Ranker(config, FakeEmbedder())
    said = [r.getMessage() for r in caplog.records if "abbreviates" in r.getMessage()]
    assert len(said) == 1 and 'as MG, which [topic] acronyms does not declare' in said[0]
    assert 'acronyms = ["MG"]' in said[0]
    assert [w for w in collect_status(db, config)["warnings"] if "abbreviates Myasthenia gravis as MG" in w]
    declared = _profile(tmp_path, described.replace('slug = "mg"', 'slug = "mg"\nacronyms = ["MG"]'))
    assert not [w for w in collect_status(db, declared)["warnings"] if "abbreviates" in w]
    assert not [w for w in collect_status(db, load_config())["warnings"] if "abbreviates" in w]  # SPS declares SPS
    # a query whose every phrase is AND-ed with more than a filter names nothing on its own: said too
    query = """pubmed_query = '"Myasthenia Gravis"[mh] OR "myasthenia gravis"[tiab]'"""
    humans = _profile(tmp_path, MG.replace(query, """pubmed_query = '("myasthenia gravis"[tiab]) AND humans[mh]'"""))
    assert [w for w in collect_status(db, humans)["warnings"] if "searches every phrase AND-ed" in w]
    english = _profile(tmp_path, MG.replace(query, """pubmed_query = '("myasthenia gravis"[tiab]) AND english[la]'"""))
    assert not [w for w in collect_status(db, english)["warnings"] if "AND-ed" in w]


MG_FILLED = MG.replace('slug = "mg"', '''slug = "mg"
acronyms = ["MG"]
description = "Myasthenia gravis: autoimmune disease of the neuromuscular junction with AChR antibodies."
examples = ["patients with myasthenia gravis", "ocular myasthenia gravis"]
negatives = ["Lambert-Eaton myasthenic syndrome"]''').replace('"myasthenia gravis"[tiab]',
                                                        '"myasthenia gravis"[tiab] OR myasthenic[tiab]') + '''
[[themes]]
name = "symptomatic"
description = "Symptomatic drugs: pyridostigmine and other acetylcholinesterase inhibitors."
examples = ["pyridostigmine"]
include_terms = ["pyridostigmine", "acetylcholinesterase inhibitor"]

[[themes]]
name = "surgery"
description = "Thymectomy and other surgery."
examples = ["thymectomy"]
include_terms = ["thymectomy"]
'''
NEIGHBOUR = {"id": "sps", "title": "Low-dose naltrexone reduces symptoms in an autoimmune neurological disease",
             "text": "Patients with anti-GAD65 antibodies and fatigable muscle stiffness improved on low-dose "
                     "naltrexone; antibody titres fell and weakness eased."}
LEMS = {"id": "lems", "title": "Amifampridine in Lambert-Eaton myasthenic syndrome",
        "text": "Amifampridine improved strength in Lambert-Eaton myasthenic syndrome with VGCC antibodies."}


def test_a_record_that_never_names_the_topic_is_not_about_it(tmp_path):
    from bot.ranking.features import topic_evidence
    ranker = Ranker(_profile(tmp_path, MG_FILLED), FakeEmbedder())
    prepared = ranker.prepare([NEIGHBOUR, LEMS, {"id": "list", "title": "Rituximab in ulcerative colitis",
                                                  "text": "It helped in autoimmune diseases such as myasthenia "
                                                          "gravis and lupus."},
                               {"id": "mg", "title": "Pyridostigmine in MG", "text": "Patients with MG improved."},
                               {"id": "excl", "title": "Electromyography on chronic pyridostigmine",
                                "text": "Subjects taking it for myasthenia gravis will be excluded."}])
    topic = ranker.targets[0]
    # LEMS's "myasthenic" is its own name; a trial excluding MG patients does not name MG as its subject
    assert [topic_evidence(p, topic) for p in prepared] == [0, 0, 1, 2, 0]
    results = {r["id"]: r for r in ranker.score([p.record for p in prepared])}
    assert max(results[i]["relevance"] for i in ("sps", "lems", "excl")) < 0.5
    assert not results["sps"]["relevant"] and not results["lems"]["relevant"]


def test_a_name_in_a_trials_exclusion_criteria_does_not_name_the_topic(tmp_path):
    from bot.ranking.features import topic_evidence
    ranker = Ranker(_profile(tmp_path, MG_FILLED), FakeEmbedder())
    criteria = ("Inclusion Criteria:\n* Preterm labour at 24-34 weeks\n\nExclusion Criteria:\n* Multiple pregnancy\n"
                "* Myasthenia gravis\n* Renal insufficiency, or myasthenia gravis in the mother")
    prepared = ranker.prepare([{"id": "tocolysis", "title": "Nifedipine for preterm labour", "text": criteria},
                               {"id": "mg", "title": "Nifedipine and pregnancy outcomes",
                                "text": "Women with myasthenia gravis in pregnancy. " + criteria}])
    assert [topic_evidence(p, ranker.targets[0]) for p in prepared] == [0, 1]


def test_words_the_query_searches_only_together_name_no_topic():
    """The SPS query finds "GAD65 … rigidity" only together: neither word alone is SPS's name, so a
    Parkinson's rigidity paper or a GAD65 epilepsy paper never names the topic (before: both did,
    and the profile without its seed called 7 of the dev set's 55 hard negatives relevant)."""
    from bot.ranking.features import topic_evidence
    ranker = Ranker(load_config(None, env={}), FakeEmbedder(), seed=[])
    prepared = ranker.prepare([
        {"id": "pd", "title": "Rigidity and myoclonus in Parkinson's disease", "text": "Muscle rigidity and spasms."},
        {"id": "epi", "title": "GAD65 antibodies in temporal lobe epilepsy", "text": "Glutamic acid decarboxylase."},
        {"id": "sps", "title": "Stiff-man syndrome with GAD65 antibodies", "text": "Rigidity and spasms."},
        # NLM's indexers filed it under the topic's heading: their reading of the whole article names it
        {"id": "mesh", "title": "GAD65 antibodies and rigidity", "text": "Spasms.", "mesh": ["Stiff-Person Syndrome"]},
        {"id": "other", "title": "GAD65 antibodies and rigidity", "text": "Spasms.", "mesh": ["Epilepsy"]}])
    assert [topic_evidence(p, ranker.targets[0]) for p in prepared] == [0, 0, 2, 2, 0]


def test_unlabelled_themes_of_another_topic_are_read_by_the_pooled_reader(tmp_path, real_embedder):
    from bot.ranking.scorer import unsupervised_score
    from bot.ranking.transfer import theme_reader
    assert theme_reader("some other model") is None  # similarities of another model mean something else
    ranker = Ranker(_profile(tmp_path, MG_FILLED), real_embedder)
    # the quality it expects is said up front (rank logs it, status shows it): estimated, with its count
    stated = r"expected mean theme AP 0\.\d\d \(on each of 6 labelled themes of 299 records"
    assert re.search(stated, ranker.seed_warning)
    records = [{"id": "pyr", "title": "Pyridostigmine dosing in generalised myasthenia gravis",
                "text": "Patients with myasthenia gravis took pyridostigmine three times daily; cholinergic side "
                        "effects were common."},
               {"id": "thy", "title": "Thymectomy in myasthenia gravis",
                "text": "Extended thymectomy improved outcomes of patients with myasthenia gravis."},
               NEIGHBOUR]
    results = {r["id"]: r for r in ranker.score(records)}
    assert results["pyr"]["relevant"] and results["thy"]["relevant"] and not results["sps"]["relevant"]
    assert results["pyr"]["themes"]["symptomatic"] > results["thy"]["themes"]["symptomatic"]
    assert results["thy"]["themes"]["surgery"] > results["pyr"]["themes"]["surgery"]
    assert "symptomatic" in results["pyr"]["labels"] and "surgery" in results["thy"]["labels"]
    prepared = ranker.prepare(records[:1])
    assert results["pyr"]["themes"]["symptomatic"] != round(unsupervised_score(prepared[0], ranker.targets[1]), 4)


def test_a_theme_term_the_topic_is_described_by_is_no_evidence_of_the_theme():
    from bot.ranking.features import theme_terms
    described = "Myasthenia gravis, with antibodies against the acetylcholine receptor (AChR) or MuSK"
    assert list(theme_terms(["AChR", "MuSK", "HLA", "titre"], described)) == ["HLA", "titre"]
    assert list(theme_terms(["AChR"], described)) == ["AChR"]  # a theme keeps its only term


def test_a_curator_label_does_not_make_an_unnamed_neighbour_about_the_topic(tmp_path):
    from bot.ranking.scorer import feedback_examples
    story = ("Fatigable weakness, ptosis and diplopia improved within four weeks of efgartigimod infusions. "
             "Dysphagia and dyspnoea eased in most patients. The daily activities score fell by five points. "
             "No infusion reaction was serious. Antibody titres fell in every patient.")
    judged = {"id": "judged", "title": "Efgartigimod in myasthenia gravis", "text": story}
    unnamed = {"id": "unnamed", "title": "Efgartigimod", "text": story}  # a near-duplicate that never names it
    feedback = feedback_examples([{"item_id": "judged", "label": "relevant", "theme": None}], {"judged": judged})
    config = _profile(tmp_path, MG_FILLED)
    alone = Ranker(config, FakeEmbedder()).score([unnamed])[0]["relevance"]
    moved = {r["id"]: r for r in Ranker(config, FakeEmbedder(), feedback=feedback).score([judged, unnamed])}
    assert moved["judged"]["relevance"] == 1.0 and moved["unnamed"]["relevance"] > alone  # the label pulls it up…
    assert not moved["unnamed"]["relevant"] and moved["unnamed"]["relevance"] < 0.5       # …never past the name rule


def _feeds(config, tag: str, value: str) -> bool:
    """Whether ``value`` (a marker written into a key) reaches what ``PARTS`` says that key feeds."""
    from bot.ranking import weak
    from bot.ranking.features import build_targets
    from bot.ranking.text import find_terms
    topic, theme = build_targets(config)[0], build_targets(config)[1]
    return {"names": lambda: bool(find_terms(f"a paper on {value} today", topic.terms)),
            "phrases": lambda: value in topic.prototypes or any(value in p for p in topic.prototypes),
            "negatives": lambda: value in topic.negatives,
            "mesh": lambda: value in weak.topic_headings(config),
            "theme phrases": lambda: any(value in p for p in theme.prototypes),
            "theme terms": lambda: value in theme.terms,
            "label": lambda: config.topic.slug == value and not find_terms(value, topic.terms),
            "fetch": lambda: not any(value in str(t.prototypes) + str(list(t.terms)) for t in build_targets(config)),
            }[tag]()


def test_what_init_says_the_edits_change_is_what_the_ranker_reads(tmp_path, monkeypatch):
    import tomllib

    from bot.starter import PARTS
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["init", "Myasthenia gravis", "--acronym", "MG"])
    assert result.exit_code == 0, result.output
    written = tomllib.loads((tmp_path / "myasthenia-gravis.toml").read_text(encoding="utf-8"))
    for tag, keys, text in PARTS:
        assert f"  {', '.join(keys)}: {text}" in result.output
        for key in keys:
            table, name = key.split(" ")
            section = written["themes"][0] if table == "[[themes]]" else written[table.strip("[]")]
            assert name in section, f"init names {key}, which it does not write"
            # A marker written into the key reaches what the line says it feeds.
            marker = "Zebrafoo" if name not in ("acronyms", "slug") else "ZBF"
            edited = {k: (dict(v) if isinstance(v, dict) else [dict(t) for t in v] if k == "themes" else v)
                      for k, v in written.items()}
            target = edited["themes"][0] if table == "[[themes]]" else edited[table.strip("[]")]
            if name == "pubmed_query":
                target[name] = f'"{marker}"[tiab]'
            elif name == "feeds":
                target[name] = [f"https://example.org/{marker}.rss"]
            elif isinstance(target[name], list):
                target[name] = [*target[name], marker]
            else:
                target[name] = marker if name in ("name", "slug") else f"{target[name]} {marker}"
            path = tmp_path / "edited.toml"
            path.write_text(_dump_toml(edited), encoding="utf-8")
            assert _feeds(load_config(path, env={}), tag, marker), f"{key} does not feed {tag}"


def _dump_toml(data: dict) -> str:
    import json
    lines = []
    for table, values in data.items():
        for row in (values if isinstance(values, list) else [values]):
            lines.append(f"[[{table}]]" if isinstance(values, list) else f"[{table}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in row.items()]
    return "\n".join(lines) + "\n"
