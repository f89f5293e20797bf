"""The training configuration: one typed tree (data, tokenization, model, optimization, run) with Pasero's names.

YAML files are flat like Pasero's (sections only group the options in code); every option is also a command-line
flag. Precedence, lowest first: dataclass defaults, the `-c` YAML files in order, command-line options::

    accelerate launch recipes/train_mt.py -c recipes/configs/bible-en-es.yaml --lr 1e-4 --model-dir models/x

`pasero_hf.training.lifecycle.training_arguments(config)` derives the Hugging Face `Seq2SeqTrainingArguments` from it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pasero_hf.data.config import DataConfig
from pasero_hf.data.config_parsing import (
    ConfigError,
    Located,
    build_argument_parser,
    flatten,
    instantiate,
    option,
    option_index,
    parse_command_line,
    read_yaml_options,
)
from pasero_hf.data.corpora import LANG_PLACEHOLDER, fill_lang_placeholders, language_pairs
from pasero_hf.metrics import check_metrics
from pasero_hf.models.locate import looks_like_repo_id
from pasero_hf.tokenization.file_utils import write_text_atomically
from pasero_hf.training import pasero_options

# Pasero's singular spellings, accepted in YAML files and on the command line (`-s en -t es`).
SINGULAR_ALIASES = {"source_lang": "source_langs", "target_lang": "target_langs"}
COMMAND_LINE_ALIASES = {
    "source_langs": ["-s", "--source-lang"],
    "target_langs": ["-t", "--target-lang"],
    "model_dir": ["-o"],
}


def _option(default: Any = None, help: str = "", model_arg: bool = False) -> Any:
    """A configuration field; `model_arg`: a model hyper-parameter (a PaseroConfig field) merged into model_args."""
    return option(default, help, model_arg=model_arg)


@dataclass
class TokenizationOptions:
    """Which tokenizer and vocabulary the model uses (paths relative to `data_dir`, then to the working directory)."""

    tokenizer: Literal["pasero", "sentencepiece", "hf"] = _option(
        "pasero", "'pasero' (inline-casing BPE codes + dict.txt), 'sentencepiece' (an spm model, with or without a "
        "dict.txt) or 'hf' (a tokenizer directory for AutoTokenizer)")
    tokenizer_path: str | None = _option(
        None, "BPE codes file ('pasero'), SentencePiece model ('sentencepiece') or tokenizer directory ('hf')")
    dict: str | None = _option(None, "Pasero dictionary (dict.txt) giving the vocabulary")
    target_dict: str | None = _option(
        None, "dictionary of the target side (Pasero's target_dict): separate source and target vocabularies, "
        "which need shared_embeddings: false (default: dict for both sides)")
    target_tokenizer_path: str | None = _option(
        None, "subword model of the target side, of the same kind as tokenizer_path (default: tokenizer_path)")


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
    lora_target_modules: list[str] | None = _option(
        None, "modules that receive LoRA weights (default: the architecture's attention and feed-forward "
        "projections, e.g. q_proj k_proj v_proj out_proj fc1 fc2)")
    save_trainable_only: bool = _option(
        True, "with LoRA on a pretrained causal LM (task lm/dialogue): model_best/model_last hold only the adapter "
        "(a PEFT directory over the base model); false: the merged, standalone model")
    # Pasero's model hyper-parameters as top-level options (PaseroConfig fields); set ones override model_args
    embed_dim: int | None = _option(None, "model dimension (model_args)", model_arg=True)
    encoder_layers: int | None = _option(None, "encoder layers (model_args)", model_arg=True)
    decoder_layers: int | None = _option(None, "decoder layers (model_args)", model_arg=True)
    encoder_attention_heads: int | None = _option(None, "encoder attention heads (model_args)", model_arg=True)
    decoder_attention_heads: int | None = _option(None, "decoder attention heads (model_args)", model_arg=True)
    encoder_ffn_dim: int | None = _option(None, "encoder feed-forward dimension (model_args)", model_arg=True)
    decoder_ffn_dim: int | None = _option(None, "decoder feed-forward dimension (model_args)", model_arg=True)
    dropout: float | None = _option(None, "dropout rate (model_args)", model_arg=True)
    decoder_dropout: float | None = _option(None, "decoder dropout rate, default: dropout (model_args)", model_arg=True)
    embed_dropout: float | None = _option(None, "embedding dropout rate, default: dropout (model_args)", model_arg=True)
    attention_dropout: float | None = _option(None, "dropout on attention weights (model_args)", model_arg=True)
    activation_dropout: float | None = _option(None, "dropout after the feed-forward activation (model_args)", model_arg=True)
    activation_fn: str | None = _option(None, "relu, gelu or gelu_tanh (model_args)", model_arg=True)
    shared_embeddings: bool | None = _option(None, "one embedding matrix for encoder and decoder (model_args)", model_arg=True)
    tied_output_projection: bool | None = _option(
        None, "the output projection is the decoder embedding matrix (model_args)", model_arg=True)
    encoder_prenorm: bool | None = _option(None, "layer norm before each encoder block (model_args)", model_arg=True)
    decoder_prenorm: bool | None = _option(None, "layer norm before each decoder block (model_args)", model_arg=True)
    encoder_embed_norm: bool | None = _option(None, "layer norm after the encoder embeddings (model_args)", model_arg=True)
    decoder_embed_norm: bool | None = _option(None, "layer norm after the decoder embeddings (model_args)", model_arg=True)
    scale_embed: bool | None = _option(None, "multiply embeddings by sqrt(embed_dim) (model_args)", model_arg=True)
    scale_attn: bool | None = _option(None, "scale attention scores by 1/sqrt(head_dim) (model_args)", model_arg=True)
    has_bias: bool | None = _option(None, "biases in the linear layers (model_args)", model_arg=True)
    attention_key_bias: bool | None = _option(None, "bias in the attention key projections (model_args)", model_arg=True)
    norm_eps: float | None = _option(None, "layer norm epsilon (model_args)", model_arg=True)
    encoder_max_len: int | None = _option(None, "maximum source positions of the model (model_args)", model_arg=True)
    decoder_max_len: int | None = _option(None, "maximum target positions of the model (model_args)", model_arg=True)
    encoder_positional_encoding: str | None = _option(None, "sinusoidal or learned (model_args)", model_arg=True)
    decoder_positional_encoding: str | None = _option(None, "sinusoidal or learned (model_args)", model_arg=True)
    positional_encoding_shift: int | None = _option(None, "index of the first position (model_args)", model_arg=True)
    encoder_adapter_dim: int | None = _option(None, "bottleneck dimension of encoder adapters (model_args)", model_arg=True)
    decoder_adapter_dim: int | None = _option(None, "bottleneck dimension of decoder adapters (model_args)", model_arg=True)
    encoder_adapter_layer_ids: list[int] | None = _option(None, "encoder layers with adapters (model_args)", model_arg=True)
    decoder_adapter_layer_ids: list[int] | None = _option(None, "decoder layers with adapters (model_args)", model_arg=True)
    adapter_zero_init: bool | None = _option(None, "initialize adapters as the identity (model_args)", model_arg=True)

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise ConfigError(f"lora_rank: must be >= 0, got {self.lora_rank}")

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """`model_args` with the top-level hyper-parameters that are set (these win)."""
        top_level = {name: getattr(self, name) for name in MODEL_HYPERPARAMETERS if getattr(self, name) is not None}
        return {**self.model_args, **top_level}

    @property
    def uses_adapters(self) -> bool:
        return bool(self.arch.startswith("adapter") or self.encoder_adapters_by or self.decoder_adapters_by
                    or self.encoder_adapters or self.decoder_adapters)


MODEL_HYPERPARAMETERS = [f.name for f in dataclasses.fields(ModelOptions) if f.metadata.get("model_arg")]


@dataclass
class PretrainedOptions:
    """Fine-tuning a pretrained Hugging Face seq2seq model (NLLB-200, M2M100, opus-mt, mBART, T5...) with its tokenizer."""

    model: str | None = _option(
        None, "pretrained model to fine-tune: a save_pretrained directory (or a name resolve_model_dir knows); "
        "replaces arch/tokenizer (--ckpt on such a directory does the same)")
    lang_mapping: str | dict | None = _option(
        None, "data language code -> model code: a file of 'CODE<TAB>CODE' lines (like Pasero's NLLB "
        "lang-mapping.txt) or a dict (default: the model's codes, then the built-in NLLB-200 table: en -> eng_Latn)")
    source_prefix: str | None = _option(
        None, "text before each source, with {src} {tgt} {src_name} {tgt_name} (T5 default: "
        "'translate {src_name} to {tgt_name}: ')")
    trim_vocab: bool = _option(
        False, "keep only the vocabulary seen in the training data (plus special and language tokens): smaller "
        "embeddings and output layer, saved with a matching tokenizer")


@dataclass
class LanguageModelOptions:
    """Fine-tuning a causal language model (task lm or dialogue; see pasero_hf.data.prompts)."""

    prompt_template: str = _option(
        "{src_lang}: {source}\n{tgt_lang}:", "task lm: the prompt of each source sentence ({source}, {src_lang}, "
        "{tgt_lang}); the target follows it, then EOS")
    prompt_loss: float = _option(
        0.0, "weight of the loss on prompt tokens (translation prompts, or the user/system turns of dialogues); "
        "0: target (assistant) tokens only")
    chat_template: str | None = _option(
        None, "task dialogue: chatml, llama-2, mistral or zephyr (saved into the tokenizer), or none: the "
        "tokenizer's own chat template")
    system_prompt: str | None = _option(None, "task dialogue: system message of conversations that have none")
    stop_sequences: list[str] | None = _option(
        None, "decoding stops at these strings (saved in inference.yaml; chatml adds <|im_end|>)")

    def __post_init__(self) -> None:
        if not 0 <= self.prompt_loss <= 1:
            raise ConfigError(f"prompt_loss: must be in [0, 1], got {self.prompt_loss}")


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
class SpeechOptions:
    """Speech translation and transcription (`task: st`): a Whisper checkpoint (`model`) fine-tuned on audio."""

    train_audio: list[str] = _option(
        [], "st: training utterances: manifests (.tsv with a header line, .jsonl; columns audio, text, source_lang, "
        "target_lang) or `datasets` directories with an Audio column (paths relative to data_dir)")
    valid_audio: list[str] = _option([], "st: validation utterances (same formats)")
    audio_column: str = _option("audio", "st: audio column of `datasets` directories")
    text_column: str = _option("text", "st: text column of `datasets` directories")
    utterances_per_batch: int = _option(8, "st: utterances per training batch")

    def __post_init__(self) -> None:
        if self.utterances_per_batch < 1:
            raise ConfigError(f"utterances_per_batch: must be >= 1, got {self.utterances_per_batch}")


@dataclass
class RunOptions:
    """Where checkpoints go, how training resumes, validation and logging."""

    task: Literal["mt", "lm", "dialogue", "st"] = _option(
        "mt", "mt: translation model (Pasero or pretrained seq2seq); lm: a causal LM (--model) on translation "
        "prompts; dialogue: a causal LM on JSONL conversations; st: speech translation/transcription with Whisper "
        "(see train_audio). Pasero's task names (translation, language_modeling, ...) are accepted")
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
    average_checkpoints: bool = _option(
        False, "at the end of training, write MODEL_DIR/model_average: the mean weights of the last keep_last "
               "checkpoints (pasero-average-checkpoints does it for any run)")
    keep_interval: int | None = _option(
        None, "also keep the checkpoints of every keep_interval-th step (Pasero: one checkpoint in the middle of "
              "training)")
    patience: int | None = _option(None, "stop after this many validations without improvement")
    early_stopping_metric: Literal["chrf", "bleu", "chrf++", "spbleu", "wer", "loss"] = _option(
        "chrf", "validation metric that selects model_best and drives early stopping (loss or one of metrics)")
    metrics: list[str] = _option(
        ["bleu", "chrf"], "validation metrics logged: bleu, chrf, chrf++, spbleu (needs spbleu_model), len_ratio; st: transcripts "
        "are scored with wer")
    eval_lc: bool = _option(False, "case-insensitive validation scores")
    spbleu_model: str | None = _option(
        None, "FLORES-200 SentencePiece model of the spbleu metric (flores200_sacrebleu_tokenizer_spm.model)")
    bleu_tok: str = _option("13a", "sacrebleu tokenizer of validation BLEU (13a, intl, zh, ja-mecab, char, none)")
    beam_size: int = _option(5, "beam size written to inference.yaml (decoding default)")
    valid_beam_size: int = _option(1, "beam size of validation decoding")
    max_output_len: int = _option(100, "maximum output tokens when decoding")
    valid_max_lines: int | None = _option(None, "translate at most this many lines per validation corpus")
    validate_at_start: bool = _option(False, "validate once before training")
    dataloader_workers: int = _option(0, "DataLoader worker processes (0: batches are built in the main process)")
    dataloader_pin_memory: bool = _option(True, "DataLoader pins batches in memory (GPU training)")
    dataloader_prefetch_factor: int | None = _option(
        None, "batches each DataLoader worker prepares in advance (with dataloader_workers > 0)")
    dry_run: bool = _option(
        False, "resolve the configuration, check every data file, print the configuration and the corpus table, "
               "then exit without training or writing anything")
    onednn: bool = _option(
        True, "on CPU, float32 linear layers multiply through oneDNN on AMD CPUs with AVX-512, where MKL does not use "
        "it (about 2x per product on AMD Zen 5)"
    )
    fast_dropout: bool = _option(
        True, "on CPU, dropout layers decide four elements per 64-bit random draw (16 bits each) instead of drawing "
        "one number per element: about 2.5x cheaper dropout, the same keep probability to 1/65,536; the masks differ "
        "from nn.functional.dropout's for the same seed")
    push_to_hub: str | None = _option(
        None, "Hub repo USER/NAME: at the end of training, push model_best with its model card (one commit; the repo "
        "may already exist)")

    def __post_init__(self) -> None:
        if self.push_to_hub is not None and not (looks_like_repo_id(self.push_to_hub) and "/" in self.push_to_hub):
            raise ConfigError(f"push_to_hub: {self.push_to_hub!r} is not a Hub repo id (USER_OR_ORG/NAME)")
        for name in ("valid_interval", "log_interval", "keep_last", "beam_size", "valid_beam_size", "keep_interval"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.save_interval is None:
            self.save_interval = self.valid_interval
        try:
            check_metrics(self.metrics, self.spbleu_model)
        except ValueError as error:
            raise ConfigError(f"metrics: {error}") from None
        if self.early_stopping_metric not in ("loss", "wer", *self.metrics):
            raise ConfigError(f"early_stopping_metric: {self.early_stopping_metric!r} is not computed: add it to "
                              f"metrics (now {self.metrics})")
        if self.continue_ and not self.ckpt:
            raise ConfigError("continue: needs --ckpt (rerunning the same command already resumes from MODEL_DIR)")


@dataclass
class TrainingConfig:
    """Every option of `pasero-train`-style training, grouped in sections (option names are unique)."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenization: TokenizationOptions = field(default_factory=TokenizationOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    pretrained: PretrainedOptions = field(default_factory=PretrainedOptions)
    speech: SpeechOptions = field(default_factory=SpeechOptions)
    lm: LanguageModelOptions = field(default_factory=LanguageModelOptions)
    optimization: OptimizationOptions = field(default_factory=OptimizationOptions)
    run: RunOptions = field(default_factory=RunOptions)
    config_files: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        # a separate target vocabulary belongs to Pasero models trained for MT; the other tasks would ignore it
        for name in ("target_dict", "target_tokenizer_path"):
            if getattr(self.tokenization, name) and self.run.task != "mt":
                raise ConfigError(f"{name}: a separate target vocabulary applies to task mt (Pasero models trained "
                                  f"from scratch); task {self.run.task} keeps its model's own tokenizer")

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
        if not LANG_PLACEHOLDER.search(path):
            return path
        pairs = self.lang_pairs
        if len(pairs) != 1:
            raise ConfigError(
                f"{option}: {path!r} uses a language placeholder, which needs exactly one language pair "
                f"(got {len(pairs)}: {', '.join('-'.join(p) for p in pairs) or 'none'})"
            )
        try:
            return fill_lang_placeholders(path, *pairs[0], where=f"{option}: ")
        except ValueError as error:
            raise ConfigError(str(error)) from None

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
        """Flat {option: value}, as written to MODEL_DIR/training.yaml (and readable with `-c`); model
        hyper-parameters that are not set (those of `arch` and `model_args` apply) are left out."""
        return {k: v for k, v in flatten(self).items() if not (k in MODEL_HYPERPARAMETERS and v is None)}

    def write_training_yaml(self, path: str | os.PathLike) -> None:
        """The resolved configuration, written atomically."""
        write_yaml_atomically(path, self.to_dict())


