"""The original-Pasero tiny model (converted) decoded through TextGenerator and pasero-decode: identical outputs to
the original `pasero-decode`, including its verbose format, scores and alignments; attention heatmaps."""

import subprocess
import sys

import numpy as np
import pytest

from pasero_hf.plotting import heatmap

N_LINES = 40


@pytest.fixture(scope="module")
def test_lines(bible_dir):
    return (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("beam_size, reference", [(1, "test.greedy.es"), (5, "test.beam5.es")])
def test_outputs_equal_the_original_pasero_decode(pasero_generator, test_lines, fixtures_dir, beam_size, reference):
    expected = (fixtures_dir / "pasero-tiny-en-es" / reference).read_text(encoding="utf-8").splitlines()
    results = pasero_generator.decode(*test_lines[:N_LINES], source_lang="en", target_lang="es", beam_size=beam_size)
    assert [nbest[0]["detok"] for nbest in results] == expected[:N_LINES]


def test_greedy_search_scores_only_on_request(pasero_generator, test_lines):
    """As in Pasero, greedy search skips the log-softmax unless scores are asked for: same outputs, no scores."""
    lines = test_lines[:N_LINES]
    plain = pasero_generator.decode(*lines, source_lang="en", target_lang="es", beam_size=1)
    scored = pasero_generator.decode(*lines, source_lang="en", target_lang="es", beam_size=1, return_scores=True)
    assert [nbest[0]["tokens"] for nbest in plain] == [nbest[0]["tokens"] for nbest in scored]
    assert all("score" not in nbest[0] and "pos_scores" not in nbest[0] for nbest in plain)
    for nbest in scored:
        hyp = nbest[0]
        assert len(hyp["pos_scores"]) == len(hyp["tokens"]) and all(value >= 0 for value in hyp["pos_scores"])
        assert hyp["score"] == pytest.approx(sum(hyp["pos_scores"]), rel=1e-5)
    beam = pasero_generator.decode(lines[0], source_lang="en", target_lang="es", beam_size=5)[0][0]
    assert "score" in beam and "normalized_score" in beam  # beam search always scores


def parse_verbose(text):
    entries = {}
    for line in text.splitlines():
        key, _, value = line.partition("\t")
        entries[key] = value
    return entries


@pytest.mark.parametrize("runtime", [[], ["--no-onednn"]])
def test_verbose_cli_output_equals_the_original(pasero_tiny_dir, test_lines, fixtures_dir, tmp_path, runtime):
    source = tmp_path / "first5.en"
    source.write_text("\n".join(test_lines[:5]) + "\n", encoding="utf-8")
    output = tmp_path / "first5.hyp"
    subprocess.run(
        [sys.executable, "-m", "pasero_hf.cli.decode", str(pasero_tiny_dir), "-i", str(source), "-t", "es",
         "--beam-size", "1", "-v", "-o", str(output), *runtime],
        check=True, capture_output=True, text=True, timeout=120,
    )
    ours = parse_verbose(output.read_text(encoding="utf-8"))
    reference = parse_verbose(
        (fixtures_dir / "pasero-tiny-en-es" / "test.first5.greedy.verbose.hyp.txt").read_text(encoding="utf-8")
    )
    assert sorted(ours) == sorted(reference)
    for key, value in reference.items():
        if key.startswith("P-"):
            ours_scores = np.array(ours[key].replace("\t", " ").split(), dtype=float)
            np.testing.assert_allclose(ours_scores, np.array(value.replace("\t", " ").split(), dtype=float), atol=2e-3)
        else:
            assert ours[key] == value, key


def test_scores_and_cross_attention(pasero_generator, test_lines, tmp_path):
    hyp = pasero_generator.decode(
        test_lines[4], source_lang="en", target_lang="es", beam_size=5, return_scores=True,
        return_layers=["dec_1_cross_attn", "enc_1"],
    )[0][0]
    assert hyp["score"] == pytest.approx(sum(hyp["pos_scores"]), rel=1e-5)
    assert hyp["normalized_score"] == pytest.approx(hyp["score"] / (len(hyp["tokens"]) + 1))
    attention = hyp["dec_1_cross_attn"]
    assert attention.shape == (len(hyp["tokens"]), 4, len(hyp["src_tokens"]))
    assert hyp["enc_1"].shape == (len(hyp["src_tokens"]), 64)

    path = tmp_path / "plots" / "attention.png"
    figure = heatmap(hyp["src_tokens"], hyp["tokens"], attention, path=path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == tuple(int(v) for v in figure.get_size_inches() * figure.dpi)
    # one row per output token, one column per source token: the plot's aspect follows the token counts
    assert (height > width) == (len(hyp["tokens"]) > len(hyp["src_tokens"]))
    tgt_len, src_len = len(hyp["tokens"]), len(hyp["src_tokens"])
    with pytest.raises(ValueError, match=rf"attention has shape \({tgt_len}, 4, {src_len}\), expected \(3, {src_len}\)"):
        heatmap(hyp["src_tokens"], hyp["tokens"][:3], attention)
    single_head = heatmap(hyp["src_tokens"], hyp["tokens"], attention, head=2)
    drawn = single_head.axes[0].images[0].get_array()
    np.testing.assert_allclose(drawn, attention[:, 2] * 100, rtol=1e-5)


def test_multilingual_pasero_model_gets_its_language_codes(fixtures_dir, tmp_path):
    """A Pasero model with source and target language codes: `<lang:xx>` placed by the tokenizer, the target code
    forced as decoder prefix (and kept out of the hypothesis), the output equal to `pasero_search`'s own."""
    import torch

    from pasero_hf.generation.beam_search import pasero_search
    from pasero_hf.generation.text_generator import TextGenerator
    from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration
    from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer

    fixture = fixtures_dir / "pasero-tiny-en-es"
    dict_file = tmp_path / "dict.txt"
    dict_file.write_text((fixture / "dict.txt").read_text(encoding="utf-8") + "<lang:en> 1\n<lang:es> 1\n<lang:fr> 1\n")
    tokenizer = PaseroTokenizer(bpe_file=str(fixture / "bpecodes"), dict_file=str(dict_file),
                                source_lang_code=True, target_lang_code=True)
    config = PaseroConfig(vocab_size=len(tokenizer), embed_dim=32, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64)
    torch.manual_seed(0)
    generator = TextGenerator(PaseroForConditionalGeneration(config).eval(), tokenizer)

    hyp = generator.decode("In the beginning.", source_lang="en", target_lang="fr", beam_size=3, max_output_len=6)[0][0]
    assert hyp["src_tokens"][0] == "<lang:en>" and hyp["prompt_tokens"] == ["</s>", "<lang:fr>"]
    inputs = tokenizer("In the beginning.", return_tensors="pt")
    expected = pasero_search(generator.model, inputs["input_ids"], inputs["attention_mask"], beam_size=3,
                             max_output_len=6, prefix_ids=[tokenizer.convert_tokens_to_ids("<lang:fr>")])[0][0]
    assert tokenizer.convert_tokens_to_ids(hyp["tokens"]) == expected.tokens[1:]
    with pytest.raises(ValueError, match="unknown target language 'de'.*'<lang:de>'"):
        generator.decode("Hello", source_lang="en", target_lang="de")


def test_decoding_outputs_do_not_depend_on_onednn(pasero_generator, test_lines):
    """TextGenerator's oneDNN linear layers (the default on CPU) change no output; scores only by rounding."""
    lines = test_lines[:N_LINES]
    outputs = {}
    for onednn in (True, False):
        pasero_generator.onednn = onednn
        outputs[onednn] = pasero_generator.decode(*lines, source_lang="en", target_lang="es", beam_size=5,
                                                  return_scores=True)
    pasero_generator.onednn = True
    for with_onednn, without in zip(outputs[True], outputs[False]):
        assert with_onednn[0]["tokens"] == without[0]["tokens"]
        assert with_onednn[0]["score"] == pytest.approx(without[0]["score"], abs=1e-3)
