"""Machine-translation training (`task: mt`, the default): the steps of `recipes/train_mt.py`, each one call::

    config = load_training_config(argv)              # YAML files + flags, every option checked
    check_inputs(config)                              # corpora, languages, files: problems stop the run here
    base = load_base(config)                          # tokenizer + new model config, or a pretrained model
    run = start_run(config)                           # training arguments, MODEL_DIR, logging, resume point
    data = build_mt_data(config, base, run)           # this rank's training stream, validation sets
    model = build_mt_model(config, base, data, run)   # new (seeded) or pretrained; adapters, LoRA, frozen weights
    trainer = build_mt_trainer(config, base, model, data, run)  # tokenizer/model set up as saved, YAML files
    result = finish_training(config, trainer, trainer.stop_callback, run.resume)  # train, save, model_average

`train(config)` runs them all (what `pasero-train` runs); `prepare_trainer(config)` everything before the first
step, for every task (`lm`/`dialogue`: `pasero_hf.training.lm`, `st`: `pasero_hf.training.speech`). Every input
problem (missing or misaligned corpus, unknown language pair, unwritable model directory...) is reported before
the first step. The steps every task shares are in `pasero_hf.training.lifecycle`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import set_seed

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.data.train_stream import build_train_dataset
from pasero_hf.data.valid import build_valid_datasets
from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration
from pasero_hf.models.pasero.configuration_pasero import adapter_name
from pasero_hf.training import checkpoints
from pasero_hf.training.artifacts import (
    configure_generation_defaults,
    configure_tokenizer_for_inference,
    tokenizer_inference_settings,
)
from pasero_hf.training.callbacks import StopCallback
from pasero_hf.training.config import TrainingConfig, write_yaml_atomically
from pasero_hf.training.lifecycle import (
    RunSetup,
    TrainingResult,
    finish_training,
    load_initial_weights,
    reset_optimizer,
    start_run,
    trainer_callbacks,
    trainer_options,
    world_size_from_env,
)
from pasero_hf.training.preflight import check_inputs, initial_checkpoint
from pasero_hf.training.pretrained import (
    PretrainedModel,
    apply_lora,
    finetuning_model,
    load_pretrained,
    pretrained_inference_config,
    pretrained_model_name,
    trim_pretrained_vocabulary,
)
from pasero_hf.training.quiet import datasets_bars_disabled
from pasero_hf.training.target_vocab import target_tokenizer_files, vocabulary_sizes
from pasero_hf.training.trainer import PaseroSeq2SeqTrainer, trainable_parameter_count

logger = logging.getLogger("pasero_hf.training")


@dataclass
class MTBase:
    """What an MT run starts from: its tokenizer and either a new model's config or a pretrained model."""

    tokenizer: Any
    model_config: PaseroConfig | None = None
    pretrained: PretrainedModel | None = None

    @property
    def start_id(self) -> int:
        config = self.model_config if self.pretrained is None else self.pretrained.model.config
        return config.decoder_start_token_id

    @property
    def languages(self):
        """How a pretrained model family marks languages (None for a new Pasero model)."""
        return self.pretrained.languages if self.pretrained is not None else None


@dataclass
class MTData:
    """This rank's training stream and the validation sets by name."""

    train: Any
    valid: dict[str, Any]


def load_base(config: TrainingConfig) -> MTBase:
    """The tokenizer and a new `PaseroConfig`, or the pretrained model (`--model`, or `--ckpt` of another kind)
    with its tokenizer, checked for fine-tuning."""
    pretrained_name = pretrained_model_name(config)
    if pretrained_name:
        pretrained = load_pretrained(config, pretrained_name, world_size_from_env())
        return MTBase(pretrained.tokenizer, pretrained=pretrained)
    tokenizer = load_tokenizer(config)
    return MTBase(tokenizer, model_config=model_config(config, tokenizer))


