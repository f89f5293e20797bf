"""Corpus chrF / chrF++ (sacrebleu) as a local `evaluate` module: `evaluate.load("<this dir>")` works offline.

Imports stay one per line: evaluate's dependency check parses them and rejects `import a, b`.
"""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = "Corpus-level chrF (word_order=0) or chrF++ (word_order=2) computed by sacrebleu."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list[str]): system outputs.
    references (list[str]): one reference per prediction.
    word_order (int): 0 for chrF, 2 for chrF++. Default 0.
    lowercase (bool): case-insensitive chrF. Default False.
Returns:
    score (float, 0-100), char_order, word_order, beta, signature (str)
"""


class Chrf(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Popovic, 2015. chrF: character n-gram F-score for automatic MT evaluation.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            homepage="https://github.com/mjpost/sacrebleu",
        )

    def _compute(self, predictions, references, word_order: int = 0, lowercase: bool = False):
        metric = sacrebleu.CHRF(word_order=word_order, lowercase=lowercase)
        result = metric.corpus_score(list(predictions), [list(references)])
        return {
            "score": result.score,
            "char_order": result.char_order,
            "word_order": result.word_order,
            "beta": result.beta,
            "signature": str(metric.get_signature()),
        }
