"""A year of weekly runs in replay (issue 11): does every relevant item reach every subscriber once?

A time-aware E-utilities emulator (records visible from their create date, the version of the
day served, the topic query evaluated, EDAT back-dated for late additions) and a time-aware
ClinicalTrials.gov emulator (registrations first posted and updated over the year) serve the
bundled SPS demo records plus variants derived from them. ``run_weekly`` runs 52 times on the
store's clock, one week apart, through: a backfill, PubMed down for two weeks, ClinicalTrials.gov
down for two weeks, an SMTP outage, a kill -9 in the middle of sending (one real subprocess),
and weeks when cron did not run at all. Three subscribers: two from the start (one with a cap of
two items), one who joins in week 16. A real SMTP server receives the mail.

What each subscriber must get, from the story (not from the code under test): every item the
ranker judges relevant that became part of the topic after they joined (created in PubMed or
first posted, or matching the query only once its MeSH was added), each exactly once; every
change of a relevant trial detected after they joined, once; a retraction notice for a paper
they received. The assertions collect every shortfall into one report, so the same test run
against older code lists everything it loses.

Fast on purpose: a fake embedder (the real model is exercised elsewhere) and no request spacing.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.config import load_config
from bot.replay import demo_data_dir
from bot.digest.subscribers import add_subscriber
from bot.pipeline import run_weekly
from bot.replay import LocalServer, Response
from bot.replay.ctgov import ctgov_responder, demo_studies
from bot.replay.eutils import backdate_article, eutils_responder, load_articles, read_record, revise_article
from bot.sources import pubmed
from bot.store import open_db
from conftest import FakeEmbedder, SmtpServer, free_port

START = date(2025, 11, 29)           # week 0: the backfill; week 51 is 2026-11-21
WEEKS = 52
NO_RUN = {22, 23, 45}                # cron did not run
PUBMED_DOWN = {12, 13}
CTGOV_DOWN = {28, 29}
SMTP_DOWN = {35}
KILL_MID_SEND = 40                   # kill -9 after the first message of the week went out
LATE_ADDITIONS = (9, 28, 40)         # weeks in which an old SPS paper enters PubMed, back-dated
MESH_ADDED = 30                      # a record created in week 5 matches the query from here on
RETRACTED = 20                       # a paper delivered in week 1 is retracted
SUBSCRIBERS = {"ann@example.org": {"week": 0}, "cap@example.org": {"week": 0, "max_items": 2},
               "bob@example.org": {"week": 16}}
CONFIG = """\
[sources.pubmed]
batch_size = 40
[sources.clinicaltrials]
min_interval = 0.0
[email]
from = "spsbot <digest@example.org>"
timeout = 2
[ranking]
seed = "none"   # the bundled seed is for the real model; the fake one ranks by similarity and terms
"""
SUBPROCESS = """\
import os, sys
sys.path.insert(0, {tests!r})
from conftest import FakeEmbedder
import bot.ranking.embedder
bot.ranking.embedder.load_embedder = lambda name="": FakeEmbedder()
from bot.config import load_config
from bot.pipeline import run_weekly
from bot.sources import pubmed
from bot.store import open_db
config = load_config(sys.argv[2], env=os.environ)
client = pubmed.configured_client(config, env={{}}, min_interval=0, backoff=0, max_retries=1)
run_weekly(open_db(sys.argv[1]), config, fetch_options={{"pubmed": {{"client": client}},
           "clinicaltrials": {{"min_interval": 0, "backoff": 0}}}})
