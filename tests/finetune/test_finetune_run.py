"""Fine-tuning runs: exact resume, `--ckpt` on a Hugging Face directory, language mapping, and bad input caught
before training with the model and the fix named."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.tokenization.model_languages import ModelLanguages
from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import prepare_trainer, train

from .conftest import finetune_config


def _weights(directory):
    return load_file(str(directory / "model.safetensors"))


def test_resume_is_exact(family_model_dirs, finetune_data_dir, tmp_path):
    """2 steps, then the same command with max_steps 4: the weights of 4 uninterrupted steps."""
    model = family_model_dirs["nllb"]
    straight = train(load_training_config(**finetune_config(finetune_data_dir, model, tmp_path / "straight")))
    options = finetune_config(finetune_data_dir, model, tmp_path / "resumed")
    first = train(load_training_config(**{**options, "max_steps": 2}))
    assert first.global_step == 2
    second = train(load_training_config(**options))
    assert second.global_step == 4
    assert "resuming from" in (tmp_path / "resumed" / "train.log").read_text()
    a, b = _weights(straight.last_dir), _weights(second.last_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key


def test_ckpt_on_a_hugging_face_directory_fine_tunes_it(family_model_dirs, finetune_data_dir, tmp_path):
    options = finetune_config(finetune_data_dir, None, tmp_path / "run", ckpt=str(family_model_dirs["m2m100"]))
    del options["model"]
    trainer, _, _ = prepare_trainer(load_training_config(**options))
    assert trainer.model.config.model_type == "m2m_100"
    assert type(trainer.processing_class).__name__ == "M2M100Tokenizer"


def test_language_mapping_file_and_errors(family_model_dirs, finetune_data_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(family_model_dirs["nllb"])
    languages = ModelLanguages.for_tokenizer(tokenizer)
    assert languages.model_code("en") == "eng_Latn" and languages.model_code("spa_Latn") == "spa_Latn"
    mapping = tmp_path / "mapping.txt"
    mapping.write_text("# Pasero's format\nxyz_Latn\tEN\n")  # a code the model does not know: an error
    data_dir = tmp_path / "data"  # the corpus under the code 'EN', so that the data checks pass
    data_dir.mkdir()
    for split in ("train", "valid"):
        (data_dir / f"{split}.EN").write_text((finetune_data_dir / f"{split}.en").read_text())
        (data_dir / f"{split}.es").write_text((finetune_data_dir / f"{split}.es").read_text())
    with pytest.raises(ConfigError, match=r"unknown source language 'EN'.*eng_Latn"):
        prepare_trainer(load_training_config(**finetune_config(
            data_dir, family_model_dirs["nllb"], tmp_path / "run", source_lang="EN", lang_pairs=None,
            lang_mapping=str(mapping))))
    mapping.write_text("eng_Latn\tEN\n")
    assert ModelLanguages.for_tokenizer(tokenizer, mapping=mapping).model_code("EN") == "eng_Latn"
    m2m = ModelLanguages.for_tokenizer(AutoTokenizer.from_pretrained(family_model_dirs["m2m100"]))
    assert m2m.model_code("eng_Latn") == "en"  # NLLB codes work with M2M100 too
    mbart = ModelLanguages.for_tokenizer(AutoTokenizer.from_pretrained(family_model_dirs["mbart50"]))
    assert mbart.model_code("fr") == "fr_XX"
    marian = ModelLanguages.for_tokenizer(AutoTokenizer.from_pretrained(family_model_dirs["marian"]))
    assert marian.source_text_prefix("en", "fr") == ">>fra<< "
    with pytest.raises(ValueError, match=r"unknown target language 'de'.*spa, fra"):
        marian.source_text_prefix("en", "de")
    t5 = ModelLanguages.for_tokenizer(AutoTokenizer.from_pretrained(family_model_dirs["t5"]),
                                      source_prefix="{src}2{tgt}: ")
    assert t5.source_text_prefix("en", "de") == "en2de: "


@pytest.mark.parametrize("case", ["missing", "causal", "unknown_lang", "vocab", "lora", "model_args"])
def test_bad_input_fails_before_training(case, family_model_dirs, finetune_data_dir, tmp_path):
    model, overrides, expected = family_model_dirs["nllb"], {}, ""
    if case == "missing":
        model, expected = tmp_path / "nope", r"model: model directory not found: .*nope"
    elif case == "causal":
        model = tmp_path / "gpt2"
        GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=100)).save_pretrained(model)
        expected = r"causal language model \(gpt2\).*encoder-decoder"
    elif case == "unknown_lang":
        overrides, expected = {"target_lang": "xx"}, r"unknown target language 'xx'.*ace_Arab"
    elif case == "vocab":
        model = tmp_path / "small"
        for path in family_model_dirs["nllb"].iterdir():
            (model / path.name).parent.mkdir(exist_ok=True)
            (model / path.name).write_bytes(path.read_bytes())
        config = json.loads((model / "config.json").read_text())
        config["vocab_size"] = 100
        (model / "config.json").write_text(json.dumps(config))
        expected = r"ids up to \d+ but .* has only 100 embeddings: use the model's own tokenizer"
    elif case == "lora":
        overrides = {"lora_rank": 4, "lora_target_modules": ["q_proj", "wi"]}
        expected = r"lora_target_modules: \['wi'\] match no linear layer of this m2m_100 model.*'fc1'"
    elif case == "model_args":
        overrides, expected = {"model_args": {"embed_dim": 8}}, r"model_args: 'embed_dim' is not a field"
    data_dir = finetune_data_dir
    if case == "unknown_lang":  # the corpus exists under 'xx', so that the data checks pass and the model decides
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        for split in ("train", "valid"):
            (data_dir / f"{split}.en").write_text((finetune_data_dir / f"{split}.en").read_text())
            (data_dir / f"{split}.xx").write_text((finetune_data_dir / f"{split}.es").read_text())
    options = finetune_config(data_dir, model, tmp_path / "run", **overrides)
    with pytest.raises(ConfigError, match=expected):
        prepare_trainer(load_training_config(**options))
    assert not (tmp_path / "run" / "checkpoint-1").exists()


def test_pruned_nllb_moe_fine_tunes_with_the_same_recipe(family_model_dirs, finetune_data_dir, tmp_path):
    """An NLLB-MoE pruned to 3 of 8 experts per sparse layer (as pasero-prune-experts writes it) fine-tunes."""
    from pasero_hf.models.nllb_moe import PaseroNllbMoeConfig, PaseroNllbMoeForConditionalGeneration
    from pasero_hf.models.nllb_moe.pruning import ExpertSelection, prune_model, sparse_layers
    from pasero_hf.models.vocab_trimming import tokenizer_id_bound

    tokenizer = AutoTokenizer.from_pretrained(family_model_dirs["nllb"])
    torch.manual_seed(0)
    model = PaseroNllbMoeForConditionalGeneration(PaseroNllbMoeConfig(
        vocab_size=tokenizer_id_bound(tokenizer), d_model=16, encoder_layers=2, decoder_layers=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2, num_experts=8,
        encoder_sparse_step=2, decoder_sparse_step=2, max_position_embeddings=256, dropout=0.0,
        attention_dropout=0.0, encoder_layerdrop=0.0, decoder_layerdrop=0.0, pad_token_id=1, eos_token_id=2,
        bos_token_id=0, decoder_start_token_id=2))
    selection = {"encoder": {}, "decoder": {}}
    for side, layer_id in sparse_layers(model):
        selection[side][layer_id] = [0, 3, 5]
    prune_model(model, ExpertSelection(selection))
    pruned = tmp_path / "pruned"
    model.save_pretrained(pruned)
    tokenizer.save_pretrained(pruned)
    result = train(load_training_config(**finetune_config(finetune_data_dir, pruned, tmp_path / "run",
                                                          max_steps=2)))
    from transformers import AutoModelForSeq2SeqLM

    trained = AutoModelForSeq2SeqLM.from_pretrained(result.last_dir)
    assert type(trained) is PaseroNllbMoeForConditionalGeneration
    assert trained.config.encoder_experts_per_layer == model.config.encoder_experts_per_layer
    assert not torch.equal(trained.model.shared.weight, model.model.shared.weight)
