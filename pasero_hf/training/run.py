"""Training from a `TrainingConfig`: checks, tokenizer, model, data, trainer, resume, and the final save.

`train(config)` is what `recipes/train_mt.py` runs under `accelerate launch`. Every input problem (missing or
misaligned corpus, unknown language pair, unwritable model directory...) is reported before the first step.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
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
from pasero_hf.metrics import LOWER_IS_BETTER
from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration
from pasero_hf.models.pasero.configuration_pasero import adapter_name
from pasero_hf.training import checkpoints
from pasero_hf.training.artifacts import (
    configure_generation_defaults,
    configure_tokenizer_for_inference,
    tokenizer_inference_settings,
)
from pasero_hf.training.callbacks import LogLinesCallback, StopCallback, TrainingCurveCallback
from pasero_hf.training.config import TrainingConfig, write_yaml_atomically
from pasero_hf.training.preflight import check_inputs, initial_checkpoint
from pasero_hf.training.pretrained import (
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

CURVE_FILE = "training_curve.png"


@dataclass
class TrainingResult:
    """Where the outcome of `train` is."""

    model_dir: Path
    best_dir: Path | None
    last_dir: Path
    global_step: int
    best_metric: float | None
    stop_reason: str | None
    is_main_process: bool = True


def world_size_from_env() -> int:
    """Number of processes started by `accelerate launch`/`torchrun` (1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def gradient_accumulation_steps(virtual_dp_size: int, world_size: int) -> int:
    """Accumulation that makes one step see `virtual_dp_size` batches whatever the number of processes."""
    if virtual_dp_size <= world_size:
        return 1
    if virtual_dp_size % world_size:
        raise ConfigError(f"virtual_dp_size: {virtual_dp_size} is not a multiple of the world size ({world_size})")
    return virtual_dp_size // world_size


def training_arguments(config: TrainingConfig, world_size: int | None = None):
    """The `Seq2SeqTrainingArguments` for this configuration (creating them sets up torch.distributed)."""
    from transformers import Seq2SeqTrainingArguments

    world_size = world_size_from_env() if world_size is None else world_size
    opt, run = config.optimization, config.run
    scheduler = "constant" if opt.lr_scheduler == "inverse_sqrt" else opt.lr_scheduler
    metric = run.early_stopping_metric
    return Seq2SeqTrainingArguments(
        output_dir=str(config.model_dir),
        max_steps=opt.max_steps,
        learning_rate=opt.lr,
        lr_scheduler_type=scheduler,
        warmup_steps=opt.warmup if opt.lr_scheduler != "inverse_sqrt" else 0,
        adam_beta1=opt.adam_betas[0],
        adam_beta2=opt.adam_betas[1],
        weight_decay=opt.weight_decay,
        max_grad_norm=opt.clip_norm,
        gradient_accumulation_steps=gradient_accumulation_steps(opt.virtual_dp_size, world_size),
        per_device_train_batch_size=1,  # batches are token-based and built by the data stream
        bf16=config.model.dtype == "bfloat16",
        fp16=config.model.dtype == "float16",
        activation_checkpointing=config.model.checkpoint_activations,
        logging_steps=run.log_interval,
        eval_strategy="steps",
        eval_steps=run.valid_interval,
        eval_on_start=run.validate_at_start,
        save_strategy="steps",
        save_steps=run.save_interval,
        save_total_limit=None,  # rotation happens once a checkpoint is complete (PaseroSeq2SeqTrainer)
        metric_for_best_model=metric,
        greater_is_better=metric not in LOWER_IS_BETTER,
        seed=config.data.seed,
        ignore_data_skip=True,  # the stream restores its own position
        restore_callback_states_from_checkpoint=True,  # the patience counter continues after a resume
        remove_unused_columns=False,
        dataloader_num_workers=run.dataloader_workers,
        dataloader_pin_memory=run.dataloader_pin_memory,
        dataloader_prefetch_factor=run.dataloader_prefetch_factor if run.dataloader_workers else None,
        use_cpu=not torch.cuda.is_available(),
        ddp_find_unused_parameters=config.model.uses_adapters,
        report_to=["tensorboard"] if importlib.util.find_spec("tensorboard") else "none",
        disable_tqdm=False,
    )


def setup_logging(model_dir: Path, is_main: bool, append: bool) -> None:
    """`pasero_hf.training` messages to stderr and MODEL_DIR/train.log (main process only)."""
    root = logging.getLogger("pasero_hf")
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_pasero_training", False):
            root.removeHandler(handler)
            handler.close()
    if not is_main:  # other ranks: errors only (their warnings repeat rank 0's)
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.ERROR)
        handler._pasero_training = True
        root.addHandler(handler)
        return
    formatter = logging.Formatter("%(asctime)s | %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.FileHandler(model_dir / "train.log", mode="a" if append else "w", encoding="utf-8"),
                logging.StreamHandler(sys.stderr)]
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._pasero_training = True
        root.addHandler(handler)


