"""The steps every training task shares (MT in `run`, causal LMs in `lm`, speech in `speech`): training arguments,
MODEL_DIR, logging, the checkpoint to resume from, the trainer's common options and callbacks, the final save.

The task modules import from here; nothing here knows about a task.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.metrics import LOWER_IS_BETTER
from pasero_hf.tokenization.file_utils import recover_directory
from pasero_hf.training import checkpoints
from pasero_hf.training.callbacks import LogLinesCallback, StopCallback, TrainingCurveCallback
from pasero_hf.training.config import TrainingConfig

logger = logging.getLogger("pasero_hf.training")

CURVE_FILE = "training_curve.png"


@dataclass
class TrainingResult:
    """Where the outcome of a run is."""

    model_dir: Path
    best_dir: Path | None
    last_dir: Path
    global_step: int
    best_metric: float | None
    stop_reason: str | None
    is_main_process: bool = True


@dataclass
class RunSetup:
    """Where a run stands before training: its arguments, world size and the checkpoint to resume from."""

    args: Any
    world_size: int
    resume: Path | None

    @property
    def is_main(self) -> bool:
        return self.args.process_index == 0

    @property
    def rank(self) -> int:
        return self.args.process_index

    @property
    def resume_path(self) -> str | None:
        return str(self.resume) if self.resume is not None else None


def world_size_from_env() -> int:
    """Number of processes started by `accelerate launch`/`torchrun` (1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank_from_env() -> int:
    """This process' rank under `accelerate launch`/`torchrun` (0 otherwise); `training_arguments` agrees."""
    return int(os.environ.get("RANK", "0"))


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


def resume_checkpoint(config: TrainingConfig, is_main: bool) -> Path | None:
    """The checkpoint to continue from: MODEL_DIR's latest unless --reset, else --ckpt with --continue."""
    model_dir = config.model_dir
    if is_main:
        for name in ("model_best", "model_last"):
            recover_directory(model_dir / name)
        checkpoints.remove_incomplete_checkpoints(model_dir)
    if not config.run.reset:
        latest = checkpoints.latest_checkpoint(model_dir)
        if latest is not None:
            return latest
    if config.run.ckpt and config.run.continue_:
        ckpt = Path(config.run.ckpt)  # a checkpoint-N directory, or a run's directory: its latest checkpoint
        return checkpoints.latest_checkpoint(ckpt) or ckpt
    return None


def start_run(config: TrainingConfig) -> RunSetup:
    """Training arguments (this sets up torch.distributed), a writable MODEL_DIR (checked on every rank: a rank
    waiting for a failed one would hang), logging to MODEL_DIR/train.log, and the checkpoint to resume from."""
    world_size = world_size_from_env()
    args = training_arguments(config, world_size)
    is_main = args.process_index == 0
    check_model_dir(config.model_dir)
    resume = resume_checkpoint(config, is_main)
    setup_logging(config.model_dir, is_main, append=resume is not None)
    logger.info("command: %s", " ".join(sys.argv))
    return RunSetup(args, world_size, resume)


def load_initial_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """Weights of checkpoint directory `ckpt` (weights only); only adapter weights may be missing from it."""
    state = checkpoints.read_weights(ckpt)
    if not state:
        raise ConfigError(f"ckpt: no .safetensors weights in {ckpt}")
    result = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    adapters = {key for key in result.missing_keys if "adapters" in key.split(".")}
    checkpoints.check_loaded(result, ckpt, "ckpt", adapters | tied)
    logger.info("initialized the weights from %s", ckpt)


def load_resume_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """Weights of resume checkpoint `ckpt` as the run saved them, without its optimizer, schedule or step
    (`--reset-optimizer`): the whole model, its trainable weights alone (adapters on a frozen base: the frozen
    weights come from --ckpt or the pretrained model, already loaded), or a LoRA run's PEFT adapter."""
    if hasattr(model, "peft_config"):
        state = checkpoints.read_weights(ckpt, "adapter_model.safetensors")
        if not state:
            raise ConfigError(f"--reset-optimizer: {ckpt} holds no adapter_model.safetensors for this LoRA run")
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, state)
    else:
        state = checkpoints.read_weights(ckpt, "model*.safetensors")
        if not state:
            raise ConfigError(f"--reset-optimizer: no model weights (model*.safetensors) in {ckpt}")
        result = model.load_state_dict(state, strict=False)
    # adapter and LoRA runs do not save the frozen weights (tied copies included); tied ones are saved once
    frozen = {key for key, param in model.named_parameters(remove_duplicate=False) if not param.requires_grad}
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    checkpoints.check_loaded(result, ckpt, "--reset-optimizer", frozen | tied)
    logger.info("loaded the weights of %s (new optimizer, schedule and step)", ckpt)


def reset_optimizer(config: TrainingConfig, model: torch.nn.Module, run: RunSetup) -> None:
    """`--reset-optimizer` (every task): the resume checkpoint's weights go into the built model and the run starts
    its step, optimizer, schedule and data over (`run.resume` becomes None)."""
    if run.resume is not None and config.run.reset_optimizer:
        load_resume_weights(model, run.resume)
        run.resume = None


def trainer_callbacks(config: TrainingConfig, metric: str | None = None) -> tuple[StopCallback, list]:
    """(the stop callback, every callback of a run): time budget and signals, log lines, the training curve of
    `metric` (default: early_stopping_metric), early stopping when `patience` is set."""
    stop = StopCallback(config.optimization.max_time)
    callbacks = [stop, LogLinesCallback(),
                 TrainingCurveCallback(config.model_dir / CURVE_FILE, metric or config.run.early_stopping_metric)]
    if config.run.patience is not None:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.run.patience))
    return stop, callbacks


def trainer_options(config: TrainingConfig) -> dict[str, Any]:
    """The `PaseroSeq2SeqTrainer` options every task takes from the configuration as they are."""
    opt, run = config.optimization, config.run
    return {
        "label_smoothing": opt.label_smoothing,
        "lr_schedule": {"warmup": opt.warmup, "init_lr": opt.init_lr, "min_lr": opt.min_lr}
        if opt.lr_scheduler == "inverse_sqrt" else None,
        "valid_beam_size": run.valid_beam_size,
        "max_output_len": run.max_output_len,
        "valid_max_lines": run.valid_max_lines,
        "keep_last": run.keep_last,
        "keep_interval": run.keep_interval,
        "onednn": run.onednn,
        "fast_dropout": run.fast_dropout,
        "eval_lc": run.eval_lc,
    }


def finish_training(config: TrainingConfig, trainer, stop: StopCallback | None,
                    resume: Path | str | None) -> TrainingResult:
    """Train from `resume` (or the start) to the end, save the final checkpoint (and model_average if asked); `stop`
    (`trainer.stop_callback`) tells why the run ended."""
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
                          trainer.state.global_step, trainer.state.best_metric, stop.stop_reason if stop else None,
                          trainer.is_world_process_zero())


def report_error(error: Exception) -> int:
    """A configuration or input problem, printed once (by rank 0) as `error: ...`; returns the exit status, 2."""
    if rank_from_env() == 0:
        print(f"error: {error}", file=sys.stderr)
    return 2


def report_result(result: TrainingResult) -> int:
    """Where the models are, printed by the main process; returns the exit status, 0."""
    if result.is_main_process:
        print(f"best model: {result.best_dir}\nlast model: {result.last_dir}\nsteps: {result.global_step}")
    return 0
