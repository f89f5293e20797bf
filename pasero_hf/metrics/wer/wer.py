"""Corpus word error rate as a local `evaluate` module: `evaluate.load("<this dir>")` works offline.

WER = (substitutions + deletions + insertions) / reference words, over the whole corpus, in percent (lower is
better; it exceeds 100 when a system inserts many words). Words are split on whitespace; `lowercase` and
`remove_punctuation` normalise both sides first (Whisper-style scoring ignores case and punctuation).
Imports stay one per line: evaluate's dependency check parses them and rejects `import a, b`.
"""

import unicodedata

import datasets
import evaluate

_DESCRIPTION = "Corpus-level word error rate (word-level Levenshtein distance / reference words, in percent)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list[str]): system transcripts.
    references (list[str]): one reference transcript per prediction.
    lowercase (bool): case-insensitive. Default False.
    remove_punctuation (bool): drop Unicode punctuation before splitting into words. Default False.
Returns:
    score (float, WER in percent), errors (int), reference_words (int), substitutions, deletions, insertions (int)
"""


def _words(text: str, lowercase: bool, remove_punctuation: bool) -> list[str]:
    if lowercase:
        text = text.lower()
    if remove_punctuation:
        text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return text.split()


def _edit_counts(hypothesis: list[str], reference: list[str]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of a minimal alignment of `hypothesis` to `reference`."""
    # each cell: (cost, substitutions, deletions, insertions); rows over the reference, columns over the hypothesis
    previous = [(j, 0, 0, j) for j in range(len(hypothesis) + 1)]
    for i, ref_word in enumerate(reference, 1):
        current = [(i, 0, i, 0)]
        for j, hyp_word in enumerate(hypothesis, 1):
            diagonal = previous[j - 1]
            if ref_word == hyp_word:
                best = diagonal
            else:
                up, left = previous[j], current[j - 1]
                best = min((diagonal[0] + 1, diagonal[1] + 1, diagonal[2], diagonal[3]),
                           (up[0] + 1, up[1], up[2] + 1, up[3]),
                           (left[0] + 1, left[1], left[2], left[3] + 1))
            current.append(best)
        previous = current
    _, substitutions, deletions, insertions = previous[-1]
    return substitutions, deletions, insertions


class Wer(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, lowercase: bool = False, remove_punctuation: bool = False):
        totals = [0, 0, 0]
        words = 0
        for prediction, reference in zip(predictions, references):
            ref = _words(reference, lowercase, remove_punctuation)
            counts = _edit_counts(_words(prediction, lowercase, remove_punctuation), ref)
            totals = [a + b for a, b in zip(totals, counts)]
            words += len(ref)
        errors = sum(totals)
        return {"score": 100.0 * errors / max(words, 1), "errors": errors, "reference_words": words,
                "substitutions": totals[0], "deletions": totals[1], "insertions": totals[2]}
