"""The WER metric module (loaded by path like our other `evaluate` modules) and its place in corpus_scores."""

import pytest

from pasero_hf.metrics import corpus_scores, load_metric, metric_path


def test_wer_counts_substitutions_deletions_and_insertions_over_the_corpus():
    wer = load_metric("wer")
    assert metric_path("wer").name == "wer"
    result = wer.compute(predictions=["the cat sat on mat", "a b x c d"], references=["the cat sat on the mat", "a b c"])
    # 1 deletion in 6 words, 2 insertions in 3 words: 3 errors / 9 reference words
    assert (result["deletions"], result["insertions"], result["substitutions"]) == (1, 2, 0)
    assert result["score"] == pytest.approx(100 * 3 / 9)
    assert wer.compute(predictions=["one two three"], references=["uno"])["score"] == pytest.approx(300.0)
    assert wer.compute(predictions=["Hello, world"], references=["hello world"], lowercase=True,
                       remove_punctuation=True)["score"] == 0.0


def test_corpus_scores_compute_wer_with_the_other_metrics():
    scores = corpus_scores(["Hello World"], ["hello there world"], metrics=["wer", "chrf"], lowercase=True)
    assert scores["wer"] == pytest.approx(100 / 3) and 0 < scores["chrf"] < 100
