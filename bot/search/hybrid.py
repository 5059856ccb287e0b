"""Hybrid search over the local store: SQLite FTS5 (BM25) fused with embedding similarity.

``search(db, '"intrathecal baclofen" -review')`` parses the query into words, quoted phrases, ``-term``
exclusions and upper-case ``OR`` groups; builds a safe FTS5 MATCH expression from them (every token
quoted, passed as a bound parameter, so nothing the user types is FTS or SQL syntax); ranks by
BM25; ranks the cached embedding vectors by cosine similarity to the query; and fuses the two
rankings with reciprocal-rank fusion (RRF, Cormack et al. 2009): ``sum 1 / (k + rank)``. A
paraphrase that shares no word with the query is still found by the embedding side.

An item's vector is the normalised mean of its sentence vectors (the ranker's doc vector; the
sentence vectors come from the ranker's ``embeddings`` cache, and the mean is cached too, see
``bot.store.search``). Items whose sentences were never embedded are embedded on the fly when they
are few (``EMBED_ON_THE_FLY_MAX``), else they are reached through FTS only, and the result's
``notes`` say so.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sqlite_utils

from bot.links import doi_url, pubmed_url, trial_url
from bot.ranking.cached_embedder import CachedEmbedder
from bot.store import db_file, loads
from bot.store import search as sql
from bot.store.ranking import EmbeddingCache
from bot.store.search import Filters
from bot.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["Filters", "ParsedQuery", "SearchError", "SearchHits", "TooBroad", "parse_query", "fts_expression",
           "search", "item_sentences", "item_url", "rrf_fuse", "vector_index"]

RRF_K = 60                   # the constant from the RRF paper; damps the weight of the very top ranks
CANDIDATE_POOL = 200         # how deep each ranking is read before fusing
MIN_SIMILARITY = 0.25        # below this cosine, an embedding-only hit is noise for MiniLM-sized models
EMBED_ON_THE_FLY_MAX = 2000  # more missing vectors than this: leave them to `spsbot rank`
# FTS5's time grows quadratically with the number of terms (800 OR'ed words: 0.5 s; 5,000: 18 s):
# a query is refused above these, long before it could pin a core.
MAX_QUERY_TERMS = 64
MAX_QUERY_CHARS = 2000
# A prefix (`ritux*`) is expanded by FTS5 into every indexed word that starts with it, and each
# word's list of items is merged: `a*` is thousands of words and most of the store, 64 of them
# took 27-39 s on 20,000 items. A few prefixes of a few letters each keep the expansion small.
MAX_PREFIX_TERMS = 4
MIN_PREFIX_CHARS = 3
# Words a question is made of that say nothing about its subject ("can exercise help my
# stiffness"): left out of a plain question's word search (``search(any_word=True)``).
STOP_WORDS = frozenset("""a about after all also am an and any anything are as at be been being but by can could
did do does doing for from get had has have help helps how i if in into is it its me my no not of on or our please
should so some such than that the their them there these they this those to was we were what when where which who
why will with would you your""".split())


class SearchError(UserError, ValueError):
    """A query or filter that cannot be searched; str() is one line for the user."""


class TooBroad(SearchError):
    """A query that would cost too much to answer (prefixes, or the time budget ran out)."""


# --- query parsing -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    text: str
    phrase: bool = False
    prefix: bool = False     # `ritux*`: match any word starting with it


@dataclass
class ParsedQuery:
    groups: list[list[Token]] = field(default_factory=list)   # OR of ANDs
    excluded: list[Token] = field(default_factory=list)

    @property
    def positive_text(self) -> str:
        """The query as prose, for the embedding side (no exclusions, no operators)."""
        return " ".join(t.text for group in self.groups for t in group)

    def is_plain(self) -> bool:
        """Bare words only: no "phrase", -exclusion, prefix* or OR."""
        return (len(self.groups) == 1 and not self.excluded
                and not any(t.phrase or t.prefix for t in self.groups[0]))

    def any_content_word(self) -> ParsedQuery:
        """A plain question as "any of its content words" (stop words left out; a query of stop
        words only keeps them all)."""
        words = [t for t in self.groups[0] if t.text.lower() not in STOP_WORDS] or self.groups[0]
        return ParsedQuery(groups=[[t] for t in dict.fromkeys(words)])

    def is_empty(self) -> bool:
        return not any(self.groups)


_TOKEN_RE = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def _clean_word(raw: str) -> tuple[str, bool]:
    """A bare word without FTS5 punctuation; (text, prefix)."""
    prefix = raw.endswith("*")
    text = raw.replace('"', " ").strip("*").strip()
    return text, prefix and bool(text)


def parse_query(query: str) -> ParsedQuery:
    """Words, "quoted phrases", -exclusions, -"excluded phrases", and upper-case OR between groups.

    Tokens with no letter or digit (``*``, ``(``, ``--``) are dropped: they carry nothing to match.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise SearchError(f"the query is too long ({len(query):,} characters; at most {MAX_QUERY_CHARS:,})")
    parsed = ParsedQuery(groups=[[]])
    # Control characters (a NUL ends an FTS5 string early) become spaces.
    query = "".join(c if c.isprintable() else " " for c in query)
    for match in _TOKEN_RE.finditer(query):
        negated, phrase, word = match.group(1), match.group(2), match.group(3)
        if word is not None:
            if word == "OR":
                if parsed.groups[-1]:
                    parsed.groups.append([])
                continue
            if word in ("AND", "NOT", "NEAR"):  # FTS operators typed as words: ignored, not obeyed
                continue
            negated = "-" if word.startswith("-") and len(word) > 1 else ""
            text, prefix = _clean_word(word[1:] if negated else word)
            token = Token(text, prefix=prefix)
        else:
            token = Token(" ".join(phrase.split()), phrase=True)
        if not any(c.isalnum() for c in token.text):
            continue
        (parsed.excluded if negated else parsed.groups[-1]).append(token)
    parsed.groups = [g for g in parsed.groups if g]
    terms = sum(len(g) for g in parsed.groups) + len(parsed.excluded)
    if terms > MAX_QUERY_TERMS:
        raise SearchError(f"the query is too long ({terms} words or phrases; at most {MAX_QUERY_TERMS})")
    _check_prefixes([t for group in parsed.groups for t in group] + parsed.excluded)
    return parsed


def _check_prefixes(tokens: list[Token]) -> None:
    prefixes = [t for t in tokens if t.prefix]
    if len(prefixes) > MAX_PREFIX_TERMS:
        raise TooBroad(f"the query is too broad ({len(prefixes)} words ending in *; at most {MAX_PREFIX_TERMS})")
    short = next((t for t in prefixes if sum(c.isalnum() for c in t.text) < MIN_PREFIX_CHARS), None)
    if short is not None:
        raise TooBroad(f"the query is too broad ({short.text}* matches too many words; give at least "
                       f"{MIN_PREFIX_CHARS} letters before a *)")


def _quote(token: Token) -> str:
    # Inside an FTS5 string only `"` is special, and it is doubled; the tokenizer splits the rest.
    return '"' + token.text.replace('"', '""') + '"' + ("*" if token.prefix else "")


def fts_expression(parsed: ParsedQuery) -> str:
    """The FTS5 MATCH string: every token quoted, so user input is never FTS syntax."""
    if parsed.is_empty():
        raise SearchError("the query has no words to search for (only exclusions or punctuation)")
    groups = [" ".join(_quote(t) for t in group) for group in parsed.groups]
    expression = "(" + " OR ".join(f"({g})" for g in groups) + ")"
    for token in parsed.excluded:
        expression += f" NOT {_quote(token)}"
    return expression


# --- embeddings ---------------------------------------------------------------------------------

def item_sentences(item: dict) -> list[str]:
    """What gets embedded for an item: the ranker's sentences (title, then the text's), so the
    ranker's cached vectors serve search too."""
    from bot.ranking.text import record_sentences
    from bot.ranking.records import record_for_ranking
    return record_sentences(record_for_ranking(item))


def load_default_embedder(config=None):
    """The ranker's embedder for a profile (the ranker's vectors, so its cache serves search), or
    the default one; nothing is loaded until the first ``encode``."""
    from bot.ranking.embedder import embedder_for, profile_embedder
    return profile_embedder(config) if config is not None else embedder_for({})


@dataclass
class VectorIndex:
    """Every item's doc vector as one matrix (rows aligned with ``rowids``)."""

    version: tuple
    rowids: np.ndarray
    matrix: np.ndarray
    missing: list[dict]   # items (rowid, id, title, abstract, content_hash) with no doc vector yet
    left_missing: str | None = None  # set once filling was tried: the note saying what was left


# In-process cache: repeated queries in one process (bench, a notebook, a server) reuse the matrix
# until the store's items or vectors change (see ``sql.data_version``).
_INDEX_CACHE: dict[tuple, VectorIndex] = {}


def _db_key(db: sqlite_utils.Database) -> str:
    path = db_file(db)
    return str(path) if path is not None else f"memory:{id(db)}"


def vector_index(db: sqlite_utils.Database, model: str) -> VectorIndex:
    """The matrix of cached doc vectors for ``model``, rebuilt only when the store changed."""
    key = (_db_key(db), model)
    version = sql.data_version(db, model)
    cached = _INDEX_CACHE.get(key)
    if cached is not None and cached.version == version:
        return cached
    rowids, matrix = sql.doc_vectors(db, model)
    index = VectorIndex(version, rowids, matrix, sql.items_without_doc_vector(db, model))
    _INDEX_CACHE.clear()  # one store at a time: a 100k x 384 matrix is 150 MB
    _INDEX_CACHE[key] = index
    return index


def _doc_vector(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    return (mean / (np.linalg.norm(mean) or 1.0)).astype(np.float32)


def _fill_missing(db, index: VectorIndex, embedder, notes: list[str], embed_max: int | None) -> VectorIndex:
    """Give items without a doc vector one: from the sentence vectors the ranker cached when it
    embedded them (no model needed), else by embedding them now if they are few."""
    if not index.missing:
        return index
    if index.left_missing:  # already tried in this process for this version of the store
        notes.append(index.left_missing)
        return index
    cached = CachedEmbedder(embedder, EmbeddingCache(db))
    passages = [item_sentences(item) for item in index.missing]
    vectors = cached.encode_passages(passages, embed=False)
    ready = [item for item, v in zip(index.missing, vectors) if v is not None]
    to_embed = [item for item, v in zip(index.missing, vectors) if v is None]
    embed_max = EMBED_ON_THE_FLY_MAX if embed_max is None else embed_max
    if len(to_embed) > embed_max:
        notes.append(f"{len(to_embed)} items have no cached vector (more than {embed_max}): "
                     "they are searched by words only; run `spsbot rank` to embed them")
        to_embed = []
    elif to_embed:
        notes.append(f"embedded {len(to_embed)} items that had no cached vector")
        todo = [i for i, v in enumerate(vectors) if v is None]
        try:  # cached as the ranker caches them: `spsbot rank` will not embed these again
            fresh = cached.encode_passages([passages[i] for i in todo])
        except sql.StoreError as e:  # a read-only store still searches; it re-embeds next time
            notes.append(f"could not cache the new vectors: {e}")
            fresh = CachedEmbedder(embedder).encode_passages([passages[i] for i in todo])
        for i, v in zip(todo, fresh):
            vectors[i] = v
    space = embedder.passage_space
    new = {item["content_hash"]: _doc_vector(v) for item, v in zip(index.missing, vectors) if v is not None}
    if new:
        try:
            sql.store_doc_vectors(db, space, new)
        except sql.StoreError as e:
            if not any(n.startswith("could not cache") for n in notes):
                notes.append(f"could not cache the new vectors: {e}")
    done = ready + to_embed
    if not done:
        index.left_missing = notes[-1]
        return index
    done_rowids = {item["rowid"] for item in done}
    extra = np.stack([new[item["content_hash"]] for item in done])
    filled = VectorIndex(sql.data_version(db, space),
                         np.concatenate([index.rowids, [item["rowid"] for item in done]]).astype(np.int64),
                         np.vstack([index.matrix, extra]) if len(index.rowids) else extra,
                         [item for item in index.missing if item["rowid"] not in done_rowids])
    _INDEX_CACHE[(_db_key(db), space)] = filled
    return filled


# --- fusion and the search itself ---------------------------------------------------------------

def rrf_fuse(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of several best-first lists of keys -> (key, score) best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass
class SearchHits:
    """The answer to one search: its hits (``hit_from_item``'s shape) best first, and notes on
    how it was done (vectors missing, embedded, live sources' counts)."""

    query: str
    hits: list[dict]
    notes: list[str] = field(default_factory=list)
    semantic: bool = True
    match: str = ""     # the FTS5 expression the words were searched with (for snippets)


def item_url(item: dict) -> str:
    """A link a person can open: the stored URL, else PubMed / ClinicalTrials.gov / doi.org."""
    if item.get("url"):
        return item["url"]
    if item.get("nct_id") and item.get("kind") == "trial":
        return trial_url(item["nct_id"])
    if item.get("pmid"):
        return pubmed_url(item["pmid"])
    if item.get("doi"):
        return doi_url(item["doi"])
    return ""


def hit_from_item(item: dict, score: float | None = None, **extra) -> dict:
    """The public shape of one result (``--json`` prints a list of these)."""
    year = item.get("pub_year")
    if not year:
        date = item.get("pub_date") or item.get("entrez_date") or ""
        year = int(date[:4]) if date[:4].isdigit() else None
    status = None
    if item.get("kind") == "trial":
        status = loads(item.get("extra"), {}).get("overall_status")
    hit = {
        "id": item["id"], "kind": item.get("kind"), "title": item.get("title"), "year": year,
        "date": item.get("pub_date") or item.get("entrez_date"), "journal": item.get("journal"),
        "pub_types": loads(item.get("pub_types"), []), "status": status,
        "labels": loads(item.get("labels"), []), "relevance": item.get("relevance"),
        "score": round(score, 6) if score is not None else None, "url": item_url(item),
    }
    hit.update(extra)
    return hit


def search(db: sqlite_utils.Database, query: str, filters: Filters | None = None, *, limit: int = 20,
           semantic: bool = True, embedder=None, embedder_loader: Callable[[], object] | None = None,
           min_similarity: float = MIN_SIMILARITY, budget: float | None = None,
           embed_max: int | None = None, any_word: bool = False) -> SearchHits:
    """Hybrid search of the local store. ``semantic=False`` never touches an embedder.

    ``embedder`` (or ``embedder_loader``, called only when needed) has ``model_name`` and
    ``encode(texts) -> float32 L2-normalised rows``. Raises SearchError for an unusable query,
    TooBroad when its SQL runs past ``budget`` seconds (enforced inside SQLite). ``embed_max``:
    embed at most this many items that have no vector yet (default ``EMBED_ON_THE_FLY_MAX``; the
    rest are found by words only). ``any_word``: a query of bare words (a question) matches items
    with any of its content words, ranked with the semantic side; quotes, -exclusions or OR make
    every word count again.
    """
    filters = filters or Filters()
    parsed = parse_query(query)
    match = fts_expression(parsed.any_content_word() if any_word and parsed.is_plain() else parsed)
    result = SearchHits(query=query, hits=[], semantic=semantic, match=match)
    index = None
    if semantic:
        embedder = embedder or (embedder_loader or load_default_embedder)()
        # the whole store's vectors, cached per process (and completed for items without one):
        # built outside the budget, once after each change of the store, so the budget bounds
        # what this query costs and never leaves the cache half-built
        index = _fill_missing(db, vector_index(db, embedder.passage_space), embedder, result.notes, embed_max)
    try:
        with sql.time_budget(db, budget):
            _search(db, parsed, match, filters, limit, embedder, index, min_similarity, result)
    except sql.BudgetSpent:
        raise TooBroad(f"the query is too broad to answer within {budget:g} s; narrow it: fewer words "
                       "ending in *, longer word starts, or a \"quoted phrase\"") from None
    for note in result.notes:
        log.debug("search: %s", note)
    return result


def _search(db, parsed: ParsedQuery, match: str, filters: Filters, limit: int, embedder, index,
            min_similarity: float, result: SearchHits) -> None:
    pool = max(CANDIDATE_POOL, limit * 3)
    try:
        fts = sql.fts_rowids(db, match, filters, pool)
    except sql.MatchError as e:  # cannot happen with quoted tokens; never a traceback anyway
        raise SearchError(f"cannot search for {result.query!r}: {e}") from None
    rankings = [[rowid for rowid, _ in fts]]
    fts_rank = {rowid: rank for rank, (rowid, _) in enumerate(fts, start=1)}
    similarity: dict[int, float] = {}
    if index is not None:
        similarity = _semantic_ranking(db, parsed, filters, embedder, index, pool, min_similarity, result.notes)
        rankings.append(list(similarity))
    fused = rrf_fuse(rankings)[:limit]
    items = sql.items_by_rowid(db, [rowid for rowid, _ in fused])
    for rowid, score in fused:
        if rowid not in items:  # deleted by hand since the vector matrix was loaded
            continue
        sim = similarity.get(rowid)
        result.hits.append(hit_from_item(items[rowid], score, fts_rank=fts_rank.get(rowid),
                                         similarity=round(sim, 4) if sim is not None else None,
                                         origin="store"))


def _semantic_ranking(db, parsed: ParsedQuery, filters: Filters, embedder, index: VectorIndex, pool: int,
                      min_similarity: float, notes: list[str]) -> dict[int, float]:
    """rowid -> cosine similarity, best first, for items passing the filters and exclusions."""
    if not len(index.rowids):
        notes.append("no embedding vectors in the store: words only")
        return {}
    query_vector = np.asarray(embedder.encode([parsed.positive_text]), dtype=np.float32)[0]
    sims = index.matrix @ query_vector
    keep = sims >= min_similarity
    if parsed.excluded:
        excluded = fts_expression(ParsedQuery(groups=[[t] for t in parsed.excluded]))
        keep &= ~np.isin(index.rowids, np.fromiter(sql.matching_rowids(db, excluded), dtype=np.int64))
    candidates = np.flatnonzero(keep)
    if filters.is_empty():
        if len(candidates) > pool:
            candidates = candidates[np.argpartition(-sims[candidates], pool - 1)[:pool]]
        order = candidates[np.argsort(-sims[candidates], kind="stable")]
    else:
        order = _filtered_best(db, filters, index.rowids, candidates[np.argsort(-sims[candidates], kind="stable")],
                               pool)
    return {int(index.rowids[i]): float(sims[i]) for i in order}


def _filtered_best(db, filters: Filters, rowids: np.ndarray, ordered: np.ndarray, pool: int,
                   block: int = 1000) -> list[int]:
    """The first ``pool`` of the best-first candidate positions whose items pass the filters,
    checking them a slice at a time (filtering all 100,000 items up front costs ~200 ms)."""
    chosen: list[int] = []
    for start in range(0, len(ordered), block):
        positions = ordered[start:start + block]
        passing = sql.passing_rowids(db, filters, rowids[positions].tolist())
        chosen.extend(int(i) for i in positions if int(rowids[i]) in passing)
        if len(chosen) >= pool:
            break
    return chosen[:pool]
