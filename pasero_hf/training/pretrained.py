"""Fine-tuning a pretrained Hugging Face seq2seq model (`--model PATH_OR_NAME`, or `--ckpt` on such a directory).

The model comes with its own tokenizer and its own way of marking languages (`pasero_hf.tokenization.model_languages`);
everything else (corpora, sampling, token batches, validation, resume, LoRA...) is the same recipe as for Pasero
models. Every problem with the model is found here, before training: no such model, not an encoder-decoder, a
tokenizer larger than the model's vocabulary, languages the model does not know, LoRA targets that match nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.models.locate import looks_like_repo_id, resolve_model_dir
from pasero_hf.models.pretrained_adapters import AdapterOptions, add_pretrained_adapters
from pasero_hf.models.vocab_trimming import tokenizer_id_bound
from pasero_hf.tokenization.model_languages import ModelLanguages
from pasero_hf.training.config import TrainingConfig

logger = logging.getLogger("pasero_hf.training")

# LoRA targets by model type: the attention and feed-forward projections (names of nn.Linear leaves).
_BART_LIKE = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
_T5_LIKE = ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"]
_LLAMA_LIKE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_TARGETS = {"t5": _T5_LIKE, "mt5": _T5_LIKE, "umt5": _T5_LIKE, "longt5": _T5_LIKE,
                **{name: _LLAMA_LIKE for name in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2",
                                                  "gemma3_text", "olmo2", "phi3")}}
DEFAULT_LORA_TARGETS = _BART_LIKE  # Pasero, M2M100/NLLB, NLLB-MoE, Marian, mBART, BART, Pegasus...


@dataclass
class PretrainedModel:
    """A loaded pretrained model with what training needs to know about it."""

    name: str
    directory: Path
    model: torch.nn.Module
    tokenizer: Any
    languages: ModelLanguages

    @property
    def model_type(self) -> str:
        return self.model.config.model_type


def pretrained_model_name(config: TrainingConfig) -> str | None:
    """`--model`, or `--ckpt` when it names a Hugging Face model (directory or Hub repo id) that is not a Pasero model."""
    if config.pretrained.model:
        return config.pretrained.model
    ckpt = config.run.ckpt
    if not ckpt:
        return None
    try:
        directory = Path(ckpt) if Path(ckpt).exists() else resolve_model_dir(ckpt)
        model_type = json.loads((directory / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None  # not a model directory: --ckpt keeps its Pasero meaning (and its own errors)
    return str(directory) if model_type != "pasero" else None


def _option_name(config: TrainingConfig) -> str:
    return "model" if config.pretrained.model else "ckpt"


def load_pretrained(config: TrainingConfig, name: str, world_size: int = 1) -> PretrainedModel:
    """The model and tokenizer named `name`, checked for fine-tuning.

    Raises:
        ConfigError: no such model, not an encoder-decoder, tokenizer/model vocabulary mismatch, unknown
            `model_args`, unknown languages (listing the model's codes).
    """
    from transformers import AutoConfig, AutoModelForSeq2SeqLM
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING,
        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING,
    )

    from pasero_hf.registration import register_all

    register_all()  # Pasero and NLLB-MoE models in the Auto classes

    option = _option_name(config)
    try:
        directory = resolve_model_dir(name)
    except FileNotFoundError as error:
        raise ConfigError(f"{option}: {error}") from error
    try:
        model_config = AutoConfig.from_pretrained(directory)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"{option}: cannot read the configuration of {directory}: {error}") from error
    model_type = model_config.model_type
    if type(model_config) not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING:
        if type(model_config) in MODEL_FOR_CAUSAL_LM_MAPPING:
            raise ConfigError(
                f"{option}: {name} is a causal language model ({model_type}): recipes/train_mt.py fine-tunes "
                "encoder-decoder models (AutoModelForSeq2SeqLM); fine-tune it with --task lm (translation prompts) "
                "or --task dialogue (recipes/train_lm.py)")
        raise ConfigError(f"{option}: {name} ({model_type}) is not a sequence-to-sequence model that "
                          "AutoModelForSeq2SeqLM loads; give an encoder-decoder model (NLLB, M2M100, Marian, mBART, T5...)")
    adapter_keys = AdapterOptions.field_names()  # adapter options go to the adapters, not to the model's config
    apply_model_args(model_config, {k: v for k, v in config.model.model_args.items() if k not in adapter_keys}, name)
    if world_size > 1:
        # LayerDrop skips different layers per rank: DDP then waits for gradients that never come
        for key in ("encoder_layerdrop", "decoder_layerdrop"):
            if getattr(model_config, key, 0):
                logger.info("%s: 0 instead of %s (data-parallel training)", key, getattr(model_config, key))
                setattr(model_config, key, 0.0)

    tokenizer, tokenizer_dir = load_model_tokenizer(config, directory, option)
    rows = getattr(model_config.get_text_config(), "vocab_size", None)
    if rows is not None and tokenizer_id_bound(tokenizer) > rows:
        raise ConfigError(
            f"{option}: the tokenizer of {tokenizer_dir} has ids up to {tokenizer_id_bound(tokenizer) - 1} but {name} "
            f"has only {rows} embeddings: use the model's own tokenizer (or resize the model's embeddings before "
            "fine-tuning)")
    model = AutoModelForSeq2SeqLM.from_pretrained(directory, config=model_config, dtype=torch.float32)
    try:
        languages = ModelLanguages.for_tokenizer(tokenizer, model_type, mapping=config.pretrained.lang_mapping,
                                                 source_prefix=config.pretrained.source_prefix)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    check_languages(config, languages, name)
    logger.info("fine-tuning %s (%s, %s languages)", name, model_type, languages.family)
    return PretrainedModel(name, directory, model, tokenizer, languages)


def apply_model_args(model_config, model_args: dict, name: str) -> None:
    """`model_args` override fields of a pretrained model's configuration (ConfigError for a field it lacks)."""
    for key, value in model_args.items():
        if not hasattr(model_config, key):
            raise ConfigError(f"model_args: {key!r} is not a field of {name}'s configuration ({type(model_config).__name__})")
        setattr(model_config, key, value)


def load_model_tokenizer(config: TrainingConfig, directory: Path, option: str):
    """(tokenizer, its directory): the model's own, or `--tokenizer hf --tokenizer-path DIR`."""
    from transformers import AutoTokenizer

    tokenizer_dir = directory
    if config.tokenization.tokenizer == "hf" and config.tokenization.tokenizer_path:
        tokenizer_dir = config.resolve_data_path(config.tokenization.tokenizer_path, "tokenizer_path")
    try:
        return AutoTokenizer.from_pretrained(tokenizer_dir), tokenizer_dir
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(f"{option}: cannot load the tokenizer of {tokenizer_dir}: {error}") from error


def check_languages(config: TrainingConfig, languages: ModelLanguages, name: str) -> None:
    """Every training and validation language maps to a code of the model (ConfigError naming the model if not)."""
    d = config.data
    sources = set(d.source_langs or []) | set(d.valid_source_langs or [])
    targets = set(d.target_langs or []) | set(d.valid_target_langs or [])
    for pair in list(d.lang_pairs or []) + list(d.valid_lang_pairs or []):
        src, tgt = pair.split("-")
        sources.add(src)
        targets.add(tgt)
    for corpus in list(d.train_corpora) + list(d.valid_corpora):
        sources |= set(corpus.source_langs or [])
        targets |= set(corpus.target_langs or [])
        for pair in corpus.lang_pairs or []:
            src, tgt = pair.split("-")
            sources.add(src)
            targets.add(tgt)
    try:
        languages.check(sorted(sources), "source")
        languages.check(sorted(targets), "target")
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from error


def lora_target_modules(model: torch.nn.Module, requested: list[str] | None) -> list[str]:
    """The LoRA targets: `requested`, or the architecture's defaults that exist; ConfigError when one matches nothing."""
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if isinstance(module, torch.nn.Linear)})
    model_type = getattr(model.config, "model_type", "")
    if requested is None:
        defaults = LORA_TARGETS.get(model_type, DEFAULT_LORA_TARGETS)
        targets = [name for name in defaults if name in linear]
        if not targets:
            raise ConfigError(f"lora_target_modules: none of the default targets {defaults} is a linear layer of "
                              f"this {model_type} model: choose among {linear}")
        return targets
    missing = [name for name in requested if name not in linear]
    if missing:
        raise ConfigError(f"lora_target_modules: {missing} match no linear layer of this {model_type} model "
                          f"({type(model).__name__}): choose among {linear}")
    return list(requested)


