"""TextGenerator on a tiny random M2M100 (NLLB layout) with a real BPE tokenizer: outputs, scores, layers, options."""

import logging

import numpy as np
import pytest
import torch

from pasero_hf.generation.text_generator import TextGenerator

SENTENCES = [
    "In the beginning God created the heavens and the earth.",
    "The earth was formless and empty.",
    "God said, let there be light, and there was light.",
    "And God saw the light.",
]
LANGS = {"source_lang": "eng_Latn", "target_lang": "spa_Latn"}


def raw_generate(generator, sentence, target_code="spa_Latn", **kwargs):
    """Reference: plain `model.generate` with NLLB's forced BOS, as a Hugging Face user would call it."""
    tokenizer, model = generator.tokenizer, generator.model
    tokenizer.src_lang = "eng_Latn"
    inputs = tokenizer(sentence, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **inputs, forced_bos_token_id=tokenizer.convert_tokens_to_ids(target_code), **kwargs
        )
    ids = out[0, 2:].tolist()  # decoder start, then the forced language code
    eos = tokenizer.eos_token_id
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def test_greedy_matches_model_generate(nllb_generator):
    results = nllb_generator.decode(*SENTENCES, **LANGS, beam_size=1, max_output_len=12)
    assert len(results) == len(SENTENCES)
    outputs = set()
    for sentence, nbest in zip(SENTENCES, results):
        expected = raw_generate(nllb_generator, sentence, max_new_tokens=13, num_beams=1, do_sample=False)
        hyp = nbest[0]
        assert nllb_generator.tokenizer.convert_tokens_to_ids(hyp["tokens"]) == expected
        assert hyp["detok"] == nllb_generator.tokenizer.decode(expected, skip_special_tokens=True)
        assert hyp["prompt_tokens"] == ["</s>", "spa_Latn"]
        assert hyp["src_tokens"][0] == "eng_Latn" and hyp["src_tokens"][-1] == "</s>"
        outputs.add(hyp["detok"])
    assert len(outputs) > 1, "the test model should translate different inputs differently"


def test_beam_search_nbest_matches_model_generate(nllb_generator):
    nbest = nllb_generator.decode(SENTENCES[0], **LANGS, beam_size=4, n_best=3, max_output_len=10)[0]
    assert len(nbest) == 3
    expected = raw_generate(
        nllb_generator, SENTENCES[0], max_new_tokens=11, num_beams=4, early_stopping=True, do_sample=False
    )
    assert nllb_generator.tokenizer.convert_tokens_to_ids(nbest[0]["tokens"]) == expected
    assert len({tuple(hyp["tokens"]) for hyp in nbest}) == 3


def test_scores_are_model_log_probabilities(nllb_generator):
    hyp = nllb_generator.decode(SENTENCES[1], **LANGS, return_scores=True, beam_size=1, max_output_len=8)[0][0]
    tokenizer, model = nllb_generator.tokenizer, nllb_generator.model
    ids = tokenizer.convert_tokens_to_ids(hyp["tokens"])
    tokenizer.src_lang = "eng_Latn"
    inputs = tokenizer(SENTENCES[1], return_tensors="pt")
    decoder_input = torch.tensor([[2, tokenizer.convert_tokens_to_ids("spa_Latn")] + ids[:-1]])
    with torch.no_grad():
        logits = model(**inputs, decoder_input_ids=decoder_input).logits[0, 1:]
    expected = -torch.log_softmax(logits, dim=-1)[torch.arange(len(ids)), torch.tensor(ids)]
    np.testing.assert_allclose(hyp["pos_scores"], expected.numpy(), rtol=1e-4, atol=1e-4)
    assert hyp["score"] == pytest.approx(sum(hyp["pos_scores"]), rel=1e-6)
    assert hyp["normalized_score"] == pytest.approx(hyp["score"] / (len(ids) + 1))
    assert "pos_scores" not in nllb_generator.decode(SENTENCES[1], **LANGS)[0][0]


def test_target_language_is_forced(nllb_generator):
    spanish = nllb_generator.decode(*SENTENCES, source_lang="eng_Latn", target_lang="spa_Latn")
    french = nllb_generator.decode(*SENTENCES, source_lang="eng_Latn", target_lang="fra_Latn")
    assert french[0][0]["prompt_tokens"] == ["</s>", "fra_Latn"]
    expected = raw_generate(nllb_generator, SENTENCES[0], "fra_Latn", max_new_tokens=13, num_beams=1)
    assert nllb_generator.tokenizer.convert_tokens_to_ids(french[0][0]["tokens"]) == expected
    assert [n[0]["tokens"] for n in spanish] != [n[0]["tokens"] for n in french]