def build_mt_data(config: TrainingConfig, base: MTBase, run: RunSetup) -> MTData:
    """This rank's training stream (temperature sampling, token batches) and the validation sets, tokenized and
    cached; with `--trim-vocab` the pretrained vocabulary is trimmed to the corpora (`base` changes with it)."""
    require_homogeneous_batches(config)

    def train_stream():
        return build_train_dataset(config.data, base.tokenizer, base.start_id, rank=run.rank,
                                   world_size=run.world_size, languages=base.languages)

    with datasets_bars_disabled():
        stream = train_stream()
        if base.pretrained is not None and config.pretrained.trim_vocab:
            trim_pretrained_vocabulary(base.pretrained, stream.datasets)
            base.tokenizer = base.pretrained.tokenizer
            stream = train_stream()
        valid_sets = build_valid_datasets(config.data, base.tokenizer, base.start_id, languages=base.languages)
    if not valid_sets:
        raise ConfigError("valid_corpora: at least one validation corpus is needed (validation drives model_best)")
    return MTData(stream, valid_sets)


def build_mt_model(config: TrainingConfig, base: MTBase, data: MTData, run: RunSetup) -> torch.nn.Module:
    """The model to train: new (random with the run's seed, or `--ckpt` weights) with the adapters the data needs,
    or the pretrained one; frozen around adapters or wrapped with LoRA. `--reset-optimizer` loads the resume
    checkpoint's weights here and starts the step, optimizer, schedule and data over (`run.resume` becomes None)."""
    set_seed(config.data.seed)  # the same seed gives the same initial weights (and a rerun the same model)
    if base.pretrained is None:
        model = build_model(config, base.model_config, data.train.corpora)
    else:
        if config.pretrained.model and config.run.ckpt and not config.run.continue_:
            load_initial_weights(base.pretrained.model, initial_checkpoint(config.run.ckpt))
        data_adapters = {side: adapter_names_for_data(getattr(config.model, f"{side}_adapters_by") or [],
                                                      data.train.corpora) for side in ("encoder", "decoder")}
        model = finetuning_model(config, base.pretrained, data_adapters)
    reset_optimizer(config, model, run)
    return model


def build_mt_trainer(config: TrainingConfig, base: MTBase, model: torch.nn.Module, data: MTData,
                     run: RunSetup) -> PaseroSeq2SeqTrainer:
    """The trainer, with the tokenizer and model set up as they will be saved (default languages, decoding
    defaults), MODEL_DIR's training.yaml and inference.yaml written, and the data position of the resume point."""
    tokenizer, languages = base.tokenizer, base.languages
    settings = tokenizer_inference_settings(config, config.lang_pairs)
    if languages is not None:  # a pretrained model's tokenizer names its default languages with the model's codes
        for key, side in (("src_lang", "source"), ("tgt_lang", "target")):
            if settings.get(key) is not None:
                try:
                    settings[key] = languages.model_code(settings[key], side) if languages.codes else None
                except ValueError:  # a side the family does not mark (Marian sources): no default to save
                    settings[key] = None
            if settings.get(key) is None:  # several languages: M2M100/NLLB tokenizers refuse None, keep their own
                settings.pop(key, None)
    configure_tokenizer_for_inference(tokenizer, settings)
    configure_generation_defaults(model, config.run.beam_size, config.run.max_output_len)
    trainable, total = trainable_parameter_count(model)
    inference = inference_config(config, tokenizer, domains=[corpus.domain for corpus in data.train.corpora])
    if base.pretrained is not None:
        inference.update(pretrained_inference_config(base.pretrained))
    logger.info("model: %s, %s parameters (%s trainable)", inference["arch"], f"{total:,}", f"{trainable:,}")
    if run.is_main:
        config.write_training_yaml(config.model_dir / "training.yaml")
        write_yaml_atomically(config.model_dir / "inference.yaml", inference)
    if run.resume is not None:
        checkpoints.restore_data_position(data.train, run.resume)
    _, callbacks = trainer_callbacks(config)
    return PaseroSeq2SeqTrainer(
        model=model, args=run.args, train_dataset=data.train, eval_dataset=data.valid, processing_class=tokenizer,
        callbacks=callbacks, **trainer_options(config), bleu_tok=config.run.bleu_tok, inference_config=inference,
        save_trainable_only=config.model.uses_adapters and not config.model.lora_rank,
        metrics=config.run.metrics, spbleu_model=config.run.spbleu_model, languages=languages,
    )


