"""Corpus length ratio (hypothesis tokens / reference tokens, sacrebleu's BLEU tokenization) as a local `evaluate`
module: `evaluate.load("<this dir>")` works offline. Pasero's `len_ratio` metric: below 1, outputs are too short.

Imports stay one per line: evaluate's dependency check parses them and rejects `import a, b`.
"""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = "Corpus length ratio: system length / reference length, in tokens of sacrebleu's BLEU tokenizer."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list[str]): system outputs.
    references (list[str]): one reference per prediction.
    tokenize (str): sacrebleu tokenizer (13a, intl, zh, ja-mecab, char, none). Default 13a.
    lowercase (bool): lowercase both sides first. Default False.
Returns:
    score (float, the ratio), sys_len, ref_len
"""


class LenRatio(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            homepage="https://github.com/mjpost/sacrebleu",
        )

    def _compute(self, predictions, references, tokenize: str = "13a", lowercase: bool = False):
        result = sacrebleu.BLEU(tokenize=tokenize, lowercase=lowercase).corpus_score(
            list(predictions), [list(references)])
        return {"score": result.sys_len / max(result.ref_len, 1), "sys_len": result.sys_len, "ref_len": result.ref_len}