def apply_lora(model: torch.nn.Module, config: TrainingConfig) -> torch.nn.Module:
    """`model` wrapped by PEFT with LoRA adapters of rank `lora_rank` (the rest frozen)."""
    from peft import LoraConfig, get_peft_model

    opts = config.model
    targets = lora_target_modules(model, opts.lora_target_modules)
    if opts.checkpoint_activations and hasattr(model, "enable_input_require_grads"):
        # recomputed blocks only pass gradients on when their input requires them, and the embeddings are frozen
        model.enable_input_require_grads()
    return get_peft_model(model, LoraConfig(r=opts.lora_rank, lora_alpha=opts.lora_alpha, target_modules=targets))


def finetuning_model(config: TrainingConfig, pretrained: PretrainedModel,
                     data_adapters: dict[str, list[str]] | None = None) -> torch.nn.Module:
    """The pretrained model ready to train: LoRA-wrapped, or with Pasero bottleneck adapters on the frozen base (the
    adapters named in the options, plus `data_adapters` {side: names} that `*_adapters_by` picks for the data)."""
    if config.model.uses_adapters:
        add_bottleneck_adapters(config, pretrained, data_adapters or {})
        return pretrained.model
    return apply_lora(pretrained.model, config) if config.model.lora_rank else pretrained.model


