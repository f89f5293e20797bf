"""Fine-tuning pretrained seq2seq models of every family with the training recipe (tiny random models, real
tokenizers): languages in the batches and in decoding, full and LoRA training, outputs that load everywhere."""

import pytest
import torch
import yaml
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from pasero_hf.generation import TextGenerator
from pasero_hf.tokenization.model_languages import ModelLanguages
from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import prepare_trainer, train

from .conftest import FAMILIES, finetune_config

SENTENCE = "And God said, Let there be light: and there was light."


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_round_trip(family, family_model_dirs):
    tokenizer = AutoTokenizer.from_pretrained(family_model_dirs[family])
    assert type(tokenizer).__name__.lower().startswith({"nllb": "nllb", "m2m100": "m2m100", "marian": "marian",
                                                        "mbart50": "mbart50", "t5": "t5"}[family])
    ids = tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == SENTENCE
    # with special tokens: the same ids between the family's language code (if any) and EOS
    full = tokenizer(SENTENCE)["input_ids"]
    assert full[-1] == tokenizer.eos_token_id and full[-1 - len(ids):-1] == ids
    assert ModelLanguages.for_tokenizer(tokenizer).family == family


# what the first source and target tokens must be for en->es, per family
EXPECTED = {
    "nllb": (["eng_Latn"], ["spa_Latn"]),
    "m2m100": (["__en__"], ["__es__"]),
    "mbart50": (["en_XX"], ["es_XX"]),
    "marian": ([">>spa<<"], []),
    "t5": (["▁translate", "▁English", "▁to", "▁Spanish", ":"], []),
}


def _tokens(tokenizer, ids):
    return tokenizer.convert_ids_to_tokens([int(i) for i in ids if int(i) >= 0])


@pytest.mark.parametrize("family", FAMILIES)
def test_finetune_each_family(family, family_model_dirs, finetune_data_dir, tmp_path):
    """A few steps of full fine-tuning: language codes in the batches, a model that loads and decodes everywhere."""
    config = load_training_config(**finetune_config(finetune_data_dir, family_model_dirs[family], tmp_path / "run"))
    trainer, _, _ = prepare_trainer(config)
    tokenizer = trainer.processing_class
    source_prefix, target_prefix = EXPECTED[family]
    batch = next(iter(trainer.train_dataset))
    for row in range(len(batch["input_ids"])):
        source = _tokens(tokenizer, batch["input_ids"][row])
        target = _tokens(tokenizer, batch["labels"][row])
        if family == "t5":
            assert tokenizer.decode(batch["input_ids"][row], skip_special_tokens=True).startswith(
                "translate English to Spanish: ")
        else:
            assert source[:len(source_prefix)] == source_prefix
        assert target[:len(target_prefix)] == target_prefix
        assert target[-1] == tokenizer.eos_token
    start = trainer.model.config.decoder_start_token_id
    assert int(batch["decoder_input_ids"][0, 0]) == start
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    trainer.save_final_checkpoint()
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "no weight changed"

    model_last = tmp_path / "run" / "model_last"
    inference = yaml.safe_load((model_last / "inference.yaml").read_text())
    assert inference["arch"] == trainer.model.config.model_type
    assert inference["source_langs"] == ["en"] and inference["target_langs"] == ["es"]
    model = AutoModelForSeq2SeqLM.from_pretrained(model_last)
    assert type(model) is type(trainer.model)
    assert type(AutoTokenizer.from_pretrained(model_last)) is type(tokenizer)
    generator = TextGenerator.from_pretrained(model_last, beam_size=1, max_output_len=5)
    hypothesis = generator.decode(SENTENCE, source_lang="en", target_lang="es", return_scores=True)[0][0]
    src_tokens = list(hypothesis["src_tokens"])
    if family == "t5":
        assert generator.tokenizer.convert_tokens_to_string(src_tokens).startswith("translate English to Spanish: ")
    else:
        assert src_tokens[:len(source_prefix)] == source_prefix
    assert list(hypothesis["prompt_tokens"])[1:] == target_prefix
    assert isinstance(hypothesis["detok"], str)
    # pasero-decode with the data's short codes, reference scored
    from pasero_hf.cli.decode import main as decode_main

    (tmp_path / "test.en").write_text(SENTENCE + "\n" + SENTENCE.upper() + "\n")
    (tmp_path / "test.es").write_text("Y dijo Dios: Sea la luz: y fué la luz.\nY DIJO DIOS\n")
    code = decode_main([str(model_last), "-i", str(tmp_path / "test.en"), "-r", str(tmp_path / "test.es"), "-s", "en",
                        "-t", "es", "-o", str(tmp_path / "out.es"), "--max-output-len", "5", "--beam-size", "2"])
    assert code == 0 and len((tmp_path / "out.es").read_text().splitlines()) == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_each_family(family, family_model_dirs, finetune_data_dir, tmp_path):
    """LoRA on the architecture's own projections (T5: q/k/v/o/wi/wo): only LoRA weights move, adapters load."""
    from safetensors.torch import load_file

    config = load_training_config(**finetune_config(finetune_data_dir, family_model_dirs[family], tmp_path / "run",
                                                    lora_rank=4, max_steps=2))
    result = train(config)
    assert result.global_step == 2
    saved = load_file(str(result.last_dir / "adapter_model.safetensors"))
    assert saved and all("lora_" in key for key in saved)
    expected = {"t5": {"q", "k", "v", "o", "wi", "wo"}}.get(family, {"q_proj", "k_proj", "v_proj", "out_proj",
                                                                       "fc1", "fc2"})
    assert {key.split(".lora_")[0].rsplit(".", 1)[-1] for key in saved} == expected
    lora_b = [value for key, value in saved.items() if "lora_B" in key]
    assert any(bool(value.abs().sum() > 0) for value in lora_b)  # LoRA B starts at zero: training moved it
    model = AutoModelForSeq2SeqLM.from_pretrained(result.last_dir)  # base model + adapter (PEFT integration)
    base = AutoModelForSeq2SeqLM.from_pretrained(family_model_dirs[family])
    batch = AutoTokenizer.from_pretrained(result.last_dir)([SENTENCE], return_tensors="pt")
    with torch.no_grad():
        args = dict(**batch, decoder_input_ids=torch.tensor([[base.config.decoder_start_token_id]]))
        assert not torch.allclose(model(**args).logits, base(**args).logits)


def test_lora_with_checkpoint_activations_trains_every_layer(family_model_dirs, finetune_data_dir, tmp_path):
    from safetensors.torch import load_file

    config = load_training_config(**finetune_config(finetune_data_dir, family_model_dirs["t5"], tmp_path / "run",
                                                    lora_rank=4, max_steps=2, checkpoint_activations=True))
    result = train(config)
    saved = load_file(str(result.last_dir / "adapter_model.safetensors"))
    lora_b = {key: value for key, value in saved.items() if "lora_B" in key}
    assert lora_b and all(bool(value.abs().sum() > 0) for value in lora_b.values()), \
        [key for key, value in lora_b.items() if not value.abs().sum() > 0]
