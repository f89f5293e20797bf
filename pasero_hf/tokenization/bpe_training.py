"""Training a Pasero BPE model: word counting, temperature-based balancing of languages, greedy BPE merges.

The merges follow Pasero's rule: repeatedly merge the most frequent pair of adjacent symbols (ties go to the
largest pair in string order) until `num_merges` merges or no pair occurs twice. Pair counts are kept exact and
updated incrementally, which is what makes this much faster than the original trainer.
"""

import contextlib
import gc
import os
import unicodedata
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice

import regex

from .bpe import BPEOptions, Merge, PaseroBPE
from .inline_casing import CASED_WORDS, UNCASED_WORDS, WHITESPACE, WORD_BOUNDARY, split_on_whitespace

# Further splitting of words before counting, by aggressiveness level (the `tokenization` option):
# 0: none; 1: alphanumerics apart from other symbols; 2: letters, digits and other symbols apart;
# 3: like 2 and each other symbol alone; 4: like 3 and each digit alone.
_SPLIT_LEVELS = (
    None,
    regex.compile(r"(▁?[[:alnum:]]+|[^[:alnum:]]+)"),
    regex.compile(r"(▁?[[:alpha:]]+|▁?[[:digit:]]+|[^[:alnum:]]+)"),
    regex.compile(r"(▁?[[:alpha:]]+|▁?[[:digit:]]+|[^[:alnum:]])"),
    regex.compile(r"(▁?[[:alpha:]]+|▁?[[:digit:]]|[^[:alnum:]])"),
)

# Scripts that words are split between ("+" joins scripts that count as one: Japanese mixes kana and Han in words).
_SCRIPTS = (
    "Latin Greek Cyrillic Armenian Hebrew Arabic Syriac Thaana Devanagari Bengali Gurmukhi Gujarati Oriya Tamil "
    "Telugu Kannada Malayalam Sinhala Thai Lao Tibetan Myanmar Georgian Hangul Ethiopic Cherokee Canadian_Aboriginal "
    "Ogham Runic Khmer Mongolian Han+Hiragana+Katakana Bopomofo Yi Common Inherited"
).split()
_SCRIPT_CLASSES = ["".join(f"\\p{{Script={name}}}" for name in group.split("+")) for group in _SCRIPTS]
# One run per script; characters of other scripts form runs of their own; `▁` belongs to the run after it.
_SCRIPT_RUNS = regex.compile(
    f"{WORD_BOUNDARY}?(?:"
    + "|".join(f"[{cls}]+" for cls in _SCRIPT_CLASSES)
    + f"|[^{''.join(_SCRIPT_CLASSES)}{WORD_BOUNDARY}]+)|{WORD_BOUNDARY}"
)

_LINES_PER_CHUNK = 50000

_LANG_FROM_FILENAME = regex.compile(r".+\.([a-z]+)$")


def split_by_script(token: str) -> list[str]:
    """Split `token` (a word: `▁` only at its start) where the Unicode script changes."""
    return _SCRIPT_RUNS.findall(token)


