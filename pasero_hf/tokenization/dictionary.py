"""fairseq/Pasero dictionaries (`dict.txt`: one `token count` per line) and HF-style JSON vocabularies.

In a fairseq-style `dict.txt`, line N holds the token with id N + 4: `<s>`=0, `<pad>`=1, `</s>`=2 and `<unk>`=3 are
prepended. A file that already lists `</s>` is taken as is (line N -> id N). A `.json` file maps tokens to ids.

Only the standard library and `regex` are used: this module travels with remote-code tokenizers.
"""

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import regex

from .file_utils import write_lines_atomically
from .inline_casing import MASK, PLACEHOLDER, TITLE, UPPER

BOS, PAD, EOS, UNK = "<s>", "<pad>", "</s>", "<unk>"
FAIRSEQ_SPECIALS = (BOS, PAD, EOS, UNK)
# Always at the top of a dictionary built by Pasero (count 0), whatever the data.
PASERO_RESERVED = (TITLE, UPPER, "<BT>", PLACEHOLDER, MASK)
LANG_CODE_PREFIX = "lang:"
DOMAIN_TAG_PREFIX = "domain:"
_TAG = regex.compile(f"<(?:{LANG_CODE_PREFIX}|{DOMAIN_TAG_PREFIX}).+>")

_DICT_LINE = regex.compile(r"(.+?)(?:\s(\d+))?(?:\s#fairseq:overwrite)?$")

PathLike = str | os.PathLike


def lang_code(lang: str) -> str:
    """The token Pasero uses for a language: `<lang:xx>`."""
    return f"<{LANG_CODE_PREFIX}{lang}>"


def domain_tag(domain: str) -> str:
    """The token Pasero prefixes sources with under `domain_tag`: `<domain:xx>`."""
    return f"<{DOMAIN_TAG_PREFIX}{domain}>"


def source_language_codes(tokenizer, target_code: bool) -> int:
    """How many language codes start a source: `<lang:tgt>` when `target_code` (Pasero's lang_code), then a Pasero
    tokenizer's `<lang:src>` (source_lang_code)."""
    return int(target_code) + int(bool(getattr(tokenizer, "source_lang_code", False)))


def insert_domain_tag(ids: list[int], tag_id: int, language_codes: int) -> list[int]:
    """Source `ids` with the domain tag `tag_id` after their `language_codes` leading language codes: Pasero's
    source prefix order is `<lang:tgt>` (lang_code), `<lang:src>` (source_lang_code), `<domain:xx>` (domain_tag)."""
    return ids[:language_codes] + [tag_id] + ids[language_codes:]


def strip_leading_tags(tokens: Sequence[str]) -> list[str]:
    """`tokens` without the `<lang:xx>`/`<domain:xx>` tags that start it."""
    start = 0
    while start < len(tokens) and _TAG.fullmatch(tokens[start]):
        start += 1
    return list(tokens[start:])


def read_dict_file(path: PathLike) -> list[tuple[str, int]]:
    """Read a fairseq `dict.txt` as (token, count) pairs; a missing count reads as 0."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dictionary file not found: {path}")
    entries = []
    with open(path, encoding="utf-8", newline="\n") as dict_file:
        for line_number, line in enumerate(dict_file, 1):
            line = line.rstrip("\r\n")
            match = _DICT_LINE.match(line)
            if match is None:
                raise ValueError(f"{path}, line {line_number}: expected 'TOKEN COUNT', got {line!r}")
            token, count = match.groups()
            entries.append((token, int(count) if count else 0))
    return entries


def load_vocabulary(path: PathLike, threshold: int | None = None) -> list[str]:
    """Tokens of a `dict.txt` (those with a count >= `threshold` if given), for BPE vocabulary filtering."""
    return [token for token, count in read_dict_file(path) if threshold is None or count >= threshold]


class Dictionary:
    """Token <-> id mapping with fairseq's conventions (see the module docstring)."""

    def __init__(self, tokens: Sequence[str], counts: Sequence[int] | None = None):
        self.tokens = list(tokens)
        self.counts = list(counts) if counts is not None else [0] * len(self.tokens)
        self.indices: dict[str, int] = {}
        for index, token in enumerate(self.tokens):
            self.indices.setdefault(token, index)

    @classmethod
    def from_entries(cls, entries: Sequence[tuple[str, int]], source: str = "<entries>") -> "Dictionary":
        """fairseq semantics: prepend the 4 special tokens unless `</s>` is already listed."""
        tokens = [token for token, _ in entries]
        counts = [count for _, count in entries]
        present = set(tokens)
        if EOS not in present:
            clashing = sorted(present.intersection(FAIRSEQ_SPECIALS))
            if clashing:
                raise ValueError(
                    f"{source}: lists {', '.join(clashing)} but not </s>: a dictionary must list either none of "
                    f"{' '.join(FAIRSEQ_SPECIALS)} (they are prepended) or at least </s>"
                )
            tokens = list(FAIRSEQ_SPECIALS) + tokens
            counts = [0] * len(FAIRSEQ_SPECIALS) + counts
        return cls(tokens, counts)

    @classmethod
    def from_file(cls, path: PathLike) -> "Dictionary":
        """Load a fairseq `dict.txt`, or an HF-style `{token: id}` vocabulary when the name ends in `.json`."""
        path = os.fspath(path)
        if path.endswith(".json"):
            return cls.from_json(path)
        return cls.from_entries(read_dict_file(path), source=path)

    @classmethod
    def from_json(cls, path: PathLike) -> "Dictionary":
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        with open(path, encoding="utf-8") as json_file:
            try:
                mapping = json.load(json_file)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {error.lineno}: malformed JSON vocabulary ({error.msg})") from None
        if not isinstance(mapping, dict) or not all(isinstance(i, int) and i >= 0 for i in mapping.values()):
            raise ValueError(f"{path}: a JSON vocabulary must map each token to a non-negative integer id")
        size = max(mapping.values(), default=-1) + 1
        tokens = [UNK] * size  # ids that no token uses decode as <unk>
        for token, index in mapping.items():
            tokens[index] = token
        dictionary = cls(tokens)
        dictionary.indices = dict(mapping)
        return dictionary

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.indices

    def index(self, token: str) -> int:
        """Id of `token`, or the id of `<unk>` (or of `<pad>` when there is no `<unk>`)."""
        index = self.indices.get(token)
        if index is not None:
            return index
        return self.indices.get(UNK, self.indices.get(PAD, 0))

    def add(self, token: str, count: int = 0) -> int:
        if token not in self.indices:
            self.indices[token] = len(self.tokens)
            self.tokens.append(token)
            self.counts.append(count)
        return self.indices[token]

    def to_json(self) -> dict[str, int]:
        return dict(self.indices)

    def save(self, path: PathLike) -> None:
        """Write as `dict.txt` (fairseq, without the 4 prepended special tokens) or `.json`, atomically."""
        path = os.fspath(path)
        if path.endswith(".json"):
            text = json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n"
        else:
            entries = list(zip(self.tokens, self.counts))
            if self.tokens[: len(FAIRSEQ_SPECIALS)] == list(FAIRSEQ_SPECIALS) and EOS not in self.tokens[4:]:
                entries = entries[len(FAIRSEQ_SPECIALS) :]
            text = "".join(f"{token} {count}\n" for token, count in entries)
        write_lines_atomically(path, [text])


