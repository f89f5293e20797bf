"""Vocabulary trimming (Pasero's language-specific vocabulary filtering) for big-vocabulary pretrained models.

NLLB-200's 256k-token vocabulary holds most of its small models' weights, and its output layer most of the training
memory (logits, gradients and Adam states). `trim_vocabulary(model, tokenizer, keep_ids)` keeps only the given tokens
plus every special and added token (language codes), and returns a smaller model and a tokenizer of the same class
whose files `save_pretrained` writes and `AutoTokenizer` loads. Text whose tokens were all kept is tokenized to the
same tokens and the model gives it the same scores: BPE merges are kept for every kept token and its parts (so the
merges that fire on such text are unchanged), Unigram pieces that are dropped could never have won.

Supported tokenizers: `tokenizers`-backed ones (BPE or Unigram: NLLB, mBART-50, T5/mT5...) and SentencePiece ones
with a `vocab.json` (M2M100, Marian).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

_MARIAN_CODE = re.compile(r"^>>.+<<$")


def _bpe_closure(vocab: dict[str, int], merges: list, keep: set[str]) -> set[str]:
    """`keep` plus the parts of every merge that produces a kept token (recursively)."""
    pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
    producers: dict[str, list[tuple[str, str]]] = {}
    for left, right in pairs:
        producers.setdefault(left + right, []).append((left, right))
    kept = set(keep)
    todo = list(kept)
    while todo:
        token = todo.pop()
        for left, right in producers.get(token, ()):
            for part in (left, right):
                if part in vocab and part not in kept:
                    kept.add(part)
                    todo.append(part)
    return kept


def _trim_tokenizer_json(data: dict, keep: set[str]) -> dict:
    model = data["model"]
    if model["type"] == "BPE":
        kept = _bpe_closure(model["vocab"], model["merges"], keep)
        old = sorted(model["vocab"].items(), key=lambda item: item[1])
        model["vocab"] = {token: new for new, (token, _) in enumerate((t, i) for t, i in old if t in kept)}
        model["merges"] = [m for m in model["merges"]
                           if all(p in kept for p in (m.split(" ", 1) if isinstance(m, str) else m))
                           and "".join(m.split(" ", 1) if isinstance(m, str) else m) in kept]
        vocab = model["vocab"]
    elif model["type"] == "Unigram":
        unk = model["vocab"][model["unk_id"]][0] if model.get("unk_id") is not None else None
        model["vocab"] = [entry for entry in model["vocab"] if entry[0] in keep or entry[0] == unk]
        if unk is not None:
            model["unk_id"] = [entry[0] for entry in model["vocab"]].index(unk)
        vocab = {entry[0]: i for i, entry in enumerate(model["vocab"])}
    else:
        raise ValueError(f"vocabulary trimming: {model['type']} tokenizer models are not supported (BPE, Unigram)")
    next_id = len(vocab)
    for added in sorted(data.get("added_tokens") or [], key=lambda t: t["id"]):
        if added["content"] in vocab:
            added["id"] = vocab[added["content"]]
        else:
            added["id"] = next_id
            next_id += 1
    ids = {t["content"]: t["id"] for t in data.get("added_tokens") or []}
    ids.update(vocab)
    _remap_post_processor(data.get("post_processor"), ids)
    return data


def _remap_post_processor(processor: Any, ids: dict[str, int]) -> None:
    """Template post-processors store the ids of their special tokens: renumber them."""
    if not processor:
        return
    for child in processor.get("processors") or []:
        _remap_post_processor(child, ids)
    for name, special in (processor.get("special_tokens") or {}).items():
        special["ids"] = [ids[token] for token in special.get("tokens", [name])]
    for key in ("sep", "cls"):
        if isinstance(processor.get(key), list) and len(processor[key]) == 2:
            processor[key][1] = ids[processor[key][0]]


def _always_kept(tokenizer: Any) -> set[str]:
    kept = set(tokenizer.all_special_tokens)
    kept |= {token for token in tokenizer.get_added_vocab()}
    kept |= {token for token in tokenizer.get_vocab() if _MARIAN_CODE.match(token)}  # Marian target language tokens
    return kept


def trim_tokenizer(tokenizer: Any, keep_tokens: Iterable[str], output_dir: str | Path) -> Any:
    """A copy of `tokenizer` with only `keep_tokens` (plus special, added and language tokens), saved in `output_dir`."""
    from transformers import AutoTokenizer

    keep = set(keep_tokens) | _always_kept(tokenizer)
    output_dir = Path(output_dir)
    tokenizer.save_pretrained(output_dir)
    config_path = output_dir / "tokenizer_config.json"
    if (output_dir / "tokenizer.json").is_file():
        data = json.loads((output_dir / "tokenizer.json").read_text(encoding="utf-8"))
        (output_dir / "tokenizer.json").write_text(json.dumps(_trim_tokenizer_json(data, keep), ensure_ascii=False),
                                                   encoding="utf-8")
    elif (output_dir / "vocab.json").is_file():
        vocab = json.loads((output_dir / "vocab.json").read_text(encoding="utf-8"))
        ordered = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1]) if token in keep]
        (output_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(ordered)}, ensure_ascii=False),
                                               encoding="utf-8")
    else:
        raise ValueError(f"vocabulary trimming: {type(tokenizer).__name__} has neither tokenizer.json nor vocab.json")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # keyed by the old ids; the tokenizer class rebuilds its added tokens from its files and special token names
    config.pop("added_tokens_decoder", None)
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return AutoTokenizer.from_pretrained(output_dir)


def _embedding_tensors(model: torch.nn.Module) -> set[int]:
    """Ids (data pointers) of the vocabulary-sized weights: input embeddings (encoder/decoder) and output layer."""
    tensors = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None:
        tensors.append(output.weight)
    for side in ("get_encoder", "get_decoder"):
        part = getattr(model, side, lambda: None)()
        embed = getattr(part, "embed_tokens", None) if part is not None else None
        if embed is not None:
            tensors.append(embed.weight)
    return {tensor.data_ptr() for tensor in tensors}


def trim_model(model: torch.nn.Module, new_to_old: list[int]) -> torch.nn.Module:
    """A new model whose vocabulary is the old ids `new_to_old` (embeddings, output layer, logits bias, special ids)."""
    old_size = model.get_input_embeddings().num_embeddings
    index = torch.tensor(new_to_old, dtype=torch.long)
    old_to_new = {old: new for new, old in enumerate(new_to_old)}
    vocab_weights = _embedding_tensors(model)
    state = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in vocab_weights and tensor.dim() == 2 and tensor.shape[0] == old_size:
            tensor = tensor.index_select(0, index)
        elif name.endswith("final_logits_bias"):
            tensor = tensor.index_select(-1, index)
        state[name] = tensor
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.vocab_size = len(new_to_old)
    if getattr(config, "decoder_vocab_size", None):  # Marian
        config.decoder_vocab_size = len(new_to_old)
    text_config = config.get_text_config()
    if text_config is not config:
        text_config.vocab_size = len(new_to_old)
    _remap_ids(config, old_to_new)
    trimmed = type(model)(config)
    trimmed.load_state_dict(state, strict=True)
    generation = model.generation_config.to_dict()
    trimmed.generation_config = type(model.generation_config).from_dict(generation)
    _remap_ids(trimmed.generation_config, old_to_new)
    return trimmed.to(model.dtype)


_ID_FIELDS = ("pad_token_id", "eos_token_id", "bos_token_id", "decoder_start_token_id", "forced_bos_token_id",
              "forced_eos_token_id", "sep_token_id", "unk_token_id")


def _remap_ids(config: Any, old_to_new: dict[int, int]) -> None:
    def remap(value):
        if isinstance(value, list):
            return [remap(v) for v in value]
        return old_to_new.get(value, value) if isinstance(value, int) else value

    for name in _ID_FIELDS:
        if getattr(config, name, None) is not None:
            setattr(config, name, remap(getattr(config, name)))
    if getattr(config, "bad_words_ids", None):
        config.bad_words_ids = [[old_to_new[i] for i in ids] for ids in config.bad_words_ids
                                if all(i in old_to_new for i in ids)] or None
    if getattr(config, "suppress_tokens", None):
        config.suppress_tokens = [old_to_new[i] for i in config.suppress_tokens if i in old_to_new] or None


def tokenizer_id_bound(tokenizer: Any) -> int:
    """1 + the largest id the tokenizer can produce (M2M100 puts its language codes after `len(tokenizer)`)."""
    ids = list(tokenizer.get_vocab().values())
    for name in ("lang_token_to_id", "lang_code_to_id"):
        ids += list((getattr(tokenizer, name, None) or {}).values())
    return max(ids) + 1


def trim_vocabulary(model: torch.nn.Module, tokenizer: Any, keep_ids: Iterable[int],
                    output_dir: str | Path | None = None) -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer) keeping the tokens `keep_ids` plus the special, added and language tokens.

    The trimmed tokenizer files are written to `output_dir`; without one, to a temporary directory that is removed
    once the tokenizer has been loaded from it (the loaded tokenizer holds all it needs in memory). Save both with
    `save_pretrained` as usual. Raises ValueError for tokenizers it cannot trim.
    """
    keep = set(tokenizer.convert_ids_to_tokens(sorted({int(i) for i in keep_ids})))
    if output_dir is None:
        with tempfile.TemporaryDirectory(prefix="pasero-trimmed-tokenizer-") as scratch:
            trimmed_tokenizer = trim_tokenizer(tokenizer, keep, scratch)
    else:
        trimmed_tokenizer = trim_tokenizer(tokenizer, keep, output_dir)
    old_vocab = {token: tokenizer.convert_tokens_to_ids(token) for token in tokenizer.get_vocab()}
    for name in ("lang_token_to_id",):  # M2M100's language tokens are outside get_vocab()
        old_vocab.update(getattr(tokenizer, name, None) or {})
    new_to_old = []
    for new_id in range(tokenizer_id_bound(trimmed_tokenizer)):
        token = trimmed_tokenizer.convert_ids_to_tokens(new_id)
        if token is None:  # an id no token maps to (M2M100's "made-up words"): any row will do, it is never produced
            token = tokenizer.unk_token
        if token not in old_vocab:
            raise ValueError(f"vocabulary trimming: token {token!r} (new id {new_id}) is not in the original vocabulary")
        new_to_old.append(old_vocab[token])
    rows = model.get_input_embeddings().num_embeddings
    if max(new_to_old) >= rows:
        raise ValueError(f"vocabulary trimming: the tokenizer has ids up to {max(new_to_old)} but the model only {rows}")
    return trim_model(model, new_to_old), trimmed_tokenizer