@dataclass
class WordSplitting:
    """How training text is cut into the words whose frequencies BPE learns from."""

    options: BPEOptions
    split_by_script: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.options.tokenization < len(_SPLIT_LEVELS):
            raise ValueError(
                f"tokenization must be between 0 and {len(_SPLIT_LEVELS) - 1}, got {self.options.tokenization}"
            )

    def count_raw_words(self, lines: Sequence[str]) -> tuple[Counter, int]:
        """Counts of the cased words of `lines` (before lowercasing and splitting), and the non-empty line count."""
        words_pattern = CASED_WORDS if self.options.inline_case else UNCASED_WORDS
        line_count = sum(1 for line in lines if line.strip())
        if self.options.nfkc or self.options.protect_regex:
            return self._count_raw_words_by_line(lines, words_pattern), line_count
        # Fast path, same words: words never span whitespace, and the newline between two lines acts as the word
        # boundary each line starts with, so whitespace-separated chunks are counted first and split once each.
        chunk_counts = Counter(split_on_whitespace("".join(lines).replace(WORD_BOUNDARY, " ")))
        counts: Counter = Counter()
        for chunk, count in chunk_counts.items():
            rest = chunk[1:]
            if chunk.isascii() and (not self.options.inline_case or rest == rest.lower()):
                counts[WORD_BOUNDARY + chunk] += count  # no capital after the first character: a single word
                continue
            for word in words_pattern.findall(WORD_BOUNDARY + chunk):
                counts[word] += count
        return counts, line_count

    def _count_raw_words_by_line(self, lines: Sequence[str], words_pattern: regex.Pattern) -> Counter:
        protect = regex.compile(self.options.protect_regex) if self.options.protect_regex else None
        counts: Counter = Counter()
        for line in lines:
            line = line.strip()
            if not line:
                continue
            if self.options.nfkc:
                line = unicodedata.normalize("NFKC", line)
            if protect is not None:
                line = protect.sub(" ", line)
            line = WORD_BOUNDARY + WHITESPACE.sub(WORD_BOUNDARY, line.replace(WORD_BOUNDARY, " "))
            counts.update(words_pattern.findall(line))
        return counts

    def split_words(self, raw_counts: Counter) -> Counter:
        """Lowercase (with inline casing) and split the raw words into the units BPE is trained on."""
        splitter = _SPLIT_LEVELS[self.options.tokenization]
        # In ASCII, scripts only separate letters (Latin) from the rest (Common), which levels >= 2 do anyway.
        ascii_split_by_level = self.options.tokenization >= 2
        counts: Counter = Counter()
        for word, count in raw_counts.items():
            if self.options.inline_case:
                word = word.lower()
            body = word[1:] if word.startswith(WORD_BOUNDARY) else word
            if ascii_split_by_level and body.isascii() and body.isalpha():
                counts[word] += count  # the common case: nothing to split
                continue
            if self.split_by_script and not (ascii_split_by_level and body.isascii()):
                pieces = split_by_script(word)
            else:
                pieces = [word]
            if splitter is not None:
                pieces = [part for piece in pieces for part in splitter.findall(piece)]
            for piece in pieces:
                counts[piece] += count
        return counts


def language_of(path: str) -> str:
    """Language code from a file name's extension (`train.de` -> `de`)."""
    match = _LANG_FROM_FILENAME.match(os.path.basename(path))
    if match is None:
        raise ValueError(
            f"cannot infer the language of {path}: with several inputs, each file name must end with "
            f"a language extension like '.en'"
        )
    return match.group(1)


def _chunks(paths: Sequence[str], langs: Sequence[str], size: int) -> Iterator[tuple[str, list[str]]]:
    """(language, lines) chunks of every file, file after file."""
    for path, lang in zip(paths, langs):
        first_line = 1
        with open(path, encoding="utf-8", errors="surrogateescape") as text_file:
            while chunk := list(islice(text_file, size)):
                _check_text(chunk, path, first_line)
                first_line += len(chunk)
                yield lang, chunk


def _check_text(lines: list[str], path: str, first_line: int) -> None:
    """Raise ValueError naming the file and line of the first line that is not UTF-8 text (binary, .xz...)."""
    for number, line in enumerate(lines, first_line):
        try:
            line.encode("utf-8")
        except UnicodeEncodeError as error:
            byte = ord(line[error.start]) - 0xDC00
            raise ValueError(f"{path}:{number}: not UTF-8 text (byte 0x{byte:02x}); binary or compressed "
                             "input?") from None
        if "\0" in line:
            raise ValueError(f"{path}:{number}: binary data (NUL byte); binary or compressed input?")


def _count_chunk(splitting: WordSplitting, lang: str, lines: list[str]) -> tuple[str, Counter, int]:
    raw, line_count = splitting.count_raw_words(lines)
    return lang, splitting.split_words(raw), line_count


