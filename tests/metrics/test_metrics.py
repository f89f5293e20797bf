import pytest
import sacrebleu

from pasero_hf.metrics import corpus_scores, load_metric, metric_path

HYPS = ["the cat sat on the mat", "a dog barked loudly at night", "hello world"]
REFS = ["the cat is on the mat", "the dog barked loudly in the night", "hello world"]


def test_bleu_module_matches_sacrebleu_and_honours_tokenizer():
    bleu = load_metric("bleu")
    for tok in ("13a", "char"):
        ours = bleu.compute(predictions=HYPS, references=REFS, tokenize=tok)
        expected = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize=tok).score
        assert abs(ours["score"] - expected) < 1e-9
        assert f"tok:{tok}" in ours["signature"]


def test_chrf_module_matches_sacrebleu():
    ours = load_metric("chrf").compute(predictions=HYPS, references=REFS)
    assert abs(ours["score"] - sacrebleu.corpus_chrf(HYPS, [REFS]).score) < 1e-9
    chrf_pp = load_metric("chrf").compute(predictions=HYPS, references=REFS, word_order=2)
    assert abs(chrf_pp["score"] - sacrebleu.CHRF(word_order=2).corpus_score(HYPS, [REFS]).score) < 1e-9


def test_corpus_scores_and_errors():
    scores = corpus_scores(REFS, REFS)
    assert abs(scores["bleu"] - 100.0) < 1e-6 and abs(scores["chrf"] - 100.0) < 1e-6
    with pytest.raises(ValueError, match=r"predictions \(3\) and references \(2\)"):
        load_metric("bleu").compute(predictions=HYPS, references=REFS[:2])
    with pytest.raises(ValueError, match="available metrics are bleu, chrf"):
        metric_path("meteor")
