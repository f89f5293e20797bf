"""Pasero's bottleneck adapters on pretrained models (`--model` with `*_adapters_by`): only the adapters train, the
base stays bitwise the same, model directories hold the adapters alone and reload onto the base with the same logits,
and decoding (TextGenerator, pasero-decode, a Hub repo) picks each sentence's adapters from its languages."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.generation.text_generator import TextGenerator
from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import finish_training, prepare_trainer

from .conftest import finetune_config

PAIRS = [("en", "es"), ("es", "en")]
ADAPTERS = {"encoder_adapters_by": ["source_lang"], "decoder_adapters_by": ["lang_pair"],
            "encoder_adapter_dim": 8, "decoder_adapter_dim": 8}
IDS = torch.tensor([[40, 51, 62, 73, 2]])
DECODER_IDS = torch.tensor([[2, 90, 91]])


def adapter_options(data_dir, model, run_dir, **overrides) -> dict:
    """en-es and es-en in one run: one encoder adapter per source language, one decoder adapter per pair."""
    options = finetune_config(data_dir, model, run_dir, **{**ADAPTERS, **overrides})
    del options["source_lang"], options["target_lang"]
    options["lang_pairs"] = ["en-es", "es-en"]
    return options


def logits(model, source_lang=None, target_lang=None) -> torch.Tensor:
    languages = {"source_lang": source_lang, "target_lang": target_lang} if source_lang else {}
    with torch.no_grad():
        return model.eval()(input_ids=IDS, decoder_input_ids=DECODER_IDS, **languages).logits


@pytest.fixture(scope="module")
def adapter_run(family_model_dirs, finetune_data_dir, tmp_path_factory):
    """A tiny M2M100 fine-tuned with language adapters: (trained model, initial state, training result)."""
    config = load_training_config(**adapter_options(finetune_data_dir, family_model_dirs["m2m100"],
                                                    tmp_path_factory.mktemp("adapters") / "run", max_steps=8,
                                                    valid_interval=4))
    trainer, stop, resume = prepare_trainer(config)
    initial = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    result = finish_training(config, trainer, stop, resume)
    return trainer.model, initial, result


def test_only_adapters_train_and_the_base_stays_bitwise_the_same(adapter_run, family_model_dirs):
    model, initial, result = adapter_run
    assert result.global_step == 8
    assert model.pasero_adapters.adapter_names() == {"encoder": ["lang:en", "lang:es"],
                                                     "decoder": ["lang:en->es", "lang:es->en"]}
    trainable = [name for name, param in model.named_parameters() if param.requires_grad]
    assert trainable and all("adapters" in name.split(".") for name in trainable)
    base = AutoModelForSeq2SeqLM.from_pretrained(family_model_dirs["m2m100"]).state_dict()
    trained = model.state_dict()
    assert set(trained) - set(base) == {key for key in trained if "adapters" in key.split(".")}
    for key, value in base.items():
        assert torch.equal(trained[key], value), key
    changed = {key.split(".adapters.")[1].split(".")[0] for key in trained
               if "adapters" in key.split(".") and not torch.equal(trained[key], initial[key])}
    assert changed == {"lang:en", "lang:es", "lang:en->es", "lang:es->en"}  # each trained on its own batches


def test_saved_adapters_are_small_and_reload_onto_the_base_with_the_same_logits(adapter_run, family_model_dirs):
    model, _, result = adapter_run
    for directory in (result.last_dir, result.best_dir):
        names = {path.name for path in directory.iterdir()}
        assert {"adapters.safetensors", "pasero_adapters.json", "inference.yaml", "tokenizer_config.json"} <= names
        assert not names & {"config.json", "model.safetensors"}
    saved = load_file(str(result.last_dir / "adapters.safetensors"))
    trained = model.state_dict()
    assert set(saved) == {key for key in trained if "adapters" in key.split(".")}
    base_size = (family_model_dirs["m2m100"] / "model.safetensors").stat().st_size
    assert (result.last_dir / "adapters.safetensors").stat().st_size * 5 < base_size

    generator = TextGenerator.from_pretrained(result.last_dir)  # finds its base in pasero_adapters.json
    base = AutoModelForSeq2SeqLM.from_pretrained(family_model_dirs["m2m100"])
    by_pair = {}
    for source_lang, target_lang in PAIRS:
        by_pair[source_lang] = logits(model, source_lang, target_lang)
        assert torch.equal(logits(generator.model, source_lang, target_lang), by_pair[source_lang])
    assert not torch.allclose(by_pair["en"], by_pair["es"], atol=1e-4)  # each pair has its own adapters
    assert not torch.allclose(by_pair["en"], logits(base), atol=1e-4)
    with pytest.raises(ValueError, match="pass `source_lang=...`"):
        logits(generator.model)  # adapters chosen by language need the languages


def test_decoding_picks_the_adapters_of_each_language_pair(adapter_run, finetune_data_dir, tmp_path):
    _, _, result = adapter_run
    generator = TextGenerator.from_pretrained(result.last_dir)
    adapters = generator.model.pasero_adapters
    source = "In the beginning God created the heaven and the earth."
    [[auto]] = generator.decode(source, source_lang="en", target_lang="es", return_scores=True)
    adapters.set_active_adapters(encoder=["lang:en"], decoder=["lang:en->es"])
    [[same]] = generator.decode(source, source_lang="en", target_lang="es", return_scores=True)
    adapters.set_active_adapters(encoder=["lang:es"], decoder=["lang:es->en"])
    [[other]] = generator.decode(source, source_lang="en", target_lang="es", return_scores=True)
    adapters.set_active_adapters(encoder=None, decoder=None)
    assert same["tokens"] == auto["tokens"] and same["pos_scores"] == auto["pos_scores"]
    assert other["pos_scores"] != auto["pos_scores"]

    # pasero-decode on the adapter directory: the same translations, the adapters chosen by -s/-t
    (tmp_path / "in.en").write_text(source + "\n", encoding="utf-8")
    command = [str(Path(sys.executable).parent / "pasero-decode"), str(result.last_dir), "-s", "en", "-t", "es",
               "-i", str(tmp_path / "in.en"), "-o", str(tmp_path / "out.es")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert (tmp_path / "out.es").read_text(encoding="utf-8") == auto["detok"] + "\n"


def test_nllb_default_adapters_reload_through_the_hub_loader(family_model_dirs, finetune_data_dir, tmp_path):
    """No `*_adapters_by`: one 'default' adapter per side (Pasero's adapter_transformer); NLLB's codes unchanged."""
    from pasero_hf.hub import load_adapter_model

    config = load_training_config(**finetune_config(finetune_data_dir, family_model_dirs["nllb"], tmp_path / "run",
                                                    encoder_adapters=["default"], decoder_adapters=["default"],
                                                    encoder_adapter_dim=8, decoder_adapter_dim=8, max_steps=2))
    trainer, stop, resume = prepare_trainer(config)
    result = finish_training(config, trainer, stop, resume)
    assert trainer.model.pasero_adapters.adapter_names() == {"encoder": ["default"], "decoder": ["default"]}
    loaded = load_adapter_model(result.last_dir)
    assert torch.equal(logits(loaded), logits(trainer.model))
    [[hypothesis]] = TextGenerator.from_pretrained(result.last_dir).decode(
        "In the beginning", source_lang="en", target_lang="es")
    assert hypothesis["prompt_tokens"][-1] == "spa_Latn"


@pytest.mark.parametrize("case", ["lora", "trim_vocab", "t5"])
def test_adapter_conflicts_fail_before_training(case, family_model_dirs, finetune_data_dir, tmp_path):
    family, overrides, expected = {
        "lora": ("m2m100", {"lora_rank": 4}, "bottleneck adapters and LoRA .*choose one"),
        "trim_vocab": ("m2m100", {"trim_vocab": True}, "trim_vocab with bottleneck adapters"),
        "t5": ("t5", {}, r"T5ForConditionalGeneration \(t5\) has none; use LoRA"),
    }[case]
    options = adapter_options(finetune_data_dir, family_model_dirs[family], tmp_path / "run", **overrides)
    with pytest.raises(ConfigError, match=expected):
        prepare_trainer(load_training_config(**options))
    assert not (tmp_path / "run" / "checkpoint-1").exists()


@pytest.mark.slow
def test_adapters_pushed_alone_decode_on_their_base_by_repo_id(adapter_run, family_model_dirs, tmp_path):
    """`pasero-push --adapters-only` of the run's adapters, then a fresh process decodes the repo id: the base comes
    from the Hub as pasero_adapters.json names it, the adapters from their own small repo."""
    import json
    import os

    from huggingface_hub import HfApi

    from pasero_hf.hub import push_to_hub
    from tests.hub.conftest import TOKEN
    from tests.hub_server import HubServer

    model, _, result = adapter_run
    source = "In the beginning God created the heaven and the earth."
    [[expected]] = TextGenerator.from_pretrained(result.last_dir).decode(source, source_lang="es", target_lang="en")
    with HubServer(tmp_path / "hub") as hub:
        push_to_hub(family_model_dirs["m2m100"], "pasero/tiny-m2m100", endpoint=hub.url, token=TOKEN,
                    lang_pairs=["en-es", "es-en"])
        push_to_hub(result.last_dir, "pasero/tiny-m2m100-adapters", adapters_only=True, base_model="pasero/tiny-m2m100",
                    endpoint=hub.url, token=TOKEN)
        files = set(HfApi(endpoint=hub.url, token=TOKEN).list_repo_files("pasero/tiny-m2m100-adapters"))
        assert {"adapters.safetensors", "pasero_adapters.json", "tokenizer_config.json", "README.md"} <= files
        assert not files & {"config.json", "model.safetensors"}
        code = f"""
import json, torch
from pasero_hf.generation.text_generator import TextGenerator
from pasero_hf.hub import load_adapter_model
generator = TextGenerator.from_pretrained("pasero/tiny-m2m100-adapters")
[[hypothesis]] = generator.decode({source!r}, source_lang="es", target_lang="en")
model = load_adapter_model("pasero/tiny-m2m100-adapters")
with torch.no_grad():
    logits = model(input_ids=torch.tensor({IDS.tolist()}), decoder_input_ids=torch.tensor({DECODER_IDS.tolist()}),
                   source_lang="en", target_lang="es").logits
print(json.dumps({{"detok": hypothesis["detok"], "logits": logits[0, -1].tolist()}}))
"""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf-home"), OMP_NUM_THREADS="1",
                   HF_HUB_DISABLE_PROGRESS_BARS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        completed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stderr[-3000:]
    pulled = json.loads(completed.stdout.strip().splitlines()[-1])
    assert pulled["detok"] == expected["detok"]
    assert torch.equal(torch.tensor(pulled["logits"]), logits(model, "en", "es")[0, -1])


def test_adapter_run_resumes_exactly(family_model_dirs, finetune_data_dir, tmp_path):
    """Checkpoints hold the adapters alone: 2 steps, then the same command to 4 = 4 uninterrupted steps."""
    def options(run):
        return finetune_config(finetune_data_dir, family_model_dirs["m2m100"], tmp_path / run,
                               encoder_adapters_by=["source_lang"], decoder_adapters_by=["target_lang"],
                               encoder_adapter_dim=8, decoder_adapter_dim=8)

    def run(**overrides):
        config = load_training_config(**{**options(overrides.pop("run")), **overrides})
        return finish_training(config, *prepare_trainer(config))

    straight = run(run="straight")
    assert run(run="resumed", max_steps=2).global_step == 2
    checkpoint = load_file(str(tmp_path / "resumed" / "checkpoint-2" / "model.safetensors"))
    assert checkpoint and all("adapters" in key.split(".") for key in checkpoint)
    # --reset-optimizer: the checkpoint's adapters onto the pretrained base, with a new optimizer, step and data
    trainer, _, resume = prepare_trainer(load_training_config(**options("resumed"), reset_optimizer=True))
    assert resume is None and trainer.train_dataset.steps == 0
    state = trainer.model.state_dict()
    for key, value in checkpoint.items():
        assert torch.equal(state[key], value), key
    resumed = run(run="resumed")
    assert resumed.global_step == 4 and "resuming from" in (tmp_path / "resumed" / "train.log").read_text()
    a = load_file(str(straight.last_dir / "adapters.safetensors"))
    b = load_file(str(resumed.last_dir / "adapters.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key
