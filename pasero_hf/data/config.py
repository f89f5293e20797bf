"""Typed data options: `CorpusSpec` (one corpus definition) and `DataConfig` (every data option, Pasero names).

Example (YAML, as in a Pasero training config)::

    data_dir: recipes/data/iso-codes
    source_langs: [en]
    target_langs: [de, fr, ja]
    lang_temperature: 5
    batch_by: [target_lang]
    train_corpora:
      - paths: ["{pair}/train"]          # -> en-de/train.en + en-de/train.de, ...
    valid_corpora:
      - paths: ["{pair}/train"]
        multiplier: 1

``DataConfig.from_dict(yaml.safe_load(...))`` checks every key and type (see `config_parsing`).
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from pasero_hf.data.config_parsing import ConfigError, dataclass_from_dict, option

BATCH_BY_KEYS = ("source_lang", "target_lang", "lang_pair", "domain")
CORPUS_FORMATS = ("parallel", "tsv", "jsonl", "dataset")


@dataclass
class CorpusSpec:
    """One corpus definition, expanded into one corpus per language pair.

    Attributes:
        paths: path templates relative to `DataConfig.data_dir` (or the working directory), with optional
            placeholders ``{src}``, ``{tgt}``, ``{pair}`` (``src-tgt``, or ``tgt-src`` when only that exists).
            Format 'parallel': prefixes, the files are ``PREFIX.{src}`` and ``PREFIX.{tgt}``; 'tsv': files with
            ``source<TAB>target`` lines; 'jsonl': one object per line with one field per language code (or a
            ``translation`` object keyed by language code, the Hugging Face convention); 'dataset': a directory
            written by ``datasets.Dataset.save_to_disk`` with the same columns as 'jsonl'.
        source_langs, target_langs, lang_pairs: override the global ones of `DataConfig` for this corpus
            (``lang_pairs`` like ``["de-en", "fr-en"]`` has priority over the product source x target).
        multiplier: the corpus counts as this many times its size when computing sampling probabilities.
        probability: fixed sampling probability (shared by the corpora this spec expands into), instead of the
            size/temperature-based one.
        domain: domain name (default: the file name without language suffixes, Pasero's convention).
        format: 'parallel', 'tsv', 'jsonl' or 'dataset'.
        bidir: also use each language pair in the other direction (Pasero: only when no global languages are set).
        early_stopping: this corpus counts in the validation metric (Pasero's key; only true is supported).

    A bare string is a corpus of one path (Pasero's shortest form: ``train_corpora: [train]``).
    """

    paths: str | list[str]
    source_langs: list[str] | None = None
    target_langs: list[str] | None = None
    lang_pairs: list[str] | None = None
    multiplier: float = 1.0
    probability: float | None = None
    domain: str | None = None
    format: Literal["parallel", "tsv", "jsonl", "dataset"] = "parallel"
    bidir: bool = False
    early_stopping: bool = True

    @classmethod
    def from_str(cls, path: str) -> "CorpusSpec":
        return cls(paths=[path])

    def __post_init__(self) -> None:
        if not self.early_stopping:
            raise ConfigError("early_stopping: false (Pasero) is not supported: every validation corpus counts in "
                              "early_stopping_metric; remove this corpus or the key")
        if isinstance(self.paths, str):
            self.paths = [self.paths]
        if not self.paths:
            raise ConfigError("paths: a corpus needs at least one path")
        if self.multiplier <= 0:
            raise ConfigError(f"multiplier: must be positive, got {self.multiplier}")
        if self.probability is not None and not 0 < self.probability <= 1:
            raise ConfigError(f"probability: must be in (0, 1], got {self.probability}")
        if self.format not in CORPUS_FORMATS:
            raise ConfigError(f"format: {self.format!r} is not one of {list(CORPUS_FORMATS)}")
        for pair in self.lang_pairs or []:
            _check_pair(pair, "lang_pairs")


def _check_pair(pair: str, option: str) -> None:
    if len(pair.split("-")) != 2 or not all(pair.split("-")):
        raise ConfigError(f"{option}: {pair!r} is not a language pair like 'de-en'")


@dataclass
class DataConfig:
    """Every data option of training (Pasero names and defaults); each field's help text is what `--help` shows."""

    data_dir: str = option(".", "directory the corpus paths are relative to (the working directory is tried next)")
    train_corpora: list[CorpusSpec] = field(
        default_factory=lambda: [CorpusSpec(paths=["train"])], metadata={"help": (
            "training corpus definitions: paths (with {src}, {tgt}, {pair} placeholders) or mappings with the "
            "fields of CorpusSpec (paths, source_langs, target_langs, lang_pairs, multiplier, probability, domain, "
            "format, bidir); Pasero's default: [train]")})
    valid_corpora: list[CorpusSpec] = field(
        default_factory=lambda: [CorpusSpec(paths=["valid"])], metadata={"help": (
            "validation corpus definitions, like train_corpora; Pasero's default: [valid]")})
    source_langs: list[str] | None = option(None, "source languages of the corpora (-s)")
    target_langs: list[str] | None = option(None, "target languages of the corpora (-t)")
    lang_pairs: list[str] | None = option(
        None, "language pairs like de-en (-l); default: the product source_langs x target_langs, minus X-X pairs "
        "unless allow_monolingual")
    valid_source_langs: list[str] | None = option(None, "source languages of validation (default: source_langs)")
    valid_target_langs: list[str] | None = option(None, "target languages of validation (default: target_langs)")
    valid_lang_pairs: list[str] | None = option(None, "language pairs of validation (default: the training ones)")
    allow_monolingual: bool = option(False, "keep X-X pairs of the source x target product")
    lang_temperature: float = option(
        1.0, "sampling probability of a language pair ∝ (lines x multiplier) ** (1 / T): 1 is proportional to size, "
        "larger is closer to uniform")
    lang_code: bool = option(
        False, "prefix each source with the target language code token (<lang:xx>), unless the tokenizer already "
        "put it there")
    source_lang_code: bool = option(False, "prefix each source with its own language code, after the target one")
    target_lang_code: bool = option(False, "start each target with its language code, forced first when decoding")
    domain_tag: bool = option(
        False, "prefix each source with its corpus's domain tag (<domain:xx>, after the language codes); decoding "
        "takes the domain from --domain; the tags must be in the dictionary")
    batch_size: int = option(4096, "maximum tokens per batch, counted with padding: lines x longest side")
    lines_per_batch: int | None = option(None, "maximum lines per batch (none by default)")
    batch_by: str | list[str] | None = option(
        None, "homogeneous batches with respect to these keys: source_lang, target_lang, lang_pair, domain")
    max_source_len: int | None = option(
        None, "maximum source tokens (EOS and language codes included): longer training pairs are skipped, longer "
        "validation pairs truncated; default: max_len")
    max_target_len: int | None = option(None, "maximum target tokens, like max_source_len; default: max_len")
    max_len: int = option(256, "default of max_source_len and max_target_len")
    min_len_ratio: float | None = option(None, "skip training pairs whose source/target length ratio is below this")
    max_len_ratio: float | None = option(None, "skip training pairs whose source/target length ratio is above this")
    buffer_size: int = option(100000, "line pairs read, sorted by length and cut into batches at once")
    max_lines: int | None = option(None, "read at most this many line pairs per corpus")
    seed: int = option(42, "seed of corpus sampling, shuffling, batch order and the initial weights")
    shuffle: bool = option(True, "shuffle corpus lines and batches (sampling between corpora is random regardless)")
    cache_dir: str | None = option(
        None, "where tokenized corpora are cached (default: a directory under the system's temporary directory)")

    def __post_init__(self) -> None:
        self.train_corpora = [_as_spec(c, f"train_corpora[{i}]") for i, c in enumerate(self.train_corpora)]
        self.valid_corpora = [_as_spec(c, f"valid_corpora[{i}]") for i, c in enumerate(self.valid_corpora)]
        if isinstance(self.batch_by, str):
            self.batch_by = [self.batch_by]
        for key in self.batch_by or []:
            if key not in BATCH_BY_KEYS:
                raise ConfigError(f"batch_by: {key!r} is not one of {list(BATCH_BY_KEYS)}")
        for name in ("lang_pairs", "valid_lang_pairs"):
            for pair in getattr(self, name) or []:
                _check_pair(pair, name)
        for name in ("batch_size", "max_len", "buffer_size", "max_source_len", "max_target_len",
                       "lines_per_batch", "max_lines"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name}: must be positive, got {value}")
        if self.lang_temperature <= 0:
            raise ConfigError(f"lang_temperature: must be positive, got {self.lang_temperature}")
        longest = max(self.source_len_limit, self.target_len_limit)
        if self.batch_size < longest:
            raise ConfigError(
                f"batch_size: {self.batch_size} tokens cannot hold one pair of the maximum length ({longest}); "
                "raise batch_size or lower max_len/max_source_len/max_target_len"
            )

    @property
    def source_len_limit(self) -> int:
        return self.max_source_len or self.max_len

    @property
    def target_len_limit(self) -> int:
        return self.max_target_len or self.max_len

    @classmethod
    def from_dict(cls, data: dict, context: str = "") -> "DataConfig":
        """Build from a dict (e.g. parsed YAML), rejecting unknown keys and wrong types with clear errors."""
        return dataclass_from_dict(cls, data, context=context)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def _as_spec(corpus: CorpusSpec | dict | str, where: str) -> CorpusSpec:
    if isinstance(corpus, CorpusSpec):
        return corpus
    if isinstance(corpus, str):
        return CorpusSpec.from_str(corpus)
    return dataclass_from_dict(CorpusSpec, corpus, context=where)