def write_yaml_atomically(path: str | os.PathLike, content: dict) -> None:
    write_text_atomically(path, yaml.safe_dump(content, sort_keys=False, allow_unicode=True))


def _apply_singular_aliases(options: Located) -> None:
    for alias, name in SINGULAR_ALIASES.items():
        if alias in options:
            value = options.pop(alias)
            options.set(name, [value] if isinstance(value, str) else value, options.origins.pop(alias))


def argument_parser(prog: str | None = None):
    """The command-line parser of training (one flag per option)."""
    parser = build_argument_parser(TrainingConfig, prog=prog, description=__doc__.split("\n\n")[0],
                                   aliases=COMMAND_LINE_ALIASES)
    pasero_options.add_unsupported_flags(parser)
    return parser


def load_training_config(argv: Sequence[str] = (), config_files: Sequence[str | os.PathLike] = (),
                         **overrides: Any) -> TrainingConfig:
    """The configuration from YAML files (`-c` in `argv`, then `config_files`), command-line options and `overrides`.

    Raises:
        ConfigError: malformed YAML (file and line), unknown option (with the closest names), wrong type.
    """
    parser = argument_parser()
    pasero_options.reject_unsupported_flags(parser, argv)
    cli_files, cli_options = parse_command_line(parser, argv, TrainingConfig)
    options = Located()
    files = [str(f) for f in config_files] + list(cli_files)
    sources = []
    for path in files:
        file_options = read_yaml_options(
            path, TrainingConfig, extra_names=[*SINGULAR_ALIASES, *pasero_options.yaml_names()])
        _apply_singular_aliases(file_options)
        sources.append(file_options)
    sources.append(cli_options)
    keyword_options = Located()
    for key, value in overrides.items():
        keyword_options.set(key, value, f"keyword argument {key}")
    sources.append(keyword_options)
    for source in sources:
        for key, value, origin in pasero_options.translate(source, source.origins):
            if key in ("train_corpora", "valid_corpora"):
                pasero_options.check_corpus_keys(value, key, origin)
            if key == "model_args" and isinstance(value, dict) and isinstance(options.get(key), dict):
                value = {**options[key], **value}  # a later model_args changes the fields it names
            options.set(key, value, origin)
    _apply_singular_aliases(options)
    config = instantiate(TrainingConfig, options, options.origins)
    config.config_files = files
    return config


def config_fields() -> list[str]:
    """Names of every option (for documentation and tests)."""
    return list(option_index(TrainingConfig))


__all__ = [
    "ConfigError",
    "LanguageModelOptions",
    "ModelOptions",
    "OptimizationOptions",
    "PretrainedOptions",
    "RunOptions",
    "SpeechOptions",
    "TokenizationOptions",
    "TrainingConfig",
    "argument_parser",
    "config_fields",
    "load_training_config",
    "write_yaml_atomically",
]
