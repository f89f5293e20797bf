"""The training configuration: one typed tree (data, tokenization, model, optimization, run) with Pasero's names.

YAML files are flat like Pasero's (sections only group the options in code); every option is also a command-line
flag. Precedence, lowest first: dataclass defaults, the `-c` YAML files in order, command-line options::

    accelerate launch recipes/train_mt.py -c recipes/configs/bible-en-es.yaml --lr 1e-4 --model-dir models/x

`pasero_hf.training.run.training_arguments(config)` derives the Hugging Face `Seq2SeqTrainingArguments` from it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pasero_hf.data.config import DataConfig
from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.data.corpora import language_pairs
from pasero_hf.models.locate import looks_like_repo_id
from pasero_hf.training.config_parsing import (
    Located,
    build_argument_parser,
    flatten,
    instantiate,
    parse_command_line,
    read_yaml_options,
)

PLACEHOLDER = re.compile(r"\{(pair|src|tgt)\}")
# Pasero's singular spellings, accepted in YAML files and on the command line (`-s en -t es`).
SINGULAR_ALIASES = {"source_lang": "source_langs", "target_lang": "target_langs"}
COMMAND_LINE_ALIASES = {
    "source_langs": ["-s", "--source-lang"],
    "target_langs": ["-t", "--target-lang"],
    "model_dir": ["-o"],
}


def _option(default: Any = None, help: str = "", **kwargs) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass
class TokenizationOptions:
    """Which tokenizer and vocabulary the model uses (paths relative to `data_dir`, then to the working directory)."""

    tokenizer: Literal["pasero", "hf"] = _option(
        "pasero", "'pasero' (inline-casing BPE codes + dict.txt) or 'hf' (a tokenizer directory for AutoTokenizer)")
    tokenizer_path: str | None = _option(None, "BPE codes file ('pasero') or tokenizer directory ('hf')")
    dict: str | None = _option(None, "Pasero dictionary (dict.txt) giving the vocabulary")
    target_dict: str | None = _option(None, "separate target dictionary (not supported: shared vocabularies only)")

    def __post_init__(self) -> None:
        if self.target_dict is not None:
            raise ConfigError("target_dict: separate source and target vocabularies are not supported; use one dict")


@dataclass
class ModelOptions:
    """The model to train: a Pasero architecture with overrides, adapters or LoRA."""

    arch: str = _option("transformer", "Pasero architecture (transformer, transformer_small, adapter_transformer...)")
    model_args: dict = _option({}, "overrides of the architecture's hyper-parameters (PaseroConfig fields)")
    dtype: Literal["float32", "bfloat16", "float16"] = _option(
        "float32", "training precision: bfloat16/float16 train with mixed precision through Accelerate")
    checkpoint_activations: bool = _option(False, "recompute activations in the backward pass to save memory")
    encoder_adapters_by: list[str] | None = _option(None, "one encoder adapter per source_lang/target_lang/domain...")
    decoder_adapters_by: list[str] | None = _option(None, "one decoder adapter per source_lang/target_lang/domain...")
    encoder_adapters: list[str] | None = _option(None, "explicit encoder adapter names ('lang:de->fr', 'domain:x')")
    decoder_adapters: list[str] | None = _option(None, "explicit decoder adapter names")
    lora_rank: int = _option(0, "train LoRA adapters of this rank through PEFT on a frozen model (0: no LoRA)")
    lora_alpha: int = _option(8, "LoRA scaling numerator")
    lora_target_modules: list[str] = _option(
        ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"], "modules that receive LoRA weights")

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise ConfigError(f"lora_rank: must be >= 0, got {self.lora_rank}")

    @property
    def uses_adapters(self) -> bool:
        return bool(self.arch.startswith("adapter") or self.encoder_adapters_by or self.decoder_adapters_by
                    or self.encoder_adapters or self.decoder_adapters)


@dataclass
class OptimizationOptions:
    """Optimizer, learning-rate schedule, loss and step budget."""

    lr: float = _option(0.0005, "peak learning rate")
    lr_scheduler: str = _option(
        "inverse_sqrt", "'inverse_sqrt' (Pasero: linear warmup then lr*sqrt(warmup/step)) or a Hugging Face "
        "scheduler name (linear, cosine, constant_with_warmup...)")
    warmup: int = _option(4000, "warmup steps")
    init_lr: float = _option(0.0, "learning rate at step 0 (inverse_sqrt)")
    min_lr: float = _option(0.0, "lower bound of the learning rate (inverse_sqrt)")
    adam_betas: list[float] = _option([0.9, 0.999], "Adam betas")
    weight_decay: float = _option(0.0, "AdamW weight decay")
    clip_norm: float = _option(1.0, "gradient norm clipping (0: none)")
    label_smoothing: float = _option(0.1, "label smoothing of the cross-entropy")
    virtual_dp_size: int = _option(
        1, "simulated number of data-parallel processes: gradient accumulation = virtual_dp_size / world size")
    max_steps: int = _option(100000, "maximum number of optimizer steps")
    max_time: float | None = _option(None, "wall-clock training budget in minutes (validation included)")

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"lr: must be positive, got {self.lr}")
        if self.virtual_dp_size < 1:
            raise ConfigError(f"virtual_dp_size: must be >= 1, got {self.virtual_dp_size}")
        if self.max_steps < 1:
            raise ConfigError(f"max_steps: must be >= 1, got {self.max_steps}")
        if self.max_time is not None and self.max_time <= 0:
            raise ConfigError(f"max_time: must be positive (minutes), got {self.max_time}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing: must be in [0, 1), got {self.label_smoothing}")


@dataclass
class RunOptions:
    """Where checkpoints go, how training resumes, validation and logging."""

    model_dir: str | None = _option(None, "directory of checkpoints, logs, training.yaml and inference.yaml")
    ckpt: str | None = _option(None, "initialize the weights from this checkpoint directory (weights only)")
    continue_: bool = _option(False, "with --ckpt: also restore its optimizer, scheduler and step")
    reset: bool = _option(False, "ignore the checkpoints already in MODEL_DIR and start from scratch")
    reset_optimizer: bool = _option(
        False, "resume from MODEL_DIR's last checkpoint with its weights only (new step, optimizer, schedule, data)")
    save_interval: int | None = _option(None, "steps between checkpoints (default: valid_interval)")
    valid_interval: int = _option(1000, "steps between validations")
    log_interval: int = _option(100, "steps between log lines")
    keep_last: int = _option(1, "number of most recent checkpoints kept (model_best and model_last are extra)")
    patience: int | None = _option(None, "stop after this many validations without improvement")
    early_stopping_metric: Literal["chrf", "bleu", "loss"] = _option(
        "chrf", "validation metric that selects model_best and drives early stopping")
    bleu_tok: str = _option("13a", "sacrebleu tokenizer of validation BLEU (13a, intl, zh, ja-mecab, char, none)")
    beam_size: int = _option(5, "beam size written to inference.yaml (decoding default)")
    valid_beam_size: int = _option(1, "beam size of validation decoding")
    max_output_len: int = _option(100, "maximum output tokens when decoding")
    valid_max_lines: int | None = _option(None, "translate at most this many lines per validation corpus")
    validate_at_start: bool = _option(False, "validate once before training")
    dataloader_workers: int = _option(0, "DataLoader worker processes (0: batches are built in the main process)")
    onednn: bool = _option(
        True, "on CPU, float32 linear layers multiply through oneDNN when faster (about 2x on AMD CPUs)"
    )
    push_to_hub: str | None = _option(
        None, "Hub repo USER/NAME: at the end of training, push model_best with its model card (one commit; the repo "
        "may already exist)")

    def __post_init__(self) -> None:
        if self.push_to_hub is not None and not (looks_like_repo_id(self.push_to_hub) and "/" in self.push_to_hub):
            raise ConfigError(f"push_to_hub: {self.push_to_hub!r} is not a Hub repo id (USER_OR_ORG/NAME)")
        for name in ("valid_interval", "log_interval", "keep_last", "beam_size", "valid_beam_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.save_interval is None:
            self.save_interval = self.valid_interval
        if self.continue_ and not self.ckpt:
            raise ConfigError("continue: needs --ckpt (rerunning the same command already resumes from MODEL_DIR)")


@dataclass
class TrainingConfig:
    """Every option of `pasero-train`-style training, grouped in sections (option names are unique)."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenization: TokenizationOptions = field(default_factory=TokenizationOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    optimization: OptimizationOptions = field(default_factory=OptimizationOptions)
    run: RunOptions = field(default_factory=RunOptions)
    config_files: list[str] = field(default_factory=list, init=False)

    @property
    def lang_pairs(self) -> list[tuple[str, str]]:
        """Training language pairs as (source, target)."""
        d = self.data
        return language_pairs(d.source_langs, d.target_langs, d.lang_pairs, d.allow_monolingual)

    @property
    def model_dir(self) -> Path:
        if not self.run.model_dir:
            raise ConfigError("model_dir: required (set it in the YAML file or with --model-dir DIR)")
        return Path(self.expand(self.run.model_dir, "model_dir"))

    def expand(self, path: str, option: str) -> str:
        """`path` with `{pair}`, `{src}`, `{tgt}` filled from the (single) language pair."""
        if not PLACEHOLDER.search(path):
            return path
        pairs = self.lang_pairs
        if len(pairs) != 1:
            raise ConfigError(
                f"{option}: {path!r} uses a language placeholder, which needs exactly one language pair "
                f"(got {len(pairs)}: {', '.join('-'.join(p) for p in pairs) or 'none'})"
            )
        src, tgt = pairs[0]
        return path.replace("{pair}", f"{src}-{tgt}").replace("{src}", src).replace("{tgt}", tgt)

    def resolve_data_path(self, path: str, option: str) -> Path:
        """A data-side file (tokenizer, dict): placeholders filled, looked up in data_dir then the working directory."""
        expanded = self.expand(path, option)
        for candidate in (Path(self.data.data_dir) / expanded, Path(expanded)):
            if candidate.exists():
                return candidate
        where = f" (from {path!r})" if expanded != path else ""
        raise ConfigError(
            f"{option}: {expanded}{where} not found in data_dir {self.data.data_dir!r} nor in the working directory")

    def to_dict(self) -> dict[str, Any]:
        """Flat {option: value}, as written to MODEL_DIR/training.yaml (and readable with `-c`)."""
        return flatten(self)

    def write_training_yaml(self, path: str | os.PathLike) -> None:
        """The resolved configuration, written atomically."""
        write_yaml_atomically(path, self.to_dict())


