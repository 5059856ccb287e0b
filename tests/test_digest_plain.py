"""The plain register (issue 24): a subscriber who chose "plain" gets the same items with plain
theme titles, abbreviations spelled out from the profile's glossary, each trial's status in words
with where it recruits, a quote without statistics when the record has one as good, and trials
they could join first. Nothing invented: the added words are the profile's, the quotes the record's."""

import json

import pytest

from bot.config import ConfigError, load_config
from bot.digest.builder import build_digests
from bot.digest.plain import has_statistics, spell_out, status_words
from bot.digest.subscribers import SubscriberError, add_subscriber, validate_preferences
from bot.starter import starter_profile
from bot.store import open_db
from bot.store import subscribers as subscriber_store
from digest_support import NOW, paper, seed, trial

STATS = "IVIG reduced stiffness scores (mean 4.1 ± 1.2 vs 6.3, p < 0.001; 95% CI 1.1-3.0)."
PLAIN = "Most patients treated with IVIG walked more easily and had fewer falls."
ABSTRACT = f"BACKGROUND: Stiff person syndrome is rare. METHODS: We treated 20 patients. {STATS} {PLAIN}"


def _trial(nct, title, status, countries=(), sites=0, why=None):
    record, score = trial(nct, title, status=status)
    record["extra"].update(countries=list(countries), locations_count=sites, why_stopped=why)
    return record, score


@pytest.fixture
def store(db, monkeypatch):
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    record, score = paper(1, "IVIG in SPS: a cohort", abstract=ABSTRACT, sentence=STATS)
    score["evidence"] = json.dumps({"immunomodulation": {"sentence": STATS, "terms": ["IVIG"]}})
    seed(db, [(record, score),
              paper(2, "Exercise and stiffness", themes={"multidisciplinary": 0.9}, sentence="Exercise helped.")])
    seed(db, [_trial("NCT00000001", "A withdrawn IVIG trial", "WITHDRAWN", why="No funding"),
              _trial("NCT00000002", "An open trial", "RECRUITING", ("France", "United States"), 12)],
         source="ctgov")
    with db.atomic():
        db["trial_changes"].insert({"nct_id": "NCT00000002", "field": "overall_status", "old": "RECRUITING",
                                    "new": "COMPLETED", "detected_at": NOW})
    return db


def _digest(db, config, email):
    sub = subscriber_store.find_subscriber(db, email)
    return db.execute("select text, html, data from digests where subscriber_id = ?", [sub["id"]]).fetchone()


def test_a_plain_subscriber_reads_plain_words_and_a_clinical_one_the_record(store):
    config = load_config()
    add_subscriber(store, "pat@example.org", valid_themes=config.theme_names, style="plain")
    add_subscriber(store, "doc@example.org", valid_themes=config.theme_names)
    build_digests(store, config, now=NOW, public=False)
    text, html, data = _digest(store, config, "pat@example.org")
    data = json.loads(data)
    assert data["style"] == "plain"
    assert "Treatments that calm the immune system" in html and "Immunomodulation" not in html
    first = data["sections"][0]["items"][0]
    # spelled out on first use only (the title); the quote is the record's sentence without statistics
    assert first["title"] == "Intravenous immunoglobulin (IVIG) in stiff person syndrome (SPS): a cohort"
    assert first["sentence"] == PLAIN and PLAIN in ABSTRACT
    assert f"“{PLAIN}”".replace("“", "&ldquo;").replace("”", "&rdquo;") in html
    # trials: the one a reader could join first, each status in words, where from the record
    assert [t["nct_id"] for t in data["trials"]] == ["NCT00000002", "NCT00000001"]
    assert "Recruiting — looking for participants in France, United States (12 sites)" in text
    assert "Withdrawn — stopped before anyone took part. Reason given: No funding" in html
    assert text.index("An open trial") < text.index("A withdrawn")
    assert "Status: Recruiting → Completed — the study has ended" in text
    # the clinical digest of the same store is today's digest
    text, html, data = _digest(store, config, "doc@example.org")
    assert "Immunomodulation" in html and "Treatments that calm" not in html
    assert "intravenous immunoglobulin (IVIG)" not in text and STATS in text and "stopped before" not in html
    assert "Status: Recruiting → Completed\n" in text