def check_model_dir(model_dir: Path) -> None:
    """Create MODEL_DIR, or fail with a clear message when it cannot be written."""
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=model_dir, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ConfigError(f"model_dir: cannot write to {model_dir}: {error.strerror or error}") from error


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


def load_initial_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """Weights of checkpoint directory `ckpt` (weights only); only adapter weights may be missing from it."""
    from transformers.modeling_utils import load_state_dict

    files = sorted(ckpt.glob("*.safetensors")) if ckpt.is_dir() else [ckpt]
    if not files:
        raise ConfigError(f"ckpt: no .safetensors weights in {ckpt}")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(load_state_dict(str(path)))
    result = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    missing = [k for k in result.missing_keys if "adapters" not in k.split(".") and k not in tied]
    if missing or result.unexpected_keys:
        raise ConfigError(f"ckpt: {ckpt} does not match the model: missing {missing[:5]}, unexpected "
                          f"{result.unexpected_keys[:5]}")
    logger.info("initialized the weights from %s", ckpt)


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


def _base_model(model: torch.nn.Module) -> torch.nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


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


def resume_checkpoint(config: TrainingConfig, is_main: bool) -> Path | None:
    """The checkpoint to continue from: MODEL_DIR's latest unless --reset, else --ckpt with --continue."""
    model_dir = config.model_dir
    if is_main:
        for name in ("model_best", "model_last"):
            checkpoints.recover_directory(model_dir / name)
        checkpoints.remove_incomplete_checkpoints(model_dir)
    if not config.run.reset:
        latest = checkpoints.latest_checkpoint(model_dir)
        if latest is not None:
            return latest
    if config.run.ckpt and config.run.continue_:
        ckpt = Path(config.run.ckpt)  # a checkpoint-N directory, or a run's directory: its latest checkpoint
        return checkpoints.latest_checkpoint(ckpt) or ckpt
    return None


class SetupError(ConfigError):
    """An input problem found before training starts (missing, misaligned or empty corpus, unknown pair...)."""