def write_yaml_atomically(path: str | os.PathLike, content: dict) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(tmp, path)


def _apply_singular_aliases(options: Located) -> None:
    for alias, name in SINGULAR_ALIASES.items():
        if alias in options:
            value = options.pop(alias)
            options.set(name, [value] if isinstance(value, str) else value, options.origins.pop(alias))


def argument_parser(prog: str | None = None):
    """The command-line parser of training (one flag per option)."""
    return build_argument_parser(TrainingConfig, prog=prog, description=__doc__.split("\n\n")[0],
                                 aliases=COMMAND_LINE_ALIASES)


def load_training_config(argv: Sequence[str] = (), config_files: Sequence[str | os.PathLike] = (),
                         **overrides: Any) -> TrainingConfig:
    """The configuration from YAML files (`-c` in `argv`, then `config_files`), command-line options and `overrides`.

    Raises:
        ConfigError: malformed YAML (file and line), unknown option (with the closest names), wrong type.
    """
    parser = argument_parser()
    cli_files, cli_options = parse_command_line(parser, argv, TrainingConfig)
    options = Located()
    files = [str(f) for f in config_files] + list(cli_files)
    for path in files:
        file_options = read_yaml_options(path, TrainingConfig, extra_names=SINGULAR_ALIASES)
        _apply_singular_aliases(file_options)
        for key, value in file_options.items():
            options.set(key, value, file_options.origins[key])
    for key, value in cli_options.items():
        options.set(key, value, cli_options.origins[key])
    for key, value in overrides.items():
        options.set(key, value, f"keyword argument {key}")
    _apply_singular_aliases(options)
    config = instantiate(TrainingConfig, options, options.origins)
    config.config_files = files
    return config


def config_fields() -> list[str]:
    """Names of every option (for documentation and tests)."""
    from pasero_hf.training.config_parsing import option_index

    return list(option_index(TrainingConfig))


__all__ = [
    "ConfigError",
    "ModelOptions",
    "OptimizationOptions",
    "RunOptions",
    "TokenizationOptions",
    "TrainingConfig",
    "argument_parser",
    "config_fields",
    "load_training_config",
    "write_yaml_atomically",
]
