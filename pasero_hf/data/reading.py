"""Reading raw (source, target) line pairs from a corpus, in every supported format.

Pairs with an empty side are skipped (Pasero's behaviour). Malformed input fails with the file and line number:
invalid UTF-8, a TSV line without exactly two columns, invalid JSON or a missing language field, and parallel files
of different line counts (checked before anything is read, so nothing is ever silently misaligned).
"""

import json
import os
from collections.abc import Iterator

from pasero_hf.data.corpora import Corpus


class CorpusFormatError(ValueError):
    """A corpus file is malformed; the message names the file and line."""


def count_lines(path: str) -> int:
    """Number of lines of a text file (a last line without a newline counts)."""
    count = 0
    last = b"\n"
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def check_parallel_line_counts(corpus: Corpus) -> int:
    """Line count of a 'parallel' corpus; raises when its source and target files differ in length."""
    source_count = count_lines(corpus.source_path)
    target_count = count_lines(corpus.target_path)
    if source_count != target_count:
        raise CorpusFormatError(
            f"corpus {corpus.corpus_id}: source and target files have different line counts: "
            f"{corpus.source_path} has {source_count} lines, {corpus.target_path} has {target_count} lines"
        )
    return source_count


def _decoded_lines(path: str) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                yield number, raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                raise CorpusFormatError(
                    f"{path}:{number}: invalid UTF-8 ({error.reason} at byte {error.start})"
                ) from None


def _parallel_pairs(corpus: Corpus) -> Iterator[tuple[str, str]]:
    check_parallel_line_counts(corpus)
    for (_, source), (_, target) in zip(_decoded_lines(corpus.source_path), _decoded_lines(corpus.target_path)):
        yield source, target


def _tsv_pairs(corpus: Corpus) -> Iterator[tuple[str, str]]:
    for number, line in _decoded_lines(corpus.source_path):
        if not line:
            continue
        columns = line.split("\t")
        if len(columns) != 2:
            raise CorpusFormatError(
                f"{corpus.source_path}:{number}: expected 2 tab-separated columns (source, target), "
                f"found {len(columns)}"
            )
        yield columns[0].strip(), columns[1].strip()


def _row_pair(row: dict, corpus: Corpus, where: str) -> tuple[str, str]:
    fields = row.get("translation", row) if isinstance(row, dict) else None
    if not isinstance(fields, dict):
        raise CorpusFormatError(f"{where}: expected an object with language fields, got {row!r:.80}")
    sides = []
    for lang in (corpus.source_lang, corpus.target_lang):
        if lang not in fields:
            raise CorpusFormatError(
                f"{where}: no {lang!r} field (fields: {sorted(fields)}); rows need one field per language code "
                "or a 'translation' object keyed by language code"
            )
        value = fields[lang]
        if not isinstance(value, str):
            raise CorpusFormatError(f"{where}: field {lang!r} is not a string: {value!r:.80}")
        sides.append(value.strip())
    return sides[0], sides[1]


def _jsonl_pairs(corpus: Corpus) -> Iterator[tuple[str, str]]:
    for number, line in _decoded_lines(corpus.source_path):
        if not line:
            continue
        where = f"{corpus.source_path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise CorpusFormatError(f"{where}: invalid JSON ({error.msg})") from None
        yield _row_pair(row, corpus, where)


def _dataset_pairs(corpus: Corpus) -> Iterator[tuple[str, str]]:
    import datasets

    if not os.path.isdir(corpus.source_path):
        raise CorpusFormatError(f"{corpus.source_path}: a 'dataset' corpus must be a save_to_disk directory")
    dataset = datasets.load_from_disk(corpus.source_path)
    if isinstance(dataset, datasets.DatasetDict):
        raise CorpusFormatError(
            f"{corpus.source_path}: is a DatasetDict with splits {list(dataset)}; point the path at one split"
        )
    for index, row in enumerate(dataset):
        yield _row_pair(row, corpus, f"{corpus.source_path} row {index}")


_READERS = {"parallel": _parallel_pairs, "tsv": _tsv_pairs, "jsonl": _jsonl_pairs, "dataset": _dataset_pairs}


def read_rows(corpus: Corpus) -> Iterator[tuple[str, str]]:
    """Every (source, target) row of `corpus`, empty sides included (format checks as in `read_pairs`)."""
    return _READERS[corpus.format](corpus)


def read_pairs(corpus: Corpus, max_lines: int | None = None) -> Iterator[tuple[str, str]]:
    """Non-empty (source, target) pairs of `corpus`, in file order; at most `max_lines` of them."""
    kept = 0
    for source, target in _READERS[corpus.format](corpus):
        if not source or not target:
            continue
        yield source, target
        kept += 1
        if max_lines is not None and kept >= max_lines:
            return
