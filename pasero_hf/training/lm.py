"""Fine-tuning causal language models (`task: lm` on translation prompts, `task: dialogue` on conversations).

The steps of `recipes/train_lm.py`, each one call::

    config = load_training_config(argv)                       # --task lm|dialogue, --model DIR_OR_REPO
    model, tokenizer = load_causal_lm(config)                 # any AutoModelForCausalLM, checked
    prompts = prompt_format(config, tokenizer)                # template / chat template, saved for decoding
    train_stream, valid_sets = build_lm_data(config, tokenizer, prompts)  # every file checked
    run = start_run(config)                                   # training arguments, MODEL_DIR, logging, resume point
    model = trainable_model(config, model)                    # LoRA through PEFT, or all weights
    trainer = build_lm_trainer(config, model, tokenizer, prompts, train_stream, valid_sets, run)
    result = finish_training(config, trainer, trainer.stop_callback, run.resume)  # train, save

Everything else is MT's: the corpora, temperature sampling and token batches of `pasero_hf.data`, the trainer
(`PaseroSeq2SeqTrainer`: loss normalisation over the whole step, exact resume, SIGINT/SIGTERM, atomic
checkpoints, validation BLEU/chrF through `TextGenerator`), the Accelerate configs (DDP/FSDP/TP), bf16/fp16 and
activation checkpointing. The loss: cross-entropy on target (assistant) tokens, plus `prompt_loss` x that of
the prompt tokens, divided by the number of target tokens of the step.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from transformers import set_seed

from pasero_hf.data.causal_lm import build_lm_train_dataset, build_lm_valid_datasets
from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.data.prompts import CHAT_STOP_SEQUENCES, CHAT_TEMPLATES, PromptFormat, chat_template_source
from pasero_hf.models.locate import resolve_model_dir
from pasero_hf.training import checkpoints
from pasero_hf.training.artifacts import configure_generation_defaults
from pasero_hf.training.callbacks import StopCallback
from pasero_hf.training.config import TrainingConfig, write_yaml_atomically
from pasero_hf.training.lifecycle import (
    RunSetup,
    rank_from_env,
    reset_optimizer,
    start_run,
    trainer_callbacks,
    trainer_options,
    world_size_from_env,
)
from pasero_hf.training.loss import label_smoothed_nll_sum
from pasero_hf.training.pretrained import apply_lora, apply_model_args, load_model_tokenizer
from pasero_hf.training.quiet import datasets_bars_disabled
from pasero_hf.training.trainer import PaseroSeq2SeqTrainer, _unwrap, trainable_parameter_count

logger = logging.getLogger("pasero_hf.training")


def load_causal_lm(config: TrainingConfig):
    """(model, tokenizer) of `--model` (a directory, a training run or a Hub repo id), checked for training.

    Raises:
        ConfigError: no --model, no such model, not a causal LM, unknown `model_args`, a tokenizer larger than the
            model's vocabulary.
    """
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    from pasero_hf.models.vocab_trimming import tokenizer_id_bound

    name = config.pretrained.model or config.run.ckpt
    if not name:
        raise ConfigError(f"model: task {config.run.task} fine-tunes a pretrained causal LM: give --model "
                          "DIR_OR_REPO_ID (Llama, Mistral, Qwen...)")
    try:
        directory = resolve_model_dir(name)
        model_config = AutoConfig.from_pretrained(directory)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"model: {error}") from error
    if model_config.is_encoder_decoder or type(model_config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise ConfigError(f"model: {name} ({model_config.model_type}) is not a causal language model: task "
                          f"{config.run.task} trains AutoModelForCausalLM models; use --task mt for encoder-decoders")
    apply_model_args(model_config, config.model.model_args, name)
    tokenizer, tokenizer_dir = load_model_tokenizer(config, directory, "model")
    if tokenizer_id_bound(tokenizer) > model_config.get_text_config().vocab_size:
        raise ConfigError(f"model: the tokenizer of {tokenizer_dir} has more ids than {name} has embeddings")
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"model: the tokenizer of {tokenizer_dir} has no EOS token (needed to end targets)")
    if tokenizer.pad_token_id is None:  # Llama/Mistral: padding is masked out, any id will do
        tokenizer.pad_token = tokenizer.eos_token
    # float32 weights: bf16/fp16 training is mixed precision through Accelerate (`dtype`)
    model = AutoModelForCausalLM.from_pretrained(directory, config=model_config, dtype=torch.float32)
    logger.info("fine-tuning %s (%s, task %s)", name, model_config.model_type, config.run.task)
    return model, tokenizer


def prompt_format(config: TrainingConfig, tokenizer) -> PromptFormat:
    """How examples become prompts; a named chat template is installed in the tokenizer (saved with the model)."""
    opts = config.lm
    try:
        if config.run.task == "dialogue":
            template = chat_template_source(tokenizer, opts.chat_template)  # checks the name, or that one exists
            if opts.chat_template:
                tokenizer.chat_template = template
            stops = list(dict.fromkeys(list(opts.stop_sequences or []) +
                                       CHAT_STOP_SEQUENCES.get(opts.chat_template or "", [])))
            return PromptFormat(task="dialogue", chat_template=opts.chat_template, system_prompt=opts.system_prompt,
                                stop_sequences=stops)
        return PromptFormat(task="lm", prompt_template=opts.prompt_template,
                            stop_sequences=list(opts.stop_sequences or []))
    except ValueError as error:
        raise ConfigError(str(error)) from None


def build_lm_data(config: TrainingConfig, tokenizer, prompts: PromptFormat):
    """(this rank's training stream, validation sets), every file read and checked before anything is written.

    Raises:
        ConfigError: a missing, malformed or empty corpus (file and line), nothing within `max_len`.
    """
    template = CHAT_TEMPLATES.get(prompts.chat_template or "") or getattr(tokenizer, "chat_template", None)
    kwargs = {"prompt_template": prompts.prompt_template, "chat_template": template}
    rank = rank_from_env()  # before start_run: every file is checked before anything is written
    try:
        with datasets_bars_disabled():
            stream = build_lm_train_dataset(config.data, tokenizer, prompts.task, rank=rank,
                                            world_size=world_size_from_env(), **kwargs)
            valid_sets = build_lm_valid_datasets(config.data, tokenizer, prompts.task, **kwargs)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(str(error)) from error
    if not valid_sets:
        raise ConfigError("valid_corpora: at least one validation corpus is needed (validation drives model_best)")
    return stream, valid_sets


def trainable_model(config: TrainingConfig, model: torch.nn.Module) -> torch.nn.Module:
    """LoRA adapters through PEFT (`lora_rank` > 0) on the frozen model, or the whole model."""
    if config.model.uses_adapters:
        raise ConfigError("encoder/decoder adapters: Pasero's bottleneck adapters are not available on causal LMs: "
                          "use --lora-rank")
    set_seed(config.data.seed)  # the same LoRA initialisation for the same seed
    if config.model.checkpoint_activations:
        model.config.use_cache = False  # a KV cache is useless in training and conflicts with recomputation
    return apply_lora(model, config) if config.model.lora_rank else model


def lm_inference_config(config: TrainingConfig, model: torch.nn.Module, prompts: PromptFormat) -> dict[str, Any]:
    """inference.yaml of a fine-tuned causal LM: its prompt format, languages and decoding defaults."""
    content: dict[str, Any] = {"arch": _unwrap_peft(model).config.model_type,
                               "pretrained_model": config.pretrained.model or config.run.ckpt}
    if prompts.task == "lm":
        pairs = config.lang_pairs
        content.update(source_langs=sorted({src for src, _ in pairs}), target_langs=sorted({tgt for _, tgt in pairs}),
                       lang_pairs=[f"{src}-{tgt}" for src, tgt in pairs])
    content.update(beam_size=config.run.beam_size, max_output_len=config.run.max_output_len)
    content.update(prompts.to_inference_config())
    return content


def _unwrap_peft(model: torch.nn.Module) -> torch.nn.Module:
    model = _unwrap(model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class CausalLMTrainer(PaseroSeq2SeqTrainer):
    """`PaseroSeq2SeqTrainer` for causal LMs: batches of `collate_causal` (labels already shifted), the prompt loss,
    validation decoding through the prompt format, and model directories as adapters or merged models.

    Args (besides the parent's):
        prompts: the prompt format (validation decodes through it, like pasero-decode).
        prompt_loss: weight of the loss on prompt tokens.
        merge_lora: save `model_best`/`model_last` as merged, standalone models instead of PEFT adapters.
    """

    def __init__(self, *args, prompts: PromptFormat, prompt_loss: float = 0.0, merge_lora: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.prompts = prompts
        self.prompt_loss = prompt_loss
        self.merge_lora = merge_lora

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**self._model_inputs(inputs))
        loss_sum, nll_sum, num_tokens = label_smoothed_nll_sum(outputs.logits, inputs["labels"], self.label_smoothing)
        if self.prompt_loss:
            prompt_sum, _, _ = label_smoothed_nll_sum(outputs.logits, inputs["prompt_labels"], self.label_smoothing)
            loss_sum = loss_sum + self.prompt_loss * prompt_sum
        loss = self._normalized_loss(model, loss_sum, nll_sum, num_tokens, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _translate(self, model: torch.nn.Module, sources: list, corpus) -> list[str]:
        if self._generator is None or self._generator.model is not model:
            super()._translate(model, [], corpus)  # builds the validation decoder
            self._generator.prompts = self.prompts
        return super()._translate(model, sources, corpus)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if self.merge_lora and not self._saving_checkpoint and hasattr(_unwrap(self.model), "merge_and_unload"):
            merged = copy.deepcopy(_unwrap(self.model)).merge_and_unload()  # the trained model stays wrapped
            merged.save_pretrained(output_dir)
            self.processing_class.save_pretrained(output_dir)
            return
        super()._save(output_dir, state_dict)


def build_lm_trainer(config: TrainingConfig, model: torch.nn.Module, tokenizer, prompts: PromptFormat,
                     train_stream, valid_sets: dict, run: RunSetup) -> CausalLMTrainer:
    """The trainer, with MODEL_DIR's training.yaml and inference.yaml written, the decoding defaults set and the data
    position of the resume point."""
    configure_generation_defaults(model, config.run.beam_size, config.run.max_output_len)
    inference = lm_inference_config(config, model, prompts)
    trainable, total = trainable_parameter_count(model)
    logger.info("model: %s, %s parameters (%s trainable)", inference["arch"], f"{total:,}", f"{trainable:,}")
    if run.is_main:
        config.write_training_yaml(config.model_dir / "training.yaml")
        write_yaml_atomically(config.model_dir / "inference.yaml", inference)
    if run.resume is not None:
        checkpoints.restore_data_position(train_stream, run.resume)
    _, callbacks = trainer_callbacks(config)
    return CausalLMTrainer(
        model=model, args=run.args, train_dataset=train_stream, eval_dataset=valid_sets, processing_class=tokenizer,
        callbacks=callbacks, **trainer_options(config), bleu_tok=config.run.bleu_tok, inference_config=inference,
        metrics=config.run.metrics, spbleu_model=config.run.spbleu_model,
        prompts=prompts, prompt_loss=config.lm.prompt_loss,
        merge_lora=bool(config.model.lora_rank) and not config.model.save_trainable_only,
    )


def prepare_lm_trainer(config: TrainingConfig) -> tuple[CausalLMTrainer, StopCallback, str | None]:
    """Every step before the first training step (what `pasero-train --task lm|dialogue` runs)."""
    model, tokenizer = load_causal_lm(config)
    prompts = prompt_format(config, tokenizer)
    train_stream, valid_sets = build_lm_data(config, tokenizer, prompts)
    run = start_run(config)
    model = trainable_model(config, model)
    reset_optimizer(config, model, run)
    trainer = build_lm_trainer(config, model, tokenizer, prompts, train_stream, valid_sets, run)
    return trainer, trainer.stop_callback, run.resume_path


def dry_run_report(config: TrainingConfig) -> str:
    """`pasero-train --task lm|dialogue --dry-run`: the model, prompt format and corpora, checked; nothing written."""
    model, tokenizer = load_causal_lm(config)
    prompts = prompt_format(config, tokenizer)
    stream, valid_sets = build_lm_data(config, tokenizer, prompts)
    lines = [f"model: {config.pretrained.model or config.run.ckpt} ({model.config.model_type}, "
             f"{sum(p.numel() for p in model.parameters()):,} parameters), task {config.run.task}",
             f"prompt format: {prompts.to_inference_config()}"]
    lines += [f"train {corpus.corpus_id}: {len(dataset):,} sequences"
              for corpus, dataset in zip(stream.corpora, stream.datasets)]
    lines += [f"valid {name}: {len(valid.sources):,} sequences" for name, valid in valid_sets.items()]
    return "\n".join(lines)