def train(config: TrainingConfig) -> TrainingResult:
    """Train as configured; returns where the best and last models are.

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


def finish_training(config: TrainingConfig, trainer: PaseroSeq2SeqTrainer, stop: StopCallback,
                    resume: Path | None) -> TrainingResult:
    """Train from `resume` (or the start) to the end, save the final checkpoint (and model_average if asked)."""
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    trainer.save_final_checkpoint()
    model_dir = config.model_dir
    if config.run.average_checkpoints and trainer.is_world_process_zero():
        from pasero_hf.training.averaging import average_checkpoints

        count = min(config.run.keep_last, len(checkpoints.complete_checkpoints(model_dir)))
        average_checkpoints(model_dir, count, model_dir / "model_average")
        logger.info("model_average: mean of the last %d checkpoints", count)
    best = model_dir / "model_best"
    return TrainingResult(model_dir, best if best.is_dir() else None, model_dir / "model_last",
                          trainer.state.global_step, trainer.state.best_metric, stop.stop_reason,
                          trainer.is_world_process_zero())


def prepare_trainer(config: TrainingConfig) -> tuple[PaseroSeq2SeqTrainer, StopCallback, Path | None]:
    """Everything before the first step: (trainer, its stop callback, checkpoint to resume from)."""
    if config.run.task == "st":  # speech: Whisper on audio manifests, the same trainer, resume and validation
        from pasero_hf.training.speech import prepare_speech_trainer

        return prepare_speech_trainer(config)
    if config.run.task in ("lm", "dialogue"):  # causal LMs: their own data and model steps (pasero_hf.training.lm)
        from pasero_hf.training.lm import prepare_lm_trainer

        return prepare_lm_trainer(config)
    check_inputs(config)  # configuration and data problems stop the run before anything is written
    world_size = world_size_from_env()
    pretrained_name = pretrained_model_name(config)
    pretrained = load_pretrained(config, pretrained_name, world_size) if pretrained_name else None
    if pretrained is None:
        tokenizer = load_tokenizer(config)
        model_cfg = model_config(config, tokenizer)
        start_id = model_cfg.decoder_start_token_id
    else:
        tokenizer, start_id = pretrained.tokenizer, pretrained.model.config.decoder_start_token_id
    languages = pretrained.languages if pretrained is not None else None
    model_dir = config.model_dir
    args = training_arguments(config, world_size)
    is_main = args.process_index == 0
    check_model_dir(model_dir)  # on every rank: a rank waiting for a failed one would hang
    resume = resume_checkpoint(config, is_main)
    setup_logging(model_dir, is_main, append=resume is not None)
    logger.info("command: %s", " ".join(sys.argv))
    require_homogeneous_batches(config)
    with datasets_bars_disabled():
        train_stream = build_train_dataset(config.data, tokenizer, start_id, rank=args.process_index,
                                           world_size=world_size, languages=languages)
        if pretrained is not None and config.pretrained.trim_vocab:
            trim_pretrained_vocabulary(pretrained, train_stream.datasets)
            tokenizer, start_id = pretrained.tokenizer, pretrained.model.config.decoder_start_token_id
            train_stream = build_train_dataset(config.data, tokenizer, start_id, rank=args.process_index,
                                               world_size=world_size, languages=languages)
        valid_sets = build_valid_datasets(config.data, tokenizer, start_id, languages=languages)
    if not valid_sets:
        raise ConfigError("valid_corpora: at least one validation corpus is needed (validation drives model_best)")
    set_seed(config.data.seed)  # the same seed gives the same initial weights (and a rerun the same model)
    if pretrained is None:
        model = build_model(config, model_cfg, train_stream.corpora)
    else:
        if config.pretrained.model and config.run.ckpt and not config.run.continue_:
            load_initial_weights(pretrained.model, initial_checkpoint(config.run.ckpt))
        data_adapters = {side: adapter_names_for_data(getattr(config.model, f"{side}_adapters_by") or [],
                                                      train_stream.corpora) for side in ("encoder", "decoder")}
        model = finetuning_model(config, pretrained, data_adapters)
    if resume is not None and config.run.reset_optimizer:
        # Pasero's --reset-optimizer: the checkpoint's weights only; step, optimizer, schedule and data start over
        load_initial_weights(_base_model(model), resume)
        resume = None
    # the corpora are tokenized: from here on the tokenizer and model are set up as they will be saved
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
    inference = inference_config(config, tokenizer, domains=[corpus.domain for corpus in train_stream.corpora])
    if pretrained is not None:
        inference.update(pretrained_inference_config(pretrained))
    logger.info("model: %s, %s parameters (%s trainable)", inference["arch"], f"{total:,}", f"{trainable:,}")

    if is_main:
        config.write_training_yaml(model_dir / "training.yaml")
        write_yaml_atomically(model_dir / "inference.yaml", inference)

    if resume is not None:
        checkpoints.restore_data_position(train_stream, resume)

    stop = StopCallback(config.optimization.max_time)
    opt = config.optimization
    trainer = PaseroSeq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=train_stream,
        eval_dataset=valid_sets,
        processing_class=tokenizer,
        callbacks=[stop, LogLinesCallback(), TrainingCurveCallback(model_dir / CURVE_FILE, config.run.early_stopping_metric)]
        + _early_stopping(config),
        label_smoothing=opt.label_smoothing,
        lr_schedule={"warmup": opt.warmup, "init_lr": opt.init_lr, "min_lr": opt.min_lr}
        if opt.lr_scheduler == "inverse_sqrt" else None,
        bleu_tok=config.run.bleu_tok,
        valid_beam_size=config.run.valid_beam_size,
        max_output_len=config.run.max_output_len,
        valid_max_lines=config.run.valid_max_lines,
        keep_last=config.run.keep_last,
        inference_config=inference,
        save_trainable_only=config.model.uses_adapters and not config.model.lora_rank,
        onednn=config.run.onednn,
        keep_interval=config.run.keep_interval,
        metrics=config.run.metrics,
        eval_lc=config.run.eval_lc,
        spbleu_model=config.run.spbleu_model,
        languages=languages,
    )
    return trainer, stop, resume


def _early_stopping(config: TrainingConfig) -> list:
    if config.run.patience is None:
        return []
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(early_stopping_patience=config.run.patience)]
