"""Pasero's training options that have no option of the same name here: what each one becomes, or why it is refused.

A Pasero user's YAML file and command line work unchanged: options shared with Pasero keep their name in
`TrainingConfig`; the model hyper-parameters (`embed_dim`, `dropout`...) are `ModelOptions` fields merged into
`model_args`; the options below are either renamed (`RENAMED`), accepted for the values that mean what we do
(`PASERO_DEFAULTS`, `ACCEPTED_VALUES`) or refused with `option 'X' (Pasero) is not supported: <what to use instead>` — never
"unknown option", so a Pasero option is never mistaken for a typo.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from pasero_hf.data.config_parsing import ConfigError

# Pasero name -> our option name
RENAMED = {"continue": "continue_"}
# In a YAML file, Pasero's `config` names the file the options were read from (Pasero writes it into the
# training.yaml of a model directory, whose options are already complete): nothing to do. `-c/--config` reads files.
# Pasero's data-loader internals (line indexes, file handles, preprocessing workers) change how fast its loader
# reads, not what is trained; here corpora are tokenized once and cached by `datasets`: any value is accepted.
LOADER_INTERNALS = {"line_index_path", "cache_line_index", "reset_line_index", "block_size", "cache_data",
                    "max_cache_size", "store_files_under", "close_files", "num_workers"}
INFORMATIONAL = {"config", *LOADER_INTERNALS}

# Pasero's default of each option below: a value equal to it turns the feature off (or asks for what is done here
# anyway), so a training.yaml written by Pasero, which lists every option, loads
PASERO_DEFAULTS: dict[str, Any] = {
    'dp_size': None, 'tp_size': 1, 'start_rank': 0, 'distributed_init_method': None, 'sequence_parallel': True,
    'fsdp': False, 'find_unused_parameters': False, 'amp': False, 'flat_fp16': False, 'memory_efficient_fp16': True,
    'optimizer_states_as_fp32': True, 'tracker': 'none', 'tracker_project_name': None, 'tracker_run_name': None,
    'log_file': None, 'verbose': False, 'debug': False, 'benchmark': False,
    'dataset_type': 'dynamic', 'per_gpu_batching': False, 'batch_size_multiple': None, 'block_size': 256,
    'cache_data': False, 'max_cache_size': 128, 'store_files_under': 134217728, 'close_files': False,
    'line_index_path': None, 'reset_line_index': False, 'cache_line_index': True, 'num_workers': 4,
    'truncate': False, 'domains': None, 'domain_tag': False, 'source_tags': None, 'target_tags': None,
    'source_lang_code': False, 'target_lang_code': False, 'escape_emojis': False, 'copy_placeholder': True,
    'normalize_punctuation': False, 'keep_whitespaces': False, 'protect_tokens': [], 'blacklist': [],
    'stop_sequences': [], 'strip_prompt': True, 'inline_case': False, 'target_tokenizer': None,
    'old_source_dict': None, 'old_target_dict': None,
    'default_embed': '<unk>', 'freeze_source_embed_regex': None, 'bpe_dropout': 0.0, 'target_bpe_dropout': 0.0,
    'spell_out': 0.0, 'target_spell_out': 0.0, 'space_noise': 0.0, 'punct_noise': 0.0, 'char_noise': 0.0,
    'word_noise': 0.0, 'masking': 0.0, 'noise_ops': ['ins', 'del', 'sub', 'swap'], 'len_penalty': 1.0,
    'repeat_penalty': 1.0, 'sampling': False, 'sampling_topk': 0, 'sampling_topp': 1, 'sampling_temperature': 1.0,
    'teacher_forcing': False, 'expected_scores': [], 'flexible': False, 'reset_params_regex': None,
    'freeze_params_regex': None, 'train_params_regex': None, 'train_all_params': False,
    'save_initial_checkpoint': False, 'save_trainable_only': False, 'only_validate': False, 'patience_min_steps': 0,
    'alibi_max_bias': 8, 'attention_heads_kv': None, 'max_qkv': None, 'prompt_loss': 1.0, 'rope_base': 10000,
    'shift_encoder_layers': None, 'shift_decoder_layers': None, 'sliding_window': None,
    'model_type': 'encoder_decoder', 'input_dim': None, 'conv_input_dim': None, 'conv_channels': None,
    'conv_activation': 'glu', 'conv_kernel_sizes': None, 'conv_strides': None, 'check_inf': False, 'norm_bias': True,
    'parallel_attention': False, 'rms_norm': False, 'shared_norm': False, 'padding_idx': 1, 'bos_idx': 2,
    'eos_idx': 2, 'unk_idx': 3, 'max_doc_size': 1, 'sent_merge_prob': 0.0, 'sent_sep': '<sep>',
}

# Pasero's task names -> ours (`task` option)
PASERO_TASK_NAMES = {"translation": "mt", "speech_translation": "st", "language_modeling": "lm", "dialogue": "dialogue"}
TASKS = ("mt", "lm", "dialogue", "st")

# other values accepted: what this implementation does anyway
ACCEPTED_VALUES: dict[str, tuple[Any, ...]] = {"dp_size": (1,), "log_file": ("train.log",)}

_LAUNCHER = "the number of processes comes from `accelerate launch`/`torchrun` (accelerate_configs/*.yaml)"
_DATA_PIPELINE = "corpora are tokenized once and cached with `datasets` (cache_dir), then batched from a buffer " \
                 "of buffer_size pairs"
_DECODING = "validation decodes with valid_beam_size and max_output_len; pasero-decode has the decoding options"
_NOT_IN_MODEL = "the Pasero Transformer of pasero-hf has no such option (Pasero's own decoder-only and speech " \
                "architectures are not reimplemented); fine-tune Hugging Face causal LMs with --task lm or dialogue"
_NOISE = "no source-side noise or subword regularization at training time"

# Pasero name -> (kind of value on the command line: 'bool', 'list' or 'value'; what to use instead)
UNSUPPORTED: dict[str, tuple[str, str]] = {
    # distributed training and precision
    "dp_size": ("value", _LAUNCHER),
    "tp_size": ("value", "tensor parallelism: `accelerate launch --config_file accelerate_configs/tp.yaml`"),
    "start_rank": ("value", _LAUNCHER),
    "distributed_init_method": ("value", _LAUNCHER),
    "sequence_parallel": ("bool", "tensor parallelism shards by features only (accelerate_configs/tp.yaml)"),
    "fsdp": ("bool", "use accelerate_configs/fsdp.yaml"),
    "find_unused_parameters": ("bool", "set automatically when adapters are trained"),
    "amp": ("bool", "use dtype: float16 or bfloat16 (mixed precision through Accelerate)"),
    "flat_fp16": ("bool", "use dtype: float16 or bfloat16 (mixed precision through Accelerate)"),
    "memory_efficient_fp16": ("bool", "use dtype: bfloat16"),
    "optimizer_states_as_fp32": ("bool", "optimizer states are float32 under Accelerate's mixed precision"),
    # tracking and logging
    "tracker": ("value", "TensorBoard logs are written to MODEL_DIR when tensorboard is installed"),
    "tracker_project_name": ("value", "TensorBoard logs are written to MODEL_DIR when tensorboard is installed"),
    "tracker_run_name": ("value", "TensorBoard logs are written to MODEL_DIR when tensorboard is installed"),
    "log_file": ("value", "the log is always MODEL_DIR/train.log"),
    "verbose": ("bool", "log lines every log_interval steps show loss, learning rate, tokens/s and gradient norm"),
    "debug": ("bool", "use --dry-run to check the configuration and data"),
    "benchmark": ("bool", "see benchmarks/ for throughput measurements"),
    # tasks and data pipeline
    "dataset_type": ("value", _DATA_PIPELINE),
    "per_gpu_batching": ("bool", "each rank takes every world_size-th batch of one global stream"),
    "batch_size_multiple": ("value", "batches are cut by batch_size tokens (and lines_per_batch)"),
    "truncate": ("bool", "training pairs longer than max_source_len/max_target_len are skipped, validation pairs "
                         "truncated"),
    "domains": ("list", "set domain per corpus in train_corpora ('domain: ted'); adapters: encoder_adapters_by"),
    "source_tags": ("list", "no source tags; use lang_code or adapters"),
    "target_tags": ("list", "no target tags; use lang_code or adapters"),
    "escape_emojis": ("bool", "text is used as it is"),
    "copy_placeholder": ("bool", "text is used as it is"),
    "normalize_punctuation": ("bool", "normalize the corpora before training"),
    "keep_whitespaces": ("bool", "whitespace is normalized by the tokenizer as in Pasero's default"),
    "protect_tokens": ("list", "special tokens come from the dictionary"),
    "blacklist": ("list", _DECODING),
    "strip_prompt": ("bool", "only encoder-decoder translation is trained here"),
    "inline_case": ("bool", "tokenizer: pasero applies inline casing; other tokenizers do not"),
    "target_tokenizer": ("value", "the target side uses `tokenizer`; target_tokenizer_path gives it its own model "
                                  "of that kind, target_dict its own vocabulary"),
    "old_source_dict": ("value", "vocabulary changes of a pretrained model are not implemented"),
    "old_target_dict": ("value", "vocabulary changes of a pretrained model are not implemented"),
    "default_embed": ("value", "vocabulary changes of a pretrained model are not implemented"),
    "freeze_source_embed_regex": ("value", "use adapters (encoder_adapters_by) or LoRA (lora_rank) to train part "
                                           "of a model"),
    "bpe_dropout": ("value", _NOISE),
    "target_bpe_dropout": ("value", _NOISE),
    "spell_out": ("value", _NOISE),
    "target_spell_out": ("value", _NOISE),
    "space_noise": ("value", _NOISE),
    "punct_noise": ("value", _NOISE),
    "char_noise": ("value", _NOISE),
    "word_noise": ("value", _NOISE),
    "masking": ("value", _NOISE),
    "noise_ops": ("list", _NOISE),
    # Pasero's document-level translation task
    **{name: ("value", "the doc_level_translation task is not implemented; only 'translation'")
       for name in ("max_doc_size", "sent_merge_prob", "sent_sep")},
    # decoding at validation
    "len_penalty": ("value", _DECODING),
    "repeat_penalty": ("value", _DECODING),
    "sampling": ("bool", _DECODING),
    "sampling_topk": ("value", _DECODING),
    "sampling_topp": ("value", _DECODING),
    "sampling_temperature": ("value", _DECODING),
    "teacher_forcing": ("bool", "validation computes the loss by teacher forcing and translates greedily"),
    "expected_scores": ("list", "not implemented (a test-suite option of Pasero)"),
    # training loop
    "flexible": ("bool", "--ckpt weights must match the model (only adapter weights may be missing)"),
    "reset_params_regex": ("value", "not implemented"),
    "freeze_params_regex": ("value", "use adapters (encoder_adapters_by) or LoRA (lora_rank) to train part of a "
                                     "model"),
    "train_params_regex": ("value", "use adapters (encoder_adapters_by) or LoRA (lora_rank) to train part of a "
                                    "model"),
    "train_all_params": ("bool", "adapters train alone on a frozen model; without adapters every weight trains"),
    "save_initial_checkpoint": ("bool", "not implemented"),
    "only_validate": ("bool", "score a model with pasero-decode MODEL_DIR -i SRC -r REF"),
    "patience_min_steps": ("value", "patience counts validations from the start"),
    # model options of Pasero's other architectures
    **{name: ("value", _NOT_IN_MODEL) for name in (
        "alibi_max_bias", "attention_heads_kv", "max_qkv", "rope_base", "shift_encoder_layers",
        "shift_decoder_layers", "sliding_window", "model_type", "input_dim", "conv_input_dim", "conv_channels",
        "conv_activation")},
    **{name: ("list", _NOT_IN_MODEL) for name in ("conv_kernel_sizes", "conv_strides")},
    **{name: ("bool", _NOT_IN_MODEL) for name in ("check_inf", "norm_bias", "parallel_attention", "rms_norm",
                                                  "shared_norm")},
    **{name: ("value", "special token ids come from the dictionary (<s>=0, <pad>=1, </s>=2, <unk>=3)")
       for name in ("padding_idx", "bos_idx", "eos_idx", "unk_idx")},
}

# Pasero's per-corpus keys in train_corpora/valid_corpora that are refused (the others are CorpusSpec fields)
UNSUPPORTED_CORPUS_KEYS = {
    "source_paths": "one path template for both sides ('{pair}' and '{src}'/'{tgt}' placeholders)",
    "target_paths": "one path template for both sides ('{pair}' and '{src}'/'{tgt}' placeholders)",
    "source_tags": "no source tags; use lang_code or adapters",
    "target_tags": "no target tags; use lang_code or adapters",
    "flexible": "a corpus with a missing file is an error (--dry-run lists them all)",
}


def accepted(name: str, value: Any) -> bool:
    """An unsupported Pasero option whose value leaves its feature off."""
    return value == PASERO_DEFAULTS.get(name, object()) or value in ACCEPTED_VALUES.get(name, ())


def unsupported_message(name: str, value: Any = None) -> str:
    hint = UNSUPPORTED[name][1]
    default = PASERO_DEFAULTS.get(name)
    shown = f" with value {value!r} (only Pasero's default, {default!r}, is accepted)" if default is not None else ""
    return f"option {name!r} (Pasero) is not supported{shown}: {hint}"


def yaml_names() -> list[str]:
    """Names a YAML file may contain besides the options of `TrainingConfig` (checked by `translate`)."""
    return [*RENAMED, *INFORMATIONAL, *UNSUPPORTED]


def translate(options: Mapping[str, Any], origins: Mapping[str, str]) -> list[tuple[str, Any, str]]:
    """(our name, value, origin) of each Pasero option; ConfigError naming the origin for a refused one."""
    translated = []
    for key, value in options.items():
        origin = origins[key]
        if key in INFORMATIONAL:
            continue
        if key in UNSUPPORTED:
            if accepted(key, value):
                continue
            raise ConfigError(f"{origin}: {unsupported_message(key, value)}")
        if key == "task":
            value = PASERO_TASK_NAMES.get(value, value)
            if value not in TASKS:
                missing = f"the {value} task is not implemented; " if value == "doc_level_translation" else ""
                raise ConfigError(f"{origin}: option 'task' (Pasero) is not supported with value {value!r}: "
                                  f"{missing}tasks are {', '.join(TASKS)} (Pasero's {', '.join(PASERO_TASK_NAMES)})")
        translated.append((RENAMED.get(key, key), value, origin))
    return translated


def add_unsupported_flags(parser: argparse.ArgumentParser) -> None:
    """`--tp-size 2`, `--amp`... parse, so that they fail with what to use instead rather than 'unknown option'."""
    for name, (kind, _) in UNSUPPORTED.items():
        flag = "--" + name.replace("_", "-")
        if any(flag in action.option_strings for action in parser._actions):
            continue
        help_text = argparse.SUPPRESS  # listed in the README's table of Pasero's options, not in --help
        if kind == "bool":
            parser.add_argument(flag, dest=f"pasero:{name}", action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=f"pasero:{name}", nargs="*" if kind == "list" else None, default=None,
                                help=help_text)


def reject_unsupported_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    namespace, _ = parser.parse_known_args(list(argv))
    for name in UNSUPPORTED:
        value = getattr(namespace, f"pasero:{name}", None)
        if value is None:
            continue
        parsed = yaml.safe_load(value) if isinstance(value, str) else value
        if accepted(name, parsed):
            continue
        raise ConfigError(f"command-line option --{name.replace('_', '-')}: {unsupported_message(name, parsed)}")


def check_corpus_keys(corpora: Any, option: str, origin: str) -> None:
    """Pasero corpus keys with no equivalent, refused with what to use instead."""
    for i, corpus in enumerate(corpora if isinstance(corpora, list) else []):
        if not isinstance(corpus, dict):
            continue
        for key in corpus:
            if key in UNSUPPORTED_CORPUS_KEYS:
                raise ConfigError(f"{origin}: {option}[{i}]: corpus key {key!r} (Pasero) is not supported: "
                                  f"{UNSUPPORTED_CORPUS_KEYS[key]}")
