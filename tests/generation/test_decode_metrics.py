"""pasero-decode --metrics/--eval-lc: Pasero's metric names pick what is printed; TextGenerator.metrics holds them."""

import pytest
import sacrebleu

from pasero_hf.cli.decode import main
from pasero_hf.generation import TextGenerator


def test_metrics_and_eval_lc(pasero_tiny_dir, bible_dir, tmp_path, capsys):
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:6]
    refs = (bible_dir / "test.es").read_text(encoding="utf-8").splitlines()[:6]
    (tmp_path / "test.en").write_text("\n".join(sources) + "\n", encoding="utf-8")
    (tmp_path / "test.es").write_text("\n".join(refs) + "\n", encoding="utf-8")
    output = tmp_path / "out.es"
    args = [str(pasero_tiny_dir), "-i", str(tmp_path / "test.en"), "-r", str(tmp_path / "test.es"), "-o", str(output),
            "--beam-size", "1", "--max-output-len", "30"]
    assert main([*args, "--metrics", "chrf++", "len_ratio", "--eval-lc"]) == 0
    printed = capsys.readouterr().err
    hyps = output.read_text(encoding="utf-8").splitlines()
    chrf_pp = sacrebleu.CHRF(word_order=2, lowercase=True).corpus_score(hyps, [refs]).score
    assert f"chrf++ {chrf_pp:.2f}" in printed and "len_ratio" in printed and "bleu" not in printed
    generator = TextGenerator.from_pretrained(pasero_tiny_dir, beam_size=1, max_output_len=30)
    corpus = generator.get_inference_corpus(str(tmp_path / "test.en"), ref_path=str(tmp_path / "test.es"),
                                            output_path=False)
    generator.decode_corpus(corpus, metrics=["bleu", "len_ratio"])
    assert set(generator.metrics) == {"bleu", "len_ratio"}
    assert generator.metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    with pytest.raises(SystemExit, match="1"):  # spbleu needs its SentencePiece model, checked before loading
        main([*args, "--metrics", "spbleu"])
    assert "metric 'spbleu' needs the FLORES-200 SentencePiece model" in capsys.readouterr().err
