"""Evaluation metrics shipped with the package as local `evaluate` modules.

`evaluate.load("sacrebleu")` fetches its script from the Hub; these modules load by local path and work offline.
Metric names are Pasero's: `bleu`, `chrf`, `chrf++` (chrF with word bigrams), `spbleu` (BLEU on FLORES-200
SentencePiece pieces; needs the model file, e.g. `flores200_sacrebleu_tokenizer_spm.model`), `len_ratio`.
"""

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent
MODULES = ("bleu", "chrf", "len_ratio", "wer")  # evaluate modules in this directory
METRIC_NAMES = ("bleu", "chrf", "chrf++", "spbleu", "len_ratio", "wer")  # what corpus_scores computes
LOWER_IS_BETTER = ("loss", "wer")  # the other metrics: higher is better
DEFAULT_METRICS = ("bleu", "chrf")


def metric_path(name: str) -> Path:
    """Directory of the local `evaluate` module for `name` ("bleu", "chrf" or "len_ratio")."""
    if name not in MODULES:
        raise ValueError(f"unknown metric {name!r}: available metrics are {', '.join(MODULES)} (modules)")
    return METRICS_DIR / name


def load_metric(name: str):
    """Load one of our metrics with `evaluate.load` by local path (no Hub access)."""
    import evaluate

    return evaluate.load(str(metric_path(name)))


def check_metrics(metrics: Sequence[str], spbleu_model: str | None = None) -> None:
    """ValueError for an unknown metric name, or `spbleu` without its SentencePiece model file."""
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(map(repr, unknown))}: available metrics are "
                         f"{', '.join(METRIC_NAMES)}")
    if "spbleu" in metrics:
        if not spbleu_model:
            raise ValueError("metric 'spbleu' needs the FLORES-200 SentencePiece model: give its path with "
                             "spbleu_model (--spbleu-model flores200_sacrebleu_tokenizer_spm.model)")
        if not Path(spbleu_model).is_file():
            raise ValueError(f"spbleu_model: {spbleu_model} does not exist")


@lru_cache(maxsize=4)
def _spm(path: str):
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=path)


def _pieces(lines: list[str], spm_path: str) -> list[str]:
    processor = _spm(spm_path)
    return [" ".join(processor.encode(line, out_type=str)) for line in lines]


def corpus_scores(hypotheses: list[str], references: list[str], bleu_tok: str = "13a",
                  metrics: Sequence[str] = DEFAULT_METRICS, lowercase: bool = False,
                  spbleu_model: str | None = None) -> dict[str, float]:
    """Corpus scores {name: value} of `metrics` (default BLEU with sacrebleu tokenizer `bleu_tok`, and chrF).

    `lowercase`: case-insensitive scores (Pasero's --eval-lc). `spbleu_model`: SentencePiece model of `spbleu`.
    """
    check_metrics(metrics, spbleu_model)
    scores: dict[str, float] = {}
    for name in metrics:
        if name == "bleu":
            result = load_metric("bleu").compute(predictions=hypotheses, references=references, tokenize=bleu_tok,
                                                 lowercase=lowercase)
        elif name in ("chrf", "chrf++"):
            result = load_metric("chrf").compute(predictions=hypotheses, references=references,
                                                 word_order=2 if name == "chrf++" else 0, lowercase=lowercase)
        elif name == "spbleu":  # FLORES-200 pieces, then BLEU without further tokenization (sacrebleu's flores200)
            hyps, refs = (_pieces([t.lower() if lowercase else t for t in side], spbleu_model)
                          for side in (hypotheses, references))
            result = load_metric("bleu").compute(predictions=hyps, references=refs, tokenize="none")
        elif name == "wer":
            result = load_metric("wer").compute(predictions=hypotheses, references=references, lowercase=lowercase)
        else:
            result = load_metric("len_ratio").compute(predictions=hypotheses, references=references,
                                                      tokenize=bleu_tok, lowercase=lowercase)
        scores[name] = result["score"]
    return scores
