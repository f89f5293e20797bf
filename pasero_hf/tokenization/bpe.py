"""Applying a Pasero BPE model (`bpecodes`): text -> inline-cased subwords, exactly as Pasero does.

A `bpecodes` file starts with an optional JSON header line (`# {"inline_case": true, "nfkc": false,
"protect_regex": null, "tokenization": 2}`) followed by one merge per line (`left right`, highest priority first).

Only the standard library and `regex` are needed: this module travels with remote-code tokenizers. When
`tokenizers` is installed, its Rust BPE model merges new words once a run has seen enough of them (see
`_rust_engine`); its segmentations are the same, and any word it cannot reproduce falls back to the Python merges.
"""

import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat

import regex

from .file_utils import write_lines_atomically
from .inline_casing import (
    CASE_TOKENS,
    CASED_WORDS,
    MASK,
    MASK_CHAR,
    PLACEHOLDER,
    PLACEHOLDER_CHAR,
    PROTECT_CHAR,
    UNCASED_WORDS,
    WORD_BOUNDARY,
    case_token,
    is_whitespace,
    split_on_whitespace,
)

Merge = tuple[str, str]

# Characters that make a line leave `tokenize_to_strings`' fast path: '<' may start a reserved token, the others
# are reserved symbols, and \x1c-\x1f are whitespace to str.split() but not to the word pattern.
_RESERVED = re.compile(f"[<{WORD_BOUNDARY}{PROTECT_CHAR}{MASK_CHAR}{PLACEHOLDER_CHAR}\x1c-\x1f]")

# Above this many distinct words the word cache is emptied: memory stays bounded on endless streams.
_MAX_CACHE_SIZE = 2**20
# Rank of a pair that has no merge: above every real rank.
_NO_MERGE = 2**62
# New words merged in Python before the Rust engine is built (its import and set-up cost ~50 ms: worth it only for
# big inputs, e.g. a cold `pasero-tokenize` run over a corpus).
_RUST_ENGINE_AFTER = 2000


@dataclass
class BPEOptions:
    """Options stored in a `bpecodes` header: how text is split into words before the merges apply."""

    inline_case: bool = True
    nfkc: bool = False
    protect_regex: str | None = None
    tokenization: int = 2  # word-splitting aggressiveness, used only when training

    def header(self) -> str:
        """The `# {...}` first line of a `bpecodes` file (without newline)."""
        fields = {
            "tokenization": self.tokenization,
            "inline_case": self.inline_case,
            "protect_regex": self.protect_regex,
            "nfkc": self.nfkc,
        }
        return "# " + json.dumps(fields, ensure_ascii=False)


_HEADER_KEYS = ("inline_case", "nfkc", "protect_regex", "tokenization")


