"""TextGenerator.decode_corpus: whole files, buffering, references and metrics, resuming, verbose output."""

import pytest

from pasero_hf.generation.inference_corpus import get_inference_corpus
from pasero_hf.metrics import corpus_scores

LANGS = {"source_lang": "eng_Latn", "target_lang": "spa_Latn"}


@pytest.fixture()
def bible_pair(bible_dir, tmp_path):
    """The first 12 lines of Bible test, with an empty source line and an empty reference line inserted."""
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:12]
    refs = (bible_dir / "test.es").read_text(encoding="utf-8").splitlines()[:12]
    sources[3], refs[7] = "", ""
    (tmp_path / "test.eng_Latn").write_text("\n".join(sources) + "\n", encoding="utf-8")
    (tmp_path / "test.spa_Latn").write_text("\n".join(refs) + "\n", encoding="utf-8")
    return tmp_path / "test.eng_Latn", tmp_path / "test.spa_Latn", sources, refs


def test_outputs_in_input_order_and_metrics(nllb_generator, bible_pair, tmp_path):
    source_path, ref_path, sources, refs = bible_pair
    output = tmp_path / "out" / "test.hyp"
    corpus = get_inference_corpus(str(source_path), str(ref_path), str(output), **LANGS)
    nllb_generator.decode_corpus(corpus, buffer_size=5, batch_size=64)

    kept = [i for i in range(12) if sources[i] and refs[i]]  # pairs with an empty side are skipped
    expected = [nbest[0]["detok"] for nbest in nllb_generator.decode(*[sources[i] for i in kept], **LANGS)]
    assert output.read_text(encoding="utf-8").split("\n")[:-1] == expected
    assert not output.with_name("test.hyp.partial").exists()
    assert nllb_generator.metrics == pytest.approx(corpus_scores(expected, [refs[i] for i in kept]))


def test_without_reference_every_line_gets_an_output(nllb_generator, bible_pair, capsys):
    source_path, _, sources, _ = bible_pair
    corpus = get_inference_corpus(str(source_path), output_path=None, **LANGS)
    nllb_generator.decode_corpus(corpus, buffer_size=4, progress=False)
    lines = capsys.readouterr().out.split("\n")[:-1]
    assert len(lines) == 12 and lines[3] == ""  # the empty input keeps its place
    assert nllb_generator.metrics == {}


def test_resume_keeps_complete_lines(nllb_generator, bible_pair, tmp_path):
    source_path, _, _, _ = bible_pair
    output = tmp_path / "resume.hyp"
    corpus = get_inference_corpus(str(source_path), output_path=str(output), **LANGS)
    nllb_generator.decode_corpus(corpus)
    complete = output.read_text(encoding="utf-8")

    lines = complete.split("\n")
    # an interrupted run: 5 complete lines, then a cut line; the marker proves that kept lines are not re-decoded
    partial = output.with_name("resume.hyp.partial")
    partial.write_text("\n".join(["KEPT"] + lines[1:5]) + "\n" + lines[5][:3], encoding="utf-8")
    output.unlink()
    outputs = nllb_generator.decode_corpus(corpus, continue_=True)
    assert len(outputs) == 7
    assert output.read_text(encoding="utf-8") == "\n".join(["KEPT"] + lines[1:])
    assert not partial.exists()


def test_verbose_output_and_resume(nllb_generator, bible_pair, tmp_path):
    source_path, ref_path, _, _ = bible_pair
    output = tmp_path / "verbose.hyp"
    corpus = get_inference_corpus(str(source_path), str(ref_path), str(output), **LANGS)
    nllb_generator.decode_corpus(corpus, verbose=True)
    text = output.read_text(encoding="utf-8")
    first = [line.split("\t")[0] for line in text.split("\n")[:6]]
    assert first == ["S-0", "A-0", "I-0", "H-0", "D-0", "P-0"]
    hyp_tokens = text.split("\n")[3].split("\t")[1].split(" ")
    assert len(text.split("\n")[1].split("\t")[1].split(" ")) == len(hyp_tokens)
    assert len(text.split("\n")[5].split("\t")[2].split(" ")) == len(hyp_tokens)
    metrics = dict(nllb_generator.metrics)

    # cut the file in the middle of the 4th entry and resume: same file, same metrics
    cut = text.index("H-3\t")
    output.unlink()
    output.with_name("verbose.hyp.partial").write_text(text[:cut], encoding="utf-8")
    nllb_generator.decode_corpus(corpus, verbose=True, continue_=True)
    assert output.read_text(encoding="utf-8") == text
    assert nllb_generator.metrics == pytest.approx(metrics)


def test_teacher_forcing_over_a_corpus(nllb_generator, bible_pair, tmp_path):
    source_path, ref_path, sources, refs = bible_pair
    output = tmp_path / "forced.hyp"
    corpus = get_inference_corpus(str(source_path), str(ref_path), str(output), **LANGS)
    nllb_generator.decode_corpus(corpus, teacher_forcing=True)
    kept = [refs[i] for i in range(12) if sources[i] and refs[i]]
    assert output.read_text(encoding="utf-8").split("\n")[:-1] == kept
    assert nllb_generator.metrics["chrf"] == pytest.approx(100.0)


def test_corpus_errors(nllb_generator, tmp_path):
    with pytest.raises(FileNotFoundError, match="input file not found: .*missing.en"):
        nllb_generator.decode_corpus(get_inference_corpus(str(tmp_path / "missing.en"), **LANGS))
    (tmp_path / "a.en").write_text("one\ntwo\n")
    (tmp_path / "a.es").write_text("uno\n")
    with pytest.raises(ValueError, match="a.en and .*a.es have different numbers of lines"):
        nllb_generator.decode_corpus(get_inference_corpus(str(tmp_path / "a.en"), str(tmp_path / "a.es"), False, **LANGS))
    with pytest.raises(ValueError, match="--continue needs an output file"):
        nllb_generator.decode_corpus(get_inference_corpus(str(tmp_path / "a.en"), **LANGS), continue_=True)