def adapter_options(config: TrainingConfig) -> AdapterOptions:
    """The bottleneck adapter options of a fine-tuning run (names, `*_adapters_by`, dimensions...)."""
    opts = config.model
    values = {key: value for key, value in opts.hyperparameters.items() if key in AdapterOptions.field_names()}
    for key in ("encoder_adapters_by", "decoder_adapters_by", "encoder_adapters", "decoder_adapters"):
        if getattr(opts, key):
            values[key] = getattr(opts, key)
    try:
        return AdapterOptions(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"adapters: {error}") from error


def add_bottleneck_adapters(config: TrainingConfig, pretrained: PretrainedModel,
                            data_adapters: dict[str, list[str]]) -> None:
    """Pasero's bottleneck adapters on the frozen pretrained model; model directories then hold the adapters alone."""
    if config.model.lora_rank:
        raise ConfigError(f"{pretrained.name}: Pasero bottleneck adapters and LoRA (lora_rank) together: choose one")
    if config.pretrained.trim_vocab:
        raise ConfigError(f"{pretrained.name}: trim_vocab with bottleneck adapters: the adapters are saved alone and "
                          "load onto the untrimmed base model; drop --trim-vocab (the base is frozen anyway)")
    # what the saved adapters name as their base: a Hub repo id as given, else the absolute directory
    local = Path(pretrained.name).exists() or not looks_like_repo_id(pretrained.name)
    base = str(pretrained.directory.resolve()) if local else pretrained.name
    try:
        adapters = add_pretrained_adapters(pretrained.model, adapter_options(config), base)
        for side, names in data_adapters.items():
            if names and getattr(adapters.options, f"{side}_adapter_dim"):
                adapters.add_adapters(names, encoder=side == "encoder", decoder=side == "decoder")
        trainable = adapters.freeze_all_but_adapters()
    except ValueError as error:
        raise ConfigError(f"{pretrained.name}: {error}") from error
    if config.model.checkpoint_activations and hasattr(pretrained.model, "enable_input_require_grads"):
        pretrained.model.enable_input_require_grads()  # recomputed blocks pass gradients on only if inputs need them
    logger.info("bottleneck adapters: encoder %s, decoder %s (%s parameters)", adapters.adapter_names()["encoder"],
                adapters.adapter_names()["decoder"], f"{trainable:,}")


def pretrained_inference_config(pretrained: PretrainedModel) -> dict[str, Any]:
    """The inference.yaml entries of a fine-tuned pretrained model: its type and how it maps languages."""
    return {"arch": pretrained.model_type, "pretrained_model": pretrained.name, **pretrained.languages.to_dict()}


def trim_pretrained_vocabulary(pretrained: PretrainedModel, datasets: list) -> None:
    """`--trim-vocab`: keep the tokens of the tokenized training corpora (plus special and language tokens)."""
    import numpy as np

    from pasero_hf.models.vocab_trimming import trim_vocabulary

    seen: set[int] = set()
    for dataset in datasets:
        for column in ("input_ids", "labels"):
            for chunk in dataset.with_format("arrow").iter(batch_size=10000):
                seen.update(np.unique(chunk[column].combine_chunks().flatten().to_numpy()).tolist())
    before = len(pretrained.tokenizer)
    try:
        pretrained.model, pretrained.tokenizer = trim_vocabulary(pretrained.model, pretrained.tokenizer, seen)
    except ValueError as error:
        raise ConfigError(f"trim_vocab: {pretrained.name}: {error}") from error
    logger.info("trim_vocab: %d of %d tokens kept (%d seen in the training data)", len(pretrained.tokenizer), before,
                len(seen))
