"""How decoding outputs are written: plain detokenized lines, or Pasero's verbose `S-/A-/I-/H-/D-/P-` lines.

Verbose format, one group of tab-separated lines per input line `i` (as the original `pasero-decode -v`):
`S-i` source tokens; `A-i` for each hypothesis token, the source position it attends to most (cross-attention averaged
over heads, `<...>` tags ignored); `I-i` decoder prompt tokens; `H-i` hypothesis tokens; `D-i` detokenized output;
`P-i` total score then per-token scores (negative log-probabilities, 3 decimals).
Line breaks inside an output are written as a literal `\\n` (as Pasero reads them in inputs), keeping one line per input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

_VERBOSE_ID = re.compile(r"^[A-Z]-(\d+)\t")


def alignment(src_tokens: list[str], cross_attention: np.ndarray) -> list[int]:
    """Per hypothesis token, the index of the most attended source token that is not a `<...>` tag.

    `cross_attention` has shape (hyp_len, heads, src_len) or (hyp_len, src_len).
    """
    weights = cross_attention.mean(axis=1) if cross_attention.ndim == 3 else cross_attention
    # tags like </s> or <T> often soak up attention without meaning anything for alignment
    not_tag = np.array([not (token.startswith("<") and token.endswith(">")) for token in src_tokens], dtype=bool)
    masked = weights * not_tag[: weights.shape[1]][None, :]
    return masked.argmax(axis=1).tolist() if masked.size else []


def one_line(text: str) -> str:
    """`text` with its line breaks written as a literal backslash-n, so that one output stays one line of the file."""
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def format_hypothesis(hypothesis: Mapping[str, Any], line_id: int, verbose: bool = False) -> str:
    """The text written for one input: its detokenized output, or the verbose group of lines (no final newline)."""
    detok = one_line(hypothesis["detok"])
    if not verbose:
        return detok
    lines = []
    src_tokens = hypothesis.get("src_tokens")
    if src_tokens is not None:
        lines.append(f"S-{line_id}\t{' '.join(src_tokens)}")
        cross = [value for key, value in hypothesis.items() if key.startswith("dec_") and key.endswith("_cross_attn")]
        if cross:
            averaged = sum(layer.mean(axis=1) for layer in cross) / len(cross)
            lines.append(f"A-{line_id}\t{' '.join(map(str, alignment(src_tokens, averaged)))}")
    if hypothesis.get("prompt_tokens") is not None:
        lines.append(f"I-{line_id}\t{' '.join(hypothesis['prompt_tokens'])}")
    lines.append(f"H-{line_id}\t{one_line(' '.join(hypothesis['tokens']))}")
    lines.append(f"D-{line_id}\t{detok}")
    if hypothesis.get("pos_scores") is not None:
        scores = " ".join(f"{score:.3f}" for score in hypothesis["pos_scores"])
        lines.append(f"P-{line_id}\t{hypothesis['score']:.3f}\t{scores}")
    return "\n".join(lines)


def completed_outputs(lines: Iterable[str], verbose: bool) -> list[str]:
    """The detokenized outputs of the complete entries of an output file, for `--continue`.

    `lines` keep their line endings: a last line without one was cut by an interruption and is dropped, as is a
    verbose group that lacks its final `P-` line.
    """
    complete = [line[:-1] for line in lines if line.endswith("\n")]
    if not verbose:
        return complete
    groups: list[list[str]] = []
    current_id = None
    for line in complete:
        match = _VERBOSE_ID.match(line)
        if match is None:
            raise ValueError(f"not a verbose decoding output line (expected 'X-<n>\\t...'): {line[:80]!r}")
        if match.group(1) != current_id:
            groups.append([])
            current_id = match.group(1)
        groups[-1].append(line)
    if groups and not groups[-1][-1].startswith("P-"):
        groups.pop()
    return ["\n".join(group) for group in groups]


def detok_of_entry(entry: str, verbose: bool) -> str:
    """The detokenized output stored in one entry returned by `completed_outputs`."""
    if not verbose:
        return entry
    for line in entry.split("\n"):
        if line.startswith("D-"):
            return line.split("\t", 1)[1]
    raise ValueError(f"verbose output entry without a D- line: {entry[:80]!r}")
