"""Pasero's metric names: chrf++, len_ratio and spbleu (FLORES-200 SentencePiece pieces; tested with a small model
trained here, offline) beside bleu and chrf; eval_lc; clear errors for unknown names and spbleu without a model."""

import pytest
import sacrebleu
import sentencepiece

from pasero_hf.metrics import corpus_scores, load_metric

HYPS = ["The cat sat on the mat", "A dog barked loudly at Night", "Hello World"]
REFS = ["the cat is on the mat", "the dog barked loudly in the night", "hello world"]


@pytest.fixture(scope="module")
def spm_model(bible_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("spm")
    sentencepiece.SentencePieceTrainer.train(
        input=str(bible_dir / "train.en"), model_prefix=str(directory / "flores-like"), vocab_size=300,
        model_type="unigram", character_coverage=1.0, input_sentence_size=3000, num_threads=1,
        minloglevel=2)
    return directory / "flores-like.model"


def test_chrf_plus_plus_and_len_ratio_match_sacrebleu():
    scores = corpus_scores(HYPS, REFS, metrics=["bleu", "chrf", "chrf++", "len_ratio"])
    assert list(scores) == ["bleu", "chrf", "chrf++", "len_ratio"]
    assert scores["chrf++"] == pytest.approx(sacrebleu.CHRF(word_order=2).corpus_score(HYPS, [REFS]).score)
    bleu = sacrebleu.corpus_bleu(HYPS, [REFS])
    assert scores["len_ratio"] == pytest.approx(bleu.sys_len / bleu.ref_len) and scores["len_ratio"] < 1
    assert load_metric("len_ratio").compute(predictions=REFS, references=REFS)["score"] == 1.0


def test_eval_lc_scores_case_insensitively():
    cased = corpus_scores(HYPS, REFS, metrics=["bleu", "chrf++"])
    lowercased = corpus_scores(HYPS, REFS, metrics=["bleu", "chrf++"], lowercase=True)
    on_lowercase_text = corpus_scores([h.lower() for h in HYPS], REFS, metrics=["bleu", "chrf++"])
    assert lowercased == pytest.approx(on_lowercase_text)
    assert lowercased["bleu"] > cased["bleu"] and lowercased["chrf++"] > cased["chrf++"]


def test_spbleu_is_bleu_on_sentencepiece_pieces(spm_model):
    score = corpus_scores(HYPS, REFS, metrics=["spbleu"], spbleu_model=str(spm_model))["spbleu"]
    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    pieces = [[" ".join(processor.encode(line, out_type=str)) for line in side] for side in (HYPS, REFS)]
    assert score == pytest.approx(sacrebleu.corpus_bleu(pieces[0], [pieces[1]], tokenize="none").score)
    assert score != pytest.approx(corpus_scores(HYPS, REFS, metrics=["bleu"])["bleu"])


def test_metric_errors(tmp_path):
    with pytest.raises(ValueError, match=r"metric 'spbleu' needs the FLORES-200 SentencePiece model"):
        corpus_scores(HYPS, REFS, metrics=["spbleu"])
    with pytest.raises(ValueError, match=r"spbleu_model: .*missing.model does not exist"):
        corpus_scores(HYPS, REFS, metrics=["spbleu"], spbleu_model=str(tmp_path / "missing.model"))
    with pytest.raises(ValueError, match=r"unknown metric\(s\) 'meteor': available metrics are bleu, chrf, chrf\+\+"):
        corpus_scores(HYPS, REFS, metrics=["meteor"])


def test_training_options_check_metrics(tmp_path):
    from pasero_hf.training.config import ConfigError, load_training_config

    with pytest.raises(ConfigError, match=r"metrics: metric 'spbleu' needs"):
        load_training_config(["--metrics", "bleu", "spbleu"])
    with pytest.raises(ConfigError, match=r"early_stopping_metric: 'chrf' is not computed"):
        load_training_config(["--metrics", "bleu"])
    config = load_training_config(["--metrics", "chrf++", "len_ratio", "--early-stopping-metric", "chrf++",
                                   "--eval-lc"])
    assert config.run.metrics == ["chrf++", "len_ratio"] and config.run.eval_lc
