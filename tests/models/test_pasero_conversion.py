"""Conversion of original Pasero checkpoints (`pasero-convert`), checked against the original's own outputs."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from pasero_hf.cli.convert import main as convert_main
from pasero_hf.models.pasero import PaseroForConditionalGeneration
from pasero_hf.models.pasero.convert_pasero_checkpoint import ConversionError, load_pasero_model

MAX_OUTPUT_LEN = 100


@pytest.fixture(scope="module")
def tiny_fixture(fixtures_dir: Path) -> Path:
    return fixtures_dir / "pasero-tiny-en-es"


@pytest.fixture(scope="module")
def converted_dir(converted_tiny_dir) -> Path:
    return converted_tiny_dir


def _copy_fixture(tiny_fixture: Path, destination: Path, edit_checkpoint=None, edit_training=None) -> Path:
    """A copy of the tiny fixture with its checkpoint and/or training.yaml edited."""
    shutil.copytree(tiny_fixture, destination)
    if edit_checkpoint is not None:
        checkpoint = torch.load(destination / "model_best.bin", map_location="cpu", weights_only=True)
        edit_checkpoint(checkpoint)
        torch.save(checkpoint, destination / "model_best.bin")
    if edit_training is not None:
        training = yaml.safe_load((destination / "training.yaml").read_text())
        edit_training(training)
        (destination / "training.yaml").write_text(yaml.safe_dump(training))
    return destination


def test_converted_directory_contents(converted_dir):
    names = {path.name for path in converted_dir.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json"} <= names
    assert not any(name.endswith(".bin") for name in names)
    config = json.loads((converted_dir / "config.json").read_text())
    assert config["model_type"] == "pasero"
    assert (config["embed_dim"], config["encoder_layers"], config["decoder_layers"]) == (64, 2, 2)
    assert (config["encoder_ffn_dim"], config["vocab_size"], config["encoder_prenorm"]) == (256, 7328, False)
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_pasero.PaseroForConditionalGeneration"
    generation = json.loads((converted_dir / "generation_config.json").read_text())
    assert (generation["num_beams"], generation["max_new_tokens"], generation["length_penalty"]) == (5, 100, 1.0)
    assert generation["decoder_start_token_id"] == 2 and generation["eos_token_id"] == 2


def test_converted_weights_equal_the_checkpoint(converted_dir, tiny_fixture):
    original = torch.load(tiny_fixture / "model_best.bin", map_location="cpu", weights_only=True)["model"]
    model = AutoModelForSeq2SeqLM.from_pretrained(converted_dir)
    assert isinstance(model, PaseroForConditionalGeneration)
    ours = model.state_dict()
    for key, value in original.items():
        if key.endswith("._float_tensor"):
            continue
        assert torch.equal(ours[f"model.{key}"], value), key
    assert torch.equal(ours["lm_head.weight"], original["decoder.embed_tokens.weight"])


def test_greedy_outputs_equal_the_original_on_bible_test(converted_dir, tiny_fixture, bible_dir):
    """Bar: identical greedy outputs to the original `pasero-decode` on all 344 lines (max_output_len 100)."""
    torch.set_num_threads(1)
    model = AutoModelForSeq2SeqLM.from_pretrained(converted_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(converted_dir)
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()
    references = (tiny_fixture / "test.greedy.es").read_text(encoding="utf-8").splitlines()
    assert len(sources) == len(references) == 344
    outputs, capped = [], 0
    for start in range(0, len(sources), 64):
        batch = tokenizer(sources[start : start + 64], padding=True, return_tensors="pt")
        with torch.no_grad():
            generated = model.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=MAX_OUTPUT_LEN)
        capped += int(((generated[:, -1] != tokenizer.pad_token_id) & (generated[:, -1] != 2)).sum())
        outputs += tokenizer.batch_decode(generated, skip_special_tokens=True)
    mismatches = [i for i, (ours, theirs) in enumerate(zip(outputs, references)) if ours != theirs]
    assert not mismatches, f"{len(mismatches)} lines differ, first {mismatches[0] + 1}: {outputs[mismatches[0]]!r}"
    assert capped > 0  # some outputs hit the 100-token cap, so the cap is part of what matched


def test_unexpected_and_missing_keys_are_listed(tiny_fixture, tmp_path):
    def edit(checkpoint):
        checkpoint["model"]["encoder.layers.0.self_attn.extra_proj.weight"] = torch.zeros(2)
        del checkpoint["model"]["decoder.layers.1.fc2.bias"]

    model_dir = _copy_fixture(tiny_fixture, tmp_path / "model", edit_checkpoint=edit)
    with pytest.raises(ConversionError) as error:
        load_pasero_model(model_dir)
    message = str(error.value)
    assert str(model_dir / "model_best.bin") in message
    assert "unexpected keys" in message and "model.encoder.layers.0.self_attn.extra_proj.weight" in message
    assert "missing keys" in message and "model.decoder.layers.1.fc2.bias" in message


def test_config_contradicting_the_checkpoint_lists_shapes(tiny_fixture, tmp_path):
    model_dir = _copy_fixture(
        tiny_fixture, tmp_path / "model", edit_training=lambda training: training.update(encoder_ffn_dim=128)
    )
    with pytest.raises(ConversionError, match=r"(?s)shape mismatches.*encoder.layers.0.fc1.weight: checkpoint \(256, 64\) "
                                              r"vs model \(128, 64\)"):
        load_pasero_model(model_dir)


@pytest.mark.parametrize(
    "options, listed",
    [
        (dict(rms_norm=True), "rms_norm=True"),
        (dict(arch="moe_transformer"), "arch='moe_transformer'"),
        (dict(encoder_positional_encoding="rotary", sliding_window=8), "encoder_positional_encoding='rotary'"),
    ],
)
def test_unsupported_options_are_refused(tiny_fixture, tmp_path, options, listed):
    model_dir = _copy_fixture(tiny_fixture, tmp_path / "model", edit_training=lambda training: training.update(options))
    with pytest.raises(ConversionError, match="unsupported Pasero options") as error:
        load_pasero_model(model_dir)
    assert listed in str(error.value)


def test_cli_reports_errors_and_writes_nothing(tiny_fixture, tmp_path):
    model_dir = _copy_fixture(tiny_fixture, tmp_path / "model", edit_training=lambda training: training.update(rms_norm=True))
    output = tmp_path / "out"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "pasero-convert"), str(model_dir), str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert "pasero-convert: error:" in result.stderr and "rms_norm=True" in result.stderr
    assert not output.exists() and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_cli_missing_checkpoint_and_existing_output(converted_dir, tiny_fixture, tmp_path, capsys):
    assert convert_main([str(tiny_fixture), str(tmp_path / "out"), "--checkpoint", "nope.bin"]) == 1
    error = capsys.readouterr().err
    assert "checkpoint not found" in error and str(tiny_fixture / "nope.bin") in error
    assert not (tmp_path / "out").exists()
    before = sorted(path.name for path in converted_dir.iterdir())
    assert convert_main([str(tiny_fixture), str(converted_dir)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert sorted(path.name for path in converted_dir.iterdir()) == before


def test_adapter_checkpoint_converts_with_its_adapters(tiny_fixture, tmp_path):
    """An `adapter_transformer` checkpoint (Pasero's parameter names) keeps its language adapters and uses them."""
    generator = torch.Generator().manual_seed(0)

    def add_adapters(checkpoint):
        for side, langs in (("encoder", ("de", "en")), ("decoder", ("es",))):
            for layer in range(2):
                for lang in langs:
                    prefix = f"{side}.layers.{layer}.adapters.lang:{lang}."
                    checkpoint["model"][prefix + "down.weight"] = torch.randn(16, 64, generator=generator) * 0.1
                    checkpoint["model"][prefix + "down.bias"] = torch.zeros(16)
                    checkpoint["model"][prefix + "up.weight"] = torch.randn(64, 16, generator=generator) * 0.1
                    checkpoint["model"][prefix + "up.bias"] = torch.zeros(64)
                    checkpoint["model"][prefix + "layer_norm.weight"] = torch.ones(64)
                    checkpoint["model"][prefix + "layer_norm.bias"] = torch.zeros(64)

    def adapter_options(training):
        training.update(arch="adapter_transformer", encoder_adapters_by=["source_lang"],
                        decoder_adapters_by=["target_lang"], encoder_adapter_dim=64, decoder_adapter_dim=64)

    model_dir = _copy_fixture(tiny_fixture, tmp_path / "model", edit_checkpoint=add_adapters,
                              edit_training=adapter_options)
    model, _, _ = load_pasero_model(model_dir)
    assert model.adapter_names() == {"encoder": ["lang:de", "lang:en"], "decoder": ["lang:es"]}
    assert model.config.encoder_adapter_dim == 16  # the bottleneck size comes from the checkpoint, as in Pasero
    checkpoint = torch.load(model_dir / "model_best.bin", map_location="cpu", weights_only=True)["model"]
    key = "encoder.layers.1.adapters.lang:en.up.weight"
    assert torch.equal(model.state_dict()[f"model.{key}"], checkpoint[key])
    source, prompt = torch.tensor([[100, 200, 300, 2]]), torch.tensor([[2, 50]])
    with torch.no_grad():
        english = model(input_ids=source, decoder_input_ids=prompt, source_lang="en", target_lang="es").logits
        german = model(input_ids=source, decoder_input_ids=prompt, source_lang="de", target_lang="es").logits
    assert not torch.allclose(english, german, atol=1e-4)


def test_lora_weights_are_merged_and_untied_projection_kept(tiny_fixture, tmp_path):
    generator = torch.Generator().manual_seed(0)
    down, up = torch.randn(4, 64, generator=generator), torch.randn(64, 4, generator=generator)
    projection = torch.randn(7328, 64, generator=generator)

    def edit(checkpoint):
        checkpoint["model"]["decoder.layers.0.fc1.lora.down.weight"] = down
        checkpoint["model"]["decoder.layers.0.fc1.lora.up.weight"] = torch.randn(256, 4, generator=generator)
        checkpoint["model"]["encoder.layers.1.self_attn.q_proj.lora.down.weight"] = down
        checkpoint["model"]["encoder.layers.1.self_attn.q_proj.lora.up.weight"] = up
        checkpoint["model"]["decoder.output_projection.weight"] = projection

    model_dir = _copy_fixture(tiny_fixture, tmp_path / "model", edit_checkpoint=edit,
                              edit_training=lambda t: t.update(lora_rank=4, lora_alpha=8, tied_output_projection=False))
    model, _, _ = load_pasero_model(model_dir)
    original = torch.load(tiny_fixture / "model_best.bin", map_location="cpu", weights_only=True)["model"]
    merged = model.state_dict()["model.encoder.layers.1.self_attn.q_proj.weight"]
    expected = original["encoder.layers.1.self_attn.q_proj.weight"] + up @ down * (8 / 4)
    assert torch.allclose(merged, expected, atol=1e-5)
    assert torch.equal(model.lm_head.weight, projection)
    assert model.lm_head.weight is not model.model.decoder.embed_tokens.weight
