"""Training and validation data of causal language models: translation prompts and dialogues.

Both become one token sequence per example (`input_ids`) and `labels`: the same ids with -100 on the prompt tokens
(the prompt of a translation pair; the system/user turns and generation prompts of a conversation). They flow through
the MT machinery unchanged: corpora declared and expanded as for MT, temperature sampling, token-based batches
(`batch_size` counts padded tokens of whole sequences), the resumable `TrainStream` and `ValidSet`s. Only collation
differs: `collate_causal` shifts the labels for next-token prediction and keeps the prompt's own targets apart
(`prompt_labels`) for Pasero's `prompt_loss` weighting.

- task "lm": parallel corpora in any MT format (`parallel`, `tsv`, `jsonl`, `dataset`), each pair rendered with the
  prompt template (`pasero_hf.data.prompts`); tokenization is cached like MT's.
- task "dialogue": JSONL files of `{"messages": [{"role", "content"}, ...]}` (paths in `train_corpora` and
  `valid_corpora`, relative to data_dir), rendered with the chat template. Every file is read and checked whole
  before anything trains: a bad line stops the run with its file and line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from pasero_hf.data.batching import _pad, length_sorted_batches
from pasero_hf.data.config import DataConfig
from pasero_hf.data.corpora import Corpus, expand_corpora
from pasero_hf.data.prompts import encode_conversation, encode_prompt_pair, read_conversations, render_prompt
from pasero_hf.data.tokenized import default_cache_dir, read_text_dataset, tokenizer_fingerprint
from pasero_hf.data.train_stream import TrainStream
from pasero_hf.data.valid import ValidSet

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
_VERSION = 1  # of the tokenized columns (part of the cache key)


def collate_causal(input_ids: Sequence[Sequence[int]], labels: Sequence[Sequence[int]], pad_token_id: int,
                   meta: dict | None = None) -> dict:
    """Model inputs of sequences (right padding) with next-token labels already shifted.

    `labels[t]` is the token that position t predicts when it is a target token, else -100 (so that a causal LM's
    logits and these labels align without shifting); `prompt_labels[t]` the same for prompt tokens.
    """
    if not input_ids:
        raise ValueError("cannot collate an empty batch")
    ids, mask = _pad(input_ids, pad_token_id)
    unshifted, _ = _pad(labels, IGNORE_INDEX)
    next_ids = torch.full_like(ids, IGNORE_INDEX)
    next_ids[:, :-1] = ids[:, 1:].masked_fill(~mask[:, 1:], IGNORE_INDEX)
    is_target = torch.zeros_like(mask)
    is_target[:, :-1] = unshifted[:, 1:] != IGNORE_INDEX
    batch = {
        "input_ids": ids,
        "attention_mask": mask.long(),
        "labels": next_ids.masked_fill(~is_target, IGNORE_INDEX),
        "prompt_labels": next_ids.masked_fill(is_target, IGNORE_INDEX),
    }
    batch.update(meta or {})
    return batch


class CausalLMStream(TrainStream):
    """`TrainStream` whose batches are causal-LM inputs (`collate_causal`); sampling, order and state are the same."""

    def collate(self, examples: list[tuple[int, int]]) -> dict:
        by_corpus: dict[int, list[int]] = {}
        for corpus, index in examples:
            by_corpus.setdefault(corpus, []).append(index)
        input_ids, labels = [], []
        for corpus, indices in by_corpus.items():
            rows = self.datasets[corpus][indices]
            input_ids += rows["input_ids"]
            labels += rows["labels"]
        return collate_causal(input_ids, labels, self.pad_token_id)


# -- translation prompts -----------------------------------------------------------------------------------------

def _encode_prompt_pairs(batch: dict, tokenizer: Any, template: str, source_lang: str, target_lang: str,
                         keep_text: bool) -> dict:
    input_ids, labels = [], []
    for source, target in zip(batch["source"], batch["target"]):
        ids, prompt_len = encode_prompt_pair(tokenizer, render_prompt(template, source, source_lang, target_lang),
                                             target)
        input_ids.append(ids)
        labels.append([IGNORE_INDEX] * prompt_len + ids[prompt_len:])
    columns = {"input_ids": input_ids, "labels": labels}
    if keep_text:
        columns.update(source=batch["source"], target=batch["target"])
    return columns


def _prompt_dataset(corpus: Corpus, tokenizer: Any, template: str, train: bool, config: DataConfig) -> datasets.Dataset:
    cache_dir = config.cache_dir or default_cache_dir()
    text = read_text_dataset(corpus, cache_dir, max_lines=config.max_lines)
    fingerprint = datasets.fingerprint.Hasher.hash(
        [text._fingerprint, tokenizer_fingerprint(tokenizer), template, train, "causal-lm", _VERSION])
    return text.map(
        _encode_prompt_pairs, batched=True, remove_columns=["source", "target"], new_fingerprint=fingerprint,
        fn_kwargs={"tokenizer": tokenizer, "template": template, "source_lang": corpus.source_lang,
                   "target_lang": corpus.target_lang, "keep_text": not train},
        desc=f"tokenizing {corpus.corpus_id}")


# -- dialogues ---------------------------------------------------------------------------------------------------

def _dialogue_corpora(config: DataConfig, kind: str) -> list[Corpus]:
    """One corpus per JSONL path of `train_corpora`/`valid_corpora` (data_dir first, then the working directory)."""
    specs = config.train_corpora if kind == "train_corpora" else config.valid_corpora
    corpora = []
    for index, spec in enumerate(specs):
        for template in spec.paths:
            candidates = [Path(config.data_dir) / template, Path(template)]
            path = next((candidate for candidate in candidates if candidate.is_file()), None)
            if path is None:
                raise FileNotFoundError(f"{kind}[{index}]: {template}: no such file in data_dir {config.data_dir!r} "
                                        "nor in the working directory (dialogue corpora are JSONL files)")
            name = path.name.removesuffix(".jsonl")
            corpora.append(Corpus(corpus_id=name, source_path=str(path), target_path=str(path), source_lang=None,
                                  target_lang=None, domain=spec.domain or name, format="jsonl",
                                  multiplier=spec.multiplier, probability=spec.probability))
    if not corpora:
        raise ValueError(f"{kind}: no corpus is defined")
    return corpora


def _dialogue_rows(corpus: Corpus, tokenizer: Any, chat_template: str, max_lines: int | None, valid: bool) -> dict:
    """Columns of a dialogue file, every line read and checked first."""
    conversations = list(read_conversations(corpus.source_path, max_lines=max_lines))
    if not conversations:
        raise ValueError(f"corpus {corpus.corpus_id} ({corpus.source_path}) is empty: no conversation")
    columns: dict[str, list] = {"input_ids": [], "labels": [], "line": []}
    if valid:
        columns.update(source=[], target=[])
    for number, messages in conversations:
        ids, flags = encode_conversation(tokenizer, messages, chat_template)
        columns["input_ids"].append(ids)
        columns["labels"].append([token if flag else IGNORE_INDEX for token, flag in zip(ids, flags)])
        columns["line"].append(number)
        if valid:  # BLEU/chrF of the last assistant answer, given the conversation before it
            last = max(i for i, message in enumerate(messages) if message["role"] == "assistant")
            columns["source"].append(messages[:last])
            columns["target"].append(messages[last]["content"])
    return columns


# -- building ----------------------------------------------------------------------------------------------------

def _corpora(config: DataConfig, task: str, kind: str) -> list[Corpus]:
    if task == "dialogue":
        return _dialogue_corpora(config, kind)
    train = kind == "train_corpora"
    return expand_corpora(
        config.train_corpora if train else config.valid_corpora, config.data_dir,
        config.source_langs if train else config.valid_source_langs or config.source_langs,
        config.target_langs if train else config.valid_target_langs or config.target_langs,
        config.lang_pairs if train else config.valid_lang_pairs or config.lang_pairs,
        config.allow_monolingual, kind=kind)


def _tokenized(corpus: Corpus, task: str, tokenizer: Any, config: DataConfig, prompt_template: str | None,
               chat_template: str | None, train: bool):
    """The corpus tokenized: a `datasets.Dataset` (train) or its columns as lists (valid)."""
    if task == "dialogue":
        columns = _dialogue_rows(corpus, tokenizer, chat_template, config.max_lines, valid=not train)
        return datasets.Dataset.from_dict({"input_ids": columns["input_ids"], "labels": columns["labels"],
                                           "line": columns["line"]}) if train else columns
    dataset = _prompt_dataset(corpus, tokenizer, prompt_template, train, config)
    return dataset if train else dataset.to_dict()


def build_lm_train_dataset(config: DataConfig, tokenizer: Any, task: str, *, prompt_template: str | None = None,
                           chat_template: str | None = None, rank: int = 0, world_size: int = 1) -> CausalLMStream:
    """This rank's endless stream of causal-LM batches (see the module docstring).

    Sequences longer than `max_len` (`max_target_len` when set) tokens are skipped, and counted in the log.

    Raises:
        FileNotFoundError, ValueError: missing, malformed or empty corpora (file and line), or nothing within
            the length limit, before any training step.
    """
    limit = config.target_len_limit
    corpora = _corpora(config, task, "train_corpora")
    kept_datasets = []
    for corpus in corpora:
        dataset = _tokenized(corpus, task, tokenizer, config, prompt_template, chat_template, train=True)
        lengths = np.array([len(ids) for ids in dataset["input_ids"]])
        keep = np.flatnonzero(lengths <= limit)
        if not len(keep):
            raise ValueError(f"corpus {corpus.corpus_id}: all {len(dataset)} sequences are longer than max_len "
                             f"({limit} tokens)")
        if len(keep) < len(dataset):
            logger.info("%s: skipped %d of %d sequences longer than %d tokens", corpus.corpus_id,
                        len(dataset) - len(keep), len(dataset), limit)
            dataset = dataset.select(keep).flatten_indices()
        kept_datasets.append(dataset)
    return CausalLMStream(corpora, kept_datasets, config, tokenizer.pad_token_id, tokenizer.pad_token_id,
                          rank=rank, world_size=world_size)


def build_lm_valid_datasets(config: DataConfig, tokenizer: Any, task: str, *, prompt_template: str | None = None,
                            chat_template: str | None = None) -> dict[str, ValidSet]:
    """Validation sets by corpus id: fixed batches for the loss (sequences truncated to the length limit) and, for
    BLEU/chrF, the sources (source sentences, or the conversation before its last assistant answer) and
    references (targets, or that answer)."""
    limit = config.target_len_limit
    valid_sets = {}
    for corpus in _corpora(config, task, "valid_corpora"):
        columns = _tokenized(corpus, task, tokenizer, config, prompt_template, chat_template, train=False)
        input_ids = [ids[:limit] for ids in columns["input_ids"]]
        labels = [ids[:limit] for ids in columns["labels"]]
        lengths = np.array([len(ids) for ids in input_ids])
        indices = length_sorted_batches(lengths, lengths, config.batch_size, config.lines_per_batch)
        meta = {"source_lang": corpus.source_lang, "target_lang": corpus.target_lang, "domain": corpus.domain}
        batches = [collate_causal([input_ids[i] for i in batch], [labels[i] for i in batch], tokenizer.pad_token_id,
                                  meta) for batch in indices]
        valid_sets[corpus.corpus_id] = ValidSet(corpus, batches, [[int(i) for i in batch] for batch in indices],
                                                columns["source"], columns["target"])
    return valid_sets