def test_spelling_out_adds_only_the_glossary_words():
    glossary = {"IVIG": "intravenous immunoglobulin", "GAD": "glutamic acid decarboxylase",
                "GAD65": "glutamic acid decarboxylase 65"}
    seen = set()
    assert spell_out("with IVIG and GAD65, then IVIG again", glossary, seen) == \
        "with intravenous immunoglobulin (IVIG) and glutamic acid decarboxylase 65 (GAD65), then IVIG again"
    assert spell_out("IVIG helped. GAD was high.", glossary, set()) == \
        "Intravenous immunoglobulin (IVIG) helped. Glutamic acid decarboxylase (GAD) was high."
    assert spell_out("More IVIG.", glossary, seen) == "More IVIG."  # first use only
    assert spell_out("intravenous immunoglobulin (IVIG) helped", glossary, set()) == \
        "intravenous immunoglobulin (IVIG) helped"  # the record spelled it out already
    assert spell_out("IVIGx and anti-GAD-like", glossary, set()) == "IVIGx and anti-GAD-like"


def test_status_words_come_from_the_record_fields():
    assert status_words({"overall_status": "ENROLLING_BY_INVITATION", "locations_count": 1}) == \
        "Enrolling by invitation — only people the study team invites can take part (1 site)"
    assert status_words({"overall_status": "COMPLETED", "countries": ["France"]}) == "Completed — the study has ended"
    assert status_words({}) == ""
    assert has_statistics("p = 0.03") and has_statistics("a 95% CI") and not has_statistics("Phase 2 or 3 trials")


def test_the_profile_gives_plain_titles_and_a_glossary_and_init_asks_for_them(tmp_path):
    config = load_config()
    assert all(t.plain_title and t.plain_description for t in config.themes)
    assert config.glossary["IVIG"] == "intravenous immunoglobulin"
    starter = starter_profile("Myasthenia gravis")
    assert starter.count("plain_title =") == 3 and "TODO" in starter and "[glossary]" in starter
    path = tmp_path / "bad.toml"
    path.write_text('[glossary]\nIVIG = 3\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'IVIG' in \\[glossary\\] must be a non-empty string"):
        load_config(path)
    path.write_text('[topic]\nname = "Myasthenia gravis"\npubmed_query = "mg"\n', encoding="utf-8")
    assert load_config(path).glossary == {}  # another disease: no SPS glossary


def test_style_is_stored_from_sign_up_to_subscriber_and_in_preferences(tmp_path):
    db = open_db(tmp_path / "s.db")
    assert "style" in db["subscribers"].columns_dict and "style" in db["signups"].columns_dict
    signup_id = subscriber_store.record_signup(db, "pat@example.org", name=None, themes=None, kind="confirm",
                                               mail_status="pending", style="plain")
    subscriber, _ = subscriber_store.confirm_signup(db, subscriber_store.get_signup(db, signup_id))
    assert subscriber["style"] == "plain"
    chosen = validate_preferences(None, "weekly", 20, [], "clinical")
    assert chosen["style"] is None  # clinical is the default, stored as null
    subscriber_store.update_preferences(db, subscriber["id"], **chosen, name=None)
    assert subscriber_store.get_subscriber(db, subscriber["id"])["style"] is None
    with pytest.raises(SubscriberError, match="unknown style"):
        validate_preferences(None, "weekly", 20, [], "fancy")


def test_the_web_front_asks_for_the_style_on_sign_up_and_in_the_preferences(tmp_path, monkeypatch):
    from bot.digest.tokens import make_token, secret_for
    from bot.web.app import create_app
    from conftest import FakeEmbedder
    from web_support import csrf, web_config
    monkeypatch.setenv("SPSBOT_SECRET", "style-secret-0123456789abcdef-01234567")
    monkeypatch.setenv("SPSBOT_NOW", NOW)
    db = open_db(tmp_path / "w.db")
    client = create_app(web_config(tmp_path, 'base_url = "http://sps.example.org"\n'), str(tmp_path / "w.db"),
                        embedder=FakeEmbedder()).test_client()
    home = client.get("/").get_data(as_text=True)
    assert 'name="style" value="plain"' in home and "Medicines for stiffness and spasms" in home
    client.post("/subscribe", data={"csrf_token": csrf(home), "email": "pat@example.org", "style": "plain"})
    assert db.execute("select style from signups").fetchone() == ("plain",)
    bad = client.post("/subscribe", data={"csrf_token": csrf(home), "email": "x@example.org", "style": "fancy"})
    assert bad.status_code == 400 and "unknown style" in bad.get_data(as_text=True)
    sub, _ = add_subscriber(db, "pat@example.org", valid_themes=load_config().theme_names, style="plain")
    token = make_token(secret_for(db), sub["id"], sub["email"], purpose="preferences")
    page = client.get(f"/preferences?token={token}").get_data(as_text=True)
    assert 'value="plain" checked' in page and "Getting the diagnosis right" in page
    client.post("/preferences", data={"csrf_token": csrf(page), "token": token, "action": "save",
                                      "frequency": "weekly", "max_items": "20", "style": "clinical"})
    assert subscriber_store.get_subscriber(db, sub["id"])["style"] is None