"""


def day(week: int) -> date:
    return START + timedelta(days=7 * week)


def stamp(week: int) -> str:
    return f"{day(week).isoformat()}T06:00:00+00:00"


# --- the year's data: real demo records, and variants derived from them ------------------------

class Year:
    """What PubMed and ClinicalTrials.gov hold over the year, and when each item became news."""

    def __init__(self, query: str):
        from bot.replay.eutils import compile_term
        matches = compile_term(query, match_terms=True)
        articles = load_articles(demo_data_dir("pubmed"))
        records = {read_record(a).pmid: (a, read_record(a)) for a in articles}
        old_sps = [p for p, (_, r) in sorted(records.items()) if r.crdt < day(0).strftime("%Y/%m/%d")
                   and matches(r) and "tiff" in " ".join(" ".join(t) for t in r.fields["ti"])]
        self.late = dict(zip(old_sps[:len(LATE_ADDITIONS)], LATE_ADDITIONS))     # pmid -> week added
        # created (and Entrez-dated) while PubMed could not be reached: fetched when it is back
        self.outage_pmid = old_sps[len(LATE_ADDITIONS)]
        self.versions: dict[str, list[str]] = {}
        for pmid, (article, record) in records.items():
            if pmid in self.late:
                added = day(self.late[pmid]) - timedelta(days=1)
                article = backdate_article(article, added, date(int(record.pdat[:4]), 1, 1))
            elif pmid == self.outage_pmid:
                created = day(min(PUBMED_DOWN)) - timedelta(days=5)
                article = backdate_article(article, created, created)
            self.versions[pmid] = [article]
        # a record not about SPS by its words, created in week 5, indexed with the SPS MeSH heading in week 30
        self.mesh_pmid = next(p for p, (_, r) in sorted(records.items()) if not matches(r) and p not in self.late
                              and re.search(r"gad|glycine|glutamic", " ".join(r.fields["ti"][0])))
        created = backdate_article(self.versions[self.mesh_pmid][0], day(5) - timedelta(days=2),
                                   day(5) - timedelta(days=2))
        self.versions[self.mesh_pmid] = [created, revise_article(created, day(MESH_ADDED) - timedelta(days=1),
                                                                 mesh=("Stiff-Person Syndrome",))]
        # an SPS paper created in the first week, retracted in week 20
        self.retracted_pmid = next(p for p, (_, r) in sorted(records.items(), key=lambda kv: kv[1][1].crdt)
                                   if matches(r) and r.crdt > day(0).strftime("%Y/%m/%d") and p not in self.late)
        first = self.versions[self.retracted_pmid][0]
        self.versions[self.retracted_pmid].append(revise_article(
            first, day(RETRACTED) - timedelta(days=1), pub_types=("Retracted Publication",),
            corrections=(("RetractionIn", "99000002"),)))
        self.matches = matches
        self.studies = self._registry()

    def _registry(self) -> list[dict]:
        """The demo registrations first posted in 2024, then versions posted during the year."""
        def dated(study, first_posted: date, updated: date) -> dict:
            study = copy.deepcopy(study)
            status = study["protocolSection"]["statusModule"]
            status["studyFirstPostDateStruct"] = {"date": first_posted.isoformat(), "type": "ACTUAL"}
            status["lastUpdatePostDateStruct"] = {"date": updated.isoformat(), "type": "ACTUAL"}
            return study

        base = {s["protocolSection"]["identificationModule"]["nctId"]: s for s in demo_studies(1)}
        posted, seen = date(2024, 1, 15), date(2025, 10, 1)
        studies = [dated(s, posted, seen) for s in base.values()]
        later = demo_studies(2, update_date=day(8).isoformat())
        results = next(s for s in later if s["protocolSection"]["identificationModule"]["nctId"] == "NCT03829826")
        studies.append(dated(results, posted, day(8) - timedelta(days=2)))             # status + results
        # during PubMed's outage, a trial changes every week: the digests still go out
        enrolled = dated(base["NCT00030940"], posted, day(12) - timedelta(days=2))
        enrolled["protocolSection"].setdefault("designModule", {})["enrollmentInfo"] = {"count": 62, "type": "ACTUAL"}
        studies.append(enrolled)
        enrolled_more = copy.deepcopy(enrolled)
        enrolled_more["protocolSection"]["designModule"]["enrollmentInfo"]["count"] = 64
        studies.append(dated(enrolled_more, posted, day(13) - timedelta(days=2)))
        stopped = dated(base["NCT03749096"], posted, day(29) - timedelta(days=3))      # during CT.gov's outage
        stopped["protocolSection"]["statusModule"]["whyStopped"] = "Sponsor decision"
        studies.append(stopped)
        new = dated(base["NCT03829826"], day(33) - timedelta(days=2), day(33) - timedelta(days=2))
        new["protocolSection"]["identificationModule"]["nctId"] = "NCT07000001"
        new["protocolSection"]["identificationModule"]["briefTitle"] += " (open-label extension)"
        studies.append(new)
        completed = dated(base["NCT04561557"], posted, day(44) - timedelta(days=1))
        completed["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"
        studies.append(completed)
        return studies

    def articles(self) -> list[str]:
        return [a for versions in self.versions.values() for a in versions]

    def news_day(self, pmid: str) -> str | None:
        """The day a record became part of the topic (created matching, or matching from a later
        version on), or None if it never matched."""
        for article in self.versions[pmid]:
            record = read_record(article)
            if self.matches(record):
                return max(record.crdt, record.mdat if article is not self.versions[pmid][0] else record.crdt)
        return None


class Switch:
    """A responder that answers 503 while ``down`` (an outage), else passes to the emulator."""

    def __init__(self, inner):
        self.inner, self.down = inner, False

    def __call__(self, request):
        return Response(503, "Service Unavailable", "text/plain") if self.down else self.inner(request)


# --- the year ---------------------------------------------------------------------------------

@pytest.fixture
def fake_model(monkeypatch, tmp_path):
    import bot.ranking.embedder
    monkeypatch.setattr(bot.ranking.embedder, "load_embedder", lambda name="": FakeEmbedder())
    monkeypatch.setenv("SPSBOT_CACHE_DIR", str(tmp_path / "cache"))


def test_a_year_of_weekly_runs_loses_nothing_and_repeats_nothing(tmp_path, monkeypatch, fake_model):
    config_path = tmp_path / "spsbot.toml"
    config_path.write_text(CONFIG, encoding="utf-8")
    query = load_config(config_path, env={}).topic.pubmed_query
    year = Year(query)
    eutils = Switch(eutils_responder(year.articles(), match_terms=True))
    ctgov = Switch(ctgov_responder(year.studies, match_queries=False))
    db_path = tmp_path / "year.db"
    db = open_db(db_path)
    ever_relevant: set[str] = set()
    harness: list[str] = []            # what went wrong with the year itself (reported with the rest)
    notes: dict[int, list[str]] = {}   # week -> the notes of the digests built that week (bodies are pruned later)
    with ExitStack() as stack:
        eutils_server = stack.enter_context(LocalServer(eutils))
        ctgov_server = stack.enter_context(LocalServer(ctgov))
        smtp = stack.enter_context(SmtpServer())
        env = {"SPSBOT_EUTILS_URL": eutils_server.url + "/entrez/eutils", "SPSBOT_CTGOV_URL": ctgov_server.url,
               "SPSBOT_SMTP_URL": smtp.url}
        for week in range(WEEKS):
            monkeypatch.setenv("SPSBOT_NOW", stamp(week))
            config = load_config(config_path, env={**env, "SPSBOT_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"}
                                 if week in SMTP_DOWN else env)
            for email, spec in SUBSCRIBERS.items():
                if spec["week"] == week:
                    add_subscriber(db, email, valid_themes=config.theme_names, max_items=spec.get("max_items"))
            if week in NO_RUN:
                continue
            eutils.down, ctgov.down = week in PUBMED_DOWN, week in CTGOV_DOWN
            if week == KILL_MID_SEND:
                killed = _run_in_a_subprocess_killed_mid_send(db_path, config_path, env, week)
                if killed.returncode != -9:   # it dies before its second message: were there two to send?
                    harness.append(f"week {week}: the run was not killed mid-send (exit {killed.returncode}; "
                                   f"fewer than two digests to send?) {killed.stderr[-300:]}")
            else:
                client = pubmed.configured_client(config, env={}, min_interval=0, backoff=0, max_retries=1)
                run_weekly(db, config, fetch_options={"pubmed": {"client": client},
                                                      "clinicaltrials": {"min_interval": 0, "backoff": 0}})
            ever_relevant |= {r[0] for r in db.execute("select item_id from scores where relevant = 1")}
            notes[week] = [n for (data,) in db.execute("select data from digests where subscriber_id is not null "
                                                       "and created_at = ?", [stamp(week)])
                           for n in json.loads(data or "{}").get("notes", [])]
        received = {email: [m for m in smtp.messages if m["To"] == email] for email in SUBSCRIBERS}
        final_truth = set(eutils.inner.search(query))
    report = harness + _audit(db, year, ever_relevant, received, final_truth) + _outage_lines(notes)
    assert not report, "the year lost or repeated:\n  " + "\n  ".join(report)


def _run_in_a_subprocess_killed_mid_send(db_path: Path, config_path: Path, env: dict, week: int):
    script = db_path.parent / "run_week.py"
    script.write_text(SUBPROCESS.format(tests=str(Path(__file__).parent)), encoding="utf-8")
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("SPSBOT_", "NCBI_"))}
    child_env.update(env, SPSBOT_NOW=stamp(week), SPSBOT_CRASH_AT="send:before_smtp@2", HF_HUB_OFFLINE="1",
                     SPSBOT_CACHE_DIR=str(db_path.parent / "cache"))
    return subprocess.run([sys.executable, str(script), str(db_path), str(config_path)], env=child_env,
                          capture_output=True, text=True, timeout=120)


# --- what each subscriber got, against the story ------------------------------------------------

def _audit(db, year: Year, ever_relevant: set[str], received: dict, final_truth: set[str]) -> list[str]:
    problems: list[str] = []
    stored = {r["id"]: r for r in db.query("select id, pmid, nct_id, kind, first_seen, pub_date, pub_types, mesh "
                                           "from items")}
    # Fetch: every record the emulator holds in the topic at the end is stored, as its latest version.
    for pmid in sorted(final_truth):
        row = stored.get(f"pmid:{pmid}")
        if row is None:
            why = ("added late, Entrez date back-dated" if pmid in year.late else
                   "matches only once its MeSH was added" if pmid == year.mesh_pmid else "")
            problems.append(f"fetch: pmid:{pmid} never stored ({why or 'in the topic'})")
    retracted = stored.get(f"pmid:{year.retracted_pmid}")
    if retracted and "Retracted Publication" not in (retracted["pub_types"] or ""):
        problems.append(f"fetch: the retraction of pmid:{year.retracted_pmid} was never read")
    # Trials: every version posted is recorded once (one change event set per version).
    versions: dict[str, int] = {}
    for study in year.studies:
        nct = study["protocolSection"]["identificationModule"]["nctId"]
        versions[nct] = versions.get(nct, 0) + 1
    for nct, count in sorted(versions.items()):
        recorded = db.execute("select count(distinct version_id) from trial_changes where nct_id = ?",
                              [nct]).fetchone()[0]
        if recorded != count - 1:
            problems.append(f"trials: {nct} has {count - 1} later version(s), {recorded} recorded as changes")
        if f"nct:{nct}" not in stored:
            problems.append(f"trials: {nct} never stored")

    final_relevant = {r[0] for r in db.execute("select item_id from scores where relevant = 1")}
    changes = {f"change:{r[0]}": (r[1], r[2]) for r in db.execute("select id, nct_id, detected_at from trial_changes")}
    for email, spec in SUBSCRIBERS.items():
        sub_id = db.execute("select id from subscribers where email = ?", [email]).fetchone()[0]
        # a first digest covers the last 7 days, the day of its run included (its header's period)
        joined = (day(spec["week"]) - timedelta(days=6)).strftime("%Y/%m/%d")
        delivered = [r[0] for r in db.execute(
            "select di.item_id from digest_items di join deliveries dl on dl.digest_id = di.digest_id "
            "where dl.subscriber_id = ? and dl.status = 'sent'", [sub_id])]
        counts: dict[str, int] = {}
        for key in delivered:
            counts[key] = counts.get(key, 0) + 1
        problems += [f"{email}: {key} delivered {n} times" for key, n in sorted(counts.items()) if n > 1]
        news = {f"pmid:{p}" for p in year.versions if (year.news_day(p) or "9999") >= joined}
        news |= {f"nct:{s['protocolSection']['identificationModule']['nctId']}" for s in year.studies
                 if _first_posted(s).replace("-", "/") >= joined}
        got = {k for k in counts if k.startswith(("pmid:", "nct:"))}
        # never stored at all (the fetch lost it): owed too, whatever the ranker would have said
        unstored = {f"pmid:{p}" for p in final_truth} - set(stored)
        missing = sorted(((final_relevant & news & set(stored)) | (unstored & news)) - got)
        cap = spec.get("max_items")
        if cap:  # over the cap, items wait: only what the last digest announced may still be owed
            last = json.loads(db.execute("select data from digests where subscriber_id = ? order by id desc limit 1",
                                         [sub_id]).fetchone()[0])
            owed = last.get("more", 0)
            if len(missing) > owed:
                problems.append(f"{email}: {len(missing)} relevant item(s) never sent, the last digest announced "
                                f"{owed} more: {', '.join(missing[:12])}")
        else:
            problems += [f"{email}: {key} never sent ({_why(key, year)})" for key in missing]
        for key in sorted(got - (ever_relevant & news) - _pub_dated_since(stored, joined)):
            problems.append(f"{email}: {key} sent but it was not news to them (joined {joined})")
        for key, (nct, detected) in sorted(changes.items()):
            if detected[:10].replace("-", "/") >= joined and f"nct:{nct}" in final_relevant and key not in counts:
                problems.append(f"{email}: trial change {key} ({nct}, detected {detected[:10]}) never sent")
        notice = f"notice:pmid:{year.retracted_pmid}:retracted"
        if f"pmid:{year.retracted_pmid}" in got and counts.get(notice) != 1:
            problems.append(f"{email}: received pmid:{year.retracted_pmid}, retracted in week {RETRACTED}, "
                            f"but no retraction notice")
        if spec["week"] == 0 and not cap:  # the story's hard cases did reach the subscriber of the whole year
            special = [f"pmid:{p}" for p in year.late] + [f"pmid:{year.mesh_pmid}", f"pmid:{year.outage_pmid}",
                                                           "nct:NCT07000001"]
            problems += [f"{email}: {key} never sent ({_why(key, year)})" for key in special
                         if key not in got and key not in missing]
            if sum(k.startswith("change:") for k in counts) < 4 or len(got) < 30:
                problems.append(f"{email}: only {len(got)} items and {sum(k.startswith('change:') for k in counts)}"
                                f" trial changes in a year: the replay is not exercising the pipeline")
        sent_rows = db.execute("select count(*) from deliveries where subscriber_id = ? and status = 'sent'",
                               [sub_id]).fetchone()[0]
        ids = [m["Message-ID"] for m in received[email]]
        if len(ids) != sent_rows or len(set(ids)) != len(ids):
            problems.append(f"{email}: {len(ids)} e-mails received ({len(set(ids))} distinct) for {sent_rows} "
                            f"deliveries marked sent")
    return problems


def _first_posted(study: dict) -> str:
    return study["protocolSection"]["statusModule"]["studyFirstPostDateStruct"]["date"]


def _pub_dated_since(stored: dict, joined: str) -> set[str]:
    """Items a digest may also hold: published (print date, to the month at least) since the
    subscriber joined, though indexed earlier."""
    from bot.digest.entries import date_upper
    return {key for key, row in stored.items()
            if len(row["pub_date"] or "") >= 7 and date_upper(row["pub_date"]) >= joined.replace("/", "-")}


def _why(key: str, year: Year) -> str:
    pmid = key.split(":", 1)[1]
    if pmid in year.late:
        return f"added late in week {year.late[pmid]}, Entrez date back-dated"
    if pmid == year.outage_pmid:
        return f"created while PubMed could not be reached (weeks {sorted(PUBMED_DOWN)})"
    if pmid == year.mesh_pmid:
        return f"matches only since its MeSH was added in week {MESH_ADDED}"
    news = year.news_day(pmid) if key.startswith("pmid:") else None
    if news:
        week = (date.fromisoformat(news.replace("/", "-")) - START).days // 7 + 1
        return f"created {news}, fetched in week {week}" + (" (PubMed outage)" if week in PUBMED_DOWN else
                                                              " (no run)" if week in NO_RUN else "")
    return "new"


def _outage_lines(notes: dict[int, list[str]]) -> list[str]:
    """The digests built while a source was down say so, in one line; once it is back, they don't."""
    problems = []
    for name, weeks in (("PubMed", PUBMED_DOWN), ("ClinicalTrials.gov", CTGOV_DOWN)):
        during = [n for w in weeks for n in notes.get(w, []) if n.startswith(f"{name} could not be reached on")]
        if not during:
            problems.append(f"notes: no digest built during the {name} outage (weeks {sorted(weeks)}) said so")
        after = [n for n in notes.get(max(weeks) + 1, []) if n.startswith(name)]
        if after:
            problems.append(f"notes: the week after the {name} outage still said: {after[0]}")
    return problems

