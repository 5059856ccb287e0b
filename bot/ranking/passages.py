"""One transformer pass per record ("late chunking"): sentence vectors pooled from its tokens.

The ranker needs a vector per sentence (the evidence is a sentence; similarity is read sentence
by sentence). Embedding each sentence on its own runs the model over every sentence separately,
about 2.3x a bare whole-text encode. Here a record's sentences are tokenised once and laid end to
end in windows ``[CLS] s1 s2 … [SEP]`` of up to ``DEFAULT_WINDOW`` tokens; the model runs once
over each window, and a sentence's vector is the mean of the token embeddings inside its span —
the mean pooling sentence-transformers applies to a whole text, restricted to the sentence — so
it also carries the surrounding sentences as context (Günther et al., "Late Chunking", 2024,
https://arxiv.org/abs/2409.04701).

A record longer than a window continues in the next one (whole sentences; a sentence longer than
a window keeps its first tokens), so every token of the record is read once. Windows are sorted
by length and batched by token count, so padding costs almost nothing. Everything here is plain
list/array work on token ids; the model call is the embedder's (``bot.ranking.embedder``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# MiniLM (BERT) learned 512 positions, so a window may hold up to 512 tokens. 128 is the default:
# cross-validated on the dev set (bench/ranking.py) it keeps every figure of per-sentence
# embedding within 0.005 (mean theme AP 0.899 vs 0.897; diagnosis 0.865 vs 0.866), where wider
# windows lose diagnosis AP (0.854 at 256, 0.859 at 512) — more context blurs which sentence
# says what — and it is the cheapest (attention grows with the square of the window).
DEFAULT_WINDOW = 128
# Tokens per forward batch (windows x padded length). Bigger batches only cost memory: ranking 1,000
# records (2 cores, int8) peaked at 706 MB with 1,024-token batches, 777 MB with 2,048 and 858 MB
# with 8,192, and was no slower (glibc keeps the freed activations of the largest batch resident).
DEFAULT_BATCH_TOKENS = 1024


@dataclass
class Window:
    """One model input: token ids with [CLS]/[SEP], and where each sentence sits in it."""

    ids: list[int]
    spans: list[tuple[int, int, int, int]] = field(default_factory=list)  # (passage, sentence, start, end)


def pack_windows(passages: list[list[list[int]]], cls_id: int, sep_id: int,
                 window: int = DEFAULT_WINDOW) -> list[Window]:
    """Lay each passage's sentences (token ids without special tokens) end to end in windows of at
    most ``window`` tokens. Every sentence gets exactly one span; a sentence with no tokens gets
    the specials of a window of its own (what a model gives for an empty text)."""
    room = window - 2
    if room < 1:
        raise ValueError(f"a window needs at least 3 positions, got {window}")
    out: list[Window] = []
    for p, sentences in enumerate(passages):
        current: Window | None = None
        for s, ids in enumerate(sentences):
            if not ids:
                out.append(Window([cls_id, sep_id], [(p, s, 0, 2)]))
                continue
            ids = ids[:room]
            if current is None or len(current.ids) - 1 + len(ids) > room:
                _close(current, sep_id)
                current = Window([cls_id])
                out.append(current)
            start = len(current.ids)
            current.ids.extend(ids)
            current.spans.append((p, s, start, start + len(ids)))
        _close(current, sep_id)
    return out


def _close(window: Window | None, sep_id: int) -> None:
    if window is not None:
        window.ids.append(sep_id)


def token_batches(windows: list[Window], batch_tokens: int = DEFAULT_BATCH_TOKENS) -> list[list[Window]]:
    """Windows sorted longest first and grouped so that (windows x longest) <= ``batch_tokens``."""
    batches: list[list[Window]] = []
    for w in sorted(windows, key=lambda w: -len(w.ids)):
        if batches and (len(batches[-1]) + 1) * len(batches[-1][0].ids) <= batch_tokens:
            batches[-1].append(w)
        else:
            batches.append([w])
    return batches


def padded(batch: list[Window] | list[list[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) int64 arrays for a batch of windows (or of token-id lists),
    right-padded to its longest."""
    rows = [w.ids if isinstance(w, Window) else w for w in batch]
    length = max(len(r) for r in rows)
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for row, r in enumerate(rows):
        ids[row, :len(r)] = r
        mask[row, :len(r)] = 1
    return ids, mask


def pool_spans(batch: list[Window], states: np.ndarray, out: list[np.ndarray]) -> None:
    """Mean of the token states inside each span, written to ``out[passage][sentence]``.

    ``states``: (windows, length, d) token embeddings for ``batch``, in its order.
    """
    for row, w in enumerate(batch):
        for p, s, start, end in w.spans:
            out[p][s] = states[row, start:end].mean(axis=0)


def normalise(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.where(norms == 0, 1, norms)).astype(np.float32)
