"""Evaluation metrics shipped with the package as local `evaluate` modules.

`evaluate.load("sacrebleu")` fetches its script from the Hub; these modules load by local path and work offline.
"""

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("bleu", "chrf")


def metric_path(name: str) -> Path:
    """Directory of the local `evaluate` module for `name` ("bleu" or "chrf")."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}: available metrics are {', '.join(METRIC_NAMES)}")
    return METRICS_DIR / name


def load_metric(name: str):
    """Load one of our metrics with `evaluate.load` by local path (no Hub access)."""
    import evaluate

    return evaluate.load(str(metric_path(name)))


def corpus_scores(hypotheses: list[str], references: list[str], bleu_tok: str = "13a") -> dict[str, float]:
    """BLEU (with sacrebleu tokenizer `bleu_tok`) and chrF of a corpus, as {"bleu": ..., "chrf": ...}."""
    bleu = load_metric("bleu").compute(predictions=hypotheses, references=references, tokenize=bleu_tok)
    chrf = load_metric("chrf").compute(predictions=hypotheses, references=references)
    return {"bleu": bleu["score"], "chrf": chrf["score"]}
