"""Pasero's separate target side in training: `target_dict` (the decoder's own vocabulary) and
`target_tokenizer_path` (the target's own subword model of the `tokenizer` kind).

The tokenizer encodes sources with `dict`/`tokenizer_path` and targets (`text_target=`) with the target ones; the
model gets the two sizes (`encoder_vocab_size` = source, `vocab_size` = target), which needs
`shared_embeddings: false`, as in Pasero.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.models.pasero.configuration_pasero import ARCHITECTURES, PaseroConfig
from pasero_hf.training.config import TrainingConfig

OPTIONS = ("target_dict", "target_tokenizer_path")
# `tokenizer` -> the PaseroTokenizer argument of its target subword model
_TARGET_MODEL_ARGUMENT = {"pasero": "target_bpe_file", "sentencepiece": "target_spm_file"}


def target_options(config: TrainingConfig) -> list[str]:
    return [option for option in OPTIONS if getattr(config.tokenization, option)]


def check_target_side(config: TrainingConfig) -> None:
    """The target options apply to a Pasero tokenizer only, and their files exist (ConfigError naming the option)."""
    options = target_options(config)
    if not options:
        return
    if config.pretrained.model or config.run.task != "mt":
        raise ConfigError(f"{options[0]}: a separate target vocabulary applies to Pasero models trained from scratch "
                          f"(task mt, no `model`); a pretrained model keeps its own tokenizer")
    if config.tokenization.tokenizer not in _TARGET_MODEL_ARGUMENT:
        raise ConfigError(f"{options[0]}: needs tokenizer pasero or sentencepiece (an 'hf' tokenizer directory has "
                          f"its own vocabulary)")
    for option in options:
        config.resolve_data_path(getattr(config.tokenization, option), option)
    if config.tokenization.target_dict:
        check_separate_embeddings(config, "target_dict")


def check_separate_embeddings(config: TrainingConfig, option: str) -> None:
    """A target vocabulary needs `shared_embeddings: false` (set, or the default of `arch`)."""
    shared = config.model.hyperparameters.get("shared_embeddings")
    origin = "set"
    if shared is None:
        defaults = {field.name: field.default for field in dataclasses.fields(PaseroConfig)}
        shared = ARCHITECTURES.get(config.model.arch, {}).get("shared_embeddings", defaults["shared_embeddings"])
        origin = f"the default of arch {config.model.arch!r}"
    if shared:
        raise ConfigError(
            f"{option}: {getattr(config.tokenization, option)} gives the target side its own vocabulary, which needs "
            f"shared_embeddings: false (shared_embeddings is true, {origin}): one embedding matrix cannot index two "
            f"dictionaries; set shared_embeddings: false (--no-shared-embeddings)")


def target_tokenizer_files(config: TrainingConfig) -> dict[str, str]:
    """The PaseroTokenizer arguments of the target side (none when source and target share everything)."""
    check_target_side(config)
    opts = config.tokenization
    files = {}
    if opts.target_dict:
        files["target_dict_file"] = str(config.resolve_data_path(opts.target_dict, "target_dict"))
    if opts.target_tokenizer_path:
        files[_TARGET_MODEL_ARGUMENT[opts.tokenizer]] = str(
            config.resolve_data_path(opts.target_tokenizer_path, "target_tokenizer_path"))
    return files


def vocabulary_sizes(config: TrainingConfig, tokenizer) -> dict[str, Any]:
    """`vocab_size` (the decoder's) and, with a target dictionary, `encoder_vocab_size` (the source's)."""
    if not getattr(tokenizer, "separate_vocabs", False):
        return {"vocab_size": len(tokenizer)}
    # (a SentencePiece target model without a dict has its own vocabulary too)
    check_separate_embeddings(config, "target_dict" if config.tokenization.target_dict else "target_tokenizer_path")
    return {"vocab_size": tokenizer.target_vocab_size, "encoder_vocab_size": tokenizer.vocab_size}
