"""A BERT sentence model run with torch alone: the packaged all-MiniLM-L6-v2 without transformers.

Why not sentence-transformers here: importing it (and transformers 5 under it, which imports
torch's compiler stack, sympy and torch.distributed) costs ~150 MB of resident memory and ~2.5 s
per process before a single text is read — half of what the weekly run needs beyond torch
itself (bench/ranking_cost.py). For the models it serves — BERT encoders with mean pooling, as
all-MiniLM-L6-v2 is — the forward pass is short and standard (Devlin et al. 2019; the layer and
weight names below are the checkpoint's own), so it is done here with torch's modules on the
model's own files: ``tokenizer.json`` read by the ``tokenizers`` library, ``model.safetensors``
by ``safetensors``. Any other model (another architecture, CLS pooling, extra layers) is loaded by
sentence-transformers as before (``bot.ranking.embedder``). tests/test_embedder_bert.py checks the
vectors against sentence-transformers' own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bot.ranking import passages as P


def is_plain_bert(folder: str | Path) -> bool:
    """Whether ``folder`` holds a sentence-transformers model this module runs exactly: a BERT
    encoder (absolute positions, GELU), then mean pooling, then at most a normalisation."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        pooling = [m for m in modules if m["type"].endswith(".Pooling")]
        pool = json.loads((folder / pooling[0]["path"] / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    modes = {k for k, v in pool.items() if k.startswith("pooling_mode") and v}
    return (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and kinds in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
            and modes == {"pooling_mode_mean_tokens"}
            and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())


class SentenceBert:
    """The model a plain-BERT folder holds: tokenizer, encoder (``module``, a torch module whose
    Linear layers ``quantize_dynamic`` can replace), mean pooling."""

    def __init__(self, folder: str | Path):
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        st_config = folder / "sentence_bert_config.json"
        settings = json.loads(st_config.read_text(encoding="utf-8")) if st_config.is_file() else {}
        self.max_length = min(int(settings.get("max_seq_length") or 512), config["max_position_embeddings"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # The file may carry a fixed truncation/padding (this one: 128); lengths are set per call.
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        vocab = self.tokenizer.get_vocab()
        self.cls_id, self.sep_id = vocab["[CLS]"], vocab["[SEP]"]
        self.pad_id = config.get("pad_token_id") or 0
        self.dim = config["hidden_size"]
        weights = {k.removeprefix("bert."): v for k, v in load_file(str(folder / "model.safetensors")).items()}
        self.module = _encoder_module(config, weights)
        self.module.load_state_dict({k: weights[k] for k in self.module.state_dict()}, assign=True)
        self.module.eval()

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids of each text, without [CLS]/[SEP]."""
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def token_states(self, ids: np.ndarray, mask: np.ndarray):
        """The last hidden states (batch, length, d) of a padded batch, a torch tensor."""
        import torch
        with torch.inference_mode():
            return self.module(torch.from_numpy(ids), torch.from_numpy(mask))

    def encode(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        """One vector per text, as sentence-transformers' ``encode``: [CLS] text [SEP] cut at
        ``max_length`` tokens, mean of the token states, L2-normalised; float32."""
        room = self.max_length - 2
        ids = [[self.cls_id, *t[:room], self.sep_id] for t in self.token_ids(texts)]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # little padding per batch
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch, mask = P.padded([ids[i] for i in rows], self.pad_id)
            states = self.token_states(batch, mask).float().numpy()
            out[rows] = (states * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return P.normalise(out)


def _encoder_module(config: dict, weights: dict):
    """BERT's embeddings and encoder layers, named as in the checkpoint (``embeddings.*``,
    ``encoder.layer.N.*``) so its weights load by name."""
    from torch import nn
    from torch.nn import functional as F

    d, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    # Built without memory ("meta" tensors) and the checkpoint's weights assigned in their place. Not
    # with torch's device context, and the embeddings made from their weights: initialising a meta
    # tensor at random imports torch's compiler stack (~70 MB).
    meta = {"device": "meta"}

    def embedding(name: str) -> nn.Embedding:
        weight = weights[f"embeddings.{name}.weight"]
        return nn.Embedding(*weight.shape, _weight=weight)

    def module(**children) -> nn.Module:
        m = nn.Module()
        for name, child in children.items():
            m.add_module(name, child)
        return m

    def layer() -> nn.Module:
        return module(
            attention=module(self=module(query=nn.Linear(d, d, **meta), key=nn.Linear(d, d, **meta),
                                         value=nn.Linear(d, d, **meta)),
                             output=module(dense=nn.Linear(d, d, **meta), LayerNorm=nn.LayerNorm(d, eps=eps, **meta))),
            intermediate=module(dense=nn.Linear(d, config["intermediate_size"], **meta)),
            output=module(dense=nn.Linear(config["intermediate_size"], d, **meta),
                          LayerNorm=nn.LayerNorm(d, eps=eps, **meta)))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = module(
                word_embeddings=embedding("word_embeddings"),
                position_embeddings=embedding("position_embeddings"),
                token_type_embeddings=embedding("token_type_embeddings"),
                LayerNorm=nn.LayerNorm(d, eps=eps, **meta))
            self.encoder = module(layer=nn.ModuleList(layer() for _ in range(config["num_hidden_layers"])))

        def forward(self, ids, mask):
            e = self.embeddings
            length = ids.shape[1]
            x = (e.word_embeddings(ids) + e.position_embeddings.weight[:length]
                 + e.token_type_embeddings.weight[0])    # one segment: token type 0 throughout
            x = e.LayerNorm(x)
            keys = mask.bool()[:, None, None, :]          # every query attends to the real tokens only

            def split(t):  # (batch, length, d) -> (batch, heads, length, d / heads)
                return t.view(t.shape[0], length, heads, -1).transpose(1, 2)

            for block in self.encoder.layer:
                att = block.attention
                q, k, v = (split(project(x)) for project in (att.self.query, att.self.key, att.self.value))
                context = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
                context = context.transpose(1, 2).reshape(x.shape[0], length, d)
                x = att.output.LayerNorm(x + att.output.dense(context))
                x = block.output.LayerNorm(x + block.output.dense(F.gelu(block.intermediate.dense(x))))
            return x

    return Encoder()
