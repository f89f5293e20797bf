"""Checking every corpus of a `DataConfig` without tokenizing anything: what `--dry-run` prints, and the data checks
training runs before it writes anything.

`inspect_corpora(config)` expands the train and validation corpora, reads every file once (existence, UTF-8,
source/target alignment, format, empty corpora, undefined language pairs) and returns one row per corpus with its
line and pair counts and, for training corpora, the sampling probability the temperature gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pasero_hf.data.config import DataConfig
from pasero_hf.data.corpora import Corpus, expand_corpora
from pasero_hf.data.reading import read_rows
from pasero_hf.data.sampling import corpus_probabilities


@dataclass
class CorpusRow:
    """One corpus as the data checks saw it."""

    split: str  # "train" or "valid"
    corpus: Corpus
    lines: int  # lines (rows) in the file(s)
    pairs: int  # pairs with both sides non-empty (before length filtering and max_lines)
    probability: float | None = None  # training sampling probability


def _count(corpus: Corpus) -> tuple[int, int]:
    lines = pairs = 0
    for source, target in read_rows(corpus):
        lines += 1
        pairs += bool(source and target)
    return lines, pairs


def inspect_corpora(config: DataConfig) -> list[CorpusRow]:
    """Rows of every training then validation corpus.

    Raises:
        FileNotFoundError, ValueError: the first problem found, with its file and line.
    """
    train = expand_corpora(config.train_corpora, config.data_dir, config.source_langs, config.target_langs,
                           config.lang_pairs, config.allow_monolingual, kind="train_corpora")
    valid = expand_corpora(
        config.valid_corpora, config.data_dir,
        config.valid_source_langs or config.source_langs, config.valid_target_langs or config.target_langs,
        config.valid_lang_pairs or config.lang_pairs, config.allow_monolingual, kind="valid_corpora",
    )
    rows = []
    for split, corpora in (("train", train), ("valid", valid)):
        for corpus in corpora:
            lines, pairs = _count(corpus)
            if pairs == 0:
                raise ValueError(f"{split}: corpus {corpus.corpus_id} ({corpus.source_path}) has no non-empty pair")
            rows.append(CorpusRow(split, corpus, lines, pairs))
    train_rows = [row for row in rows if row.split == "train"]
    sizes = [min(row.pairs, config.max_lines or row.pairs) for row in train_rows]
    probabilities = corpus_probabilities(
        sizes, [row.corpus.lang_pair for row in train_rows], [row.corpus.multiplier for row in train_rows],
        [row.corpus.probability for row in train_rows], config.lang_temperature)
    for row, probability in zip(train_rows, probabilities):
        row.probability = float(probability)
    return rows


def format_corpus_table(rows: list[CorpusRow]) -> str:
    """A plain-text table: split, corpus, pair, lines, pairs, sampling probability, files."""
    header = ("split", "corpus", "pair", "lines", "pairs", "prob", "files")
    body = [
        (row.split, row.corpus.corpus_id, row.corpus.lang_pair, f"{row.lines:,}", f"{row.pairs:,}",
         f"{row.probability:.4f}" if row.probability is not None else "-", " ".join(row.corpus.paths))
        for row in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]
    right = {3, 4, 5}

    def line(cells: tuple[str, ...]) -> str:
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(padded + [cells[-1]])

    return "\n".join([line(header), *(line(cells) for cells in body)])
