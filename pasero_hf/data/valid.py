"""Validation sets: every validation corpus tokenized, truncated to the length limits and cut into fixed batches,
with its raw source and reference lines kept for BLEU/chrF."""

from dataclasses import dataclass
from typing import Any

import numpy as np

from pasero_hf.data.batching import collate_pairs, length_sorted_batches
from pasero_hf.data.config import DataConfig
from pasero_hf.data.corpora import Corpus, expand_corpora
from pasero_hf.data.tokenized import LengthLimits, tokenize_corpus
from pasero_hf.tokenization.model_languages import ModelLanguages


@dataclass
class ValidSet:
    """One validation corpus.

    Attributes:
        corpus: the corpus (languages, domain, files).
        batches: model inputs (as in training), sorted by length for little padding.
        batch_indices: for each batch, the indices of its pairs in `sources`/`references` (to put hypotheses
            back in corpus order).
        sources, references: the raw text of the non-empty pairs, in corpus order.
    """

    corpus: Corpus
    batches: list[dict]
    batch_indices: list[list[int]]
    sources: list[str]
    references: list[str]

    def shard(self, rank: int, world_size: int) -> "ValidSet":
        """The batches of one data-parallel rank (every `world_size`-th; text stays whole)."""
        return ValidSet(self.corpus, self.batches[rank::world_size], self.batch_indices[rank::world_size],
                        self.sources, self.references)


def build_valid_datasets(
    config: DataConfig,
    tokenizer: Any,
    decoder_start_token_id: int,
    pad_token_id: int | None = None,
    cache_dir: str | None = None,
    languages: ModelLanguages | None = None,
) -> dict[str, ValidSet]:
    """Validation sets by corpus id (e.g. ``"valid.en-es"``), built from ``config.valid_corpora``.

    Languages default to ``valid_lang_pairs`` / ``valid_source_langs`` x ``valid_target_langs``, then to the training
    ones. Pairs longer than the limits are truncated (never dropped); pairs with an empty side are skipped.
    `languages`: as in `build_train_dataset`.
    """
    corpora = expand_corpora(
        config.valid_corpora, config.data_dir,
        config.valid_source_langs or config.source_langs, config.valid_target_langs or config.target_langs,
        config.valid_lang_pairs or config.lang_pairs, config.allow_monolingual, kind="valid_corpora",
    )
    pad_token_id = tokenizer.pad_token_id if pad_token_id is None else pad_token_id
    if pad_token_id is None:
        raise ValueError("the tokenizer has no pad token: pass pad_token_id")
    limits = LengthLimits(config.source_len_limit, config.target_len_limit)
    valid_sets = {}
    for corpus in corpora:
        dataset = tokenize_corpus(corpus, tokenizer, limits, train=False, lang_code=config.lang_code, domain_tag=config.domain_tag,
                                  cache_dir=cache_dir or config.cache_dir, max_lines=config.max_lines, languages=languages)
        columns = dataset.to_dict()
        input_ids, labels = columns["input_ids"], columns["labels"]
        indices = length_sorted_batches(
            np.array([len(ids) for ids in input_ids]), np.array([len(ids) for ids in labels]),
            config.batch_size, config.lines_per_batch,
        )
        meta = {"source_lang": corpus.source_lang, "target_lang": corpus.target_lang, "domain": corpus.domain}
        batches = [
            collate_pairs([input_ids[i] for i in batch], [labels[i] for i in batch], pad_token_id,
                          decoder_start_token_id, meta)
            for batch in indices
        ]
        valid_sets[corpus.corpus_id] = ValidSet(
            corpus, batches, [[int(i) for i in batch] for batch in indices], columns["source"], columns["target"]
        )
    return valid_sets