def load_tokenizer(config: TrainingConfig):
    """The tokenizer named by `tokenizer`/`tokenizer_path`/`dict` (paths relative to data_dir), set to add the
    language codes the data options ask for (`source_lang_code`, `target_lang_code`: a Pasero tokenizer's own
    flags, so that training data and every entry point put them in the same places)."""
    tokenizer = _named_tokenizer(config)
    for key in ("source_lang_code", "target_lang_code"):
        if getattr(config.data, key):
            if not hasattr(tokenizer, key):
                raise ConfigError(f"{key}: needs a Pasero tokenizer (tokenizer: pasero or sentencepiece); "
                                  f"{type(tokenizer).__name__} places its model's own language codes")
            setattr(tokenizer, key, True)
            tokenizer.init_kwargs[key] = True
    return tokenizer


def _named_tokenizer(config: TrainingConfig):
    opts = config.tokenization
    if opts.tokenizer == "hf":
        from transformers import AutoTokenizer

        if not opts.tokenizer_path:
            raise ConfigError("tokenizer_path: required with tokenizer 'hf' (a tokenizer directory)")
        return AutoTokenizer.from_pretrained(str(config.resolve_data_path(opts.tokenizer_path, "tokenizer_path")))
    from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer

    if opts.tokenizer == "sentencepiece":  # Pasero's spm option: the model's own vocabulary unless a dict is given
        if not opts.tokenizer_path:
            raise ConfigError("tokenizer_path: required with tokenizer 'sentencepiece' (a SentencePiece .model file)")
        return PaseroTokenizer(
            tokenizer_type="sentencepiece",
            spm_file=str(config.resolve_data_path(opts.tokenizer_path, "tokenizer_path")),
            dict_file=str(config.resolve_data_path(opts.dict, "dict")) if opts.dict else None,
            **target_tokenizer_files(config),
        )
    if not opts.tokenizer_path or not opts.dict:
        raise ConfigError("tokenizer_path and dict: both required with tokenizer 'pasero' (BPE codes and dict.txt)")
    return PaseroTokenizer(
        bpe_file=str(config.resolve_data_path(opts.tokenizer_path, "tokenizer_path")),
        dict_file=str(config.resolve_data_path(opts.dict, "dict")),
        **target_tokenizer_files(config),
    )


def model_config(config: TrainingConfig, tokenizer) -> PaseroConfig:
    """The PaseroConfig of `arch` with `model_args`, the tokenizer's special ids and the adapter options."""
    opts = config.model
    adapters = {key: getattr(opts, key) for key in (
        "encoder_adapters_by", "decoder_adapters_by", "encoder_adapters", "decoder_adapters") if getattr(opts, key)}
    try:
        PaseroConfig.check_option_names(opts.model_args)
    except ValueError as error:
        raise ConfigError(f"model_args: {error}") from error
    try:
        return PaseroConfig.from_arch(
            opts.arch,
            **vocabulary_sizes(config, tokenizer),  # with target_dict: the target's, and encoder_vocab_size
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.bos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id,
            **{**adapters, **opts.hyperparameters},
        )
    except (TypeError, ValueError, StrictDataclassError) as error:  # the last: PaseroConfig's own validation
        raise ConfigError(f"arch/model_args: {getattr(error, '__cause__', None) or error}") from error


def adapter_names_for_data(keys: list[str], corpora) -> list[str]:
    """Adapters that `*_adapters_by` = `keys` selects for the training corpora (one per language, pair or domain)."""
    names: dict[str, None] = {}
    for corpus in corpora:
        values = {"source_lang": [corpus.source_lang], "target_lang": [corpus.target_lang],
                  "lang_pair": [corpus.source_lang, corpus.target_lang], "domain": [corpus.domain]}
        for key in keys:
            if key in values:
                names[adapter_name(key, *values[key])] = None
    return list(names)


