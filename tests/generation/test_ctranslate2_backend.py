"""The CTranslate2 backend behind `TextGenerator` and `pasero-decode`: same options, hypotheses, output format and
corpus handling as the PyTorch path (the tiny original-Pasero fixture, its original `pasero-decode` outputs as
references)."""

import os
import subprocess
import sys

import pytest

from pasero_hf.generation.text_generator import TextGenerator

FIXTURE = "pasero-tiny-en-es"


@pytest.fixture(scope="module")
def ct2_generator(tiny_ct2):
    return TextGenerator.from_pretrained(tiny_ct2)


def run_cli(module, *args, check=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                            env=env, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.mark.slow
def test_export_then_decode_files_like_pasero(pasero_tiny_dir, pasero_generator, bible_dir, fixtures_dir, tmp_path):
    """The README's two commands: export, then decode with references (outputs, BLEU/chrF, verbose lines)."""
    out = tmp_path / "tiny-ct2"
    assert run_cli("pasero_hf.cli.export", pasero_tiny_dir, out, "--format", "ctranslate2").stdout.strip() == str(out)
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:30]
    refs = (bible_dir / "test.es").read_text(encoding="utf-8").splitlines()[:30]
    (tmp_path / "test.en").write_text("\n".join(sources) + "\n", encoding="utf-8")
    (tmp_path / "test.es").write_text("\n".join(refs) + "\n", encoding="utf-8")
    result = run_cli("pasero_hf.cli.decode", out, "-i", tmp_path / "test.en", "-r", tmp_path / "test.es",
                     "-o", tmp_path / "hyp.es", "--beam-size", "1", "--buffer-size", "7")
    expected = (fixtures_dir / FIXTURE / "test.greedy.es").read_text(encoding="utf-8").splitlines()[:30]
    assert (tmp_path / "hyp.es").read_text(encoding="utf-8").splitlines() == expected
    pasero_generator.decode_corpus(
        pasero_generator.get_inference_corpus(str(tmp_path / "test.en"), ref_path=str(tmp_path / "test.es"),
                                              output_path=False), beam_size=1)
    metrics = pasero_generator.metrics
    assert f"bleu {metrics['bleu']:.2f} | chrf {metrics['chrf']:.2f}" in result.stderr

    # Pasero's verbose lines (S-/A-/I-/H-/D-/P-): identical to the original pasero-decode -v, alignments included
    (tmp_path / "first5.en").write_text("\n".join(sources[:5]) + "\n", encoding="utf-8")
    run_cli("pasero_hf.cli.decode", out, "-i", tmp_path / "first5.en", "-t", "es", "-v", "--beam-size", "1",
            "-o", tmp_path / "verbose.txt", "--quiet")
    reference = (fixtures_dir / FIXTURE / "test.first5.greedy.verbose.hyp.txt").read_text(encoding="utf-8")
    assert (tmp_path / "verbose.txt").read_text(encoding="utf-8") == reference


def test_continue_resumes_an_interrupted_output(tiny_ct2, bible_dir, fixtures_dir, tmp_path):
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:12]
    (tmp_path / "in.en").write_text("\n".join(sources) + "\n", encoding="utf-8")
    expected = (fixtures_dir / FIXTURE / "test.greedy.es").read_text(encoding="utf-8").splitlines()[:12]
    # an interrupted run: 5 complete lines and half of the sixth in OUT.partial
    (tmp_path / "out.es.partial").write_text("\n".join(expected[:5]) + "\n" + expected[5][:10], encoding="utf-8")
    result = run_cli("pasero_hf.cli.decode", tiny_ct2, "-i", tmp_path / "in.en", "-o", tmp_path / "out.es",
                     "--beam-size", "1", "--continue")
    assert "5 lines already decoded" in result.stderr
    assert (tmp_path / "out.es").read_text(encoding="utf-8").splitlines() == expected


@pytest.mark.slow
def test_backend_on_a_pytorch_directory_exports_once_into_the_cache(pasero_tiny_dir, bible_test, tmp_path,
                                                                    monkeypatch, fixtures_dir):
    monkeypatch.setenv("PASERO_HF_CACHE", str(tmp_path / "cache"))
    generator = TextGenerator.from_pretrained(pasero_tiny_dir, backend="ctranslate2", beam_size=1)
    expected = (fixtures_dir / FIXTURE / "test.greedy.es").read_text(encoding="utf-8").splitlines()[:8]
    assert [n[0]["detok"] for n in generator.decode(*bible_test[:8])] == expected
    (export,) = (tmp_path / "cache" / "ctranslate2").iterdir()
    stamp = (export / "model.bin").stat().st_mtime_ns
    again = TextGenerator.from_pretrained(pasero_tiny_dir, backend="ctranslate2")
    assert again.backend.export_dir == export and (export / "model.bin").stat().st_mtime_ns == stamp
    # the same through the command line
    (tmp_path / "in.en").write_text("\n".join(bible_test[:3]) + "\n", encoding="utf-8")
    result = run_cli("pasero_hf.cli.decode", pasero_tiny_dir, "--backend", "ctranslate2", "-i", tmp_path / "in.en",
                     "-t", "es", "--beam-size", "1", "--quiet")
    assert result.stdout.splitlines() == expected[:3]


