"""The endless, resumable, multilingual training stream of ready batches.

How it works: the stream is cut into buffers of `buffer_size` pairs. For buffer k, a generator seeded with
(seed, k) picks the corpus of each pair with the sampling probabilities; each corpus is read in a random order
that is reshuffled at each of its epochs (seeded by (seed, corpus, epoch)), endlessly, so small corpora repeat and
none ever runs out (what `interleave_datasets(..., stopping_strategy="all_exhausted")` does, minus its end). The
buffer's pairs are grouped by `batch_by`, sorted by length, cut into token-based batches, and the batches shuffled.
Everything is a function of the seed and of the batch position, so:

- rank r of w takes global batches r, r + w, r + 2w, ...: disjoint data, and every rank gets exactly one batch
  per step (the stream never ends);
- the state is just a position (``steps``, batches yielded per rank, plus a cursor to jump to it directly):
  `load_state_dict` continues exactly where an uninterrupted run would be, without replaying tokenization.

Why not `datasets.interleave_datasets` over shuffled iterable datasets: their checkpoints drop the shuffle buffer's
content ("examples from shuffle buffers are lost when resuming", datasets' IterableDataset.state_dict), so a resumed
run would not see the data an uninterrupted one sees. Storage, reading and tokenization caching remain `datasets`'.
"""

import time
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc
import torch
from tqdm.auto import tqdm

from pasero_hf.data.batching import collate_pairs, common_meta, length_sorted_batches
from pasero_hf.data.config import DataConfig
from pasero_hf.data.corpora import Corpus, expand_corpora
from pasero_hf.data.sampling import corpus_probabilities
from pasero_hf.data.tokenized import LengthLimits, tokenize_corpus
from pasero_hf.tokenization.model_languages import ModelLanguages

STATE_VERSION = 1
_KEPT_CURSORS = 8


@dataclass(frozen=True)
class _Cursor:
    """Start of a buffer: its index, the per-corpus draw counts before it, the global batches before it."""

    buffer_index: int
    draws: np.ndarray
    batches_before: int


def _lengths(dataset: datasets.Dataset, column: str) -> np.ndarray:
    return pc.list_value_length(dataset.data.column(column)).to_numpy(zero_copy_only=False).astype(np.int64)


def _batch_key(corpus: Corpus, batch_by: list[str]) -> tuple:
    values = {"source_lang": corpus.source_lang, "target_lang": corpus.target_lang,
              "lang_pair": corpus.lang_pair, "domain": corpus.domain}
    return tuple(values[key] for key in batch_by)