def test_unknown_language_is_an_error(nllb_generator):
    with pytest.raises(ValueError, match="unknown target language 'klingon'"):
        nllb_generator.decode("Hello", source_lang="eng_Latn", target_lang="klingon")
    with pytest.raises(ValueError, match="unknown source language 'xx_Yyyy'"):
        nllb_generator.decode("Hello", source_lang="xx_Yyyy", target_lang="spa_Latn")


def test_return_layers_shapes_and_values(nllb_generator):
    layers = ["enc_0", "enc_1_self_attn", "dec_1_cross_attn", "dec_0", "dec_0_self_attn"]
    hyp = nllb_generator.decode(SENTENCES[2], **LANGS, return_layers=layers, max_output_len=6)[0][0]
    src_len, hyp_len = len(hyp["src_tokens"]), len(hyp["tokens"])
    assert hyp["enc_0"].shape == (src_len, 32)
    assert hyp["enc_1_self_attn"].shape == (src_len, 2, src_len)
    assert hyp["dec_1_cross_attn"].shape == (hyp_len, 2, src_len)
    assert hyp["dec_0"].shape == (hyp_len, 32)
    assert hyp["dec_0_self_attn"].shape == (hyp_len, 2, 1 + hyp_len)
    np.testing.assert_allclose(hyp["dec_1_cross_attn"].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(hyp["enc_1_self_attn"].sum(-1), 1.0, rtol=1e-5)

    tokenizer, model = nllb_generator.tokenizer, nllb_generator.model
    tokenizer.src_lang = "eng_Latn"
    inputs = tokenizer(SENTENCES[2], return_tensors="pt")
    with torch.no_grad():
        states = model.get_encoder()(**inputs, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(hyp["enc_0"], states[1][0].numpy(), rtol=1e-4, atol=1e-5)
    # attentions need eager attention only for the call that asked for them
    assert model.config._attn_implementation == "sdpa"


def test_bad_layer_names(nllb_generator):
    with pytest.raises(ValueError, match="unknown layer name 'enc_0_cross_attn'"):
        nllb_generator.decode("Hello", **LANGS, return_layers=["enc_0_cross_attn"])
    with pytest.raises(ValueError, match="'dec_7_cross_attn' but the model has 2 dec layers"):
        nllb_generator.decode("Hello", **LANGS, return_layers=["dec_7_cross_attn"])


def test_blank_inputs_give_empty_outputs(nllb_generator):
    results = nllb_generator.decode(SENTENCES[0], "", "   ", SENTENCES[1], **LANGS, return_layers=["dec_1_cross_attn"])
    assert [nbest[0]["detok"] == "" for nbest in results] == [False, True, True, False]
    assert results[1][0]["tokens"] == [] and results[1][0]["dec_1_cross_attn"].shape == (0, 2, 0)
    alone = nllb_generator.decode(SENTENCES[1], **LANGS)
    assert results[3][0]["tokens"] == alone[0][0]["tokens"]


def test_batching_does_not_change_outputs(nllb_generator):
    together = nllb_generator.decode(*SENTENCES, **LANGS, beam_size=3, max_output_len=8)
    one_by_one = [nllb_generator.decode(s, **LANGS, beam_size=3, max_output_len=8)[0] for s in SENTENCES]
    small_batches = nllb_generator.decode(*SENTENCES, **LANGS, beam_size=3, max_output_len=8, batch_size=20)
    for a, b, c in zip(together, one_by_one, small_batches):
        assert a[0]["tokens"] == b[0]["tokens"] == c[0]["tokens"]
        assert a[0]["score"] == pytest.approx(b[0]["score"], rel=1e-4)


def test_long_sources_are_truncated_with_one_warning(nllb_generator, caplog):
    long_sentence = " ".join(SENTENCES * 10)
    with caplog.at_level(logging.WARNING):
        results = nllb_generator.decode(long_sentence, long_sentence, SENTENCES[3], **LANGS, max_source_len=16)
    warnings = [record.message for record in caplog.records if "truncated" in record.message]
    assert warnings == ["2 source line(s) longer than the maximum source length were truncated"]
    assert len(results[0][0]["src_tokens"]) == 16 and results[0][0]["src_tokens"][-1] == "</s>"
    assert results[2][0]["src_tokens"] == nllb_generator.decode(SENTENCES[3], **LANGS)[0][0]["src_tokens"]
    # the model's own limit (max_position_embeddings=128) applies by default
    default = nllb_generator.decode(" ".join(SENTENCES * 20), **LANGS, max_output_len=2)
    assert len(default[0][0]["src_tokens"]) == 128


def test_teacher_forcing_scores_the_reference(nllb_generator):
    reference = "En el principio creó Dios los cielos."
    hyp = nllb_generator.decode(SENTENCES[0], **LANGS, teacher_forcing=[reference], return_scores=True)[0][0]
    expected_ids = nllb_generator.tokenizer(reference, add_special_tokens=False)["input_ids"] + [2]
    assert nllb_generator.tokenizer.convert_tokens_to_ids(hyp["tokens"]) == expected_ids
    assert hyp["detok"] == reference
    assert len(hyp["pos_scores"]) == len(expected_ids)
    free = nllb_generator.decode(SENTENCES[0], **LANGS, return_scores=True, beam_size=1)[0][0]
    # greedy picks the most likely token at each step: its first token is at least as likely as the reference's
    assert free["pos_scores"][0] <= hyp["pos_scores"][0] + 1e-6
    with pytest.raises(ValueError, match="1 targets for 2 sentences"):
        nllb_generator.decode("a", "b", **LANGS, teacher_forcing=["x"])


def test_sampling_is_reproducible_with_a_seed(nllb_generator):
    def sample(seed):
        return [n[0]["tokens"] for n in nllb_generator.decode(
            *SENTENCES, **LANGS, sampling=True, seed=seed, temperature=2.0, max_output_len=10
        )]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_options_per_call_do_not_change_defaults(nllb_generator):
    before = nllb_generator.options
    nllb_generator.decode(SENTENCES[0], **LANGS, beam_size=2, max_output_len=3)
    assert nllb_generator.options == before
    capped = nllb_generator.decode(SENTENCES[0], **LANGS, max_output_len=3)[0][0]
    assert len(capped["tokens"]) <= 3
    with pytest.raises(ValueError, match="unknown decoding option 'beam_sise'"):
        nllb_generator.decode("Hello", **LANGS, beam_sise=3)
    with pytest.raises(ValueError, match="n_best .3. cannot exceed beam_size .2."):
        nllb_generator.decode("Hello", **LANGS, beam_size=2, n_best=3)


def test_from_pretrained_reads_defaults_and_overrides(nllb_dir, tmp_path):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(nllb_dir, model_dir)
    (model_dir / "inference.yaml").write_text("beam_size: 3\nmax_output_len: 7\nsource_langs: [eng_Latn]\n"
                                              "target_langs: [spa_Latn, fra_Latn]\ndict: dict.txt\n")
    generator = TextGenerator.from_pretrained(model_dir, num_beams=2)  # a Hugging Face alias
    assert (generator.options.beam_size, generator.options.max_output_len) == (2, 7)
    assert generator.source_langs == ["eng_Latn"] and generator.target_langs == ["spa_Latn", "fra_Latn"]
    # the only source language is the default; unlisted languages are refused
    hyp = generator.decode("Hello", target_lang="fra_Latn")[0][0]
    assert hyp["src_tokens"][0] == "eng_Latn"
    with pytest.raises(ValueError, match="this model supports spa_Latn, fra_Latn"):
        generator.decode("Hello", target_lang="eng_Latn")
    assert TextGenerator.build.__func__ is TextGenerator.from_pretrained.__func__


def test_from_pretrained_errors(tmp_path, fixtures_dir):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        TextGenerator.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="original Pasero model, convert it first"):
        TextGenerator.from_pretrained(fixtures_dir / "pasero-tiny-en-es")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        TextGenerator.from_pretrained(tmp_path)


def test_decoder_only_models_continue_prompts(bible_bpe, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab, merges = bible_bpe
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    config = GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                        eos_token_id=2, bos_token_id=2, pad_token_id=1, initializer_range=0.5)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    generator = TextGenerator.from_pretrained(tmp_path, beam_size=1, max_output_len=6)
    prompts = ["In the beginning", "And God said, let there be"]
    results = generator.decode(*prompts, return_scores=True)
    for prompt, nbest in zip(prompts, results):
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            expected = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=1)[0, ids.size(1):]
        hyp = nbest[0]
        assert tokenizer.convert_tokens_to_ids(hyp["tokens"]) == expected.tolist()
        assert "src_tokens" not in hyp and hyp["prompt_tokens"] == tokenizer.convert_ids_to_tokens(ids[0])
        full = torch.cat([ids[0], expected]).unsqueeze(0)
        with torch.no_grad():
            log_probs = torch.log_softmax(model(full).logits[0, ids.size(1) - 1:-1], dim=-1)
        np.testing.assert_allclose(hyp["pos_scores"], -log_probs[torch.arange(6), expected].numpy(), atol=1e-4)
    assert generator.decode("In the beginning", return_layers=["dec_0"])[0][0]["dec_0"].shape == (6, 32)
    with pytest.raises(ValueError, match="does not exist in a decoder-only model"):
        generator.decode("In the beginning", return_layers=["enc_0"])
