"""Corpus BLEU (sacrebleu) as a local `evaluate` module: `evaluate.load("<this dir>")` works offline.

Imports stay one per line: evaluate's dependency check parses them and rejects `import a, b`.
"""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = "Corpus-level BLEU computed by sacrebleu (one reference per prediction)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list[str]): system outputs.
    references (list[str]): one reference per prediction.
    tokenize (str): sacrebleu tokenizer ("13a", "intl", "zh", "ja-mecab", "char", "none", ...). Default "13a".
    lowercase (bool): case-insensitive BLEU. Default False.
Returns:
    score (float, 0-100), counts, totals, precisions, bp, sys_len, ref_len, signature (str)
"""


class Bleu(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, 2018. A Call for Clarity in Reporting BLEU Scores.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            homepage="https://github.com/mjpost/sacrebleu",
        )

    def _compute(self, predictions, references, tokenize: str = "13a", lowercase: bool = False):
        metric = sacrebleu.BLEU(tokenize=tokenize, lowercase=lowercase)
        result = metric.corpus_score(list(predictions), [list(references)])
        return {
            "score": result.score,
            "counts": result.counts,
            "totals": result.totals,
            "precisions": result.precisions,
            "bp": result.bp,
            "sys_len": result.sys_len,
            "ref_len": result.ref_len,
            "signature": str(metric.get_signature()),
        }