class TrainStream(torch.utils.data.IterableDataset):
    """Endless iterable of ready training batches for one data-parallel rank (see the module docstring).

    Iterate it directly or through ``DataLoader(stream, batch_size=None)`` (any num_workers: workers split the
    batches and the loader keeps the stream's order): each item is a dict with
    ``input_ids``, ``attention_mask``, ``labels``, ``decoder_input_ids`` (LongTensors) and ``source_lang``,
    ``target_lang``, ``domain`` (strings; None where a batch mixes values, i.e. not covered by `batch_by`).
    A new iterator continues from the current position.
    """

    def __init__(
        self,
        corpora: list[Corpus],
        corpus_datasets: list[datasets.Dataset],
        config: DataConfig,
        pad_token_id: int,
        decoder_start_token_id: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.corpora = corpora
        self.datasets = corpus_datasets
        self.config = config
        self.pad_token_id = pad_token_id
        self.decoder_start_token_id = decoder_start_token_id
        self.rank = rank
        self.world_size = world_size
        self.sizes = np.array([len(d) for d in corpus_datasets], dtype=np.int64)
        self.source_lens = [_lengths(d, "input_ids") for d in corpus_datasets]
        self.target_lens = [_lengths(d, "labels") for d in corpus_datasets]
        self.probabilities = corpus_probabilities(
            self.sizes, [c.lang_pair for c in corpora], [c.multiplier for c in corpora],
            [c.probability for c in corpora], config.lang_temperature,
        )
        # A buffer larger than the data would hold several epochs of a corpus at once, and length sorting would then
        # put the copies of a pair into the same batch: cap it at one pass over the data.
        self.buffer_size = int(min(config.buffer_size, self.sizes.sum()))
        self._batch_by = list(config.batch_by or [])
        self.steps = 0
        self._cursors: list[_Cursor] = []
        self._plans: dict[int, tuple[list[list[tuple[int, int]]], np.ndarray]] = {}

    # -- deterministic plan ------------------------------------------------------------------------------------
    def _example_indices(self, corpus: int, first_draw: int, count: int) -> np.ndarray:
        """Indices in corpus `corpus` of its draws first_draw .. first_draw+count-1 (a new order at each epoch)."""
        epochs, positions = np.divmod(np.arange(first_draw, first_draw + count), self.sizes[corpus])
        if not self.config.shuffle:
            return positions
        indices = np.empty_like(positions)
        for epoch in np.unique(epochs):
            rng = np.random.default_rng([self.config.seed, 1, corpus, int(epoch)])
            in_epoch = epochs == epoch
            indices[in_epoch] = rng.permutation(int(self.sizes[corpus]))[positions[in_epoch]]
        return indices

    def _buffer_batches(self, buffer_index: int, draws: np.ndarray) -> tuple[list[list[tuple[int, int]]], np.ndarray]:
        """The batches of (corpus, example index) of one buffer, and the per-corpus draw counts after it."""
        rng = np.random.default_rng([self.config.seed, 0, buffer_index])
        choices = rng.choice(len(self.corpora), size=self.buffer_size, p=self.probabilities)
        counts = np.bincount(choices, minlength=len(self.corpora))
        groups: dict[tuple, list[int]] = {}
        for corpus in range(len(self.corpora)):
            groups.setdefault(_batch_key(self.corpora[corpus], self._batch_by), []).append(corpus)
        batches: list[list[tuple[int, int]]] = []
        for key in sorted(groups):
            members = [c for c in groups[key] if counts[c]]
            if not members:
                continue
            corpus_ids = np.concatenate([np.full(counts[c], c) for c in members])
            example_ids = np.concatenate([self._example_indices(c, int(draws[c]), int(counts[c])) for c in members])
            source_lens = np.concatenate([self.source_lens[c][example_ids[corpus_ids == c]] for c in members])
            target_lens = np.concatenate([self.target_lens[c][example_ids[corpus_ids == c]] for c in members])
            for batch in length_sorted_batches(
                source_lens, target_lens, self.config.batch_size, self.config.lines_per_batch,
                rng=rng if self.config.shuffle else None,
            ):
                batches.append([(int(corpus_ids[i]), int(example_ids[i])) for i in batch])
        if self.config.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches, draws + counts

    def _plan_of(self, cursor: _Cursor) -> tuple[list[list[tuple[int, int]]], np.ndarray]:
        if cursor.buffer_index not in self._plans:
            if len(self._plans) >= 2:
                self._plans.pop(next(iter(self._plans)))
            self._plans[cursor.buffer_index] = self._buffer_batches(cursor.buffer_index, cursor.draws)
        return self._plans[cursor.buffer_index]

    def _locate(self, index: int) -> tuple[_Cursor, list[tuple[int, int]]]:
        """The cursor of the buffer holding global batch `index`, and that batch.

        Walks forward from the latest known buffer start at or before `index` (a few recent ones are kept, so a
        state can be asked for a step slightly behind the iterator; older ones replay the plan from the start,
        which needs no tokenization).
        """
        known = [c for c in self._cursors if c.batches_before <= index]
        cursor = known[-1] if known else _Cursor(0, np.zeros(len(self.corpora), dtype=np.int64), 0)
        self._cursors = known[-_KEPT_CURSORS:] or [cursor]
        batches, next_draws = self._plan_of(cursor)
        while index >= cursor.batches_before + len(batches):
            cursor = _Cursor(cursor.buffer_index + 1, next_draws, cursor.batches_before + len(batches))
            self._cursors = (self._cursors + [cursor])[-_KEPT_CURSORS:]
            batches, next_draws = self._plan_of(cursor)
        return cursor, batches[index - cursor.batches_before]

    # -- iteration ---------------------------------------------------------------------------------------------
    def collate(self, examples: list[tuple[int, int]]) -> dict:
        """Model inputs of a list of (corpus, example index)."""
        by_corpus: dict[int, list[int]] = {}
        for corpus, index in examples:
            by_corpus.setdefault(corpus, []).append(index)
        input_ids, labels, metas = [], [], []
        for corpus, indices in by_corpus.items():
            rows = self.datasets[corpus][indices]
            input_ids += rows["input_ids"]
            labels += rows["labels"]
            c = self.corpora[corpus]
            metas += [{"source_lang": c.source_lang, "target_lang": c.target_lang, "domain": c.domain}] * len(indices)
        return collate_pairs(input_ids, labels, self.pad_token_id, self.decoder_start_token_id, common_meta(metas))

    def __iter__(self):
        # DataLoader workers each take every num_workers-th batch of this rank; the DataLoader collects them
        # round-robin, so the order is the one without workers. (Workers advance their own copies of `steps`: with
        # workers, ask `state_dict(steps=...)` for the trainer's count.)
        worker = torch.utils.data.get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        while True:
            _, examples = self._locate((self.steps + worker_id) * self.world_size + self.rank)
            self.steps += num_workers
            yield self.collate(examples)

    # -- checkpointing -----------------------------------------------------------------------------------------
    def state_dict(self, steps: int | None = None) -> dict[str, Any]:
        """Position of the stream after `steps` batches of this rank (default: the batches yielded so far).

        The state is the same on every rank after the same number of steps. Pass `steps` explicitly when a
        DataLoader wrapper fetches batches ahead of the training loop.
        """
        steps = self.steps if steps is None else steps
        cursor, _ = self._locate(steps * self.world_size)  # the buffer where the next round starts
        return {
            "version": STATE_VERSION,
            "steps": steps,
            "world_size": self.world_size,
            "seed": self.config.seed,
            "corpora": [c.corpus_id for c in self.corpora],
            "buffer_index": cursor.buffer_index,
            "draws": cursor.draws.tolist(),
            "batches_before_buffer": cursor.batches_before,
            "corpus_epochs": (cursor.draws // self.sizes).tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict()`; raises if it was saved with other corpora, seed or world size."""
        for key, mine in (("version", STATE_VERSION), ("world_size", self.world_size), ("seed", self.config.seed),
                          ("corpora", [c.corpus_id for c in self.corpora])):
            if state.get(key) != mine:
                raise ValueError(f"data stream state: {key} is {state.get(key)!r}, this stream has {mine!r}")
        self.steps = int(state["steps"])
        self._cursors = [_Cursor(int(state["buffer_index"]), np.array(state["draws"], dtype=np.int64),
                                 int(state["batches_before_buffer"]))]


def _train_limits(config: DataConfig) -> LengthLimits:
    return LengthLimits(config.source_len_limit, config.target_len_limit, config.min_len_ratio, config.max_len_ratio)


def build_train_dataset(
    config: DataConfig,
    tokenizer: Any,
    decoder_start_token_id: int,
    rank: int = 0,
    world_size: int = 1,
    pad_token_id: int | None = None,
    cache_dir: str | None = None,
    languages: ModelLanguages | None = None,
) -> TrainStream:
    """Expand, read, tokenize (cached) and filter the training corpora; return this rank's batch stream.

    Args:
        config: the data options.
        tokenizer: a Hugging Face tokenizer (see `pasero_hf.data.tokenized`).
        decoder_start_token_id: first decoder input (EOS for Pasero models: ``model.config.decoder_start_token_id``).
        rank, world_size: data-parallel position of this process.
        pad_token_id: default ``tokenizer.pad_token_id``.
        cache_dir: tokenization cache (default ``config.cache_dir``, else a temp dir).
        languages: how a pretrained model wants its languages (`pasero_hf.tokenization.model_languages.ModelLanguages`:
            codes mapped for its tokenizer, source prefixes); None: the tokenizer's `src_lang`/`tgt_lang` as given.

    Raises:
        FileNotFoundError, ValueError: on missing files, misaligned or empty corpora, undefined language pairs,
            invalid UTF-8 and other malformed input, before any training step.
    """
    corpora = expand_corpora(
        config.train_corpora, config.data_dir, config.source_langs, config.target_langs, config.lang_pairs,
        config.allow_monolingual, kind="train_corpora",
    )
    pad_token_id = tokenizer.pad_token_id if pad_token_id is None else pad_token_id
    if pad_token_id is None:
        raise ValueError("the tokenizer has no pad token: pass pad_token_id")
    limits = _train_limits(config)
    corpus_datasets = [
        tokenize_corpus(corpus, tokenizer, limits, train=True, lang_code=config.lang_code, domain_tag=config.domain_tag,
                        cache_dir=cache_dir or config.cache_dir, max_lines=config.max_lines, languages=languages)
        for corpus in tqdm(corpora, desc="training corpora", disable=len(corpora) < 2)
    ]
    return TrainStream(corpora, corpus_datasets, config, pad_token_id, decoder_start_token_id, rank, world_size)


def data_loader_throughput(stream: TrainStream, num_batches: int = 200, warmup: int = 5) -> dict[str, float]:
    """Batches/s, pairs/s and tokens/s of the data pipeline alone (no model), measured over `num_batches`.

    Consumes batches from `stream` (its position moves forward).
    """
    iterator = iter(stream)
    for _ in range(warmup):
        next(iterator)
    pairs = tokens = 0
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
        pairs += batch["input_ids"].shape[0]
        tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum())
    elapsed = time.perf_counter() - start
    return {"batches_per_s": num_batches / elapsed, "pairs_per_s": pairs / elapsed,
            "tokens_per_s": tokens / elapsed, "seconds": elapsed}
