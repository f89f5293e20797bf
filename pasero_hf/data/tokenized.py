"""Tokenized corpora as cached `datasets.Dataset`s (columns ``input_ids``, ``labels``; plus ``source``, ``target``
text for validation).

Reading goes through `Dataset.from_generator` (keyed on the files' paths, sizes and modification times) and
tokenization through `Dataset.map` (keyed on the tokenizer's state), both cached in `cache_dir`: a second run on the
same files with the same tokenizer reads the Arrow cache instead of tokenizing again.

The tokenizer is any Hugging Face tokenizer: sources are tokenized with ``tokenizer(text)``, targets with
``tokenizer(text_target=...)``. When it has ``src_lang``/``tgt_lang`` attributes (NLLB, M2M100, PaseroTokenizer)
they are set per corpus before tokenizing, so the language codes it adds are the corpus' ones. A pretrained
model's `ModelLanguages` (`pasero_hf.tokenization.model_languages`) maps the corpus' codes to the model's and adds its
source text prefix (Marian `>>fra<<`, T5 task prefix).
"""

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from pasero_hf.data.batching import truncate_keeping_eos
from pasero_hf.data.corpora import Corpus, corpus_stamp
from pasero_hf.data.reading import CorpusFormatError, read_pairs
from pasero_hf.tokenization.dictionary import domain_tag as domain_tag_token
from pasero_hf.tokenization.dictionary import insert_domain_tag, source_language_codes
from pasero_hf.tokenization.dictionary import lang_code as lang_code_token
from pasero_hf.tokenization.model_languages import ModelLanguages, set_tokenizer_langs

logger = logging.getLogger(__name__)

# Part of the tokenization cache key: bump it when `_tokenize` changes what it produces.
_TOKENIZATION_VERSION = 1
_TEXT_FEATURES = datasets.Features({"source": datasets.Value("string"), "target": datasets.Value("string")})


def default_cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "pasero_hf_data_cache")


@dataclass(frozen=True)
class LengthLimits:
    """Token limits of one split: training pairs beyond them are dropped, validation pairs truncated."""

    max_source_len: int
    max_target_len: int
    min_len_ratio: float | None = None
    max_len_ratio: float | None = None


def _generate_text(corpus: Corpus, stamp: str, max_lines: int | None):
    # `stamp` is unused here but part of the cache key: from_generator hashes its gen_kwargs. (No list values:
    # from_generator would split them into shards and call the generator once per item.)
    for source, target in read_pairs(corpus, max_lines=max_lines):
        yield {"source": source, "target": target}


def read_text_dataset(corpus: Corpus, cache_dir: str, max_lines: int | None = None) -> datasets.Dataset:
    """The corpus' non-empty pairs as a cached text dataset; raises on malformed or empty corpora."""
    if next(read_pairs(corpus, max_lines=1), None) is None:  # datasets cannot build an empty dataset
        raise ValueError(f"corpus {corpus.corpus_id} ({', '.join(corpus.paths)}) is empty: no non-empty line pair")
    try:
        dataset = datasets.Dataset.from_generator(
            _generate_text,
            features=_TEXT_FEATURES,
            gen_kwargs={"corpus": corpus, "stamp": corpus_stamp(corpus), "max_lines": max_lines},
            cache_dir=cache_dir,
        )
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__
        if isinstance(cause, (CorpusFormatError, OSError)):
            raise cause from None
        raise
    return dataset


def tag_id(tokenizer: Any, token: str, option: str) -> int:
    """The id of a language code or domain tag, which must be in the vocabulary (`option` names the setting)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise ValueError(f"{option} is set but the tokenizer's vocabulary has no token {token}")
    return token_id


def _tokenize(batch: dict, tokenizer: Any, lang_code_id: int | None, keep_text: bool, source_prefix: str = "",
              domain_tag_id: int | None = None, language_codes: int = 0) -> dict:
    sources = [source_prefix + source for source in batch["source"]] if source_prefix else batch["source"]
    encoded = tokenizer(sources, text_target=batch["target"])
    input_ids = encoded["input_ids"]
    if lang_code_id is not None:
        input_ids = [ids if ids[:1] == [lang_code_id] else [lang_code_id] + ids for ids in input_ids]
    if domain_tag_id is not None:
        input_ids = [insert_domain_tag(ids, domain_tag_id, language_codes) for ids in input_ids]
    columns = {"input_ids": input_ids, "labels": encoded["labels"]}
    if keep_text:
        columns.update(source=batch["source"], target=batch["target"])
    return columns


def _within_limits(batch: dict, limits: LengthLimits) -> list[bool]:
    keep = []
    for source, target in zip(batch["input_ids"], batch["labels"]):
        ratio = len(source) / max(1, len(target))
        keep.append(
            len(source) <= limits.max_source_len
            and len(target) <= limits.max_target_len
            and not (limits.min_len_ratio and ratio < limits.min_len_ratio)
            and not (limits.max_len_ratio and ratio > limits.max_len_ratio)
        )
    return keep


def _truncate(batch: dict, limits: LengthLimits, eos_id: int | None) -> dict:
    return {
        "input_ids": [truncate_keeping_eos(ids, limits.max_source_len, eos_id) for ids in batch["input_ids"]],
        "labels": [truncate_keeping_eos(ids, limits.max_target_len, eos_id) for ids in batch["labels"]],
    }


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of everything `save_pretrained` writes (vocabulary, merges, options, current languages).

    Hashing the live object, as `datasets` would, is not stable: tokenizers keep internal caches that grow as they
    are used, so the same tokenizer would hash differently before and after tokenizing and never hit the cache.
    """
    hasher = datasets.fingerprint.Hasher()
    hasher.update(type(tokenizer).__qualname__)
    with tempfile.TemporaryDirectory() as directory:
        tokenizer.save_pretrained(directory)
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                hasher.update(path.name)
                hasher.update(path.read_bytes())
    return hasher.hexdigest()