def read_bpecodes(path: str | os.PathLike) -> tuple[BPEOptions, list[Merge]]:
    """Read a `bpecodes` file; raise `ValueError` naming the file and line of anything malformed."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"BPE codes file not found: {path}")
    options = BPEOptions()
    merges: list[Merge] = []
    with open(path, encoding="utf-8", newline="\n") as bpe_file:
        for line_number, line in enumerate(bpe_file, 1):
            line = line.rstrip("\r\n")
            if line_number == 1 and line.startswith("#"):
                options = _parse_header(line, path)
                continue
            if not line:
                continue
            left, sep, right = line.rpartition(" ")
            if not sep or not left or not right or " " in left:
                raise ValueError(f"{path}, line {line_number}: expected a merge 'LEFT RIGHT', got {line!r}")
            merges.append((left, right))
    return options, merges


def _parse_header(line: str, path: str) -> BPEOptions:
    body = line.strip("# \r\n")
    if not body.startswith("{"):
        # subword-nmt writes '#version: 0.2': no options, like Pasero's defaults
        return BPEOptions()
    try:
        fields = json.loads(body)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}, line 1: malformed JSON header ({error.msg}): {line!r}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"{path}, line 1: the JSON header must be an object, got {line!r}")
    options = BPEOptions()
    for key in _HEADER_KEYS:
        if key in fields:
            setattr(options, key, fields[key])
    if options.protect_regex is not None:
        try:
            regex.compile(options.protect_regex)
        except regex.error as error:
            raise ValueError(f"{path}, line 1: invalid protect_regex {options.protect_regex!r}: {error}") from None
    return options


def write_bpecodes(path: str | os.PathLike, options: BPEOptions, merges: Iterable[Merge]) -> None:
    """Write a `bpecodes` file atomically (temporary file, then rename)."""
    lines = [options.header() + "\n"]
    lines.extend(f"{left} {right}\n" for left, right in merges)
    write_lines_atomically(path, lines)


class PaseroBPE:
    """A Pasero BPE model: `tokenize` gives the same tokens as Pasero's `PaseroTokenizer.tokenize`.

    Args:
        merges: merge operations, highest priority first.
        options: word-splitting options (normally from the `bpecodes` header).
        vocabulary: when given, merged subwords that are not in it are split back into the two parts they were
            merged from, recursively (what Pasero does when a model's dictionary is passed to its tokenizer).
    """

    def __init__(
        self,
        merges: Sequence[Merge],
        options: BPEOptions | None = None,
        vocabulary: Iterable[str] | None = None,
    ):
        self.options = options or BPEOptions()
        self.merges = list(merges)
        # A pair listed twice keeps its first (highest) priority; a string produced by several pairs is split back
        # into the first pair that produces it.
        self._ranks: dict[Merge, int] = {}
        self._parts: dict[str, Merge] = {}
        for rank, pair in enumerate(self.merges):
            self._ranks.setdefault(pair, rank)
            self._parts.setdefault(pair[0] + pair[1], pair)
        self.vocabulary = frozenset(vocabulary) if vocabulary is not None else None
        self._protect = regex.compile(self.options.protect_regex) if self.options.protect_regex else None
        self._words = CASED_WORDS if self.options.inline_case else UNCASED_WORDS
        self._cache: dict[str, tuple[str, list[str]]] = {}
        # Words recur across chunks ("God", "God," and "God." share "▁God"): a cold run encodes each word once.
        self._word_cache: dict[str, str] = {}
        self._joined_caches: dict[str | None, _JoinedChunkCache] = {}
        self._merged_in_python = 0
        self._engine = None  # `tokenizers` BPE model, built after _RUST_ENGINE_AFTER new words (False: unusable)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_engine"] = None  # rebuilt after as many new words again
        state["_merged_in_python"] = 0
        return state

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        vocabulary: Iterable[str] | None = None,
        **overrides,
    ) -> "PaseroBPE":
        """Load a `bpecodes` file. `overrides` (e.g. `inline_case=False`) replace header options."""
        options, merges = read_bpecodes(path)
        for key, value in overrides.items():
            if key not in _HEADER_KEYS:
                raise TypeError(f"unknown BPE option {key!r} (expected one of {', '.join(_HEADER_KEYS)})")
            setattr(options, key, value)
        return cls(merges, options, vocabulary)

    def __len__(self) -> int:
        return len(self.merges)

    def save(self, path: str | os.PathLike) -> None:
        write_bpecodes(path, self.options, self.merges)

    def tokenize(self, text: str, unk: str | None = None) -> list[str]:
        """Split one line of text into subword tokens.

        Args:
            text: any string (it is stripped; inner whitespace runs become one word boundary).
            unk: when a vocabulary is set, tokens outside it are replaced by this string, where `{token}` is
                replaced by the token itself.
        """
        text = text.strip()
        if not text:
            return []
        if self.options.nfkc:
            text = unicodedata.normalize("NFKC", text)
        protected: list[str] = []
        if self._protect is not None:
            text = text.replace(PROTECT_CHAR, " ")
            protected = [match.group(0) for match in self._protect.finditer(text)]
            text = self._protect.sub(PROTECT_CHAR, text)
        if MASK_CHAR in text or PLACEHOLDER_CHAR in text:
            text = text.replace(MASK_CHAR, "").replace(PLACEHOLDER_CHAR, "")
        if "<" in text:
            text = text.replace(MASK, MASK_CHAR).replace(PLACEHOLDER, PLACEHOLDER_CHAR)
            if self.options.inline_case:
                for symbol in CASE_TOKENS:
                    text = text.replace(symbol, " ")
        # Words never span a boundary, so each whitespace-separated chunk is encoded (and cached) on its own.
        text = text.replace(WORD_BOUNDARY, " ")
        chunks = split_on_whitespace(text)
        entries = list(map(self._cache.get, chunks))
        if None in entries:
            entries = [self._encode_chunk_cached(chunk) for chunk in chunks]
        # Whitespace left at either end by the replacements above gives a lone boundary token, as in Pasero.
        leading = not text or is_whitespace(text[0])
        trailing = is_whitespace(text[-1:])
        if protected or MASK_CHAR in text or PLACEHOLDER_CHAR in text:
            tokens = self._restore_placeholders([line for line, _ in entries], leading, trailing, protected)
        else:
            tokens = [WORD_BOUNDARY] if leading else []
            for _, chunk_tokens in entries:
                tokens += chunk_tokens
            if trailing:
                tokens.append(WORD_BOUNDARY)
        if tokens and tokens[0] == WORD_BOUNDARY:
            # a lone boundary at the start of a line carries no information
            del tokens[0]
        if unk is not None and self.vocabulary is not None:
            tokens = [token if token in self.vocabulary else unk.replace("{token}", token) for token in tokens]
        return tokens

    def tokenize_to_strings(self, lines: Sequence[str], unk: str | None = None) -> list[str]:
        """`" ".join(self.tokenize(line, unk))` for each line, faster: what `pasero-tokenize` writes.

        A line without reserved characters (`<`, `▁`, protection, mask and placeholder characters, or the
        separators only str.split() treats as space) is its chunks' cached encodings joined by spaces, so a line
        costs one split, one dict look-up per chunk and one join; any other line, or any line when NFKC or a
        protect regex is set, goes through `tokenize`.
        """
        if self.options.nfkc or self._protect is not None:
            return [" ".join(self.tokenize(line, unk=unk)) for line in lines]
        get = self._joined_cache(unk).__getitem__
        join = " ".join
        if _RESERVED.search("\n".join(lines)) is None:
            return [_drop_lone_boundary(join(map(get, line.split()))) for line in lines]
        reserved = _RESERVED.search
        return [_drop_lone_boundary(join(map(get, line.split()))) if reserved(line) is None
                else join(self.tokenize(line, unk=unk)) for line in lines]

    def _joined_cache(self, unk: str | None) -> "_JoinedChunkCache":
        """The cache of joined chunk encodings `tokenize_to_strings` uses with `unk`."""
        if self.vocabulary is None:
            unk = None
        cache = self._joined_caches.get(unk)
        if cache is None:
            cache = self._joined_caches[unk] = _JoinedChunkCache(self, unk)
        return cache

    @staticmethod
    def _restore_placeholders(pieces: list[str], leading: bool, trailing: bool, protected: list[str]) -> list[str]:
        """Tokens of a line whose protected spans, masks and placeholders stood in as single characters."""
        line = " ".join(([WORD_BOUNDARY] if leading else []) + pieces + ([WORD_BOUNDARY] if trailing else []))
        if protected:
            # a protected span is its own token: the word boundary before the next word goes with that word
            line = line.replace(PROTECT_CHAR + " " + WORD_BOUNDARY + " ", PROTECT_CHAR + " ")
            for span in protected:
                line = line.replace(PROTECT_CHAR, span, 1)
        return line.replace(MASK_CHAR, MASK).replace(PLACEHOLDER_CHAR, PLACEHOLDER).split()

    def tokenize_lines(self, lines: Iterable[str], unk: str | None = None) -> Iterator[list[str]]:
        """Tokenize many lines; one token list per input line (empty lines give empty lists)."""
        for line in lines:
            yield self.tokenize(line, unk=unk)

    def _encode_chunk_cached(self, chunk: str) -> tuple[str, list[str]]:
        """The chunk's space-joined encoding and its tokens (the line is split on str.split() whitespace at the
        end, like Pasero does: splitting each chunk's encoding gives the same tokens)."""
        entry = self._cache.get(chunk)
        if entry is None:
            line = self._encode_chunk(chunk)
            entry = (line, line.split())
            if len(self._cache) >= _MAX_CACHE_SIZE:
                self._cache.clear()
            self._cache[chunk] = entry
        return entry

    def _encode_chunk(self, chunk: str) -> str:
        """Space-joined subwords (and case tokens) of one whitespace-free chunk of text, with its `▁` prefix."""
        cache = self._word_cache
        encoded = []
        for word in self._words.findall(WORD_BOUNDARY + chunk):
            entry = cache.get(word)
            if entry is None:
                entry = self._encode_cased_word(word)
                if len(cache) >= _MAX_CACHE_SIZE:
                    cache.clear()
                cache[word] = entry
            encoded.append(entry)
        return " ".join(encoded)

    def _encode_cased_word(self, word: str) -> str:
        """Space-joined subwords (and case tokens) of one word as split by the word pattern."""
        if not self.options.inline_case:
            return " ".join(self.encode_word(word))
        subwords = self.encode_word(word.lower())
        if word.islower():  # no span of it is upper or title case: no case tokens (most words)
            return " ".join(subwords)
        # The case of each subword is read from the same character span of the original word (lowercasing can
        # change the length, e.g. 'İ': Pasero reads the shifted span too).
        out = []
        start = 0
        for subword in subwords:
            end = start + len(subword)
            out.append(subword)
            case = case_token(word[start:end])
            if case:
                out.append(case)
            start = end
        return " ".join(out)

    def encode_word(self, word: str) -> list[str]:
        """Apply the merges to one (already lowercased) word, then split pieces outside the vocabulary."""
        if self._engine:
            symbols = [token.value for token in self._engine.tokenize(word)]
            if "".join(symbols) != word:  # a character outside the merges was dropped: Python merges it
                symbols = list(word)
                self._apply_merges(symbols)
        else:
            symbols = list(word)
            if len(symbols) > 1:
                self._apply_merges(symbols)
                self._merged_in_python += 1
                if self._merged_in_python == _RUST_ENGINE_AFTER and self._engine is None:
                    self._engine = _rust_engine(self._ranks) or False
        if self.vocabulary is None:
            return symbols
        out: list[str] = []
        for symbol in symbols:
            self._split_unknown(symbol, out)
        return out

    def _apply_merges(self, symbols: list[str]) -> None:
        """Merge `symbols` in place, as Pasero does: take the best-ranked adjacent pair, merge all its occurrences
        from left to right, repeat until no pair has a merge.

        Each adjacent pair's rank is kept in a list updated around each merge (only the two neighbouring pairs
        change), so a merge costs a few list operations instead of a rescan and rebuild of the whole word. All
        occurrences of a pair are merged before the next minimum is taken, even when a new pair outranks it: the
        order of the original algorithm, whatever the merge table.
        """
        get = self._ranks.get
        ranks = list(map(get, zip(symbols, symbols[1:]), repeat(_NO_MERGE, len(symbols) - 1)))
        while ranks:
            rank = min(ranks)
            if rank == _NO_MERGE:
                break
            while rank in ranks:  # the leftmost remaining occurrence; an overlapping one was overwritten
                i = ranks.index(rank)
                merged = symbols[i] + symbols[i + 1]
                symbols[i] = merged
                del symbols[i + 1]
                del ranks[i]
                if i:
                    ranks[i - 1] = get((symbols[i - 1], merged), _NO_MERGE)
                if i < len(ranks):
                    ranks[i] = get((merged, symbols[i + 1]), _NO_MERGE)

    def _split_unknown(self, piece: str, out: list[str]) -> None:
        parts = self._parts.get(piece)
        if parts is None or piece in self.vocabulary:
            out.append(piece)
        else:
            self._split_unknown(parts[0], out)
            self._split_unknown(parts[1], out)


def _rust_engine(ranks: dict[Merge, int]):
    """A `tokenizers` BPE model that merges words exactly as `PaseroBPE._apply_merges`, or None.

    It takes the best-ranked pair one occurrence at a time (leftmost first), while Pasero merges all occurrences of
    the best pair before looking again. The two agree when no pair that a merge creates can outrank that merge, i.e.
    when every merge comes after all the merges that produce its parts (always true of learned tables: a part must
    exist before it is merged). Other tables, or no `tokenizers`, give None: the Python merges stay.
    """
    try:
        from tokenizers.models import BPE
    except ImportError:
        return None
    merges = sorted(ranks, key=ranks.__getitem__)
    last_producer: dict[str, int] = {}
    for rank, (left, right) in enumerate(merges):
        last_producer[left + right] = rank
    vocab: dict[str, int] = {}
    for rank, (left, right) in enumerate(merges):
        if last_producer.get(left, -1) >= rank or last_producer.get(right, -1) >= rank:
            return None
        for piece in (left, right, left + right):
            vocab.setdefault(piece, len(vocab))
    try:
        return BPE(vocab, merges)
    except Exception:  # a table the Rust model refuses: the Python merges stay
        return None


def _drop_lone_boundary(text: str) -> str:
    """A line's first subword can be a lone boundary (a word whose first letter has no merge with it): `tokenize`
    drops it."""
    if text[:1] != WORD_BOUNDARY:
        return text
    return text[2:] if text[:2] == WORD_BOUNDARY + " " else "" if text == WORD_BOUNDARY else text


class _JoinedChunkCache(dict):
    """Whitespace-free chunk -> its tokens joined by spaces (unknown tokens replaced by `unk`), filled on look-up."""

    def __init__(self, bpe: PaseroBPE, unk: str | None):
        super().__init__()
        self.bpe = bpe
        self.unk = unk
        self.added: list[tuple[str, str]] | None = None  # when a list: new entries are also appended to it

    def __missing__(self, chunk: str) -> str:
        encoded = self.bpe._encode_chunk(chunk)
        if self.unk is not None:
            vocabulary, unk = self.bpe.vocabulary, self.unk
            encoded = " ".join(token if token in vocabulary else unk.replace("{token}", token)
                               for token in encoded.split())
        if len(self) >= _MAX_CACHE_SIZE:
            self.clear()
        self[chunk] = encoded
        if self.added is not None:
            self.added.append((chunk, encoded))
        return encoded

    def merge(self, entries: list[tuple[str, str]]) -> None:
        """Add encodings made elsewhere (another worker's), within the same bound as look-ups."""
        if len(self) + len(entries) > _MAX_CACHE_SIZE:
            self.clear()
            entries = entries[-_MAX_CACHE_SIZE:]
        self.update(entries)
