"""The `translation` pipeline task registered by pasero_hf (transformers 5 removed its own)."""

import json

import pytest
import sentencepiece as spm
import torch
from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer, pipeline

import pasero_hf.models  # noqa: F401  (registers the task)


@pytest.fixture(scope="module")
def tiny_m2m100_dir(tmp_path_factory, bible_dir):
    """A tiny random M2M100 with a small sentencepiece tokenizer trained here on Bible text."""
    directory = tmp_path_factory.mktemp("m2m100")
    lines = (bible_dir / "train.en").read_text(encoding="utf-8").splitlines()[:300]
    lines += (bible_dir / "train.es").read_text(encoding="utf-8").splitlines()[:300]
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(directory / "spm"), vocab_size=120, model_type="bpe",
        bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(directory / "spm.model"))
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for piece_id in range(processor.get_piece_size()):
        vocab.setdefault(processor.id_to_piece(piece_id), len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = M2M100Tokenizer(vocab_file=str(directory / "vocab.json"), spm_file=str(directory / "spm.model"))
    torch.manual_seed(0)
    config = M2M100Config(
        # language-code ids come after the sentencepiece vocabulary, then fairseq's "madeup" padding words
        vocab_size=tokenizer.encoder_size + len(tokenizer.lang_code_to_id) + tokenizer.num_madeup_words, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        encoder_layerdrop=0.0, decoder_layerdrop=0.0,
    )
    model = M2M100ForConditionalGeneration(config).eval()
    model.generation_config.max_new_tokens = 8
    model.save_pretrained(directory / "model")
    tokenizer.save_pretrained(directory / "model")
    return directory / "model"


def test_m2m100_translation_uses_language_codes(tiny_m2m100_dir):
    translate = pipeline("translation", model=str(tiny_m2m100_dir), src_lang="en", tgt_lang="es", num_beams=2)
    texts = ["In the beginning God created the heaven and the earth.", "And God said, Let there be light."]
    result = translate(texts)
    assert [list(item) for item in result] == [["translation_text"], ["translation_text"]]

    tokenizer = M2M100Tokenizer.from_pretrained(tiny_m2m100_dir)
    model = M2M100ForConditionalGeneration.from_pretrained(tiny_m2m100_dir).eval()
    tokenizer.src_lang = "en"
    for text, item in zip(texts, result):
        inputs = tokenizer(text, return_tensors="pt")
        assert inputs["input_ids"][0, 0].item() == tokenizer.get_lang_id("en")
        output = model.generate(**inputs, forced_bos_token_id=tokenizer.get_lang_id("es"), num_beams=2)
        assert output[0, 1].item() == tokenizer.get_lang_id("es")
        assert item["translation_text"] == tokenizer.decode(output[0], skip_special_tokens=True)


def test_single_text_gives_a_one_item_list(tiny_m2m100_dir):
    translate = pipeline("translation", model=str(tiny_m2m100_dir), src_lang="en", tgt_lang="fr")
    result = translate("Let there be light.")
    assert isinstance(result, list) and len(result) == 1 and isinstance(result[0]["translation_text"], str)


def test_m2m100_without_languages_is_a_clear_error(tiny_m2m100_dir):
    translate = pipeline("translation", model=str(tiny_m2m100_dir))
    with pytest.raises(ValueError, match="requires a `src_lang` and a `tgt_lang`"):
        translate("Let there be light.", tgt_lang="es")


def test_pasero_translation_matches_generate(converted_tiny_dir, bible_dir):
    texts = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:3]
    translate = pipeline("translation", model=str(converted_tiny_dir), src_lang="en", tgt_lang="es")
    assert translate.model.generation_config.num_beams == 5  # Pasero's beam size came through the conversion
    result = translate(texts, max_new_tokens=20)
    tokenizer, model = translate.tokenizer, translate.model
    for text, item in zip(texts, result):
        output = model.generate(**tokenizer(text, return_tensors="pt"), max_new_tokens=20)
        assert item["translation_text"] == tokenizer.decode(output[0], skip_special_tokens=True)
        assert item["translation_text"] and "</s>" not in item["translation_text"]


def test_pasero_language_codes_in_source_and_decoder_prompt(fixtures_dir, tmp_path):
    """A multilingual Pasero model with `<lang:xx>` codes: `<lang:src>` leads the source, decoding starts with
    `</s> <lang:tgt>`."""
    from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration
    from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer

    model_files = fixtures_dir / "pasero-models" / "TED-top20"
    tokenizer = PaseroTokenizer(bpe_file=str(model_files / "bpecodes"), dict_file=str(model_files / "dict.txt"),
                                source_lang_code=True, target_lang_code=True, src_lang="en", tgt_lang="es")
    torch.manual_seed(0)
    model = PaseroForConditionalGeneration(PaseroConfig(
        vocab_size=len(tokenizer), embed_dim=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=8, decoder_ffn_dim=8,
    )).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    translate = pipeline("translation", model=str(tmp_path), num_beams=1, max_new_tokens=4)
    text = "Thank you so much, Chris."
    result = translate(text, src_lang="de", tgt_lang="fr")

    source = translate.tokenizer(text, return_tensors="pt")["input_ids"]
    assert source[0, 0].item() == tokenizer.lang_code_id("de") and source[0, -1].item() == tokenizer.eos_token_id
    prompt = torch.tensor([[tokenizer.eos_token_id, tokenizer.lang_code_id("fr")]])
    output = model.generate(input_ids=source, decoder_input_ids=prompt, num_beams=1, max_new_tokens=4)
    assert result == [{"translation_text": tokenizer.decode(output[0], skip_special_tokens=True)}]
