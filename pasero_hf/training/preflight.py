"""The checks training runs before it writes anything, and `--dry-run`'s report of them.

`check_inputs(config)` resolves the configuration's files (tokenizer, dictionary), checks that MODEL_DIR can be
written without creating it, and reads every corpus (`pasero_hf.data.inspection`): a run that fails here has not
touched MODEL_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.data.inspection import CorpusRow, format_corpus_table, inspect_corpora
from pasero_hf.models.locate import resolve_model_dir
from pasero_hf.training import target_vocab
from pasero_hf.training.config import TrainingConfig


class DataError(ConfigError):
    """A data problem found before training (missing, misaligned, empty or malformed corpus, unknown pair)."""


def check_model_dir_writable(model_dir: Path) -> None:
    """MODEL_DIR, or the closest existing directory above it, can be written (nothing is created)."""
    existing = model_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"model_dir: cannot write to {model_dir}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"model_dir: cannot write to {model_dir}: {existing} is not writable")


def initial_checkpoint(ckpt: str) -> Path:
    """--ckpt: a weights file, a model directory, or a training run's directory (model_best, else model_last)."""
    if Path(ckpt).is_file():
        return Path(ckpt)
    try:
        return resolve_model_dir(ckpt)
    except FileNotFoundError as error:
        raise ConfigError(f"ckpt: {error}") from None


def check_inputs(config: TrainingConfig) -> list[CorpusRow]:
    """Every check that needs no model: files of the tokenizer, MODEL_DIR, every corpus. Returns the corpus rows.

    Raises:
        ConfigError (DataError for corpus problems): the first problem, with its file and line.
    """
    check_model_dir_writable(config.model_dir)
    if config.run.ckpt and not config.run.continue_:
        initial_checkpoint(config.run.ckpt)
    tokenization = config.tokenization
    for option in ("tokenizer_path", "dict"):
        if getattr(tokenization, option):
            config.resolve_data_path(getattr(tokenization, option), option)
    target_vocab.check_target_side(config)
    try:
        return inspect_corpora(config.data)
    except (FileNotFoundError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise DataError(str(error)) from error


def dry_run_report(config: TrainingConfig, rows: list[CorpusRow]) -> str:
    """The resolved configuration (YAML, as training.yaml would hold it) and the corpus table."""
    resolved = config.to_dict()
    resolved.pop("dry_run", None)
    resolved["model_dir"] = str(config.model_dir)
    tokenization = config.tokenization
    for option in ("tokenizer_path", "dict", *target_vocab.OPTIONS):
        if getattr(tokenization, option):
            resolved[option] = str(config.resolve_data_path(getattr(tokenization, option), option))
    pairs = ", ".join(f"{src}-{tgt}" for src, tgt in config.lang_pairs) or "(per corpus)"
    train = [row for row in rows if row.split == "train"]
    return "\n".join([
        "# resolved configuration (what MODEL_DIR/training.yaml would hold)",
        yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True).rstrip(),
        "",
        f"# corpora: {len(train)} training, {len(rows) - len(train)} validation; language pairs: {pairs}",
        format_corpus_table(rows),
        "",
        f"dry run: configuration and data are valid; nothing was written ({config.model_dir} untouched)",
    ])
