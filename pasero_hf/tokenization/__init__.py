"""Pasero's inline-casing BPE tokenizer: apply (`PaseroBPE`), train (`train_bpe`), dictionaries, and the
`transformers` tokenizer `PaseroTokenizer`.

Importing this package does not import torch or transformers; `PaseroTokenizer` and the trainer (`train_bpe`,
`TrainingResult`, which pull in multiprocessing) are loaded on first access, so `pasero-tokenize` starts fast.
"""

from .bpe import BPEOptions, PaseroBPE, read_bpecodes
from .dictionary import (
    CoverageReport,
    Dictionary,
    build_dictionary,
    check_vocabulary_coverage,
    lang_code,
    load_vocabulary,
)
from .inline_casing import detokenize

__all__ = [
    "BPEOptions",
    "CoverageReport",
    "Dictionary",
    "PaseroBPE",
    "PaseroTokenizer",
    "TrainingResult",
    "build_dictionary",
    "check_vocabulary_coverage",
    "detokenize",
    "lang_code",
    "load_vocabulary",
    "read_bpecodes",
    "train_bpe",
]


def __getattr__(name: str):
    if name == "PaseroTokenizer":
        from .tokenization_pasero import PaseroTokenizer

        return PaseroTokenizer
    if name in ("TrainingResult", "train_bpe"):
        from . import bpe_training

        return getattr(bpe_training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
