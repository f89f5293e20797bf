"""Pretrained models under the same Accelerate configs and precisions as ours: 2-process DDP matches one process
with the same effective batch (`virtual_dp_size`), and bf16 mixed precision trains and decodes."""

import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from pasero_hf.generation.text_generator import TextGenerator
from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import train
from tests.training.test_distributed import REPO, check_fsdp_step, check_tensor_parallel, launch, run_parallel_workers

from .conftest import finetune_config


def _losses(model_dir):
    return [float(line.split(" | loss ")[1].split(" ")[0])
            for line in (model_dir / "train.log").read_text(encoding="utf-8").splitlines() if " | loss " in line]


@pytest.mark.distributed
def test_ddp_matches_one_process_with_the_same_effective_batch(family_model_dirs, finetune_data_dir, tmp_path):
    runs = {}
    for name, accelerate_config in (("one", "cpu.yaml"), ("two", "cpu_ddp.yaml")):
        model_dir = tmp_path / name
        options = finetune_config(finetune_data_dir, family_model_dirs["m2m100"], model_dir, virtual_dp_size=2,
                                  max_steps=2, valid_interval=2, log_interval=1, batch_size=300)
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump(options), encoding="utf-8")
        launch([sys.executable, "-m", "pasero_hf.cli.train", "--accelerate-config",
                str(REPO / "accelerate_configs" / accelerate_config), "--main-process-port", "0", "-c", str(config)])
        runs[name] = model_dir
    assert _losses(runs["two"]) == pytest.approx(_losses(runs["one"]), rel=1e-4) and len(_losses(runs["one"])) == 2
    one = load_file(str(runs["one"] / "model_last" / "model.safetensors"))
    two = load_file(str(runs["two"] / "model_last" / "model.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5), key


def m2m100_batch(model_dir, data_dir, path) -> dict:
    """4 en->es pairs of the validation set, tokenized by the model's tokenizer (saved to `path` for workers)."""
    from transformers import AutoTokenizer

    from pasero_hf.models.pasero.modeling_pasero import shift_tokens_right

    tokenizer = AutoTokenizer.from_pretrained(model_dir, src_lang="en", tgt_lang="es")
    lines = {lang: (data_dir / f"valid.{lang}").read_text(encoding="utf-8").splitlines()[:4] for lang in ("en", "es")}
    batch = tokenizer(lines["en"], text_target=lines["es"], padding=True, truncation=True, max_length=24,
                      return_tensors="pt")
    labels = batch["labels"].masked_fill(batch["labels"] == tokenizer.pad_token_id, -100)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels,
              "decoder_input_ids": shift_tokens_right(labels, tokenizer.pad_token_id, tokenizer.eos_token_id)}
    torch.save(inputs, path)
    return inputs


@pytest.fixture(scope="module")
def m2m100_parallel(family_model_dirs, finetune_data_dir, tmp_path_factory) -> tuple[Path, dict, Path]:
    """The tiny M2M100, a batch of its tokenizer and the directory of the FSDP and TP workers' results on them (one
    torchrun launch). transformers gives M2M100 no tp_plan ("auto" is refused): the workers get Pasero's Megatron
    plan, which fits its layers as they are (same module names)."""
    from pasero_hf.models.pasero import PaseroConfig

    model_dir = family_model_dirs["m2m100"]
    out_dir = tmp_path_factory.mktemp("m2m100-parallel")
    inputs = m2m100_batch(model_dir, finetune_data_dir, out_dir / "inputs.pt")
    plan = {f"model.{key}": value for key, value in PaseroConfig.base_model_tp_plan.items()}
    return model_dir, inputs, run_parallel_workers(model_dir, inputs, out_dir, plan=plan)


@pytest.mark.distributed
@pytest.mark.slow
def test_fsdp2_cpu_emulation_of_a_pretrained_model(m2m100_parallel):
    """The FSDP2 check of Pasero models (tests/training/fsdp_worker.py) on a tiny pretrained M2M100 loaded as
    `--model` loads it, with a batch of its own tokenizer: sharded step = unsharded step, exact sharded reload."""
    check_fsdp_step(*m2m100_parallel)


@pytest.mark.distributed
@pytest.mark.slow
def test_tensor_parallel_cpu_emulation_of_a_pretrained_model(m2m100_parallel):
    """Pasero's Megatron plan on M2M100's layers: logits, gradients and generate() under 2-way TP = one process."""
    check_tensor_parallel(*m2m100_parallel)


def test_bf16_lora_fine_tune_trains_and_decodes(family_model_dirs, finetune_data_dir, tmp_path):
    result = train(load_training_config(**finetune_config(
        finetune_data_dir, family_model_dirs["nllb"], tmp_path / "run", dtype="bfloat16", lora_rank=4,
        max_steps=2, valid_interval=2)))
    losses = _losses(tmp_path / "run")
    assert result.global_step == 2 and all(0 < loss < 20 for loss in losses)
    [[hypothesis]] = TextGenerator.from_pretrained(result.last_dir, max_output_len=5).decode(
        "In the beginning", source_lang="en", target_lang="es")
    assert hypothesis["tokens"]


@pytest.mark.parametrize("config_file", ["fsdp.yaml", "tp.yaml"])
def test_fsdp_configs_shard_the_layers_of_pasero_and_pretrained_models(config_file, family_model_dirs):
    """accelerate's FSDP2 wrap policy from the config's fsdp_config finds the layers of a Pasero model, of a
    pretrained M2M100 and of a causal LM (a config naming Pasero's layer classes stops a `--model` run: "Could not find the transformer
    layer class")."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from transformers import AutoModelForSeq2SeqLM, LlamaConfig, LlamaForCausalLM

    from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration

    fsdp = yaml.safe_load((REPO / "accelerate_configs" / config_file).read_text(encoding="utf-8"))["fsdp_config"]
    pasero = PaseroForConditionalGeneration(PaseroConfig(vocab_size=48, embed_dim=16, encoder_layers=2,
                                                         decoder_layers=1, encoder_ffn_dim=32, decoder_ffn_dim=32))
    pretrained = AutoModelForSeq2SeqLM.from_pretrained(family_model_dirs["m2m100"])
    causal_lm = LlamaForCausalLM(LlamaConfig(vocab_size=48, hidden_size=16, intermediate_size=32,
                                             num_hidden_layers=2, num_attention_heads=2))  # task lm/dialogue
    for model, layers in ((pasero, ["PaseroEncoderLayer"] * 2 + ["PaseroDecoderLayer"]),
                          (pretrained, ["M2M100EncoderLayer", "M2M100DecoderLayer"]),
                          (causal_lm, ["LlamaDecoderLayer"] * 2)):
        plugin = FullyShardedDataParallelPlugin(
            fsdp_version=fsdp["fsdp_version"], auto_wrap_policy=fsdp["fsdp_auto_wrap_policy"].lower(),
            transformer_cls_names_to_wrap=fsdp.get("fsdp_transformer_layer_cls_to_wrap"))
        policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
        assert [type(module).__name__ for module in model.modules() if policy(module)] == layers