def _bounded_map(executor: ProcessPoolExecutor, fn, jobs: Iterable[tuple], max_pending: int) -> Iterator:
    """`fn(*job)` for each job, in order, with at most `max_pending` chunks read ahead (memory stays bounded)."""
    pending: deque = deque()
    for job in jobs:
        pending.append(executor.submit(fn, *job))
        if len(pending) >= max_pending:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def count_words(
    paths: Sequence[str], splitting: WordSplitting, threads: int = 1, progress: bool = False
) -> tuple[dict[str, Counter], dict[str, int]]:
    """Word counts and non-empty line counts per language (one language 'any' for a single input).

    With `threads` > 1, that many processes count chunks of lines, of all files at once."""
    from tqdm import tqdm

    langs = [language_of(path) for path in paths] if len(paths) > 1 else ["any"]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"training file not found: {path}")
    word_counts: dict[str, Counter] = defaultdict(Counter)
    line_counts: dict[str, int] = defaultdict(int)
    jobs = ((splitting, lang, lines) for lang, lines in _chunks(paths, langs, _LINES_PER_CHUNK))
    with (
        tqdm(desc="counting words", unit=" lines", disable=not progress) as bar,
        ProcessPoolExecutor(threads) if threads > 1 else contextlib.nullcontext() as executor,
    ):
        results = (
            _bounded_map(executor, _count_chunk, jobs, max_pending=2 * threads)
            if executor is not None
            else (_count_chunk(*job) for job in jobs)
        )
        for lang, counts, line_count in results:
            word_counts[lang].update(counts)
            line_counts[lang] += line_count
            bar.update(line_count)
    return dict(word_counts), dict(line_counts)


def balance_languages(
    word_counts: dict[str, Counter], line_counts: dict[str, int], temperature: float = 1.0
) -> Counter:
    """Joint word counts where each language is weighted so that its share of lines follows p_lang^(1/T).

    T=1 keeps the natural proportions; larger T moves towards uniform, giving low-resource languages more merges.
    The largest language keeps weight 1.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if len(word_counts) == 1:
        return Counter(next(iter(word_counts.values())))
    langs = list(word_counts)
    lines = [line_counts.get(lang, 0) for lang in langs]
    if not all(lines):
        empty = [lang for lang, count in zip(langs, lines) if not count]
        raise ValueError(f"no non-empty lines for language(s): {', '.join(empty)}")
    total = sum(lines)
    probs = [(count / total) ** (1 / temperature) for count in lines]
    largest = max(lines)
    best_prob = max(probs)
    # multiplier = (target share / natural share), normalized so that the largest language has weight 1
    multipliers = [largest * prob / (best_prob * count) for prob, count in zip(probs, lines)]
    joint: dict[str, float] = defaultdict(float)
    for lang, multiplier in zip(langs, multipliers):
        for word, count in word_counts[lang].items():
            joint[word] += count * multiplier
    return Counter({word: round(count) for word, count in joint.items()})


def learn_merges(word_counts: Counter, num_merges: int, progress: bool = False) -> tuple[list[Merge], dict[str, tuple]]:
    """Greedy BPE on `word_counts`; returns the merges and each word's final segmentation."""
    # Learning allocates millions of small objects and frees few: the cyclic garbage collector would rescan the
    # growing heap again and again for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _greedy_merges(word_counts, num_merges, progress)
    finally:
        if gc_was_enabled:
            gc.enable()