def test_backend_choice_errors(tiny_ct2, pasero_tiny_dir):
    with pytest.raises(ValueError, match="CTranslate2 export: it decodes only with backend='ctranslate2'"):
        TextGenerator.from_pretrained(tiny_ct2, backend="pytorch")
    with pytest.raises(ValueError, match="unknown backend 'onnx'"):
        TextGenerator.from_pretrained(pasero_tiny_dir, backend="onnx")
    with pytest.raises(ValueError, match="quantization applies to the CTranslate2 backend"):
        TextGenerator.from_pretrained(pasero_tiny_dir, quantization="int8")


def test_return_layers_is_refused(ct2_generator, bible_test):
    with pytest.raises(ValueError, match=r"return_layers \['enc_1'\] are not available with the CTranslate2.*PyTorch"):
        ct2_generator.decode(bible_test[0], return_layers=["enc_1"])
    hypothesis = ct2_generator.decode(bible_test[0], beam_size=1, return_layers=["dec_1_cross_attn"])[0][0]
    src_len, hyp_len = len(hypothesis["src_tokens"]), len(hypothesis["tokens"])
    assert hypothesis["dec_1_cross_attn"].shape == (hyp_len, 1, src_len)  # averaged over heads
    assert hypothesis["dec_1_cross_attn"].sum(axis=-1) == pytest.approx(1.0, abs=1e-4)


def test_beam_nbest_scores_are_model_log_probabilities(ct2_generator, pasero_generator, bible_test):
    """n-best lists ranked by CTranslate2's rule (score / tokens, end token included; Pasero divides by tokens + 1);
    scores = the PyTorch model's teacher-forced NLL of each output."""
    nbests = ct2_generator.decode(*bible_test[:4], beam_size=5, n_best=3)
    for source, nbest in zip(bible_test[:4], nbests):
        assert len(nbest) == 3
        ranking = [hypothesis["score"] / len(hypothesis["tokens"]) for hypothesis in nbest]
        assert ranking == sorted(ranking)
        forced = pasero_generator.decode(*[source] * 3, teacher_forcing=[h["detok"] for h in nbest])
        for hypothesis, reference in zip(nbest, forced):
            assert hypothesis["tokens"] == reference[0]["tokens"]
            assert hypothesis["score"] == pytest.approx(reference[0]["score"], abs=1e-3)
    with_scores = ct2_generator.decode(bible_test[0], beam_size=5, return_scores=True)[0][0]
    assert sum(with_scores["pos_scores"]) == pytest.approx(with_scores["score"], abs=1e-4)
    assert len(with_scores["pos_scores"]) == len(with_scores["tokens"])


def test_greedy_like_pasero_without_scores(ct2_generator, pasero_generator, bible_test):
    ours = pasero_generator.decode(*bible_test[:3], beam_size=1, max_output_len=6)
    theirs = ct2_generator.decode(*bible_test[:3], beam_size=1, max_output_len=6)
    assert [n[0]["tokens"] for n in theirs] == [n[0]["tokens"] for n in ours]
    assert all(len(n[0]["tokens"]) == 6 for n in theirs)  # cut by max_output_len, like ours
    assert "score" not in theirs[0][0] and "score" not in ours[0][0]  # greedy without return_scores: no scores


def test_sampling_blank_lines_and_batching(ct2_generator, bible_test):
    kwargs = dict(sampling=True, sampling_topk=10, seed=3, max_output_len=15)
    first = ct2_generator.decode(*bible_test[:4], n_best=2, **kwargs)
    assert [[h["detok"] for h in n] for n in first] == [
        [h["detok"] for h in n] for n in ct2_generator.decode(*bible_test[:4], n_best=2, **kwargs)]
    assert all(len(nbest) == 2 for nbest in first)
    outputs = ct2_generator.decode("", bible_test[0], "   ", beam_size=1)
    assert outputs[0][0]["detok"] == "" and outputs[2][0]["detok"] == "" and outputs[1][0]["detok"]
    alone = [n[0]["detok"] for n in ct2_generator.decode(*bible_test[:10], beam_size=2, lines_per_batch=3)]
    assert alone == [n[0]["detok"] for n in ct2_generator.decode(*bible_test[:10], beam_size=2)]
