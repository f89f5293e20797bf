"""Decoding a causal LM fine-tuned on translation prompts: pasero-decode, n-best, scores, sampling, stop sequences,
decoder layers (the `trained_lm` run of conftest)."""

from __future__ import annotations

import pytest

from tests.lm.conftest import PAIRS


@pytest.fixture(scope="module")
def lm_generator(trained_lm):
    from pasero_hf.generation import TextGenerator

    return TextGenerator.from_pretrained(trained_lm, beam_size=1)  # the run's directory: its model_best


def test_pasero_decode_translates_with_the_trained_prompt_and_scores(trained_lm, prompt_data, tmp_path, capsys):
    from pasero_hf.cli.decode import main

    output = tmp_path / "out.es"
    assert main([str(trained_lm), "-s", "en", "-t", "es", "-i", str(prompt_data / "valid.en"), "-r",
                 str(prompt_data / "valid.es"), "-o", str(output), "--beam-size", "1", "--quiet"]) == 0
    lines = output.read_text(encoding="utf-8").splitlines()
    assert sum(line == target for line, (_, target) in zip(lines, PAIRS)) >= 7
    chrf = float(capsys.readouterr().err.split("chrf ")[1].split()[0])
    assert chrf > 90
    # a language the model was not trained on is refused, as for MT models
    with pytest.raises(SystemExit):
        main([str(trained_lm), "-s", "en", "-t", "fr", "-i", str(prompt_data / "valid.en"), "--quiet"])
    assert "unknown target language 'fr': this model supports es" in capsys.readouterr().err


def test_nbest_scores_sampling_and_layers(lm_generator):
    source = PAIRS[0][0]
    nbest = lm_generator.decode(source, source_lang="en", target_lang="es", beam_size=3, n_best=3,
                                return_scores=True, return_layers=["dec_1", "dec_0_self_attn"])[0]
    assert len(nbest) == 3 and nbest[0]["detok"] == PAIRS[0][1]
    scores = [hypothesis["score"] for hypothesis in nbest]
    assert scores[0] == pytest.approx(sum(nbest[0]["pos_scores"]), abs=1e-4) and scores[0] < scores[-1]
    best = nbest[0]
    length, prompt_length = len(best["tokens"]), len(best["prompt_tokens"])
    assert best["dec_1"].shape == (length, 64)
    assert best["dec_0_self_attn"].shape == (length, 4, prompt_length + length - 1)
    assert best["dec_0_self_attn"].sum(-1) == pytest.approx(1.0, abs=1e-4)  # attention rows are distributions
    with pytest.raises(ValueError, match="does not exist in a decoder-only model"):
        lm_generator.decode(source, source_lang="en", target_lang="es", return_layers=["dec_0_cross_attn"])
    # sampling: seeded runs agree, and a hot temperature strays from the greedy output
    hot = {"sampling": True, "temperature": 5.0, "seed": 3, "n_best": 4}
    first = [h["detok"] for h in lm_generator.decode(source, source_lang="en", target_lang="es", **hot)[0]]
    again = [h["detok"] for h in lm_generator.decode(source, source_lang="en", target_lang="es", **hot)[0]]
    assert first == again and len(set(first)) > 1


def test_stop_sequences_end_the_output(lm_generator):
    plain = lm_generator.decode(PAIRS[3][0], source_lang="en", target_lang="es")[0][0]
    stopped = lm_generator.decode(PAIRS[3][0], source_lang="en", target_lang="es", stop_sequences=[","])[0][0]
    assert plain["detok"] == "Adoram, Uzal, Dicla,"
    assert stopped["detok"] == "Adoram" and len(stopped["tokens"]) < len(plain["tokens"])
    with pytest.raises(ValueError, match="stop_sequences must be a list of non-empty strings"):
        lm_generator.decode("x", stop_sequences=[""])