def build_model(config: TrainingConfig, model_cfg: PaseroConfig, corpora) -> torch.nn.Module:
    """A new model (random or `--ckpt` weights) with the adapters the data needs, frozen around adapters or LoRA."""
    model = PaseroForConditionalGeneration(model_cfg)
    for side in ("encoder", "decoder"):
        keys = getattr(config.model, f"{side}_adapters_by") or []
        if keys:
            model.add_adapters(adapter_names_for_data(keys, corpora), encoder=side == "encoder",
                               decoder=side == "decoder")
    if config.run.ckpt and not config.run.continue_:
        load_initial_weights(model, initial_checkpoint(config.run.ckpt))
    if config.model.lora_rank:
        model = apply_lora(model, config)
    elif config.model.uses_adapters:
        model.freeze_all_but_adapters()
    return model


def require_homogeneous_batches(config: TrainingConfig) -> None:
    """Adapters chosen per batch need batches of one language/domain: add the `*_adapters_by` keys to batch_by."""
    keys = list(config.model.encoder_adapters_by or []) + list(config.model.decoder_adapters_by or [])
    needed = {"lang_pair": ["source_lang", "target_lang"]}
    batch_by = list(config.data.batch_by or [])
    for key in keys:
        for required in needed.get(key, [key]):
            if required not in batch_by:
                batch_by.append(required)
    if batch_by != list(config.data.batch_by or []):
        logger.info("batch_by: %s (adapters are selected per batch)", batch_by)
        config.data.batch_by = batch_by


def inference_config(config: TrainingConfig, tokenizer, domains: Sequence[str] = ()) -> dict[str, Any]:
    """inference.yaml: what decoding needs besides the weights and tokenizer files (Pasero names)."""
    pairs = config.lang_pairs
    content = {
        "arch": config.model.arch,
        "source_langs": sorted({src for src, _ in pairs}),
        "target_langs": sorted({tgt for _, tgt in pairs}),
        "lang_pairs": [f"{src}-{tgt}" for src, tgt in pairs],
        "beam_size": config.run.beam_size,
        "max_output_len": config.run.max_output_len,
        "max_source_len": config.data.source_len_limit,
    }
    for key in ("lang_code", "source_lang_code", "target_lang_code", "domain_tag"):
        if getattr(config.data, key):
            content[key] = True
    if config.data.domain_tag:
        content["domains"] = sorted(set(domains))
    return content


class SetupError(ConfigError):
    """An input problem found before training starts (missing, misaligned or empty corpus, unknown pair...)."""


def train(config: TrainingConfig) -> TrainingResult:
    """Train as configured (any task); returns where the best and last models are.

    Raises:
        ConfigError (SetupError for data problems): before the first step, on any input problem.
    """
    try:
        trainer, stop, resume = prepare_trainer(config)
    except (FileNotFoundError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise SetupError(str(error)) from error
    return finish_training(config, trainer, stop, resume)


def prepare_trainer(config: TrainingConfig) -> tuple[PaseroSeq2SeqTrainer, StopCallback, Path | None]:
    """Everything before the first step: (trainer, its stop callback, checkpoint to resume from)."""
    if config.run.task == "st":  # speech: Whisper on audio manifests, the same trainer, resume and validation
        from pasero_hf.training.speech import prepare_speech_trainer

        return prepare_speech_trainer(config)
    if config.run.task in ("lm", "dialogue"):  # causal LMs: their own data and model steps (pasero_hf.training.lm)
        from pasero_hf.training.lm import prepare_lm_trainer

        return prepare_lm_trainer(config)
    check_inputs(config)  # configuration and data problems stop the run before anything is written
    base = load_base(config)
    run = start_run(config)
    data = build_mt_data(config, base, run)
    model = build_mt_model(config, base, data, run)
    trainer = build_mt_trainer(config, base, model, data, run)
    return trainer, trainer.stop_callback, run.resume
