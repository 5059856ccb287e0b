"""The ranker: records in, calibrated relevance and theme scores with explanations out.

    ranker = Ranker(config, profile_embedder(config))
    results = ranker.score(records)   # [{"id", "relevance", "relevant", "themes", "labels", "why", "evidence"}]

The ranker sees an embedder, never a database: the rank stage (``bot.ranking.stage``) hands it
one wrapped by the store's embedding cache (``CachedEmbedder``) and a model folder beside it.

With labelled examples (the profile's seed set, curator feedback) each target gets the
supervised layer in ``model.py``; without them (a new topic with no seed file) scores come from
similarity and terms alone. The bundled SPS seed ships as derived numbers (``seed.py``: feature
matrix, TF-IDF rows and vocabulary, labels), usable only while the configured targets and model
are the ones it was computed for. Trained models are cached on disk by the hash of everything they
were trained from, so a small ``spsbot score`` does not retrain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bot.ranking import features as F
from bot.ranking import feedback as FB
from bot.ranking import model as M
from bot.ranking import selftrain as S
from bot.ranking import weak as W
from bot.ranking.cached_embedder import CachedEmbedder
from bot.ranking.text import EMBED_BUDGET_CHARS
from bot.ranking.transfer import bundled_themes, generic_rows, reader_estimate, theme_reader

log = logging.getLogger(__name__)

# Bump when features, model or output change: every stored score is then recomputed.
RANKER_VERSION = "1"
# Bump when only the explanation changes (evidence sentences, why): stored scores are recomputed,
# but the feature rows (and so the bundled seed, whose fingerprint holds RANKER_VERSION) stay valid.
EXPLAIN_VERSION = "4"   # 2: no section labels or journal boilerplate as evidence; 3: unlabelled targets
                        # read with topic evidence and the pooled theme reader (bot.ranking.transfer);
                        # 4: names only from the query's OR alternatives, a record's MeSH heading names the
                        # topic, one name credit however many synonyms, exclusion criteria, names across dashes
FEEDBACK_WEIGHT = 5.0      # a curator's judgement counts as much as five seed examples
VOTE_WEIGHT = 1.0          # default [ranking] vote_weight: one net subscriber vote = one seed example
REVIEWED_ENOUGH = 25       # curator relevance labels after which a seedless profile stops warning
_CHUNK = 200               # records embedded per call (one progress step)
_WHY_SENTENCE_CHARS = 110


def cache_dir(database: Path | None = None) -> Path:
    """Where trained models are cached: env SPSBOT_CACHE_DIR, else ``cache/`` beside the
    ``database`` file (the one place a deployment already lets spsbot write: the systemd unit's
    ProtectHome=yes hides ~/.cache), else (no database: ``spsbot score``) the user cache dir."""
    if os.environ.get("SPSBOT_CACHE_DIR"):
        return Path(os.environ["SPSBOT_CACHE_DIR"])
    if database is not None:
        return Path(database).parent / "cache"
    import platformdirs
    return Path(platformdirs.user_cache_dir("spsbot"))


# --- the seed set ---------------------------------------------------------------------------

def _bundled(name: str):
    return resources.files("bot.profiles").joinpath(name)


def bundled_topic_name() -> str:
    import tomllib
    return tomllib.loads(_bundled("sps.toml").read_text(encoding="utf-8"))["topic"]["name"]


def seed_setting(config) -> str:
    """``[ranking] seed``: a JSON Lines path, "none", or "" (the bundled seed, for the bundled topic)."""
    return (config.ranking.get("seed") or "").strip()


def uses_bundled_seed(config) -> bool:
    """Whether the bundled SPS seed applies: no seed setting and the topic is the bundled one
    (another topic's ranker must not learn SPS labels)."""
    return seed_setting(config) == "" and config.topic.name == bundled_topic_name()


def has_labelled_seed(config) -> bool:
    """Whether the profile has labelled seed examples: the bundled seed, or a seed file of its own."""
    return uses_bundled_seed(config) or seed_setting(config).lower() not in ("", "none")


def load_seed(config) -> list[dict]:
    """Labelled seed examples *with their texts*: those of a user's ``[ranking] seed`` file.

    Empty for "none" and for the bundled seed, which ships no texts (see ``load_bundle``).
    """
    setting = seed_setting(config)
    if not setting or setting.lower() == "none":
        return []
    text = Path(setting).expanduser().read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def targets_fingerprint(targets: list[F.Target], model_name: str) -> str:
    """Hash of everything a record's feature row depends on besides the record itself: the
    ranker version, the embedding model and budget, and the targets built from the configuration
    (topic name, description, examples, negatives, query phrases; each theme's description,
    examples, include and exclude terms). The bundled seed's rows are valid only under its own."""
    parts = {"version": RANKER_VERSION, "model": model_name, "embed_budget": EMBED_BUDGET_CHARS,
             "targets": [[t.name, t.prototypes, sorted(t.terms), sorted(t.exclude), t.negatives]
                         for t in targets]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def target_fingerprint(target: F.Target | None, model_name: str) -> str:
    """Hash of what one target's feature columns depend on (its phrases and terms, the ranker
    version, the model and budget); ``None`` = the shared columns (version, model, budget only)."""
    parts = {"version": RANKER_VERSION, "model": model_name, "embed_budget": EMBED_BUDGET_CHARS,
             "target": None if target is None else [target.name, target.prototypes, sorted(target.terms),
                                                    sorted(target.exclude), target.negatives]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class SeedFit:
    """What of the bundled seed applies to a configuration: the targets configured exactly as
    the bundle's (``kept``: their seed rows and labels stay valid), those edited or new
    (``dropped``: no seed for them), and where the kept features sit in the bundle's matrix
    (``seed_columns``) and in this configuration's (``config_columns``), in the same order."""

    bundle: object
    kept: list[str]
    dropped: list[str]
    seed_columns: np.ndarray
    config_columns: np.ndarray

    @property
    def whole(self) -> bool:
        return not self.dropped and np.array_equal(self.seed_columns, self.config_columns)


def load_bundle(config, targets: list[F.Target], model_name: str) -> tuple[SeedFit | None, str | None]:
    """How much of the bundled seed applies here, and a warning (what it means for quality)
    when some or all of it does not. (None, None) when the bundle is not meant for this profile
    (another topic, or a seed file of the user's, or seed = "none")."""
    if not uses_bundled_seed(config):
        return None, None
    from bot.config import load_config
    from bot.ranking.seed import bundled_seed
    bundle = bundled_seed(model_name)
    if bundle is None:
        return None, None
    own = F.build_targets(load_config(None, env={}))  # the bundled profile the rows were computed for
    if bundle.fingerprint != targets_fingerprint(own, bundle.model):
        return None, ("the bundled SPS seed does not match the bundled profile (rebuild it with "
                      "bench/ranking_seed.py): ranking without it, from similarity, terms and curator labels only")
    if model_name != bundle.model:
        return None, (f"the bundled SPS seed was computed with {bundle.model}, not {model_name}: every target is "
                      f"scored from similarity, terms and curator labels only, with lower precision (README, "
                      f"'Another disease'); label items with `spsbot label --review`")
    own_layout, layout = F.column_layout(own), F.column_layout(targets)
    own_prints = {t.name: target_fingerprint(t, model_name) for t in own}
    kept = [t.name for t in targets if own_prints.get(t.name) == target_fingerprint(t, model_name)]
    dropped = [t.name for t in targets if t.name not in kept]
    if not kept:
        return None, ("the bundled SPS seed fits none of the configured targets (the topic and every theme "
                      "were edited): everything is scored from similarity, terms and curator labels only, with "
                      "lower precision (README, 'Another disease'); label items with `spsbot label --review`")
    blocks = [*kept, F.SHARED]
    fit = SeedFit(bundle, kept, dropped, np.concatenate([own_layout[n] for n in blocks]),
                  np.concatenate([layout[n] for n in blocks]))
    warning = None
    if dropped:
        names = ", ".join(dropped)
        warning = (f"the bundled SPS seed no longer fits {names} (edited or new in the configuration): "
                   f"{'it is' if len(dropped) == 1 else 'they are'} scored from similarity, terms and curator "
                   f"labels only, with lower precision (README, 'Another disease'); {', '.join(kept)} "
                   f"{'keeps' if len(kept) == 1 else 'keep'} the seed. Label items with `spsbot label --review`, "
                   f"or restore the bundled definition")
    return fit, warning


def labelled_rows(examples: list[dict], target_names: list[str],
                  weights: list[float] | None = None) -> tuple[dict, np.ndarray]:
    """Training labels per target from labelled examples.

    An example says ``relevant_to_sps`` (2 = about the topic) or ``relevant`` (bool), and
    ``themes`` {name: 0/1}; what it does not say is left out of that target's training.
    Returns ({target: (y, mask)}, weights).
    """
    n = len(examples)
    labels = {name: (np.zeros(n, dtype=int), np.zeros(n, dtype=bool)) for name in target_names}
    for i, ex in enumerate(examples):
        relevant = ex.get("relevant")
        if relevant is None and "relevant_to_sps" in ex:
            relevant = ex["relevant_to_sps"] == 2
        if relevant is not None and "relevance" in labels:
            labels["relevance"][0][i], labels["relevance"][1][i] = int(bool(relevant)), True
        for theme, flag in (ex.get("themes") or {}).items():
            if theme in labels and theme != "relevance" and flag is not None:
                labels[theme][0][i], labels[theme][1][i] = int(bool(flag)), True
    w = np.asarray(weights if weights is not None else [1.0] * n, dtype=float)
    return labels, w


def feedback_examples(feedback: list[dict], records: dict[str, dict]) -> list[dict]:
    """Curator judgements as labelled examples (one per judged item whose record we have), each
    with the curator's ``weight``."""
    by_item: dict[str, dict] = {}
    for f in feedback:
        record = records.get(f["item_id"])
        if record is None:
            continue
        ex = by_item.setdefault(f["item_id"], {**record, "themes": {}, "weight": FEEDBACK_WEIGHT,
                                               "source": "curator"})
        if f.get("theme"):
            ex["themes"][f["theme"]] = int(f["label"] == "relevant")
        else:
            ex["relevant"] = f["label"] == "relevant"
    return list(by_item.values())


def vote_examples(votes: dict[str, tuple[int, int]], records: dict[str, dict], weight: float,
                  decided: set[str]) -> list[dict]:
    """Subscribers' relevant / not relevant votes as relevance examples: one per item whose votes
    lean one way, weighing ``weight`` per net vote (never more than one curator label). Items in
    ``decided`` (a curator judged their relevance) and ties give none: a curator label decides."""
    examples = []
    for item_id, (up, down) in sorted(votes.items()):
        record = records.get(item_id)
        if record is None or item_id in decided or up == down or weight <= 0:
            continue
        examples.append({**record, "themes": {}, "relevant": up > down, "source": "votes",
                         "weight": min(weight * abs(up - down), FEEDBACK_WEIGHT)})
    return examples


def feedback_weights(feedback: list[dict]) -> list[float]:
    """The training weight of each feedback example (curator labels carry FEEDBACK_WEIGHT)."""
    return [float(ex.get("weight", FEEDBACK_WEIGHT)) for ex in feedback]


# --- the trained-model cache --------------------------------------------------------------

def _read_cached_model(path: Path):
    """The model pickled at ``path``, or None (missing, unreadable or stale: just retrain)."""
    try:
        if not path.is_file():
            return None
        with path.open("rb") as f:
            return pickle.load(f)
    except Exception as e:  # noqa: BLE001 - a stale/corrupt/unreadable cache is just retrained
        log.warning("ignoring unreadable model cache %s: %s", path, e)
        return None


def _write_cached_model(path: Path, trained) -> None:
    """Keep the trained model for the next process; a cache that cannot be written (read-only
    folder, full disk) costs a retrain next time, never the run."""
    tmp = path.with_suffix(".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            pickle.dump(trained, f)
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    except OSError as e:
        log.warning("cannot write the trained-model cache %s (%s): the ranker was trained in memory and "
                    "will be trained again next run (set SPSBOT_CACHE_DIR to a writable folder)", path.parent, e)


# --- the ranker -----------------------------------------------------------------------------

class Ranker:
    """Scores records for one configuration. ``seed=None`` loads the profile's seed (a user's
    seed file, or the bundled derived seed when it applies); ``seed=[...]`` uses those examples
    and no bundle; ``feedback`` is a list of labelled examples (see ``feedback_examples``).

    ``embedder`` may be a ``CachedEmbedder`` (vectors from a cache); a plain one is wrapped
    without a cache, so a text repeated within a call is still embedded once. Trained models
    are cached in ``models_dir`` (default: ``cache_dir()/models``)."""

    def __init__(self, config, embedder, *, models_dir: Path | None = None, seed: list[dict] | None = None,
                 feedback: list[dict] | None = None, weak: list[dict] | None = None,
                 unlabelled: list[dict] | None = None):
        self.config = config
        self.embedder = embedder
        self._cached = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        self.models_dir = models_dir
        self.seed = load_seed(config) if seed is None else seed
        self.feedback = feedback or []
        self.targets = F.build_targets(config)
        self.target_names = [t.name for t in self.targets]
        self.seed_fit, self.seed_warning = (load_bundle(config, self.targets, embedder.passage_space)
                                            if seed is None else (None, None))
        self.bundle = self.seed_fit.bundle if self.seed_fit else None
        # Weak labels (NLM's MeSH indexing, ``weak.py``) state how well relevance does where no human
        # seed says; nothing learns from them (learning from them lowered AUC: bench/weak_labels.py).
        self.weak = weak or []
        self.unlabelled = unlabelled or []  # the store's records: self-training for unlabelled themes
        self._weak_warning = False
        if seed is None and not self.seed_fit and not self.seed and not self.seed_warning \
                and seed_setting(config).lower() != "none":
            judged = sum(1 for f in self.feedback if f.get("relevant") is not None)
            if judged < REVIEWED_ENOUGH and W.enough(self.weak):
                self._weak_warning = True  # says the estimate, from the stored decisions (seed_state)
            elif judged < REVIEWED_ENOUGH:
                # Only a store has weak labels to count (``spsbot score`` reads none).
                self.seed_warning = self._no_seed_warning(W.describe(self.weak, None, config.topic.name)
                                                          if weak is not None else None)
        if self.seed_warning:
            log.warning("ranker: %s", self.seed_warning)
        self.profile_warning = F.profile_warning(config)
        if self.profile_warning:
            log.warning("ranker: %s", self.profile_warning)
        self._targets_embedded = False
        self._model: M.TrainedModel | None = None
        self._judged_items: FB.Judged | None = None

    def _no_seed_warning(self, relevance: str | None) -> str:
        judged = sum(1 for f in self.feedback if f.get("relevant") is not None)
        relevance = f"{relevance}; " if relevance else ""
        pool = self._self_training_pool()
        own = f", then self-trained on the store's {len(pool)} most recent records" if pool else ""
        return (f"no labelled examples for {self.config.topic.name} besides {judged} curator judgement(s): "
                f"{relevance}{expected_quality(self.embedder.passage_space)}{own}, moved by the nearest judged items "
                f"(README, 'Another disease'); review {REVIEWED_ENOUGH}-50 items with `spsbot label --review`")

    # vectors ------------------------------------------------------------------------------
    def vectors(self, texts: list[str]) -> np.ndarray:
        return self._cached.encode(texts)

    def passage_vectors(self, passages: list[list[str]]) -> list[np.ndarray]:
        return self._cached.encode_passages(passages)

    def _ensure_targets(self) -> None:
        if not self._targets_embedded:
            F.embed_targets(self.targets, self.vectors)
            self._targets_embedded = True

    def prepare(self, records: list[dict]) -> list[F.Prepared]:
        self._ensure_targets()
        return F.prepare(records, self.passage_vectors)

    def matrix(self, prepared: list[F.Prepared]) -> tuple[np.ndarray, list[str]]:
        self._ensure_targets()
        return F.feature_matrix(prepared, self.targets), [F.lexical_text(p.record) for p in prepared]

    # training -----------------------------------------------------------------------------
    def fit(self, X, texts, labels, weights) -> M.TrainedModel:
        return M.train(X, texts, labels, weights)

    def fingerprint(self) -> str:
        """Hash of everything the trained model depends on."""
        parts = {
            "explain": EXPLAIN_VERSION,
            "targets": targets_fingerprint(self.targets, self.embedder.passage_space),
            "seed": hashlib.sha256(json.dumps(self.seed, sort_keys=True).encode()).hexdigest(),
            "bundle": f"{self.bundle.digest}:{','.join(self.seed_fit.kept)}" if self.bundle else "",
            "feedback": hashlib.sha256(json.dumps(self.feedback, sort_keys=True, default=str).encode()).hexdigest(),
        }
        if self._self_training_pool():  # so does a new record in the self-training pool
            pool = json.dumps(self.unlabelled, sort_keys=True, default=str)
            parts["pool"] = hashlib.sha256(pool.encode()).hexdigest()
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]

    @property
    def model(self) -> M.TrainedModel:
        """The trained model, from the disk cache or trained now (empty without examples)."""
        if self._model is None:
            self._model = self._load_or_train()
        return self._model

    def _self_training_pool(self) -> list[dict]:
        """The stored records the unlabelled themes self-train on (``selftrain``): all of
        ``unlabelled`` when some theme has no seed label, the pooled reader exists and they are at
        least as many as the records it learnt from; else none."""
        if not self.unlabelled or not self._unlabelled_themes():
            return []
        themes = bundled_themes(self.embedder.passage_space)
        if not themes or len(self.unlabelled) < max(len(y) for _, y in themes.values()):
            return []
        return self.unlabelled

    def _unlabelled_themes(self) -> list[str]:
        counts = self._seed_counts()
        return [name for name in self.target_names[1:] if not counts.get(name)]

    def _load_or_train(self) -> M.TrainedModel:
        examples = self.seed + self.feedback
        pool = self._self_training_pool()
        if not examples and self.bundle is None and not pool:
            return M.TrainedModel()
        path = (self.models_dir or cache_dir() / "models") / f"{self.fingerprint()}.pkl"
        cached = _read_cached_model(path)
        if cached is not None:
            return cached
        if self.bundle is not None:
            trained = self._train_with_bundle()
        elif not examples:
            trained = M.TrainedModel()
        else:
            log.info("training the ranker on %d seed examples and %d curator judgements",
                     len(self.seed), len(self.feedback))
            X, texts = self.matrix(self.prepare(examples))
            weights = [1.0] * len(self.seed) + feedback_weights(self.feedback)
            labels, w = labelled_rows(examples, self.target_names, weights)
            trained = self.fit(X, texts, labels, w)
        if pool:
            log.info("self-training %s on %d stored records", ", ".join(self._unlabelled_themes()), len(pool))
            X, texts = self.matrix(self.prepare(pool))
            trained.self_trained = S.fit_themes(X, texts, self.targets, self._unlabelled_themes(),
                                                theme_reader(self.embedder.passage_space))
        _write_cached_model(path, trained)
        return trained

    def _train_with_bundle(self) -> M.TrainedModel:
        """The bundled seed's rows plus the curator's: feedback records get their feature rows
        from the same code and their TF-IDF rows from the bundled vocabulary, so columns line up.

        When only part of the seed fits (a theme was edited), the seed rows keep the kept targets'
        feature columns (the rest is zero and never read): each kept target's model reads only
        those columns, and an edited or new target learns from curator feedback alone."""
        from scipy import sparse
        bundle, fit = self.bundle, self.seed_fit
        log.info("training the ranker on the bundled seed (%d examples; %s) and %d curator judgements",
                 bundle.n, "all targets" if fit.whole else "for " + ", ".join(fit.kept), len(self.feedback))
        vectorizer = M.vectorizer_from(bundle.vocabulary, bundle.idf)
        width = int(F.column_layout(self.targets)[F.SHARED][-1]) + 1
        X = np.zeros((bundle.n, width), dtype=np.float32)
        X[:, fit.config_columns] = bundle.X[:, fit.seed_columns]
        T = bundle.T
        none = (np.zeros(bundle.n, dtype=int), np.zeros(bundle.n, dtype=bool))
        labels = {name: bundle.labels.get(name, none) if name in fit.kept else none for name in self.target_names}
        weights = np.ones(bundle.n)
        if self.feedback:
            prepared = self.prepare(self.feedback)
            X_fb, texts = self.matrix(prepared)
            if X_fb.shape[1] != width:  # features changed without a RANKER_VERSION bump
                raise RuntimeError(f"feedback rows have {X_fb.shape[1]} features, the layout {width}: "
                                   f"rebuild the seed with bench/ranking_seed.py")
            fb_labels, fb_weights = labelled_rows(self.feedback, self.target_names, feedback_weights(self.feedback))
            X = np.vstack([X, X_fb])
            T = sparse.vstack([T, vectorizer.transform(texts)]).tocsr()
            labels = {name: (np.concatenate([labels[name][0], fb_labels[name][0]]),
                             np.concatenate([labels[name][1], fb_labels[name][1]]))
                      for name in self.target_names}
            weights = np.concatenate([weights, fb_weights])
        columns = None if fit.whole else {name: fit.config_columns for name in fit.kept}
        return M.train_matrices(X, T, vectorizer, labels, weights, columns)

    def seed_state(self, decided: dict[str, bool] | None = None) -> dict:
        """What the ranker learns from, for ``spsbot status``: the seed in use, the targets it
        covers and those it does not, and the warning (None when nothing was lost). ``decided``:
        the stored relevance decisions by item id, from which a profile without a seed states its
        precision and recall on the store's weak labels (``weak.estimate``)."""
        estimated = W.estimate(self.weak, decided) if decided is not None else None
        if self._weak_warning:
            self.seed_warning = self._no_seed_warning(W.describe(self.weak, estimated, self.config.topic.name))
            self._weak_warning = False
            log.warning("ranker: %s", self.seed_warning)
        if self.seed_fit:
            return {"seed": "bundled", "kept": self.seed_fit.kept, "dropped": self.seed_fit.dropped,
                    "warning": self.seed_warning}
        if self.seed:
            return {"seed": seed_setting(self.config), "kept": self.target_names, "dropped": [], "warning": None}
        return {"seed": seed_setting(self.config) or "none", "kept": [], "dropped": self.target_names,
                "warning": self.seed_warning, "weak_labels": dict(zip(("positive", "negative"), W.counts(self.weak))),
                "relevance_quality": W.describe(self.weak, estimated, self.config.topic.name),
                "mesh_note": W.heading_note(self.weak, self.config)}

    # scoring ------------------------------------------------------------------------------
    def thresholds(self, model: M.TrainedModel | None = None) -> dict[str, float]:
        model = model or self.model
        cfg = self.config.ranking
        blended = self._blended_targets(model)
        out = {}
        for name in self.target_names:
            key = "relevance_threshold" if name == "relevance" else "theme_threshold"
            if cfg.get(key) is not None:       # a maintainer's explicit override
                out[name] = float(cfg[key])
            elif name in blended:              # the blend's cut: between the model's and the similarity score's
                share = FB.model_share(blended[name])
                out[name] = share * model.targets[name].threshold + (1 - share) * 0.5
            elif name in model.targets:
                out[name] = model.targets[name].threshold
            else:
                out[name] = 0.5
        return out

    def predict(self, model: M.TrainedModel, X, texts, prepared) -> dict[str, np.ndarray]:
        """Probabilities per target; targets the model lacks get the unsupervised score. With
        curator feedback, see ``bot.ranking.feedback``: targets no seed example labels get the
        neighbour adjustment (blended with a model trained on the feedback alone, if any), and
        every judged item gets its curator's label."""
        probs = model.predict(X, texts) if len(X) else {}
        judged = self._judged()
        blended = self._blended_targets(model)
        doc_vectors = np.stack([p.doc_vector for p in prepared]) if judged and prepared else None
        own = S.predict(*model.self_trained, X, texts) if getattr(model, "self_trained", None) and len(X) else {}
        for target in self.targets:
            name = target.name
            if name in probs and name not in blended:
                continue
            reader = theme_reader(self.embedder.passage_space) if name != "relevance" and len(X) else None
            if name in own:  # a theme nobody labelled, self-trained on the store
                scores = own[name]
            elif reader is not None:  # a theme nobody labelled: the pooled reader
                scores = reader.predict_proba(generic_rows(X, F.column_layout(self.targets), name))[:, 1]
            else:
                scores = np.array([unsupervised_score(p, target) for p in prepared])
            if judged is not None and doc_vectors is not None:
                scores = FB.neighbour_adjusted(scores, doc_vectors, judged, name)
            probs[name] = FB.blend(probs[name], scores, blended[name]) if name in blended else scores
            if name == "relevance":  # labels or not, a record that never names the topic is not about it
                unnamed = np.array([F.topic_evidence(p, target) == 0 for p in prepared], dtype=bool)
                probs[name] = np.where(unnamed, probs[name] / 2, probs[name])
        if judged is not None:
            ids = [p.record.get("id") for p in prepared]
            probs = {name: FB.curator_decides(values, ids, judged, name) for name, values in probs.items()}
        return probs

    # curator feedback -----------------------------------------------------------------------
    def _judged(self) -> FB.Judged | None:
        """The curator's judged items (ids, document vectors, labels), built once; None without any."""
        curator = [f for f in self.feedback if f.get("source", "curator") == "curator"]
        if not curator:
            return None
        if self._judged_items is None:
            prepared = self.prepare(curator)
            self._judged_items = FB.Judged.build(curator, np.stack([p.doc_vector for p in prepared]),
                                                 self.target_names)
        return self._judged_items

    def _seed_counts(self) -> dict[str, int]:
        """How many seed examples label each target (the bundle's kept targets, a seed file's labels)."""
        counts = dict.fromkeys(self.target_names, 0)
        if self.seed_fit:
            for name in self.seed_fit.kept:
                if name in self.bundle.labels:
                    counts[name] += int(self.bundle.labels[name][1].sum())
        if self.seed:
            for name, (_, mask) in labelled_rows(self.seed, self.target_names)[0].items():
                counts[name] += int(mask.sum())
        return counts

    def _blended_targets(self, model: M.TrainedModel) -> dict[str, int]:
        """Targets trained on curator feedback alone (no seed example labels them), with what
        their labels can teach (``Judged.evidence``): their model is blended with the
        neighbour-adjusted score."""
        judged = self._judged()
        if judged is None:
            return {}
        seeded = self._seed_counts()
        return {name: judged.evidence(name) for name in model.targets if not seeded.get(name)}

    def score(self, records: list[dict], progress: bool = False) -> list[dict]:
        """Results in input order; see the module docstring for their fields."""
        from tqdm import tqdm
        results = []
        model = self.model
        thresholds = self.thresholds(model)
        chunks = range(0, len(records), _CHUNK)
        for start in tqdm(chunks, disable=not progress, desc="ranking", unit="chunk"):
            batch = records[start:start + _CHUNK]
            prepared = self.prepare(batch)
            X, texts = self.matrix(prepared)
            probs = self.predict(model, X, texts, prepared)
            for i, p in enumerate(prepared):
                results.append(self.explain(p, {k: float(v[i]) for k, v in probs.items()}, thresholds))
        return results

    def explain(self, p: F.Prepared, probs: dict[str, float], thresholds: dict[str, float]) -> dict:
        relevance = round(probs["relevance"], 4)
        relevant = probs["relevance"] >= thresholds["relevance"]
        themes = {t.name: round(probs[t.name], 4) for t in self.targets[1:]}
        labels = sorted((n for n in themes if probs[n] >= thresholds[n]), key=lambda n: -themes[n])
        evidence = {}
        for target in self.targets[1:]:
            others = [t for t in self.targets[1:] if t is not target]
            sentence, terms = F.best_sentence(p, target, others)
            evidence[target.name] = {"sentence": sentence, "terms": terms}
        return {"id": p.record.get("id"), "relevance": relevance, "relevant": bool(relevant),
                "themes": themes, "labels": labels,
                "why": self._why(p, relevance, relevant, labels, themes, evidence), "evidence": evidence}

    def _why(self, p, relevance, relevant, labels, themes, evidence) -> str:
        topic = self.config.topic.name
        if not relevant:
            why = f"Not about {topic} ({relevance:.2f})"
            negatives = self.targets[0].negative_vectors
            if negatives is not None and len(p.vectors):
                sims = (negatives @ p.doc_vector)
                if sims.max() > 0.3:
                    why += f"; closest to '{self.targets[0].negatives[int(sims.argmax())]}'"
            return why
        parts = [f"About {topic} ({relevance:.2f})"]
        for name in labels[:2]:
            ev = evidence[name]
            sentence = ev["sentence"]
            if len(sentence) > _WHY_SENTENCE_CHARS:
                sentence = sentence[:_WHY_SENTENCE_CHARS].rsplit(" ", 1)[0] + "…"
            terms = f" [{', '.join(ev['terms'][:3])}]" if ev["terms"] else ""
            parts.append(f"{name} ({themes[name]:.2f}): '{sentence}'{terms}")
        if not labels:
            parts.append("no theme stands out")
        return "; ".join(parts)


def expected_quality(model_name: str) -> str:
    """What a profile with no labels can expect, said up front (in the seed warning, so `rank` and
    `status` both show it): how the topic is decided, and the pooled theme reader's average
    precision on a theme it never saw (``transfer.reader_estimate``), with its count."""
    estimate = reader_estimate(model_name)
    topic = "relevance wants the topic named (a record that never names it is never relevant) and near its phrases"
    if estimate is None:
        return f"{topic}; themes come from similarity and terms alone, with lower precision than a labelled profile"
    return (f"{topic}; themes are read by a model learnt on the bundled SPS themes, expected mean theme AP "
            f"{estimate['mean_theme_ap']:.2f} (on each of {len(estimate['theme_ap'])} labelled themes of "
            f"{estimate['records']} records, learnt from the others; a labelled profile reaches 0.90)")


def unsupervised_score(p: F.Prepared, target: F.Target) -> float:
    """Similarity and terms, squashed to 0–1, for a target with no labelled examples.

    The constants put a record whose best sentence is about as close to the target's phrases as
    its paraphrases are (cosine ≈ 0.5) and that names one of its terms at about 0.75.

    The topic wants evidence of itself: similarity alone makes a neighbouring disease's paper
    (same drugs, same antibodies, same kind of patient) look "about" it. A record that names the
    topic only in passing gets no credit for the name (and one that never names it is halved
    afterwards, in ``Ranker.predict``, whatever curator labels moved it).
    """
    sims = (p.vectors @ target.proto_vectors.T).max(axis=1)
    if target.name == "relevance":  # full credit for plainly naming the topic, whichever synonyms
        named = 3 if F.topic_evidence(p, target) >= 2 else 0
    else:                           # several of a theme's drugs or tests are more evidence than one
        named = min(len(p.terms_in_text(target)), 3)
    z = 10.0 * (float(sims.max()) - 0.45) + 1.0 * named
    z -= 1.5 * min(len(F.find_terms(p.full_text, target.exclude)), 2)
    if target.negative_vectors is not None:
        neg = (p.vectors @ target.negative_vectors.T).max(axis=1)
        z -= 8.0 * max(0.0, float(neg.max()) - float(sims.max()))
    return 1.0 / (1.0 + math.exp(-z))