def tokenize_corpus(
    corpus: Corpus,
    tokenizer: Any,
    limits: LengthLimits,
    train: bool,
    lang_code: bool = False,
    domain_tag: bool = False,
    cache_dir: str | None = None,
    max_lines: int | None = None,
    languages: ModelLanguages | None = None,
) -> datasets.Dataset:
    """Read and tokenize one corpus (cached), then drop (train) or truncate (valid) pairs beyond `limits`.

    `languages`: how the model wants its languages (default: the tokenizer's `src_lang`/`tgt_lang`, as given).
    `lang_code`/`domain_tag`: prefix sources with `<lang:tgt>`/`<domain:xx>` (a Pasero tokenizer adds its own
    language codes, `source_lang_code` and `target_lang_code` included, from its flags).

    Returns a dataset with ``input_ids`` and ``labels`` (token id lists, EOS and language codes included) and, for
    validation, the ``source`` and ``target`` text. Raises if no training pair is within the limits.
    """
    cache_dir = cache_dir or default_cache_dir()
    text = read_text_dataset(corpus, cache_dir, max_lines=max_lines)
    source_prefix = ""
    if languages is None:
        set_tokenizer_langs(tokenizer, corpus.source_lang, corpus.target_lang)
    else:
        languages.set_tokenizer_languages(tokenizer, corpus.source_lang, corpus.target_lang)
        source_prefix = languages.source_text_prefix(corpus.source_lang, corpus.target_lang)
    lang_code_id = tag_id(tokenizer, lang_code_token(corpus.target_lang), "lang_code") if lang_code else None
    domain_tag_id = tag_id(tokenizer, domain_tag_token(corpus.domain), "domain_tag") if domain_tag else None
    language_codes = source_language_codes(tokenizer, lang_code)
    fingerprint = datasets.fingerprint.Hasher.hash(
        [text._fingerprint, tokenizer_fingerprint(tokenizer), lang_code_id, train, _TOKENIZATION_VERSION]
        + ([source_prefix] if source_prefix else []) + ([domain_tag_id] if domain_tag else [])
    )
    tokenized = text.map(
        _tokenize,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "lang_code_id": lang_code_id, "keep_text": not train,
                   "source_prefix": source_prefix, "domain_tag_id": domain_tag_id, "language_codes": language_codes},
        remove_columns=["source", "target"],
        new_fingerprint=fingerprint,
        desc=f"tokenizing {corpus.corpus_id}",
    )
    if not train:
        return tokenized.map(
            _truncate, batched=True, fn_kwargs={"limits": limits, "eos_id": tokenizer.eos_token_id},
            desc=f"truncating {corpus.corpus_id}",
        )
    kept = tokenized.filter(
        _within_limits, batched=True, fn_kwargs={"limits": limits}, desc=f"length filter {corpus.corpus_id}"
    )
    if len(kept) == 0:
        raise ValueError(
            f"corpus {corpus.corpus_id}: all {len(tokenized)} pairs are outside the length limits "
            f"(max_source_len={limits.max_source_len}, max_target_len={limits.max_target_len}, "
            f"min_len_ratio={limits.min_len_ratio}, max_len_ratio={limits.max_len_ratio})"
        )
    if len(kept) < len(tokenized):
        logger.info("%s: skipped %d of %d pairs outside the length limits", corpus.corpus_id,
                    len(tokenized) - len(kept), len(tokenized))
    return kept.flatten_indices()  # contiguous rows: fast random access; `.data` holds only kept rows