def build_dictionary(
    token_counts: Mapping[str, int],
    min_freq: int = 10,
    custom_symbols: Iterable[str] = (),
    placeholders: int = 0,
    padding_factor: int = 8,
    padding_offset: int = 4,
    max_size: int | None = None,
) -> list[tuple[str, int]]:
    """Pasero's dictionary from subword counts, as (token, count) entries for a `dict.txt`.

    Every character of every subword gets its own entry (counted over all subwords), so that any subword can be
    spelled out. Entries rarer than `min_freq` are dropped; the rest are sorted by decreasing count, then
    alphabetically, after Pasero's reserved tokens (`<T> <U> <BT> <PHL> <mask>`). Custom symbols (e.g. language
    codes) and `madeupwordNNNN` placeholders follow; more placeholders pad the size (+ `padding_offset` special
    tokens) to a multiple of `padding_factor`.
    """
    reserved = dict.fromkeys(PASERO_RESERVED, 0)
    counts = {token: count for token, count in token_counts.items()}
    char_counts: Counter = Counter()
    for token, count in counts.items():
        if token not in reserved:
            for char in token:
                char_counts[char] += count
    counts.update(char_counts)  # a character's count covers all the subwords it appears in
    kept = sorted(
        (
            (token, count)
            for token, count in counts.items()
            if token not in reserved and (not count or count >= min_freq)
        ),
        key=lambda item: (-item[1], item[0]),
    )
    entries = list(reserved.items()) + kept
    present = {token for token, _ in entries}
    extra = [(symbol, 0) for symbol in sorted(set(custom_symbols)) if symbol not in present]
    placeholder_index = 0
    for _ in range(placeholders):
        extra.append((f"madeupword{placeholder_index:04}", 0))
        placeholder_index += 1
    if max_size is not None:
        if len(extra) >= max_size:
            raise ValueError(f"max_size={max_size} leaves no room next to {len(extra)} custom symbols")
        entries = entries[: max_size - len(extra)]
    entries += extra
    while (len(entries) + padding_offset) % padding_factor:
        entries.append((f"madeupword{placeholder_index:04}", 0))
        placeholder_index += 1
    return entries


def write_dict_file(path: PathLike, entries: Iterable[tuple[str, int]]) -> None:
    """Write (token, count) entries as a fairseq `dict.txt`, atomically."""
    write_lines_atomically(path, (f"{token} {count}\n" for token, count in entries))


@dataclass
class CoverageReport:
    """Tokens produced by a tokenizer that a dictionary lacks (they would all become `<unk>`)."""

    total_tokens: int
    missing: dict[str, int] = field(default_factory=dict)  # token -> occurrences, most frequent first

    @property
    def missing_tokens(self) -> int:
        return sum(self.missing.values())

    @property
    def ok(self) -> bool:
        return not self.missing

    def __str__(self) -> str:
        if self.ok:
            return f"all {self.total_tokens} tokens are in the dictionary"
        examples = ", ".join(f"{token!r} ({count})" for token, count in list(self.missing.items())[:10])
        return (
            f"{len(self.missing)} distinct tokens ({self.missing_tokens} of {self.total_tokens} occurrences, "
            f"{100 * self.missing_tokens / max(self.total_tokens, 1):.2f}%) are not in the dictionary: {examples}"
        )


def check_vocabulary_coverage(
    token_counts: Mapping[str, int], dictionary: Dictionary | Iterable[str]
) -> CoverageReport:
    """Report which of the counted tokens (e.g. from tokenizing training data) `dictionary` lacks, with counts."""
    known = dictionary if isinstance(dictionary, Dictionary) else set(dictionary)
    missing = {token: count for token, count in token_counts.items() if token not in known}
    missing = dict(sorted(missing.items(), key=lambda item: (-item[1], item[0])))
    return CoverageReport(total_tokens=sum(token_counts.values()), missing=missing)
