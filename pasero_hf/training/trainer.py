"""`PaseroSeq2SeqTrainer`: the Hugging Face `Seq2SeqTrainer` with Pasero's training behaviour.

What it changes:
- the loss is label-smoothed cross-entropy summed over target tokens and divided by the number of target tokens of
  the whole optimizer step (all micro-batches of all ranks), times the world size to undo DDP's gradient averaging:
  1 or N processes and any accumulation give the same loss and gradients for the same data;
- batches come ready from a token-based stream (`pasero_hf.data.TrainStream`), already split by rank: they are not
  re-sharded by Accelerate, and the stream position is saved in each checkpoint;
- validation translates each validation set and reports loss, BLEU and chrF (our `evaluate` modules);
- checkpoints are marked complete only once fully written; `model_best` and `model_last` are plain
  `save_pretrained` directories (with the tokenizer and `inference.yaml`) replaced atomically;
- Pasero's inverse square root learning-rate schedule (`lr_scheduler_type` "inverse_sqrt").
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from transformers import Seq2SeqTrainer
from transformers.trainer_callback import ProgressCallback

from pasero_hf.metrics import DEFAULT_METRICS, corpus_scores
from pasero_hf.models.onednn import onednn_linear_layers
from pasero_hf.models.pasero.modeling_pasero import shift_tokens_right
from pasero_hf.tokenization.file_utils import replace_directory
from pasero_hf.training import checkpoints
from pasero_hf.training.callbacks import QuietProgressCallback, StopCallback, format_value
from pasero_hf.training.config import write_yaml_atomically
from pasero_hf.training.dropout import fast_cpu_dropout
from pasero_hf.training.loss import IGNORE_INDEX, label_smoothed_nll_sum
from pasero_hf.training.quiet import transformers_bars_disabled
from pasero_hf.training.schedules import inverse_sqrt_schedule

logger = logging.getLogger("pasero_hf.training")

LOSS_INPUTS = ("labels",)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    while hasattr(model, "module"):
        model = model.module
    return model


class PaseroSeq2SeqTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer for Pasero-style MT training (see the module docstring).

    Args:
        model: any encoder-decoder model with a `logits` output (Pasero, M2M100, Marian...), possibly PEFT-wrapped.
        args: `Seq2SeqTrainingArguments` (see `pasero_hf.training.lifecycle.training_arguments`).
        train_dataset: an iterable of ready batches for this rank (a `TrainStream`), or None to only validate.
        eval_dataset: validation sets by name (`pasero_hf.data.ValidSet`: batches, sources, references).
        processing_class: the tokenizer, saved with every checkpoint and used to detokenize hypotheses.
        label_smoothing: label smoothing of the cross-entropy.
        lr_schedule: {"warmup", "init_lr", "min_lr"}: use Pasero's inverse_sqrt schedule with these values instead
            of `args.lr_scheduler_type`.
        bleu_tok: sacrebleu tokenizer for validation BLEU.
        valid_beam_size, max_output_len: validation decoding.
        valid_max_lines: translate at most this many lines per validation set (the loss uses all of them).
        keep_last: complete checkpoints kept.
        keep_interval: the checkpoints of every `keep_interval`-th step are kept too (Pasero's option).
        metrics, eval_lc, spbleu_model: validation scores (`pasero_hf.metrics.corpus_scores`).
        inference_config: content of the `inference.yaml` written into every saved model directory.
        save_trainable_only: `checkpoint-N` directories hold only the trainable weights (adapters on a frozen base
            model); `model_best` and `model_last` stay complete, loadable models.
        onednn: during `train` and `evaluate`, float32 CPU linear layers multiply through oneDNN when that is faster
            (`pasero_hf.models.onednn`).
        fast_dropout: during `train`, the model's dropout layers draw their CPU masks from fewer random numbers
            (`pasero_hf.training.dropout`).
        languages: how a pretrained model family marks languages (`ModelLanguages`, with the run's language mapping),
            for validation decoding; None: found from the tokenizer.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        args,
        train_dataset=None,
        eval_dataset: dict | None = None,
        processing_class=None,
        callbacks: list | None = None,
        label_smoothing: float = 0.1,
        lr_schedule: dict[str, float] | None = None,
        bleu_tok: str = "13a",
        valid_beam_size: int = 1,
        max_output_len: int = 100,
        valid_max_lines: int | None = None,
        keep_last: int = 1,
        inference_config: dict[str, Any] | None = None,
        save_trainable_only: bool = False,
        onednn: bool = True,
        fast_dropout: bool = True,
        keep_interval: int | None = None,
        metrics: Sequence[str] = DEFAULT_METRICS,
        eval_lc: bool = False,
        spbleu_model: str | None = None,
        languages=None,
    ):
        super().__init__(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=processing_class, callbacks=callbacks)
        if self.pop_callback(ProgressCallback) is not None:
            budgets = [callback.max_seconds for callback in self.callback_handler.callbacks
                       if isinstance(callback, StopCallback) and callback.max_seconds is not None]
            self.add_callback(QuietProgressCallback(min(budgets) if budgets else None))
        self.onednn = onednn
        self.fast_dropout = fast_dropout
        self.languages = languages
        self.label_smoothing = label_smoothing
        self.lr_schedule = lr_schedule
        self.bleu_tok = bleu_tok
        self.valid_beam_size = valid_beam_size
        self.max_output_len = max_output_len
        self.valid_max_lines = valid_max_lines
        self.keep_last = keep_last
        self.keep_interval = keep_interval
        self.metrics = list(metrics)
        self.eval_lc = eval_lc
        self.spbleu_model = spbleu_model
        self.inference_config = inference_config or {}
        self.save_trainable_only = save_trainable_only
        self._saving_checkpoint = False
        self._generator = None  # validation decoder (a TextGenerator over the model being trained)
        # our loss is already normalised over the whole accumulated step (see compute_loss)
        self.loss_is_scaled_for_ga = True
        base = _unwrap(model)
        if hasattr(base, "get_base_model"):  # PEFT wraps forward as (*args, **kwargs)
            base = base.get_base_model()
        self._forward_params = set(inspect.signature(base.forward).parameters)
        self._reset_log_counters()

    @property
    def stop_callback(self) -> StopCallback | None:
        """The callback that ends the run on its time budget or a signal (and records why it stopped)."""
        return next((c for c in self.callback_handler.callbacks if isinstance(c, StopCallback)), None)

    def train(self, *args, **kwargs):
        with onednn_linear_layers(self.model, self.onednn), fast_cpu_dropout(self.model, self.fast_dropout):
            return super().train(*args, **kwargs)

    # -- data ----------------------------------------------------------------------------------------------------
    def get_train_dataloader(self) -> DataLoader:
        """The stream as is: its batches are already token-based and rank-specific, so Accelerate must not re-shard."""
        if self.train_dataset is None:
            raise ValueError("PaseroSeq2SeqTrainer: training requires a train_dataset")
        # Its own generator: creating a DataLoader iterator draws a seed, and drawing it from the global RNG would
        # shift every dropout mask of a resumed run (the RNG state is restored before the iterator is created).
        return DataLoader(self.train_dataset, batch_size=None, num_workers=self.args.dataloader_num_workers,
                          generator=torch.Generator().manual_seed(self.args.seed))

    def _model_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The batch entries the model's forward accepts (language/domain strings only for models that use them)."""
        return {k: v for k, v in inputs.items() if k in self._forward_params and k not in LOSS_INPUTS}

    # -- loss ----------------------------------------------------------------------------------------------------
    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor:
        """Target tokens of the whole optimizer step: all micro-batches, summed over data-parallel ranks."""
        count = sum(int((batch["labels"] != IGNORE_INDEX).sum()) for batch in batch_samples)
        count = torch.tensor(count, device=device, dtype=torch.long)
        if self.args.world_size > 1:
            count = self.accelerator.reduce(count, reduction="sum")
        self._tokens_since_log += int(count)
        return count

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Label-smoothed CE sum / target tokens of the step; x world size because DDP averages gradients."""
        labels = inputs["labels"]
        model_inputs = self._model_inputs(inputs)
        if "decoder_input_ids" not in model_inputs:
            config = _unwrap(model).config
            model_inputs["decoder_input_ids"] = shift_tokens_right(labels, config.pad_token_id, config.decoder_start_token_id)
        outputs = model(**model_inputs)
        loss_sum, nll_sum, num_tokens = label_smoothed_nll_sum(outputs.logits, labels, self.label_smoothing)
        loss = self._normalized_loss(model, loss_sum, nll_sum, num_tokens, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _normalized_loss(self, model, loss_sum, nll_sum, num_tokens: int, num_items_in_batch) -> torch.Tensor:
        """Training: / the step's target tokens, x world size (DDP averages gradients); evaluation: per token."""
        if model.training and num_items_in_batch is not None:
            self._nll_since_log += float(nll_sum)
            return loss_sum * self.accelerator.num_processes / num_items_in_batch
        return loss_sum / max(num_tokens, 1)

    # -- optimisation --------------------------------------------------------------------------------------------
    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_schedule is None:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.lr_scheduler = inverse_sqrt_schedule(optimizer or self.optimizer, lr=self.args.learning_rate,
                                                      **self.lr_schedule)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    # -- logging -------------------------------------------------------------------------------------------------
    def _reset_log_counters(self) -> None:
        self._nll_since_log = 0.0
        self._tokens_since_log = 0
        self._last_log_time = time.perf_counter()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds NLL, perplexity and target tokens/s (all ranks) to the periodic training logs."""
        if "loss" in logs and not any(k.startswith("eval_") for k in logs):
            nll = torch.tensor(self._nll_since_log, dtype=torch.float64, device=self.args.device)
            if self.args.world_size > 1:
                nll = self.accelerator.reduce(nll, reduction="sum")
            elapsed = time.perf_counter() - self._last_log_time
            if self._tokens_since_log:
                logs["nll_loss"] = float(nll) / self._tokens_since_log
                logs["ppl"] = math.exp(min(logs["nll_loss"], 50.0))
                logs["tgt_tokens_per_s"] = self._tokens_since_log / max(elapsed, 1e-9)
            self._reset_log_counters()
        super().log(logs, start_time)

    # -- validation ----------------------------------------------------------------------------------------------
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Loss, BLEU and chrF of every validation set (batches split across ranks), plus their averages."""
        valid_sets = eval_dataset if eval_dataset is not None else self.eval_dataset
        if not valid_sets:
            raise ValueError("PaseroSeq2SeqTrainer.evaluate: no validation sets")
        start = time.perf_counter()
        model = _unwrap(self.model)
        was_training = model.training
        model.eval()
        metrics: dict[str, float] = {}
        per_set = []
        with onednn_linear_layers(model, self.onednn):  # already in place when `train` validates
            for name, valid_set in valid_sets.items():
                scores = self._validate_one(model, name, valid_set)
                per_set.append(scores)
                metrics.update({f"{metric_key_prefix}_{name}_{k}": v for k, v in scores.items()})
        for key in ("loss", *self.metrics):
            values = [s[key] for s in per_set if key in s]
            if values:
                metrics[f"{metric_key_prefix}_{key}"] = sum(values) / len(values)
        metrics[f"{metric_key_prefix}_runtime"] = time.perf_counter() - start
        model.train(was_training)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        # validation time must not count in the training throughput
        self._last_log_time += time.perf_counter() - start
        return metrics

    def _validate_one(self, model: torch.nn.Module, name: str, valid_set) -> dict[str, float]:
        rank, world_size = self.args.process_index, self.args.world_size
        shard = valid_set.shard(rank, world_size)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.args.device)
        num_tokens = torch.zeros((), dtype=torch.float64, device=self.args.device)
        with torch.no_grad():
            for batch in shard.batches:
                inputs = self._prepare_inputs(batch)
                logits = model(**self._model_inputs(inputs)).logits
                batch_loss, _, batch_tokens = label_smoothed_nll_sum(logits, inputs["labels"], self.label_smoothing)
                loss_sum += batch_loss.double()
                num_tokens += batch_tokens
        limit = len(valid_set.sources)
        if self.valid_max_lines is not None:
            limit = min(limit, self.valid_max_lines)
        indices = list(range(rank, limit, world_size))
        hypotheses = list(zip(indices, self._translate(model, [valid_set.sources[i] for i in indices],
                                                       valid_set.corpus)))
        if world_size > 1:
            loss_sum = self.accelerator.reduce(loss_sum, reduction="sum")
            num_tokens = self.accelerator.reduce(num_tokens, reduction="sum")
            gathered: list = [None] * world_size
            dist.all_gather_object(gathered, hypotheses)
            hypotheses = [h for part in gathered for h in part]
        scores = {"loss": float(loss_sum / num_tokens.clamp(min=1))}
        if hypotheses:
            hypotheses.sort()
            outputs = [text for _, text in hypotheses]
            references = [valid_set.references[index] for index, _ in hypotheses]
            scores.update(corpus_scores(outputs, references, bleu_tok=self.bleu_tok, metrics=self.metrics,
                                        lowercase=self.eval_lc, spbleu_model=self.spbleu_model))
            if self.is_world_process_zero():
                for text in [text for text in outputs if text.strip()][:3]:
                    logger.info("%s | example output: %s", name, text)
        return scores

    def _translate(self, model: torch.nn.Module, sources: list[str], corpus) -> list[str]:
        """Translations of `sources` by the decoder of `pasero-decode` (Pasero's exact search for Pasero models), so
        that the logged scores are those the user gets from the checkpoint with the same beam size."""
        if self._generator is None or self._generator.model is not model:
            from pasero_hf.generation.decoding_options import DecodingOptions
            from pasero_hf.generation.text_generator import TextGenerator

            options = DecodingOptions(beam_size=self.valid_beam_size, max_output_len=self.max_output_len,
                                      max_source_len=self.inference_config.get("max_source_len"))
            # a copy: decoding points the tokenizer at each set's languages, and the saved one must keep its defaults
            tokenizer = copy.deepcopy(self.processing_class)
            self._generator = TextGenerator(model, tokenizer, options, onednn=False,  # layers already routed
                                            languages=self.languages)
            self._generator.target_code_in_source = bool(self.inference_config.get("lang_code")) and not hasattr(
                self.processing_class, "lang_code")
            self._generator.domain_tag = bool(self.inference_config.get("domain_tag"))
        if not sources:
            return []
        nbest = self._generator.decode(*sources, source_lang=corpus.source_lang, target_lang=corpus.target_lang,
                                       domain=corpus.domain)
        return [hypotheses[0]["detok"] for hypotheses in nbest]

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def _save_checkpoint(self, model, trial) -> None:
        """The Trainer's checkpoint, plus the data position; marked complete last, then rotated; then model_last."""
        self._saving_checkpoint = True
        try:
            with transformers_bars_disabled():
                super()._save_checkpoint(model, trial)
        finally:
            self._saving_checkpoint = False
        step = self.state.global_step
        run_dir = Path(self._get_output_dir(trial))
        checkpoint_dir = run_dir / f"checkpoint-{step}"
        checkpoints.write_json_atomically(checkpoint_dir / checkpoints.log_state_file(self.args.process_index),
                                          self._log_state())
        self.accelerator.wait_for_everyone()  # every rank's files are written before the checkpoint is complete
        if self.args.should_save:
            if hasattr(self.train_dataset, "state_dict"):
                batches = step * self.args.gradient_accumulation_steps
                checkpoints.write_json_atomically(checkpoint_dir / checkpoints.DATA_STATE,
                                                  self.train_dataset.state_dict(steps=batches))
            self._write_inference_yaml(checkpoint_dir)
            checkpoints.mark_complete(checkpoint_dir, step)
            checkpoints.rotate_checkpoints(run_dir, self.keep_last, self.keep_interval)
        self.save_model_dir("model_last")
        logger.info("saved %s and model_last @%d", checkpoint_dir.name, step)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        with transformers_bars_disabled():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _log_state(self) -> dict[str, Any]:
        """What this rank has accumulated since the last log line: a resumed run then logs the same averages."""
        last_logged = getattr(self, "_globalstep_last_logged", self.state.global_step)
        return {"steps_since_log": self.state.global_step - last_logged,
                "loss_sum": float(getattr(self, "_tr_loss", 0.0)), "nll_sum": self._nll_since_log,
                "target_tokens": self._tokens_since_log}

    def _load_rng_state(self, checkpoint: str | None) -> None:
        """The Trainer calls this once when it resumes, after resetting its loss accumulators: restore them too."""
        super()._load_rng_state(checkpoint)
        state = checkpoints.read_log_state(Path(checkpoint), self.args.process_index) if checkpoint else None
        if state is not None:
            self._globalstep_last_logged = self.state.global_step - state["steps_since_log"]
            self._tr_loss.fill_(state["loss_sum"])
            self._nll_since_log = state["nll_sum"]
            self._tokens_since_log = state["target_tokens"]

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        adapters = getattr(_unwrap(self.model), "pasero_adapters", None)
        if adapters is not None and not self._saving_checkpoint and self.args.should_save:
            # bottleneck adapters on a pretrained model: model directories hold the adapters alone (and the tokenizer)
            output_dir = output_dir or self.args.output_dir
            adapters.save(output_dir)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            return
        if self.save_trainable_only and self._saving_checkpoint and state_dict is None:
            trainable = {name for name, param in self.model.named_parameters() if param.requires_grad}
            state_dict = {k: v for k, v in self.model.state_dict().items() if k in trainable}
        super()._save(output_dir, state_dict)

    def _determine_best_metric(self, metrics: dict[str, float], trial) -> bool:
        is_new_best = super()._determine_best_metric(metrics, trial)
        if is_new_best:
            self.save_model_dir("model_best")
            logger.info("new best %s: %s @%d", self.args.metric_for_best_model, format_value(self.state.best_metric, self.args.metric_for_best_model),
                        self.state.global_step)
        return is_new_best

    def save_model_dir(self, name: str) -> Path:
        """Save the model, tokenizer and inference.yaml to MODEL_DIR/`name`, replacing it atomically."""
        run_dir = Path(self.args.output_dir)
        staging = run_dir / f".{name}.staging"
        with transformers_bars_disabled():
            self.save_model(str(staging))
        if self.args.should_save:
            (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle: not part of a model directory
            self._write_inference_yaml(staging)
            replace_directory(staging, run_dir / name)
        self.accelerator.wait_for_everyone()
        return run_dir / name

    def _write_inference_yaml(self, directory: Path) -> None:
        if self.inference_config:
            write_yaml_atomically(directory / "inference.yaml", self.inference_config)

    def save_final_checkpoint(self) -> None:
        """Save a checkpoint of the current step unless the last one already is (end of `max_steps`)."""
        latest = checkpoints.latest_checkpoint(Path(self.args.output_dir))
        if latest is None or checkpoints.checkpoint_step(latest) != self.state.global_step:
            self._save_checkpoint(self.model_wrapped, None)


def trainable_parameter_count(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total