def _greedy_merges(word_counts: Counter, num_merges: int, progress: bool) -> tuple[list[Merge], dict[str, tuple]]:
    from tqdm import tqdm

    word_list = list(word_counts)
    words = [list(word) for word in word_list]
    freqs = [word_counts[word] for word in word_list]

    pair_counts: dict[Merge, int] = defaultdict(int)
    where: dict[Merge, set] = defaultdict(set)
    for index, (symbols, freq) in enumerate(zip(words, freqs)):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += freq
            where[pair].add(index)
    # Pairs grouped by count: the best count never increases (a new pair is at most as frequent as the merged
    # pair), so a pointer walking down the counts finds the best pair without scanning all pairs.
    by_count: dict[int, set] = defaultdict(set)
    for pair, count in pair_counts.items():
        by_count[count].add(pair)
    top = max(pair_counts.values(), default=0)

    merges: list[Merge] = []
    bar = tqdm(total=num_merges, desc="learning merges", unit=" merges", disable=not progress)
    while len(merges) < num_merges:
        while top >= 2 and not by_count.get(top):
            by_count.pop(top, None)
            top -= 1
        if top < 2:
            break
        best = max(by_count[top])
        merges.append(best)
        bar.update()
        left, right = best
        joined = left + right
        pair_counts.pop(best)
        by_count[top].discard(best)
        deltas: dict[Merge, int] = defaultdict(int)
        for index in where.pop(best):
            symbols = words[index]
            n = len(symbols)
            occurrences = symbols.count(left)
            if occurrences == 1:  # the common case: no search loop (list.index raising would cost more)
                start = symbols.index(left)
                starts = [start] if start < n - 1 and symbols[start + 1] == right else []
            elif occurrences:
                starts = _pair_starts(symbols, left, right)
            else:
                starts = []
            if not starts:
                continue  # stale index entry: an earlier merge consumed the pair in this word
            freq = freqs[index]
            if len(starts) == 1:
                # the common case, written out: two neighbour pairs change, `left right` itself is gone
                start = starts[0]
                if start:
                    before = symbols[start - 1]
                    deltas[before, left] -= freq
                    deltas[before, joined] += freq
                    where[before, joined].add(index)
                if start + 2 < n:
                    after = symbols[start + 2]
                    deltas[right, after] -= freq
                    deltas[joined, after] += freq
                    where[joined, after].add(index)
                symbols[start : start + 2] = [joined]  # in place: this word's list is not shared
                continue
            merged = []
            new_sites = []
            previous = 0
            for start in starts:
                merged += symbols[previous:start]
                new_sites.append(len(merged))
                merged.append(joined)
                previous = start + 2
            merged += symbols[previous:]
            old_starts = set()
            for start in starts:
                old_starts.update((start - 1, start + 1))
            for start in old_starts.difference(starts):
                if 0 <= start < n - 1:
                    deltas[symbols[start], symbols[start + 1]] -= freq
            new_starts = set()
            for site in new_sites:
                new_starts.update((site - 1, site))
            m = len(merged)
            for start in new_starts:
                if 0 <= start < m - 1:
                    pair = (merged[start], merged[start + 1])
                    deltas[pair] += freq
                    where[pair].add(index)
            words[index] = merged
        for pair, delta in deltas.items():
            if not delta:
                continue
            old = pair_counts.get(pair, 0)
            new = old + delta
            if old:
                by_count[old].discard(pair)
            if new > 0:
                pair_counts[pair] = new
                by_count[new].add(pair)
            else:
                pair_counts.pop(pair, None)
    bar.close()
    return merges, {word: tuple(symbols) for word, symbols in zip(word_list, words)}


def _pair_starts(symbols: list[str], left: str, right: str) -> list[int]:
    """Positions of the non-overlapping occurrences of `left right` in `symbols`, left to right."""
    starts = []
    last = len(symbols) - 1
    i = 0
    while i < last:
        if symbols[i] == left and symbols[i + 1] == right:
            starts.append(i)
            i += 2
        else:
            i += 1
    return starts


def subword_counts(word_counts: Counter, segmentations: dict[str, tuple]) -> Counter:
    """Subword frequencies implied by word frequencies and their segmentations."""
    counts: Counter = Counter()
    for word, count in word_counts.items():
        for subword in segmentations[word]:
            counts[subword] += count
    return counts


@dataclass
class TrainingResult:
    """A trained BPE model and the subword counts of each input language (for dictionaries)."""

    bpe: PaseroBPE
    subword_counts: dict[str, Counter]  # language ('any' for a single input) -> subword -> count


def train_bpe(
    paths: Sequence[str],
    num_merges: int = 8000,
    options: BPEOptions | None = None,
    temperature: float = 1.0,
    split_by_script: bool = True,
    threads: int = 1,
    progress: bool = False,
) -> TrainingResult:
    """Learn a Pasero BPE model from text files (one language per file when there are several)."""
    if not paths:
        raise ValueError("no training files given")
    if num_merges < 0:
        raise ValueError(f"the number of merges must be >= 0, got {num_merges}")
    options = options or BPEOptions()
    splitting = WordSplitting(options, split_by_script=split_by_script)
    word_counts, line_counts = count_words(paths, splitting, threads=threads, progress=progress)
    joint = balance_languages(word_counts, line_counts, temperature)
    merges, segmentations = learn_merges(joint, num_merges, progress=progress)
    counts = {lang: subword_counts(words, segmentations) for lang, words in word_counts.items()}
    return TrainingResult(PaseroBPE(merges, options), counts)
