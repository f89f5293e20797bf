"""Vocabulary trimming: a smaller model and tokenizer that load everywhere and behave the same on kept text."""

import tempfile

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from pasero_hf.generation import TextGenerator
from pasero_hf.models.vocab_trimming import trim_vocabulary
from pasero_hf.tokenization.model_languages import ModelLanguages
from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import train

from .conftest import FAMILIES, finetune_config

KEPT_TEXT = ["In the beginning God created the heaven and the earth.", "And God said, Let there be light."]
TARGET_TEXT = ["En el principio creó Dios los cielos y la tierra."]


def _prepare(tokenizer, family):
    languages = ModelLanguages.for_tokenizer(tokenizer)
    languages.set_tokenizer_languages(tokenizer, "en", "es")
    prefix = languages.source_text_prefix("en", "es")
    return [prefix + text for text in KEPT_TEXT]


@pytest.mark.parametrize("family", FAMILIES)
def test_trimmed_model_and_tokenizer_behave_the_same(family, family_model_dirs, tmp_path, monkeypatch):
    directory = family_model_dirs[family]
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSeq2SeqLM.from_pretrained(directory).eval()
    sources = _prepare(tokenizer, family)
    encoded = tokenizer(sources, text_target=TARGET_TEXT * 2)
    keep = {i for ids in encoded["input_ids"] + encoded["labels"] for i in ids}
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the trimmed tokenizer's files go in between
    trimmed_model, trimmed_tokenizer = trim_vocabulary(model, tokenizer, keep)
    assert list(scratch.iterdir()) == []  # no temporary directory left behind...
    trimmed_model.save_pretrained(tmp_path / "trimmed")
    trimmed_tokenizer.save_pretrained(tmp_path / "trimmed")  # ...and the tokenizer still saves without it
    assert list(scratch.iterdir()) == []

    reloaded_tok = AutoTokenizer.from_pretrained(tmp_path / "trimmed")
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "trimmed").eval()
    assert type(reloaded_tok) is type(tokenizer) and type(reloaded) is type(model)
    assert len(reloaded_tok) < len(tokenizer) / 2
    assert reloaded.get_input_embeddings().num_embeddings < model.get_input_embeddings().num_embeddings / 2
    # language codes and special tokens survive
    languages = ModelLanguages.for_tokenizer(reloaded_tok)
    assert languages.codes == ModelLanguages.for_tokenizer(tokenizer).codes
    _prepare(reloaded_tok, family)
    new = reloaded_tok(sources, text_target=TARGET_TEXT * 2)
    for old_ids, new_ids in zip(encoded["input_ids"] + encoded["labels"], new["input_ids"] + new["labels"]):
        assert tokenizer.convert_ids_to_tokens(old_ids) == reloaded_tok.convert_ids_to_tokens(new_ids)
        assert reloaded_tok.decode(new_ids, skip_special_tokens=True) == tokenizer.decode(old_ids, skip_special_tokens=True)
    # the same scores for the kept tokens, teacher-forced on the target text
    new_to_old = [tokenizer.convert_tokens_to_ids(reloaded_tok.convert_ids_to_tokens(i)) for i in range(len(reloaded_tok))]
    old_batch = tokenizer(sources, text_target=TARGET_TEXT * 2, return_tensors="pt", padding=True)
    new_batch = reloaded_tok(sources, text_target=TARGET_TEXT * 2, return_tensors="pt", padding=True)
    with torch.no_grad():
        old_logits = model(**old_batch).logits[..., new_to_old]
        new_logits = reloaded(**new_batch).logits[..., :len(reloaded_tok)]
    torch.testing.assert_close(new_logits, old_logits, rtol=1e-5, atol=1e-5)
    hypothesis = TextGenerator.from_pretrained(tmp_path / "trimmed").decode(
        KEPT_TEXT[0], source_lang="en", target_lang="es", max_output_len=4, return_scores=True)[0][0]
    assert isinstance(hypothesis["detok"], str) and hypothesis["prompt_tokens"][1:] == ModelLanguages.for_tokenizer(
        reloaded_tok).target_code_token(reloaded_tok, "es").split() * ModelLanguages.for_tokenizer(reloaded_tok).forces_target_code


def test_trim_vocab_option_trains_a_smaller_model(family_model_dirs, finetune_data_dir, tmp_path):
    config = load_training_config(**finetune_config(finetune_data_dir, family_model_dirs["nllb"], tmp_path / "run",
                                                    trim_vocab=True, max_steps=2))
    result = train(config)
    full = AutoTokenizer.from_pretrained(family_model_dirs["nllb"])
    tokenizer = AutoTokenizer.from_pretrained(result.last_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(result.last_dir)
    assert len(tokenizer) < len(full)
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    hypothesis = TextGenerator.from_pretrained(result.last_dir).decode(
        KEPT_TEXT[0], source_lang="en", target_lang="es", max_output_len=4)[0][0]
    assert hypothesis["prompt_tokens"][1:] == ["spa_Latn"]
