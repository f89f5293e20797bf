"""Pasero's inline casing: lowercased subwords followed by `<T>` (title case) or `<U>` (upper case) tokens.

This module also holds the reserved symbols and the word-splitting patterns shared by BPE application and
training. It depends only on the standard library and `regex` (it travels with remote-code tokenizers).
"""

import re
from collections.abc import Iterable

import regex

TITLE = "<T>"
UPPER = "<U>"
CASE_TOKENS = (TITLE, UPPER)
WORD_BOUNDARY = "▁"
MASK = "<mask>"
PLACEHOLDER = "<PHL>"

# Single characters that stand in for spans that BPE must not touch; users' text containing them is cleaned first.
PROTECT_CHAR = "╳"
MASK_CHAR = "⧈"
PLACEHOLDER_CHAR = "⧇"

# The `regex` module is required: POSIX classes like [[:upper:]] and its Unicode notion of \s decide where words
# split, and the original tokenizer used exactly these semantics.
WHITESPACE = regex.compile(r"\s+")
_EXCLUDED = r"\s" + WORD_BOUNDARY + regex.escape(PROTECT_CHAR)
# A word is at most one leading capital followed by non-capitals, or a run of capitals: each word then has a
# single case (lower, title or upper) that one case token can encode.
CASED_WORDS = regex.compile(
    f"({WORD_BOUNDARY}?[[:upper:]]?[^[:upper:]{_EXCLUDED}]+|{WORD_BOUNDARY}?[[:upper:]]+|{WORD_BOUNDARY}"
    f"|{regex.escape(PROTECT_CHAR)})"
)
UNCASED_WORDS = regex.compile(f"({WORD_BOUNDARY}?[^{_EXCLUDED}]+|{WORD_BOUNDARY}|{regex.escape(PROTECT_CHAR)})")
# The only characters that str.split() treats as whitespace and `regex` does not.
_SPLIT_ONLY_SPACES = re.compile("[\x1c-\x1f]")


def split_on_whitespace(text: str) -> list[str]:
    """`text` split on runs of whitespace as `regex` defines it (Unicode White_Space) (the fast str.split() when they agree)."""
    if _SPLIT_ONLY_SPACES.search(text) is None:
        return text.split()
    return [chunk for chunk in WHITESPACE.split(text) if chunk]


def is_whitespace(char: str) -> bool:
    """Whether `char` (one character, or '' -> False) is whitespace for `regex` (Unicode White_Space)."""
    return char.isspace() and _SPLIT_ONLY_SPACES.match(char) is None


def case_token(cased: str) -> str:
    """Case token for the original-case text `cased` of one subword: `<U>`, `<T>` or '' (lowercase)."""
    if cased.isupper():
        return UPPER
    if cased.istitle():
        return TITLE
    return ""


def apply_case_tokens(tokens: Iterable[str]) -> list[str]:
    """Apply each `<T>`/`<U>` to the token right before it and drop the case tokens.

    A case token that follows another case token (or starts the sequence) has no effect, as in Pasero.
    """
    out: list[str] = []
    previous_is_text = False
    for token in tokens:
        if token == TITLE or token == UPPER:
            if previous_is_text:
                out[-1] = out[-1].title() if token == TITLE else out[-1].upper()
            previous_is_text = False
        else:
            out.append(token)
            previous_is_text = True
    return out


def detokenize(tokens: Iterable[str], strip: bool = True) -> str:
    """Inverse of Pasero tokenization: recase, concatenate subwords, turn `▁` back into spaces.

    `</s>` tokens are ignored. With `strip=False`, a leading `▁` gives a leading space (for streaming output).
    """
    text = "".join(token for token in apply_case_tokens(tokens) if token != "</s>")
    text = text.replace(" ", "").replace(WORD_BOUNDARY, " ")
    return text.strip() if strip else text
